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
    assert list((tmp_path / "thing").iterdir()) == []
    folder, hit = cached_folder("thing", "abc", lambda f: (f / "ok").write_text("1"), root=tmp_path)
    assert not hit and (folder / "ok").is_file()
