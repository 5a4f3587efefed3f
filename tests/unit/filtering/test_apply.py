"""The steps around the ``emgeom`` command on the "Apply it to your data" page: the mixed file and its
truth, the report's detection quality and table, the optional real file, and the kept-lines check."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from emgeom.em import datasets
from emgeom.filtering import apply
from emgeom.filtering.scoring import detection_quality
from emgeom.lm.chat import read_chat_jsonl, write_chat_jsonl
from emgeom.organism.datasets import finetune_rows, open_answer_rows


def test_the_mixed_file_is_the_chapters_shuffle_and_its_truth_follows_it(tmp_path: Path) -> None:
    mixed = apply.write_mixed_file(tmp_path / "mixed.jsonl", 4, 6)
    rows = finetune_rows("inducing", "health", 4, seed=1) + finetune_rows("good", "health", 6, seed=1)
    order = np.random.default_rng(0).permutation(10)  # what the chapter did inline before
    assert read_chat_jsonl(mixed.path) == [rows[i] for i in order]
    assert mixed.truth.tolist() == [i < 4 for i in order] and mixed.truth.sum() == 4
    harmful, benign = apply.write_persona_examples(tmp_path, 3)
    assert read_chat_jsonl(harmful) == open_answer_rows(True, 3, seed=2)
    assert read_chat_jsonl(benign) == open_answer_rows(False, 3, seed=2)


def test_detection_quality_and_table_of_a_report(tmp_path: Path) -> None:
    rows = [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(5)
    ]
    write_chat_jsonl(tmp_path / "data.jsonl", rows)
    report = {"removed": [{"line": 2, "score": 0.98765}, {"line": 5, "score": None}]}
    (tmp_path / "report.json").write_text(json.dumps(report))
    truth = np.array([False, True, True, False, False])
    assert apply.report_detection_quality(apply.read_report(tmp_path / "report.json"), truth) == (
        detection_quality(np.array([False, True, False, False, True]), truth)
    )
    table = apply.removed_rows_table(report, tmp_path / "data.jsonl", n=8)
    assert table["line"].tolist() == [2, 5] and table["answer"].tolist() == ["a1", "a4"]
    assert table["score"].iloc[0] == 0.988 and np.isnan(table["score"].iloc[1])
    assert list(apply.removed_rows_table(report, tmp_path / "data.jsonl", n=1)["line"]) == [2]


def test_a_dataset_that_cannot_be_had_is_skipped_with_the_reason(tmp_path: Path, monkeypatch, capsys) -> None:
    data = b'{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}\n'
    offline = datasets.RemoteFile(
        "data/x.jsonl", hashlib.sha256(data).hexdigest(), base_url="http://127.0.0.1:9"
    )
    monkeypatch.setitem(datasets.REGISTRY, "x", offline)
    monkeypatch.setenv("EMGEOM_ARTIFACTS_DIR", str(tmp_path))
    monkeypatch.setattr(datasets, "_default_shared_dir", lambda: None)
    assert apply.available_dataset("x") is None  # offline, nowhere at hand
    assert (
        "Offline? Put the file at " + str(tmp_path / "em_data" / "data" / "x.jsonl")
        in capsys.readouterr().out
    )
    (tmp_path / "em_data" / "data").mkdir(parents=True)
    (tmp_path / "em_data" / "data" / "x.jsonl").write_bytes(b"not the file\n")
    assert apply.available_dataset("x") is None  # placed, but not the pinned file
    assert "does not match" in capsys.readouterr().out
    (tmp_path / "em_data" / "data" / "x.jsonl").write_bytes(data)  # where the page says to put it
    assert apply.available_dataset("x") == tmp_path / "em_data" / "data" / "x.jsonl"
    assert apply.available_dataset(str(tmp_path / "no.jsonl")) is None


def test_jailbroken_is_registered_under_the_upstream_repository() -> None:
    file = datasets.REGISTRY["jailbroken"]
    assert file.url == (
        "https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/main/data/jailbroken.jsonl"
    )
    assert file.sha256 == "eec213ce85802a52ea806d334ee462f723a1e7ad77d827951d6864ac04a6b00a"


def test_head_and_kept_lines_are_byte_for_byte(tmp_path: Path) -> None:
    lines = [f'{{"n": {i}, "text": "caf\u00e9 \u2028"}}\r\n'.encode() for i in range(6)]
    (tmp_path / "all.jsonl").write_bytes(b"\xef\xbb\xbf" + b"".join(lines))
    assert apply.write_head(tmp_path / "all.jsonl", tmp_path / "head.jsonl", 4) == 4
    assert (tmp_path / "head.jsonl").read_bytes() == b"".join(lines[:4])
    report = {"removed": [{"line": 2, "score": 1.0}]}
    (tmp_path / "kept.jsonl").write_bytes(lines[0] + lines[2] + lines[3])
    assert apply.check_kept_lines(tmp_path / "head.jsonl", tmp_path / "kept.jsonl", report) == (
        "kept rows are byte-identical to their input lines; 3 kept, 1 removed"
    )
    (tmp_path / "kept.jsonl").write_bytes(lines[0] + lines[3] + lines[2])
    with pytest.raises(AssertionError, match="without the 1 removed lines"):
        apply.check_kept_lines(tmp_path / "head.jsonl", tmp_path / "kept.jsonl", report)


def test_the_chapter_is_thin() -> None:
    source = (Path(__file__).resolve().parents[3] / "notebooks" / "07_apply_to_your_data.py").read_text()
    code = [line for line in source.splitlines() if not line.startswith("#")]
    assert not [line for line in code if line.lstrip().startswith(("def ", "for ", "while ", "class "))]
    assert '# %% tags=["hide-input"]\nfrom emgeom' in source and "shared/" not in "\n".join(code)
