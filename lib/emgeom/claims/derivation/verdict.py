"""The derivation claim's verdict rule: the first-order law in the toy models, and where it breaks."""

from __future__ import annotations

from emgeom.claims.verdicts import (
    Claim,
    Results,
    Verdict,
    fmt,
    recorded,
)


def derivation_verdict(r: Results) -> Verdict:
    e, ce = recorded(r, "first_order_pearson_r"), recorded(r, "ce_first_order_pearson_r")
    counter, flip = recorded(r, "counter_regime_pearson_r"), recorded(r, "sign_flip_steps_adam")
    rule = (
        "in these toy models the law is an algebraic consequence of the objective: with the target present "
        "in every row, a reward or cross-entropy step rescales the target's own column, so Δz_j ∝ W_jᵀW_t "
        "(the coefficient for cross-entropy is 2 − 2p_t). A measured r ≥ 0.9 for both objectives therefore "
        "says the derivation's algebra is right (holds by construction), not that fine-tuning behaves so; "
        "below 0.9 = not reproduced. Where the law breaks (a bounded target under Adam, and the step count "
        "at which its sign flips at equal settings) is what could have come out otherwise, and is shown"
    )
    if e is None:
        return Verdict("not recorded", "not run", rule)
    holds = [x for x in (e, ce) if x is not None and x["value"] >= 0.9]
    flip_text = "never in the sweep" if flip is None else f"after {flip['value']:.0f} steps"
    measured = (
        f"reward + SGD r = {fmt(e)}; cross-entropy + SGD r = {fmt(ce)}; bounded target + Adam r = "
        f"{fmt(counter)}, sign flips {flip_text} at equal learning rate"
    )
    verdict = "holds by construction" if len(holds) == 2 else "partly" if holds else "not reproduced"
    return Verdict(measured, verdict, rule)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "derivation",
        "A fine-tuning step that strengthens a target feature strengthens other features in proportion "
        "to their similarity (gradient derivation)",
        "{ref}`ch-gradient-derivation`",
        derivation_verdict,
        "by construction: the algebra of the toy objective",
        ("first_order_pearson_r",),
        "r",
    ),
)
