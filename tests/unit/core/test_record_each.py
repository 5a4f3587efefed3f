"""record_each: one recorded result per key, named from a template."""

from __future__ import annotations

import json

import pytest

from emgeom.core import results
from emgeom.core.stats import Estimate


def test_records_every_key_with_its_interval(tmp_path, monkeypatch) -> None:
    target = tmp_path / "results.json"
    monkeypatch.setenv(results.ENV_RESULTS_FILE, str(target))
    results.record_each("gap_{}", {"health": Estimate(0.5, 0.4, 0.6, 3), "code": Estimate(0.1, -0.1, 0.3, 2)})
    doc = json.loads(target.read_text())["results"]
    assert doc["gap_health"] == {"value": 0.5, "ci": [0.4, 0.6], "n_seeds": 3, "note": ""}
    assert doc["gap_code"]["n_seeds"] == 2
    results.record_each("other_{}", {"x": Estimate(1.0, 0.0, 2.0, 5)}, n_seeds=7, note="n")
    assert json.loads(target.read_text())["results"]["other_x"]["n_seeds"] == 7


def test_a_template_without_a_slot_is_refused() -> None:
    with pytest.raises(ValueError, match="needs a"):
        results.record_each("gap", {"health": Estimate(0.5, 0.4, 0.6, 3)})


def test_paired_relative_reduction_pairs_replicates_and_skips_zero_baselines() -> None:
    import pandas as pd

    from emgeom.core.stats import paired_relative_reduction

    base = pd.Series({0: 0.4, 1: 0.5, 2: 0.0})
    treated = pd.Series({0: 0.1, 1: 0.25, 2: 0.1, 3: 0.2})  # seed 3 has no baseline, seed 2 nothing to reduce
    e = paired_relative_reduction(base, treated)
    assert e.value == pytest.approx((0.75 + 0.5) / 2) and e.n == 2
    assert paired_relative_reduction({0: 0.4}, {0: 0.2}).value == pytest.approx(0.5)
