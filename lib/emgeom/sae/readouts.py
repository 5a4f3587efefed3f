"""Reading a model through an SAE: mean latent activations over answer tokens, encoder
pre-activations, unit encoder/decoder directions, the layer a hook name reads, and read-outs at the
answer start and on the answer tokens (through TransformerLens or a Hugging Face model's hidden states)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from emgeom.lm.batching import answer_windows, length_batches, pad_id
from emgeom.lm.chat import ChatRow, Message, prompt_ids
from emgeom.lm.models import context_length
from emgeom.sae.load import check_sae_fits

Directions = Literal["decoder", "encoder"]


@torch.no_grad()
def response_activations(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    rows: Sequence[ChatRow],
    *,
    hook_name: str | None = None,
    batch_size: int = 64,
    progress: bool = False,
) -> Float[Tensor, "n_rows d_sae"]:
    """Mean SAE latent activation over each row's assistant-response tokens.

    Runs the model only up to the SAE's layer (``stop_at_layer``), in batches of rows of similar length
    (right padding; causal attention keeps padding from touching real tokens).
    """
    check_sae_fits(sae, hooked, hook_name)
    name = hook_name or sae.cfg.metadata.hook_name
    return _answer_means(
        hooked,
        tokenizer,
        rows,
        resid_pre_layer(name),
        int(sae.cfg.d_sae),
        lambda resid: sae.encode(resid.to(sae.W_dec.dtype)).float(),
        batch_size,
        progress,
        "SAE activations",
    )


@torch.no_grad()
def response_residuals(
    hooked: Any, tokenizer: Any, rows: Sequence[ChatRow], hook_name: str, *, batch_size: int = 64
) -> Float[Tensor, "n_rows d_model"]:
    """Mean residual stream at ``hook_name`` (a ``resid_pre``/``resid_post`` hook) over each row's
    assistant-response tokens: the same tokens :func:`response_activations` reads, without an SAE."""
    return _answer_means(
        hooked,
        tokenizer,
        rows,
        resid_pre_layer(hook_name),
        int(hooked.cfg.d_model),
        lambda resid: resid.float(),
        batch_size,
        False,
        "residuals",
    )


def _answer_means(
    hooked: Any,
    tokenizer: Any,
    rows: Sequence[ChatRow],
    layer: int,
    width: int,
    transform: Any,
    batch_size: int,
    progress: bool,
    desc: str,
) -> Tensor:
    windows = answer_windows(tokenizer, rows, int(hooked.cfg.n_ctx), keep="start")
    out = torch.zeros(len(rows), width)
    batches = length_batches(windows, batch_size, pad_id(tokenizer))
    total = -(-len(windows) // batch_size)
    for idx, tokens, mask in tqdm(batches, total=total, desc=desc, disable=not progress):
        resid = hooked(tokens.to(hooked.cfg.device), stop_at_layer=layer)  # [batch, pos, d_model]
        feats = transform(resid).cpu()  # [batch, pos, width]
        counts = mask.sum(1, keepdim=True).clamp(min=1)
        out[idx] = (feats * mask[..., None]).sum(1) / counts
    return out


def resid_pre_layer(hook_name: str) -> int:
    """The index of the residual stream an SAE reads, as the block it enters: ``blocks.<L>.hook_resid_pre``
    is ``L`` and ``blocks.<L>.hook_resid_post`` (Gemma Scope, most published SAEs) is ``L + 1``, the
    same vector. It is what ``stop_at_layer`` runs up to and the index into Hugging Face
    ``hidden_states`` (except after the last block, where Hugging Face applies the final norm). Other hook
    points are refused."""
    layer, kind = _resid_hook(hook_name)
    return layer + (kind == "hook_resid_post")


def hook_layer(hook_name: str) -> int:
    """The layer in a residual-stream hook name, as users and SAE releases number it: ``L`` for both
    ``blocks.<L>.hook_resid_pre`` (the input of block ``L``) and ``blocks.<L>.hook_resid_post`` (its
    output; Gemma Scope's ``layer_<L>`` SAEs). Not the same vector: see :func:`resid_pre_layer`."""
    return _resid_hook(hook_name)[0]


def _resid_hook(hook_name: str) -> tuple[int, str]:
    parts = hook_name.split(".")
    if (
        len(parts) != 3
        or parts[0] != "blocks"
        or not parts[1].isdigit()
        or parts[2] not in ("hook_resid_pre", "hook_resid_post")
    ):
        raise ValueError(
            "only residual-stream SAEs (blocks.<L>.hook_resid_pre or blocks.<L>.hook_resid_post) are "
            f"supported, got {hook_name!r}"
        )
    return int(parts[1]), parts[2]


def unit_directions(sae: Any, which: Directions = "decoder") -> np.ndarray:
    """Unit-norm latent directions ``[d_sae, d_in]`` (decoder rows, or encoder columns)."""
    if which == "decoder":
        w = sae.W_dec.detach().float().cpu().numpy()
    elif which == "encoder":
        w = sae.W_enc.detach().float().cpu().numpy().T
    else:
        raise ValueError(f"directions must be 'decoder' or 'encoder', got {which!r}")
    norms = np.linalg.norm(w, axis=1, keepdims=True)
    return w / np.where(norms == 0, 1.0, norms)


def pre_activations(sae: Any, x: Float[Tensor, "n d_in"]) -> Float[Tensor, "n d_sae"]:
    """The SAE encoder's linear read-out before its nonlinearity: ``(x - b_dec) W_enc + b_enc`` (the
    decoder bias is subtracted when the SAE applies it to its input)."""
    x = x.to(sae.W_enc.dtype)
    if getattr(sae.cfg, "apply_b_dec_to_input", False):
        x = x - sae.b_dec
    return (x @ sae.W_enc + sae.b_enc).float()


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
