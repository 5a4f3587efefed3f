"""The build timeline read from a run report."""

from __future__ import annotations

import pytest

from emgeom.book.timeline import build_timeline


def run(chapter: str, end: str, seconds: float, this_run: str = "executed") -> dict:
    return {"chapter": chapter, "finished_at": end, "wall_seconds": seconds, "this_run": this_run}


def test_two_chapters_side_by_side_keep_two_cores_busy() -> None:
    report = {
        "profile": "cpu",
        "chapters": [
            run("01", "2026-01-01T00:01:40+00:00", 100.0),
            run("02", "2026-01-01T00:01:40+00:00", 100.0),
            run("03", "2026-01-01T00:05:00+00:00", 300.0, this_run="cached"),
        ],
    }
    t = build_timeline(report)
    assert [c.chapter for c in t.chapters] == ["01", "02"]
    assert t.span_seconds == pytest.approx(100.0) and t.mean_busy == pytest.approx(2.0)


def test_one_after_another_is_one_core() -> None:
    t = build_timeline(
        {
            "chapters": [
                run("01", "2026-01-01T00:01:00+00:00", 60.0),
                run("02", "2026-01-01T00:02:00+00:00", 60.0),
            ]
        }
    )
    assert t.span_seconds == pytest.approx(120.0) and t.mean_busy == pytest.approx(1.0)
    assert build_timeline({"chapters": []}).mean_busy == 0.0
