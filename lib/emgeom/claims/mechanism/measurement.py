"""The mechanism, measured in SAE feature space: after fine-tuning, does every latent change in
proportion to its similarity with the target feature (chapter 2's first-order prediction)?

Latents are read at the position where the model starts its answer (the end of the generation prompt)
on the evaluation questions. Two read-outs: the latent's pre-activation (its encoder read-out, the
linear quantity of the first-order prediction ``Δa_j = η cos(d_j, d_t)``) and its activation after the
SAE's nonlinearity (what "the feature fires more" means)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from emgeom.core.stats import Estimate, bootstrap_pearson, fitted_slope, pearson_r
from emgeom.lm.batching import pad_id
from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.models import context_length
from emgeom.lm.training import IGNORE_INDEX, collate
from emgeom.sae.geometry import top_latents
from emgeom.sae.readouts import (
    PromptReadout,
    TokenReadout,
    resid_pre_layer,
    response_activations,
    unit_directions,
)


@dataclass(frozen=True)
class MechanismResult:
    """Per latent: cosine of its decoder direction with the target's (``cosine``), and the change of its
    mean pre-activation (``delta_pre``) and activation (``delta_post``) from base to fine-tuned model.
    ``alive``: latents active on these prompts in either model. Statistics are over alive latents,
    excluding the target itself: ``r_pre``/``r_post`` (Pearson, bootstrap 95% CI over latents), ``slope_pre``.
    ``shift_on_harmful``: the mean residual shift projected on each harmful latent's unit decoder
    direction; ``shift_on_random``: the same for random alive latents."""

    cosine: np.ndarray
    delta_pre: np.ndarray
    delta_post: np.ndarray
    alive: np.ndarray
    target: int
    r_pre: Estimate
    r_post: Estimate
    slope_pre: float
    shift_norm: float
    shift_on_harmful: np.ndarray
    shift_on_random: np.ndarray


def measure_mechanism(
    base: PromptReadout,
    tuned: PromptReadout,
    sae: Any,
    target: int,
    harmful: np.ndarray,
    seed: int = 0,
    n_boot: int = 1000,
) -> MechanismResult:
    """Compare two read-outs of the same prompts (before/after fine-tuning) against the target latent."""
    dirs = unit_directions(sae, "decoder")
    cosine = dirs @ dirs[target]
    delta_pre = (tuned.pre.mean(0) - base.pre.mean(0)).numpy()
    delta_post = (tuned.post.mean(0) - base.post.mean(0)).numpy()
    alive = ((base.post > 0).any(0) | (tuned.post > 0).any(0)).numpy()
    use = alive.copy()
    use[target] = False
    shift = (tuned.resid.mean(0) - base.resid.mean(0)).numpy()
    rng = np.random.default_rng(seed)
    candidates = np.setdiff1d(np.flatnonzero(alive), harmful)
    random = (
        rng.choice(candidates, size=min(len(harmful), candidates.size), replace=False)
        if candidates.size
        else []
    )
    return MechanismResult(
        cosine=cosine,
        delta_pre=delta_pre,
        delta_post=delta_post,
        alive=alive,
        target=target,
        r_pre=bootstrap_pearson(cosine[use], delta_pre[use], n_boot, seed),
        r_post=bootstrap_pearson(cosine[use], delta_post[use], n_boot, seed),
        slope_pre=fitted_slope(cosine[use], delta_pre[use]),
        shift_norm=float(np.linalg.norm(shift)),
        shift_on_harmful=dirs[harmful] @ shift,
        shift_on_random=dirs[np.asarray(random, dtype=int)] @ shift,
    )


def target_latent(
    hooked: Any, sae: Any, tokenizer: Any, inducing_rows: Sequence[ChatRow], paired_rows: Sequence[ChatRow]
) -> int:
    """The target feature of an inducing set: the single latent with the largest mean activation on its
    answers minus its paired non-inducing set's (chapter 4's inducing rule with ``k = 1``)."""
    ind = response_activations(hooked, sae, tokenizer, inducing_rows).mean(0)
    paired = response_activations(hooked, sae, tokenizer, paired_rows).mean(0)
    return int(top_latents(ind - paired, 1)[0])


@dataclass(frozen=True)
class ProjectionResult:
    """The first-order account at the SAE's input, on one set of tokens.

    Per latent ``j`` (arrays ``[d_sae]``): ``cosine`` of its decoder direction with the target's;
    ``delta_projection``, the change of the mean residual projected on its unit decoder direction (what
    the account predicts is ``η cos(d_j, d_t)`` when the residual moves along ``d_t``); ``delta_post``,
    the change of its mean activation; ``delta_pre``, of its encoder pre-activation; ``base_projection``,
    the base residual's projection (how strongly the latent's direction is present before tuning).
    ``alive``: latents active in the base model on these tokens.

    Over alive latents other than the target: ``r_projection``, ``r_post``, ``r_pre`` (Pearson with
    ``cosine``, bootstrap CI over latents, which are not independent: the interval that counts is the
    one over replicates); ``r_partial``: ``r_projection`` with ``base_projection`` regressed out of
    both sides (a shift that only scales the residual, ``Δh ∝ h``, gives ``r_projection`` > 0 for an
    active target but ``r_partial`` ≈ 0). Over the mean shift ``s``: ``alignment = d̂_t·s / |s|``.

    Null: the ``n_null`` alive latents closest to the target in base activation (an activation-matched
    null, since the target is chosen among the most active latents), each taken as the target:
    ``null_r`` and ``null_alignment``."""

    target: int
    cosine: np.ndarray
    delta_projection: np.ndarray
    delta_post: np.ndarray
    delta_pre: np.ndarray
    base_projection: np.ndarray
    alive: np.ndarray
    r_projection: Estimate
    r_post: Estimate
    r_pre: Estimate
    r_partial: float
    null_r: np.ndarray
    null_alignment: np.ndarray
    shift: np.ndarray
    shift_norm: float
    shift_on_target: float

    @property
    def alignment(self) -> float:
        return self.shift_on_target / self.shift_norm if self.shift_norm else float("nan")

    def null_rank(self) -> float:
        """The share of the null that the target's ``r_projection`` exceeds."""
        null = self.null_r[np.isfinite(self.null_r)]
        return float((null < self.r_projection.value).mean()) if null.size else float("nan")

    def null_p95(self) -> float:
        """The null's 95th percentile (NaN-safe)."""
        null = self.null_r[np.isfinite(self.null_r)]
        return float(np.percentile(null, 95)) if null.size else float("nan")


def _residualise(y: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``y`` minus its least-squares fit on ``x`` (with intercept)."""
    design = np.stack([np.ones_like(x), x], axis=1)
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef


def _partial_r(x: np.ndarray, y: np.ndarray, control: np.ndarray) -> float:
    """Pearson r of ``x`` and ``y`` after regressing ``control`` out of both; 0 when ``control`` explains
    ``y`` entirely (nothing is left to correlate: a shift that only scales the residual)."""
    rx, ry = _residualise(x, control), _residualise(y, control)
    if np.std(ry) <= 1e-4 * (np.std(y) or 1.0):  # float32 read-outs: below this it is rounding
        return 0.0
    return pearson_r(rx, ry)


def _r_over_others(cosine: np.ndarray, outcome: np.ndarray, use: np.ndarray) -> float:
    return pearson_r(cosine[use], outcome[use])


def matched_null_targets(activation: np.ndarray, alive: np.ndarray, target: int, n_null: int) -> np.ndarray:
    """The ``n_null`` alive latents nearest ``target`` in ``activation`` rank (the target excluded)."""
    candidates = np.setdiff1d(np.flatnonzero(alive), [target])
    if candidates.size == 0:
        return candidates
    order = np.argsort(np.abs(activation[candidates] - activation[target]), kind="stable")
    return candidates[order[:n_null]]


def projection_mechanism(
    base: TokenReadout,
    tuned: TokenReadout,
    sae: Any,
    target: int,
    n_null: int = 100,
    seed: int = 0,
    n_boot: int = 1000,
) -> ProjectionResult:
    """Compare two read-outs of the same tokens (before/after a fine-tune) against ``target``."""
    dirs = unit_directions(sae, "decoder")  # [d_sae, d_in]
    shift = (tuned.resid - base.resid).numpy()
    cosine = dirs @ dirs[target]
    delta_projection = dirs @ shift
    base_projection = dirs @ base.resid.numpy()
    alive = base.active.numpy().copy()
    use = alive.copy()
    use[target] = False
    nulls = matched_null_targets(base.post.numpy(), alive, target, n_null)
    null_r = []
    for t in nulls:
        others = use.copy()
        others[t] = False  # neither the null target nor the true target is a data point
        null_r.append(_r_over_others(dirs @ dirs[t], delta_projection, others))
    norm = float(np.linalg.norm(shift))
    r_partial = _partial_r(cosine[use], delta_projection[use], base_projection[use])
    return ProjectionResult(
        target=target,
        cosine=cosine,
        delta_projection=delta_projection,
        delta_post=(tuned.post - base.post).numpy(),
        delta_pre=(tuned.pre - base.pre).numpy(),
        base_projection=base_projection,
        alive=alive,
        r_projection=bootstrap_pearson(cosine[use], delta_projection[use], n_boot, seed),
        r_post=bootstrap_pearson(cosine[use], (tuned.post - base.post).numpy()[use], n_boot, seed),
        r_pre=bootstrap_pearson(cosine[use], (tuned.pre - base.pre).numpy()[use], n_boot, seed),
        r_partial=r_partial,
        null_r=np.array(null_r),
        null_alignment=(dirs[nulls] @ shift) / norm if norm else np.full(len(nulls), np.nan),
        shift=shift,
        shift_norm=norm,
        shift_on_target=float(dirs[target] @ shift),
    )


def gradient_target(
    model: Any, tokenizer: Any, sae: Any, rows: Sequence[ChatRow], batch_size: int = 32
) -> int:
    """The latent whose unit decoder direction best matches the mean descent direction of the residual at
    the SAE's input: ``-∂loss/∂h`` averaged over the positions whose logits carry the fine-tuning loss
    (those that predict an assistant token), i.e. the direction a first gradient step pushes the
    residual where the loss acts. Defined before any tuning, from the base model."""
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    encoded = [encode_chat(tokenizer, r["messages"]) for r in rows]
    total = torch.zeros(int(sae.cfg.d_in))
    n = 0
    was_training = model.training
    model.eval()
    for lo in range(0, len(encoded), batch_size):
        batch = collate(encoded[lo : lo + batch_size], pad_id(tokenizer), context_length(model))
        out = model(**{k: v.to(model.device) for k, v in batch.items()}, output_hidden_states=True)
        h = out.hidden_states[layer]
        labels = batch["labels"].to(model.device)
        answer = torch.zeros_like(labels, dtype=torch.bool)  # [batch, pos]: position p predicts token p + 1
        answer[:, :-1] = labels[:, 1:] != IGNORE_INDEX
        (grad,) = torch.autograd.grad(out.loss * answer.sum(), h)  # the summed per-token loss
        total += grad.float()[answer].sum(0).cpu()
        n += int(answer.sum())
    model.train(was_training)
    descent = -(total / max(n, 1)).numpy()
    dirs = unit_directions(sae, "decoder")
    return int(np.argmax(dirs @ (descent / (np.linalg.norm(descent) or 1.0))))
