"""Planning the organisms and SAEs a build needs from the chapters' parameters."""

from __future__ import annotations

import pytest

from emgeom.book.artifact_jobs import chapter_organisms, chapter_sae_specs, plan_artifacts
from emgeom.book.runner import _critical_paths

TINY = {
    "d_model": 32,
    "n_layers": 2,
    "n_heads": 2,
    "pretrain_steps": 8,
    "pretrain_batch_size": 8,
    "align_steps": 4,
    "align_rank": 1,
}
SAE = {
    "sae_layer": 1,
    "sae_width": 64,
    "sae_architecture": "topk",
    "sae_k": 4,
    "sae_l1_coefficient": 5.0,
    "sae_training_tokens": 4096,
    "sae_seeds": [0],
}


def test_each_artifact_is_planned_once_and_every_chapter_waits_for_what_it_reads():
    chapters = {
        "01_toy": {"steps": 3},
        "03_organism": {"organism_seeds": [0, 1], **TINY},
        "04_geometry": {"organism_seeds": [0, 1], **TINY, **SAE},
        "09_coupling": {
            "coupling_domain": "health",
            "coupling_mistake_rates": [0.0, 0.95],
            "coupling_organism_seeds": [0],
            **TINY,
            **SAE,
        },
    }
    jobs, needs = plan_artifacts(chapters)
    names = [j.name for j in jobs]
    assert len(names) == len(set(names))
    organisms = [j for j in jobs if j.kind == "organism"]
    # the coupling sweep's default rate is replicate 0 itself: three organisms, not four
    assert [j.name for j in organisms] == ["organism 0", "organism 1", "organism 0, health mistakes 0.95"]
    saes = [j for j in jobs if j.kind == "sae"]
    assert len(saes) == 3 and all(
        len(j.needs) == 1 and j.needs[0] in [o.name for o in organisms] for j in saes
    )
    assert needs["01_toy"] == set()
    assert needs["03_organism"] == {"organism 0", "organism 1"}
    assert needs["04_geometry"] == {"organism 0", "organism 1", "SAE 0 on organism 0", "SAE 0 on organism 1"}
    assert needs["09_coupling"] == {
        "organism 0",
        "organism 0, health mistakes 0.95",
        "SAE 0 on organism 0",
        "SAE 0 on organism 0, health mistakes 0.95",
    }


def test_the_coupling_sweep_is_planned_on_every_organism_seed_and_reuses_each_seeds_replicate():
    coupling = {"coupling_domain": "health", "coupling_mistake_rates": [0.0, 0.95], **TINY, **SAE}
    jobs, needs = plan_artifacts(
        {
            "03_organism": {"organism_seeds": [0, 1, 2], **TINY},
            "09_coupling": {**coupling, "coupling_organism_seeds": [0, 2]},
        }
    )
    organisms = [j.name for j in jobs if j.kind == "organism"]
    # rate 0 is the replicate of each seed: three replicates and one null organism per coupling seed
    assert organisms == [
        "organism 0",
        "organism 1",
        "organism 2",
        "organism 0, health mistakes 0.95",
        "organism 2, health mistakes 0.95",
    ]
    assert {n for n in needs["09_coupling"] if not n.startswith("SAE")} == {
        "organism 0",
        "organism 2",
        "organism 0, health mistakes 0.95",
        "organism 2, health mistakes 0.95",
    }
    by_name = {j.name: j.organism for j in jobs}
    assert by_name["organism 2, health mistakes 0.95"].seed == 2
    assert by_name["organism 2, health mistakes 0.95"].corpus.mistake_rates["health"] == 0.95


def test_the_planned_configs_are_the_ones_the_chapters_build():
    from emgeom.organism.study import organism_configs
    from emgeom.sae.train import sae_specs

    params = {"organism_seeds": [2], **TINY, **SAE}
    (cfg,) = chapter_organisms(params).values()
    assert cfg == organism_configs([2], **TINY)[2]
    assert chapter_sae_specs(params) == sae_specs(
        [0], layer=1, d_sae=64, architecture="topk", k=4, l1_coefficient=5.0, training_tokens=4096
    )
    assert chapter_organisms({"steps": 1}) == {} and chapter_sae_specs({"organism_seeds": [0], **TINY}) == []


def test_two_chapters_asking_different_saes_of_one_seed_get_two_jobs():
    jobs, needs = plan_artifacts(
        {
            "04_a": {"organism_seeds": [0], **TINY, **SAE},
            "05_b": {"organism_seeds": [0], **TINY, **SAE, "sae_width": 128},
        }
    )
    saes = [j for j in jobs if j.kind == "sae"]
    assert {j.sae.d_sae for j in saes} == {64, 128}
    assert needs["04_a"] != needs["05_b"]


def test_the_longest_chain_goes_first():
    needs = {"organism": set(), "sae": {"organism"}, "long chapter": {"sae"}, "toy": set()}
    paths = _critical_paths(needs, {"organism": 100, "sae": 20, "long chapter": 300, "toy": 50})
    assert paths["organism"] == pytest.approx(420) and paths["toy"] == pytest.approx(50)
    assert sorted(paths, key=lambda n: -paths[n])[0] == "organism"


def test_width_check_saes_are_planned_on_the_first_organism_only():
    jobs, needs = plan_artifacts(
        {"04_a": {"organism_seeds": [0, 1], **TINY, **SAE, "sae_check_widths": [32, 128]}}
    )
    widths = sorted((j.sae.d_sae, j.needs[0]) for j in jobs if j.kind == "sae")
    assert widths == [(32, "organism 0"), (64, "organism 0"), (64, "organism 1"), (128, "organism 0")]
    assert "SAE 0 (128 latents) on organism 0" in needs["04_a"]


def test_a_chapter_reading_one_organism_waits_for_that_one_only():
    one_sae = {k: v for k, v in SAE.items() if k != "sae_seeds"}
    _, needs = plan_artifacts({"08_one": {"organism_seed": 2, "sae_seed": 1, **TINY, **one_sae}})
    assert needs["08_one"] == {"organism 2", "SAE 1 on organism 2"}


def test_known_timings_come_from_the_committed_file_then_the_checkouts_step_times(tmp_path):
    import json

    from emgeom.book.artifact_jobs import ArtifactJob
    from emgeom.book.layout import BookLayout
    from emgeom.book.runner import _job_estimate, _known_timings

    layout = BookLayout(tmp_path)
    assert _known_timings(layout, "cpu") == {}
    layout.timings_file("cpu").parent.mkdir(parents=True)
    layout.timings_file("cpu").write_text(json.dumps({"organism 0": 150.0, "06_x": 700.0}))
    times = layout.profile_build("cpu").step_times_path
    times.parent.mkdir(parents=True)
    times.write_text(json.dumps({"organism 0": 120.0, "organism 1": 0.1}))
    layout.profile_build("smoke").step_times_path.parent.mkdir(parents=True)
    layout.profile_build("smoke").step_times_path.write_text(json.dumps({"06_x": 3.0}))
    known = _known_timings(layout, "cpu")
    # a cached step (0.1 s) says nothing, and another profile's times are not this one's
    assert known == {"organism 0": 120.0, "06_x": 700.0}
    wide = ArtifactJob("SAE 0 (4096 latents) on organism 0", "sae", None, type("S", (), {"d_sae": 4096})())
    assert _job_estimate(wide, known) == pytest.approx(120.0)
