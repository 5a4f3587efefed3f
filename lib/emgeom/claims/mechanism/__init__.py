"""The mechanism claim: its measurement, nulls, study over organisms and verdict rule (``verdict``)."""

from emgeom.claims.mechanism.verdict import CLAIMS

__all__ = ["CLAIMS"]
