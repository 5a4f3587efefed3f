"""How a build used the machine, read from the run report (``_build/report.json``): each executed step
(an artifact the runner built before the chapters, or a chapter) with its start and end (its end time and
wall time as recorded), the span from the first start to the last end, and the mean number of steps
running at once (the sum of step times over the span: 2.0 would keep both cores of a 2-core machine busy
throughout). A step waiting on an artifact another is building counts as running, so this is an upper
bound on the cores used; the build's CPU time over its wall time (``time make book``) is the measured
one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any


@dataclass(frozen=True)
class ChapterSpan:
    chapter: str
    start: datetime
    end: datetime

    @property
    def seconds(self) -> float:
        return (self.end - self.start).total_seconds()


@dataclass(frozen=True)
class BuildTimeline:
    """The executed steps of one run, artifacts and chapters (cached ones did not run and are left out);
    ``chapters`` holds them all, each named by its chapter or artifact step."""

    profile: str
    chapters: list[ChapterSpan]

    @property
    def span_seconds(self) -> float:
        if not self.chapters:
            return 0.0
        return (max(c.end for c in self.chapters) - min(c.start for c in self.chapters)).total_seconds()

    @property
    def busy_seconds(self) -> float:
        return sum(c.seconds for c in self.chapters)

    @property
    def mean_busy(self) -> float:
        """Chapters running at once, on average over the span (0 when nothing executed)."""
        return self.busy_seconds / self.span_seconds if self.span_seconds else 0.0


def build_timeline(report: dict[str, Any]) -> BuildTimeline:
    """The :class:`BuildTimeline` of a run report (as written by :func:`emgeom.book.reports.write_report`)."""
    spans = []
    steps = [(r["chapter"], r) for r in report["chapters"]]
    steps += [(s["stage"], s) for s in report.get("stages", [])]
    for name, run in steps:
        if run.get("this_run") != "executed":
            continue
        end = datetime.fromisoformat(run["finished_at"])
        spans.append(ChapterSpan(name, end - timedelta(seconds=float(run["wall_seconds"])), end))
    return BuildTimeline(report.get("profile", ""), sorted(spans, key=lambda c: c.start))
