"""The mechanism claims' verdict rules: the fine-tune's decoder projections against the target's cosine, and
similarity against EM."""

from __future__ import annotations

from emgeom.claims.verdicts import (
    THREE,
    Claim,
    Results,
    Verdict,
    decide,
    fmt,
    lower,
    recorded,
    single_verdict,
    upper,
)


def mechanism_verdict(r: Results) -> Verdict:
    e, null = recorded(r, "mechanism_decoder_projection_r"), recorded(r, "mechanism_null_r_p95")
    partial = recorded(r, "mechanism_decoder_projection_r_partial")
    align = recorded(r, "mechanism_shift_alignment")
    specific = recorded(r, "mechanism_specificity_r_inducing_minus_good")
    ratio, turn = recorded(r, "mechanism_lr_linearity_ratio"), recorded(r, "mechanism_lr_direction_cosine")
    rule = (
        "the correlation, over alive latents, between each latent's decoder-projection change and its "
        "cosine with the target (first-order fine-tune read on tokens of the fine-tuning set's kind), its "
        "interval over organisms: reproduced when it lies above 0 and the gates hold (the fine-tune is "
        "first order: learning-rate ratio in [1.8, 2.2] and direction cosine ≥ 0.95; the interval lies "
        "above the activation-matched null's 95th percentile; the partial r, base projection removed, and "
        "the shift's alignment with the target are positive; it is larger after the inducing than after "
        "the good-advice fine-tune, interval above 0); absent when it lies within ±SESOI; contradicted "
        "below 0; else inconclusive. Measured on the residual's decoder projections, not on SAE activations"
    )
    if e is None or null is None:
        return Verdict("not recorded", "not run", rule)
    first_order = (
        ratio is not None and 1.8 <= ratio["value"] <= 2.2 and turn is not None and turn["value"] >= 0.95
    )
    prefix = "mechanism_decoder_projection_r_"
    skip = ("hostile", "gradient_target", "partial")
    per = {
        name[len(prefix) :]: x
        for name in r
        if name.startswith(prefix) and name[len(prefix) :] not in skip
        for x in [recorded(r, name)]
        if x is not None
    }
    above = [d for d, x in per.items() if x["value"] > null["value"]]
    decision = decide(
        e,
        [
            ("first order", first_order),
            ("above the matched null", lower(e) > upper(null)),
            ("partial r > 0", partial is not None and partial["value"] > 0),
            ("alignment > 0", align is not None and align["value"] > 0),
            ("inducing above good advice", specific is not None and lower(specific) > 0),
        ],
    )
    measured = (
        f"r = {fmt(e)} vs matched-null 95th percentile {fmt(null)}; partial r {fmt(partial)}; alignment "
        f"{fmt(align)}; inducing minus good {fmt(specific)}; above the null in {len(above)}/{len(per)} "
        f"domains ({', '.join(above) or 'none'}); learning-rate ratio {fmt(ratio)}, direction cosine "
        f"{fmt(turn)} ({'first order' if first_order else 'not shown to be first order'})"
        + (f"; {decision.why}" if decision.why else "")
    )
    return Verdict(measured, decision.verdict, rule, decision)


def similarity_em_verdict(r: Results) -> Verdict:
    e = recorded(r, "similarity_vs_em_spearman")
    loso = recorded(r, "similarity_vs_em_spearman_loso_min")
    pearson = recorded(r, "similarity_vs_em_pearson_r")
    rule = (
        "Spearman's rho between a set's similarity to harmful features and its EM rate, over fine-tuning "
        "sets within each organism, interval over organisms, one-sided (positive) as declared: "
        + THREE
        + "; gate: leaving any one set out, the smallest rho left has its interval above 0 (no single set "
        "carries it). The sets' order is designed by the corpus's coupling (the honest-mistake rates): a "
        "positive rho says the model kept the designed order"
    )
    if e is None:
        return Verdict("not recorded", "not run", rule)
    gates = [("leave-one-set-out rho above 0", loso is not None and lower(loso) > 0)]
    return single_verdict(
        e,
        f"rho = {fmt(e)}; leave-one-set-out minimum {fmt(loso)}; Pearson r {fmt(pearson)} (one point per "
        "fine-tuning set; the order is designed)",
        rule,
        gates,
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "mechanism",
        "Fine-tuning amplifies the features nearest the target (mechanism, measured as the residual's "
        "projection on SAE decoder directions)",
        "{ref}`ch-finetuning-mechanism`",
        mechanism_verdict,
        "emergent: nothing in the corpus or the training code sets how a fine-tune moves decoder projections",
        ("mechanism_decoder_projection_r",),
        "r",
    ),
    Claim(
        "similarity_predicts_em",
        "Data whose features are closer to harmful ones cause more misalignment",
        "{ref}`ch-finetuning-mechanism`",
        similarity_em_verdict,
        "order designed, link emergent: the designed coupling orders the sets; EM and similarity are "
        "measured",
        ("similarity_vs_em_spearman",),
        "rho",
    ),
)
