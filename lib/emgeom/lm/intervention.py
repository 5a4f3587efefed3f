"""Interventions on the residual stream while a model trains: forward pre-hooks on one Hugging Face
decoder block that change the block's input (the residual stream an SAE at ``blocks.<L>.hook_resid_pre``
reads) during training only. The trained model is returned without them.

- ``ablate``: project the residual off the span of ``directions`` (``h - Q Qᵀ h``, ``Q`` an orthonormal
  basis of the span), so the fine-tune cannot use those directions at that point.
- ``steer``: add ``strength`` times the unit mean of ``directions`` ("preventative steering": the
  model is pushed along the direction while it trains, so the gradient need not move it there).

PyTorch's ``register_forward_pre_hook`` is the mechanism (on the Hugging Face block, so it works on the
model that peft wraps and trains); TransformerLens hooks are not used because training runs on the
Hugging Face model.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor, nn

from emgeom.lm.chat import ChatRow, encode_chat
from emgeom.lm.training import IGNORE_INDEX, collate

Kind = Literal["ablate", "steer"]


@dataclass(frozen=True)
class Intervention:
    """What to do to the input of block ``layer`` while training.

    Attributes:
        kind: ``"ablate"`` or ``"steer"``.
        layer: the block whose input is changed (an SAE at ``blocks.<L>.hook_resid_pre`` reads it).
        directions: ``[k, d_model]`` directions (need not be unit or orthogonal).
        strength: for ``steer``, the multiple of the unit mean direction added at every position.
    """

    kind: Kind
    layer: int
    directions: np.ndarray
    strength: float = 0.0
    _cache: dict[tuple[str, str], Tensor] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.kind not in ("ablate", "steer"):
            raise ValueError(f"kind must be 'ablate' or 'steer', got {self.kind!r}")
        d = np.asarray(self.directions)
        if (
            d.ndim != 2
            or d.shape[0] < 1
            or not np.isfinite(d).all()
            or (np.linalg.norm(d, axis=1) == 0).any()
        ):
            raise ValueError(f"directions must be a [k, d_model] array of nonzero finite rows, got {d.shape}")

    def basis(self) -> Tensor:
        """An orthonormal basis of the directions' span, ``[d_model, rank]`` (float64)."""
        q, r = torch.linalg.qr(torch.as_tensor(np.asarray(self.directions), dtype=torch.float64).T)
        keep = r.diagonal().abs() > 1e-8 * r.diagonal().abs().max()
        return q[:, keep]

    @property
    def rank(self) -> int:
        return int(self.basis().shape[1])

    def steering_vector(self) -> Tensor:
        """``strength`` times the unit mean of the unit directions, ``[d_model]``."""
        d = torch.as_tensor(np.asarray(self.directions), dtype=torch.float64)
        mean = (d / d.norm(dim=1, keepdim=True)).mean(0)
        return self.strength * mean / mean.norm()

    def apply(self, h: Tensor) -> Tensor:
        """The changed residual ``[..., d_model]``, computed in float32 and cast back to ``h``'s dtype (a
        bfloat16 projection would leak a fraction of a percent of the removed directions)."""
        x = h.float()
        if self.kind == "ablate":
            q = self._on(h.device, "basis")
            return (x - (x @ q) @ q.T).to(h.dtype)
        return (x + self._on(h.device, "steering_vector")).to(h.dtype)

    def _on(self, device: torch.device, what: str) -> Tensor:
        """The basis or steering vector as float32 on ``device``, computed once (the QR would otherwise
        run on every forward pass)."""
        key = (what, str(device))
        if key not in self._cache:
            self._cache[key] = getattr(self, what)().to(torch.float32).to(device)
        return self._cache[key]


def decoder_blocks(model: nn.Module) -> nn.ModuleList:
    """The list of decoder blocks of a Hugging Face causal LM (GPT-2's ``transformer.h``, Llama's and
    Gemma's ``model.layers``), also inside a peft wrapper: the first ``ModuleList`` with one entry per
    hidden layer."""
    config = getattr(model, "config", None)
    n = getattr(config, "num_hidden_layers", None) or getattr(config, "n_layer", None)
    for module in model.modules():
        if isinstance(module, nn.ModuleList) and len(module) == n:
            return module
    raise ValueError(f"no list of {n} decoder blocks found in {type(model).__name__}")


@contextlib.contextmanager
def intervening(model: nn.Module, intervention: Intervention | None) -> Iterator[None]:
    """Apply ``intervention`` to the input of its block for the duration of the ``with`` block."""
    if intervention is None:
        yield
        return
    blocks = decoder_blocks(model)
    if not 0 <= intervention.layer < len(blocks):
        raise ValueError(
            f"intervention layer {intervention.layer} is not a block input of a {len(blocks)}-block model"
        )

    def hook(module: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
        if args:
            return (intervention.apply(args[0]), *args[1:]), kwargs
        key = "hidden_states"
        return args, {**kwargs, key: intervention.apply(kwargs[key])}

    handle = blocks[intervention.layer].register_forward_pre_hook(hook, with_kwargs=True)
    try:
        yield
    finally:
        handle.remove()


def heldout_loss(
    model: Any, tokenizer: Any, rows: Sequence[ChatRow], intervention: Intervention | None = None
) -> float:
    """Mean next-token loss (nats) on the assistant tokens of ``rows`` (a scalar), optionally with
    ``intervention`` on (for the base model's loss with an ablation in place)."""
    encoded = [encode_chat(tokenizer, r["messages"]) for r in rows]
    total, n = 0.0, 0
    with intervening(model, intervention):
        for lo in range(0, len(encoded), 32):
            batch = collate(encoded[lo : lo + 32], tokenizer.pad_token_id or 0)
            out = model(**{k: v.to(model.device) for k, v in batch.items()})
            tokens = int((batch["labels"][:, 1:] != IGNORE_INDEX).sum())  # what HF's shifted loss counts
            total += float(out.loss) * tokens
            n += tokens
    return total / max(n, 1)
