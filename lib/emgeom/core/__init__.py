"""The lowest layer: file I/O, artifact folders, statistics and recorded results. Imports no other
emgeom package."""
