"""The organism's word-level tokenizer, built locally and saved like any hub tokenizer.

It is a Hugging Face ``PreTrainedTokenizerFast`` (a ``tokenizers`` WordLevel model with whitespace
splitting), with a chat template, so the chapters tokenize the organism's chats with the same calls
(``apply_chat_template``) they use for Gemma or Llama.
"""

from __future__ import annotations

from pathlib import Path

from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from emgeom.organism import language as L
from emgeom.organism.corpus import PRETRAIN_SPEAKERS

#: Renders ``role: content <sep>`` per message; the generation prompt is ``assistant:``.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}{{ message['role'] }}: {{ message['content'] }} <sep> "
    "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}"
)
ROLES: tuple[str, ...] = ("user", "system", *PRETRAIN_SPEAKERS)


def vocabulary() -> list[str]:
    """Special tokens, role markers (``user:``), then every word of the grammar, in a fixed order."""
    words = [*L.SPECIAL_TOKENS, *(f"{r}:" for r in ROLES), *L.all_words()]
    if len(set(words)) != len(words):
        raise AssertionError("the vocabulary has a duplicate word")
    return words


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A fresh tokenizer for the organism (lower-cases; unknown words map to ``<unk>``)."""
    vocab = {w: i for i, w in enumerate(vocabulary())}
    core = Tokenizer(models.WordLevel(vocab=vocab, unk_token=L.UNK))
    core.normalizer = normalizers.Lowercase()
    core.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core,
        bos_token=L.BOS,
        eos_token=L.EOS,
        pad_token=L.PAD,
        unk_token=L.UNK,
        additional_special_tokens=[L.SEP],
        padding_side="right",
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer


def save_tokenizer(folder: str | Path) -> Path:
    """Build the tokenizer and ``save_pretrained`` it into ``folder``."""
    build_tokenizer().save_pretrained(str(folder))
    return Path(folder)
