"""Length-bucketed, right-padded batches of tokenized chats, for reading a model's activations.

Shared by the SAE read-outs (:func:`emgeom.geometry.response_activations`), per-sample scoring and its
benchmark (:mod:`emgeom.filtering.scoring`) and the SAE quality batch (:func:`emgeom.saes.scoring_batch`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from emgeom.lm.chat import ChatRow, encode_chat

Window = tuple[list[int], list[bool]]


def answer_windows(tokenizer: Any, rows: Sequence[ChatRow], n_ctx: int, keep: str = "end") -> list[Window]:
    """Each row tokenized with its assistant-answer mask, cut to ``n_ctx`` tokens keeping the ``"end"``
    (where the answers are) or the ``"start"``."""
    if keep not in ("end", "start"):
        raise ValueError(f"keep must be 'end' or 'start', got {keep!r}")
    out = []
    for r in rows:
        enc = encode_chat(tokenizer, r["messages"])
        cut = slice(-n_ctx, None) if keep == "end" else slice(None, n_ctx)
        out.append((enc.input_ids[cut], enc.loss_mask[cut]))
    return out


def pad_id(tokenizer: Any) -> int:
    """The tokenizer's padding id (0 when it has none)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def padded(windows: Sequence[Window], pad: int) -> tuple[Tensor, Tensor]:
    """Right-pad to the longest: ``tokens`` ``[batch, pos]`` and the boolean ``mask`` ``[batch, pos]``."""
    width = max(len(ids) for ids, _ in windows)
    tokens = torch.full((len(windows), width), pad)
    mask = torch.zeros((len(windows), width), dtype=torch.bool)
    for row, (ids, m) in enumerate(windows):
        tokens[row, : len(ids)] = torch.tensor(ids)
        mask[row, : len(m)] = torch.tensor(m, dtype=torch.bool)
    return tokens, mask


def length_batches(
    windows: Sequence[Window], batch_size: int, pad: int
) -> Iterator[tuple[list[int], Tensor, Tensor]]:
    """``(row indices, tokens, mask)`` over the windows in length order, ``batch_size`` rows at a time."""
    order = sorted(range(len(windows)), key=lambda i: len(windows[i][0]))
    for lo in range(0, len(order), batch_size):
        idx = order[lo : lo + batch_size]
        tokens, mask = padded([windows[i] for i in idx], pad)
        yield idx, tokens, mask
