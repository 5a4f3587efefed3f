"""The geometry claims' verdict rule: per domain, the gap between inducing and non-inducing features'
closeness to harmful features without the latents they share with the harmful set (neighbourhood, the
paper's superposition account; not identity), decided by its interval over organisms."""

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
from emgeom.organism import language

#: The paper's domains (a fact about the paper); the build's own domains are read from its results.
PAPER_DOMAINS = ("health", "career", "legal")
PRIMARY_PREFIX = "similarity_gap_excl_shared_"
TARGET_PREFIX = "similarity_gap_excl_shared_target_pvalue_"
#: Domains the organism's corpus builds as controls, not as EM-inducing domains (the surface domain of
#: "superposition or persona?"): shown, but not part of "across domains".
CONTROL_DOMAINS = language.CONTROL_DOMAINS


def recorded_domains(r: Results) -> tuple[str, ...]:
    """The domains whose geometry this build recorded (in recording order)."""
    return tuple(name[len(PRIMARY_PREFIX) :] for name in r if name.startswith(PRIMARY_PREFIX))


def _overlap(r: Results, d: str) -> str:
    seen, expected = (
        recorded(r, f"shared_latents_inducing_{d}"),
        recorded(r, f"shared_latents_inducing_expected_{d}"),
    )
    if seen is None or expected is None:
        return "shared latents not recorded"
    return f"shared latents {seen['value']:.2f} per SAE vs {expected['value']:.2f} expected"


def gap_verdict(paper_only: bool) -> Callable[[Results], Verdict]:
    def judge(r: Results) -> Verdict:
        domains = recorded_domains(r)
        domains = (
            tuple(d for d in PAPER_DOMAINS if d in domains)
            if paper_only
            else tuple(d for d in domains if d not in CONTROL_DOMAINS)
        )
        rule = (
            "per domain, the gap WITHOUT latents shared with the harmful set (decoder geometry, not "
            "identity: a shared latent has closeness 1 to itself), interval over organisms, one-sided in "
            "the paper's direction as declared before the data (inducing closer: reproduced when the "
            "interval's lower edge is above 0); absent when the interval lies within ±SESOI; contradicted "
            "when its upper edge is below 0; else inconclusive. The claim: every domain reproduced = "
            "reproduced, every domain absent = absent, all decided but some each way = mixed, any "
            "undecided = inconclusive. Gate: the random-target p of that gap (the harmful set replaced by "
            f"frequency-matched random latent sets) below {ALPHA} after Holm over the claim's domains: the "
            "closeness must be to the harmful set, not to any set of latents that fire as often. Beside "
            "it, not deciding: the gap with shared latents and the shared latents against their "
            "frequency-matched expectation. The "
            "row-permutation p decides nothing: two mixtures of the same rows select the same latents, so "
            "it acts as a sign test"
        )
        found = {d: e for d in domains if (e := recorded(r, f"{PRIMARY_PREFIX}{d}")) is not None}
        if not found:
            return Verdict("not recorded", "not run", rule)
        target_holm = holm(
            {d: t["value"] if (t := recorded(r, f"{TARGET_PREFIX}{d}")) else float("nan") for d in found}
        )
        decisions, parts = [], []
        for d, excl in found.items():
            decision = decide(excl, [("random-target p (Holm)", target_holm[d] < ALPHA)])
            decisions.append(decision)
            parts.append(
                f"{d} {fmt(excl)}: {decision.verdict}"
                + (f" ({decision.why})" if decision.why else "")
                + f" (with shared latents {fmt(recorded(r, f'similarity_gap_{d}'))}; {_overlap(r, d)}; "
                f"random-target p (Holm) {target_holm[d]:.2g}; n={excl.get('n_seeds')})"
            )
        decisions += [missing(f"{d}'s gap without shared latents") for d in domains if d not in found]
        parts += [f"{d}: not recorded" for d in domains if d not in found]
        return Verdict("; ".join(parts) + ".", combine(decisions), rule, weakest(decisions))

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
        tuple(f"{PRIMARY_PREFIX}{d}" for d in PAPER_DOMAINS),
        "cosine gap, shared latents excluded",
    ),
    Claim(
        "geometry_all_domains",
        "The closeness generalises across domains",
        "{ref}`ch-sae-geometry`",
        gap_verdict(paper_only=False),
        "link designed (its strength per domain), geometry emergent",
    ),
)
