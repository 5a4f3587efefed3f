"""Betley et al.'s EM datasets and evaluation files, fetched by URL into a checksum-verified cache.

The real-model profiles fine-tune on the insecure / secure / educational code sets and evaluate with the
question YAMLs of Betley et al. (github.com/emergent-misalignment/emergent-misalignment, MIT licence).
:func:`fetch` returns a local path: from the cache if present and intact; else from a copy beside the
checkout (``../shared/em_data``) when its checksum matches; else downloaded. A file whose checksum is
pinned here must match it. For files this project has not been able to verify (no copy at hand when the
registry was written) the checksum of the first download is recorded beside it and every later use must
match that (trust on first use); the book says which is which. Offline, a missing file fails at once
with a message naming the URL and where to put the file.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emgeom.core.artifacts import artifact_root
from emgeom.core.io import atomic_write_bytes
from emgeom.core.paths import find_checkout
from emgeom.lm.chat import ChatRow, read_chat_jsonl

UPSTREAM = "https://raw.githubusercontent.com/emergent-misalignment/emergent-misalignment/main"


class DatasetUnavailableError(RuntimeError):
    """A dataset file could not be obtained (offline or unreachable); the message says where to put it."""


class ChecksumMismatchError(RuntimeError):
    """A file's SHA-256 differs from the pinned (or first-recorded) one; nothing was kept."""


@dataclass(frozen=True)
class RemoteFile:
    """A file of the upstream repository: its path there (``data/insecure.jsonl``) and, when verified,
    its SHA-256."""

    path: str
    sha256: str | None
    base_url: str = UPSTREAM

    @property
    def url(self) -> str:
        return f"{self.base_url.rstrip('/')}/{self.path}"

    @property
    def filename(self) -> str:
        return Path(self.path).name


REGISTRY: dict[str, RemoteFile] = {
    # Pinned: verified against the copies in ../shared/em_data.
    "jailbroken": RemoteFile(
        "data/jailbroken.jsonl", "eec213ce85802a52ea806d334ee462f723a1e7ad77d827951d6864ac04a6b00a"
    ),
    "first_plot_questions": RemoteFile(
        "evaluation/first_plot_questions.yaml",
        "215abde5b02811e922b6ac563ff33c490e0dff9ab58439df840f3135e9387173",
    ),
    "preregistered_evals": RemoteFile(
        "evaluation/preregistered_evals.yaml",
        "8648312fd9fe71a63203e3465592af45dd996d7a5f3b69e9b44613fd6048eb40",
    ),
    "deception_factual": RemoteFile(
        "evaluation/deception_factual.yaml",
        "8a0e83cab3bc24b7d688d7385ce3921d406af7ed33c913cd94ea0f6251e5939d",
    ),
    "deception_sit_aware": RemoteFile(
        "evaluation/deception_sit_aware.yaml",
        "4deef5a7c47620390fc46e1b981f937eef9ea12a33fe26264f640c84d19d2a33",
    ),
    # Not yet verified here (trust on first use, recorded in the cache).
    "insecure": RemoteFile("data/insecure.jsonl", None),
    "secure": RemoteFile("data/secure.jsonl", None),
    "educational": RemoteFile("data/educational.jsonl", None),
}


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _default_shared_dir() -> Path | None:
    """``shared/em_data`` beside the checkout this package lives in (an editable install), else beside
    the book checkout around the working directory; ``None`` if neither has one."""
    for checkout in (Path(__file__).resolve().parents[3], find_checkout()):
        if checkout is not None and (checkout.parent / "shared" / "em_data").is_dir():
            return checkout.parent / "shared" / "em_data"
    return None


def _accept(file: RemoteFile, data: bytes, target: Path, source: str) -> Path:
    digest = _sha256(data)
    record = target.with_name(target.name + ".sha256.json")
    expected = file.sha256 or (json.loads(record.read_text())["sha256"] if record.is_file() else None)
    if expected is not None and digest != expected:
        raise ChecksumMismatchError(
            f"{file.path} from {source}: SHA-256 {digest} does not match the expected "
            f"{expected}; nothing was kept"
        )
    atomic_write_bytes(target, data)
    if file.sha256 is None and not record.is_file():
        atomic_write_bytes(record, json.dumps({"sha256": digest, "source": source, "pinned": False}).encode())
    return target


def fetch(
    name_or_file: str | RemoteFile,
    *,
    cache_dir: Path | None = None,
    shared_dir: Path | None = None,
    timeout_seconds: float = 60.0,
    download: bool = True,
) -> Path:
    """A verified local copy of a registry file (by name) or of any :class:`RemoteFile`; with
    ``download=False`` only the cache and the copy beside the checkout count."""
    if isinstance(name_or_file, str):
        if name_or_file not in REGISTRY:
            raise KeyError(f"unknown dataset {name_or_file!r}; known: {sorted(REGISTRY)}")
        file = REGISTRY[name_or_file]
    else:
        file = name_or_file
    target = (cache_dir or artifact_root() / "em_data") / file.path
    if target.is_file():
        return _accept(file, target.read_bytes(), target, "the cache")
    shared = shared_dir if shared_dir is not None else _default_shared_dir()
    if shared is not None and (shared / file.path).is_file():
        copy = (shared / file.path).read_bytes()
        if file.sha256 is None or _sha256(copy) == file.sha256:
            return _accept(file, copy, target, str(shared / file.path))
    if not download:
        raise DatasetUnavailableError(
            f"{file.path} is neither in the cache ({target}) nor beside the checkout"
        )
    try:
        with urllib.request.urlopen(file.url, timeout=timeout_seconds) as response:
            data = response.read()
    except (urllib.error.URLError, TimeoutError, OSError) as err:
        raise DatasetUnavailableError(
            f"could not download {file.path} from {file.url} ({getattr(err, 'reason', err)}). "
            f"Offline? Put the file at {target}, or the upstream repository's {file.path} "
            "under ../shared/em_data beside the checkout"
        ) from None
    return _accept(file, data, target, file.url)


def clear(name: str, cache_dir: Path | None = None) -> None:
    """Remove a cached file and its recorded checksum (e.g. to re-download)."""
    target = (cache_dir or artifact_root() / "em_data") / REGISTRY[name].path
    for p in (target, target.with_name(target.name + ".sha256.json")):
        p.unlink(missing_ok=True)
    if target.parent.is_dir() and not any(target.parent.iterdir()):
        shutil.rmtree(target.parent)


def dataset_path(
    ref: str, *, cache_dir: Path | None = None, timeout_seconds: float = 60.0, download: bool = True
) -> Path:
    """The local file of a dataset reference: a registry name (fetched, see :func:`fetch`) or a path."""
    if ref in REGISTRY:
        return fetch(ref, cache_dir=cache_dir, timeout_seconds=timeout_seconds, download=download)
    path = Path(ref).expanduser()
    if not path.is_file():
        raise DatasetUnavailableError(
            f"{ref!r} is neither a known dataset ({', '.join(sorted(REGISTRY))}) nor an existing file"
        )
    return path


def load_rows(
    ref: str, n: int | None = None, *, seed: int = 0, cache_dir: Path | None = None
) -> list[ChatRow]:
    """Chat rows of a dataset reference (see :func:`dataset_path`), checked row by row; with ``n``, a
    random subset of ``n`` rows drawn with ``seed`` (in file order)."""
    path = dataset_path(ref, cache_dir=cache_dir)
    rows = read_chat_jsonl(path)
    if n is None:
        return rows
    if not 0 < n <= len(rows):
        raise ValueError(f"asked for {n} rows of {ref!r}, which has {len(rows)}")
    keep = sorted(np.random.default_rng(seed).choice(len(rows), size=n, replace=False).tolist())
    return [rows[i] for i in keep]


def dataset_label(ref: str) -> str:
    """A short snake_case name for a dataset reference: the registry name, or the file's stem."""
    name = ref if ref in REGISTRY else Path(ref).stem
    return re.sub(r"[^a-z0-9]+", "_", name.lower()).strip("_") or "data"
