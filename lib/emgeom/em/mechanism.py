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
from torch import Tensor

from emgeom.core.stats import Estimate, bootstrap_pearson, fitted_slope
from emgeom.em.geometry import top_latents
from emgeom.lm.chat import ChatRow, Message, prompt_ids
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
