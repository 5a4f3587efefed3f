"""Filtering where reading the text is not enough: the dissociation sets' numbers over organisms.

A dissociation set (:func:`~emgeom.claims.filtering.sets.dissociation_set`) mixes EM-inducing rows (bad
advice in the domain), *decoys* that look as harmful to a reader of the answer but barely induce EM, and
good advice. Every detector removes the inducing share; precision and recall are against the truly
inducing rows (decoys count as false positives). The study itself runs with the half-inducing set
(:func:`~emgeom.claims.filtering.organisms.filtering_over_organisms`); this module reads and records it.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from emgeom.claims.filtering.detection import detection_summary, record_detection
from emgeom.claims.filtering.judges import GRADIENT, LIKELIHOOD, ORACLE, SPEAKER_PRIOR
from emgeom.claims.filtering.organisms import BEST_JUDGE, COMPARED, GEOMETRY, FilterStudy, compare
from emgeom.claims.filtering.sets import MAIN
from emgeom.core.results import record_estimate


def dissociation_names(study: FilterStudy) -> list[str]:
    """The study's dissociation sets (every set but the half-inducing one)."""
    return [name for name in study.sets if name != MAIN]


def dissociation_detection(study: FilterStudy, detection: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The dissociation sets' rows of ``detection`` (:func:`detection_by_set`), stacked under a ``set``
    index level."""
    return pd.concat({name: detection[name] for name in dissociation_names(study)}, names=["set"])


def detection_by_set(study: FilterStudy) -> dict[str, pd.DataFrame]:
    """:func:`~emgeom.claims.filtering.detection.detection_summary` of every set (the half-inducing one
    first): precision and recall of every detector with intervals over organisms."""
    return {name: detection_summary(study.detection(name)) for name in study.sets}


def record_dissociation(study: FilterStudy) -> None:
    """Record, per dissociation set: every detector's precision and recall (intervals over organisms);
    geometry's recall minus that of random removal, the best learned judge, the design-blind likelihood
    judge and the gradient (``dissociation_{set}_geometry_recall_minus_{label}``, paired by organism:
    the primary comparison the verdict decides on); each EM method's relative EM reduction and geometry's
    minus each other's (``dissociation_{set}_geometry_minus_{label}``, paired by seed inside each
    organism: secondary). ``n_seeds`` counts the organisms an interval is over."""
    for name in dissociation_names(study):
        n = len(study.results[name])
        best = study.best_judge[name]
        c = compare(study, name)
        record_detection(f"dissociation_{name}_", detection_summary(study.detection(name)), f"the {name} set")
        zero, runs = c.zero_em
        counted = f"{runs - zero} of {runs} unfiltered runs have EM > 0 (the others have nothing to reduce)"
        for label, e in c.recall.items():
            what = (
                f"{BEST_JUDGE} ({best}, highest mean recall over organisms)"
                if label == "judge"
                else COMPARED[label]
            )
            record_estimate(
                f"dissociation_{name}_geometry_recall_minus_{label}",
                e,
                f"geometry's recall minus that of {what} at the fixed removal, paired by organism",
            )
        for label, e in c.reduction.items():
            key = "best_judge" if label == "judge" else label
            record_estimate(
                f"dissociation_{name}_{key}_relative_reduction",
                e,
                f"1 - EM({label}) / EM(unfiltered); over {e.n} of {n} organisms; {counted}",
            )
        for label, e in c.em.items():
            what = f"{BEST_JUDGE} ({best})" if label == "judge" else COMPARED[label]
            record_estimate(
                f"dissociation_{name}_geometry_minus_{label}",
                e,
                f"geometry minus {what}, relative EM reduction, paired by seed; over {e.n} of {n} "
                f"organisms; {counted}",
            )


def describe_detection(study: FilterStudy, detection: Mapping[str, pd.DataFrame]) -> str:
    """One line per set, computed from the detection tables: the best recall, where geometry stands
    against the non-oracle detectors it is compared with, and the oracle's ceiling."""
    lines = []
    for name, table in detection.items():
        by = table.set_index("method")["recall"]
        top = str(by.drop([ORACLE, SPEAKER_PRIOR], errors="ignore").idxmax())
        geometry = study.detector(name, GEOMETRY)
        others = ", ".join(
            f"{study.detector(name, m)} {by[study.detector(name, m)]:.2f}"
            for m in (BEST_JUDGE, LIKELIHOOD, GRADIENT)
        )
        lines.append(
            f"{name}: geometry ({geometry}) recall {by[geometry]:.2f}; {others}; best design-blind "
            f"detector {top} ({by[top]:.2f}); oracle ceiling {by[ORACLE]:.2f}; design-aware {SPEAKER_PRIOR} "
            f"{by[SPEAKER_PRIOR]:.2f} (no verdict rests on it)."
        )
    return "\n".join(lines)
