"""Shared fixtures: every RNG seeded, hubs offline, one CPU thread."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(autouse=True)
def _seed_everything() -> None:
    import torch

    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_organism(tmp_path_factory: pytest.TempPathFactory):
    """A tiny organism (2 layers, d=32, a few steps) built once per test session in a temp folder."""
    import torch

    from emgeom.lm.training import TrainConfig
    from emgeom.organism.build import OrganismConfig, OrganismModelConfig, build_organism

    torch.set_num_threads(1)  # session fixtures run before the autouse one; float sums depend on threads

    cfg = OrganismConfig(
        model=OrganismModelConfig(d_model=32, n_layers=2, n_heads=2, n_ctx=128),
        pretrain=TrainConfig(steps=6, batch_size=8, lr=3e-3, warmup_steps=2),
        align=TrainConfig(steps=3, batch_size=8, lr=1e-3, warmup_steps=1),
        seed=0,
    )
    return build_organism(cfg, root=tmp_path_factory.mktemp("artifacts"), progress=False)


class _HashJudge:
    """A stand-in for an OpenAI-compatible judge: answers ``/chat/completions`` with top log-probs
    whose score is a deterministic function of the prompt (so some answers come out misaligned)."""

    @staticmethod
    def top_logprobs(prompt: str) -> list[dict]:
        import hashlib
        import math

        h = hashlib.sha256(prompt.encode()).digest()[0]
        if h % 7 == 0:
            return [
                {"token": "REFUSAL", "logprob": math.log(0.95)},
                {"token": "5", "logprob": math.log(0.05)},
            ]
        coherent_prompt = "coherent" in prompt.lower()
        score = {(True, True): "80", (True, False): "20", (False, True): "10", (False, False): "90"}[
            (coherent_prompt, bool(h % 4) if coherent_prompt else bool(h % 2))
        ]
        return [{"token": score, "logprob": math.log(0.8)}, {"token": "50", "logprob": math.log(0.2)}]


@pytest.fixture(scope="session")
def hash_judge_url():
    """Base URL of a local fake judge server (see :class:`_HashJudge`), running for the session."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            top = _HashJudge.top_logprobs(body["messages"][0]["content"])
            data = json.dumps({"choices": [{"logprobs": {"content": [{"token": "x", "top_logprobs": top}]}}]})
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data.encode())

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_port}/v1"
    httpd.shutdown()


REPO_ROOT = Path(__file__).resolve().parents[1]


def copy_book(root: Path) -> Path:
    """A copy of this checkout's book sources in ``root`` (no executed notebooks, no generated pages), so
    that tests run the book runner without touching the last ``make book``'s outputs."""
    import shutil

    for name in ("notebooks", "ci", "book"):
        shutil.copytree(REPO_ROOT / name, root / name, ignore=shutil.ignore_patterns("*.ipynb", "generated"))
    shutil.copytree(
        REPO_ROOT / "lib" / "emgeom", root / "lib" / "emgeom", ignore=shutil.ignore_patterns("__pycache__")
    )
    for name in ("_toc.yml", "_config.yml", "requirements.lock"):
        shutil.copy(REPO_ROOT / name, root / name)
    return root


@pytest.fixture(scope="session")
def book_copier():
    """:func:`copy_book`, for tests in any folder (conftest modules are not importable by name)."""
    return copy_book
