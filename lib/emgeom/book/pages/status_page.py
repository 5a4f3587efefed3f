"""The book's "Build status" page, rendered from the run report and the recorded results."""

from __future__ import annotations

from typing import Any

from emgeom.core.results import ResultDeclaration, find_declaration


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def _params(parameters: dict[str, Any]) -> str:
    return ", ".join(f"`{k}={v!r}`" for k, v in parameters.items()) or "defaults"


def render_build_status(
    report: dict[str, Any],
    results: dict[str, dict[str, Any]],
    declarations: dict[str, dict[str, ResultDeclaration]] | None = None,
    last_build: dict[str, Any] | None = None,
) -> str:
    """MyST markdown for the Build status page. ``results`` maps chapter to its results document;
    ``declarations`` (chapter -> name -> declaration) gives each result's meaning and unit;
    ``last_build`` (the profile's last run that executed anything) supplies the artifact steps when this
    run built none."""
    declarations = declarations or {}
    lines = [
        "(build-status)=",
        "# Build status",
        "",
        f"This page is written by the chapter runner (`python -m emgeom.book run`) at the end of every run. "
        f"Last run: **{report['generated_at']}**, profile **{report['profile']}** "
        f"({report['profile_description'].strip() or 'no description'}), "
        f"{report['threads']} CPU thread(s) per kernel, Python {report['python']} on `{report['platform']}`.",
        "",
        f"**This book shows the `{report['profile']}` profile, executed from commit "
        f"`{report.get('commit', 'unknown')}`.** Each profile keeps its own executed pages and results "
        "(`_build/profiles/<profile>/`); `make book PROFILE=<name>` renders the one you name.",
        "",
        "## Chapters",
        "",
        "| chapter | profile | this run | status | wall time (s) | cache key | parameter overrides |",
        "|---|---|---|---|---|---|---|",
    ]
    for run in report["chapters"]:
        lines.append(
            f"| `{run['chapter']}` | {run['profile']} | {run['this_run']} | {run['status']} | "
            f"{run['wall_seconds']:.1f} | `{run['key'][:12]}` | {_params(run['parameters'])} |"
        )
    stages, heading = report.get("stages", []), "Artifact steps of this run"
    if not stages and last_build:
        stages = last_build.get("stages", [])
        heading = f"Artifact steps of the last run that built them ({last_build.get('generated_at', '?')})"
    if stages:
        lines += [
            "",
            f"## {heading}",
            "",
            "Organisms and SAEs the chapters read, built as separate steps before them (several at once); "
            "a chapter then finds them in the cache.",
            "",
            "| step | kind | status | wall time (s) | finished |",
            "|---|---|---|---|---|",
        ]
        lines += [
            f"| {s['stage']} | {s['kind']} | {s['status']} | {s['wall_seconds']:.1f} | {s['finished_at']} |"
            for s in stages
        ]
    lines += [
        "",
        "A chapter is *cached* when the hash of its source, the `lib/` sources, its parameters, the profile "
        "and `requirements.lock` equals that of its last successful run; its wall time is then the one "
        "measured when it last executed.",
        "",
        "## Recorded results",
        "",
        "Every number below was recorded by a chapter with `emgeom.core.results.record` in the run named "
        "above; none is typed by hand. Intervals are 95% confidence intervals.",
        "",
        "| chapter | profile | result | value | unit | 95% CI | seeds | meaning | note |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for chapter, doc in results.items():
        for name, entry in doc["results"].items():
            ci = entry["ci"]
            ci_text = "—" if ci is None else f"[{_fmt(ci[0])}, {_fmt(ci[1])}]"
            note = str(entry.get("note", "")).replace("|", "\\|")
            decl = find_declaration(declarations.get(chapter, {}), name)
            unit, meaning = (decl.unit, decl.meaning) if decl else ("?", "not declared")
            lines.append(
                f"| `{chapter}` | {doc['profile']} | `{name}` | {_fmt(entry['value'])} | {unit} | "
                f"{ci_text} | {entry['n_seeds']} | {meaning} | {note} |"
            )
    if not results:
        lines.append("| — | — | — | — | — | — | — | — | no chapter has recorded results yet |")
    lines += ["", "## Package versions", "", "| package | version |", "|---|---|"]
    lines += [f"| {name} | {ver} |" for name, ver in report["packages"].items()]
    return "\n".join(lines) + "\n"
