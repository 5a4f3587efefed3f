"""Toy models of superposition (Elhage et al. 2022), many instances trained at once.

The model compresses ``n_features`` sparse features into ``d_hidden`` dimensions and reads them back::

    h  = W x                      # [batch, inst, d_hidden]
    x' = ReLU(Wᵀ h + b)           # [batch, inst, n_features]

Each feature is present with probability ``p`` (its *feature probability*; sparsity ``S = 1 - p``) and,
when present, uniform in [0, 1]. The loss is the importance-weighted squared error. All instances share
one weight tensor ``W`` of shape ``[inst, d_hidden, n_features]`` and never interact: the loss is a sum
of per-instance losses and Adam(W) is elementwise, so a sweep over sparsities is one training run.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from jaxtyping import Float
from torch import Tensor, nn
from tqdm import tqdm


@dataclass(frozen=True)
class ToyModelConfig:
    """Shape of a batch of toy models."""

    n_features: int = 5
    """Number of input features ``n``."""
    d_hidden: int = 2
    """Hidden dimensions ``m`` (``m < n`` forces superposition)."""
    n_instances: int = 1
    """Independent models trained side by side (e.g. one per feature probability)."""

    def __post_init__(self) -> None:
        for name in ("n_features", "d_hidden", "n_instances"):
            if getattr(self, name) < 1:
                raise ValueError(f"ToyModelConfig.{name} must be >= 1, got {getattr(self, name)}")


@dataclass(frozen=True)
class ToyTrainConfig:
    """Optimisation settings (AdamW on the importance-weighted squared error)."""

    steps: int = 5_000
    batch_size: int = 1024
    lr: float = 1e-3
    weight_decay: float = 0.0
    seed: int = 0
    log_every: int = 50


def importance_profile(n_features: int, decay: float) -> Float[Tensor, " n_features"]:
    """Importance ``decay**i`` of feature ``i`` (``decay=1`` gives uniform importance)."""
    return decay ** torch.arange(n_features, dtype=torch.float32)


def log_spaced_probabilities(n: int, smallest: float) -> Float[Tensor, " n"]:
    """``n`` feature probabilities from 1 (dense) down to ``smallest``, evenly spaced in log."""
    if not 0 < smallest <= 1:
        raise ValueError(f"smallest feature probability must be in (0, 1], got {smallest}")
    return torch.logspace(0.0, math.log10(smallest), n)


class ToyModel(nn.Module):
    """A batch of ReLU-output toy models, ``x' = ReLU(WᵀWx + b)``.

    Args:
        cfg: shapes.
        feature_probability: ``[inst]`` or ``[inst, n_features]`` probability that each feature is present.
        importance: ``[n_features]`` or ``[inst, n_features]`` loss weight of each feature.
        generator: RNG for the weight initialisation (Xavier normal per instance).
    """

    W: Float[Tensor, "inst d_hidden n_features"]
    b_final: Float[Tensor, "inst n_features"]

    def __init__(
        self,
        cfg: ToyModelConfig,
        feature_probability: Tensor | float = 0.1,
        importance: Tensor | float = 1.0,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        self.cfg = cfg
        shape = (cfg.n_instances, cfg.n_features)
        prob = torch.as_tensor(feature_probability, dtype=torch.float32)
        if prob.ndim == 1:
            prob = prob[:, None]
        self.register_buffer("feature_probability", torch.broadcast_to(prob, shape).clone())
        self.register_buffer(
            "importance", torch.broadcast_to(torch.as_tensor(importance, dtype=torch.float32), shape).clone()
        )
        if not ((self.feature_probability > 0) & (self.feature_probability <= 1)).all():
            raise ValueError("feature probabilities must lie in (0, 1]")
        std = math.sqrt(2.0 / (cfg.d_hidden + cfg.n_features))
        w = torch.randn(cfg.n_instances, cfg.d_hidden, cfg.n_features, generator=generator) * std
        self.W = nn.Parameter(w)
        self.b_final = nn.Parameter(torch.zeros(shape))

    def hidden(self, x: Float[Tensor, "batch inst n_features"]) -> Float[Tensor, "batch inst d_hidden"]:
        return torch.einsum("ihf,bif->bih", self.W, x)

    def forward(self, x: Float[Tensor, "batch inst n_features"]) -> Float[Tensor, "batch inst n_features"]:
        return torch.relu(torch.einsum("ihf,bih->bif", self.W, self.hidden(x)) + self.b_final)

    def generate_batch(
        self, batch_size: int, generator: torch.Generator | None = None
    ) -> Float[Tensor, "batch inst n_features"]:
        """Sparse features: present with ``feature_probability``, uniform in [0, 1] when present."""
        return sample_sparse_features(self.feature_probability, batch_size, generator)

    def loss_per_instance(
        self, x: Float[Tensor, "batch inst n_features"], out: Float[Tensor, "batch inst n_features"]
    ) -> Float[Tensor, " inst"]:
        """Importance-weighted squared error, averaged over batch and features, per instance."""
        return (self.importance * (x - out) ** 2).mean(dim=(0, 2))


def sample_sparse_features(
    probability: Float[Tensor, "inst n_features"], batch_size: int, generator: torch.Generator | None = None
) -> Float[Tensor, "batch inst n_features"]:
    """Draw ``[batch, inst, n_features]`` features: ``U[0,1]`` with probability ``p``, else 0."""
    shape = (batch_size, *probability.shape)
    values = torch.rand(shape, generator=generator)
    present = torch.rand(shape, generator=generator) < probability
    return torch.where(present, values, torch.zeros(()))


@dataclass
class ToyTrainResult:
    """Loss curve of a training run: ``losses[k, i]`` is instance ``i``'s loss at step ``steps[k]``."""

    steps: np.ndarray
    losses: np.ndarray


def train_toy_model(
    model: ToyModel,
    cfg: ToyTrainConfig,
    batch_fn: Callable[[int], Tensor] | None = None,
    progress: bool = True,
) -> ToyTrainResult:
    """Train every instance of ``model`` in place with AdamW.

    ``batch_fn(step)`` may supply the data (``[batch, inst, n_features]``); by default batches are drawn
    from the model's feature distribution with an RNG seeded by ``cfg.seed``.
    """
    gen = torch.Generator().manual_seed(cfg.seed)
    draw = batch_fn or (lambda _step: model.generate_batch(cfg.batch_size, gen))
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps, losses = [], []
    bar = tqdm(range(cfg.steps), desc="toy model", disable=not progress, mininterval=1.0)
    for step in bar:
        x = draw(step)
        per_instance = model.loss_per_instance(x, model(x))
        opt.zero_grad(set_to_none=True)
        per_instance.sum().backward()
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            steps.append(step)
            losses.append(per_instance.detach().numpy().copy())
            bar.set_postfix(mean_loss=f"{per_instance.mean().item():.4g}")
    return ToyTrainResult(np.array(steps), np.stack(losses))


# --- geometry ---------------------------------------------------------------------------------------


def feature_norms(W: Float[Tensor, "inst d_hidden n_features"]) -> Float[Tensor, "inst n_features"]:
    """``||W_i||``: how strongly each feature is represented."""
    return W.norm(dim=1)


def feature_dimensionality(
    W: Float[Tensor, "inst d_hidden n_features"], eps: float = 1e-12
) -> Float[Tensor, "inst n_features"]:
    """Elhage et al.'s per-feature dimensionality ``D_i = ||W_i||⁴ / Σ_j (Ŵ_i·W_j)²``.

    1 for a feature with a dimension of its own, 1/2 for an antipodal pair, 2/5 for a pentagon vertex,
    0 for a feature that is not represented.
    """
    norms = W.norm(dim=1)  # [inst, f]
    unit = W / (norms[:, None, :] + eps)
    overlaps = torch.einsum("ihf,ihg->ifg", unit, W)  # [inst, f, g]: Ŵ_f · W_g
    return norms**4 / ((overlaps**2).sum(dim=-1) + eps)


def dimensions_per_feature(W: Float[Tensor, "inst d_hidden n_features"]) -> Float[Tensor, " inst"]:
    """``m / ||W||_F²``: hidden dimensions spent per (norm-weighted) represented feature."""
    return W.shape[1] / W.pow(2).sum(dim=(1, 2))


def gram(W: Float[Tensor, "inst d_hidden n_features"]) -> Float[Tensor, "inst n_features n_features"]:
    """``WᵀW``: feature ``j``'s linear response to a unit input on feature ``i`` (interference)."""
    return torch.einsum("ihf,ihg->ifg", W, W)


@dataclass(frozen=True)
class PolygonCheck:
    """Result of :func:`polygon_check` for one 2-D instance."""

    n_represented: int
    gaps_degrees: tuple[float, ...]
    is_regular: bool


def polygon_check(
    W: Float[Tensor, "2 n_features"], norm_threshold: float = 0.5, tolerance_degrees: float = 10.0
) -> PolygonCheck:
    """Do the represented features (norm > threshold) of a 2-D instance form a regular polygon?

    Regular means the angular gaps between neighbouring feature directions all equal ``360/k`` within
    ``tolerance_degrees``, for ``k`` represented features.
    """
    if W.shape[0] != 2:
        raise ValueError(f"polygon_check needs a 2-D hidden space, got d_hidden={W.shape[0]}")
    keep = W.norm(dim=0) > norm_threshold
    k = int(keep.sum())
    if k < 2:
        return PolygonCheck(k, (), False)
    angles = torch.sort(torch.atan2(W[1, keep], W[0, keep]) * 180 / math.pi).values
    gaps = torch.diff(torch.cat([angles, angles[:1] + 360.0]))
    regular = bool(((gaps - 360.0 / k).abs() <= tolerance_degrees).all())
    return PolygonCheck(k, tuple(round(float(g), 2) for g in gaps), regular)


def is_pentagon(W: Float[Tensor, "2 n_features"], **kwargs: float) -> bool:
    """Five represented features at (roughly) 72° from their neighbours."""
    check = polygon_check(W, **kwargs)
    return check.n_represented == 5 and check.is_regular


def train_probability_sweep(
    n_features: int,
    d_hidden: int,
    probabilities: Tensor,
    importance_decay: float,
    train: ToyTrainConfig,
    progress: bool = True,
) -> tuple[ToyModel, ToyTrainResult]:
    """One instance per feature probability, initialised and trained from ``train.seed``."""
    cfg = ToyModelConfig(n_features, d_hidden, len(probabilities))
    model = ToyModel(
        cfg,
        probabilities,
        importance_profile(n_features, importance_decay),
        torch.Generator().manual_seed(train.seed),
    )
    return model, train_toy_model(model, train, progress=progress)
