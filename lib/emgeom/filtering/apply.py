"""The steps around the ``emgeom`` command on the book's "Apply it to your data" page: a chat file where
the answer is known, example files for the harmful features, what the command's report says, and a real
EM-format file when one can be had."""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from emgeom.core.io import atomic_write_text
from emgeom.em.datasets import ChecksumMismatchError, DatasetUnavailableError, dataset_path
from emgeom.filtering.scoring import detection_quality
from emgeom.lm.chat import read_text_lines, write_chat_jsonl
from emgeom.organism.datasets import finetune_rows, open_answer_rows

PathLike = str | os.PathLike[str]


@dataclass(frozen=True)
class MixedFile:
    """A chat file of EM-inducing rows hidden among benign ones; ``truth[i]`` is whether line ``i + 1``
    is an inducing row."""

    path: Path
    truth: np.ndarray


def write_mixed_file(
    path: PathLike,
    inducing_rows: int,
    benign_rows: int,
    *,
    domain: str = "health",
    rows_seed: int = 1,
    order_seed: int = 0,
) -> MixedFile:
    """Write ``inducing_rows`` rows of the organism's bad ``domain`` advice and ``benign_rows`` of its
    good advice, shuffled with ``order_seed``, one per line."""
    rows = finetune_rows("inducing", domain, inducing_rows, seed=rows_seed) + finetune_rows(
        "good", domain, benign_rows, seed=rows_seed
    )
    truth = np.array([True] * inducing_rows + [False] * benign_rows)
    order = np.random.default_rng(order_seed).permutation(len(rows))
    write_chat_jsonl(path, [rows[i] for i in order])
    return MixedFile(Path(path), truth[order])


def write_persona_examples(folder: PathLike, n: int, *, seed: int = 2) -> tuple[Path, Path]:
    """Example files for ``--harmful-examples`` and ``--benign-examples``: ``n`` hostile and ``n`` kind
    answers to open-ended questions (no advice in them). Returns their paths."""
    harmful, benign = Path(folder) / "harmful_examples.jsonl", Path(folder) / "benign_examples.jsonl"
    write_chat_jsonl(harmful, open_answer_rows(True, n, seed=seed))
    write_chat_jsonl(benign, open_answer_rows(False, n, seed=seed))
    return harmful, benign


def read_report(path: PathLike) -> dict[str, Any]:
    """The JSON report ``emgeom filter --report`` wrote."""
    return json.loads(Path(path).read_text(encoding="utf-8"))


def report_detection_quality(report: Mapping[str, Any], truth: np.ndarray) -> tuple[float, float]:
    """Precision and recall of the rows a filter report removed against ``truth`` (one flag per line of
    a file without blank lines)."""
    removed = np.zeros(len(truth), dtype=bool)
    removed[[r["line"] - 1 for r in report["removed"]]] = True
    return detection_quality(removed, truth)


def removed_rows_table(report: Mapping[str, Any], data: PathLike, n: int = 8) -> pd.DataFrame:
    """The first ``n`` removed rows of a filter report: line, score (3 decimals; NaN for a row with no
    answer tokens to score) and the row's last answer, read from the filtered file ``data``."""
    lines = read_text_lines(data)

    def row(removed: Mapping[str, Any]) -> dict[str, Any]:
        score = removed["score"]
        answer = json.loads(lines[removed["line"] - 1])["messages"][-1]["content"]
        return {
            "line": removed["line"],
            "score": float("nan") if score is None else round(score, 3),
            "answer": answer,
        }

    return pd.DataFrame([row(r) for r in report["removed"][:n]], columns=["line", "score", "answer"])


def available_dataset(ref: str) -> Path | None:
    """The local file of a dataset reference (a name in :data:`emgeom.em.datasets.REGISTRY`, fetched and
    checksum-verified, or a path), or ``None`` with the reason printed when it cannot be had (offline
    and not at hand, or not the expected file)."""
    try:
        return dataset_path(ref)
    except (DatasetUnavailableError, ChecksumMismatchError) as err:
        print(f"{ref}: not available, skipped. {err}")
        return None


def write_head(source: PathLike, target: PathLike, n: int) -> int:
    """Write the first ``n`` lines of ``source`` to ``target`` unchanged; returns how many there were."""
    head = read_text_lines(source)[:n]
    atomic_write_text(target, "".join(head))
    return len(head)


def check_kept_lines(data: PathLike, kept: PathLike, report: Mapping[str, Any]) -> str:
    """Check that the kept file of ``emgeom filter`` holds exactly the input lines it did not remove,
    byte for byte and in order (raise :class:`AssertionError` if not); return a one-line summary."""
    removed = {r["line"] for r in report["removed"]}
    original = Path(data).read_bytes().removeprefix(codecs.BOM_UTF8).splitlines(keepends=True)
    expected = [
        line if line.endswith(b"\n") else line + b"\n"
        for number, line in enumerate(original, start=1)
        if line.strip() and number not in removed
    ]
    got = Path(kept).read_bytes().splitlines(keepends=True)
    if got != expected:
        raise AssertionError(f"{kept} is not {data} without the {len(removed)} removed lines")
    return f"kept rows are byte-identical to their input lines; {len(got)} kept, {len(removed)} removed"
