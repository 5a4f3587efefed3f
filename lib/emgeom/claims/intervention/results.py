"""Chapter 8's recorded results: every comparison of the blocking study over organisms, with its note.

Each estimate is paired by fine-tuning seed inside an organism, averaged over that organism's seeds, and
carries a t-interval over organisms (:mod:`emgeom.claims.intervention.study`)."""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from emgeom.claims.intervention.study import (
    DAMAGE_MATCHED,
    HARMFUL,
    NONE,
    RANDOM_DIRECTIONS,
    RANDOM_LATENTS,
    STEER,
    STEER_RANDOM,
    BlockingSettings,
    difference_over_organisms,
    mean_over_organisms,
    reduction_over_organisms,
    zero_baseline_organisms,
)
from emgeom.core.stats import Estimate

#: The task-kept measures each intervention is gated on: recorded name suffix -> (column, meaning).
GATES = {
    "task_change": ("task_success", "task success"),
    "heldout_loss_change": ("heldout_loss", "held-out loss of the set's kind (nats)"),
    "coherence_change": ("open_coherent", "coherent open answers"),
}


def blocking_results(
    table: pd.DataFrame,
    diagnostics: pd.DataFrame,
    inducing: str,
    settings: BlockingSettings,
    n_organisms: int,
) -> dict[str, tuple[Estimate, str]]:
    """Recorded name -> (estimate over organisms, note) for the inducing set ``inducing``: relative EM
    reductions of every condition, the paired EM differences (the claims' primaries), the task-kept
    gates under harmful ablation and harmful steering, and the base-loss increase (damage) of the harmful
    ablation and of both random-latent controls (``diagnostics``: the conditions' diagnostics table)."""

    def reduction(condition: str) -> Estimate:
        return reduction_over_organisms(table, condition, inducing)

    def versus(condition: str, other: str, column: str = "open_em") -> Estimate:
        return difference_over_organisms(table, condition, other, inducing, column)

    ablation = reduction(HARMFUL)
    counted = f"{ablation.n} of {n_organisms} organisms have EM > 0 without intervention and count"
    s = settings
    out = {
        "preventative_ablation_relative_reduction": (
            ablation,
            f"1 - EM(ablate harmful) / EM(none), inducing {s.domain}; {counted}",
        ),
        "random_ablation_relative_reduction": (
            reduction(DAMAGE_MATCHED),
            "the same with damage-matched random latents",
        ),
        "energy_matched_ablation_relative_reduction": (
            reduction(RANDOM_LATENTS),
            "the same with energy-matched random latents",
        ),
        "random_direction_ablation_relative_reduction": (
            reduction(RANDOM_DIRECTIONS),
            "the same with random unit vectors",
        ),
        "preventative_steering_relative_reduction": (
            reduction(STEER),
            f"steering along the mean harmful direction at {s.steer_scale} x the residual norm",
        ),
        "random_steering_relative_reduction": (
            reduction(STEER_RANDOM),
            "steering along a random unit vector, same strength",
        ),
        "preventative_ablation_minus_random": (
            versus(DAMAGE_MATCHED, HARMFUL),
            "EM(ablate damage-matched random latents) - EM(ablate harmful), paired by seed",
        ),
        "preventative_ablation_minus_energy_matched": (
            versus(RANDOM_LATENTS, HARMFUL),
            "EM(ablate energy-matched random latents) - EM(ablate harmful), paired by seed "
            "(secondary control)",
        ),
        "preventative_steering_minus_random": (
            versus(STEER_RANDOM, STEER),
            "EM(steer random) - EM(steer harmful), paired by seed",
        ),
        "preventative_ablation_task_success": (
            mean_over_organisms(table, HARMFUL, inducing, "task_success", bounds=(0, 1)),
            "task success of the inducing fine-tune under harmful ablation",
        ),
    }
    for kind, prefix in ((HARMFUL, "preventative_ablation"), (STEER, "preventative_steering")):
        for suffix, (column, meaning) in GATES.items():
            out[f"{prefix}_{suffix}"] = (
                versus(kind, NONE, column),
                f"{meaning}, {kind} minus none, paired by seed",
            )
    for name, condition, note in (
        (
            "harmful_ablation_base_loss_increase",
            HARMFUL,
            f"base model's loss on {s.damage_rows} inducing rows with the harmful ablation on minus "
            "without (nats)",
        ),
        (
            "random_ablation_base_loss_increase",
            DAMAGE_MATCHED,
            f"the same for the damage-matched control, chosen among {s.damage_candidates} candidates "
            "per seed",
        ),
        (
            "energy_matched_ablation_base_loss_increase",
            RANDOM_LATENTS,
            "the same for the energy-matched control",
        ),
    ):
        out[name] = (mean_over_organisms(diagnostics, condition, None, "base loss increase"), note)
    return out


def record_blocking(results: Mapping[str, tuple[Estimate, str]], over: str) -> None:
    """Record every result of :func:`blocking_results`; ``over`` says what the intervals are over."""
    from emgeom.core.results import record_estimate

    for name, (e, note) in results.items():
        record_estimate(name, e, f"{note}; {over}")


def blocking_summary(results: Mapping[str, tuple[Estimate, str]], table: pd.DataFrame, inducing: str) -> str:
    """The chapter's printed summary of :func:`blocking_results`."""
    e = {name: est for name, (est, _) in results.items()}
    zero = zero_baseline_organisms(table, inducing)
    return (
        f"relative EM reduction: ablate harmful {e['preventative_ablation_relative_reduction']}, "
        f"damage-matched random latents {e['random_ablation_relative_reduction']}, energy-matched random "
        f"latents {e['energy_matched_ablation_relative_reduction']}, random directions "
        f"{e['random_direction_ablation_relative_reduction']}; steering harmful "
        f"{e['preventative_steering_relative_reduction']}, random "
        f"{e['random_steering_relative_reduction']}.\n"
        f"EM(damage-matched) - EM(harmful) {e['preventative_ablation_minus_random']}; EM(energy-matched) - "
        f"EM(harmful) {e['preventative_ablation_minus_energy_matched']}; EM(steer random) - "
        f"EM(steer harmful) "
        f"{e['preventative_steering_minus_random']}.\n"
        f"Base-loss increase: harmful {e['harmful_ablation_base_loss_increase']}, damage-matched "
        f"{e['random_ablation_base_loss_increase']}, energy-matched "
        f"{e['energy_matched_ablation_base_loss_increase']}.\n"
        f"Under harmful ablation: task change {e['preventative_ablation_task_change']}, held-out loss change "
        f"{e['preventative_ablation_heldout_loss_change']}, coherence change "
        f"{e['preventative_ablation_coherence_change']}. Under harmful steering: task change "
        f"{e['preventative_steering_task_change']}, held-out loss change "
        f"{e['preventative_steering_heldout_loss_change']}, coherence change "
        f"{e['preventative_steering_coherence_change']}.\n"
        f"Organisms with no EM without intervention: {zero or 'none'}."
    )
