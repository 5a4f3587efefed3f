"""The filtering claims' verdict rules: EM reduction by geometry-aware filtering, against random removal and
against judges."""

from __future__ import annotations

from collections.abc import Callable

from emgeom.claims.verdicts import (
    THREE,
    Claim,
    Results,
    Verdict,
    combine,
    decide,
    fmt,
    missing,
    recorded,
    single_verdict,
    weakest,
)


def reduction_verdict(r: Results) -> Verdict:
    e = recorded(r, "geometry_filter_relative_reduction")
    rule = "relative EM reduction of geometry filtering vs unfiltered: " + THREE + " (the paper: 34.5%)"
    if e is None:
        return Verdict("not recorded", "not run", rule)
    return single_verdict(e, f"{fmt(e, pct=True)} (paper: 34.5%)", rule)


def versus_verdict(name: str, other: str) -> Callable[[Results], Verdict]:
    def judge(r: Results) -> Verdict:
        e = recorded(r, name)
        rule = f"geometry minus {other} relative reduction: " + THREE
        if e is None:
            return Verdict("not recorded", "not run", rule)
        return single_verdict(
            e, f"{fmt(e, pct=True)} (difference in relative reduction, percentage points)", rule
        )

    return judge


DISSOCIATION_SUFFIX = "_geometry_minus_oracle"


def beats_judge_verdict(r: Results) -> Verdict:
    sets = [
        n[len("dissociation_") : -len(DISSOCIATION_SUFFIX)]
        for n in r
        if n.startswith("dissociation_") and n.endswith(DISSOCIATION_SUFFIX)
    ]
    if not sets:  # no dissociation sets (the real-model variant): the judge on the chapter's own set
        v = versus_verdict("filter_vs_judge_difference", "judge")(r)
        return Verdict(
            v.measured + " (on the chapter's own set: no dissociation sets in this build)",
            v.verdict,
            v.rule,
            v.decision,
        )
    rule = (
        "on the dissociation sets (inducing rows among decoys that look as harmful to a reader of the "
        "answer): geometry's relative EM reduction minus that of each judge (the oracle, the best learned "
        "judge, the label-free likelihood judge), paired by seed, interval over organisms, each decided "
        "three ways (above 0 = reproduced, within ±SESOI = absent, below 0 = contradicted, else "
        "inconclusive); every comparison reproduced = reproduced, every one absent = absent, all decided "
        "but some each way = mixed, any undecided = inconclusive"
    )
    judges = {"oracle": "oracle", "judge": "best learned judge", "likelihood": "likelihood judge"}
    parts, decisions = [], []
    for name in sets:
        texts = []
        for key, label in judges.items():
            e = recorded(r, f"dissociation_{name}_geometry_minus_{key}")
            if e is None:
                texts.append(f"minus {label} not recorded")
                decisions.append(missing(f"{name} minus {label}"))
                continue
            d = decide(e)
            decisions.append(d)
            texts.append(f"minus {label} {fmt(e, pct=True)} {d.verdict}")
        parts.append(f"{name}: " + ", ".join(texts))
    return Verdict("; ".join(parts) + " (percentage points)", combine(decisions), rule, weakest(decisions))


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "filter_reduces_em",
        "Removing the samples closest to harmful features reduces misalignment (by 34.5%)",
        "{ref}`ch-geometry-filtering`",
        reduction_verdict,
        "measured, on a set separable by design (bad and good advice use different words)",
        ("geometry_filter_relative_reduction",),
        "share of EM removed",
        0.345,
    ),
    Claim(
        "filter_beats_random",
        "... more than removing random samples",
        "{ref}`ch-geometry-filtering`",
        versus_verdict("filter_vs_random_difference", "random"),
        "follows from detection on a set separable by design",
        ("filter_vs_random_difference",),
        "difference in share removed",
    ),
    Claim(
        "filter_beats_judge",
        "... more than LLM-as-a-judge filtering",
        "{ref}`ch-geometry-filtering`",
        beats_judge_verdict,
        "measured, on dissociation sets built so that the answer's words do not tell inducing rows from "
        "decoys",
        (f"dissociation_{{set}}{DISSOCIATION_SUFFIX}",),
        "geometry minus oracle, share removed",
    ),
)
