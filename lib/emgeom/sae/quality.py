"""How good an SAE is on a model: L0, variance unexplained, dead latents, and the model's loss with the
SAE spliced in (against clean and zero-ablated)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from jaxtyping import Float, Int
from torch import Tensor

from emgeom.lm.batching import padded
from emgeom.lm.chat import ChatRow, Conversation, encode_chat
from emgeom.sae.load import check_sae_fits


@dataclass(frozen=True)
class SAEQuality:
    """How well an SAE reconstructs the residual stream on held-out tokens.

    ``l0``: mean active latents per token. ``fvu``: fraction of variance unexplained. ``dead_fraction``:
    latents that never fired on these tokens. ``ce_clean``/``ce_spliced``/``ce_zero``: the model's
    next-token loss (nats) unchanged, with the SAE's reconstruction in place of the activation, and with
    the activation zeroed; ``ce_recovered`` = (zero - spliced) / (zero - clean).
    """

    l0: float
    fvu: float
    dead_fraction: float
    ce_clean: float
    ce_spliced: float
    ce_zero: float

    @property
    def ce_recovered(self) -> float:
        return (self.ce_zero - self.ce_spliced) / (self.ce_zero - self.ce_clean)

    def table_row(self) -> dict[str, float]:
        """The measures under the names the book's tables use."""
        return {
            "L0": self.l0,
            "FVU": self.fvu,
            "dead latents": self.dead_fraction,
            "loss clean": self.ce_clean,
            "loss with SAE": self.ce_spliced,
            "loss zero-ablated": self.ce_zero,
            "loss recovered": self.ce_recovered,
        }


@torch.no_grad()
def sae_quality(
    hooked: Any,
    sae: Any,
    tokens: Int[Tensor, "batch pos"],
    mask: Int[Tensor, "batch pos"],
    hook_name: str | None = None,
) -> SAEQuality:
    """Measure ``sae`` on ``tokens`` (``mask`` marks real, non-special tokens to score)."""
    check_sae_fits(sae, hooked, hook_name)
    name = hook_name or sae.cfg.metadata.hook_name
    keep = mask.bool()
    _, cache = hooked.run_with_cache(tokens, names_filter=name)
    acts: Float[Tensor, "n d_model"] = cache[name][keep].to(sae.W_dec.dtype)
    feats = sae.encode(acts)
    recon = sae.decode(feats)
    resid = (acts - recon).pow(2).sum()
    total = (acts - acts.mean(0)).pow(2).sum()
    fired = (feats > 0).any(0)

    def ce(hook_fn: Any = None) -> float:
        hooks = [(name, hook_fn)] if hook_fn else []
        logits = hooked.run_with_hooks(tokens, fwd_hooks=hooks)
        logp = logits[:, :-1].log_softmax(-1).gather(-1, tokens[:, 1:, None])[..., 0]
        target_mask = keep[:, 1:] & keep[:, :-1]
        return float(-(logp[target_mask]).mean())

    def splice(act: Tensor, hook: Any) -> Tensor:
        return sae.decode(sae.encode(act.to(sae.W_dec.dtype))).to(act.dtype)

    return SAEQuality(
        l0=float((feats > 0).sum(-1).float().mean()),
        fvu=float(resid / total),
        dead_fraction=float(1 - fired.float().mean()),
        ce_clean=ce(),
        ce_spliced=ce(splice),
        ce_zero=ce(lambda act, hook: torch.zeros_like(act)),
    )


def scoring_batch(
    tokenizer: Any, documents: Sequence[Conversation] | Sequence[ChatRow], context_size: int
) -> tuple[Tensor, Tensor]:
    """``(tokens, mask)`` for :func:`sae_quality`: documents (or chat rows) padded to ``context_size``;
    the mask marks non-special tokens."""
    messages = [d["messages"] if isinstance(d, dict) else d.messages for d in documents]
    windows = [
        (enc.input_ids[:context_size], enc.loss_mask[:context_size])
        for enc in (encode_chat(tokenizer, m, assistant_only=False) for m in messages)
    ]
    tokens, _ = padded(windows, tokenizer.pad_token_id)
    special = torch.tensor(sorted(set(tokenizer.all_special_ids)))
    mask = ~torch.isin(tokens, special)
    return tokens, mask.long()
