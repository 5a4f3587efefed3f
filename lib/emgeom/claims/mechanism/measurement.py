"""The mechanism, measured in SAE feature space: after fine-tuning, does every latent change in
proportion to its similarity with the target feature (chapter 2's first-order prediction)?

Latents are read at the position where the model starts its answer (the end of the generation prompt)
on the evaluation questions. Two read-outs: the latent's pre-activation (its encoder read-out, the
linear quantity of the first-order prediction ``Δa_j = η cos(d_j, d_t)``) and its activation after the
SAE's nonlinearity (what "the feature fires more" means)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor

from emgeom.core.stats import Estimate, bootstrap_pearson, fitted_slope, pearson_r
from emgeom.em.geometry import top_latents
from emgeom.lm.batching import answer_windows, length_batches, pad_id
from emgeom.lm.chat import ChatRow, Message, encode_chat, prompt_ids
from emgeom.lm.models import context_length
from emgeom.lm.training import IGNORE_INDEX, collate
from emgeom.sae.load import check_sae_fits
from emgeom.sae.readouts import pre_activations, resid_pre_layer, response_activations, unit_directions


@dataclass(frozen=True)
class PromptReadout:
    """At the answer-start position of each prompt: the residual ``resid`` ``[n, d_model]``, the SAE
    pre-activations ``pre`` and activations ``post`` ``[n, d_sae]``."""

    resid: Tensor
    pre: Tensor
    post: Tensor


@torch.no_grad()
def answer_start_readout(
    hooked: Any, sae: Any, tokenizer: Any, prompts: Sequence[Sequence[Message]]
) -> PromptReadout:
    """Read the SAE at the last token of each chat prompt rendered with the generation prompt."""
    check_sae_fits(sae, hooked)
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    resid_rows = []
    for prompt in prompts:
        ids = prompt_ids(tokenizer, prompt)
        resid = hooked(
            torch.tensor([ids], device=hooked.cfg.device), stop_at_layer=layer
        )  # [1, pos, d_model]
        resid_rows.append(resid[0, -1].float().cpu())
    resid = torch.stack(resid_rows)  # [n, d_model]
    pre = pre_activations(sae, resid)
    post = sae.encode(resid.to(sae.W_dec.dtype)).float()
    return PromptReadout(resid, pre, post)


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


@torch.no_grad()
def hf_answer_start_resid(
    model: Any, tokenizer: Any, prompts: Sequence[Sequence[Message]], layer: int
) -> Tensor:
    """The residual stream entering block ``layer`` at the answer-start position, read from a Hugging
    Face model (or a peft wrapper, mid-training) through ``output_hidden_states``: ``[n, d_model]``.
    ``hidden_states[layer]`` is TransformerLens's ``blocks.<layer>.hook_resid_pre`` of unprocessed weights."""
    rows = []
    for prompt in prompts:
        ids = prompt_ids(tokenizer, prompt)
        out = model(input_ids=torch.tensor([ids], device=model.device), output_hidden_states=True)
        rows.append(out.hidden_states[layer][0, -1].float().cpu())
    return torch.stack(rows)


@torch.no_grad()
def hf_answer_start_readout(
    model: Any, tokenizer: Any, sae: Any, prompts: Sequence[Sequence[Message]]
) -> PromptReadout:
    """:func:`answer_start_readout` from the Hugging Face model's hidden states: no TransformerLens copy
    of the weights (a fine-tuned 8B model then needs one copy in memory, not two)."""
    resid = hf_answer_start_resid(model, tokenizer, prompts, resid_pre_layer(sae.cfg.metadata.hook_name))
    if resid.shape[1] != int(sae.cfg.d_in):
        raise ValueError(
            f"the SAE reads width {sae.cfg.d_in}, the model's residual stream is {resid.shape[1]}"
        )
    return PromptReadout(resid, pre_activations(sae, resid), sae.encode(resid.to(sae.W_dec.dtype)).float())


def target_latent(
    hooked: Any, sae: Any, tokenizer: Any, inducing_rows: Sequence[ChatRow], paired_rows: Sequence[ChatRow]
) -> int:
    """The target feature of an inducing set: the single latent with the largest mean activation on its
    answers minus its paired non-inducing set's (chapter 4's inducing rule with ``k = 1``)."""
    ind = response_activations(hooked, sae, tokenizer, inducing_rows).mean(0)
    paired = response_activations(hooked, sae, tokenizer, paired_rows).mean(0)
    return int(top_latents(ind - paired, 1)[0])


# --- reading where the fine-tune acts: answer tokens, decoder projections ----------------------------


@dataclass(frozen=True)
class TokenReadout:
    """Means over the answer tokens of a set of rows, at the SAE's input: the residual ``resid``
    ``[d_model]``, the SAE pre-activations ``pre`` and activations ``post`` ``[d_sae]``; ``active``
    ``[d_sae]`` marks latents that fired on any of the tokens; ``n_tokens`` how many were read."""

    resid: Tensor
    pre: Tensor
    post: Tensor
    active: Tensor
    n_tokens: int


@torch.no_grad()
def hf_answer_residuals(
    model: Any, tokenizer: Any, rows: Sequence[ChatRow], layer: int, batch_size: int = 32
) -> Iterator[Float[Tensor, "tokens d_model"]]:
    """The residual stream entering block ``layer`` on the assistant-answer tokens of ``rows``
    (teacher-forced), read from a Hugging Face model's hidden states in right-padded, length-bucketed
    batches (causal attention keeps padding from touching real tokens): one float32 CPU tensor per batch."""
    windows = answer_windows(tokenizer, rows, context_length(model) or 1024, keep="start")
    for _, tokens, mask in length_batches(windows, batch_size, pad_id(tokenizer)):
        out = model(input_ids=tokens.to(model.device), output_hidden_states=True)
        yield out.hidden_states[layer].float().cpu()[mask]


@torch.no_grad()
def hf_answer_token_readout(
    model: Any, tokenizer: Any, sae: Any, rows: Sequence[ChatRow], batch_size: int = 32
) -> TokenReadout:
    """Read ``sae`` on the assistant-answer tokens of ``rows`` (:func:`hf_answer_residuals` at the SAE's
    input): means over the tokens, and which latents fired."""
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    d_sae = int(sae.cfg.d_sae)
    resid_sum, pre_sum, post_sum = 0.0, torch.zeros(d_sae), torch.zeros(d_sae)
    active, n = torch.zeros(d_sae, dtype=torch.bool), 0
    for resid in hf_answer_residuals(model, tokenizer, rows, layer, batch_size):  # [answer tokens, d_model]
        if resid.shape[1] != int(sae.cfg.d_in):
            raise ValueError(
                f"the SAE reads width {sae.cfg.d_in}, the model's residual stream is {resid.shape[1]}"
            )
        pre = pre_activations(sae, resid)
        post = sae.encode(resid.to(sae.W_dec.dtype)).float()
        resid_sum = resid_sum + resid.sum(0)
        pre_sum += pre.sum(0)
        post_sum += post.sum(0)
        active |= (post > 0).any(0)
        n += resid.shape[0]
    if n == 0:
        raise ValueError("the rows have no assistant-answer tokens to read")
    return TokenReadout(resid_sum / n, pre_sum / n, post_sum / n, active, n)  # type: ignore[arg-type]


def encoder_decoder_cosine(sae: Any) -> np.ndarray:
    """Per latent, the cosine between what it reads (encoder column) and what it writes (decoder row):
    1 for a tied SAE; a trained SAE's encoder leans away from its neighbours' directions."""
    return (unit_directions(sae, "encoder") * unit_directions(sae, "decoder")).sum(1)


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
