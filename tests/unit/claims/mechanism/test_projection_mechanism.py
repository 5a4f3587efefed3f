"""The mechanism read where the fine-tune acts: decoder projections recover a planted geometry with an
UNtied SAE (where the encoder read-out does not), the random-target null sits below the true target,
and the answer-token read-out and the gradient target work on a real (tiny) model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.claims.mechanism.measurement import gradient_target, matched_null_targets, projection_mechanism
from emgeom.sae.readouts import TokenReadout, encoder_decoder_cosine, hf_answer_token_readout, pre_activations


class UntiedSAE:
    """Decoder rows: a planted cluster of directions near the target (latent 0) plus random ones; the
    encoder is NOT the decoder's transpose: each encoder column is its decoder row with a large random
    component added (as a trained encoder leans away from its neighbours)."""

    def __init__(self, d_in: int = 64, d_sae: int = 300, seed: int = 0) -> None:
        g = torch.Generator().manual_seed(seed)
        w = torch.randn(d_sae, d_in, generator=g)
        w[1:10] += 2.0 * w[0]  # a small cluster near latent 0
        self.W_dec = w / w.norm(dim=1, keepdim=True)
        enc = self.W_dec + 1.5 * torch.randn(d_sae, d_in, generator=g) / d_in**0.5
        self.W_enc = (enc / enc.norm(dim=1, keepdim=True)).T.contiguous()
        self.b_enc = torch.zeros(d_sae)
        self.b_dec = torch.zeros(d_in)

        class Cfg:
            apply_b_dec_to_input = False

        self.cfg = Cfg()

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(pre_activations(self, x))


def readout(sae: UntiedSAE, resid: torch.Tensor) -> TokenReadout:
    pre, post = pre_activations(sae, resid), sae.encode(resid)
    return TokenReadout(resid.mean(0), pre.mean(0), post.mean(0), (post > 0).any(0), resid.shape[0])


def test_decoder_projection_recovers_the_planted_geometry_where_the_encoder_does_not() -> None:
    sae = UntiedSAE()
    assert encoder_decoder_cosine(sae).mean() < 0.7  # untied
    base = torch.randn(200, 64, generator=torch.Generator().manual_seed(1))
    eta = 0.2
    tuned = base + eta * sae.W_dec[0]
    res = projection_mechanism(readout(sae, base), readout(sae, tuned), sae, target=0, n_null=50)
    np.testing.assert_allclose(res.delta_projection, eta * res.cosine, atol=1e-5)
    assert res.r_projection.value == pytest.approx(1.0, abs=1e-6)
    assert res.alignment == pytest.approx(1.0, abs=1e-5) and res.shift_norm == pytest.approx(eta, rel=1e-4)
    assert res.r_pre.value < 0.8  # the encoder read-out mixes in the untied directions
    assert res.r_partial > 0.9  # not explained by how active each latent was before
    assert res.null_rank() == 1.0 and res.null_p95() < res.r_projection.value
    assert (np.abs(res.null_alignment) < res.alignment).all()


def test_a_shift_off_the_target_does_not_beat_the_null() -> None:
    sae = UntiedSAE(seed=3)
    base = torch.randn(200, 64, generator=torch.Generator().manual_seed(2))
    other = torch.randn(64, generator=torch.Generator().manual_seed(4))
    other -= (other @ sae.W_dec[0]) * sae.W_dec[0]
    tuned = base + 0.2 * other / other.norm()
    res = projection_mechanism(readout(sae, base), readout(sae, tuned), sae, target=0, n_null=100)
    assert abs(res.alignment) < 1e-5
    assert res.r_projection.value < res.null_p95()


def test_growing_the_residual_does_not_pass_for_the_most_active_target() -> None:
    """The review's counter-example: a shift that only scales the residual (Δh ∝ h) with the target the
    latent most present in the base residual. Plain r (and even the activation-matched null) favours it;
    the partial r, with the base projection regressed out, says nothing is left."""
    sae = UntiedSAE(seed=5)
    base = torch.randn(200, 64, generator=torch.Generator().manual_seed(6)) * 0.3 + 2.0 * sae.W_dec[0]
    before = readout(sae, base)
    presence = torch.where(before.active, sae.W_dec @ before.resid, torch.tensor(-1e9))
    target = int(torch.argmax(presence))
    res = projection_mechanism(before, readout(sae, base * 1.05), sae, target=target, n_null=50)
    assert res.r_projection.value > 0.9  # the trap: plain r looks like the mechanism
    assert res.r_partial == pytest.approx(0.0, abs=1e-9)


def test_matched_null_targets_are_the_nearest_in_activation() -> None:
    activation = np.array([0.0, 5.0, 4.0, 9.0, 4.9, 1.0])
    alive = np.array([False, True, True, True, True, True])
    np.testing.assert_array_equal(matched_null_targets(activation, alive, target=1, n_null=2), [4, 2])


def tiny_sae(d_in: int):
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    torch.manual_seed(0)
    return StandardSAE(
        StandardSAEConfig(d_in=d_in, d_sae=24, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_pre"))
    )


def test_token_readout_pools_the_answer_tokens_of_the_tl_readout(tiny_organism) -> None:
    from emgeom.lm.batching import answer_windows
    from emgeom.lm.models import hooked_transformer, load_model
    from emgeom.organism.datasets import finetune_rows
    from emgeom.sae.readouts import response_activations

    model, tok = load_model(tiny_organism.aligned)
    hooked = hooked_transformer(model, tok, tiny_organism.aligned)
    sae = tiny_sae(32)
    rows = finetune_rows("inducing", "health", 5, seed=0)
    pooled = hf_answer_token_readout(model, tok, sae, rows, batch_size=2)
    per_row = response_activations(
        hooked, sae, tok, rows
    )  # [rows, d_sae], mean over each row's answer tokens
    counts = torch.tensor(
        [sum(m) for _, m in answer_windows(tok, rows, 128, keep="start")], dtype=torch.float
    )
    assert pooled.n_tokens == int(counts.sum())
    expected = (per_row * counts[:, None]).sum(0) / counts.sum()
    torch.testing.assert_close(pooled.post, expected, atol=1e-5, rtol=1e-4)


def test_gradient_target_is_the_latent_along_the_descent_direction(tiny_organism) -> None:
    from emgeom.lm.models import load_model
    from emgeom.organism.datasets import finetune_rows

    model, tok = load_model(tiny_organism.aligned)
    sae = tiny_sae(32)
    rows = finetune_rows("inducing", "health", 6, seed=0)
    t = gradient_target(model, tok, sae, rows)
    assert 0 <= t < 24
    with torch.no_grad():  # plant a decoder row exactly along the descent direction: it must win
        h = {}
        handle = model.transformer.h[1].register_forward_pre_hook(
            lambda mod, args: h.setdefault("x", args[0])
        )
        handle.remove()
    descent = _descent(model, tok, rows)
    with torch.no_grad():
        sae.W_dec[5] = descent / descent.norm() * sae.W_dec[5].norm()
    assert gradient_target(model, tok, sae, rows) == 5


def _descent(model, tok, rows) -> torch.Tensor:
    """-mean ∂loss/∂h at block 1's input over answer tokens, computed independently with a hook."""
    from emgeom.lm.chat import encode_chat
    from emgeom.lm.training import IGNORE_INDEX, collate

    batch = collate([encode_chat(tok, r["messages"]) for r in rows], tok.pad_token_id)
    store = {}

    def keep(module, args):
        x = args[0]
        x.retain_grad()
        store["x"] = x

    handle = model.transformer.h[1].register_forward_pre_hook(keep)
    try:
        out = model(**batch)
        mask = torch.zeros_like(batch["labels"], dtype=torch.bool)  # positions whose logits carry the loss
        mask[:, :-1] = batch["labels"][:, 1:] != IGNORE_INDEX
        (out.loss * mask.sum()).backward()
    finally:
        handle.remove()
        model.zero_grad(set_to_none=True)
    return -store["x"].grad[mask].mean(0).detach()
