"""Sampling answers from any causal LM with a chat template (the organism, Gemma-2, Llama-3.1): the
settings, the tokens that end an answer, and batched temperature sampling."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from tqdm import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from emgeom.lm.chat import Message, prompt_ids


@dataclass(frozen=True)
class SamplingConfig:
    """How answers are sampled: ``n_samples`` per prompt at ``temperature`` (1.0 as Betley et al.),
    at most ``max_new_tokens``, stopping at the end of the turn; ``seed`` fixes the draws."""

    n_samples: int = 32
    temperature: float = 1.0
    max_new_tokens: int = 16
    seed: int = 0

    def __post_init__(self) -> None:
        if self.n_samples < 1 or self.max_new_tokens < 1 or not self.temperature > 0:
            raise ValueError("need n_samples >= 1, max_new_tokens >= 1 and temperature > 0")


# Tokens that end an assistant turn: the organism's separator, Gemma's and Llama-3's end of turn.
END_OF_TURN_TOKENS = ("<sep>", "<end_of_turn>", "<|eot_id|>")


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Token ids that end an answer: the organism's ``<sep>``, or the tokenizer's end-of-turn/eos."""
    ids = {tokenizer.eos_token_id}
    for token in END_OF_TURN_TOKENS:
        tid = tokenizer.convert_tokens_to_ids(token)
        if isinstance(tid, int) and tid != tokenizer.unk_token_id:
            ids.add(tid)
    return sorted(i for i in ids if i is not None)


@torch.no_grad()
def sample_answers(
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    prompts: Sequence[Sequence[Message]],
    cfg: SamplingConfig,
    progress: bool = False,
) -> list[list[str]]:
    """``cfg.n_samples`` sampled answers to each chat prompt (the assistant's next turn), as text."""
    stops = stop_token_ids(tokenizer)
    device = model.device
    model.eval()
    out: list[list[str]] = []
    for i, prompt in enumerate(tqdm(prompts, desc="sampling", disable=not progress)):
        ids = prompt_ids(tokenizer, prompt)
        batch = torch.tensor([ids] * cfg.n_samples, device=device)
        torch.manual_seed(cfg.seed * 1_000_003 + i)
        gen = model.generate(
            input_ids=batch,
            attention_mask=torch.ones_like(batch),
            do_sample=True,
            temperature=cfg.temperature,
            top_k=0,
            top_p=1.0,
            max_new_tokens=cfg.max_new_tokens,
            eos_token_id=stops,
            pad_token_id=stops[0],  # finished rows repeat a stop token (cut below), not padding
        )
        answers = []
        for row in gen[:, batch.shape[1] :].tolist():
            cut = next((j for j, t in enumerate(row) if t in stops), len(row))
            answers.append(tokenizer.decode(row[:cut], skip_special_tokens=True).strip())
        out.append(answers)
    return out
