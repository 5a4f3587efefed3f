"""Shared fixtures: every RNG seeded, hubs offline, one CPU thread."""

from __future__ import annotations

import os
import random

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_organism(tmp_path_factory: pytest.TempPathFactory):
    """A tiny organism (2 layers, d=32, a few steps) built once per test session in a temp folder."""
    import torch

    from emgeom.organism.build import OrganismConfig, OrganismModelConfig, build_organism
    from emgeom.training import TrainConfig

    torch.set_num_threads(1)  # session fixtures run before the autouse one; float sums depend on threads

    cfg = OrganismConfig(
        model=OrganismModelConfig(d_model=32, n_layers=2, n_heads=2, n_ctx=128),
        pretrain=TrainConfig(steps=6, batch_size=8, lr=3e-3, warmup_steps=2),
        align=TrainConfig(steps=3, batch_size=8, lr=1e-3, warmup_steps=1),
        seed=0,
    )
    return build_organism(cfg, root=tmp_path_factory.mktemp("artifacts"), progress=False)
