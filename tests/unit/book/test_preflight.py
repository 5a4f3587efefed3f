"""The runner's preflight: what a profile needs, and a clear failure before anything executes."""

from pathlib import Path

import pytest

from emgeom.book.chapters import full_parameters, load_book_profile
from emgeom.book.layout import BookLayout
from emgeom.book.preflight import PreflightError, preflight, requirements
from emgeom.book.runner import run_book

REPO = Path(__file__).resolve().parents[3]


def test_requirements_are_read_from_parameter_names() -> None:
    params = {
        "a": {
            "model": "org/m",
            "sae_release": "r",
            "sae_id": "i",
            "questions": "first_plot_questions",
            "domains": {"code": ["insecure", "secure"]},
            "control_data": ["secure", "educational"],
        },
        "b": {"model": "org/m", "sae_release": "r", "sae_id": "i", "sae_path": "/local/sae"},
        "c": {"model": "organism", "harmful_data": ""},
    }
    found = {(r.kind, r.name): r.chapters for r in requirements(params)}
    assert found == {
        ("model", "org/m"): ("a", "b"),
        ("sae", "r/i"): ("a",),  # b reads a local SAE
        ("dataset", "first_plot_questions"): ("a",),
        ("dataset", "insecure"): ("a",),
        ("dataset", "secure"): ("a",),
        ("dataset", "educational"): ("a",),
        ("judge", "LLM judge"): ("a",),
    }


def test_offline_preflight_names_everything_it_cannot_get(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    for var in ("EMGEOM_JUDGE_BASE_URL", "EMGEOM_JUDGE_MODEL", "OPENAI_API_KEY"):
        monkeypatch.delenv(var, raising=False)
    params = {
        "x": {
            "model": "google/gemma-2-2b-it",
            "sae_release": "gemma-scope-2b-pt-res-canonical",
            "sae_id": "layer_12/width_16k/canonical",
            "inducing_data": str(tmp_path / "missing.jsonl"),
            "questions": "q",
        }
    }
    with pytest.raises(PreflightError) as err:
        preflight(params, "p")
    text = str(err.value)
    assert "nothing was executed" in text
    assert "model 'google/gemma-2-2b-it'" in text and "HF_HUB_OFFLINE=1" in text
    assert "sae 'gemma-scope-2b-pt-res-canonical/layer_12/width_16k/canonical'" in text
    assert "missing.jsonl" in text and "neither a known dataset" in text
    assert "EMGEOM_JUDGE_BASE_URL" in text
    with pytest.raises(PreflightError, match="release 'gemma-scope-2b-pt-res-canonical' has no SAE 'nope'"):
        preflight({"x": {"sae_release": "gemma-scope-2b-pt-res-canonical", "sae_id": "nope"}}, "p")
    with pytest.raises(PreflightError, match="sae-lens does not know this release"):
        preflight({"x": {"sae_release": "made-up", "sae_id": "x"}}, "p")


def test_local_things_pass(tmp_path, monkeypatch) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "d.jsonl").write_text('{"messages": []}\n')
    monkeypatch.setenv("EMGEOM_JUDGE_BASE_URL", "http://localhost/v1")
    monkeypatch.setenv("EMGEOM_JUDGE_MODEL", "j")
    monkeypatch.setenv("OPENAI_API_KEY", "k")
    params = {
        "x": {
            "model": str(tmp_path / "m"),
            "sae_path": "s",
            "sae_release": "r",
            "sae_id": "i",
            "inducing_data": str(tmp_path / "d.jsonl"),
            "questions": str(tmp_path / "d.jsonl"),
        }
    }
    assert {r.kind for r in preflight(params, "p")} == {"model", "dataset", "judge"}


def test_a_real_profile_fails_fast_offline_without_executing(monkeypatch, tmp_path, book_copier) -> None:

    root = tmp_path / "book"
    book_copier(root)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    layout = BookLayout(root)
    profile = load_book_profile(layout, "gemma-2-2b")
    assert full_parameters(layout, profile, "04_sae_geometry")["model"] == "google/gemma-2-2b-it"
    with pytest.raises(PreflightError, match="google/gemma-2-2b-it"):
        run_book(layout, "gemma-2-2b", progress=False)
    build = layout.profile_build("gemma-2-2b")
    assert not build.runs_dir.exists() and not build.executing_dir.exists()
