"""The intervention claims' verdict rules (beyond the paper): ablating the harmful directions during
fine-tuning against a damage-matched random-latent control, and steering along the mean harmful
direction against steering along a random one. Both are paired by fine-tuning seed within an organism
and decided over organisms, with the same gates: the harmful intervention itself lowers EM, and the task
is kept (task success, held-out loss and coherence within a margin of the unintervened fine-tune)."""

from __future__ import annotations

from typing import Any

from emgeom.claims.verdicts import (
    Claim,
    Results,
    Verdict,
    fmt,
    lower,
    recorded,
    single_verdict,
    upper,
)

NON_INFERIORITY = 0.1


def task_kept(task: dict[str, Any] | None, loss: dict[str, Any], coherence: dict[str, Any]) -> bool:
    """Task success and coherence not lower, held-out loss not higher, than without intervention by more
    than :data:`NON_INFERIORITY` at the interval's edge (task success may be missing)."""
    return (
        (task is None or lower(task) >= -NON_INFERIORITY)
        and upper(loss) <= NON_INFERIORITY
        and lower(coherence) >= -NON_INFERIORITY
    )


def _rule(primary: str, reduction: str) -> str:
    return (
        f"{primary}, paired by seed within an organism: reproduced when its interval over organisms lies "
        f"above 0 and the gates hold ({reduction} above 0; the task kept: task success and coherence not "
        f"lower, held-out loss not higher, than without intervention by more than {NON_INFERIORITY} at "
        "the interval's edge); absent within ±SESOI; contradicted below 0; else inconclusive"
    )


def _task_text(task: dict[str, Any] | None, loss: dict[str, Any], coherence: dict[str, Any]) -> str:
    kept = task_kept(task, loss, coherence)
    return (
        f"task change {fmt(task)}, held-out loss change {fmt(loss)}, coherence change {fmt(coherence)} "
        f"({'task kept' if kept else 'task not shown to be kept'})"
    )


def blocking_verdict(r: Results) -> Verdict:
    e = recorded(r, "preventative_ablation_minus_random")
    harmful, random = (
        recorded(r, "preventative_ablation_relative_reduction"),
        recorded(r, "random_ablation_relative_reduction"),
    )
    task, loss = (
        recorded(r, "preventative_ablation_task_change"),
        recorded(r, "preventative_ablation_heldout_loss_change"),
    )
    coherence = recorded(r, "preventative_ablation_coherence_change")
    damage_harmful, damage_random = (
        recorded(r, "harmful_ablation_base_loss_increase"),
        recorded(r, "random_ablation_base_loss_increase"),
    )
    rule = _rule(
        "EM after ablating damage-matched random latents (frequency-matched, chosen so that their ablation "
        "raises the base model's loss as much as the harmful ablation does) minus EM after ablating the "
        "harmful directions",
        "the harmful ablation's own relative reduction",
    ) + (
        "; the blocking claim's third gate: the control's mean base-loss increase at least "
        f"{DAMAGE_TOLERANCE} of the harmful ablation's, so it is not the gentler ablation"
    )
    if e is None or loss is None or coherence is None:
        return Verdict("not recorded", "not run", rule)
    damage = (
        f"; base-loss increase harmful {fmt(damage_harmful)} vs control {fmt(damage_random)}"
        if damage_harmful is not None or damage_random is not None
        else ""
    )
    measured = (
        f"relative reduction: harmful {fmt(harmful, pct=True)} vs random {fmt(random, pct=True)}; "
        f"EM(random) − EM(harmful) {fmt(e)}{damage}; under the ablation: {_task_text(task, loss, coherence)}"
    )
    gates = [
        ("harmful ablation reduces EM", harmful is not None and lower(harmful) > 0),
        ("task kept", task_kept(task, loss, coherence)),
        ("control as damaging", damage_matched(damage_harmful, damage_random)),
    ]
    return single_verdict(e, measured, rule, gates)


#: The damage-matched control must raise the base loss by at least this share of the harmful ablation's
#: increase: a control that does less damage could lower EM less for that reason alone.
DAMAGE_TOLERANCE = 0.9


def damage_matched(harmful: dict[str, Any] | None, control: dict[str, Any] | None) -> bool:
    """Whether the control's mean base-loss increase reaches the harmful ablation's, less
    ``1 - DAMAGE_TOLERANCE`` of its size (unrecorded: not shown)."""
    if harmful is None or control is None:
        return False
    h = harmful["value"]
    return control["value"] >= h - (1 - DAMAGE_TOLERANCE) * abs(h)  # also when ablating lowers the loss


def steering_verdict(r: Results) -> Verdict:
    e = recorded(r, "preventative_steering_minus_random")
    harmful, random = (
        recorded(r, "preventative_steering_relative_reduction"),
        recorded(r, "random_steering_relative_reduction"),
    )
    task, loss = (
        recorded(r, "preventative_steering_task_change"),
        recorded(r, "preventative_steering_heldout_loss_change"),
    )
    coherence = recorded(r, "preventative_steering_coherence_change")
    rule = _rule(
        "EM after steering along a random unit vector minus EM after steering along the mean harmful "
        "direction (same strength, during training only)",
        "the harmful steering's own relative reduction",
    )
    if e is None or loss is None or coherence is None:
        return Verdict("not recorded", "not run", rule)
    measured = (
        f"relative reduction: harmful {fmt(harmful, pct=True)} vs random {fmt(random, pct=True)}; "
        f"EM(steer random) − EM(steer harmful) {fmt(e)}; under the steering: "
        f"{_task_text(task, loss, coherence)}"
    )
    gates = [
        ("harmful steering reduces EM", harmful is not None and lower(harmful) > 0),
        ("task kept", task_kept(task, loss, coherence)),
    ]
    return single_verdict(e, measured, rule, gates)


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "blocking_prevents_em",
        "Blocking the harmful directions during fine-tuning prevents EM (beyond the paper)",
        "{ref}`ch-blocking-directions`",
        blocking_verdict,
        "emergent: measured under an intervention the design does not anticipate",
        ("preventative_ablation_minus_random",),
        "EM difference",
    ),
    Claim(
        "steering_prevents_em",
        "Steering along the mean harmful direction during fine-tuning prevents EM (beyond the paper)",
        "{ref}`ch-blocking-directions`",
        steering_verdict,
        "emergent: measured under an intervention the design does not anticipate",
        ("preventative_steering_minus_random",),
        "EM difference",
    ),
)
