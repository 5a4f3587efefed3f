"""The reproduction scorecard: every claim of the paper beside this build's number, CI and a verdict.

Generated from the values the chapters record (``_build/profiles/<profile>/results/*.json``), never typed:
a claim whose numbers were not recorded in this build says so. Each claim's verdict rule lives in its
room (``emgeom.claims.<claim>.verdict``); this page lists the claims and asks each for its row.
"""

from __future__ import annotations

from typing import Any

from emgeom.claims import accounts, coupling, derivation, filtering, geometry, intervention, mechanism
from emgeom.claims.verdicts import DECIDED, Claim, Results, Verdict, recorded
from emgeom.core.results import ResultDeclaration, find_declaration
from emgeom.plots.scorecard import HeadlinePoint

#: Every scored claim, in the order of the book.
CLAIMS: tuple[Claim, ...] = (
    *derivation.CLAIMS,
    *geometry.CLAIMS,
    *mechanism.CLAIMS,
    *filtering.CLAIMS,
    *intervention.CLAIMS,
    *accounts.CLAIMS,
    *coupling.CLAIMS,
)


def serving(claim_id: str, declarations: dict[str, dict[str, ResultDeclaration]]) -> list[str]:
    """``name (chapter)`` of every declared result that serves the claim."""
    return [
        f"`{d.name}` ({chapter})"
        for chapter, decls in declarations.items()
        for d in decls.values()
        if claim_id in d.claims
    ]


def merged_results(
    results_by_chapter: dict[str, dict[str, Any]],
    profile: str,
    declarations: dict[str, dict[str, ResultDeclaration]] | None = None,
) -> Results:
    """Every result the chapters of ``profile`` recorded, by name (a chapter last run under another
    profile does not count), each with the smallest effect of interest and the replicates its chapter's
    declaration gives it (``sesoi``, ``sesoi_reason``, ``replicates``), which the verdicts decide on."""
    merged: Results = {}
    for chapter, doc in results_by_chapter.items():
        if doc.get("profile") != profile:
            continue
        own = (declarations or {}).get(doc.get("chapter", chapter), {})
        for name, entry in doc.get("results", {}).items():
            d = find_declaration(own, name)
            extra = (
                {"sesoi": d.sesoi, "sesoi_reason": d.sesoi_reason, "replicates": d.replicates} if d else {}
            )
            merged[name] = {**entry, **{k: v for k, v in extra.items() if v not in (None, "")}}
    return merged


def claim_rows(merged: Results) -> list[tuple[Claim, Verdict]]:
    """Each claim with its verdict on this build's results, in scorecard order."""
    return [(claim, claim.judge(merged)) for claim in CLAIMS]


def design_decides(v: Verdict) -> bool:
    """Whether this build's design can decide the claim: it did, or its minimum detectable effect is at
    most the SESOI (an effect of that size would be detected with 80% power, and a null effect would
    give an interval about ±0.7 SESOI wide, inside the absent band)."""
    if v.verdict in DECIDED:
        return True
    d = v.decision
    return d is not None and d.mde is not None and d.sesoi is not None and d.mde <= d.sesoi


def scorecard_summary(merged: Results, profile: str) -> dict[str, Any]:
    """What the scorecard decided, for ``scorecard.json``: each claim's verdict with its SESOI, MDE and
    the replicates it would need, and ``claims_decided`` (reproduced, absent, contradicted or mixed)
    out of ``claims_total`` (every claim this build measured, the derivation aside: it is the toy's
    algebra, which holds by construction, not a decision)."""
    rows = claim_rows(merged)
    # the derivation is the toy's algebra (holds by construction when it holds): not a decision
    measured = [(c, v) for c, v in rows if v.verdict != "not run" and c.id != "derivation"]
    n_organisms = recorded(merged, "n_organisms")
    return {
        "profile": profile,
        "n_organisms": None if n_organisms is None else int(n_organisms["value"]),
        "claims_total": len(measured),
        "claims_decided": sum(v.verdict in DECIDED for _, v in measured),
        "claims_decidable": [c.id for c, v in measured if design_decides(v)],
        "claims": {
            c.id: {
                "verdict": v.verdict,
                "sesoi": v.decision.sesoi if v.decision else None,
                "mde": v.decision.mde if v.decision else None,
                "replicates_needed": v.decision.needed if v.decision else None,
                "n": v.decision.n if v.decision else None,
                "replicates": v.decision.replicates if v.decision else None,
            }
            for c, v in rows
        },
    }


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
                e = recorded(merged, name)
                if e is None:
                    continue
                lo, hi = e["ci"] if e.get("ci") else (float("nan"), float("nan"))
                sesoi = e.get("sesoi")
                instance = name[len(head) : len(name) - len(tail)] if placeholder else ""
                if claim.id.startswith("geometry"):
                    instance = name.rsplit("_", 1)[-1]  # the domain
                label = f"{claim.id}: {instance}" if instance else claim.id
                points.append(HeadlinePoint(label, e["value"], lo, hi, claim.unit, claim.paper, sesoi))
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
    merged = merged_results(results_by_chapter, profile, declarations)
    summary = scorecard_summary(merged, profile)
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
        "Verdicts decide three ways. Each claim's result declares, before any data, a smallest effect of "
        "interest (SESOI) and why: **reproduced** when the interval lies beyond 0 in the paper's direction "
        "and every gate holds; **absent** when it lies within ±SESOI; **contradicted** when it lies beyond "
        "0 against the paper; **inconclusive** otherwise. Each claim is directional and tested one-sided "
        "in the direction declared before the data: its 95% interval's lower edge above 0 is a one-sided "
        "test at 2.5%. Only organisms decide: seeds and SAEs are "
        "averaged inside their organism, and an interval over anything else stays inconclusive. Beside "
        "each verdict: the design's minimum detectable effect (MDE, 80% power, two-sided 5%, from the "
        "interval's width) and the organisms that would bring it down to the SESOI.",
        "",
        f"**Claims decided: {summary['claims_decided']} of {summary['claims_total']}** measured "
        f"(organisms: {summary['n_organisms'] if summary['n_organisms'] is not None else 'not recorded'}). "
        f"This design can decide {len(summary['claims_decidable'])} of them (decided, or MDE at most the "
        f"SESOI): {', '.join(summary['claims_decidable']) or 'none'}. The others need more organisms "
        "(the column *SESOI and power* says how many); the `cpu-full` profile builds eight.",
        "",
    ]
    if figure:
        lines += [
            f"```{{figure}} {figure}",
            ":name: scorecard-figure",
            "",
            "Each claim's headline effect in this build (dot, with its 95% interval over replicates) and "
            "the paper's number where it gave one (red diamond). Claims measure different things, so each "
            "row names its unit; 0 is marked, and the grey band is the row's ±SESOI (an interval inside it "
            "says the effect is absent).",
            "```",
            "",
        ]
    lines += [
        "| claim | where | this build | verdict | SESOI and power | origin |",
        "|---|---|---|---|---|---|",
    ]
    rules, reasons = [], []
    for claim, v in claim_rows(merged):
        power = v.decision.power_text() if v.decision else "n/a"
        lines.append(
            f"| {claim.text} | {claim.where} | {v.measured} | **{v.verdict}** | {power} | {claim.origin} |"
        )
        reads = ", ".join(serving(claim.id, declarations)) or "no declared result"
        rules.append(f"- *{claim.text}*: {v.rule}. Results: {reads}.")
    for chapter, decls in declarations.items():
        reasons += [
            f"- `{d.name}` ({chapter}): SESOI {d.sesoi:g} {d.unit}, over {d.replicates}. {d.sesoi_reason}"
            for d in decls.values()
            if d.sesoi is not None
        ]
    lines += ["", "## Verdict rules", "", *rules, ""]
    lines += ["## Smallest effects of interest", "", "Declared beside each result, before any data:", ""]
    lines += [*(reasons or ["- none declared"]), ""]
    return "\n".join(lines)
