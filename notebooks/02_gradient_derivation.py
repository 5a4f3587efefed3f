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
# (ch-gradient-derivation)=
# # 2. One gradient step moves every similar feature
#
# The paper {cite}`minegishi2026emergent` explains emergent misalignment with a gradient-level argument:
# when features share dimensions, a fine-tuning step that strengthens the *target* feature also
# strengthens every other feature in proportion to its similarity with the target. If harmful features
# sit close to the target, they are strengthened too. The paper's own derivation is not public; this
# chapter writes one in our notation, checks it numerically on the toy models of chapter 1, and shows
# the regime where it stops holding.
#
# ## The derivation
#
# Take a toy model $x' = \mathrm{ReLU}(W^\top W x + b)$ with feature directions $W_j$ (the columns of
# $W$). Call $z_j = (W^\top W e_t)_j = W_j^\top W_t$ the **response** of output $j$ to a unit input on
# the target feature $t$: how much feature $j$ "fires" when the target is present.
#
# Fine-tune on data in which the target is present at full strength ($x_t = 1$), with a *reward-like*
# objective: the batch mean of the target's pre-activation output, $R = \overline{y_t}$ with
# $y = W^\top W x + b$. Because $y_t = \sum_k x_k\, W_t^\top W_k + b_t$, the gradient is
#
# $$ \frac{\partial R}{\partial W} = W_t\, \bar x^\top + (W \bar x)\, e_t^\top , $$
#
# with $\bar x$ the batch-mean input. One ascent step $W \leftarrow W + \eta\, \partial R / \partial W$
# changes column $j \ne t$ by $\eta\, \bar x_j W_t$ and the target column by $\eta (W_t + W \bar x)$.
# To first order in $\eta$, the response of every other feature changes by
#
# $$ \Delta z_j = \eta \Big[\, 2 W_j^\top W_t \;+\; \bar x_j \big(\|W_t\|^2 + \|W_j\|^2\big)
#    \;+\; \sum_{k \ne t, j} \bar x_k\, W_j^\top W_k \Big]. $$
#
# When only the target is present ($\bar x = e_t$) this is exactly
#
# $$ \boxed{\;\Delta z_j = 2\eta\, W_j^\top W_t\;} $$
#
# and since only $W_t$ moves (it is scaled by $1 + 2\eta$), it stays exact over $k$ steps with
# $2\eta k$ replaced by $(1+2\eta)^k - 1$. Other features that occur in the fine-tuning data add the
# bracket's background terms, which do not depend on similarity to the target.
#
# **At the level of representations** the same statement is simpler still. If a step moves the hidden
# state by $\Delta h = \eta\, \hat d_t$ along the target's unit direction, every linear read-out
# $a_j = \hat d_j^\top h$ (an SAE latent's pre-activation, with encoder $\approx$ decoder) changes by
# $\Delta a_j = \eta \cos(d_j, d_t)$.
#
# **What is assumed**: (i) first order in the step size; (ii) a reward-like objective whose gradient
# does not vanish once the target is strong (no bounded target, no saturation); (iii) for the SAE
# version, read-out (encoder) directions close to the feature (decoder) directions. This chapter tests
# (i) and (ii) on toy models, with cross-entropy beside the reward and every regime at equal settings.
# (iii) is avoided rather than assumed: chapter 5 reads the change of the residual's projection on each
# decoder direction, which the account predicts directly, and shows the encoder-decoder cosine beside.

# %% tags=["parameters"]
n_features: int = 30
d_hidden: int = 8
feature_probabilities: list[float] = [0.3, 0.1, 0.03, 0.01]
main_probability: float = 0.03
train_steps: int = 4000
seeds: list[int] = [0, 1, 2]
ft_lr: float = 0.01
ft_steps: int = 10
counter_lr: float = 0.001
counter_steps: int = 300
counter_target_scale: float = 1.5
sweep_lr: float = 0.001
sweep_steps: list[int] = [1, 3, 10, 30, 100, 300]
rank1_replicas: int = 32
harmful_cluster: list[int] = [1, 2, 3, 4, 5]
n_bootstrap: int = 1000
progress: bool = True

# %% tags=["hide-input"]
import time

import torch

from emgeom.claims.derivation import study as dv
from emgeom.core.results import record
from emgeom.core.stats import bootstrap_pearson, mean_ci
from emgeom.plots import superposition as superposition_plots

# %%
torch.set_num_threads(1)
start = time.perf_counter()
if main_probability not in feature_probabilities:
    raise ValueError(f"main_probability={main_probability} must be one of {feature_probabilities}")
main_index = feature_probabilities.index(main_probability)

# %% [markdown]
# ## (a) One step, exactly
#
# First the algebra itself: autograd's gradient of $R$ against the closed form, and one SGD step's
# measured $\Delta z$ against the boxed formula, on a random model with only the target present. Both
# should agree to float precision (a tiny, unavoidable rounding difference), not approximately.

# %%
gen = torch.Generator().manual_seed(seeds[0])
W = torch.randn(4, d_hidden, n_features, generator=gen, dtype=torch.float64, requires_grad=True)
b = torch.zeros(4, n_features, dtype=torch.float64)
targets = torch.tensor([0, 3, 7, 11])
x = torch.rand(64, 4, n_features, generator=gen, dtype=torch.float64)
dv.reward_objective(W, b, x, targets).sum().backward()
closed = dv.reward_gradient_closed_form(W.detach(), x, targets)
print(f"max |autograd - closed form| of ∂R/∂W: {(W.grad - closed).abs().max().item():.2e}")

only_target = torch.zeros(1, 4, n_features, dtype=torch.float64)
only_target[0, torch.arange(4), targets] = 1.0
W0 = W.detach()
W1 = W0 + ft_lr * dv.reward_gradient_closed_form(W0, only_target, targets)
measured = dv.target_responses(W1, targets) - dv.target_responses(W0, targets)
predicted = 2 * ft_lr * dv.target_responses(W0, targets)
others = torch.ones_like(measured, dtype=torch.bool)
others[torch.arange(4), targets] = False
print(f"max |measured Δz_j - 2η W_jᵀW_t| over j ≠ t: {(measured - predicted)[others].abs().max().item():.2e}")
readout = dv.readout_change(W0[0], int(targets[0]), ft_lr)
cos = torch.nn.functional.cosine_similarity(W0[0], W0[0][:, targets[0]][:, None], dim=0)
print(f"max |Δa_j - η cos(d_j, d_t)| (representation level): {(readout - ft_lr * cos).abs().max().item():.2e}")

# %% [markdown]
# ## (b) A few steps of fine-tuning on trained toy models
#
# Now the realistic case: base models trained as in chapter 1 ($n = 30$ features, $m = 8$ dimensions,
# uniform importance), one per feature probability and seed, then fine-tuned toward feature 0 for a few
# small SGD steps on data where the target is always present **and the other features keep occurring**
# with their usual probabilities, so the background terms of the derivation are active. For every
# other feature we measure $\Delta z_j$ and plot it against its similarity $W_j^\top W_t$ before
# fine-tuning.
#
# The same run fine-tunes each base model under five other regimes, discussed below.

# %%
cfg = dv.DerivationStudyConfig(
    n_features=n_features, d_hidden=d_hidden, feature_probabilities=tuple(feature_probabilities),
    train_steps=train_steps, seeds=tuple(seeds),
    first_order=dv.ToyFineTuneConfig(lr=ft_lr, steps=ft_steps),
    counter=dv.ToyFineTuneConfig(objective="mse", optimizer="adam", lr=counter_lr, steps=counter_steps,
                              target_scale=counter_target_scale),
    rank1_replicas=rank1_replicas,
)
study = dv.run_derivation_study(cfg, progress=progress)
theory = 2 * ft_lr * ft_steps
superposition_plots.response_scatter(
    {"reward + SGD": study.outcomes[(seeds[0], "reward + SGD")],
     "MSE + Adam": study.outcomes[(seeds[0], "MSE + Adam")]},
    instance=main_index, theory_slope={"reward + SGD": theory},
);

# %%
first = study.table[study.table.regime == "reward + SGD"].copy()
first["slope_vs_theory"] = first.slope / theory
per_seed_r = first.groupby("seed").pearson_r.mean()
per_seed_ratio = first.groupby("seed").slope_vs_theory.mean()
main_rows = first[first.feature_probability == main_probability]
out0 = study.outcomes[(seeds[0], "reward + SGD")]
mask = out0.others(main_index)
boot = bootstrap_pearson(out0.similarity[main_index][mask], out0.delta_response[main_index][mask], n_bootstrap)
print(f"seed {seeds[0]}, p={main_probability}: r = {boot} (bootstrap over features)")
first.groupby("feature_probability")[["pearson_r", "pearson_r_cosine", "slope_vs_theory"]].mean().round(4)

# %%
r_est, ratio_est = mean_ci(per_seed_r.values, bounds=(-1, 1)), mean_ci(per_seed_ratio.values)
exact = ((1 + 2 * ft_lr) ** ft_steps - 1) / theory
print(f"mean Pearson r over sparsities, across seeds: {r_est}")
print(f"measured slope / first-order 2ηk: {ratio_est}; the exact compounding (1+2η)^k-1 over 2ηk is {exact:.4f}")
record("first_order_pearson_r", r_est.value, ci=r_est.ci, n_seeds=r_est.n,
       note=f"reward + SGD, η={ft_lr}, k={ft_steps}; mean over feature probabilities {feature_probabilities}")
record("first_order_slope_vs_theory", ratio_est.value, ci=ratio_est.ci, n_seeds=ratio_est.n,
       note=f"fitted slope of Δz on W_jᵀW_t divided by 2ηk; exact compounding predicts {exact:.4f}")

# %% [markdown]
# The table gives, per feature probability and averaged over seeds, Pearson r of $\Delta z_j$ against
# the similarity $W_j^\top W_t$ (what the derivation predicts exactly) and against the cosine
# $\cos(W_j, W_t)$ (which drops the norms $\|W_j\|$; the two agree where represented features have
# similar norms and part where many features are weakly represented).
#
# In the first-order regime $\Delta z_j$ follows the similarity with the target almost perfectly at every
# sparsity. The fitted slope over $2\eta k$ (last column) is what the printed exact compounding
# $((1+2\eta)^k - 1)/2\eta k$ predicts when the background is sparse; where other features co-occur
# often, their terms in the bracket, which do not follow similarity, pull the fitted slope below it.
#
# ## (c) A harmful cluster
#
# The paper's claim is about *sets* of features: harmful features near the target get amplified. We
# designate a cluster of features as "harmful" and fine-tune toward each feature outside it in turn (one
# batched run per seed, on the base model with $p$ = `main_probability`). Each point below is one
# (seed, target) pair: the cluster's mean similarity to that target, against its mean response change.

# %%
cluster = dv.harmful_cluster_study(study, harmful_cluster, main_index, cfg.first_order)
cluster_r = bootstrap_pearson(cluster.similarity, cluster.amplification, n_bootstrap)
superposition_plots.cluster_plot(cluster.similarity, cluster.amplification, f"r = {cluster_r.value:.3f}");
record("harmful_cluster_pearson_r", cluster_r.value, ci=cluster_r.ci, n_seeds=len(seeds),
       note=f"cluster {harmful_cluster}; {cluster_r.n} (seed, target) points; bootstrap CI over points")

# %% [markdown]
# ## (d) A rank-1, LoRA-like update
#
# Fine-tuning in practice often trains a low-rank adapter: $W' = W + u v^\top$, with $u = 0$ and $v$
# random at the start (LoRA's initialisation). The first step only moves $u$, to $u \propto v_t W\bar x
# + (v^\top \bar x) W_t$, so the update changes feature $j$'s response by
#
# $$ \Delta z_j \approx v_j\, u^\top W_t \;+\; v_t\, W_j^\top u . $$
#
# The second term follows similarity to the target; the first is proportional to the *random*
# coordinate $v_j$ and ignores it. A single rank-1 run therefore tracks similarity only loosely, while
# the average over many random initialisations recovers the law (the random term averages out).

# %%
regime_table = study.table.groupby(["regime", "feature_probability"]).pearson_r.mean().unstack().round(3)
regime_table

# %% [markdown]
# ## Where it breaks: a bounded target under Adam
#
# Real fine-tuning does not maximise a feature without bound: it minimises a loss (cross-entropy, or here
# a squared error to a *bounded* target $x'_t = c\, x_t$) with Adam. Once the target output reaches its
# target, the remaining error comes from interference: other features that co-occur leak into the
# target's output through $W_t^\top W_k$. The gradient of that error pushes the target *away* from its
# neighbours, and Adam, which rescales each coordinate by its own gradient history, makes these small
# gradients as effective as large ones. The optimiser orthogonalises the target instead of dragging its
# neighbours along: $\Delta z_j$ becomes **anti**-correlated with similarity.
#
# The heat map crosses the two choices: objective (reward vs bounded squared error) and optimiser (SGD vs
# Adam), at each sparsity, with the rank-1 variants below them.

# %%
superposition_plots.regime_heatmap(study.table);

# %%
counter = study.table[study.table.regime == "MSE + Adam"].groupby("seed").pearson_r.mean()
counter_est = mean_ci(counter.values, bounds=(-1, 1))
print(f"MSE + Adam: mean Pearson r across seeds {counter_est}")
record("counter_regime_pearson_r", counter_est.value, ci=counter_est.ci, n_seeds=counter_est.n,
       note=f"squared error to {counter_target_scale}·x_t under Adam (lr={counter_lr}, {counter_steps} steps)")
rank1 = study.table[study.table.regime == "rank-1 + SGD (mean of inits)"].groupby("seed").pearson_r.mean()
rank1_est = mean_ci(rank1.values, bounds=(-1, 1))
record("rank1_mean_of_inits_pearson_r", rank1_est.value, ci=rank1_est.ci, n_seeds=rank1_est.n,
       note=f"Δz averaged over {rank1_replicas} random LoRA-style initialisations")
ce = study.table[study.table.regime == "CE + SGD"].groupby("seed").pearson_r.mean()
ce_est = mean_ci(ce.values, bounds=(-1, 1))
record("ce_first_order_pearson_r", ce_est.value, ci=ce_est.ci, n_seeds=ce_est.n,
       note=f"softmax cross-entropy + SGD, η={ft_lr}, k={ft_steps}; mean over feature probabilities")
print(f"cross-entropy + SGD at the first-order settings: mean Pearson r across seeds {ce_est}")

# %% [markdown]
# ## A fair comparison: every regime at equal steps and learning rate
#
# The cells of the heat map above ran at their own settings (the reward regime 10 steps at $\eta=$
# `ft_lr`, the bounded-target regime 300 steps at `counter_lr`), so the sign flip could come from the
# step count or the learning rate as much as from the objective or the optimiser. Here every
# (objective, optimiser) cell, cross-entropy included, runs at one learning rate (`sweep_lr`) and is read
# after each step count in `sweep_steps`, on the same base models. (A learning rate is not the same
# quantity for SGD and Adam, whose steps are about the rate per coordinate whatever the gradient, so
# equal settings equalise the step count and the nominal rate, not the step size.) For cross-entropy the
# first-order change is $\Delta z_j \approx \eta[(2-p_t) W_j^\top W_t - p_j\|W_t\|^2 - \sum_k p_k
# W_j^\top W_k]$ with $p$ the softmax of the outputs (tested in `tests/unit/toy/test_derivation.py`);
# the sum includes $k = t$, so the similarity coefficient is $2 - 2p_t$: cross-entropy follows
# similarity while the model does not yet predict the target, and the term vanishes as $p_t \to 1$.

# %%
sweep = dv.regime_sweep(study, lr=sweep_lr, steps=sweep_steps)
superposition_plots.regime_sweep_plot(sweep);

# %%
sweep_summary = dv.sweep_table(sweep)
flip = dv.sign_flip_steps(sweep, "mse", "adam")
record("sign_flip_steps_adam", flip, n_seeds=len(seeds),
       note=f"bounded target (MSE) + Adam at lr {sweep_lr}: first swept step count with mean r < 0 (n/a: never)")
print("The bounded target under Adam first anti-correlates after "
      + (f"{flip:.0f} steps" if flip == flip else f"none of the swept step counts {sweep_steps}")
      + f" at learning rate {sweep_lr}.")
sweep_summary.round(3)

# %% [markdown]
# ## Which regime is real fine-tuning in?
#
# Both, at different times. Read the heat map against the derivation's assumptions:
#
# - **Early in fine-tuning**, with a small learning rate and a loss far from its minimum (a new behaviour
#   the model does not yet produce), the gradient of cross-entropy on the target behaviour acts like a
#   reward: the first-order law holds, and features near the target are amplified with it. This is the
#   regime the paper's argument needs. Whether a real fine-tuning run stays in it long enough for the
#   amplification to matter is not settled by this toy; the later chapters measure it.
# - **Once the target behaviour is learned**, the loss is bounded and Adam works on the residual
#   interference; then the optimiser can separate the target from its neighbours, and the law can invert.
#   How far training goes into this regime is an empirical question for each fine-tuning run; the later
#   chapters measure it on a model organism instead of assuming it.
# - **Rank-1 adapters** obey the law on average over initialisations, not run by run: a single adapter
#   adds a random, similarity-independent component, which is one reason per-latent measurements in
#   real fine-tunes are noisy.
#
# The derivation is therefore a statement about the first-order regime of a reward-like objective, and
# this chapter shows both that it holds exactly there and that it is not a law of fine-tuning in general.
# The equal-settings sweep above says, for this run, at which step count each objective and optimiser
# parts from the law. Be clear about what could not have failed: the step (a) check is an identity, and
# with the target present in every row the multi-step reward and cross-entropy results are forced by
# the same algebra (each step rescales the target's own column, and $\Delta z_j \propto W_j^\top W_t$
# follows). The scorecard records them as *holding by construction*. What could have come out otherwise
# is where the law breaks: the bounded target under Adam, and the step count at which it turns.

# %%
print(f"chapter wall time: {time.perf_counter() - start:.1f} s")
