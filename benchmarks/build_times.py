"""Benchmark: how the last `make book` used the machine, from its run report.

    .venv/bin/python benchmarks/build_times.py [--profile cpu | --report PATH]

Prints each executed step's start offset and wall time (the organisms and SAEs the runner builds before
the chapters, and the chapters), the total wall time from the first start to the last end, the time per
kind of step, and the mean number of busy cores (the sum of step times over the span). It reads the
profile's last build that executed anything (`_build/profiles/<profile>/last_build.json`: a warm re-run,
which executes nothing, leaves it alone); after a cold build (an empty `_build/`) that is the whole
build. Steps the runner found cached did not run and are not counted. The time to install the venv
and to build the HTML is outside the report (time
`make book` itself for that).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from emgeom.book.layout import BookLayout
from emgeom.book.timeline import build_timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--profile", default=None, help="profile whose last build to read (default: that of the last run)"
    )
    parser.add_argument("--report", type=Path, default=None, help="a run report to read instead")
    parser.add_argument(
        "--save",
        action="store_true",
        help="write each executed step's time to ci/timings/<profile>.json, which a cold build reads to "
        "start the longest chains of work first",
    )
    args = parser.parse_args()
    layout = BookLayout.find()
    report_path = args.report
    if report_path is None:
        profile = args.profile
        if profile is None and layout.report_path.exists():
            profile = json.loads(layout.report_path.read_text())["profile"]
        report_path = layout.profile_build(profile or "cpu").last_build_path
    if not report_path.exists():
        raise SystemExit(f"no run report at {report_path}: run `make book` first")
    timeline = build_timeline(json.loads(report_path.read_text()))
    if not timeline.chapters:
        raise SystemExit("the last run executed no chapter (all cached): remove _build/ for a cold build")
    first = timeline.chapters[0].start
    print(f"profile {timeline.profile}: {len(timeline.chapters)} steps executed")
    for c in timeline.chapters:
        print(f"  {c.chapter:<44} start +{(c.start - first).total_seconds():7.1f} s   {c.seconds:7.1f} s")
    by_kind: dict[str, float] = {}
    for c in timeline.chapters:
        kind = c.chapter.split(" ", 1)[0] if not c.chapter[:2].isdigit() else "chapters"
        by_kind[kind] = by_kind.get(kind, 0.0) + c.seconds
    print("time per kind of step: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in by_kind.items()))
    print(
        f"total wall time {timeline.span_seconds / 60:.1f} min; step time {timeline.busy_seconds / 60:.1f} "
        f"min; mean busy cores {timeline.mean_busy:.2f}"
    )
    if args.save:
        out = Path("ci") / "timings" / f"{timeline.profile}.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(
            json.dumps({c.chapter: round(c.seconds, 1) for c in timeline.chapters}, indent=1) + "\n"
        )
        print(f"saved step times to {out}")


if __name__ == "__main__":
    main()
