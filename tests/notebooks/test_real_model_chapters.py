"""The real-model chapter variants executed through the book runner on random-weight models of the real
architectures (Gemma-2, Llama), a random JumpReLU SAE, toy code datasets and a local fake judge: every
real-model code path runs (loading, TransformerLens conversion, SAE read-outs, LoRA fine-tuning,
Betley et al.'s evaluation through the judge client, the LLM-judge filter). Nothing they compute is
a result; the assertions are that each chapter completes and records what it promises."""

import json
import os
from pathlib import Path

import pytest
import yaml

from emgeom.book.layout import BookLayout
from emgeom.book.runner import run_book
from emgeom.core.results import load_declarations, missing_results
from emgeom.testing.tiny_models import ARCHITECTURES, write_dry_run_assets

REPO = Path(__file__).resolve().parents[2]
REAL_CHAPTERS = [
    "04_sae_geometry",
    "05_finetuning_mechanism",
    "06_geometry_filtering",
    "08_blocking_directions",
]


def tiny_profile(assets: dict[str, str]) -> dict:
    """The real profiles' chapter entries, pointed at the tiny assets and shrunk to seconds."""
    common = {
        "variant": "real_models",
        "model": assets["model"],
        "sae_path": assets["sae_path"],
        "sae_release": "",
        "sae_id": "",
        "device": "cpu",
        "dtype": "float32",
        "progress": False,
    }
    small_ft = {
        "batch_size": 4,
        "finetune_lr": 0.001,
        "lora_rank": 2,
        "lora_alpha": 4.0,
        "questions": assets["questions"],
        "n_samples": 2,
        "max_new_tokens": 6,
    }
    smoke = yaml.safe_load((REPO / "ci" / "profiles" / "smoke.yaml").read_text())
    chapters = dict(smoke["chapters"])
    chapters["04_sae_geometry"] = common | {
        "domains": {"code": [assets["insecure"], assets["secure"]]},
        "rows_per_set": 12,
        "data_seeds": [0, 1],
        "k": 4,
        "k_harmful": 4,
        "n_permutations": 50,
        "n_row_permutations": 20,
        "n_random_draws": 20,
        "quality_rows": 4,
        "context_size": 64,
    }
    chapters["05_finetuning_mechanism"] = (
        common
        | small_ft
        | {
            "inducing_data": assets["insecure"],
            "control_data": [assets["secure"], assets["educational"]],
            "finetune_rows": 16,
            "finetune_steps": 2,
            "finetune_seeds": [0, 1],
            "first_order_steps": 1,
            "sgd_steps": 2,
            "read_rows": 8,
            "n_null_targets": 10,
            "k": 4,
            "k_harmful": 4,
        }
    )
    chapters["06_geometry_filtering"] = (
        common
        | small_ft
        | {
            "inducing_data": assets["insecure"],
            "noninducing_data": assets["secure"],
            "set_size": 16,
            "dose_fractions": [0.0, 0.5],
            "removal_fractions": [0.25],
            "main_removal": 0.25,
            "finetune_steps": 2,
            "seeds": [0, 1],
            "k_harmful": 4,
        }
    )
    chapters["08_blocking_directions"] = (
        common
        | small_ft
        | {
            "inducing_data": assets["insecure"],
            "control_data": assets["secure"],
            "finetune_rows": 16,
            "finetune_steps": 2,
            "seeds": [0, 1],
            "k_harmful": 4,
            "heldout_rows": 8,
            "frequency_rows": 8,
        }
    )
    return {"description": "tiny real-architecture models (test)", "threads": 1, "chapters": chapters}


@pytest.fixture(scope="module", params=ARCHITECTURES)
def real_book(request, tmp_path_factory, hash_judge_url, book_copier):
    """A book copy with tiny assets of one architecture and a profile pointing at them; each test runs
    its own chapter in it (so one failing chapter fails only its own test)."""
    arch = request.param
    root = tmp_path_factory.mktemp(f"book-{arch}")
    book_copier(root)
    assets = write_dry_run_assets(root / "assets", arch, n_rows=40)
    (root / "ci" / "profiles" / "tiny-real.yaml").write_text(yaml.safe_dump(tiny_profile(assets)))
    env = {
        "EMGEOM_JUDGE_BASE_URL": hash_judge_url,
        "EMGEOM_JUDGE_MODEL": "fake-judge",
        "OPENAI_API_KEY": "sk-test",
    }
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield BookLayout(root), arch
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", REAL_CHAPTERS)
def test_real_variant_executes_on_tiny_model(real_book, chapter):
    layout, _ = real_book
    runs = {r.chapter: r for r in run_book(layout, "tiny-real", only=[chapter], progress=False)}
    assert runs[chapter].status == "ok" and runs[chapter].this_run == "executed", runs[chapter].error
    build = layout.profile_build("tiny-real")
    doc = json.loads((build.results_dir / f"{chapter}.json").read_text())
    declared = load_declarations(layout.results_declaration(chapter, "real_models"))
    assert missing_results(declared, doc["results"], {"domain": ["code"]}) == []
    page = json.loads(build.executed_notebook(chapter).read_text())
    assert "jupytext" not in page["metadata"]  # a variant's page must not pair with the default source
    assert "sk-test" not in build.executed_notebook(chapter).read_text()  # the key never lands in a page


def test_judge_cache_holds_no_key(real_book):
    layout, _ = real_book
    if not (layout.artifacts_dir / "judge").is_dir():
        run_book(layout, "tiny-real", only=["05_finetuning_mechanism"], progress=False)
    cached = list((layout.artifacts_dir / "judge").glob("*.json"))
    assert cached and not any("sk-test" in p.read_text() for p in cached)
