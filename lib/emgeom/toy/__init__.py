"""Toy models of superposition and the gradient derivation (part 1 of the book)."""
