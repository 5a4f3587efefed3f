"""Chapter 4's tests that could have failed, run over the chapter's SAEs (nested in organisms):

- the data-level permutation test of every domain's gap (rows permuted, selection redone;
  :func:`~emgeom.claims.geometry.nulls.row_permutation_gap`), Holm-adjusted across domains, beside the
  latent-label test it replaces;
- each side against frequency-matched random latent sets (which side carries a gap);
- the quiz dissociation: the same answer words as inducing health after a user asked for a wrong
  answer, which induces no EM: is its gap to the harmful latents as large as inducing health's?
- the SAE-free check: the cosine of the difference-of-means directions in the raw residual stream.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from emgeom.claims.geometry.nulls import (
    SelectionReplicate,
    TargetReplicate,
    difference_cosine,
    latent_label_gap,
    random_latent_null,
    random_target_gap,
    residual_cosine_test,
    row_permutation_gap,
    shared_overlap_null,
)
from emgeom.claims.geometry.study import DomainData, GeometryConfig, GeometryRun, SAEGeometry, organism_of
from emgeom.core.stats import Estimate, holm, mean_ci
from emgeom.lm.chat import ChatRow
from emgeom.sae.geometry import similarity_to
from emgeom.sae.readouts import response_residuals, unit_directions


def decoder_directions(runs: Mapping[str, GeometryRun]) -> dict[str, np.ndarray]:
    """Each run's SAE's unit decoder directions (``[d_sae, d_model]``), read once for every domain."""
    return {lab: unit_directions(run.sae, "decoder") for lab, run in runs.items()}


def selection_replicates(
    runs: Mapping[str, GeometryRun],
    results: Mapping[str, SAEGeometry],
    domain: str,
    directions: Mapping[str, np.ndarray] | None = None,
) -> list[SelectionReplicate]:
    """One :class:`~emgeom.claims.geometry.nulls.SelectionReplicate` per SAE run, for one domain
    (``directions``: :func:`decoder_directions`, read here when not given)."""
    dirs = directions if directions is not None else decoder_directions(runs)
    return [
        SelectionReplicate(
            results[lab].activations[f"{domain}/inducing"].numpy(),
            results[lab].activations[f"{domain}/non-inducing"].numpy(),
            similarity_to(np.arange(dirs[lab].shape[0]), results[lab].sets[domain].harmful, dirs[lab], "max"),
            _reference(results[lab]),
        )
        for lab in runs
    ]


def _reference(geo: SAEGeometry) -> np.ndarray | None:
    ref = geo.activations.get("reference")
    return None if ref is None else ref.numpy().mean(0)


def _frequency(geo: SAEGeometry) -> np.ndarray:
    acts = np.concatenate([a.numpy() for a in geo.activations.values()])
    return (acts > 0).mean(0)


def data_level_tests(
    runs: Mapping[str, GeometryRun],
    results: Mapping[str, SAEGeometry],
    cfg: GeometryConfig,
    n_perm: int,
    n_draws: int,
) -> pd.DataFrame:
    """One row per domain: ``gap`` (mean over the SAEs), ``p_rows`` (rows permuted, selection redone),
    ``p_rows_holm`` (Holm over the domains), ``p_target``, ``p_target_holm``, ``p_target_excl_shared`` and
    ``p_target_excl_shared_holm`` (the same for the gap without shared latents) (the harmful set replaced
    by ``n_draws`` frequency-matched random target sets), ``p_latent_labels`` (the selected latents'
    labels permuted),
    and each side against ``n_draws`` frequency-matched random sets: ``inducing``, ``inducing_random``,
    ``p_inducing_random``, ``noninducing``, ``noninducing_random``, ``p_noninducing_random`` (two-sided);
    and each set's latents shared with the harmful set (mean per SAE) against frequency-matched random
    sets: ``shared_<set>``, ``shared_<set>_expected``, ``p_shared_<set>`` (one-sided, more shared)."""
    labels = list(runs)
    domains = list(next(iter(results.values())).sets)
    dirs = decoder_directions(runs)
    freq = [_frequency(results[lab]) for lab in labels]  # the same for every domain
    out = []
    for i, d in enumerate(domains):
        reps = selection_replicates(runs, results, d, dirs)
        rows = row_permutation_gap(reps, cfg.k, cfg.rule, n_perm, seed=cfg.seed + i)
        latent = latent_label_gap(reps, cfg.k, cfg.rule, n_perm, seed=cfg.seed + i)
        closeness = [r.closeness for r in reps]
        ind = random_latent_null(
            [results[lab].sets[d].inducing for lab in labels], closeness, freq, n_draws, cfg.seed
        )
        non = random_latent_null(
            [results[lab].sets[d].noninducing for lab in labels], closeness, freq, n_draws, cfg.seed + 1
        )
        target_replicates = [
            TargetReplicate(
                results[lab].sets[d].inducing,
                results[lab].sets[d].noninducing,
                results[lab].sets[d].harmful,
                dirs[lab],
                f,
            )
            for lab, f in zip(labels, freq, strict=True)
        ]
        target = random_target_gap(target_replicates, n_draws, seed=cfg.seed + 2)
        target_excl = random_target_gap(target_replicates, n_draws, seed=cfg.seed + 2, exclude_shared=True)
        overlap = {
            side: shared_overlap_null(
                [getattr(results[lab].sets[d], side) for lab in labels],
                [results[lab].sets[d].harmful for lab in labels],
                freq,
                n_draws,
                seed=cfg.seed + 3,
            )
            for side in ("inducing", "noninducing")
        }
        out.append(
            {
                "domain": d,
                "gap": rows.observed,
                "p_rows": rows.p,
                "p_target": target.p,
                "p_target_excl_shared": target_excl.p,
                "p_latent_labels": latent.p,
                "inducing": ind.observed,
                "inducing_random": ind.random_mean,
                "p_inducing_random": ind.p,
                "noninducing": non.observed,
                "noninducing_random": non.random_mean,
                "p_noninducing_random": non.p,
                "shared_inducing": overlap["inducing"].observed,
                "shared_inducing_expected": overlap["inducing"].expected,
                "p_shared_inducing": overlap["inducing"].p,
                "shared_noninducing": overlap["noninducing"].observed,
                "shared_noninducing_expected": overlap["noninducing"].expected,
                "p_shared_noninducing": overlap["noninducing"].p,
            }
        )
    table = pd.DataFrame(out)
    adjusted = holm(dict(zip(table["domain"], table["p_rows"], strict=True)))
    table.insert(3, "p_rows_holm", [adjusted[d] for d in table["domain"]])
    adjusted = holm(dict(zip(table["domain"], table["p_target"], strict=True)))
    table.insert(5, "p_target_holm", [adjusted[d] for d in table["domain"]])
    adjusted = holm(dict(zip(table["domain"], table["p_target_excl_shared"], strict=True)))
    table.insert(7, "p_target_excl_shared_holm", [adjusted[d] for d in table["domain"]])
    return table


def record_data_level_tests(table: pd.DataFrame, n_perm: int, n_draws: int, n_organisms: int) -> None:
    """Record, per domain, ``similarity_gap_rowperm_pvalue_<d>`` and ``similarity_gap_target_pvalue_<d>``
    (raw; the scorecard adjusts over the domains of each claim), ``inducing_vs_random_pvalue_<d>`` and
    ``noninducing_vs_random_pvalue_<d>``."""
    from emgeom.core.results import record

    for _, row in table.iterrows():
        d = row["domain"]
        record(
            f"similarity_gap_rowperm_pvalue_{d}",
            row["p_rows"],
            n_seeds=n_organisms,
            note=f"{n_perm} row permutations, selection redone; Holm over this chapter's domains "
            f"{row['p_rows_holm']:.3g}; latent-label test {row['p_latent_labels']:.3g}",
        )
        record(
            f"similarity_gap_excl_shared_target_pvalue_{d}",
            row["p_target_excl_shared"],
            n_seeds=n_organisms,
            note=f"the gap without shared latents against {n_draws} frequency-matched random target sets "
            f"(latents shared with each draw left out, selection fixed); Holm over this chapter's domains "
            f"{row['p_target_excl_shared_holm']:.3g}",
        )
        record(
            f"similarity_gap_target_pvalue_{d}",
            row["p_target"],
            n_seeds=n_organisms,
            note=f"harmful set replaced by {n_draws} frequency-matched random target sets (selection fixed); "
            f"Holm over this chapter's domains {row['p_target_holm']:.3g}",
        )
        for side, label in (("inducing", "inducing"), ("noninducing", "non-inducing")):
            record(
                f"shared_latents_{side}_{d}",
                row[f"shared_{side}"],
                n_seeds=n_organisms,
                note=f"{label} latents that are also harmful latents, mean per SAE; frequency-matched "
                f"random sets share {row[f'shared_{side}_expected']:.2f} ({n_draws} draws, one-sided p "
                f"{row[f'p_shared_{side}']:.3g})",
            )
            record(
                f"shared_latents_{side}_expected_{d}",
                row[f"shared_{side}_expected"],
                n_seeds=n_organisms,
                note=f"latents that frequency-matched random sets of the {label} set's size share with the "
                f"harmful set, mean per SAE over {n_draws} draws",
            )
        record(
            f"inducing_vs_random_pvalue_{d}",
            row["p_inducing_random"],
            n_seeds=n_organisms,
            note=f"inducing {row['inducing']:.3f} vs {n_draws} frequency-matched random sets "
            f"(mean {row['inducing_random']:.3f}); two-sided",
        )
        record(
            f"noninducing_vs_random_pvalue_{d}",
            row["p_noninducing_random"],
            n_seeds=n_organisms,
            note=f"non-inducing {row['noninducing']:.3f} vs {n_draws} frequency-matched random sets "
            f"(mean {row['noninducing_random']:.3f}); two-sided",
        )


def per_organism_gaps(table: pd.DataFrame, domain: str) -> dict[str, float]:
    """The decoder-direction gap (all latents) of one domain per organism (its SAEs averaged), from a
    similarity table of :func:`~emgeom.claims.geometry.study.geometry_over_runs`."""
    sub = table[
        (table["directions"] == "decoder") & (table["domain"] == domain) & (~table["shared_excluded"])
    ]
    gaps: dict[str, list[float]] = {}
    for sae, part in sub.groupby("sae", sort=False):
        ind, non = part[part["set"] == "inducing"]["max_cos"], part[part["set"] == "non-inducing"]["max_cos"]
        gaps.setdefault(organism_of(str(sae)), []).append(float(ind.mean() - non.mean()))
    return {o: float(np.mean(v)) for o, v in gaps.items()}


def paired_gap_difference(first: Mapping[str, float], second: Mapping[str, float]) -> Estimate:
    """``first - second`` paired by organism, with a t-interval over organisms."""
    return mean_ci(np.array([first[o] - second[o] for o in first if o in second]))


def quiz_domains(domain: str, rows_per_set: int, seed: int = 0) -> dict[str, DomainData]:
    """The quiz pair of ``domain``: the quiz set (the inducing set's bad answers, after a user asked for
    a wrong answer) against the same good-advice rows as the inducing set's pair."""
    from emgeom.organism.datasets import finetune_rows

    return {
        domain: DomainData(
            finetune_rows("quiz", domain, rows_per_set, seed=seed),
            finetune_rows("good", domain, rows_per_set, seed=seed),
        )
    }


def residual_tests(
    saes: Mapping[tuple[Any, Any], tuple[Any, Any, Any]],
    hook_name: str,
    domains: Mapping[str, DomainData],
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    n_perm: int,
) -> pd.DataFrame:
    """Per domain, the SAE-free check on every organism (``saes``: (organism, SAE seed) -> (hooked,
    tokenizer, sae), as chapter 4 holds them; each organism's model is read once, without its SAEs):
    the cosine of (inducing − non-inducing) with (harmful − benign) mean residuals at ``hook_name`` over
    the answer tokens; columns ``domain, cosine, lo, hi, n, p`` (interval over organisms, p from the
    row permutation)."""
    models = {o: (hooked, tok) for (o, _), (hooked, tok, _) in saes.items()}
    read = {
        o: {
            name: response_residuals(hooked, tok, rows, hook_name).numpy()
            for name, rows in {"harmful": harmful_rows, "benign": benign_rows}.items()
        }
        for o, (hooked, tok) in models.items()
    }
    out = []
    for i, (d, data) in enumerate(domains.items()):
        ind = [response_residuals(h, t, data.inducing, hook_name).numpy() for h, t in models.values()]
        non = [response_residuals(h, t, data.noninducing, hook_name).numpy() for h, t in models.values()]
        harmful = [read[o]["harmful"] for o in models]
        benign = [read[o]["benign"] for o in models]
        test = residual_cosine_test(ind, non, harmful, benign, n_perm, seed=i)
        per_organism = mean_ci(
            np.array([difference_cosine(*x) for x in zip(ind, non, harmful, benign, strict=True)]),
            bounds=(-1.0, 1.0),
        )
        out.append(
            {
                "domain": d,
                "cosine": test.observed,
                "lo": per_organism.lo,
                "hi": per_organism.hi,
                "n": per_organism.n,
                "p": test.p,
            }
        )
    return pd.DataFrame(out)


def estimates_by_domain(table: pd.DataFrame, column: str) -> dict[str, Estimate]:
    """One column of a per-domain table with ``lo, hi, n`` (:func:`residual_tests`' ``cosine``,
    :func:`two_by_two`'s ``interaction``) as estimates keyed by domain, for ``record_each``."""
    return {
        row["domain"]: Estimate(float(row[column]), float(row["lo"]), float(row["hi"]), int(row["n"]))
        for _, row in table.iterrows()
    }


def two_by_two(
    runs: Mapping[str, GeometryRun], results: Mapping[str, SAEGeometry], k_benign: int
) -> pd.DataFrame:
    """Per domain, the 2x2 of latent set (inducing, non-inducing) by target set (the harmful latents, and
    as many benign latents: the top of kind minus hostile answers): each cell the mean max-cosine
    (decoder directions), averaged over each organism's SAEs and then over organisms; ``interaction``
    = (inducing→harmful − inducing→benign) − (non-inducing→harmful − non-inducing→benign), with a
    t-interval over organisms. The account predicts inducing latents nearer the harmful set, non-inducing
    nearer the benign one: a positive interaction."""
    from emgeom.sae.geometry import top_latents

    rows = []
    for lab, geo in results.items():
        dirs = unit_directions(runs[lab].sae, "decoder")
        benign = top_latents(geo.activations["benign"].mean(0) - geo.activations["harmful"].mean(0), k_benign)
        for d, sets in geo.sets.items():
            cells = {
                f"{name}_to_{target}": float(similarity_to(latents, targets, dirs, "max").mean())
                for name, latents in (("inducing", sets.inducing), ("noninducing", sets.noninducing))
                for target, targets in (("harmful", sets.harmful), ("benign", benign))
            }
            rows.append({"organism": organism_of(lab), "domain": d, **cells})
    per_organism = pd.DataFrame(rows).groupby(["domain", "organism"], sort=False).mean().reset_index()
    per_organism["interaction"] = (
        per_organism["inducing_to_harmful"]
        - per_organism["inducing_to_benign"]
        - per_organism["noninducing_to_harmful"]
        + per_organism["noninducing_to_benign"]
    )
    out = []
    for d, part in per_organism.groupby("domain", sort=False):
        e = mean_ci(part["interaction"].to_numpy())
        means = part.drop(columns=["domain", "organism"]).mean()
        out.append({"domain": d, **means.to_dict(), "lo": e.lo, "hi": e.hi, "n": e.n})
    return pd.DataFrame(out)


def width_check(
    organism: Any,
    hooked: Any,
    tokenizer: Any,
    spec: Any,
    widths: Sequence[int],
    domains: Mapping[str, DomainData],
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    cfg: GeometryConfig,
    reference_rows: Sequence[ChatRow] | None = None,
) -> pd.DataFrame:
    """The gap per domain with SAEs of other widths (``spec`` with ``d_sae`` set to each width; trained on
    one organism, or loaded from the cache): one row per (width, domain) with ``gap``,
    ``gap_excl_shared`` and ``shared_inducing_per_sae``. A narrow SAE merges features (a gap can come
    from one latent standing for both); a wide one splits and absorbs them."""
    from dataclasses import replace

    from emgeom.claims.geometry.study import geometry_over_runs, summarise_gaps
    from emgeom.organism.sae import organism_sae

    frames = []
    for width in widths:
        sae = organism_sae(organism, hooked, tokenizer, replace(spec, d_sae=int(width)))[0]
        runs = {f"width {width}": GeometryRun(hooked, tokenizer, sae, dict(domains))}
        _, table = geometry_over_runs(runs, harmful_rows, benign_rows, cfg, reference_rows=reference_rows)
        summary = summarise_gaps(table, cfg)[["domain", "gap", "gap_excl_shared", "shared_inducing_per_sae"]]
        frames.append(summary.assign(width=int(width)))
    return pd.concat(frames, ignore_index=True)[
        ["width", "domain", "gap", "gap_excl_shared", "shared_inducing_per_sae"]
    ]
