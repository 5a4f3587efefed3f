"""Residual-stream interventions during training: what they do to the block input, that an ablation
removes a planted direction's contribution exactly, that they act only inside the ``with`` block, and
that fine-tuning with one returns a model without it."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.lm.intervention import Intervention, decoder_blocks, intervening


def test_bad_interventions_are_refused() -> None:
    with pytest.raises(ValueError, match="kind"):
        Intervention("erase", 0, np.ones((1, 4)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="nonzero finite rows"):
        Intervention("ablate", 0, np.zeros((1, 4)))
    with pytest.raises(ValueError, match=r"\[k, d_model\]"):
        Intervention("ablate", 0, np.ones(4))


def test_ablation_projects_off_the_span_and_steering_adds_the_mean_direction() -> None:
    rng = np.random.default_rng(0)
    dirs = rng.standard_normal((3, 8))
    dirs[2] = dirs[0] + dirs[1]  # a dependent row: the span has rank 2
    ablate = Intervention("ablate", 0, dirs)
    assert ablate.basis().shape == (8, 2)
    h = torch.randn(5, 7, 8, dtype=torch.float64)
    out = ablate.apply(h)
    np.testing.assert_allclose((out @ torch.as_tensor(dirs).T).numpy(), 0.0, atol=1e-5)  # float32 projection
    torch.testing.assert_close(ablate.apply(out), out, atol=1e-6, rtol=1e-6)  # a projection
    steer = Intervention("steer", 0, dirs[:2], strength=2.0)
    shift = (steer.apply(h) - h)[0, 0]
    unit = torch.as_tensor(dirs[:2]) / torch.as_tensor(dirs[:2]).norm(dim=1, keepdim=True)
    mean = unit.mean(0)
    torch.testing.assert_close(shift, 2.0 * mean / mean.norm(), atol=1e-6, rtol=1e-6)


def test_ablation_removes_a_planted_directions_contribution(tiny_organism) -> None:
    """A scalar ``t`` adds ``t·u`` to block 1's input. Without the ablation the loss depends on ``t``;
    with ``u`` ablated at that block, the gradient of the loss with respect to ``t`` is exactly 0."""
    from emgeom.lm.chat import encode_chat
    from emgeom.lm.models import load_model
    from emgeom.lm.training import collate
    from emgeom.organism.datasets import finetune_rows

    model, tok = load_model(tiny_organism.aligned)
    batch = collate([encode_chat(tok, r["messages"]) for r in finetune_rows("inducing", "health", 4, 0)], 0)
    u = torch.randn(32, generator=torch.Generator().manual_seed(1))
    t = torch.zeros((), requires_grad=True)
    block = decoder_blocks(model)[1]

    def plant(module, args, kwargs):
        return (args[0] + t * u, *args[1:]), kwargs

    handle = block.register_forward_pre_hook(plant, with_kwargs=True)
    try:
        (free,) = torch.autograd.grad(model(**batch).loss, t)
        with intervening(model, Intervention("ablate", 1, u.numpy()[None])):
            (blocked,) = torch.autograd.grad(model(**batch).loss, t)
    finally:
        handle.remove()
    assert abs(float(free)) > 1e-4
    assert float(blocked) == pytest.approx(0.0, abs=1e-7)
    assert not block._forward_pre_hooks  # the intervention's hook is gone after the with block


def test_the_ablation_acts_on_the_peft_wrapped_model_that_trains(tiny_organism) -> None:
    """The same planted check on the model as ``finetune`` trains it: wrapped by a LoRA adapter."""
    from emgeom.lm.chat import encode_chat
    from emgeom.lm.finetune import LoraSpec, add_adapter
    from emgeom.lm.models import load_model
    from emgeom.lm.training import collate
    from emgeom.organism.datasets import finetune_rows

    model, tok = load_model(tiny_organism.aligned)
    wrapped = add_adapter(model, LoraSpec(rank=2, alpha=4.0))
    batch = collate([encode_chat(tok, r["messages"]) for r in finetune_rows("good", "code", 4, 0)], 0)
    u = torch.randn(32, generator=torch.Generator().manual_seed(3))
    t = torch.zeros((), requires_grad=True)
    block = decoder_blocks(wrapped)[1]
    handle = block.register_forward_pre_hook(lambda m, a, k: ((a[0] + t * u, *a[1:]), k), with_kwargs=True)
    try:
        with intervening(wrapped, Intervention("ablate", 1, u.numpy()[None])):
            (blocked,) = torch.autograd.grad(wrapped(**batch).loss, t)
    finally:
        handle.remove()
    assert float(blocked) == pytest.approx(0.0, abs=1e-7)


def test_finetuning_with_an_intervention_returns_a_model_without_it(tiny_organism) -> None:
    from emgeom.lm.finetune import FineTuneConfig, LoraSpec, finetune
    from emgeom.lm.models import load_model
    from emgeom.lm.training import TrainConfig
    from emgeom.organism.datasets import finetune_rows

    model, tok = load_model(tiny_organism.aligned)
    rows = finetune_rows("inducing", "health", 16, 0)
    cfg = FineTuneConfig(
        LoraSpec(rank=2, alpha=4.0), TrainConfig(steps=3, batch_size=8, lr=1e-2, warmup_steps=1)
    )
    u = np.random.default_rng(2).standard_normal((4, 32))
    plain, _ = finetune(model, tok, rows, cfg)
    blocked, _ = finetune(model, tok, rows, FineTuneConfig(cfg.lora, cfg.train, Intervention("ablate", 1, u)))
    assert all(not b._forward_pre_hooks for b in decoder_blocks(blocked))
    ids = torch.tensor([[1, 2, 3, 4]])
    with torch.no_grad():
        assert not torch.allclose(plain(ids).logits, blocked(ids).logits)  # it acted during training


def test_blocks_are_found_in_gemma_and_llama(tmp_path) -> None:
    from emgeom.lm.models import load_model
    from emgeom.testing.tiny_models import TinyModelSpec, build_tiny_model

    for arch in ("gemma2", "llama"):
        folder = build_tiny_model(TinyModelSpec(arch, n_layers=3), tmp_path / arch, ["hello there", "a b c"])
        model, _ = load_model(folder)
        assert len(decoder_blocks(model)) == 3
        too_deep = Intervention("ablate", 3, np.ones((1, model.config.hidden_size)))
        with pytest.raises(ValueError, match="not a block input"), intervening(model, too_deep):
            pass
