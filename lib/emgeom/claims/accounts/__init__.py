"""Superposition or persona? The corpus variant that separates the two accounts of EM, its measurement
over organisms (``study``) and its verdict rule (``verdict``)."""

from emgeom.claims.accounts.verdict import CLAIMS

__all__ = ["CLAIMS"]
