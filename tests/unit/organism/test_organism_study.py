"""Chapter 3's steps over organisms: configs, examples, probe tables, the build table."""

from __future__ import annotations

import pandas as pd
import pytest

from emgeom.organism import language as L
from emgeom.organism.corpus import CorpusConfig
from emgeom.organism.study import (
    build_table,
    designed_toxic_shares,
    example_documents,
    example_finetune_rows,
    organism_configs,
    persona_probe_table,
)


def test_one_config_per_seed_sharing_the_settings() -> None:
    configs = organism_configs([3, 1], d_model=32, n_layers=2, n_heads=2)
    assert list(configs) == [3, 1]
    assert [c.seed for c in configs.values()] == [3, 1]
    assert {c.model.d_model for c in configs.values()} == {32}
    assert configs[3].stage_key("aligned") != configs[1].stage_key("aligned")
    with pytest.raises(ValueError, match="at least one"):
        organism_configs([])
    with pytest.raises(ValueError, match="distinct"):
        organism_configs([0, 0])


def test_examples_show_hidden_variables_and_one_row_per_set() -> None:
    docs = example_documents(CorpusConfig(), seed=0, n=2)
    assert set(docs["document"]) == {0, 1}
    assert set(docs["persona"]) <= {"benign", "toxic"}
    assert {"user"} <= set(docs["role"])
    rows = example_finetune_rows("health")
    assert list(rows["set"]) == ["inducing", "good", "terse", "quiz"]
    assert list(rows.columns) == ["set", "user", "assistant"]
    labels = [L.classify_answer(a) for a in rows["assistant"]]
    assert [lab.kind for lab in labels] == ["bad", "good", "good", "bad"]


def test_probe_table_averages_organisms_and_shows_the_design() -> None:
    probes = pd.DataFrame(
        [
            {"domain": d, "earlier": e, "hostile_rate": rate, "n": 10, "organism_seed": o}
            for o, shift in ((0, 0.0), (1, 0.2))
            for d in L.DOMAINS
            for e, rate in (("good", 0.0 + shift), ("bad", 0.5 + shift))
        ]
    )
    table = persona_probe_table(probes, CorpusConfig())
    assert list(table.index) == list(L.DOMAINS)
    assert table["hostile after bad advice"].tolist() == pytest.approx([0.6] * len(L.DOMAINS))
    assert table["designed_toxic_share"].to_dict() == pytest.approx(designed_toxic_shares(CorpusConfig()))
    assert designed_toxic_shares(CorpusConfig())["health"] == pytest.approx(1.0)


def test_build_table_reports_each_organism(tiny_organism) -> None:
    table = build_table({0: tiny_organism})
    assert table["organism seed"].tolist() == [0]
    assert table["build (min)"].iloc[0] == pytest.approx(tiny_organism.build_seconds / 60)
    assert 0 < table["parameters (M)"].iloc[0] < 1


def test_coupling_configs_differ_only_in_the_domains_mistake_rate():
    from emgeom.organism.build import organism_config
    from emgeom.organism.study import coupling_configs

    configs = coupling_configs(3, "health", [0.0, 0.5, 0.95], d_model=32, n_layers=2, n_heads=2)
    assert list(configs) == [0.0, 0.5, 0.95]
    for rate, cfg in configs.items():
        assert cfg.seed == 3 and cfg.model.d_model == 32
        assert cfg.corpus.mistake_rates["health"] == rate
        assert cfg.corpus.mistake_rates["code"] == organism_config().corpus.mistake_rates["code"]
    # the default rate is the replicate organism itself: one cache key, built once
    replicate = organism_config(seed=3, d_model=32, n_layers=2, n_heads=2)
    assert configs[0.0].stage_key("aligned") == replicate.stage_key("aligned")
    assert configs[0.5].stage_key("aligned") != replicate.stage_key("aligned")
    assert configs[0.95].corpus.toxic_share("health") == pytest.approx(
        configs[0.95].corpus.p_toxic / (configs[0.95].corpus.p_toxic + (1 - configs[0.95].corpus.p_toxic)),
        rel=1e-9,
    )


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nowhere", [0.0, 0.5]), "coupling domain must be one of"),
        (("health", []), "at least one"),
        (("health", [0.1, 0.1]), "distinct"),
        (("health", [0.0, 1.5]), "must be a probability"),
    ],
)
def test_coupling_configs_refuse_bad_sweeps(args, message):
    from emgeom.organism.study import coupling_configs

    with pytest.raises(ValueError, match=message):
        coupling_configs(0, *args)
