"""Every chapter executed under the `smoke` profile, through the book runner, in a copy of the book
(so `make test` never replaces the executed notebooks of the last `make book`)."""

import json
from pathlib import Path

import pytest

from emgeom.book.layout import BookLayout
from emgeom.book.runner import run_book
from emgeom.organism.language import DOMAINS

REPO = Path(__file__).resolve().parents[2]
CHAPTERS = BookLayout(REPO).chapters()

# The results each chapter promises to record (the scorecard and outside checks read these names).
EXPECTED_RESULTS = {
    "01_toy_superposition": {"pentagon_found", "pentagon_fraction_sparse"},
    "02_gradient_derivation": {
        "first_order_pearson_r",
        "first_order_slope_vs_theory",
        "counter_regime_pearson_r",
        "harmful_cluster_pearson_r",
        "rank1_mean_of_inits_pearson_r",
    },
    "03_model_organism": {
        "organism_build_seconds",
        "aligned_open_misaligned_rate",
        "inducing_open_em_rate",
        "inducing_offdomain_bad_rate",
        "control_max_open_em_rate",
    },
    "04_sae_geometry": {
        "sae_fvu",
        "sae_l0",
        *(f"similarity_gap_{d}" for d in DOMAINS),
        *(f"similarity_gap_pvalue_{d}" for d in DOMAINS),
        *(f"similarity_gap_excl_shared_{d}" for d in DOMAINS),
    },
    "05_finetuning_mechanism": {
        *(f"em_open_rate_inducing_{d}" for d in DOMAINS),
        "em_open_rate_good_health",
        "em_open_rate_terse_health",
        "em_open_rate_quiz_health",
        "mechanism_pearson_r",
        "similarity_vs_em_pearson_r",
    },
    "06_geometry_filtering": {
        "filter_chosen_dose",
        "dose_saturation_fraction",
        "geometry_filter_relative_reduction",
        "random_filter_relative_reduction",
        "judge_filter_relative_reduction",
        "filter_vs_random_difference",
        "filter_vs_judge_difference",
        "geometry_filter_precision",
        "geometry_filter_recall",
    },
    "07_apply_to_your_data": {"apply_mixed_precision", "apply_mixed_recall", "scoring_vs_forward_ratio"},
}


@pytest.fixture(scope="module")
def smoke_book(tmp_path_factory, book_copier) -> tuple[BookLayout, dict]:
    root = tmp_path_factory.mktemp("book")
    book_copier(root)
    layout = BookLayout(root)
    runs = {r.chapter: r for r in run_book(layout, "smoke", progress=False)}
    return layout, runs


@pytest.mark.notebook
@pytest.mark.parametrize("chapter", CHAPTERS)
def test_chapter_executes_under_smoke(smoke_book, chapter):
    layout, runs = smoke_book
    assert runs[chapter].status == "ok" and runs[chapter].this_run == "executed"
    assert layout.executed_notebook(chapter).exists()
    doc = json.loads((layout.results_dir / f"{chapter}.json").read_text())
    assert doc["profile"] == "smoke" and doc["chapter"] == chapter
    assert EXPECTED_RESULTS.get(chapter, set()) <= set(doc["results"])


def test_every_chapter_declares_its_results():
    assert set(EXPECTED_RESULTS) == set(CHAPTERS)
