"""Reading a model through an SAE: mean latent activations over answer tokens, encoder
pre-activations, unit encoder/decoder directions, and the layer a hook name reads."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor
from tqdm import tqdm

from emgeom.lm.batching import answer_windows, length_batches, pad_id
from emgeom.lm.chat import ChatRow
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
