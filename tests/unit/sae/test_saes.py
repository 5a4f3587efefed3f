"""SAEs: trained offline with sae-lens and cached; published and local SAEs checked against the model;
quality metrics; the SAE-layer fast path equals a full forward."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from emgeom.lm.models import hooked_transformer, load_model
from emgeom.organism.datasets import finetune_rows
from emgeom.organism.sae import organism_sae
from emgeom.sae.load import SAEMismatchError, SAEUnavailableError, check_sae_fits, load_published_sae
from emgeom.sae.quality import sae_quality, scoring_batch
from emgeom.sae.readouts import response_activations
from emgeom.sae.train import SAESpec

TINY = SAESpec(layer=1, d_sae=48, k=4, training_tokens=4096, batch_size_tokens=1024, context_size=64)


@pytest.fixture(scope="module")
def hooked_and_sae(tiny_organism, tmp_path_factory):
    model, tok = load_model(tiny_organism.aligned)
    hooked = hooked_transformer(model, tok, tiny_organism.aligned)
    root = tmp_path_factory.mktemp("sae-artifacts")
    sae, folder, hit = organism_sae(tiny_organism, hooked, tok, TINY, root=root)
    return hooked, tok, sae, folder, hit, root


def test_trains_offline_and_caches(hooked_and_sae, tiny_organism, monkeypatch: pytest.MonkeyPatch) -> None:
    hooked, tok, sae, folder, hit, root = hooked_and_sae
    assert not hit and (folder / "cfg.json").is_file()
    assert (sae.cfg.d_in, sae.cfg.d_sae) == (32, 48)
    import sae_lens

    def no_training(*args, **kwargs):
        raise AssertionError("a cache hit must not train")

    monkeypatch.setattr(sae_lens, "LanguageModelSAETrainingRunner", no_training)
    again, folder2, hit2 = organism_sae(tiny_organism, hooked, tok, TINY, root=root)
    assert hit2 and folder2 == folder
    torch.testing.assert_close(again.W_dec, sae.W_dec)


def test_quality_metrics_are_in_range(hooked_and_sae, tiny_organism) -> None:
    from emgeom.organism.corpus import pretraining_documents

    hooked, tok, sae, *_ = hooked_and_sae
    docs = [next(pretraining_documents(tiny_organism.config.corpus, seed=s)) for s in range(8)]
    tokens, mask = scoring_batch(tok, docs, 64)
    q = sae_quality(hooked, sae, tokens, mask)
    assert q.l0 == pytest.approx(TINY.k)  # TopK: exactly k active per token
    assert 0 <= q.dead_fraction <= 1
    # FVU by hand: squared reconstruction error over the variance around the mean, on the scored tokens
    _, cache = hooked.run_with_cache(tokens, names_filter=TINY.hook_name)
    acts = cache[TINY.hook_name][mask.bool()]
    err = (acts - sae.decode(sae.encode(acts))).pow(2).sum() / (acts - acts.mean(0)).pow(2).sum()
    assert q.fvu == pytest.approx(float(err), rel=1e-4) and q.fvu > 0
    assert q.ce_clean < q.ce_zero


def test_fast_path_equals_a_full_forward(hooked_and_sae) -> None:
    hooked, tok, sae, *_ = hooked_and_sae
    rows = finetune_rows("inducing", "health", 5, seed=0)
    fast = response_activations(hooked, sae, tok, rows, batch_size=2)
    from emgeom.lm.chat import encode_chat

    for i, row in enumerate(rows):
        enc = encode_chat(tok, row["messages"])
        _, cache = hooked.run_with_cache(torch.tensor([enc.input_ids]), names_filter=TINY.hook_name)
        feats = sae.encode(cache[TINY.hook_name][0])
        expected = feats[torch.tensor(enc.loss_mask)].mean(0)
        torch.testing.assert_close(fast[i], expected, atol=1e-5, rtol=1e-4)


def test_mismatched_saes_are_refused_early(hooked_and_sae, tmp_path: Path) -> None:
    from sae_lens import SAE, StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    hooked, *_ = hooked_and_sae

    def make(d_in: int, hook: str) -> StandardSAE:
        return StandardSAE(StandardSAEConfig(d_in=d_in, d_sae=16, metadata=SAEMetadata(hook_name=hook)))

    wide = make(64, "blocks.1.hook_resid_pre")
    wide.save_model(tmp_path / "wide")
    with pytest.raises(SAEMismatchError, match=r"d_in=64.*d_model=32"):
        check_sae_fits(SAE.load_from_disk(str(tmp_path / "wide")), hooked)
    deep = make(32, "blocks.9.hook_resid_pre")
    with pytest.raises(SAEMismatchError, match=r"blocks\.9\.hook_resid_pre"):
        check_sae_fits(deep, hooked)
    ok = make(32, "blocks.1.hook_resid_pre")
    check_sae_fits(ok, hooked)
    with pytest.raises(SAEMismatchError, match="layer 5"):
        from emgeom.sae.train import train_sae

        train_sae(hooked, None, iter(()), SAESpec(layer=5), model_key="x", root=tmp_path)


def test_published_sae_offline_names_the_release(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(SAEUnavailableError, match="gemma-scope-2b-pt-res-canonical"):
        load_published_sae("gemma-scope-2b-pt-res-canonical", "layer_12/width_16k/canonical")
