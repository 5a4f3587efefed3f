"""Every claim's verdict follows its rule on planted numbers: three-way decisions over organisms against
the declared smallest effect of interest, with gates."""

from __future__ import annotations

import pytest

from emgeom.book.pages.scorecard import CLAIMS

JUDGE = {c.id: c.judge for c in CLAIMS}


def entry(
    value: float, ci: tuple[float, float] | None = None, sesoi: float = 0.1, replicates: str = "organisms"
) -> dict:
    """A recorded result as the scorecard hands it to a verdict: with its declared SESOI and replicates."""
    return {
        "value": value,
        "ci": list(ci) if ci else None,
        "n_seeds": 3,
        "note": "",
        "sesoi": sesoi,
        "replicates": replicates,
    }


@pytest.mark.parametrize(
    ("reward", "ce", "verdict"),
    [(0.99, 0.95, "holds by construction"), (0.99, 0.5, "partly"), (0.5, None, "not reproduced")],
)
def test_derivation_scores_the_multi_step_results(reward, ce, verdict) -> None:
    results = {"first_order_pearson_r": entry(reward), "counter_regime_pearson_r": entry(-0.9)}
    if ce is not None:
        results["ce_first_order_pearson_r"] = entry(ce)
    v = JUDGE["derivation"](results)
    assert v.verdict == verdict
    assert "sign flips never in the sweep" in v.measured
    results["sign_flip_steps_adam"] = entry(30.0)
    assert "sign flips after 30 steps" in JUDGE["derivation"](results).measured


FIRST_ORDER = {"mechanism_lr_linearity_ratio": entry(1.98), "mechanism_lr_direction_cosine": entry(0.999)}
STRONG = {
    "mechanism_decoder_projection_r_partial": entry(0.5),
    "mechanism_shift_alignment": entry(0.3),
    "mechanism_specificity_r_inducing_minus_good": entry(0.3, (0.1, 0.5)),
}


@pytest.mark.parametrize(
    ("r", "ci", "extra", "domains", "verdict"),
    [
        (0.6, (0.5, 0.7), FIRST_ORDER | STRONG, {}, "reproduced"),
        (0.6, (0.5, 0.7), STRONG, {}, "inconclusive"),  # not shown to be first order
        (
            0.6,
            (0.5, 0.7),
            FIRST_ORDER | STRONG | {"mechanism_lr_linearity_ratio": entry(1.3)},
            {},
            "inconclusive",
        ),
        (0.6, (0.5, 0.7), FIRST_ORDER, {}, "inconclusive"),  # no specificity, partial r or alignment
        (0.6, (0.42, 0.7), FIRST_ORDER | STRONG, {}, "inconclusive"),  # reaches the null's upper bound
        (0.2, (0.1, 0.3), FIRST_ORDER | STRONG, {"health": 0.5, "code": 0.1}, "inconclusive"),  # below null
        (0.02, (-0.05, 0.08), FIRST_ORDER | STRONG, {"health": 0.0, "code": 0.1}, "absent"),  # within ±0.1
        (-0.3, (-0.4, -0.2), FIRST_ORDER | STRONG, {"health": -0.3}, "contradicted"),
        (0.05, (-0.2, 0.3), FIRST_ORDER | STRONG, {}, "inconclusive"),  # spans 0 and the SESOI
    ],
)
def test_mechanism_is_judged_against_the_matched_null(r, ci, extra, domains, verdict) -> None:
    results = {
        "mechanism_decoder_projection_r": entry(r, ci),
        "mechanism_null_r_p95": entry(0.4, (0.35, 0.45)),
        "mechanism_decoder_projection_r_hostile": entry(0.9),  # not a domain
        **extra,
        **{f"mechanism_decoder_projection_r_{d}": entry(x) for d, x in domains.items()},
    }
    v = JUDGE["mechanism"](results)
    assert v.verdict == verdict
    assert f"/{len(domains)} domains" in v.measured


@pytest.mark.parametrize(
    ("projection_r", "old_r", "verdict"),
    [
        ((0.0, (-0.05, 0.05)), (0.9, (0.8, 1.0)), "absent"),  # a strong old read-out cannot rescue it
        ((0.6, (0.5, 0.7)), (-0.9, (-1.0, -0.8)), "reproduced"),  # nor a weak one sink it
    ],
)
def test_the_old_answer_start_readout_no_longer_decides_the_mechanism(projection_r, old_r, verdict) -> None:
    # chapter 5 records both: the verdict follows the decoder-projection r the judge reads
    results = {
        "mechanism_decoder_projection_r": entry(*projection_r),
        "mechanism_null_r_p95": entry(0.4, (0.35, 0.45)),
        "mechanism_pearson_r": entry(*old_r),
        **FIRST_ORDER,
        **STRONG,
    }
    v = JUDGE["mechanism"](results)
    assert v.verdict == verdict
    assert v.measured.startswith(f"r = {projection_r[0]:.3f} ")


KEPT = {
    "preventative_ablation_task_change": entry(-0.02, (-0.05, 0.01)),
    "preventative_ablation_heldout_loss_change": entry(0.01, (-0.02, 0.04)),
    "preventative_ablation_coherence_change": entry(0.0, (-0.03, 0.03)),
    "harmful_ablation_base_loss_increase": entry(0.10, (0.08, 0.12)),
    "random_ablation_base_loss_increase": entry(0.095, (0.08, 0.11)),  # within 10% of the harmful one
}


@pytest.mark.parametrize(
    ("diff", "harmful", "extra", "verdict"),
    [
        (entry(0.2, (0.1, 0.3)), entry(0.5, (0.3, 0.7)), KEPT, "reproduced"),
        (
            entry(0.2, (0.1, 0.3)),
            entry(-0.1, (-0.3, 0.1)),
            KEPT,
            "inconclusive",
        ),  # harmful itself does not reduce EM
        (
            entry(0.2, (0.1, 0.3)),
            entry(0.5, (0.3, 0.7)),
            KEPT | {"preventative_ablation_task_change": entry(-0.4, (-0.6, -0.2))},
            "inconclusive",  # the task was lost
        ),
        (
            entry(0.2, (0.1, 0.3)),
            entry(0.5, (0.3, 0.7)),
            KEPT | {"preventative_ablation_coherence_change": entry(-0.3, (-0.5, -0.1))},
            "inconclusive",  # EM "fell" because the model stopped making sense
        ),
        (
            entry(0.2, (0.1, 0.3)),
            entry(0.5, (0.3, 0.7)),
            KEPT | {"random_ablation_base_loss_increase": entry(0.05, (0.04, 0.06))},
            "inconclusive",  # the control was the gentler ablation: damage alone could explain it
        ),
        (entry(0.05, (-0.1, 0.2)), entry(0.5, (0.3, 0.7)), KEPT, "inconclusive"),
        (entry(-0.05, (-0.2, 0.1)), entry(0.5, (0.3, 0.7)), KEPT, "inconclusive"),
        (entry(-0.2, (-0.3, -0.1)), entry(0.5, (0.3, 0.7)), KEPT, "contradicted"),
        (entry(0.0, (-0.04, 0.04), sesoi=0.05), entry(0.5, (0.3, 0.7)), KEPT, "absent"),
        # seeds of one organism never decide, whatever their interval
        (
            entry(0.2, (0.1, 0.3), replicates="seeds of one organism"),
            entry(0.5, (0.3, 0.7)),
            KEPT,
            "inconclusive",
        ),
    ],
)
def test_blocking_needs_the_random_control_beaten_and_the_task_kept(diff, harmful, extra, verdict) -> None:
    results = {
        "preventative_ablation_minus_random": diff,
        "preventative_ablation_relative_reduction": harmful,
        **extra,
    }
    assert JUDGE["blocking_prevents_em"](results).verdict == verdict


def test_the_damage_gate_compares_damage_whatever_its_sign() -> None:
    from emgeom.claims.intervention.verdict import damage_matched

    assert damage_matched(entry(0.10), entry(0.095)) and not damage_matched(entry(0.10), entry(0.05))
    # ablating the harmful directions lowered the base loss by 0.030: a control that lowers it by 0.028
    # does at least as much damage, one that lowers it by 0.05 is the gentler ablation
    assert damage_matched(entry(-0.030), entry(-0.028)) and not damage_matched(entry(-0.030), entry(-0.05))
    assert not damage_matched(None, entry(0.1))


def test_blocking_is_not_judged_without_its_task_measures() -> None:
    results = {"preventative_ablation_minus_random": entry(0.2, (0.1, 0.3))}
    assert JUDGE["blocking_prevents_em"](results).verdict == "not run"


def gap_results(
    lo: float = 0.05,
    hi: float = 0.35,
    rowperm: float = 0.001,
    domains=("health", "career", "legal"),
    target: float = 0.001,
) -> dict:
    out = {}
    for d in domains:
        out[f"similarity_gap_excl_shared_{d}"] = entry(0.2, (lo, hi), sesoi=0.05)
        out[f"similarity_gap_{d}"] = entry(
            0.5, (0.3, 0.7), sesoi=0.05
        )  # with shared latents: must not decide
        out[f"similarity_gap_rowperm_pvalue_{d}"] = entry(rowperm)  # a sign test: must not decide
        out[f"similarity_gap_excl_shared_target_pvalue_{d}"] = entry(target)
        out[f"similarity_gap_target_pvalue_{d}"] = entry(0.001)  # with shared latents: must not decide
        out[f"similarity_gap_pvalue_{d}"] = entry(0.0002)  # the latent-label test: must not decide
    return out


@pytest.mark.parametrize(
    ("lo", "hi", "verdict"),
    [
        (0.05, 0.35, "reproduced"),
        (-0.1, 0.35, "inconclusive"),  # the interval over organisms covers 0
        (-0.03, 0.04, "absent"),
        (-0.4, -0.1, "contradicted"),
    ],
)
def test_the_geometry_verdict_is_the_gap_without_shared_latents_over_organisms(lo, hi, verdict) -> None:
    v = JUDGE["geometry_paper_domains"](gap_results(lo, hi))
    assert v.verdict == verdict
    # the row permutation decides nothing: a p of 0.9 leaves the verdict as it was
    assert JUDGE["geometry_paper_domains"](gap_results(lo, hi, rowperm=0.9)).verdict == verdict
    # a random target set as close as the harmful one: the closeness is not to harmful features
    gated = JUDGE["geometry_paper_domains"](gap_results(lo, hi, target=0.4)).verdict
    assert gated == ("inconclusive" if verdict == "reproduced" else verdict)
    assert "organisms" in v.rule and "shared" in v.rule


def test_the_gap_with_shared_latents_does_not_rescue_an_absent_neighbourhood() -> None:
    r = gap_results(-0.03, 0.04)
    for d in ("health", "career", "legal"):
        r[f"similarity_gap_{d}"] = entry(0.4, (0.3, 0.5), sesoi=0.05)
        r[f"shared_latents_inducing_{d}"] = entry(4.0)
        r[f"shared_latents_inducing_expected_{d}"] = entry(0.5)
    v = JUDGE["geometry_paper_domains"](r)
    assert v.verdict == "absent" and "4.00 per SAE vs 0.50 expected" in v.measured


def test_a_decided_mix_of_domains_is_mixed() -> None:
    mixed = gap_results() | {k: v for k, v in gap_results(-0.03, 0.04, domains=("legal",)).items()}
    v = JUDGE["geometry_paper_domains"](mixed)
    assert v.verdict == "mixed" and "legal" in v.measured


@pytest.mark.parametrize(
    ("judge", "gradient", "verdict"),
    [
        ((0.2, (0.05, 0.35)), (0.3, (0.1, 0.5)), "reproduced"),
        ((-0.1, (-0.3, 0.1)), (0.3, (0.1, 0.5)), "inconclusive"),
        ((0.0, (-0.05, 0.05)), (0.3, (0.1, 0.5)), "mixed"),  # absent against the judge, beats the rest
        ((0.0, (-0.05, 0.05)), (0.01, (-0.05, 0.06)), "absent"),
        ((-0.3, (-0.4, -0.2)), (-0.3, (-0.5, -0.1)), "contradicted"),
    ],
)
def test_beating_the_judge_is_judged_on_the_dissociation_sets(judge, gradient, verdict) -> None:
    r = {"filter_vs_judge_difference": entry(0.9, (0.8, 1.0))}  # the easy set: must not decide
    for name in ("bad_code", "quiz"):
        r[f"dissociation_{name}_geometry_recall_minus_judge"] = entry(*judge)
        r[f"dissociation_{name}_geometry_recall_minus_likelihood"] = entry(*gradient)
        r[f"dissociation_{name}_geometry_recall_minus_gradient"] = entry(*gradient)
        r[f"dissociation_{name}_geometry_minus_oracle"] = entry(-0.9, (-1.0, -0.8))  # the ceiling: no part
    v = JUDGE["filter_beats_judge"](r)
    assert v.verdict == verdict and "bad_code" in v.measured and "quiz" in v.measured


def test_without_dissociation_sets_the_judge_row_says_which_set_it_used() -> None:
    v = JUDGE["filter_beats_judge"]({"filter_vs_judge_difference": entry(0.3, (0.1, 0.5))})
    assert v.verdict == "reproduced" and "no dissociation sets" in v.measured
