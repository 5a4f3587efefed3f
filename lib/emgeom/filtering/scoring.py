"""Per-sample scores for geometry-aware data filtering, and the filter itself.

A training sample's score says how close its assistant answer sits to the harmful features. Three
definitions are offered, because the paper's is not public (``method``):

- ``harmful_mass``: mean over answer tokens of the summed activation of the harmful latents;
- ``cosine_weighted``: mean over answer tokens of every latent's activation weighted by its decoder
  cosine to the nearest harmful latent (clipped at 0), so latents *near* the harmful ones count too;
- ``residual_projection``: mean over answer tokens of the residual stream (minus the SAE's decoder
  bias) projected on the unit mean direction of the harmful latents' decoder vectors.

The fast path runs the model only up to the SAE's layer (``stop_at_layer``), in length-bucketed batches,
with no activation cache.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import torch
from tqdm import tqdm

from emgeom.lm.batching import answer_windows, length_batches, pad_id
from emgeom.lm.chat import ChatRow
from emgeom.sae.load import check_sae_fits
from emgeom.sae.readouts import resid_pre_layer, unit_directions

ScoreMethod = Literal["harmful_mass", "cosine_weighted", "residual_projection"]
SCORE_METHODS: tuple[ScoreMethod, ...] = ("harmful_mass", "cosine_weighted", "residual_projection")


@dataclass(frozen=True)
class ScoringResult:
    """``scores[i]`` for input row ``i`` (NaN when the row has no answer token inside the window);
    ``seconds`` of model time and ``samples_per_second``."""

    scores: np.ndarray
    seconds: float

    @property
    def samples_per_second(self) -> float:
        return float(self.scores.size / self.seconds) if self.seconds > 0 else float("nan")


@torch.no_grad()
def score_rows(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    rows: Sequence[ChatRow],
    harmful: Sequence[int],
    method: ScoreMethod = "harmful_mass",
    *,
    batch_size: int = 32,
    progress: bool = False,
) -> ScoringResult:
    """Score every row (see the module docstring); rows are processed in length order, results are in
    input order."""
    if method not in SCORE_METHODS:
        raise ValueError(f"unknown score method {method!r}; choose from {SCORE_METHODS}")
    harmful_idx = np.asarray(list(harmful), dtype=int)
    if harmful_idx.size == 0 or harmful_idx.min() < 0 or harmful_idx.max() >= int(sae.cfg.d_sae):
        raise ValueError(
            f"harmful latents must be a non-empty list of indices below d_sae={int(sae.cfg.d_sae)}"
        )
    check_sae_fits(sae, hooked)
    layer = resid_pre_layer(sae.cfg.metadata.hook_name)
    dirs = unit_directions(sae, "decoder")
    if method == "cosine_weighted":
        weights = torch.tensor(np.clip((dirs @ dirs[harmful_idx].T).max(1), 0, None), dtype=torch.float32)
    harm_dir = torch.tensor(dirs[harmful_idx].mean(0), dtype=torch.float32)
    harm_dir = harm_dir / harm_dir.norm().clamp(min=1e-12)
    windows = answer_windows(tokenizer, rows, int(hooked.cfg.n_ctx), keep="end")  # the answers are at the end
    scores = np.full(len(rows), np.nan)
    start = time.perf_counter()
    bar = tqdm(total=len(rows), desc=f"scoring ({method})", unit="sample", disable=not progress)
    for idx, tokens, mask in length_batches(windows, batch_size, pad_id(tokenizer)):
        resid = (
            hooked(tokens.to(hooked.cfg.device), stop_at_layer=layer).float().cpu()
        )  # [batch, pos, d_model]
        if method == "residual_projection":
            per_token = (resid - sae.b_dec.detach().float().cpu()) @ harm_dir  # [batch, pos]
        else:
            feats = sae.encode(resid.to(sae.W_dec.dtype)).float().cpu()  # [batch, pos, d_sae]
            per_token = feats[..., harmful_idx].sum(-1) if method == "harmful_mass" else feats @ weights
        counts = mask.sum(1)
        batch_scores = (per_token * mask).sum(1) / counts.clamp(min=1)
        batch_scores[counts == 0] = float("nan")
        scores[idx] = batch_scores.numpy()
        bar.update(len(idx))
        bar.set_postfix(samples_per_s=f"{bar.n / (time.perf_counter() - start):.0f}")
    bar.close()
    return ScoringResult(scores, time.perf_counter() - start)


def removal_mask(scores: np.ndarray, fraction: float) -> np.ndarray:
    """Boolean mask of the rows to remove: the top ``fraction`` by score (ties by row order; NaN scores
    are never removed)."""
    if not 0.0 <= fraction <= 1.0:
        raise ValueError(f"the fraction to remove must be in [0, 1], got {fraction}")
    s = np.where(np.isnan(scores), -np.inf, scores)
    n_remove = round(fraction * int(np.isfinite(scores).sum()))
    order = np.lexsort((np.arange(s.size), -s))
    remove = np.zeros(s.size, dtype=bool)
    remove[order[:n_remove]] = True
    return remove


def detection_quality(removed: np.ndarray, truly_inducing: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the removed rows against the known inducing rows."""
    removed, truth = np.asarray(removed, bool), np.asarray(truly_inducing, bool)
    hits = int((removed & truth).sum())
    precision = hits / removed.sum() if removed.sum() else float("nan")
    recall = hits / truth.sum() if truth.sum() else float("nan")
    return float(precision), float(recall)


@torch.no_grad()
def full_forward_seconds(hooked: Any, tokenizer: Any, rows: Sequence[ChatRow], batch_size: int = 32) -> float:
    """Wall time of the model's full forward pass over the same length-sorted batches the scorer uses."""
    windows = answer_windows(tokenizer, rows, int(hooked.cfg.n_ctx), keep="end")
    start = time.perf_counter()
    for _, tokens, _ in length_batches(windows, batch_size, pad_id(tokenizer)):
        hooked(tokens.to(hooked.cfg.device))
    return time.perf_counter() - start


@dataclass(frozen=True)
class ThroughputComparison:
    """Samples per second of :func:`score_rows` and of a full forward pass on the same rows and batches
    (best of the repeats); ``ratio`` = scoring / full forward (>= 1: scoring is no slower)."""

    rows: int
    scoring_samples_per_second: float
    forward_samples_per_second: float

    @property
    def ratio(self) -> float:
        return self.scoring_samples_per_second / self.forward_samples_per_second


def scoring_vs_forward(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    rows: Sequence[ChatRow],
    harmful: Sequence[int],
    batch_size: int = 32,
    repeats: int = 3,
) -> ThroughputComparison:
    """Time scoring against the full forward pass (a benchmark, for reports, never for tests)."""
    score_s = min(
        score_rows(hooked, sae, tokenizer, rows, harmful, batch_size=batch_size).seconds
        for _ in range(repeats)
    )
    forward_s = min(full_forward_seconds(hooked, tokenizer, rows, batch_size) for _ in range(repeats))
    return ThroughputComparison(len(rows), len(rows) / score_s, len(rows) / forward_s)
