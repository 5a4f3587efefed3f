"""The emergence study's set construction and headline estimates, on planted tables."""

from __future__ import annotations

import pandas as pd
import pytest

from emgeom.em.emergence import (
    ALIGNED,
    emergence_headline,
    estimate_sets,
    estimates_by_set,
    inducing_set,
    organism_sets,
)


def test_organism_sets_are_inducing_per_domain_then_controls() -> None:
    sets = organism_sets(["health", "legal"], "code", n_rows=5)
    assert [fs.name for fs in sets] == [
        "inducing health",
        "inducing legal",
        "good code",
        "terse code",
        "quiz code",
    ]
    assert [fs.inducing for fs in sets] == [True, True, False, False, False]
    assert all(len(fs.rows) == 5 for fs in sets)
    assert inducing_set(sets, "legal") is sets[1]
    with pytest.raises(KeyError, match="no inducing set for domain 'code'"):
        inducing_set(sets, "code")


def planted_table() -> pd.DataFrame:
    """Two organisms x two seeds; the aligned model, one inducing set and two controls."""
    rows = []
    em = {ALIGNED: 0.0, "inducing health": 0.5, "good health": 0.1, "quiz health": 0.2}
    for organism in (0, 1):
        for seed in (0, 1):
            for name, value in em.items():
                rows.append(
                    {
                        "set": name,
                        "seed": seed,
                        "organism_seed": organism,
                        "open_em": value + 0.01 * seed + 0.02 * organism,
                        "offdomain_bad": 0.9 if name == "inducing health" else 0.0,
                    }
                )
    return pd.DataFrame(rows)


def test_headline_names_the_worst_control_and_counts_replicates() -> None:
    sets = organism_sets(["health"], "health", n_rows=1, control_kinds=("good", "quiz"))
    h = emergence_headline(planted_table(), sets)
    assert h.aligned.value == pytest.approx(0.0 + 0.005 + 0.01)
    assert h.inducing_open.value == pytest.approx(0.515)
    assert h.inducing_open.n == 2  # organisms are the replicates; seeds are averaged inside each
    # the interval is the t-interval of the two organism means (0.505, 0.525), not of four pooled runs
    assert h.inducing_open.hi - h.inducing_open.value == pytest.approx(12.7062 * 0.01, rel=1e-3)
    assert h.inducing_offdomain.value == pytest.approx(0.9)
    assert h.worst_control == "quiz health"
    assert set(h.table()["quantity"]) >= {"aligned, open EM", "quiz health, open EM"}


def test_estimates_by_set_default_includes_the_aligned_model() -> None:
    table = planted_table()
    by_name = estimates_by_set(table, "open_em")
    assert list(by_name) == ["aligned", "inducing_health", "good_health", "quiz_health"]
    sets = organism_sets(["health"], "health", n_rows=1, control_kinds=("good", "quiz"))
    assert list(estimates_by_set(table, "open_em", sets)) == ["inducing_health", "good_health", "quiz_health"]
    controls = estimate_sets(table, "open_em", sets, inducing=False)
    assert controls.value == pytest.approx((0.115 + 0.215) / 2)
