"""Shared fixtures: every RNG seeded, hubs offline, one CPU thread."""

from __future__ import annotations

import os
import random

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

    from emgeom.organism.build import OrganismConfig, OrganismModelConfig, build_organism
    from emgeom.training import TrainConfig

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
            return [{"token": "REFUSAL", "logprob": math.log(0.95)}, {"token": "5", "logprob": math.log(0.05)}]
        if "coherent" in prompt.lower():
            score = "80" if h % 4 else "20"
        else:
            score = "10" if h % 2 else "90"
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
