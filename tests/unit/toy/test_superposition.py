import math

import numpy as np
import pytest
import torch

from emgeom.toy import superposition as toy


def test_model_shapes_and_config_validation():
    model = toy.ToyModel(toy.ToyModelConfig(6, 3, 4), torch.tensor([1.0, 0.5, 0.1, 0.01]), 1.0)
    x = model.generate_batch(32, torch.Generator().manual_seed(0))
    assert x.shape == (32, 4, 6) and model(x).shape == (32, 4, 6)
    assert (x >= 0).all() and (x <= 1).all()
    with pytest.raises(ValueError, match="d_hidden"):
        toy.ToyModelConfig(5, 0, 1)
    with pytest.raises(ValueError, match="feature probabilities"):
        toy.ToyModel(toy.ToyModelConfig(5, 2, 1), 0.0)


def test_sparse_features_follow_the_probability():
    x = toy.sample_sparse_features(torch.full((1, 200), 0.1), 2000, torch.Generator().manual_seed(1))
    assert abs((x > 0).float().mean().item() - 0.1) < 0.01


def test_batched_instances_equal_separate_runs():
    cfg = toy.ToyModelConfig(5, 2, 3)
    probs = torch.tensor([0.5, 0.1, 0.02])
    batched = toy.ToyModel(cfg, probs, toy.importance_profile(5, 0.9), torch.Generator().manual_seed(3))
    singles = []
    for i in range(3):
        m = toy.ToyModel(toy.ToyModelConfig(5, 2, 1), probs[i : i + 1], toy.importance_profile(5, 0.9))
        with torch.no_grad():
            m.W.copy_(batched.W[i : i + 1])
        singles.append(m)
    data = [batched.generate_batch(64, torch.Generator().manual_seed(s)) for s in range(40)]
    train = toy.ToyTrainConfig(steps=40, lr=1e-2)
    toy.train_toy_model(batched, train, batch_fn=lambda s: data[s], progress=False)
    for i, m in enumerate(singles):
        toy.train_toy_model(m, train, batch_fn=lambda s, i=i: data[s][:, i : i + 1], progress=False)
        torch.testing.assert_close(m.W.detach()[0], batched.W.detach()[i], atol=1e-6, rtol=1e-5)
    assert not torch.allclose(singles[0].W, singles[1].W)  # the instances really differ


def regular_polygon(k: int, n_features: int, radius: float = 1.0) -> torch.Tensor:
    angles = torch.arange(n_features) * 2 * math.pi / k
    W = radius * torch.stack([torch.cos(angles), torch.sin(angles)])
    W[:, k:] = 0
    return W


def test_dimensionality_of_known_geometries():
    pentagon = regular_polygon(5, 5)[None]
    np.testing.assert_allclose(toy.feature_dimensionality(pentagon).numpy(), 0.4, atol=1e-6)
    antipodal = torch.tensor([[[1.0, -1.0, 0.0], [0.0, 0.0, 1.0]]])
    np.testing.assert_allclose(toy.feature_dimensionality(antipodal).numpy(), [[0.5, 0.5, 1.0]], atol=1e-6)
    assert toy.feature_dimensionality(torch.zeros(1, 2, 3)).abs().max() < 1e-6  # unrepresented -> 0


def test_polygon_check_on_constructed_shapes():
    assert toy.is_pentagon(regular_polygon(5, 5))
    assert not toy.is_pentagon(regular_polygon(4, 5))
    assert toy.polygon_check(regular_polygon(4, 5)).is_regular
    bent = regular_polygon(5, 5)
    bent[:, 0] = torch.tensor([math.cos(0.5), math.sin(0.5)])
    assert not toy.is_pentagon(bent)
    with pytest.raises(ValueError, match="2-D"):
        toy.polygon_check(torch.zeros(3, 5))


def test_training_finds_the_pentagon_when_sparse():
    """n=5, m=2, importance 0.9^i, p = 0.02: Elhage et al.'s pentagon (5 norms > 0.5, gaps ~ 72°)."""
    probs = torch.full((4,), 0.02)
    model, curve = toy.train_probability_sweep(
        5, 2, probs, 0.9, toy.ToyTrainConfig(steps=2000, lr=1e-2), progress=False
    )
    assert curve.losses[-1].mean() < curve.losses[0].mean()
    checks = [toy.polygon_check(model.W.detach()[i]) for i in range(4)]
    pentagons = [c for c in checks if c.n_represented == 5 and c.is_regular]
    assert len(pentagons) >= 2, checks
    assert all(abs(g - 72) < 10 for c in pentagons for g in c.gaps_degrees)


def test_dense_features_keep_only_two():
    train = toy.ToyTrainConfig(steps=4000, lr=1e-2)  # the dense solution settles slowly for some inits
    model, _ = toy.train_probability_sweep(5, 2, torch.ones(2), 0.9, train, progress=False)
    norms = toy.feature_norms(model.W.detach())
    assert ((norms > 0.5).sum(1) == 2).all()
    assert (norms[:, :2] > 0.5).all()  # the two most important ones
