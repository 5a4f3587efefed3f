"""Geometry-aware data filtering: per-sample scores, the filter study, its baselines and the
``emgeom`` command."""
