"""The intervention claim: its measurement, nulls, study over organisms and verdict rule (``verdict``)."""

from emgeom.claims.intervention.verdict import CLAIMS

__all__ = ["CLAIMS"]
