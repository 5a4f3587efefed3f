"""The geometry claims' verdict rule: per domain, the gap between inducing and non-inducing features'
closeness to harmful features, its data-level nulls and its interval over organisms."""

from __future__ import annotations

from collections.abc import Callable

from emgeom.claims.verdicts import (
    ALPHA,
    Claim,
    Results,
    Verdict,
    combine,
    decide,
    fmt,
    missing,
    recorded,
    weakest,
)
from emgeom.core.stats import holm

#: The paper's domains (a fact about the paper); the build's own domains are read from its results.
PAPER_DOMAINS = ("health", "career", "legal")
ROWPERM_PREFIX = "similarity_gap_rowperm_pvalue_"


def recorded_domains(r: Results) -> tuple[str, ...]:
    """The domains whose geometry this build recorded (in recording order)."""
    return tuple(name[len(ROWPERM_PREFIX) :] for name in r if name.startswith(ROWPERM_PREFIX))


def gap_verdict(paper_only: bool) -> Callable[[Results], Verdict]:
    def judge(r: Results) -> Verdict:
        domains = recorded_domains(r)
        domains = tuple(d for d in PAPER_DOMAINS if d in domains) if paper_only else domains
        rule = (
            "per domain, the gap's interval over organisms: reproduced when it lies above 0 and its "
            "row-permutation p (rows permuted between the inducing and non-inducing set, selection redone) "
            "and random-target p (the harmful set replaced by frequency-matched random latents) are each "
            f"below {ALPHA} after Holm adjustment over these domains; absent when it lies within ±SESOI; "
            "contradicted when below 0; else inconclusive. The claim: every domain reproduced = reproduced, "
            "every domain absent = absent, all decided but some each way = mixed, any undecided = "
            "inconclusive. Shared latents excluded reported beside"
        )

        found = {}
        for d in domains:
            gap, rows, target = (
                recorded(r, f"similarity_gap_{d}"),
                recorded(r, f"similarity_gap_rowperm_pvalue_{d}"),
                recorded(r, f"similarity_gap_target_pvalue_{d}"),
            )
            if gap is not None and rows is not None:
                found[d] = (gap, rows, target)
        if not found:
            return Verdict("not recorded", "not run", rule)
        absent_parts = [missing(f"{d}'s gap or row test") for d in domains if d not in found]
        rows_holm = holm({d: p["value"] for d, (_, p, _) in found.items()})
        target_holm = holm({d: t["value"] if t else float("nan") for d, (_, _, t) in found.items()})
        decisions, sig_excl, parts = [], [], []
        for d, (gap, _, _) in found.items():
            excl = recorded(r, f"similarity_gap_excl_shared_{d}")
            decision = decide(
                gap,
                [
                    ("row-permutation p (Holm)", rows_holm[d] < ALPHA),
                    ("random-target p (Holm)", target_holm[d] < ALPHA),
                ],
            )
            decisions.append(decision)
            if excl is not None and excl["value"] > 0 and (excl.get("ci") or [0])[0] > 0:
                sig_excl.append(d)
            parts.append(
                f"{d} {fmt(gap)}: {decision.verdict}"
                + (f" ({decision.why})" if decision.why else "")
                + f" (Holm p: rows {rows_holm[d]:.2g}, random target {target_holm[d]:.2g}; "
                f"n={gap.get('n_seeds')}; without shared latents {fmt(excl)})"
            )
        decisions += absent_parts
        parts += [f"{d}: not recorded" for d in domains if d not in found]
        verdict = combine(decisions)
        measured = "; ".join(parts) + f". Without shared latents, CI above 0: {len(sig_excl)}/{len(domains)}."
        return Verdict(measured, verdict, rule, weakest(decisions))

    return judge


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "geometry_paper_domains",
        "Features of EM-inducing data are closer to harmful features than those of non-inducing data, "
        "in health, career and legal",
        "{ref}`ch-sae-geometry`",
        gap_verdict(paper_only=True),
        "link designed, geometry emergent: the corpus makes each domain's bad advice evidence of the toxic "
        "persona; whether the model and its SAE turn that into decoder geometry is written nowhere",
        tuple(f"similarity_gap_{d}" for d in PAPER_DOMAINS),
        "cosine gap",
    ),
    Claim(
        "geometry_all_domains",
        "The closeness generalises across domains",
        "{ref}`ch-sae-geometry`",
        gap_verdict(paper_only=False),
        "link designed (its strength per domain), geometry emergent",
    ),
)
