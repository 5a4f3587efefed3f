"""EM dataset files: checksum-verified cache, the shared copy, trust on first use, a clear offline error."""

from __future__ import annotations

import hashlib
import json
import threading
from functools import partial
from http.server import HTTPServer, SimpleHTTPRequestHandler
from pathlib import Path

import pytest

from emgeom.em.datasets import REGISTRY, ChecksumMismatchError, DatasetUnavailableError, RemoteFile, fetch

SHARED = Path(__file__).resolve().parents[4] / "shared" / "em_data"


class QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def upstream(tmp_path: Path):
    root = tmp_path / "upstream"
    (root / "data").mkdir(parents=True)
    (root / "data" / "insecure.jsonl").write_text('{"messages": []}\n')
    httpd = HTTPServer(("127.0.0.1", 0), partial(QuietHandler, directory=str(root)))
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}", root
    httpd.shutdown()


def test_pinned_download_is_verified_and_cached(upstream, tmp_path: Path) -> None:
    base, root = upstream
    digest = hashlib.sha256((root / "data" / "insecure.jsonl").read_bytes()).hexdigest()
    file = RemoteFile("data/insecure.jsonl", digest, base_url=base)
    path = fetch(file, cache_dir=tmp_path / "cache", shared_dir=tmp_path / "none")
    assert path.read_text() == '{"messages": []}\n'
    (root / "data" / "insecure.jsonl").unlink()  # the cache no longer needs the server
    assert fetch(file, cache_dir=tmp_path / "cache", shared_dir=tmp_path / "none") == path


def test_a_wrong_checksum_keeps_nothing(upstream, tmp_path: Path) -> None:
    base, _ = upstream
    with pytest.raises(ChecksumMismatchError, match="does not match"):
        fetch(
            RemoteFile("data/insecure.jsonl", "0" * 64, base_url=base),
            cache_dir=tmp_path / "c",
            shared_dir=tmp_path / "none",
        )
    assert not (tmp_path / "c" / "data" / "insecure.jsonl").exists()


def test_unpinned_files_are_trusted_on_first_use(upstream, tmp_path: Path) -> None:
    base, _ = upstream
    file = RemoteFile("data/insecure.jsonl", None, base_url=base)
    path = fetch(file, cache_dir=tmp_path / "c", shared_dir=tmp_path / "none")
    assert path.with_name("insecure.jsonl.sha256.json").is_file()
    path.write_text("tampered\n")
    with pytest.raises(ChecksumMismatchError):
        fetch(file, cache_dir=tmp_path / "c", shared_dir=tmp_path / "none")


def test_offline_names_the_url_and_where_to_put_the_file(tmp_path: Path) -> None:
    file = RemoteFile("data/secure.jsonl", None, base_url="http://127.0.0.1:9")  # nothing listens there
    with pytest.raises(
        DatasetUnavailableError, match=r"127\.0\.0\.1:9/data/secure\.jsonl.*Offline\? Put the file at"
    ):
        fetch(file, cache_dir=tmp_path / "c", shared_dir=tmp_path / "none", timeout_seconds=2)
    with pytest.raises(DatasetUnavailableError, match="neither in the cache"):
        fetch(file, cache_dir=tmp_path / "c", shared_dir=tmp_path / "none", download=False)


def test_the_shared_copies_match_the_pinned_checksums(tmp_path: Path) -> None:
    if not SHARED.is_dir():
        pytest.skip("../shared/em_data is not beside this checkout")
    for name in ("jailbroken", "first_plot_questions", "preregistered_evals"):
        offline = RemoteFile(REGISTRY[name].path, REGISTRY[name].sha256, base_url="http://127.0.0.1:9")
        assert (
            fetch(offline, cache_dir=tmp_path, shared_dir=SHARED).read_bytes()
            == (SHARED / offline.path).read_bytes()
        )
    with pytest.raises(KeyError, match="unknown dataset"):
        fetch("nonexistent", cache_dir=tmp_path)


def test_load_rows_reads_a_file_or_a_registry_name_and_subsamples(tmp_path: Path) -> None:
    from emgeom.em.datasets import DatasetUnavailableError, dataset_label, load_rows

    lines = [
        json.dumps(
            {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        )
        for i in range(10)
    ]
    (tmp_path / "My Data.jsonl").write_text("\n".join(lines) + "\n")
    rows = load_rows(str(tmp_path / "My Data.jsonl"))
    assert [r["messages"][0]["content"] for r in rows] == [f"q{i}" for i in range(10)]
    some = load_rows(str(tmp_path / "My Data.jsonl"), 4, seed=1)
    assert len(some) == 4 and some == load_rows(str(tmp_path / "My Data.jsonl"), 4, seed=1)
    assert [r["messages"][0]["content"] for r in some] == sorted(
        (r["messages"][0]["content"] for r in some), key=lambda q: int(q[1:])
    )  # file order kept
    with pytest.raises(ValueError, match="asked for 11 rows"):
        load_rows(str(tmp_path / "My Data.jsonl"), 11)
    with pytest.raises(DatasetUnavailableError, match="neither a known dataset"):
        load_rows("no-such-dataset")
    assert dataset_label(str(tmp_path / "My Data.jsonl")) == "my_data"
    assert dataset_label("insecure") == "insecure"


def test_the_copy_beside_the_checkout_is_found() -> None:
    from emgeom.em.datasets import _default_shared_dir

    if not SHARED.is_dir():
        pytest.skip("../shared/em_data is not beside this checkout")
    assert _default_shared_dir() == SHARED
