"""The Build status page renders the rows of a tiny run report and results document: one row per
chapter, per artifact step, per recorded result (with its declared unit and meaning, its interval and
its escaped note) and per package."""

from __future__ import annotations

from emgeom.book.pages.status_page import render_build_status
from emgeom.core.results import ResultDeclaration

REPORT = {
    "generated_at": "2025-01-02T03:04:05",
    "profile": "smoke",
    "profile_description": "a tiny run",
    "threads": 1,
    "python": "3.12.1",
    "platform": "linux",
    "chapters": [
        {
            "chapter": "04_sae_geometry",
            "profile": "smoke",
            "this_run": "executed",
            "status": "ok",
            "wall_seconds": 12.34,
            "key": "0123456789abcdef0123",
            "parameters": {"k": 5},
        },
        {
            "chapter": "05_finetuning_mechanism",
            "profile": "smoke",
            "this_run": "cached",
            "status": "ok",
            "wall_seconds": 7.0,
            "key": "fedcba9876543210",
            "parameters": {},
        },
    ],
    "stages": [
        {
            "stage": "organism 0",
            "kind": "organism",
            "status": "built",
            "wall_seconds": 3.21,
            "finished_at": "03:05",
        }
    ],
    "packages": {"numpy": "2.1.0", "torch": "2.5.0"},
}

RESULTS = {
    "04_sae_geometry": {
        "profile": "smoke",
        "results": {
            "similarity_gap_health": {"value": 0.123456, "ci": [0.01, 0.2], "n_seeds": 3, "note": "a|b"},
            "sae_fvu": {"value": None, "ci": None, "n_seeds": 3},
            "stray_result": {"value": 2.0, "ci": None, "n_seeds": 1, "note": ""},
        },
    }
}

DECLARATIONS = {
    "04_sae_geometry": {
        "similarity_gap_{domain}": ResultDeclaration("similarity_gap_{domain}", "the gap", "cosine"),
        "sae_fvu": ResultDeclaration("sae_fvu", "unexplained variance", "fraction"),
    }
}


def test_the_page_has_a_row_per_chapter_step_result_and_package() -> None:
    page = render_build_status(REPORT, RESULTS, DECLARATIONS)
    lines = page.splitlines()
    assert "| `04_sae_geometry` | smoke | executed | ok | 12.3 | `0123456789ab` | `k=5` |" in lines
    assert "| `05_finetuning_mechanism` | smoke | cached | ok | 7.0 | `fedcba987654` | defaults |" in lines
    assert "| organism 0 | organism | built | 3.2 | 03:05 |" in lines
    assert (
        "| `04_sae_geometry` | smoke | `similarity_gap_health` | 0.1235 | cosine | [0.01, 0.2] | 3 | "
        "the gap | a\\|b |"
    ) in lines
    assert (
        "| `04_sae_geometry` | smoke | `sae_fvu` | n/a | fraction | — | 3 | unexplained variance |  |"
    ) in lines
    assert "| `04_sae_geometry` | smoke | `stray_result` | 2 | ? | — | 1 | not declared |  |" in lines
    assert "| numpy | 2.1.0 |" in lines and "| torch | 2.5.0 |" in lines
    assert "**2025-01-02T03:04:05**" in page and "profile **smoke**" in page
    result_rows = [line for line in lines if line.startswith("| `04_sae_geometry` | smoke | `")]
    assert len(result_rows) == 3


def test_a_run_with_no_results_says_so() -> None:
    page = render_build_status(REPORT | {"stages": []}, {})
    assert "| — | — | — | — | — | — | — | — | no chapter has recorded results yet |" in page.splitlines()
    assert "| organism 0 | organism |" not in page


def test_a_result_gets_its_own_declaration_when_a_shorter_placeholder_also_matches() -> None:
    gap = ResultDeclaration("similarity_gap_{domain}", "the gap", "cosine")
    rowperm = ResultDeclaration("similarity_gap_rowperm_pvalue_{domain}", "row-permutation p", "p-value")
    results = {
        "04_sae_geometry": {
            "profile": "smoke",
            "results": {"similarity_gap_rowperm_pvalue_health": {"value": 0.01, "ci": None, "n_seeds": 3}},
        }
    }
    declarations = {"04_sae_geometry": {gap.name: gap, rowperm.name: rowperm}}  # chapter 4's yaml order
    page = render_build_status(REPORT, results, declarations)
    assert (
        "| `04_sae_geometry` | smoke | `similarity_gap_rowperm_pvalue_health` | 0.01 | p-value | — | 3 | "
        "row-permutation p |  |"
    ) in page.splitlines()
