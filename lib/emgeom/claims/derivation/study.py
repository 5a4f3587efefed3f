"""The gradient-level derivation of the book, and the experiments that check it on toy models.

Notation (per toy-model instance; ``W`` is ``[d_hidden, n_features]``, column ``W_j`` is feature ``j``'s
direction). The *response* of output ``j`` to a unit input on the target feature ``t`` is

    z_j = (WᵀW e_t)_j = W_jᵀ W_t        (the bias does not depend on W and is left out)

Fine-tuning data always contain the target at full strength (``x_t = 1``) plus, optionally, the usual
sparse background features. The *reward* objective is the batch mean of the target's pre-activation
output, ``R = mean_b y_t(x_b)`` with ``y = WᵀWx + b``. Its gradient has a closed form,

    ∂R/∂W = W_t x̄ᵀ + (W x̄) e_tᵀ        (x̄: batch-mean input)

so one ascent step of size η changes, for every ``j ≠ t``,

    Δz_j = η [2 x̄_t W_jᵀW_t + x̄_j (‖W_t‖² + ‖W_j‖²) + Σ_{k≠t,j} x̄_k W_jᵀW_k] + O(η²)

which is ``2η W_jᵀW_t`` exactly when only the target is present: every feature's response moves in
proportion to its similarity with the target. The *counter regime* swaps the reward for a squared error
to a bounded target under Adam; see :class:`ToyFineTuneConfig`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import pandas as pd
import torch
from jaxtyping import Float, Int
from torch import Tensor
from tqdm import tqdm

from emgeom.core.stats import fitted_slope, pearson_r
from emgeom.toy.superposition import (
    ToyModel,
    ToyModelConfig,
    ToyTrainConfig,
    sample_sparse_features,
    train_toy_model,
)


def target_responses(
    W: Float[Tensor, "inst d_hidden n_features"], targets: Int[Tensor, " inst"]
) -> Float[Tensor, "inst n_features"]:
    """``z_j = W_jᵀ W_t`` for every feature ``j`` of every instance (``t = targets[inst]``)."""
    W_t = W[torch.arange(W.shape[0]), :, targets]  # [inst, d_hidden]
    return torch.einsum("ihf,ih->if", W, W_t)


def cosines_to_target(
    W: Float[Tensor, "inst d_hidden n_features"], targets: Int[Tensor, " inst"], eps: float = 1e-12
) -> Float[Tensor, "inst n_features"]:
    """``cos(W_j, W_t)`` for every feature ``j`` of every instance."""
    norms = W.norm(dim=1)  # [inst, f]
    t_norm = norms[torch.arange(W.shape[0]), targets]  # [inst]
    return target_responses(W, targets) / (norms * t_norm[:, None] + eps)


def reward_objective(
    W: Float[Tensor, "inst d_hidden n_features"],
    b: Float[Tensor, "inst n_features"],
    x: Float[Tensor, "batch inst n_features"],
    targets: Int[Tensor, " inst"],
) -> Float[Tensor, " inst"]:
    """Batch-mean pre-activation output of each instance's target feature, ``mean_b y_t``."""
    y = torch.einsum("ihf,ihg,big->bif", W, W, x) + b  # [batch, inst, f]
    return y[:, torch.arange(W.shape[0]), targets].mean(dim=0)


def reward_gradient_closed_form(
    W: Float[Tensor, "inst d_hidden n_features"],
    x: Float[Tensor, "batch inst n_features"],
    targets: Int[Tensor, " inst"],
) -> Float[Tensor, "inst d_hidden n_features"]:
    """``∂R/∂W = W_t x̄ᵀ + (W x̄) e_tᵀ`` per instance, with ``x̄`` the batch-mean input."""
    inst = torch.arange(W.shape[0])
    x_bar = x.mean(dim=0)  # [inst, f]
    W_t = W[inst, :, targets]  # [inst, h]
    grad = torch.einsum("ih,if->ihf", W_t, x_bar)
    grad[inst, :, targets] += torch.einsum("ihf,if->ih", W, x_bar)
    return grad


def first_order_response_change(
    W: Float[Tensor, "inst d_hidden n_features"],
    x: Float[Tensor, "batch inst n_features"],
    targets: Int[Tensor, " inst"],
    lr: float,
) -> Float[Tensor, "inst n_features"]:
    """Predicted ``Δz`` of one reward-ascent step of size ``lr``, to first order in ``lr``.

    ``Δz_j = lr · (ΔW_jᵀ W_t + W_jᵀ ΔW_t)`` with ``ΔW`` from :func:`reward_gradient_closed_form`;
    for ``j = t`` both terms are the target's own (``2 W_tᵀ ΔW_t``).
    """
    inst = torch.arange(W.shape[0])
    grad = reward_gradient_closed_form(W, x, targets)
    W_t, G_t = W[inst, :, targets], grad[inst, :, targets]
    return lr * (torch.einsum("ihf,ih->if", grad, W_t) + torch.einsum("ihf,ih->if", W, G_t))


def readout_change(
    directions: Float[Tensor, "d_model n_latents"], target: int, step: float
) -> Float[Tensor, " n_latents"]:
    """Representation level: moving ``h`` by ``step`` along unit direction ``d̂_t`` changes every linear
    read-out ``a_j = d̂_jᵀ h`` by ``step · cos(d_j, d_t)``. Returns the exact change (no approximation)."""
    unit = directions / directions.norm(dim=0, keepdim=True)
    h0 = torch.zeros(directions.shape[0], dtype=directions.dtype)
    h1 = h0 + step * unit[:, target]
    return unit.T @ h1 - unit.T @ h0


# --- fine-tuning experiments ---------------------------------------------------------------------------

Objective = Literal["reward", "mse", "ce"]
Optimizer = Literal["sgd", "adam"]
Update = Literal["full", "rank1"]


@dataclass(frozen=True)
class ToyFineTuneConfig:
    """How a trained toy model is fine-tuned toward its target feature.

    ``objective="reward"`` ascends the target's pre-activation output (unbounded, reward-like);
    ``objective="mse"`` minimises ``(x'_t - target_scale · x_t)²``, a bounded target for the output;
    ``objective="ce"`` minimises the softmax cross-entropy of the pre-activation outputs (as logits over
    the features) with the target as the label, the loss real fine-tuning uses.
    ``update="rank1"`` freezes ``W`` and trains ``W + u vᵀ`` (LoRA-style: ``u = 0``, ``v`` random).
    """

    objective: Objective = "reward"
    optimizer: Optimizer = "sgd"
    update: Update = "full"
    lr: float = 1e-3
    steps: int = 10
    batch_size: int = 256
    background: bool = True
    """Whether the other features keep occurring (with the model's feature probabilities)."""
    target_scale: float = 1.5
    """For ``objective="mse"``: the output asked for the target is ``target_scale · x_t``."""
    seed: int = 0


@dataclass
class FineTuneOutcome:
    """Responses to the target before and after fine-tuning, per instance and feature."""

    targets: np.ndarray  # [inst]
    similarity: np.ndarray  # [inst, f]  W_jᵀW_t before
    cosine: np.ndarray  # [inst, f]  cos(W_j, W_t) before
    delta_response: np.ndarray  # [inst, f]  Δz_j
    norms: np.ndarray  # [inst, f]  ‖W_j‖ before

    def others(self, inst: int) -> np.ndarray:
        """Boolean mask of the non-target features of instance ``inst``."""
        mask = np.ones(self.similarity.shape[1], dtype=bool)
        mask[self.targets[inst]] = False
        return mask


def fine_tune_toward_target(
    model: ToyModel, targets: Int[Tensor, " inst"], cfg: ToyFineTuneConfig, progress: bool = False
) -> FineTuneOutcome:
    """Fine-tune a copy of each instance of ``model`` toward its target; the model is left unchanged."""
    return fine_tune_trajectory(model, targets, cfg, [cfg.steps], progress)[cfg.steps]


def _loss(cfg: ToyFineTuneConfig, W: Tensor, b: Tensor, x: Tensor, targets: Tensor) -> Tensor:
    """The objective to minimise, summed over instances (their parameters are independent)."""
    inst = torch.arange(W.shape[0])
    if cfg.objective == "reward":
        return -reward_objective(W, b, x, targets).sum()
    logits = torch.einsum("ihf,ihg,big->bif", W, W, x) + b  # [batch, inst, f]
    if cfg.objective == "ce":
        return -torch.log_softmax(logits, dim=-1)[:, inst, targets].mean(dim=0).sum()
    out = torch.relu(logits)[:, inst, targets]
    return ((out - cfg.target_scale * x[:, inst, targets]) ** 2).mean(dim=0).sum()


def fine_tune_trajectory(
    model: ToyModel,
    targets: Int[Tensor, " inst"],
    cfg: ToyFineTuneConfig,
    checkpoints: Sequence[int],
    progress: bool = False,
) -> dict[int, FineTuneOutcome]:
    """:func:`fine_tune_toward_target` read after each checkpoint step (``1 <= step <= cfg.steps``):
    ``{step: outcome}``, every outcome against the responses before fine-tuning."""
    n_inst, d_hidden, n_feat = model.W.shape
    if targets.shape != (n_inst,):
        raise ValueError(
            f"need one target per instance: targets {tuple(targets.shape)} vs {n_inst} instances"
        )
    wanted = sorted(set(checkpoints))
    if not wanted or wanted[0] < 1 or wanted[-1] > cfg.steps:
        raise ValueError(f"checkpoints must lie in [1, {cfg.steps}], got {list(checkpoints)}")
    inst = torch.arange(n_inst)
    gen = torch.Generator().manual_seed(cfg.seed)
    W0 = model.W.detach().clone()
    b = model.b_final.detach().clone()
    if cfg.update == "full":
        W = W0.clone().requires_grad_(True)
        params = [W]

        def effective() -> Tensor:
            return W
    else:
        u = torch.zeros(n_inst, d_hidden, 1, requires_grad=True)
        v = (torch.randn(n_inst, 1, n_feat, generator=gen) / n_feat**0.5).requires_grad_(True)
        params = [u, v]

        def effective() -> Tensor:
            return W0 + u @ v

    opt = (torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.Adam)(params, lr=cfg.lr)
    background_p = (
        model.feature_probability if cfg.background else torch.zeros_like(model.feature_probability)
    )
    z0 = target_responses(W0, targets)
    similarity, cosine, norms = z0.numpy(), cosines_to_target(W0, targets).numpy(), W0.norm(dim=1).numpy()
    out = {}
    for step in tqdm(
        range(1, wanted[-1] + 1), desc=f"fine-tune ({cfg.objective}, {cfg.optimizer})", disable=not progress
    ):
        x = sample_sparse_features(background_p, cfg.batch_size, gen)
        x[:, inst, targets] = 1.0
        loss = _loss(cfg, effective(), b, x, targets)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        if step in wanted:
            with torch.no_grad():
                delta = (target_responses(effective(), targets) - z0).numpy()
            out[step] = FineTuneOutcome(targets.numpy().copy(), similarity, cosine, delta, norms)
    return out


def select_instances(model: ToyModel, index: Int[Tensor, " k"]) -> ToyModel:
    """A new model made of copies of ``model``'s instances ``index`` (repeats allowed), in that order."""
    cfg = ToyModelConfig(model.cfg.n_features, model.cfg.d_hidden, len(index))
    out = ToyModel(cfg, model.feature_probability[index], model.importance[index])
    with torch.no_grad():
        out.W.copy_(model.W[index])
        out.b_final.copy_(model.b_final[index])
    return out


def replicate_instances(model: ToyModel, repeats: int) -> ToyModel:
    """Each instance ``i`` of ``model`` repeated ``repeats`` times (as instances ``i*repeats ...``)."""
    return select_instances(model, torch.arange(model.cfg.n_instances).repeat_interleave(repeats))


# --- the chapter's study: regimes x sparsities x seeds ---------------------------------------------------


@dataclass(frozen=True)
class DerivationStudyConfig:
    """Everything chapter 2 varies. Base models use uniform importance and target feature 0."""

    n_features: int = 30
    d_hidden: int = 8
    feature_probabilities: tuple[float, ...] = (0.3, 0.1, 0.03, 0.01)
    train_steps: int = 4000
    seeds: tuple[int, ...] = (0, 1, 2)
    first_order: ToyFineTuneConfig = ToyFineTuneConfig(lr=0.01, steps=10)
    counter: ToyFineTuneConfig = ToyFineTuneConfig(objective="mse", optimizer="adam", lr=1e-3, steps=300)
    rank1_replicas: int = 32
    """Independent LoRA-style initialisations averaged in the rank-1 ensemble."""


@dataclass
class DerivationStudy:
    """Per-feature outcomes (``outcomes[(seed, regime)]``) and the per-instance statistics table."""

    config: DerivationStudyConfig
    models: dict[int, ToyModel]
    outcomes: dict[tuple[int, str], FineTuneOutcome]
    table: pd.DataFrame


def regimes(cfg: DerivationStudyConfig) -> dict[str, ToyFineTuneConfig]:
    """The fine-tuning regimes compared: the reward/MSE x SGD/Adam grid, cross-entropy under SGD (at the
    first-order settings), and the rank-1 update."""
    fo, co = cfg.first_order, cfg.counter
    return {
        "reward + SGD": fo,
        "reward + Adam": ToyFineTuneConfig(
            "reward", "adam", "full", co.lr, fo.steps, fo.batch_size, fo.background
        ),
        "MSE + SGD": ToyFineTuneConfig(
            "mse", "sgd", "full", fo.lr, co.steps, co.batch_size, co.background, co.target_scale
        ),
        "MSE + Adam": co,
        "CE + SGD": ToyFineTuneConfig("ce", "sgd", "full", fo.lr, fo.steps, fo.batch_size, fo.background),
        "rank-1 + SGD (one init)": ToyFineTuneConfig(
            "reward", "sgd", "rank1", fo.lr, fo.steps, fo.batch_size, fo.background
        ),
    }


def run_derivation_study(cfg: DerivationStudyConfig, progress: bool = True) -> DerivationStudy:
    """Train one batched base model per seed (one instance per feature probability), fine-tune it under
    every regime toward feature 0, and tabulate Pearson r and slope of ``Δz`` against ``W_jᵀW_t`` (and r
    against the cosine ``cos(W_j, W_t)``, which ignores how strongly each feature is represented)."""
    probs = torch.tensor(cfg.feature_probabilities, dtype=torch.float32)
    targets = torch.zeros(len(probs), dtype=torch.long)
    regime_configs = regimes(cfg)
    rows, outcomes, models = [], {}, {}
    for seed in tqdm(cfg.seeds, desc="seeds", disable=not progress):
        model = ToyModel(
            ToyModelConfig(cfg.n_features, cfg.d_hidden, len(probs)),
            probs,
            1.0,
            torch.Generator().manual_seed(seed),
        )
        train_toy_model(model, ToyTrainConfig(steps=cfg.train_steps, seed=seed), progress=False)
        models[seed] = model
        by_regime = {
            name: fine_tune_toward_target(model, targets, _with_seed(ft, seed))
            for name, ft in regime_configs.items()
        }
        # rank-1 ensemble: average Δz over independent random LoRA initialisations
        rank1 = fine_tune_toward_target(
            replicate_instances(model, cfg.rank1_replicas),
            targets.repeat_interleave(cfg.rank1_replicas),
            _with_seed(regime_configs["rank-1 + SGD (one init)"], seed),
        )
        by_regime["rank-1 + SGD (mean of inits)"] = replace(
            by_regime["reward + SGD"],
            delta_response=rank1.delta_response.reshape(len(probs), cfg.rank1_replicas, -1).mean(1),
        )
        for name, out in by_regime.items():
            outcomes[(seed, name)] = out
            for i, p in enumerate(cfg.feature_probabilities):
                mask = out.others(i)
                rows.append(
                    {
                        "seed": seed,
                        "regime": name,
                        "feature_probability": p,
                        "pearson_r": pearson_r(out.similarity[i][mask], out.delta_response[i][mask]),
                        "pearson_r_cosine": pearson_r(out.cosine[i][mask], out.delta_response[i][mask]),
                        "slope": fitted_slope(out.similarity[i][mask], out.delta_response[i][mask]),
                    }
                )
    return DerivationStudy(cfg, models, outcomes, pd.DataFrame(rows))


def _with_seed(ft: ToyFineTuneConfig, seed: int) -> ToyFineTuneConfig:
    return replace(ft, seed=seed)


@dataclass
class ClusterAmplification:
    """One point per (seed, target): a designated cluster's mean similarity to the target and its mean
    response change after fine-tuning toward that target."""

    seeds: np.ndarray
    targets: np.ndarray
    similarity: np.ndarray
    amplification: np.ndarray


def harmful_cluster_study(
    study: DerivationStudy, cluster: list[int], probability_index: int, ft: ToyFineTuneConfig
) -> ClusterAmplification:
    """Designate ``cluster`` as the "harmful" features; fine-tune each seed's base model (instance
    ``probability_index``) toward every feature outside the cluster, one run per target, all batched."""
    n_features = study.config.n_features
    if not cluster or any(not 0 <= c < n_features for c in cluster):
        raise ValueError(f"cluster must list features in [0, {n_features}), got {cluster}")
    outside = torch.tensor([f for f in range(n_features) if f not in set(cluster)])
    rows: list[tuple[int, int, float, float]] = []
    for seed, model in study.models.items():
        copies = select_instances(model, torch.full((len(outside),), probability_index, dtype=torch.long))
        out = fine_tune_toward_target(copies, outside, _with_seed(ft, seed))
        sim = out.similarity[:, cluster].mean(1)
        amp = out.delta_response[:, cluster].mean(1)
        rows += [(seed, int(t), float(s), float(a)) for t, s, a in zip(outside, sim, amp, strict=True)]
    seeds, targets, sim, amp = (np.array(col) for col in zip(*rows, strict=True))
    return ClusterAmplification(seeds, targets, sim, amp)


# --- the regimes at equal steps and learning rate ----------------------------------------------------------

SWEEP_CELLS: tuple[tuple[Objective, Optimizer], ...] = tuple(
    (o, opt) for o in ("reward", "mse", "ce") for opt in ("sgd", "adam")
)


def regime_sweep(
    study: DerivationStudy, lr: float, steps: Sequence[int], target_scale: float | None = None
) -> pd.DataFrame:
    """Every (objective, optimiser) cell at the same learning rate, read after each step count in
    ``steps``, on every seed's base model (target feature 0, background on): one row per (seed,
    objective, optimizer, steps, feature_probability) with Pearson r of ``Δz`` against ``W_jᵀW_t``. So a
    difference between cells is the objective's or the optimiser's, not the step count's or the rate's."""
    if not steps or min(steps) < 1:
        raise ValueError(f"steps must be positive step counts, got {list(steps)}")
    scale = study.config.counter.target_scale if target_scale is None else target_scale
    targets = torch.zeros(len(study.config.feature_probabilities), dtype=torch.long)
    rows = []
    for seed, model in study.models.items():
        for objective, optimizer in SWEEP_CELLS:
            ft = ToyFineTuneConfig(
                objective, optimizer, "full", lr, max(steps), target_scale=scale, seed=seed
            )
            for k, out in fine_tune_trajectory(model, targets, ft, steps).items():
                for i, p in enumerate(study.config.feature_probabilities):
                    mask = out.others(i)
                    r = pearson_r(out.similarity[i][mask], out.delta_response[i][mask])
                    rows.append(
                        {
                            "seed": seed,
                            "objective": objective,
                            "optimizer": optimizer,
                            "steps": k,
                            "feature_probability": p,
                            "pearson_r": r,
                        }
                    )
    return pd.DataFrame(rows)


def sign_flip_steps(sweep: pd.DataFrame, objective: str, optimizer: str) -> float:
    """The smallest swept step count at which the cell's mean r (over seeds and sparsities) is below 0;
    NaN when it never is."""
    cell = sweep[(sweep["objective"] == objective) & (sweep["optimizer"] == optimizer)]
    mean_r = cell.groupby("steps")["pearson_r"].mean()
    negative = mean_r[mean_r < 0]
    return float(negative.index.min()) if len(negative) else float("nan")


def sweep_table(sweep: pd.DataFrame) -> pd.DataFrame:
    """Mean r over seeds and sparsities: one row per (objective, optimizer), one column per step count,
    and the step count at which the sign first flips."""
    table = sweep.groupby(["objective", "optimizer", "steps"])["pearson_r"].mean().unstack("steps")
    table["sign flips at"] = [sign_flip_steps(sweep, o, opt) for o, opt in table.index]
    return table
