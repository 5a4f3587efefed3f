"""Chapter 5's mechanism study helpers on planted results (no model needed)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from emgeom.claims.mechanism.measurement import MechanismResult
from emgeom.claims.mechanism.study import (
    MechanismRecorder,
    harmful_targets,
    mechanism_estimates,
    mechanism_table,
)
from emgeom.core.stats import Estimate
from emgeom.em.emergence import FineTuneSet
from emgeom.sae.readouts import PromptReadout


def result(r: float, target: int = 0) -> MechanismResult:
    """A mechanism result whose only informative field is the pre-activation correlation ``r``."""
    z = np.zeros(4)
    return MechanismResult(
        cosine=z,
        delta_pre=z,
        delta_post=z,
        alive=np.ones(4, bool),
        target=target,
        r_pre=Estimate(r, r - 0.1, r + 0.1, 4),
        r_post=Estimate(r / 2, 0, 0, 4),
        slope_pre=2 * r,
        shift_norm=1.0,
        shift_on_harmful=np.array([r, r]),
        shift_on_random=np.array([0.0, 0.0]),
    )


PLANTED = {
    ("health", 0): result(0.6),
    ("health", 1): result(0.8),
    ("code", 0): result(-0.2),
    ("code", 1): result(0.0),
}


def test_estimates_pool_domains_and_seeds_and_name_the_domains_that_hold() -> None:
    est = mechanism_estimates(PLANTED, ["health", "code"], [0, 1])
    assert est.overall.value == pytest.approx((0.6 + 0.8 - 0.2 + 0.0) / 4)
    assert est.overall.n == 4
    assert est.per_domain["health"].value == pytest.approx(0.7)
    assert est.per_domain["code"].value == pytest.approx(-0.1)
    # health: mean 0.7, sd 0.141, t(1) interval 0.7 ± 1.27 -> includes 0: no domain holds with 2 seeds
    assert est.holds == []
    tight = {("health", s): result(0.7 + 0.001 * s) for s in range(4)}
    assert mechanism_estimates(tight, ["health"], range(4)).holds == ["health"]


def test_table_has_one_row_per_regime_and_domain_with_seed_means() -> None:
    table = mechanism_table(
        {"first-order": PLANTED, "full": PLANTED},
        ["health", "code"],
        [0, 1],
        {"health": 3, "code": 5},
        np.array([3]),
    )
    assert list(zip(table["regime"], table["domain"], strict=True)) == [
        ("first-order", "health"),
        ("first-order", "code"),
        ("full", "health"),
        ("full", "code"),
    ]
    health = table.iloc[0]
    assert health["r (pre-activation)"] == pytest.approx(0.7)
    assert health["slope"] == pytest.approx(1.4)
    assert health["Δh on harmful dirs"] == pytest.approx(0.7)
    assert bool(health["target is harmful"]) and not bool(table.iloc[1]["target is harmful"])
    assert harmful_targets({"health": 3, "code": 5}, np.array([3, 7])) == ["health"]


def test_recorder_reads_inducing_fine_tunes_only() -> None:
    calls: list[object] = []
    readout = PromptReadout(torch.zeros(2, 3), torch.zeros(2, 4), torch.zeros(2, 4))

    def reader(model: object) -> PromptReadout:
        calls.append(model)
        return readout

    class FakeSAE:
        W_dec = torch.eye(4, 3)

    recorder = MechanismRecorder(reader, readout, FakeSAE(), {"health": 1}, np.array([2]))
    recorder(FineTuneSet("good health", [], "health", inducing=False), 0, "model-a")
    assert calls == [] and recorder.results == {}
    recorder(FineTuneSet("inducing health", [], "health", inducing=True), 3, "model-b")
    assert calls == ["model-b"]
    assert set(recorder.results) == {("health", 3)}
    assert recorder.results[("health", 3)].target == 1
