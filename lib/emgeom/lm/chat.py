"""Chat data: reading and checking OpenAI chat JSONL, and tokenizing chats with a loss mask.

Every EM dataset (Betley et al.'s insecure/secure/educational, the organism's fine-tuning sets) is JSONL
with one ``{"messages": [{"role": ..., "content": ...}, ...]}`` object per line.
"""

from __future__ import annotations

import codecs
import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from emgeom.core.io import atomic_write_text

Message = dict[str, str]
ChatRow = dict[str, list[Message]]
KNOWN_ROLES = frozenset({"system", "user", "assistant"})


class Conversation(Protocol):
    """Anything with chat ``messages`` (an organism document, a parsed row's wrapper): what SAE training
    and quality batches read."""

    @property
    def messages(self) -> Sequence[Message]: ...


class ChatDataError(ValueError):
    """A chat dataset is empty or malformed; the message names the file and line."""


def _check_row(obj: Any, where: str, roles: frozenset[str]) -> ChatRow:
    if not isinstance(obj, dict) or "messages" not in obj:
        raise ChatDataError(f"{where}: expected an object with a 'messages' list")
    messages = obj["messages"]
    if not isinstance(messages, list) or not messages:
        raise ChatDataError(f"{where}: 'messages' must be a non-empty list")
    for i, m in enumerate(messages):
        if (
            not isinstance(m, dict)
            or not isinstance(m.get("role"), str)
            or not isinstance(m.get("content"), str)
        ):
            raise ChatDataError(f"{where}: message {i} needs string 'role' and 'content'")
        if m["role"] not in roles:
            raise ChatDataError(
                f"{where}: message {i} has unknown role {m['role']!r} (known: {sorted(roles)})"
            )
    if not any(m["role"] == "assistant" for m in messages):
        raise ChatDataError(f"{where}: no assistant turn")
    return obj


def parse_chat_lines(
    lines: Iterable[str], source: str = "<input>", roles: frozenset[str] = KNOWN_ROLES
) -> list[ChatRow]:
    """Parse JSONL chat rows; raise :class:`ChatDataError` naming the first bad line (1-based). A
    byte-order mark before the first line is ignored."""
    rows: list[ChatRow] = []
    for number, line in enumerate(lines, start=1):
        if number == 1:
            line = line.removeprefix("\ufeff")
        if not line.strip():
            continue
        where = f"{source}, line {number}"
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ChatDataError(f"{where}: not valid JSON ({err.msg})") from None
        rows.append(_check_row(obj, where, roles))
    if not rows:
        raise ChatDataError(f"{source}: no chat rows (the file is empty)")
    return rows


def read_text_lines(path: str | os.PathLike[str]) -> list[str]:
    """The lines of a UTF-8 text file, each with its line ending as in the file.

    A byte-order mark at the start (files exported on Windows often have one) is dropped, as
    ``utf-8-sig`` would. Bytes that are not UTF-8 raise :class:`ChatDataError` naming the file and the
    line, as a malformed row does. Lines end at ``\\n``, ``\\r\\n`` or ``\\r``, as in a text-mode
    :func:`open`; characters such as U+2028, which JSON allows unescaped inside a string, do not end one.
    """
    p = Path(path)
    if not p.is_file():
        raise ChatDataError(f"{p}: no such file")
    try:
        data = p.read_bytes()
    except OSError as err:
        raise ChatDataError(f"{p}: cannot be read ({err.strerror or err})") from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise ChatDataError(
            f"{p}, line 1: the file is UTF-16, not UTF-8 (it starts with a UTF-16 byte-order mark)"
        )
    data = data.removeprefix(codecs.BOM_UTF8)
    lines: list[str] = []
    for number, raw in enumerate(data.splitlines(keepends=True), start=1):
        try:
            lines.append(raw.decode("utf-8"))
        except UnicodeDecodeError as err:
            raise ChatDataError(
                f"{p}, line {number}: not valid UTF-8 (byte 0x{raw[err.start]:02x} at byte {err.start + 1} "
                "of the line); save the file as UTF-8"
            ) from None
    return lines


def read_chat_jsonl(path: str | os.PathLike[str]) -> list[ChatRow]:
    """Read and check an OpenAI chat JSONL file (UTF-8, with or without a byte-order mark)."""
    return parse_chat_lines(read_text_lines(path), source=str(Path(path)))


def write_chat_jsonl(path: str | os.PathLike[str], rows: Sequence[ChatRow]) -> Path:
    """Write chat rows as JSONL, atomically."""
    return atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


@dataclass(frozen=True)
class EncodedChat:
    """Token ids of a rendered chat, and which of them are trained on (the ``train_roles`` turns)."""

    input_ids: list[int]
    loss_mask: list[bool]


def _render_ids(tokenizer: Any, messages: Sequence[Message], add_generation_prompt: bool) -> list[int]:
    out = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=add_generation_prompt, return_dict=False
    )
    return list(out)


def encode_chat(tokenizer: Any, messages: Sequence[Message], assistant_only: bool = True) -> EncodedChat:
    """Tokenize a chat with the tokenizer's chat template; with ``assistant_only`` train on answers only.

    The mask comes from rendering growing prefixes of the chat: an assistant answer spans from the end
    of its prompt (the prefix rendered with the generation prompt, so the ``assistant:`` header is not
    trained) to the end of its own turn (its end-of-turn token included, so the model learns to stop).
    This works for any prefix-stable template, the organism's and real models' alike.
    """
    ids = _render_ids(tokenizer, messages, add_generation_prompt=False)
    if not assistant_only:
        return EncodedChat(ids, [True] * len(ids))
    mask = [False] * len(ids)
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        start = len(_render_ids(tokenizer, messages[:i], add_generation_prompt=True))
        end = len(_render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False))
        if ids[:end] != _render_ids(tokenizer, messages[: i + 1], add_generation_prompt=False):
            raise ValueError("the chat template is not prefix-stable; cannot locate assistant turns")
        mask[start:end] = [True] * (end - start)
    return EncodedChat(ids, mask)


def prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Token ids of a chat rendered up to the start of the assistant's next answer (generation prompt)."""
    return _render_ids(tokenizer, messages, add_generation_prompt=True)
