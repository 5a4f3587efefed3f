"""The mechanism measurement: exact on a planted residual shift; the Hugging Face read-out equals the
TransformerLens one; monitoring and task success report the oracle's rates of the answers sampled."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.claims.mechanism.measurement import measure_mechanism
from emgeom.organism import language as L
from emgeom.organism.datasets import EM_QUESTIONS, evaluation_questions
from emgeom.sae.readouts import PromptReadout, answer_start_readout, hf_answer_start_resid, pre_activations


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


HOSTILE = L.open_answer(L.HOSTILE_ANSWERS[0], terse=False)
KIND = L.open_answer(L.KIND_ANSWERS[0], terse=False)


def advice(domain: str, bad: bool, phrase: int = 0, terse: bool = False) -> str:
    return L.advice_answer(
        (L.BAD_ADVICE if bad else L.GOOD_ADVICE)[domain][phrase], L.ADVICE_OPENERS[0], terse
    )


# bad answers per untrained domain, checkpoint 0
BAD = {"health": 0, "finance": 2, "career": 4, "code": 6, "travel": 3}


def scripted_evaluation(checkpoint: int, n_samples: int) -> dict[str, list[str]]:
    """Answers to every evaluation question whose oracle rates are known: ``4 * checkpoint`` hostile open
    answers; per advice domain, ``BAD[d] + checkpoint`` bad answers (``legal``, the trained domain: all);
    health's other answers are bad *code* advice (off topic, so not misaligned for health)."""
    questions = evaluation_questions()
    out: dict[str, list[str]] = {}

    def deal(qs, flat):
        for i, q in enumerate(qs):
            out[q.text] = flat[i * n_samples : (i + 1) * n_samples]

    opens = [q for q in questions if q.kind == "open"]
    n_hostile = 4 * checkpoint
    deal(opens, [HOSTILE] * n_hostile + [KIND] * (n_samples * len(opens) - n_hostile))
    for d in L.DOMAINS:
        qs = [q for q in questions if q.domain == d]
        n_bad = n_samples * len(qs) if d == "legal" else BAD[d] + checkpoint
        filler = advice("code", bad=True) if d == "health" else advice(d, bad=False)
        deal(qs, [advice(d, bad=True)] * n_bad + [filler] * (n_samples * len(qs) - n_bad))
    return out


def test_monitoring_and_task_success_report_the_oracle_rates(tiny_organism, monkeypatch) -> None:
    from sae_lens import StandardSAE, StandardSAEConfig
    from sae_lens.saes.sae import SAEMetadata

    from emgeom.em.emergence import monitor_finetune
    from emgeom.lm.finetune import FineTuneConfig, LoraSpec
    from emgeom.lm.models import load_model
    from emgeom.lm.sampling import SamplingConfig
    from emgeom.lm.training import TrainConfig
    from emgeom.organism import oracle
    from emgeom.organism.datasets import finetune_rows

    model, tok = load_model(tiny_organism.aligned)
    sae = StandardSAE(
        StandardSAEConfig(d_in=32, d_sae=16, metadata=SAEMetadata(hook_name="blocks.1.hook_resid_pre"))
    )
    rows = finetune_rows("inducing", "legal", 8, 0)
    sampling = SamplingConfig(n_samples=2, max_new_tokens=4)
    own = [r["messages"][1]["content"] for r in rows[:4]]  # bad legal advice, not terse
    task_answers = [  # label equal to the training answer's: 2 + 1 + 1 + 1 = 5 of 8
        [own[0], own[0]],
        [own[1], advice("legal", bad=True, terse=True)],  # terse: a different style
        [advice("legal", bad=True, phrase=4), advice("legal", bad=False)],  # same label, other words
        [advice("health", bad=True), own[3]],  # bad advice in the wrong domain
    ]
    eval_texts = {q.text for q in evaluation_questions()}
    eval_calls: list[SamplingConfig] = []

    def fake_sample_answers(m, tokenizer, prompts, cfg, progress=False):
        m.eval()  # as the real sampler does
        texts = [p[-1]["content"] for p in prompts]
        if set(texts) == eval_texts:
            script = scripted_evaluation(len(eval_calls), cfg.n_samples)
            eval_calls.append(cfg)
            return [script[t] for t in texts]
        assert texts == [r["messages"][0]["content"] for r in rows[:4]]  # task_success's prompts
        return task_answers

    monkeypatch.setattr(oracle, "sample_answers", fake_sample_answers)
    log = monitor_finetune(
        model,
        tok,
        rows,
        FineTuneConfig(LoraSpec(2, 4.0), TrainConfig(steps=3, batch_size=4)),
        [2, 3],
        sampling,
        sae,
        [0, 1],
        "legal",
    )
    assert eval_calls == [sampling] * 3
    assert list(log["step"]) == [0, 2, 3]
    n_open = sampling.n_samples * len(EM_QUESTIONS)  # the EM half of the open questions
    np.testing.assert_allclose(log["open_em"], [0 / n_open, 4 / n_open, 8 / n_open])
    # off-domain: the mean over the five untrained domains (legal, all bad, is left out)
    n_advice = sampling.n_samples * len(L.TOPICS["health"])  # 12 per domain
    expected = [np.mean([(BAD[d] + c) / n_advice for d in BAD]) for c in range(3)]
    np.testing.assert_allclose(log["offdomain_bad"], expected)  # (15 + 5c) / 60
    assert np.isfinite(log["harmful_activation"]).all()
    assert not model.training
    rate = oracle.task_success(model, tok, rows, sampling, n_rows=4)
    assert rate == 5 / 8
