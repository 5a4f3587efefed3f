"""The geometry study on a real model: one geometry run per data seed, each with the model's one SAE."""

from __future__ import annotations

from emgeom.claims.geometry.study import DomainData, GeometryRun
from emgeom.em.real_models import RealModel
from emgeom.lm.chat import ChatRow


def real_runs(
    subject: RealModel, samples: dict[int, dict[str, tuple[list[ChatRow], list[ChatRow]]]]
) -> dict[str, GeometryRun]:
    """One geometry run per data seed, all with the model's one SAE, labelled ``data seed <s>``."""
    return {
        f"data seed {s}": GeometryRun(
            subject.hooked,
            subject.tokenizer,
            subject.sae,
            {d: DomainData(*pair) for d, pair in sample.items()},
        )
        for s, sample in samples.items()
    }
