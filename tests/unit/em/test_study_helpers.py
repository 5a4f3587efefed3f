"""Small study helpers: the organism's domain pairs, runs and coupling correlations (chapter 4), the
real-model samples and runs, evaluation prompts, SAE specs and LoRA layer checks."""

from __future__ import annotations

import pandas as pd
import pytest

from emgeom.claims.geometry.real_models import real_runs
from emgeom.claims.geometry.study import coupling_correlations, organism_domains, organism_runs, record_gaps
from emgeom.em.real_models import RealModel, sae_quality_rows
from emgeom.lm.finetune import LoraSpec, check_lora_layers
from emgeom.organism import language as L
from emgeom.organism.datasets import evaluation_prompts, evaluation_questions
from emgeom.sae.train import sae_specs


def test_organism_domains_pair_bad_with_good_advice() -> None:
    domains = organism_domains(["health", "code"], rows_per_set=3)
    assert list(domains) == ["health", "code"]
    kinds = {L.classify_answer(r["messages"][-1]["content"]).kind for r in domains["code"].inducing}
    assert kinds == {"bad"}
    assert {L.classify_answer(r["messages"][-1]["content"]).kind for r in domains["code"].noninducing} == {
        "good"
    }


def test_runs_are_labelled_by_organism_and_sae() -> None:
    runs = organism_runs({(0, 1): ("h0", "t0", "s01"), (2, 0): ("h2", "t2", "s20")}, {})
    assert list(runs) == ["organism 0 / SAE 1", "organism 2 / SAE 0"]
    assert runs["organism 2 / SAE 0"].sae == "s20"


def test_coupling_correlation_follows_the_gap() -> None:
    summary = pd.DataFrame(
        {"domain": ["a", "b", "c"], "gap": [0.3, 0.2, 0.1], "gap_excl_shared": [0.1, 0.2, 0.3]}
    )
    r_all, r_excl = coupling_correlations(summary, {"a": 1.0, "b": 0.5, "c": 0.0})
    assert r_all == pytest.approx(1.0) and r_excl == pytest.approx(-1.0)


def test_record_gaps_records_three_names_per_domain(monkeypatch, tmp_path) -> None:
    import json

    from emgeom.core import results

    target = tmp_path / "r.json"
    monkeypatch.setenv(results.ENV_RESULTS_FILE, str(target))
    row = {
        "gap": 0.2,
        "gap_lo": 0.1,
        "gap_hi": 0.3,
        "p": 0.01,
        "d": 1.5,
        "gap_excl_shared": 0.0,
        "gap_excl_shared_lo": -0.1,
        "gap_excl_shared_hi": 0.1,
        "p_excl_shared": 0.5,
        "n_saes": 6,
        "n_organisms": 3,
    }
    record_gaps(pd.DataFrame([{"domain": "health", **row}, {"domain": "code", **row}]), interval="organisms")
    recorded = json.loads(target.read_text())["results"]
    assert recorded["similarity_gap_health"]["n_seeds"] == 3  # replicates are organisms, not SAEs
    names = set(recorded)
    assert names == {
        f"{stem}_{d}"
        for d in ("health", "code")
        for stem in ("similarity_gap", "similarity_gap_pvalue", "similarity_gap_excl_shared")
    }


def test_real_model_samples_and_runs() -> None:
    rows = [{"messages": [{"role": "user", "content": str(i)}]} for i in range(10)]
    sample = {"code": (rows, rows[:4])}
    assert len(sae_quality_rows(sample, 6)) == 6
    assert len(sae_quality_rows(sample, 100)) == 14
    subject = RealModel("m", "hf", "tok", "hooked", "sae")
    runs = real_runs(subject, {0: sample, 1: sample})
    assert list(runs) == ["data seed 0", "data seed 1"]
    assert runs["data seed 1"].domains["code"].noninducing == rows[:4]


def test_prompts_specs_and_layer_checks() -> None:
    prompts = evaluation_prompts()
    assert len(prompts) == len(evaluation_questions())
    assert prompts[0] == [{"role": "user", "content": evaluation_questions()[0].text}]
    specs = sae_specs([2, 5], layer=1, d_sae=64, k=4, training_tokens=100_000)
    assert [s.seed for s in specs] == [2, 5] and {s.d_sae for s in specs} == {64}
    with pytest.raises(ValueError, match="at least one"):
        sae_specs([])
    check_lora_layers(LoraSpec(layers=(0, 3)), n_layers=4)
    with pytest.raises(ValueError, match=r"lora_layers \[0, 4\]"):
        check_lora_layers(LoraSpec(layers=(0, 4)), n_layers=4)
