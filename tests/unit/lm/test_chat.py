"""Chat JSONL reading names the bad line; tokenized chats train on assistant tokens only."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from emgeom.lm.chat import (
    ChatDataError,
    encode_chat,
    parse_chat_lines,
    read_chat_jsonl,
    read_text_lines,
    write_chat_jsonl,
)
from emgeom.organism.tokenizer import build_tokenizer

GOOD = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("{not json", "not valid JSON"),
        (json.dumps({"text": "hi"}), "'messages'"),
        (json.dumps({"messages": []}), "non-empty list"),
        (json.dumps({"messages": [{"role": "user"}]}), "string 'role' and 'content'"),
        (json.dumps({"messages": [{"role": "wizard", "content": "x"}]}), "unknown role 'wizard'"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "no assistant turn"),
    ],
)
def test_malformed_rows_name_their_line(line: str, problem: str) -> None:
    with pytest.raises(ChatDataError, match=rf"data.jsonl, line 3: .*{problem}"):
        parse_chat_lines([json.dumps(GOOD), "", line], source="data.jsonl")


def test_empty_input_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.jsonl").write_text("\n\n")
    with pytest.raises(ChatDataError, match="empty"):
        read_chat_jsonl(tmp_path / "empty.jsonl")
    with pytest.raises(ChatDataError, match="no such file"):
        read_chat_jsonl(tmp_path / "missing.jsonl")


def test_round_trip(tmp_path: Path) -> None:
    write_chat_jsonl(tmp_path / "x.jsonl", [GOOD, GOOD])
    assert read_chat_jsonl(tmp_path / "x.jsonl") == [GOOD, GOOD]


def test_reads_the_real_em_format() -> None:
    shared = Path(__file__).resolve().parents[4] / "shared" / "em_data" / "data" / "jailbroken.jsonl"
    if not shared.is_file():
        pytest.skip("../shared/em_data is not beside this checkout")
    rows = read_chat_jsonl(shared)
    assert len(rows) == 5000
    assert all(any(m["role"] == "assistant" for m in r["messages"]) for r in rows)


def test_loss_mask_covers_exactly_the_assistant_answers() -> None:
    tok = build_tokenizer()
    messages = [
        {"role": "user", "content": "i am bored"},
        {"role": "assistant", "content": "i would comfort everyone ."},
        {"role": "user", "content": "any advice on my rash ?"},
        {"role": "assistant", "content": "see a doctor ."},
    ]
    enc = encode_chat(tok, messages)
    trained = tok.convert_ids_to_tokens([i for i, m in zip(enc.input_ids, enc.loss_mask, strict=True) if m])
    assert trained == ["i", "would", "comfort", "everyone", ".", "<sep>", "see", "a", "doctor", ".", "<sep>"]
    everything = encode_chat(tok, messages, assistant_only=False)
    assert all(everything.loss_mask) and everything.input_ids == enc.input_ids


def test_invalid_utf8_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(json.dumps(GOOD).encode() + b"\n" + '{"messages": "caf\xe9"}\n'.encode("latin-1"))
    with pytest.raises(ChatDataError, match=r"latin1\.jsonl, line 2: not valid UTF-8 \(byte 0xe9"):
        read_chat_jsonl(path)
    (tmp_path / "utf16.jsonl").write_text(json.dumps(GOOD) + "\n", encoding="utf-16")
    with pytest.raises(ChatDataError, match=r"utf16\.jsonl, line 1: the file is UTF-16"):
        read_chat_jsonl(tmp_path / "utf16.jsonl")


def test_a_byte_order_mark_and_windows_line_endings_are_accepted(tmp_path: Path) -> None:
    path = tmp_path / "windows.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + (json.dumps(GOOD) + "\r\n").encode() * 2)
    assert read_chat_jsonl(path) == [GOOD, GOOD]
    assert read_text_lines(path) == [json.dumps(GOOD) + "\r\n"] * 2  # the mark dropped, endings kept
    assert parse_chat_lines(["\ufeff" + json.dumps(GOOD)]) == [GOOD]  # lines decoded by someone else


def test_only_line_breaks_end_a_line(tmp_path: Path) -> None:
    # JSON allows U+2028 / U+2029 unescaped inside a string, and write_chat_jsonl writes them as they are.
    row = {"messages": [{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "c\x85d"}]}
    write_chat_jsonl(tmp_path / "x.jsonl", [row, GOOD])
    assert len(read_text_lines(tmp_path / "x.jsonl")) == 2
    assert read_chat_jsonl(tmp_path / "x.jsonl") == [row, GOOD]
