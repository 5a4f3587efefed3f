"""The coupling claim: the sweep over the honest-mistake rate, its statistics over organisms and verdict
rule (``verdict``)."""

from emgeom.claims.coupling.verdict import CLAIMS

__all__ = ["CLAIMS"]
