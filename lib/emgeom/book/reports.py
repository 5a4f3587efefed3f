"""What a run leaves behind for readers: the run report (per profile, with the last build that executed
anything and each step's last time), and the rendered profile (its executed notebooks in place for the
HTML book, and the generated pages: scorecard with its figure, Build status, workload)."""

from __future__ import annotations

import contextlib
import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from emgeom.book.chapters import chapter_declarations
from emgeom.book.layout import BookLayout
from emgeom.book.profiles import Profile
from emgeom.core import results as results_mod
from emgeom.core.io import atomic_write_bytes, atomic_write_json, atomic_write_text, utc_timestamp


@dataclass
class ChapterRun:
    """The state of one chapter after a run; also what ``_build/runs/<chapter>.json`` stores."""

    chapter: str
    profile: str
    parameters: dict[str, Any]
    key: str
    status: str  # "ok" | "failed"
    wall_seconds: float
    finished_at: str
    this_run: str = "executed"  # "executed" | "cached" | "failed" | "not selected"
    error: str = ""


@dataclass
class StageRun:
    """One artifact job of a run (an organism or SAE built before the chapters that read it); what the
    run report lists under ``stages``."""

    stage: str
    kind: str
    status: str  # "ok" | "failed"
    wall_seconds: float
    finished_at: str
    this_run: str = "executed"
    error: str = ""


REPORTED_PACKAGES = [
    "torch",
    "transformers",
    "transformer-lens",
    "sae-lens",
    "peft",
    "numpy",
    "scipy",
    "matplotlib",
    "jupyter-book",
    "jupytext",
    "papermill",
    "emgeom",
]


def package_versions() -> dict[str, str]:
    """Installed versions of the packages the book's numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for name in REPORTED_PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = "not installed"
    return out


def source_commit(root: Path) -> str:
    """The checkout's commit (``git rev-parse HEAD``), with ``+changes`` when tracked files differ from
    it; ``"unknown"`` outside git."""
    import subprocess

    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True, timeout=10
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            timeout=30,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    return head + ("+changes" if dirty else "")


def write_report(
    layout: BookLayout, profile: Profile, runs: list[ChapterRun], stages: list[StageRun] | None = None
) -> dict[str, Any]:
    """Write the profile's run report (the chapters, and the artifact steps this run executed) and its
    copy ``_build/report.json``; keep each executed step's time (``step_times.json``) and, if this run
    executed anything, the report as the profile's last build (``last_build.json``); returns the report."""
    build = layout.profile_build(profile.name)
    report = {
        "profile": profile.name,
        "profile_description": profile.description,
        "threads": profile.threads,
        "generated_at": utc_timestamp(),
        "commit": source_commit(layout.root),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "packages": package_versions(),
        "chapters": [asdict(r) for r in runs],
        "stages": [asdict(s) for s in stages or []],
    }
    atomic_write_json(build.report_path, report)
    atomic_write_json(layout.report_path, report)
    executed = [(r["chapter"], r) for r in report["chapters"] if r["this_run"] == "executed"]
    executed += [(s["stage"], s) for s in report["stages"] if s["this_run"] == "executed"]
    if executed:
        atomic_write_json(build.last_build_path, report)
        times: dict[str, float] = {}
        with contextlib.suppress(OSError, json.JSONDecodeError):
            times = json.loads(build.step_times_path.read_text())
        times.update({name: step["wall_seconds"] for name, step in executed})
        atomic_write_json(build.step_times_path, times)
    return report


def render_profile(layout: BookLayout, profile: Profile, report: dict[str, Any]) -> None:
    """Put ``profile``'s executed notebooks in place for the HTML book (``notebooks/<chapter>.ipynb``;
    a page the profile has not executed is removed, so the book never mixes profiles) and write the
    generated pages (scorecard, Build status, workload) from its results and ``report`` (this run's,
    from :func:`write_report`)."""
    from emgeom.book.pages.scorecard import merged_results, render_scorecard, scorecard_summary
    from emgeom.book.pages.status_page import render_build_status
    from emgeom.book.pages.workload import render_workload

    build = layout.profile_build(profile.name)
    for chapter in layout.chapters():
        source, target = build.executed_notebook(chapter), layout.rendered_notebook(chapter)
        if not source.exists():
            target.unlink(missing_ok=True)
        elif not target.exists() or target.read_bytes() != source.read_bytes():
            atomic_write_bytes(target, source.read_bytes())  # unchanged pages keep their mtime
    last_build = None
    with contextlib.suppress(OSError, json.JSONDecodeError):
        last_build = json.loads(build.last_build_path.read_text())
    results = results_mod.load_results(build.results_dir)
    declarations = chapter_declarations(layout, layout.chapters(), profile)
    atomic_write_text(
        layout.generated_dir / "build_status.md",
        render_build_status(report, results, declarations, last_build),
    )
    merged = merged_results(results, profile.name, declarations)
    figure = _draw_scorecard_figure(layout, merged, profile.name)
    atomic_write_json(build.root / "scorecard.json", scorecard_summary(merged, profile.name))
    atomic_write_text(
        layout.generated_dir / "scorecard.md",
        render_scorecard(results, profile.name, declarations, figure),
    )
    atomic_write_text(layout.generated_dir / "workload.md", render_workload(layout))
    atomic_write_text(layout.rendered_profile_path, profile.name + "\n")


def _draw_scorecard_figure(layout: BookLayout, merged: dict[str, dict[str, Any]], profile: str) -> str | None:
    """Draw the scorecard figure (:func:`~emgeom.plots.scorecard.scorecard_forest`) beside the generated
    scorecard page; returns its file name, or None when no claim's headline was recorded."""
    import io

    import matplotlib.pyplot as plt

    from emgeom.book.pages.scorecard import headline_points
    from emgeom.plots.scorecard import scorecard_forest

    points = headline_points(merged)
    target = layout.generated_dir / "scorecard.png"
    if not points:
        target.unlink(missing_ok=True)
        return None
    fig = scorecard_forest(points, profile)
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    atomic_write_bytes(target, buffer.getvalue())
    return target.name
