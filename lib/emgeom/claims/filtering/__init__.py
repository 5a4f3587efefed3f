"""The filtering claim: its measurement, nulls, study over organisms and verdict rule (``verdict``)."""

from emgeom.claims.filtering.verdict import CLAIMS

__all__ = ["CLAIMS"]
