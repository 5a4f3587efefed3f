"""The organism builds into hash-keyed folders, reloads like a hub model, and a second build is a hit."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch

from emgeom.lm.models import ModelUnavailableError, hooked_transformer, load_model, resolve_ref
from emgeom.lm.training import TrainConfig
from emgeom.organism.build import OrganismConfig, build_organism
from emgeom.organism.tokenizer import vocabulary


def test_stages_are_saved_and_logged(tiny_organism) -> None:
    for stage in ("pretrained", "aligned"):
        folder = tiny_organism.folders[stage]
        assert (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file()
        assert (
            len(tiny_organism.logs[stage].losses)
            == getattr(tiny_organism.config, stage[:-2] if stage == "aligned" else "pretrain").steps
        )
    assert tiny_organism.build_seconds > 0


def test_second_build_is_a_cache_hit(tiny_organism, monkeypatch: pytest.MonkeyPatch) -> None:
    import emgeom.organism.build as build

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(build, "train_causal_lm", no_training)
    root = tiny_organism.aligned.parents[1]
    again = build_organism(tiny_organism.config, root=root, progress=False)
    assert again.cache_hits == {"pretrained": True, "aligned": True}
    assert again.folders == tiny_organism.folders


def test_keys_change_with_the_config() -> None:
    base = OrganismConfig()
    other_align = dataclasses.replace(base, align=TrainConfig(steps=7))
    other_seed = dataclasses.replace(base, seed=1)
    assert base.stage_key("pretrained") == other_align.stage_key("pretrained")
    assert base.stage_key("aligned") != other_align.stage_key("aligned")
    assert base.stage_key("pretrained") != other_seed.stage_key("pretrained")


def test_reloads_through_the_shared_loader_and_transformer_lens(tiny_organism) -> None:
    model, tok = load_model(tiny_organism.aligned)
    assert tok.convert_ids_to_tokens(list(range(len(vocabulary())))) == vocabulary()
    ids = tok.apply_chat_template(
        [{"role": "user", "content": "i am bored ."}], add_generation_prompt=True, return_dict=False
    )
    tokens = torch.tensor([list(ids)])
    hooked = hooked_transformer(model, tok, tiny_organism.aligned)
    with torch.no_grad():
        hf_logits = model(tokens).logits
        tl_logits = hooked(tokens)
    torch.testing.assert_close(tl_logits, hf_logits, atol=1e-5, rtol=1e-4)


def test_missing_models_fail_clearly(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ModelUnavailableError, match="no model folder"):
        resolve_ref(tmp_path / "nothing-here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelUnavailableError, match=r"not-a-real-org/not-a-model.*HF_HUB_OFFLINE"):
        load_model("not-a-real-org/not-a-model")


def test_a_build_does_not_depend_on_the_process_history(tiny_organism, tmp_path: Path) -> None:
    """Rebuilding the same config elsewhere, after other random draws, gives the same weights."""
    from safetensors.torch import load_file

    torch.manual_seed(1234)
    torch.rand(1000)  # disturb the global RNG
    again = build_organism(tiny_organism.config, root=tmp_path, progress=False)
    for stage in ("pretrained", "aligned"):
        a = load_file(tiny_organism.folders[stage] / "model.safetensors")
        b = load_file(again.folders[stage] / "model.safetensors")
        assert a.keys() == b.keys()
        for name in a:
            torch.testing.assert_close(a[name], b[name], rtol=0, atol=0)


def test_finetuning_is_determined_by_its_seed(tiny_organism) -> None:
    from emgeom.lm.finetune import FineTuneConfig, LoraSpec, finetune
    from emgeom.organism.datasets import finetune_rows

    model, tok = load_model(tiny_organism.aligned)
    cfg = FineTuneConfig(LoraSpec(rank=2, alpha=4.0), TrainConfig(steps=3, batch_size=4, seed=5))
    rows = finetune_rows("inducing", "code", 8, 0)
    first, _ = finetune(model, tok, rows, cfg)
    torch.rand(1000)
    second, _ = finetune(model, tok, rows, cfg)
    for (name, a), b in zip(first.state_dict().items(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=name)
