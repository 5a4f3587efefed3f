"""The derivation claim: its measurement, nulls, study over organisms and verdict rule (``verdict``)."""

from emgeom.claims.derivation.verdict import CLAIMS

__all__ = ["CLAIMS"]
