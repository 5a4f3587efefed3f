"""Chapter 4's evidence over organisms on planted numbers: the per-organism gap (its SAEs averaged
first), paired differences and the 2x2 interaction with t-intervals over organisms (df = organisms - 1,
computed here by hand), the SAE-free residual cosine on planted directions, and the data-level table's
Holm adjustment and what it records."""

from __future__ import annotations

import math
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import torch

from emgeom.claims.geometry import evidence as ge
from emgeom.claims.geometry.study import DomainData, GeometryConfig, SAEGeometry
from emgeom.core.stats import Estimate
from emgeom.sae.geometry import FeatureSets

# Student t quantiles (0.975) by degrees of freedom, from a t table: the intervals below are computed
# by hand from them, so a wrong df in the code (n instead of n - 1) moves the bounds and fails.
T975 = {1: 12.706204736174694, 2: 4.302652729749462, 3: 3.1824463052837078}


def t_interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% t-interval by hand: mean -/+ t(0.975, n-1) * s / sqrt(n), s with n - 1."""
    n = len(values)
    mean = sum(values) / n
    s = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = T975[n - 1] * s / math.sqrt(n)
    return mean, mean - half, mean + half


def sim_row(sae: str, set_: str, max_cos: float, **overrides) -> dict:
    return {
        "directions": "decoder",
        "domain": "health",
        "shared_excluded": False,
        "sae": sae,
        "set": set_,
        "max_cos": max_cos,
    } | overrides


def test_per_organism_gaps_average_each_organisms_saes_first() -> None:
    a0, a1, b0 = "organism 0 / SAE 0", "organism 0 / SAE 1", "organism 1 / SAE 0"
    rows = [
        # organism 0, SAE 0: inducing mean 0.6, non-inducing mean 0.3 -> gap 0.3
        sim_row(a0, "inducing", 0.5),
        sim_row(a0, "inducing", 0.7),
        sim_row(a0, "non-inducing", 0.2),
        sim_row(a0, "non-inducing", 0.4),
        # organism 0, SAE 1: gap 0.4 - 0.3 = 0.1  -> organism 0: (0.3 + 0.1) / 2 = 0.2
        sim_row(a1, "inducing", 0.4),
        sim_row(a1, "non-inducing", 0.3),
        # organism 1, one SAE: gap 0.9 - 0.4 = 0.5
        sim_row(b0, "inducing", 0.9),
        sim_row(b0, "non-inducing", 0.4),
        # rows that must be left out: encoder directions, another domain, shared latents excluded,
        # the random set
        sim_row(b0, "inducing", 9.0, directions="encoder"),
        sim_row(b0, "inducing", 9.0, domain="code"),
        sim_row(b0, "non-inducing", 9.0, shared_excluded=True),
        sim_row(a0, "random", 9.0),
    ]
    gaps = ge.per_organism_gaps(pd.DataFrame(rows), "health")
    assert set(gaps) == {"organism 0", "organism 1"}  # SAEs are not organisms
    assert gaps["organism 0"] == pytest.approx(0.2)
    assert gaps["organism 1"] == pytest.approx(0.5)


def test_paired_gap_difference_pairs_by_organism_with_a_t_interval_over_organisms() -> None:
    first = {"organism 0": 0.5, "organism 1": 0.4, "organism 2": 0.9, "organism 3": 7.0}
    second = {"organism 0": 0.4, "organism 1": 0.2, "organism 2": 0.3}  # organism 3 is unpaired
    e = ge.paired_gap_difference(first, second)
    mean, lo, hi = t_interval([0.1, 0.2, 0.6])  # 0.3 [-0.357, 0.957] with df = 2
    assert e.n == 3
    assert e.value == pytest.approx(mean) and e.value == pytest.approx(0.3)
    assert (e.lo, e.hi) == pytest.approx((lo, hi))


def test_estimates_by_domain_reads_value_and_interval_columns() -> None:
    table = pd.DataFrame(
        [
            {"domain": "health", "cosine": 0.4, "lo": 0.1, "hi": 0.7, "n": 3, "p": 0.01},
            {"domain": "code", "cosine": -0.2, "lo": -0.5, "hi": 0.1, "n": 3, "p": 0.9},
        ]
    )
    out = ge.estimates_by_domain(table, "cosine")
    assert out == {"health": Estimate(0.4, 0.1, 0.7, 3), "code": Estimate(-0.2, -0.5, 0.1, 3)}


# ---- the SAE-free residual check on planted directions --------------------------------------------

E = np.eye(4)
HOOK = "blocks.1.hook_resid_pre"


def rows_around(mean: np.ndarray, n: int = 6) -> np.ndarray:
    """``n`` residual rows whose mean is exactly ``mean`` (the spread, in e2/e3, sums to zero)."""
    spread = np.array([[1.0, 0.5], [-1.0, 0.5], [0.5, -1.0], [-0.5, -1.0], [0.3, 0.7], [-0.3, 0.3]])
    spread = spread[:n] - spread[:n].mean(0)
    return mean + spread @ E[2:]


def test_residual_cosine_on_planted_directions(monkeypatch) -> None:
    # harmful - benign points along e0 in every organism; inducing - non-inducing points along e0
    # (cosine 1), e0 + e1 (cosine 1/sqrt 2) and e1 (cosine 0) in organisms 0, 1, 2 for health, and
    # against e0 (cosine -1) in code
    shift = {
        "health": {0: E[0], 1: E[0] + E[1], 2: E[1]},
        "code": {0: -E[0], 1: -2 * E[0], 2: -0.5 * E[0]},
    }
    planted = {}
    for o in range(3):
        model = f"model {o}"
        planted[(model, "harmful")] = rows_around(E[0] + 0.1 * o * E[1])
        planted[(model, "benign")] = rows_around(0.1 * o * E[1])
        for d in shift:
            planted[(model, f"{d}/inducing")] = rows_around(shift[d][o] + 0.3 * E[1])
            planted[(model, f"{d}/non-inducing")] = rows_around(0.3 * E[1])
    reads: list[tuple[str, str]] = []

    def fake_residuals(hooked, tokenizer, rows, hook_name):
        assert hook_name == HOOK and tokenizer == "tok"
        reads.append((hooked, rows[0]))
        return torch.tensor(planted[(hooked, rows[0])])

    monkeypatch.setattr(ge, "response_residuals", fake_residuals)
    saes = {  # organism 0 holds two SAEs: still one organism, one residual stream
        (0, 0): ("model 0", "tok", "sae 0a"),
        (0, 1): ("model 0", "tok", "sae 0b"),
        (1, 0): ("model 1", "tok", "sae 1"),
        (2, 0): ("model 2", "tok", "sae 2"),
    }
    domains = {d: DomainData([f"{d}/inducing"], [f"{d}/non-inducing"]) for d in shift}
    table = ge.residual_tests(saes, HOOK, domains, ["harmful"], ["benign"], n_perm=99)

    assert reads.count(("model 0", "harmful")) == 1  # each organism's model read once, not per SAE
    health = table.set_index("domain").loc["health"]
    cosines = [1.0, 1 / math.sqrt(2), 0.0]
    mean, lo, hi = t_interval(cosines)
    assert health["n"] == 3  # organisms, not the four SAEs
    assert health["cosine"] == pytest.approx(mean) and health["cosine"] == pytest.approx(0.5690355)
    assert health["lo"] == pytest.approx(lo) and lo > -1
    assert hi > 1 and health["hi"] == pytest.approx(1.0)  # a cosine's interval is clipped to [-1, 1]
    code = table.set_index("domain").loc["code"]
    assert code["cosine"] == pytest.approx(-1.0)
    assert (code["lo"], code["hi"]) == pytest.approx((-1.0, -1.0))  # no spread over organisms
    assert 0 < health["p"] < code["p"] <= 1  # one-sided: pointing away from harmful is no evidence
    assert code["p"] > 0.5


# ---- the 2x2 of latent set by target set ----------------------------------------------------------


def decoder(a: float, b: float, c: float, d: float) -> torch.Tensor:
    """Latents: 0 harmful (e0), 1 benign (e1), 2 with cosines (a, b) to them, 3 with cosines (c, d)."""
    return torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.0, 1.0, 0.0, 0.0],
            [a, b, math.sqrt(1 - a * a - b * b), 0.0],
            [c, d, 0.0, math.sqrt(1 - c * c - d * d)],
        ]
    )


def geometry_result(sets: dict[str, FeatureSets], **activations: torch.Tensor) -> SAEGeometry:
    acts = {
        "harmful": torch.tensor([[1.0, 0.0, 0.0, 0.0], [0.8, 0.1, 0.0, 0.0]]),
        "benign": torch.tensor([[0.0, 1.0, 0.0, 0.0], [0.1, 0.9, 0.0, 0.0]]),
    }
    return SAEGeometry(records=[], sets=sets, rows={}, activations=acts | activations)


def test_two_by_two_interaction_is_averaged_within_organisms_then_over_organisms() -> None:
    # per SAE: interaction = (a - b) - (c - d)
    cells = {
        "organism 0 / SAE 0": (0.6, 0.2, 0.3, 0.3),  # 0.4
        "organism 0 / SAE 1": (0.5, 0.1, 0.0, 0.4),  # 0.8  -> organism 0: 0.6
        "organism 1 / SAE 0": (0.4, 0.3, 0.2, 0.2),  # 0.1
        "organism 2 / SAE 0": (0.4, 0.2, 0.3, 0.3),  # 0.2
    }
    sets = {
        "health": FeatureSets(np.array([2]), np.array([3]), np.array([0])),
        "code": FeatureSets(np.array([3]), np.array([2]), np.array([0])),  # roles swapped: negated
    }
    runs = {lab: SimpleNamespace(sae=SimpleNamespace(W_dec=decoder(*c))) for lab, c in cells.items()}
    results = {lab: geometry_result(sets) for lab in cells}
    table = ge.two_by_two(runs, results, k_benign=1).set_index("domain")

    health = table.loc["health"]
    mean, lo, hi = t_interval([0.6, 0.1, 0.2])  # nested: 0.3; pooled over the 4 SAEs would be 0.375
    assert health["interaction"] == pytest.approx(mean) and health["interaction"] == pytest.approx(0.3)
    assert (health["lo"], health["hi"]) == pytest.approx((lo, hi))
    assert health["n"] == 3
    # each cell: organism 0's two SAEs averaged, then the three organisms
    assert health["inducing_to_harmful"] == pytest.approx(((0.6 + 0.5) / 2 + 0.4 + 0.4) / 3)
    assert health["inducing_to_benign"] == pytest.approx(((0.2 + 0.1) / 2 + 0.3 + 0.2) / 3)
    assert health["noninducing_to_harmful"] == pytest.approx(((0.3 + 0.0) / 2 + 0.2 + 0.3) / 3)
    assert health["noninducing_to_benign"] == pytest.approx(((0.3 + 0.4) / 2 + 0.2 + 0.3) / 3)
    code = table.loc["code"]
    assert code["interaction"] == pytest.approx(-0.3)
    assert (code["lo"], code["hi"]) == pytest.approx((-hi, -lo))


# ---- the data-level table: observed gaps, Holm over domains, what is recorded ----------------------


def test_data_level_tests_gaps_and_holm_adjustment_over_domains(monkeypatch) -> None:
    # decoder: latent 0 is the harmful set; closeness (max cosine to it) is 1, 0.8, 0.2, 0 for 0..3
    dec = torch.tensor(
        [
            [1.0, 0.0, 0.0, 0.0],
            [0.8, 0.6, 0.0, 0.0],
            [0.2, 0.0, math.sqrt(0.96), 0.0],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )
    rng = np.random.default_rng(0)

    def fires(latent: int, n: int = 6) -> torch.Tensor:
        x = np.zeros((n, 4))
        x[:, latent] = 1.0 + 0.1 * rng.random(n)
        return torch.tensor(x, dtype=torch.float32)

    sets = {
        # health: inducing rows fire latent 1 (closeness 0.8), non-inducing rows latent 3 (0): gap 0.8
        "health": FeatureSets(np.array([1]), np.array([3]), np.array([0])),
        # code: inducing rows fire latent 2 (0.2), non-inducing rows latent 1 (0.8): gap -0.6
        "code": FeatureSets(np.array([2]), np.array([1]), np.array([0])),
    }
    labels = ["organism 0 / SAE 0", "organism 1 / SAE 0"]
    runs = {lab: SimpleNamespace(sae=SimpleNamespace(W_dec=dec)) for lab in labels}
    results = {
        lab: geometry_result(
            sets,
            **{
                "health/inducing": fires(1),
                "health/non-inducing": fires(3),
                "code/inducing": fires(2),
                "code/non-inducing": fires(1),
            },
        )
        for lab in labels
    }
    cfg = GeometryConfig(k=1, k_harmful=1, rule="reverse", seed=0)
    table = ge.data_level_tests(runs, results, cfg, n_perm=50, n_draws=20).set_index("domain")

    assert table.loc["health", "gap"] == pytest.approx(0.8)
    assert table.loc["code", "gap"] == pytest.approx(0.2 - 0.8)
    assert table.loc["health", "inducing"] == pytest.approx(0.8)
    assert table.loc["health", "noninducing"] == pytest.approx(0.0)
    assert table.loc["code", "inducing"] == pytest.approx(0.2)
    assert table.loc["code", "noninducing"] == pytest.approx(0.8)
    for raw, adjusted in (("p_rows", "p_rows_holm"), ("p_target", "p_target_holm")):
        p = table[raw].to_dict()
        assert all(0 < v <= 1 for v in p.values())
        # Holm by hand over two domains: the smaller p times 2, the larger at least that
        (d1, p1), (d2, p2) = sorted(p.items(), key=lambda kv: kv[1])
        assert table.loc[d1, adjusted] == pytest.approx(min(1.0, 2 * p1))
        assert table.loc[d2, adjusted] == pytest.approx(max(min(1.0, 2 * p1), min(1.0, p2)))
    assert table.loc["health", "p_rows"] < table.loc["code", "p_rows"]

    recorded: dict[str, tuple[float, int]] = {}

    def fake_record(name, value, *, ci=None, n_seeds=1, note=""):
        recorded[name] = (value, n_seeds)

    from emgeom.core import results as results_module

    monkeypatch.setattr(results_module, "record", fake_record)
    ge.record_data_level_tests(table.reset_index(), n_perm=50, n_draws=20, n_organisms=2)
    for d in ("health", "code"):
        # the raw p is recorded (the scorecard adjusts over the domains of each claim): not Holm's
        assert recorded[f"similarity_gap_rowperm_pvalue_{d}"] == (pytest.approx(table.loc[d, "p_rows"]), 2)
        assert recorded[f"similarity_gap_target_pvalue_{d}"][0] == pytest.approx(table.loc[d, "p_target"])
        assert recorded[f"inducing_vs_random_pvalue_{d}"][0] == pytest.approx(
            table.loc[d, "p_inducing_random"]
        )
        assert recorded[f"noninducing_vs_random_pvalue_{d}"][0] == pytest.approx(
            table.loc[d, "p_noninducing_random"]
        )
        for side in ("inducing", "noninducing"):
            assert recorded[f"shared_latents_{side}_{d}"][0] == table.loc[d, f"shared_{side}"]
            assert (
                recorded[f"shared_latents_{side}_expected_{d}"][0] == table.loc[d, f"shared_{side}_expected"]
            )
            assert 0 <= table.loc[d, f"shared_{side}"] <= 10
