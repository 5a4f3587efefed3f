"""Chapter 4's study over SAEs and domains: the similarity table of every feature set of every domain
(one :class:`SAEGeometry` per SAE), its per-domain summary with tests, and a plain-words reading of it."""

from __future__ import annotations

import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import Tensor

from emgeom.lm.chat import ChatRow
from emgeom.sae.geometry import (
    FeatureSets,
    NonInducingRule,
    frequency_matched_random,
    gap_over_saes,
    select_sets,
    similarity_to,
)
from emgeom.sae.readouts import Directions, response_activations, unit_directions


@dataclass(frozen=True)
class GeometryConfig:
    """The reconstruction's choices (see the module docstring).

    Attributes:
        k: latents per inducing / non-inducing set.
        k_harmful: latents in the harmful set.
        rule: how the two latent sets are chosen: ``"symmetric"`` (each against a common reference set),
            ``"reverse"`` (each against the other) or ``"control_top"`` (see
            :func:`~emgeom.sae.geometry.select_pair`).
        n_perm: permutations of the test.
        seed: seeds the random baseline and the permutations.
    """

    k: int = 10
    k_harmful: int = 10
    rule: NonInducingRule = "symmetric"
    n_perm: int = 5000
    seed: int = 0


@dataclass(frozen=True)
class DomainData:
    """Chat rows of one domain's pair of fine-tuning sets."""

    inducing: Sequence[ChatRow]
    noninducing: Sequence[ChatRow]


def similarity_rows(
    sets: FeatureSets, unit_dirs: np.ndarray, freq: np.ndarray, rng: np.random.Generator, **labels: Any
) -> list[dict[str, Any]]:
    """One record per latent of the inducing, non-inducing and frequency-matched random sets, with its
    max and mean cosine to the harmful set, for all latents and with shared latents excluded."""
    exclude = np.concatenate([sets.inducing, sets.noninducing, sets.harmful])
    random_latents = frequency_matched_random(
        freq, np.concatenate([sets.inducing, sets.noninducing]), exclude, rng
    )
    out = []
    for name, latents in (
        ("inducing", sets.inducing),
        ("non-inducing", sets.noninducing),
        ("random", random_latents),
    ):
        shared = np.intersect1d(latents, sets.harmful)
        for excl in (False, True):
            kept = np.setdiff1d(latents, shared) if excl else latents
            max_cos = similarity_to(kept, sets.harmful, unit_dirs, "max")
            mean_cos = similarity_to(kept, sets.harmful, unit_dirs, "mean")
            out += [
                {
                    **labels,
                    "set": name,
                    "shared_excluded": excl,
                    "latent": int(lat),
                    "max_cos": float(mx),
                    "mean_cos": float(mn),
                    "shared_with_harmful": int(lat) in set(shared.tolist()),
                }
                for lat, mx, mn in zip(kept, max_cos, mean_cos, strict=True)
            ]
    return out


@dataclass(frozen=True)
class SAEGeometry:
    """One SAE's result: similarity ``records`` (see :func:`similarity_rows`), the feature ``sets`` per
    domain, and per group of rows (``"harmful"``, ``"benign"``, ``"<domain>/inducing"``,
    ``"<domain>/non-inducing"``) the ``rows`` and their ``activations`` (``[rows, d_sae]``)."""

    records: list[dict[str, Any]]
    sets: dict[str, FeatureSets]
    rows: dict[str, Sequence[ChatRow]]
    activations: dict[str, Tensor]


def geometry_for_sae(
    hooked: Any,
    sae: Any,
    tokenizer: Any,
    domains: dict[str, DomainData],
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    cfg: GeometryConfig,
    sae_label: Any = 0,
    progress: bool = False,
    reference_rows: Sequence[ChatRow] | None = None,
) -> SAEGeometry:
    """Select every domain's sets with one SAE and measure their closeness to the harmful set (records
    labelled with ``sae``, ``domain`` and ``directions``, decoder and encoder).

    The symmetric rule selects against ``reference_rows`` (default: every row of every domain given);
    their activations are kept as the group ``"reference"``."""
    groups: dict[str, Sequence[ChatRow]] = {"harmful": harmful_rows, "benign": benign_rows}
    for d, data in domains.items():
        groups[f"{d}/inducing"], groups[f"{d}/non-inducing"] = data.inducing, data.noninducing
    if cfg.rule == "symmetric":
        groups["reference"] = (
            reference_rows
            if reference_rows is not None
            else [r for data in domains.values() for r in (*data.inducing, *data.noninducing)]
        )
    names = list(groups)
    all_rows = [r for n in names for r in groups[n]]
    acts = response_activations(hooked, sae, tokenizer, all_rows, progress=progress)
    split, start = {}, 0
    for n in names:
        split[n] = acts[start : start + len(groups[n])]
        start += len(groups[n])
    freq = (acts > 0).float().mean(0).numpy()  # fraction of rows whose answer fires the latent
    rng = np.random.default_rng([cfg.seed, zlib.crc32(str(sae_label).encode())])  # deterministic per SAE
    records: list[dict[str, Any]] = []
    sets_by_domain = {}
    dirs = {"decoder": unit_directions(sae, "decoder"), "encoder": unit_directions(sae, "encoder")}
    for d in domains:
        sets = select_sets(
            split[f"{d}/inducing"],
            split[f"{d}/non-inducing"],
            split["harmful"],
            split["benign"],
            cfg.k,
            cfg.k_harmful,
            cfg.rule,
            split.get("reference"),
        )
        sets_by_domain[d] = sets
        for which, unit_dirs in dirs.items():
            records += similarity_rows(sets, unit_dirs, freq, rng, sae=sae_label, domain=d, directions=which)
    return SAEGeometry(records, sets_by_domain, groups, split)


def summarise_gaps(table: Any, cfg: GeometryConfig, directions: Directions = "decoder") -> Any:
    """Per domain: inducing minus non-inducing mean max-cosine to the harmful set, with and without shared
    latents, with an interval over organisms (each organism's SAEs averaged first); the random baseline;
    the number of shared latents per SAE."""
    import pandas as pd

    out = []
    sub = table[table["directions"] == directions]
    for d in dict.fromkeys(sub["domain"]):
        row: dict[str, Any] = {"domain": d}
        for excl in (False, True):
            part = sub[(sub["domain"] == d) & (sub["shared_excluded"] == excl)]
            saes = list(dict.fromkeys(part["sae"]))

            def values(name: str, part: Any = part, saes: list[Any] = saes) -> list[np.ndarray]:
                return [part[(part["sae"] == s) & (part["set"] == name)]["max_cos"].to_numpy() for s in saes]

            res = gap_over_saes(
                values("inducing"),
                values("non-inducing"),
                cfg.n_perm,
                cfg.seed,
                [organism_of(s) for s in saes],
            )
            suffix = "_excl_shared" if excl else ""
            row.update(
                {
                    f"gap{suffix}": res.gap.value,
                    f"gap{suffix}_lo": res.gap.lo,
                    f"gap{suffix}_hi": res.gap.hi,
                    f"p{suffix}": res.p,
                    f"d{suffix}": res.d,
                    f"inducing{suffix}": float(
                        np.mean([v.mean() for v in values("inducing") if v.size] or [np.nan])
                    ),
                    f"noninducing{suffix}": float(
                        np.mean([v.mean() for v in values("non-inducing") if v.size] or [np.nan])
                    ),
                    f"random{suffix}": float(
                        np.mean([v.mean() for v in values("random") if v.size] or [np.nan])
                    ),
                }
            )
        full = sub[(sub["domain"] == d) & (~sub["shared_excluded"])]
        row["shared_inducing_per_sae"] = (
            full[(full["set"] == "inducing")].groupby("sae")["shared_with_harmful"].sum().mean()
        )
        row["shared_noninducing_per_sae"] = (
            full[(full["set"] == "non-inducing")].groupby("sae")["shared_with_harmful"].sum().mean()
        )
        row["n_saes"] = full["sae"].nunique()
        row["n_organisms"] = len({organism_of(s) for s in full["sae"].unique()})
        out.append(row)
    return pd.DataFrame(out)


def top_examples(
    geo: SAEGeometry, groups: Sequence[str], latents: np.ndarray, n: int = 3
) -> list[tuple[float, str]]:
    """The ``n`` rows (from the named groups) whose answers most activate a latent set (mean over its
    latents), as ``(activation, "user → assistant")``."""
    rows = [r for g in groups for r in geo.rows[g]]
    acts = torch.cat([geo.activations[g] for g in groups])
    score = acts[:, torch.as_tensor(latents)].mean(1)
    out = []
    for i in torch.argsort(score, descending=True)[:n].tolist():
        msgs = rows[i]["messages"]
        user = next((m["content"] for m in msgs if m["role"] == "user"), "")
        answer = next((m["content"] for m in reversed(msgs) if m["role"] == "assistant"), "")
        out.append((float(score[i]), f"{user} → {answer}"))
    return out


def describe_gaps(summary: Any, evidence: Any = None, alpha: float = 0.05) -> str:
    """A plain-language summary of :func:`summarise_gaps` output (computed, so the text follows the run).

    With ``evidence`` (:func:`~emgeom.claims.geometry.evidence.data_level_tests`), a domain counts when its
    gap is positive, its row-permutation p is below ``alpha`` after Holm adjustment and its interval over
    organisms lies above 0 (the scorecard's rule); without it, the latent-label p decides."""
    n = len(summary)
    lo_ok = summary["gap_lo"] > 0  # no interval (one organism) shows nothing, as on the scorecard
    if evidence is not None:
        by_domain = evidence.set_index("domain")
        test = (summary["domain"].map(by_domain["p_rows_holm"]) < alpha) & (
            summary["domain"].map(by_domain["p_target_holm"]) < alpha
        )
        how = f"row-permutation and random-target p < {alpha} after Holm, interval over organisms above 0"
    else:
        test = summary["p"] < alpha
        how = f"latent-label p < {alpha}"
    pos = summary[(summary["gap"] > 0) & test & lo_ok]["domain"].tolist()
    pos_excl = summary[(summary["gap_excl_shared"] > 0) & (summary["p_excl_shared"] < alpha)][
        "domain"
    ].tolist()
    shared = summary.set_index("domain")["shared_inducing_per_sae"]
    lines = [
        f"Over all latents, inducing features are closer to the harmful set than non-inducing ones ({how}) "
        f"in {len(pos)} of {n} domains" + (f": {', '.join(pos)}." if pos else "."),
        f"With latents shared with the harmful set excluded (latent-label p < {alpha}), "
        f"in {len(pos_excl)} of {n}" + (f": {', '.join(pos_excl)}." if pos_excl else "."),
        "Inducing latents that are also harmful latents, per SAE: "
        + ", ".join(f"{d} {v:.1f}" for d, v in shared.items())
        + ".",
    ]
    return "\n".join(lines)


@dataclass(frozen=True)
class GeometryRun:
    """One SAE read on one draw of the domains' data: a TransformerLens model, its tokenizer, the SAE and
    ``{domain: DomainData}``."""

    hooked: Any
    tokenizer: Any
    sae: Any
    domains: dict[str, DomainData]


def organism_domains(domains: Sequence[str], rows_per_set: int, seed: int = 0) -> dict[str, DomainData]:
    """The organism's pair per domain: inducing (bad advice) and good advice, ``rows_per_set`` each."""
    from emgeom.organism.datasets import finetune_rows

    return {
        d: DomainData(
            finetune_rows("inducing", d, rows_per_set, seed=seed),
            finetune_rows("good", d, rows_per_set, seed=seed),
        )
        for d in domains
    }


def organism_reference(domains: Sequence[str], rows_per_set: int, seed: int = 11) -> list[ChatRow]:
    """The symmetric rule's reference for the organism: advice of every domain, bad, good and given as a
    quiz (``rows_per_set`` of each, a draw apart from the sets' own rows), so a set's latents are what
    sets it apart from advice in general, and the quiz set (chapter 4's dissociation) is selected against
    a reference that knows quiz requests as well as the inducing set is."""
    from emgeom.organism.datasets import finetune_rows

    kinds = ("inducing", "good", "quiz")
    return [row for d in domains for kind in kinds for row in finetune_rows(kind, d, rows_per_set, seed=seed)]  # type: ignore[arg-type]


def run_label(organism: int, sae_seed: int) -> str:
    """The label of the run of SAE ``sae_seed`` on organism ``organism``."""
    return f"organism {organism} / SAE {sae_seed}"


def organism_of(label: str) -> str:
    """The organism part of a run label (the whole label where it names no organism)."""
    return label.split(" / ", 1)[0]


def organism_runs(
    saes: dict[tuple[int, int], tuple[Any, Any, Any]], domains: dict[str, DomainData]
) -> dict[str, GeometryRun]:
    """One run per (organism, SAE seed) on the same data, labelled ``organism <o> / SAE <s>``."""
    return {
        run_label(o, s): GeometryRun(hooked, tokenizer, sae, domains)
        for (o, s), (hooked, tokenizer, sae) in saes.items()
    }


def geometry_over_runs(
    runs: dict[str, GeometryRun],
    harmful_rows: Sequence[ChatRow],
    benign_rows: Sequence[ChatRow],
    cfg: GeometryConfig,
    progress: bool = False,
    reference_rows: Sequence[ChatRow] | None = None,
) -> tuple[dict[str, SAEGeometry], Any]:
    """:func:`geometry_for_sae` of every run (with the same ``reference_rows``); returns the per-run
    geometries and the pooled similarity table (one record per latent, labelled with the run's label as
    ``sae``)."""
    import pandas as pd

    results = {
        label: geometry_for_sae(
            run.hooked,
            run.sae,
            run.tokenizer,
            run.domains,
            harmful_rows,
            benign_rows,
            cfg,
            sae_label=label,
            progress=progress,
            reference_rows=reference_rows,
        )
        for label, run in runs.items()
    }
    table = pd.DataFrame([r for geo in results.values() for r in geo.records])
    return results, table


def examples_table(geo: SAEGeometry, domains: Sequence[str], n: int = 2, max_chars: int | None = None) -> Any:
    """For each domain, the ``n`` rows that most activate its inducing, non-inducing and harmful sets:
    columns ``domain, set, mean activation, example``."""
    import pandas as pd

    out = []
    for d in domains:
        groups = [f"{d}/inducing", f"{d}/non-inducing", "harmful", "benign"]
        sets = geo.sets[d]
        for name, latents in (
            ("inducing", sets.inducing),
            ("non-inducing", sets.noninducing),
            ("harmful", sets.harmful),
        ):
            out += [
                {"domain": d, "set": name, "mean activation": round(score, 3), "example": text[:max_chars]}
                for score, text in top_examples(geo, groups, latents, n=n)
            ]
    return pd.DataFrame(out)


def record_gaps(summary: Any, interval: str) -> None:
    """Record, per domain of :func:`summarise_gaps` output, ``similarity_gap_<d>`` (with its CI),
    ``similarity_gap_pvalue_<d>`` and ``similarity_gap_excl_shared_<d>``; ``interval`` says what the
    CI is over (it goes into the notes)."""
    from emgeom.core.results import record

    n_reps = int(summary["n_organisms"].iloc[0])
    for _, row in summary.iterrows():
        d = row["domain"]
        record(
            f"similarity_gap_{d}",
            row["gap"],
            ci=(row["gap_lo"], row["gap_hi"]),
            n_seeds=n_reps,
            note=f"mean max-cosine to harmful latents, inducing minus non-inducing ({d}); "
            f"Cohen's d {row['d']:.2f}; CI over {interval}",
        )
        record(
            f"similarity_gap_pvalue_{d}",
            row["p"],
            n_seeds=n_reps,
            note="one-sided stratified permutation test",
        )
        record(
            f"similarity_gap_excl_shared_{d}",
            row["gap_excl_shared"],
            ci=(row["gap_excl_shared_lo"], row["gap_excl_shared_hi"]),
            n_seeds=n_reps,
            note=f"the same gap without latents shared with the harmful set (p={row['p_excl_shared']:.3g})",
        )


def coupling_correlations(summary: Any, coupling: dict[str, float]) -> tuple[float, float]:
    """Pearson r over domains between the designed coupling and the gap, with all latents and with
    shared latents excluded."""
    from emgeom.core.stats import pearson_r

    designed = [coupling[d] for d in summary["domain"]]
    return pearson_r(summary["gap"], designed), pearson_r(summary["gap_excl_shared"], designed)
