# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# (ch-toy-superposition)=
# # 1. Toy models of superposition
#
# The paper's account of emergent misalignment starts from one premise: a network stores more features
# than it has dimensions, so features share directions (*superposition*) and are not independent of each
# other. This chapter shows that premise happening in the smallest setting where it can be seen, the toy
# model of {cite:t}`elhage2022toy`, which we rebuild from the paper's description.
#
# A toy model compresses $n$ sparse features $x \in [0,1]^n$ into $m < n$ hidden dimensions with a matrix
# $W \in \mathbb{R}^{m \times n}$ and reads them back with its transpose:
#
# $$ h = W x, \qquad x' = \mathrm{ReLU}(W^\top h + b) = \mathrm{ReLU}(W^\top W x + b). $$
#
# Feature $i$ is present with probability $p$ (the *sparsity* is $S = 1 - p$) and, when present, uniform
# in $[0, 1]$. The loss is the importance-weighted squared error $\sum_i I_i (x_i - x'_i)^2$. Column $W_i$
# is feature $i$'s direction in the hidden space; $W^\top W$ says how much each feature leaks into every
# other one's output (*interference*). Every model below is one *instance* of a batched tensor
# (`emgeom.toy.superposition.ToyModel`), so a whole sweep over sparsities trains as one run.

# %% tags=["parameters"]
n_features: int = 5
d_hidden: int = 2
n_instances: int = 10
smallest_probability: float = 0.01
importance_decay: float = 0.9
steps: int = 5000
lr: float = 0.003
seeds: list[int] = [0, 1, 2]
sparse_probability_cutoff: float = 0.05
geometry_n_features: int = 20
geometry_d_hidden: int = 5
geometry_importance_decay: float = 0.7
geometry_n_instances: int = 16
geometry_steps: int = 4000
progress: bool = True

# %% tags=["hide-input"]
import time

import numpy as np
import pandas as pd
import torch

from emgeom.core.results import record
from emgeom.plots import superposition as superposition_plots
from emgeom.toy import superposition as toy

# %%
torch.set_num_threads(1)
start = time.perf_counter()
probabilities = toy.log_spaced_probabilities(n_instances, smallest_probability)
importance = toy.importance_profile(n_features, importance_decay)

# %% [markdown]
# ## Five features in two dimensions
#
# With $n = 5$ features, $m = 2$ dimensions and importance $0.9^i$, we train one instance per feature
# probability, from dense ($p = 1$) to very sparse, once per seed (AdamW, learning rate `lr`; at
# $10^{-3}$ the dense instances needed about 10,000 steps to settle, so the CPU profile uses a larger one).

# %%
sweeps = {
    seed: toy.train_probability_sweep(
        n_features, d_hidden, probabilities, importance_decay,
        toy.ToyTrainConfig(steps=steps, lr=lr, seed=seed), progress=progress,
    )
    for seed in seeds
}
W = {seed: model.W.detach() for seed, (model, _) in sweeps.items()}
superposition_plots.feature_directions_2d(W[seeds[0]].numpy(), probabilities.numpy(), importance.numpy());

# %% [markdown]
# When features are dense, the model keeps the two most important ones, orthogonally, and drops the rest:
# it acts like PCA. As features get sparser, interference matters less often than losing a feature, and
# the model packs more features than dimensions. Elhage et al. found that at high sparsity all five sit
# at the vertices of a regular pentagon. The table checks each trained instance for a regular polygon
# (features with $\|W_i\| > 0.5$, neighbouring angles within 10° of $360°/k$).

# %%
checks = pd.DataFrame(
    [
        {"seed": seed, "feature_probability": float(p), **vars(toy.polygon_check(W[seed][i]))}
        for seed in seeds
        for i, p in enumerate(probabilities)
    ]
)
checks["pentagon"] = (checks.n_represented == 5) & checks.is_regular
checks.pivot(index="feature_probability", columns="seed", values="n_represented").sort_index(ascending=False)

# %%
sparse = checks[checks.feature_probability <= sparse_probability_cutoff]
sparsest = checks[checks.feature_probability == checks.feature_probability.min()]
pentagon_fraction = float(sparse.pentagon.mean()) if len(sparse) else float("nan")
print(f"pentagons among sparse instances (p <= {sparse_probability_cutoff}): "
      f"{int(sparse.pentagon.sum())} of {len(sparse)}")
record("pentagon_found", float(sparsest.pentagon.all()), n_seeds=len(seeds),
       note=f"1.0 if the sparsest instance (p={float(probabilities.min()):.3g}) is a regular pentagon in all seeds")
record("pentagon_fraction_sparse", pentagon_fraction, n_seeds=len(seeds),
       note=f"share of instances with p <= {sparse_probability_cutoff} that form a regular pentagon")

# %% [markdown]
# The Gram matrices $W^\top W$ of one seed tell the same story from the outputs' side: a clean identity
# block when dense, then negative off-diagonal entries (features placed in opposition) as sparsity grows.

# %%
superposition_plots.gram_heatmaps(W[seeds[0]].numpy(), probabilities.numpy());

# %% [markdown]
# ## Feature dimensionality
#
# How much of a dimension does each feature get? Elhage et al. define the *dimensionality* of feature $i$
#
# $$ D_i = \frac{\|W_i\|^4}{\sum_j (\hat W_i \cdot W_j)^2}, $$
#
# which is 1 for a feature with a dimension to itself, $1/2$ for each member of an antipodal pair and
# $2/5$ for a pentagon vertex. Their key observation is that the values cluster on such fractions
# (*plateaus*) rather than spreading out. We train a larger sweep, $n = 20$ features in $m = 5$
# dimensions with importance $0.7^i$, and show $D_i$ for every represented feature.

# %%
geo_probabilities = toy.log_spaced_probabilities(geometry_n_instances, smallest_probability)
geo_model, geo_curve = toy.train_probability_sweep(
    geometry_n_features, geometry_d_hidden, geo_probabilities, geometry_importance_decay,
    toy.ToyTrainConfig(steps=geometry_steps, lr=lr, seed=seeds[0]), progress=progress,
)
geo_w = geo_model.W.detach()
dims = toy.feature_dimensionality(geo_w).numpy()
norms = toy.feature_norms(geo_w).numpy()
superposition_plots.dimensionality_plot(dims, norms, geo_probabilities.numpy());

# %%
represented = dims[norms > 0.5]
near = {label: float(np.mean(np.abs(represented - value) < 0.05)) for label, value in superposition_plots.PLATEAUS.items()}
print(f"{represented.size} represented features; share within ±0.05 of each plateau:")
print(pd.Series(near).round(3).to_string())
record("dimensionality_near_half_fraction", near["1/2"], n_seeds=1,
       note=f"share of represented features, |D_i - 1/2| < 0.05 (n={geometry_n_features}, m={geometry_d_hidden})")
record("dimensionality_near_two_fifths_fraction", near["2/5"], n_seeds=1,
       note="share of represented features with |D_i - 2/5| < 0.05")

# %% [markdown]
# What this run shows is printed above: the share of represented features that sit on each plateau. In
# our CPU runs most represented features of this decaying-importance model sit at 1 (dense) or on the
# $1/2$ plateau (antipodal pairs), and a smaller cluster sits near $2/5$. Elhage et al.'s clearest
# plateau plots use many more, equally important features, a sweep too large for the CPU profile.
#
# **What to take into the next chapter.** In superposition, feature directions are not orthogonal:
# $W_j^\top W_t \neq 0$ for many pairs. The next chapter derives what that implies for fine-tuning: a
# gradient step that strengthens one feature moves every feature that shares its direction.

# %%
print(f"chapter wall time: {time.perf_counter() - start:.1f} s")
