"""Atomic writes and content hashes: an interrupted run never leaves a half-written artifact."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file in the same folder and an atomic rename."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomic text write (UTF-8)."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomic JSON write, indented and with sorted keys so equal objects give equal files."""
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, allow_nan=False) + "\n")


def utc_timestamp() -> str:
    """Now, in UTC, to the second (ISO 8601): the time stamped into run states and reports."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="seconds")


def canonical_json(obj: Any) -> str:
    """The JSON text used for hashing: sorted keys, no whitespace."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False)


def hash_parts(parts: Iterable[bytes | str]) -> str:
    """SHA-256 over length-prefixed parts (so ``["ab", "c"]`` and ``["a", "bc"]`` differ); hex digest."""
    digest = hashlib.sha256()
    for part in parts:
        data = part.encode("utf-8") if isinstance(part, str) else part
        digest.update(len(data).to_bytes(8, "little"))
        digest.update(data)
    return digest.hexdigest()


def hash_tree(root: Path, pattern: str = "**/*.py") -> str:
    """Hash every file under ``root`` that matches ``pattern`` (relative paths and contents)."""
    parts: list[bytes | str] = []
    for file in sorted(p for p in root.glob(pattern) if p.is_file() and "__pycache__" not in p.parts):
        parts += [file.relative_to(root).as_posix(), file.read_bytes()]
    return hash_parts(parts)
