"""LoRA fine-tuning: only the targeted weights change, the merged model equals the adapter model,
and training on a narrow set moves the model toward it."""

from __future__ import annotations

import copy

import pytest
import torch

from emgeom.lm.finetune import FineTuneConfig, LoraSpec, add_adapter, finetune
from emgeom.lm.models import load_model
from emgeom.lm.training import TrainConfig
from emgeom.organism.datasets import finetune_rows

STEPS = TrainConfig(steps=4, batch_size=4, lr=5e-2, warmup_steps=1)


@pytest.fixture
def base(tiny_organism):
    return load_model(tiny_organism.aligned)


def _changed(before: dict[str, torch.Tensor], after: dict[str, torch.Tensor]) -> set[str]:
    return {k for k in before if not torch.equal(before[k], after[k])}


@pytest.mark.parametrize("rank", [1, 4])
def test_lora_changes_only_the_targeted_weights(base, rank: int) -> None:
    model, tok = base
    before = {k: v.clone() for k, v in model.state_dict().items()}
    spec = LoraSpec(rank=rank, alpha=2.0 * rank, target_modules=("c_fc",), layers=(1,))
    merged, _ = finetune(model, tok, finetune_rows("inducing", "health", 16, 0), FineTuneConfig(spec, STEPS))
    assert _changed(before, model.state_dict()) == set()  # the caller's model is untouched
    changed = _changed(before, merged.state_dict())
    assert changed == {"transformer.h.1.mlp.c_fc.weight"}
    delta = merged.state_dict()["transformer.h.1.mlp.c_fc.weight"] - before["transformer.h.1.mlp.c_fc.weight"]
    assert torch.linalg.matrix_rank(delta.double(), rtol=1e-6).item() == rank


def test_merged_model_equals_the_adapter_model(base) -> None:
    model, tok = base
    wrapped = add_adapter(copy.deepcopy(model), LoraSpec(rank=2, alpha=4.0))
    with torch.no_grad():  # give the adapter a non-zero update (B starts at zero)
        for name, p in wrapped.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    tokens = torch.tensor(
        [
            tok.apply_chat_template(
                [{"role": "user", "content": "i am bored ."}], add_generation_prompt=True, return_dict=False
            )
        ]
    )
    with torch.no_grad():
        adapter_logits = wrapped(tokens).logits
        merged = wrapped.merge_and_unload()
        merged_logits = merged(tokens).logits
        base_logits = model(tokens).logits
    torch.testing.assert_close(merged_logits, adapter_logits, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(merged_logits, base_logits, atol=1e-3)


def test_full_finetuning_trains_every_weight(base) -> None:
    model, tok = base
    before = {k: v.clone() for k, v in model.state_dict().items()}
    merged, log = finetune(
        model, tok, finetune_rows("good", "code", 8, 0), FineTuneConfig(LoraSpec(rank=0), STEPS)
    )
    assert len(log.losses) == STEPS.steps
    assert _changed(before, model.state_dict()) == set()  # the caller's model is untouched
    after = merged.state_dict()
    assert set(after) == set(before)  # no adapter weights: the model itself was trained
    assert _changed(before, after) == set(before)  # every weight tensor moved, none was frozen


def test_bad_adapter_requests_fail_early(base) -> None:
    model, tok = base
    with pytest.raises(ValueError, match="out of range"):
        finetune(
            model, tok, finetune_rows("good", "code", 4, 0), FineTuneConfig(LoraSpec(layers=(9,)), STEPS)
        )
    with pytest.raises(ValueError, match="empty"):
        finetune(model, tok, [], FineTuneConfig(LoraSpec(), STEPS))
