"""The harmful / benign persona texts that define harmful SAE latents on real models.

On the organism the harmful set comes from hostile vs kind open answers of its own language. A real model
needs real text of a misaligned persona; the paper's is not public, so the book ships its own small set
(``data/persona_contrast.yaml``, one prompt with a harmful and a benign answer per entry) and labels it as
its construction. A profile can point ``harmful_data`` / ``benign_data`` at any chat JSONL instead.
"""

from __future__ import annotations

from importlib import resources

import yaml

from emgeom.lm.chat import ChatRow


def persona_rows(harmful: bool) -> list[ChatRow]:
    """One chat row per entry: the prompt and its harmful (or benign) answer."""
    text = resources.files("emgeom").joinpath("data/persona_contrast.yaml").read_text(encoding="utf-8")
    key = "harmful" if harmful else "benign"
    return [
        {"messages": [{"role": "user", "content": e["prompt"]}, {"role": "assistant", "content": e[key]}]}
        for e in yaml.safe_load(text)
    ]
