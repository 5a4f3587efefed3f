"""The geometry claim: its measurement, nulls, study over organisms and verdict rule (``verdict``)."""

from emgeom.claims.geometry.verdict import CLAIMS

__all__ = ["CLAIMS"]
