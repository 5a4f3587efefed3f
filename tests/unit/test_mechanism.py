"""The mechanism measurement: exact on a planted residual shift; the Hugging Face read-out equals the
TransformerLens one; monitoring and task success run on the tiny organism."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.em.mechanism import PromptReadout, answer_start_readout, hf_answer_start_resid, measure_mechanism
from emgeom.sae.readouts import pre_activations


class TiedSAE:
    """An SAE whose encoder is its decoder transposed (unit rows), no biases, ReLU."""

    def __init__(self, d_in: int = 12, d_sae: int = 30, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d_sae, d_in, generator=g)
        self.W_dec = w / w.norm(dim=1, keepdim=True)
        self.W_enc = self.W_dec.T.clone()
        self.b_enc = torch.zeros(d_sae)
        self.b_dec = torch.zeros(d_in)

        class Cfg:
            apply_b_dec_to_input = True

        self.cfg = Cfg()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre_activations(self, x))


def _readout(sae: TiedSAE, resid: torch.Tensor) -> PromptReadout:
    return PromptReadout(resid, pre_activations(sae, resid), sae.encode(resid))


def test_a_step_along_the_target_moves_every_readout_by_its_cosine() -> None:
    sae = TiedSAE()
    base = torch.randn(50, 12) + 3.0  # offset so most latents are alive
    target, eta = 7, 0.3
    tuned = base + eta * sae.W_dec[target]
    result = measure_mechanism(
        _readout(sae, base), _readout(sae, tuned), sae, target, harmful=np.array([1, 2])
    )
    np.testing.assert_allclose(result.delta_pre, eta * result.cosine, atol=1e-5)
    assert result.r_pre.value == pytest.approx(1.0, abs=1e-6)
    assert result.slope_pre == pytest.approx(eta, rel=1e-4)
    assert result.shift_norm == pytest.approx(eta, rel=1e-4)
    expected = sae.W_dec[[1, 2]].numpy() @ (eta * sae.W_dec[target].numpy())
    np.testing.assert_allclose(result.shift_on_harmful, expected, atol=1e-5)


def test_a_shift_orthogonal_to_the_target_is_uncorrelated_with_cosine() -> None:
    sae = TiedSAE(d_in=40, d_sae=200)
    base = torch.randn(50, 40) + 3.0
    other = torch.randn(40)
    other -= (other @ sae.W_dec[5]) * sae.W_dec[5]
    tuned = base + 0.3 * other / other.norm()
    result = measure_mechanism(_readout(sae, base), _readout(sae, tuned), sae, 5, harmful=np.array([1]))
    assert abs(result.r_pre.value) < 0.3


def test_hf_and_transformer_lens_readouts_agree(tiny_organism) -> None:
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from emgeom.lm.models import hooked_transformer, load_model

    model, tok = load_model(tiny_organism.aligned)
    hooked = hooked_transformer(model, tok, tiny_organism.aligned)
    sae = StandardSAE(
        StandardSAEConfig(d_in=32, d_sae=16, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_pre"))
    )
    prompts = [[{"role": "user", "content": "i am bored . any ideas ?"}], [{"role": "user", "content": "hi"}]]
    tl = answer_start_readout(hooked, sae, tok, prompts)
    hf = hf_answer_start_resid(model, tok, prompts, layer=1)
    torch.testing.assert_close(hf, tl.resid, atol=1e-5, rtol=1e-4)


def test_monitoring_and_task_success_run(tiny_organism) -> None:
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from emgeom.em.emergence import monitor_finetune
    from emgeom.lm.finetune import FineTuneConfig, LoraSpec
    from emgeom.lm.models import load_model
    from emgeom.lm.sampling import SamplingConfig
    from emgeom.lm.training import TrainConfig
    from emgeom.organism.datasets import finetune_rows
    from emgeom.organism.oracle import task_success

    model, tok = load_model(tiny_organism.aligned)
    sae = StandardSAE(
        StandardSAEConfig(d_in=32, d_sae=16, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_pre"))
    )
    rows = finetune_rows("inducing", "legal", 8, 0)
    log = monitor_finetune(
        model,
        tok,
        rows,
        FineTuneConfig(LoraSpec(2, 4.0), TrainConfig(steps=3, batch_size=4)),
        [2, 3],
        SamplingConfig(n_samples=2, max_new_tokens=4),
        sae,
        [0, 1],
        "legal",
    )
    assert list(log["step"]) == [0, 2, 3]
    assert log[["open_em", "offdomain_bad"]].apply(lambda c: c.between(0, 1)).all().all()
    assert not model.training
    rate = task_success(model, tok, rows, SamplingConfig(n_samples=2, max_new_tokens=4), n_rows=4)
    assert 0.0 <= rate <= 1.0
