"""Artifacts are built once, keyed by their config, and never left half-written."""

from __future__ import annotations

from pathlib import Path

import pytest

from emgeom.core.artifacts import cached_folder


def test_build_once_then_hit(tmp_path: Path) -> None:
    calls: list[Path] = []

    def build(folder: Path) -> None:
        calls.append(folder)
        (folder / "weights.bin").write_bytes(b"w")

    first, hit1 = cached_folder("thing", "abc", build, root=tmp_path)
    second, hit2 = cached_folder("thing", "abc", build, root=tmp_path)
    assert (hit1, hit2) == (False, True)
    assert first == second == tmp_path / "thing" / "abc"
    assert len(calls) == 1 and (first / "weights.bin").read_bytes() == b"w"


def test_an_interrupted_build_leaves_nothing(tmp_path: Path) -> None:
    def build(folder: Path) -> None:
        (folder / "half.bin").write_bytes(b"h")
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cached_folder("thing", "abc", build, root=tmp_path)
    assert [p.name for p in (tmp_path / "thing").iterdir()] == [".abc.lock"]  # no folder, no temp folder
    folder, hit = cached_folder("thing", "abc", lambda f: (f / "ok").write_text("1"), root=tmp_path)
    assert not hit and (folder / "ok").is_file()


def _build_in_process(root: str, log: str, delay: float) -> str:
    """Build ``thing/k`` (slowly), appending this process's id to ``log`` when it builds."""
    import os
    import time

    def build(folder: Path) -> None:
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        time.sleep(delay)
        (folder / "w").write_text("done")

    folder, _ = cached_folder("thing", "k", build, root=Path(root))
    return (folder / "w").read_text()


def test_processes_asking_at_once_build_once(tmp_path: Path) -> None:
    import multiprocessing as mp

    log = tmp_path / "builds.log"
    with mp.get_context("spawn").Pool(3) as pool:
        outs = pool.starmap(_build_in_process, [(str(tmp_path), str(log), 1.0)] * 3)
    assert outs == ["done"] * 3
    assert len(log.read_text().splitlines()) == 1


def test_a_killed_builds_leftovers_are_cleaned_and_a_complete_folder_is_kept(tmp_path: Path) -> None:
    stale = tmp_path / "thing" / ".abc.x1y2.tmp"
    stale.mkdir(parents=True)
    (stale / "half.bin").write_bytes(b"h")
    incomplete = tmp_path / "thing" / "abc"
    incomplete.mkdir()
    folder, hit = cached_folder("thing", "abc", lambda f: (f / "ok").write_text("1"), root=tmp_path)
    assert not hit and (folder / "ok").is_file() and not (folder / "half.bin").exists()
    assert not stale.exists()
    inode = folder.stat().st_ino
    again, hit = cached_folder("thing", "abc", lambda f: (f / "ok").write_text("2"), root=tmp_path)
    assert hit and again.stat().st_ino == inode and (again / "ok").read_text() == "1"
