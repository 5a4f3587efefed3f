import numpy as np
import pytest
import torch

from emgeom.claims.derivation import study as dv
from emgeom.toy import superposition as toy


def random_setup(n_inst=3, d=4, n=9, batch=16, dtype=torch.float64):
    g = torch.Generator().manual_seed(5)
    W = torch.randn(n_inst, d, n, generator=g, dtype=dtype)
    x = torch.rand(batch, n_inst, n, generator=g, dtype=dtype)
    return W, x, torch.tensor([0, 4, 8][:n_inst])


def test_closed_form_gradient_equals_autograd():
    W, x, t = random_setup()
    W.requires_grad_(True)
    dv.reward_objective(W, torch.zeros(3, 9, dtype=W.dtype), x, t).sum().backward()
    torch.testing.assert_close(W.grad, dv.reward_gradient_closed_form(W.detach(), x, t), atol=1e-12, rtol=0)


def test_one_step_with_only_the_target_is_exactly_two_eta_similarity():
    W, _, t = random_setup()
    only = torch.zeros(1, 3, 9, dtype=W.dtype)
    only[0, torch.arange(3), t] = 1
    eta = 0.01
    W1 = W + eta * dv.reward_gradient_closed_form(W, only, t)
    dz = dv.target_responses(W1, t) - dv.target_responses(W, t)
    expected = 2 * eta * dv.target_responses(W, t)
    mask = torch.ones_like(dz, dtype=torch.bool)
    mask[torch.arange(3), t] = False
    torch.testing.assert_close(dz[mask], expected[mask], atol=1e-14, rtol=0)
    torch.testing.assert_close(
        dz[mask], dv.first_order_response_change(W, only, t, eta)[mask], atol=1e-14, rtol=0
    )


def test_first_order_prediction_error_shrinks_quadratically():
    W, x, t = random_setup()
    errors = []
    for eta in (1e-2, 1e-3):
        W1 = W + eta * dv.reward_gradient_closed_form(W, x, t)
        actual = dv.target_responses(W1, t) - dv.target_responses(W, t)
        errors.append((actual - dv.first_order_response_change(W, x, t, eta)).abs().max().item())
    assert errors[1] < errors[0] / 50  # O(η²): 10x smaller η, ~100x smaller error


def test_readout_change_is_step_times_cosine():
    D = torch.randn(6, 11, dtype=torch.float64)
    cos = torch.nn.functional.cosine_similarity(D, D[:, [2]], dim=0)
    torch.testing.assert_close(dv.readout_change(D, 2, 0.3), 0.3 * cos, atol=1e-14, rtol=0)


@pytest.fixture(scope="module")
def trained():
    torch.manual_seed(0)
    model = toy.ToyModel(
        toy.ToyModelConfig(16, 5, 2), torch.tensor([0.1, 0.03]), 1.0, torch.Generator().manual_seed(0)
    )
    toy.train_toy_model(model, toy.ToyTrainConfig(steps=1500), progress=False)
    return model


def r_per_instance(out):
    return [
        np.corrcoef(out.similarity[i][out.others(i)], out.delta_response[i][out.others(i)])[0, 1]
        for i in range(2)
    ]


def test_reward_sgd_follows_similarity_and_mse_adam_inverts(trained):
    targets = torch.zeros(2, dtype=torch.long)
    before = trained.W.detach().clone()
    first = dv.fine_tune_toward_target(trained, targets, dv.ToyFineTuneConfig(lr=0.01, steps=10))
    assert min(r_per_instance(first)) > 0.99
    counter = dv.fine_tune_toward_target(
        trained,
        targets,
        dv.ToyFineTuneConfig(objective="mse", optimizer="adam", lr=1e-3, steps=300, target_scale=1.5),
    )
    assert max(r_per_instance(counter)) < -0.8
    torch.testing.assert_close(trained.W.detach(), before)  # the base model is untouched


def weight_change(model, targets, cfg, monkeypatch) -> torch.Tensor:
    """``W_after - W_before`` of one fine-tuning run, per instance (float64), read by spying on the two
    ``target_responses`` calls that compute the outcome (``W0`` first, the tuned weights last)."""
    seen: list[torch.Tensor] = []
    real = dv.target_responses

    def spy(W, t):
        seen.append(W.detach().double().clone())
        return real(W, t)

    with monkeypatch.context() as m:
        m.setattr(dv, "target_responses", spy)
        out = dv.fine_tune_toward_target(model, targets, cfg)
    before, after = seen[0], seen[-1]  # W0 first; the tuned weights are read last
    torch.testing.assert_close(before, model.W.detach().double())  # the spy saw W0 first
    np.testing.assert_allclose(
        out.delta_response,
        (dv.target_responses(after, targets) - dv.target_responses(before, targets)).numpy(),
        atol=1e-5,
    )  # ... and the weights the outcome was computed from
    return after - before


def test_rank1_update_is_rank_one(monkeypatch):
    # Dense background features on an untrained model: a full reward step W_t x̄ᵀ + (W x̄) e_tᵀ then has
    # two clearly different rank-one terms (on the sparse trained fixture W x̄ ≈ W_t and a full update is
    # itself nearly rank one, so the check would not discriminate).
    model = toy.ToyModel(
        toy.ToyModelConfig(16, 5, 2), torch.tensor([0.5, 0.3]), 1.0, torch.Generator().manual_seed(0)
    )
    targets = torch.zeros(2, dtype=torch.long)

    def second_over_first(update: str) -> torch.Tensor:
        cfg = dv.ToyFineTuneConfig(update=update, lr=0.01, steps=5)
        s = torch.linalg.svdvals(weight_change(model, targets, cfg, monkeypatch))  # [inst, d_hidden]
        assert (s[:, 0] > 1e-3).all()  # the weights did move
        return s[:, 1] / s[:, 0]

    # W0 + u vᵀ in float32: the second singular value of the change is rounding noise (~1e-6 relative)
    assert (second_over_first("rank1") < 1e-4).all()
    assert (second_over_first("full") > 1e-2).all()  # measured 0.05-0.17: a full update is not rank one
    with pytest.raises(ValueError, match="one target per instance"):
        dv.fine_tune_toward_target(model, torch.zeros(3, dtype=torch.long), dv.ToyFineTuneConfig())


def test_select_instances_copies_weights(trained):
    picked = dv.select_instances(trained, torch.tensor([1, 1, 0]))
    torch.testing.assert_close(picked.W.detach()[0], trained.W.detach()[1])
    torch.testing.assert_close(picked.W.detach()[2], trained.W.detach()[0])
    assert picked.feature_probability[0, 0] == trained.feature_probability[1, 0]


def test_study_and_cluster_on_tiny_settings():
    cfg = dv.DerivationStudyConfig(
        n_features=10,
        d_hidden=3,
        feature_probabilities=(0.1,),
        train_steps=200,
        seeds=(0, 1),
        rank1_replicas=3,
        counter=dv.ToyFineTuneConfig(objective="mse", optimizer="adam", steps=20),
    )
    study = dv.run_derivation_study(cfg, progress=False)
    assert set(study.table.regime) == set(dv.regimes(cfg)) | {"rank-1 + SGD (mean of inits)"}
    assert len(study.table) == 2 * (len(dv.regimes(cfg)) + 1)
    cluster = dv.harmful_cluster_study(study, [1, 2], 0, cfg.first_order)
    assert len(cluster.targets) == 2 * 8 and not set(cluster.targets) & {1, 2}
    assert np.corrcoef(cluster.similarity, cluster.amplification)[0, 1] > 0.95
    with pytest.raises(ValueError, match="cluster must list features"):
        dv.harmful_cluster_study(study, [42], 0, cfg.first_order)


def test_trajectory_checkpoints_equal_shorter_runs(trained):
    targets = torch.zeros(2, dtype=torch.long)
    cfg = dv.ToyFineTuneConfig(objective="ce", lr=0.01, steps=6, seed=3)
    path = dv.fine_tune_trajectory(trained, targets, cfg, [2, 6])
    assert sorted(path) == [2, 6]
    np.testing.assert_allclose(
        path[6].delta_response, dv.fine_tune_toward_target(trained, targets, cfg).delta_response
    )
    short = dv.fine_tune_toward_target(
        trained, targets, dv.ToyFineTuneConfig(objective="ce", lr=0.01, steps=2, seed=3)
    )
    np.testing.assert_allclose(path[2].delta_response, short.delta_response)
    with pytest.raises(ValueError, match="checkpoints must lie"):
        dv.fine_tune_trajectory(trained, targets, cfg, [7])


def test_cross_entropy_step_matches_its_first_order_formula():
    """One small SGD step on softmax cross-entropy with only the target present: to first order,
    Δz_j = η[(2 - p_t) W_jᵀW_t - p_j ‖W_t‖² - Σ_k p_k W_jᵀW_k] with p = softmax(Wᵀ W_t + b)."""
    torch.manual_seed(0)
    model = toy.ToyModel(
        toy.ToyModelConfig(7, 3, 1), torch.tensor([0.1]), 1.0, torch.Generator().manual_seed(1)
    )
    eta, t = 1e-4, 2
    out = dv.fine_tune_toward_target(
        model, torch.tensor([t]), dv.ToyFineTuneConfig(objective="ce", lr=eta, steps=1, background=False)
    )
    W = model.W.detach()[0].double()  # [d, f]
    p = torch.softmax(W.T @ W[:, t] + model.b_final.detach()[0].double(), dim=0)
    gram = W.T @ W
    predicted = eta * ((2 - p[t]) * gram[:, t] - p * gram[t, t] - gram @ p)
    others = np.arange(7) != t
    np.testing.assert_allclose(out.delta_response[0][others], predicted.numpy()[others], rtol=5e-3, atol=2e-7)


def test_sign_flip_steps_reads_the_first_negative_mean() -> None:
    import pandas as pd

    sweep = pd.DataFrame(
        [
            {"objective": "mse", "optimizer": "adam", "steps": k, "seed": s, "pearson_r": r}
            for k, rs in ((1, (0.5, 0.3)), (10, (0.1, -0.3)), (100, (-0.5, -0.6)))
            for s, r in enumerate(rs)
        ]
    )
    assert dv.sign_flip_steps(sweep, "mse", "adam") == 10
    assert np.isnan(dv.sign_flip_steps(sweep[sweep["steps"] == 1], "mse", "adam"))
    table = dv.sweep_table(sweep.assign(feature_probability=0.1))
    assert table.loc[("mse", "adam"), "sign flips at"] == 10


def test_regime_sweep_covers_every_cell_at_every_step_count():
    cfg = dv.DerivationStudyConfig(
        n_features=8, d_hidden=3, feature_probabilities=(0.1, 0.3), train_steps=100, seeds=(0,)
    )
    study = dv.run_derivation_study(cfg, progress=False)
    sweep = dv.regime_sweep(study, lr=1e-3, steps=[1, 5])
    assert len(sweep) == len(dv.SWEEP_CELLS) * 2 * 2
    assert set(zip(sweep["objective"], sweep["optimizer"], strict=True)) == set(dv.SWEEP_CELLS)
    first = sweep[(sweep["objective"] == "reward") & (sweep["optimizer"] == "sgd") & (sweep["steps"] == 1)]
    assert (first["pearson_r"] > 0.9).all()  # one small reward step follows similarity
