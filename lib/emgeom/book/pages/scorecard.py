"""The reproduction scorecard: every claim of the paper beside this build's number, CI and a verdict.

Generated from the values the chapters record (``_build/results/*.json``), never typed: a claim whose
numbers were not recorded in this build says so. The verdict rules are stated on the page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from emgeom.core.results import ResultDeclaration
from emgeom.plots.scorecard import HeadlinePoint

#: The paper's domains (a fact about the paper); the build's own domains are read from its results.
PAPER_DOMAINS = ("health", "career", "legal")
ROWPERM_PREFIX = "similarity_gap_rowperm_pvalue_"
ALPHA = 0.05

Results = dict[str, dict[str, Any]]  # result name -> {"value", "ci", "n_seeds", "note"}


@dataclass(frozen=True)
class Verdict:
    measured: str
    verdict: str  # "reproduced" | "partly" | "not reproduced" | "not run"
    rule: str


def _get(r: Results, name: str) -> dict[str, Any] | None:
    entry = r.get(name)
    return entry if entry and entry.get("value") is not None else None


def _fmt(entry: dict[str, Any] | None, pct: bool = False) -> str:
    """``0.512 [0.261, 0.758]``, or in percent (``51.2% [26.1%, 75.8%]``); a CI that includes 0 says so."""
    if entry is None:
        return "not recorded"

    def one(x: float) -> str:
        return f"{x * 100:.1f}%" if pct else f"{x:.3f}"

    text = one(entry["value"])
    if entry.get("ci"):
        lo, hi = entry["ci"]
        text += f" [{one(lo)}, {one(hi)}]" + (" (CI includes 0)" if lo <= 0 <= hi else "")
    return text


def _lower(entry: dict[str, Any]) -> float:
    return entry["ci"][0] if entry.get("ci") else float("nan")


def _derivation(r: Results) -> Verdict:
    e, ce = _get(r, "first_order_pearson_r"), _get(r, "ce_first_order_pearson_r")
    counter, flip = _get(r, "counter_regime_pearson_r"), _get(r, "sign_flip_steps_adam")
    rule = (
        "in these toy models the law is an algebraic consequence of the objective: with the target present "
        "in every row, a reward or cross-entropy step rescales the target's own column, so Δz_j ∝ W_jᵀW_t "
        "(the coefficient for cross-entropy is 2 − 2p_t). A measured r ≥ 0.9 for both objectives therefore "
        "says the derivation's algebra is right (holds by construction), not that fine-tuning behaves so; "
        "below 0.9 = not reproduced. Where the law breaks (a bounded target under Adam, and the step count "
        "at which its sign flips at equal settings) is what could have come out otherwise, and is shown"
    )
    if e is None:
        return Verdict("not recorded", "not run", rule)
    holds = [x for x in (e, ce) if x is not None and x["value"] >= 0.9]
    flip_text = "never in the sweep" if flip is None else f"after {flip['value']:.0f} steps"
    measured = (
        f"reward + SGD r = {_fmt(e)}; cross-entropy + SGD r = {_fmt(ce)}; bounded target + Adam r = "
        f"{_fmt(counter)}, sign flips {flip_text} at equal learning rate"
    )
    verdict = "holds by construction" if len(holds) == 2 else "partly" if holds else "not reproduced"
    return Verdict(measured, verdict, rule)


def recorded_domains(r: Results) -> tuple[str, ...]:
    """The domains whose geometry this build recorded (in recording order)."""
    return tuple(name[len(ROWPERM_PREFIX) :] for name in r if name.startswith(ROWPERM_PREFIX))


def _gap(paper_only: bool) -> Callable[[Results], Verdict]:
    def judge(r: Results) -> Verdict:
        domains = recorded_domains(r)
        domains = tuple(d for d in PAPER_DOMAINS if d in domains) if paper_only else domains
        rule = (
            "per domain: gap > 0; its row-permutation p (rows permuted between the inducing and "
            "non-inducing set, selection redone) and its random-target p (the harmful set replaced by "
            f"frequency-matched random latents) each below {ALPHA} after Holm adjustment over these domains; "
            "and its interval over organisms above 0. In every domain = reproduced, in some = partly. "
            "Shared latents excluded reported beside"
        )
        from emgeom.core.stats import holm

        found = {}
        for d in domains:
            gap, rows, target = (
                _get(r, f"similarity_gap_{d}"),
                _get(r, f"similarity_gap_rowperm_pvalue_{d}"),
                _get(r, f"similarity_gap_target_pvalue_{d}"),
            )
            if gap is not None and rows is not None:
                found[d] = (gap, rows, target)
        if not found:
            return Verdict("not recorded", "not run", rule)
        rows_holm = holm({d: p["value"] for d, (_, p, _) in found.items()})
        target_holm = holm({d: t["value"] if t else float("nan") for d, (_, _, t) in found.items()})
        sig, sig_excl, parts = [], [], []
        for d, (gap, _, _) in found.items():
            excl = _get(r, f"similarity_gap_excl_shared_{d}")
            lo = (gap.get("ci") or [float("nan")])[0]
            if gap["value"] > 0 and rows_holm[d] < ALPHA and target_holm[d] < ALPHA and lo > 0:
                sig.append(d)
            if excl is not None and excl["value"] > 0 and (excl.get("ci") or [0])[0] > 0:
                sig_excl.append(d)
            parts.append(
                f"{d} {_fmt(gap)} (Holm p: rows {rows_holm[d]:.2g}, random target {target_holm[d]:.2g}; "
                f"n={gap.get('n_seeds')}; without shared latents {_fmt(excl)})"
            )
        verdict = "reproduced" if len(sig) == len(domains) else "partly" if sig else "not reproduced"
        measured = (
            "; ".join(parts)
            + f". Significant: {len(sig)}/{len(domains)}; "
            + f"without shared latents, CI above 0: {len(sig_excl)}/{len(domains)}."
        )
        return Verdict(measured, verdict, rule)

    return judge


def _upper(entry: dict[str, Any]) -> float:
    return entry["ci"][1] if entry.get("ci") else entry["value"]


def _mechanism(r: Results) -> Verdict:
    e, null = _get(r, "mechanism_decoder_projection_r"), _get(r, "mechanism_null_r_p95")
    partial, align = _get(r, "mechanism_decoder_projection_r_partial"), _get(r, "mechanism_shift_alignment")
    specific = _get(r, "mechanism_specificity_r_inducing_minus_good")
    ratio, turn = _get(r, "mechanism_lr_linearity_ratio"), _get(r, "mechanism_lr_direction_cosine")
    rule = (
        "first-order fine-tune (learning-rate ratio in [1.8, 2.2] and direction cosine ≥ 0.95), read on "
        "tokens of the fine-tuning set's kind: the correlation between each latent's decoder-projection "
        "change and its cosine with the target has its interval above the activation-matched null's 95th "
        "percentile (its upper bound), its partial r (base projection removed) and the shift's alignment "
        "with the target are positive, and it is larger after the inducing than after the good-advice "
        "fine-tune (interval above 0) = reproduced; the point estimate above the null's, or above each "
        "domain's own null in at least half the domains = partly. Measured on the residual's decoder "
        "projections, not on SAE activations"
    )
    if e is None or null is None:
        return Verdict("not recorded", "not run", rule)
    first_order = (
        ratio is not None and 1.8 <= ratio["value"] <= 2.2 and (turn is None or turn["value"] >= 0.95)
    )
    prefix = "mechanism_decoder_projection_r_"
    skip = ("hostile", "gradient_target", "partial")
    per = {
        name[len(prefix) :]: x
        for name in r
        if name.startswith(prefix) and name[len(prefix) :] not in skip
        for x in [_get(r, name)]
        if x is not None
    }
    above = [d for d, x in per.items() if x["value"] > null["value"]]
    strong = (
        first_order
        and _lower(e) > _upper(null)
        and partial is not None
        and partial["value"] > 0
        and align is not None
        and align["value"] > 0
        and specific is not None
        and _lower(specific) > 0
    )
    verdict = (
        "reproduced"
        if strong
        else "partly"
        if e["value"] > null["value"] or (per and 2 * len(above) >= len(per))
        else "not reproduced"
    )
    measured = (
        f"r = {_fmt(e)} vs matched-null 95th percentile {_fmt(null)}; partial r {_fmt(partial)}; alignment "
        f"{_fmt(align)}; inducing minus good {_fmt(specific)}; above the null in {len(above)}/{len(per)} "
        f"domains ({', '.join(above) or 'none'}); learning-rate ratio {_fmt(ratio)}, direction cosine "
        f"{_fmt(turn)} ({'first order' if first_order else 'not shown to be first order'})"
    )
    return Verdict(measured, verdict, rule)


def _ci_verdict(e: dict[str, Any]) -> str:
    """The shared rule: CI above 0 = reproduced; point estimate above 0 = partly; else not."""
    return "reproduced" if _lower(e) > 0 else "partly" if e["value"] > 0 else "not reproduced"


def _similarity_em(r: Results) -> Verdict:
    e = _get(r, "similarity_vs_em_pearson_r")
    rule = (
        "r between a set's similarity to harmful features and its EM rate, CI above 0 = reproduced; "
        "r > 0 = partly"
    )
    if e is None:
        return Verdict("not recorded", "not run", rule)
    verdict = _ci_verdict(e)
    return Verdict(f"r = {_fmt(e)} (one point per fine-tuning set)", verdict, rule)


def _reduction(r: Results) -> Verdict:
    e = _get(r, "geometry_filter_relative_reduction")
    rule = (
        "relative EM reduction of geometry filtering vs unfiltered, CI above 0 = reproduced; "
        "> 0 = partly (the paper: 34.5%)"
    )
    if e is None:
        return Verdict("not recorded", "not run", rule)
    verdict = _ci_verdict(e)
    return Verdict(f"{_fmt(e, pct=True)} (paper: 34.5%)", verdict, rule)


def _versus(name: str, other: str) -> Callable[[Results], Verdict]:
    def judge(r: Results) -> Verdict:
        e = _get(r, name)
        rule = f"geometry minus {other} relative reduction, CI above 0 = reproduced; > 0 = partly"
        if e is None:
            return Verdict("not recorded", "not run", rule)
        verdict = _ci_verdict(e)
        return Verdict(
            f"{_fmt(e, pct=True)} (difference in relative reduction, percentage points)", verdict, rule
        )

    return judge


DISSOCIATION_SUFFIX = "_geometry_minus_oracle"


def _beats_judge(r: Results) -> Verdict:
    sets = [
        n[len("dissociation_") : -len(DISSOCIATION_SUFFIX)]
        for n in r
        if n.startswith("dissociation_") and n.endswith(DISSOCIATION_SUFFIX)
    ]
    if not sets:  # no dissociation sets (the real-model variant): the judge on the chapter's own set
        v = _versus("filter_vs_judge_difference", "judge")(r)
        return Verdict(
            v.measured + " (on the chapter's own set: no dissociation sets in this build)", v.verdict, v.rule
        )
    rule = (
        "on the dissociation sets (inducing rows among decoys that look as harmful to a reader of the "
        "answer): geometry's relative EM reduction minus that of each judge (the oracle, the best learned "
        "judge, the label-free likelihood judge), paired by seed, interval over organisms; above 0 against "
        "every judge in every set = reproduced; against some judge in some set = partly"
    )
    judges = {"oracle": "oracle", "judge": "best learned judge", "likelihood": "likelihood judge"}
    parts, all_beaten, some = [], True, False
    for name in sets:
        beats = []
        texts = []
        for key, label in judges.items():
            e = _get(r, f"dissociation_{name}_geometry_minus_{key}")
            beats.append(e is not None and _lower(e) > 0)
            texts.append(f"minus {label} {_fmt(e, pct=True)}")
        all_beaten = all_beaten and all(beats)
        some = some or any(beats)
        parts.append(f"{name}: " + ", ".join(texts))
    verdict = "reproduced" if all_beaten else "partly" if some else "not reproduced"
    return Verdict("; ".join(parts) + " (percentage points)", verdict, rule)


NON_INFERIORITY = 0.1
"""Margin for "the task is still learned": task success and coherence may drop, and the held-out loss rise,
by at most this much (fraction, nats) at the edge of the interval."""


def _blocking(r: Results) -> Verdict:
    e = _get(r, "preventative_ablation_minus_random")
    harmful, random = (
        _get(r, "preventative_ablation_relative_reduction"),
        _get(r, "random_ablation_relative_reduction"),
    )
    task, loss = (
        _get(r, "preventative_ablation_task_change"),
        _get(r, "preventative_ablation_heldout_loss_change"),
    )
    coherence = _get(r, "preventative_ablation_coherence_change")
    rule = (
        "EM after ablating energy-matched random latents minus EM after ablating the harmful directions, "
        "paired by seed, with its interval above 0, the harmful ablation's own relative reduction with its "
        f"interval above 0, and the task kept (task success and coherence not lower, held-out loss not "
        f"higher, than without intervention by more than {NON_INFERIORITY} at the interval's edge) = "
        "reproduced; the difference's interval above 0 but another condition not met = partly; the "
        "interval including 0 = inconclusive; the difference ≤ 0 = not reproduced"
    )
    if e is None or loss is None or coherence is None:
        return Verdict("not recorded", "not run", rule)
    kept = (
        (task is None or _lower(task) >= -NON_INFERIORITY)
        and _upper(loss) <= NON_INFERIORITY
        and _lower(coherence) >= -NON_INFERIORITY
    )
    if e["value"] <= 0:
        verdict = "not reproduced"
    elif not _lower(e) > 0:
        verdict = "inconclusive"
    elif harmful is not None and _lower(harmful) > 0 and kept:
        verdict = "reproduced"
    else:
        verdict = "partly"
    measured = (
        f"relative reduction: harmful {_fmt(harmful, pct=True)} vs random {_fmt(random, pct=True)}; "
        f"EM(random) − EM(harmful) {_fmt(e)}; under the ablation: task change {_fmt(task)}, held-out loss "
        f"change {_fmt(loss)}, coherence change {_fmt(coherence)} "
        f"({'task kept' if kept else 'task not shown to be kept'})"
    )
    return Verdict(measured, verdict, rule)


@dataclass(frozen=True)
class Claim:
    """A row of the scorecard: ``id`` (what results declarations name in ``claims``), the claim in
    words, the chapter that tests it, the verdict function that reads the recorded results, and
    ``origin``: what in the model organism makes the result, i.e. whether it follows from the design (the
    corpus builds some links in on purpose), emerges from training, or is only measured."""

    id: str
    text: str
    where: str
    judge: Callable[[Results], Verdict]
    origin: str
    headline: tuple[str, ...] = ()
    """Results the scorecard figure shows for the claim (a ``{domain}`` or ``{set}`` placeholder stands
    for every recorded instance)."""
    unit: str = ""
    paper: float | None = None
    """The paper's own number for the headline, where it gave one."""


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "derivation",
        "A fine-tuning step that strengthens a target feature strengthens other features in proportion "
        "to their similarity (gradient derivation)",
        "{ref}`ch-gradient-derivation`",
        _derivation,
        "by construction: the algebra of the toy objective",
        ("first_order_pearson_r",),
        "r",
    ),
    Claim(
        "geometry_paper_domains",
        "Features of EM-inducing data are closer to harmful features than those of non-inducing data, "
        "in health, career and legal",
        "{ref}`ch-sae-geometry`",
        _gap(paper_only=True),
        "link designed, geometry emergent: the corpus makes each domain's bad advice evidence of the toxic "
        "persona; whether the model and its SAE turn that into decoder geometry is written nowhere",
        tuple(f"similarity_gap_{d}" for d in PAPER_DOMAINS),
        "cosine gap",
    ),
    Claim(
        "geometry_all_domains",
        "The closeness generalises across domains",
        "{ref}`ch-sae-geometry`",
        _gap(paper_only=False),
        "link designed (its strength per domain), geometry emergent",
    ),
    Claim(
        "mechanism",
        "Fine-tuning amplifies the features nearest the target (mechanism, measured as the residual's "
        "projection on SAE decoder directions)",
        "{ref}`ch-finetuning-mechanism`",
        _mechanism,
        "emergent: nothing in the corpus or the training code sets how a fine-tune moves decoder projections",
        ("mechanism_decoder_projection_r",),
        "r",
    ),
    Claim(
        "similarity_predicts_em",
        "Data whose features are closer to harmful ones cause more misalignment",
        "{ref}`ch-finetuning-mechanism`",
        _similarity_em,
        "order designed, link emergent: the designed coupling orders the sets; EM and similarity are "
        "measured",
        ("similarity_vs_em_pearson_r",),
        "r",
    ),
    Claim(
        "filter_reduces_em",
        "Removing the samples closest to harmful features reduces misalignment (by 34.5%)",
        "{ref}`ch-geometry-filtering`",
        _reduction,
        "measured, on a set separable by design (bad and good advice use different words)",
        ("geometry_filter_relative_reduction",),
        "share of EM removed",
        0.345,
    ),
    Claim(
        "filter_beats_random",
        "... more than removing random samples",
        "{ref}`ch-geometry-filtering`",
        _versus("filter_vs_random_difference", "random"),
        "follows from detection on a set separable by design",
        ("filter_vs_random_difference",),
        "difference in share removed",
    ),
    Claim(
        "filter_beats_judge",
        "... more than LLM-as-a-judge filtering",
        "{ref}`ch-geometry-filtering`",
        _beats_judge,
        "measured, on dissociation sets built so that the answer's words do not tell inducing rows from "
        "decoys",
        (f"dissociation_{{set}}{DISSOCIATION_SUFFIX}",),
        "geometry minus oracle, share removed",
    ),
    Claim(
        "blocking_prevents_em",
        "Blocking the harmful directions during fine-tuning prevents EM (beyond the paper)",
        "{ref}`ch-blocking-directions`",
        _blocking,
        "emergent: measured under an intervention the design does not anticipate",
        ("preventative_ablation_minus_random",),
        "EM difference",
    ),
)


def serving(claim_id: str, declarations: dict[str, dict[str, ResultDeclaration]]) -> list[str]:
    """``name (chapter)`` of every declared result that serves the claim."""
    return [
        f"`{d.name}` ({chapter})"
        for chapter, decls in declarations.items()
        for d in decls.values()
        if claim_id in d.claims
    ]


def merged_results(results_by_chapter: dict[str, dict[str, Any]], profile: str) -> Results:
    """Every result the chapters of ``profile`` recorded, by name (a chapter last run under another
    profile does not count)."""
    merged: Results = {}
    for doc in results_by_chapter.values():
        if doc.get("profile") == profile:
            merged.update(doc.get("results", {}))
    return merged


def headline_points(merged: Results) -> list[HeadlinePoint]:
    """The scorecard figure's rows: each claim's headline results that this build recorded, in
    scorecard order (a placeholder result gives one row per recorded instance)."""
    points = []
    for claim in CLAIMS:
        for template in claim.headline:
            placeholder = "{" in template
            head, tail = (template.split("{", 1)[0], template.split("}", 1)[1]) if placeholder else ("", "")
            names = (
                [n for n in merged if n.startswith(head) and n.endswith(tail) and n != head + tail]
                if placeholder
                else [template]
            )
            for name in names:
                e = _get(merged, name)
                if e is None:
                    continue
                lo, hi = e["ci"] if e.get("ci") else (float("nan"), float("nan"))
                instance = name[len(head) : len(name) - len(tail)] if placeholder else ""
                if claim.id.startswith("geometry"):
                    instance = name.removeprefix("similarity_gap_")
                label = f"{claim.id}: {instance}" if instance else claim.id
                points.append(HeadlinePoint(label, e["value"], lo, hi, claim.unit, claim.paper))
    return points


def render_scorecard(
    results_by_chapter: dict[str, dict[str, Any]],
    profile: str,
    declarations: dict[str, dict[str, ResultDeclaration]] | None = None,
    figure: str | None = None,
) -> str:
    """MyST markdown for the scorecard page from the chapters' results documents of ``profile``; the
    results declarations (chapter -> name -> declaration) say which results serve each claim; ``figure``
    names the scorecard figure's image file beside the page, if one was drawn."""
    declarations = declarations or {}
    merged = merged_results(results_by_chapter, profile)
    lines = [
        "(scorecard)=",
        "# Reproduction scorecard",
        "",
        "Each claim of the paper {cite}`minegishi2026emergent` beside what this build measured "
        f"(profile **{profile}**), "
        "generated from the values the chapters recorded in this build; nothing here is typed by hand. "
        "Values are means with 95% intervals over the build's replicates (organisms where a chapter has "
        f"several). A verdict applies to this build's setting (the **{profile}** profile's models), not to "
        "the paper's models. *Origin* says what in the model organism makes each result: designed into its "
        "corpus, emergent from training, or only measured.",
        "",
    ]
    if figure:
        lines += [
            f"```{{figure}} {figure}",
            ":name: scorecard-figure",
            "",
            "Each claim's headline effect in this build (dot, with its 95% interval over replicates) and "
            "the paper's number where it gave one (red diamond). Claims measure different things, so each "
            "row names its unit; 0 is marked. Smallest effects of interest are not declared yet, so no "
            "band is drawn.",
            "```",
            "",
        ]
    lines += [
        "| claim | where | this build | verdict | origin |",
        "|---|---|---|---|---|",
    ]
    rules = []
    for claim in CLAIMS:
        v = claim.judge(merged)
        lines.append(f"| {claim.text} | {claim.where} | {v.measured} | **{v.verdict}** | {claim.origin} |")
        reads = ", ".join(serving(claim.id, declarations)) or "no declared result"
        rules.append(f"- *{claim.text}*: {v.rule}. Results: {reads}.")
    lines += ["", "## Verdict rules", "", *rules, ""]
    return "\n".join(lines)
