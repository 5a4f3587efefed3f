"""Per-sample scoring, the filter, and the ``emgeom`` command line: bad input names its line before any
model loads, outputs are atomic, kept rows are unchanged."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from emgeom.filtering import cli
from emgeom.filtering.scoring import detection_quality, removal_mask, score_rows
from emgeom.lm.chat import write_chat_jsonl
from emgeom.lm.models import hooked_transformer, load_model
from emgeom.organism.datasets import finetune_rows, open_answer_rows
from emgeom.organism.sae import organism_sae
from emgeom.sae.train import SAESpec

SPEC = SAESpec(layer=1, d_sae=48, k=4, training_tokens=4096, batch_size_tokens=1024, context_size=64)


@pytest.fixture(scope="module")
def setup(tiny_organism, tmp_path_factory):
    model, tok = load_model(tiny_organism.aligned)
    hooked = hooked_transformer(model, tok, tiny_organism.aligned)
    sae, folder, _ = organism_sae(tiny_organism, hooked, tok, SPEC, root=tmp_path_factory.mktemp("sae"))
    return hooked, tok, sae, folder


def test_removal_mask_and_detection_quality() -> None:
    scores = np.array([0.1, 0.9, np.nan, 0.5, 0.9])
    remove = removal_mask(scores, 0.5)  # 2 of the 4 scored rows
    assert remove.tolist() == [False, True, False, False, True]
    assert not removal_mask(scores, 0.0).any()
    assert removal_mask(scores, 1.0).tolist() == [True, True, False, True, True]
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        removal_mask(scores, 1.5)
    assert detection_quality(remove, np.array([0, 1, 0, 1, 0], bool)) == (0.5, 0.5)


@pytest.mark.parametrize("method", ["harmful_mass", "cosine_weighted", "residual_projection"])
def test_scores_follow_the_input_order_and_batching_does_not_matter(setup, method) -> None:
    hooked, tok, sae, _ = setup
    rows = finetune_rows("inducing", "health", 7, 0) + open_answer_rows(True, 5, 0)
    one = score_rows(hooked, sae, tok, rows, [0, 3, 5], method, batch_size=1)
    many = score_rows(hooked, sae, tok, rows, [0, 3, 5], method, batch_size=5)
    np.testing.assert_allclose(one.scores, many.scores, rtol=1e-4, atol=1e-5)
    assert np.isfinite(one.scores).all() and one.samples_per_second > 0


def test_harmful_mass_is_the_mean_over_answer_tokens(setup) -> None:
    from emgeom.lm.chat import encode_chat

    hooked, tok, sae, _ = setup
    row = open_answer_rows(True, 1, 0)[0]
    enc = encode_chat(tok, row["messages"])
    _, cache = hooked.run_with_cache(torch.tensor([enc.input_ids]), names_filter=SPEC.hook_name)
    feats = sae.encode(cache[SPEC.hook_name][0])[torch.tensor(enc.loss_mask)]
    expected = feats[:, [1, 2]].sum(-1).mean().item()
    assert score_rows(hooked, sae, tok, [row], [1, 2]).scores[0] == pytest.approx(
        expected, rel=1e-4, abs=1e-6
    )
    with pytest.raises(ValueError, match="below d_sae=48"):
        score_rows(hooked, sae, tok, [row], [48])


def score_args(data: object, model: object, sae: object, latents: str, output: object) -> list[str]:
    """``emgeom score`` arguments for one data file, model, SAE folder, harmful latents and output."""
    return [
        "score",
        str(data),
        "--model",
        str(model),
        "--sae",
        str(sae),
        "--harmful-latents",
        latents,
        "--output",
        str(output),
        "--no-progress",
    ]


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines))
    return path


GOOD_LINE = json.dumps(
    {
        "messages": [
            {"role": "user", "content": "i am bored ."},
            {"role": "assistant", "content": "i would comfort everyone ."},
        ]
    }
)


@pytest.mark.parametrize(
    ("bad_line", "message"),
    [
        ("{oops", "line 2: not valid JSON"),
        ('{"text": "x"}', "line 2: expected an object with a 'messages'"),
        (json.dumps({"messages": [{"role": "user", "content": "hi"}]}), "line 2: no assistant turn"),
    ],
)
def test_malformed_input_fails_before_loading_any_model(
    tmp_path: Path, capsys, bad_line: str, message: str
) -> None:
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE, bad_line])
    code = cli.main(
        [
            "score",
            str(data),
            "--model",
            "/no/such/model",
            "--sae",
            str(tmp_path),
            "--harmful-latents",
            "1,2",
            "--output",
            str(tmp_path / "out.jsonl"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert message in err and "data.jsonl" in err and "model" not in err.split(message)[1]
    assert not (tmp_path / "out.jsonl").exists()


def test_usage_errors_are_clear(tmp_path: Path, capsys) -> None:
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE])
    base = [
        "filter",
        str(data),
        "--model",
        "m",
        "--output",
        str(tmp_path / "o"),
        "--report",
        str(tmp_path / "r"),
    ]
    assert cli.main([*base, "--sae", str(tmp_path), "--harmful-latents", "1", "--remove-fraction", "2"]) == 2
    assert "--remove-fraction must be between 0 and 1" in capsys.readouterr().err
    assert cli.main([*base, "--harmful-latents", "1", "--remove-fraction", "0.1"]) == 2
    assert "--sae FOLDER or --sae-release" in capsys.readouterr().err
    assert (
        cli.main([*base, "--sae", str(tmp_path), "--harmful-latents", "a,b", "--remove-fraction", "0.1"]) == 2
    )
    assert "comma-separated integers" in capsys.readouterr().err
    _write(tmp_path / "empty.jsonl", [""])
    assert (
        cli.main(
            [
                "score",
                str(tmp_path / "empty.jsonl"),
                "--model",
                "m",
                "--sae",
                str(tmp_path),
                "--harmful-latents",
                "1",
                "--output",
                str(tmp_path / "o"),
            ]
        )
        == 2
    )
    assert "empty" in capsys.readouterr().err


def test_an_unreachable_model_is_named(tmp_path: Path, capsys, monkeypatch) -> None:
    from emgeom.testing.tiny_models import save_random_sae

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE])
    sae = save_random_sae(tmp_path / "sae", 32, 48, "blocks.1.hook_resid_pre")
    code = cli.main(
        [
            "score",
            str(data),
            "--model",
            "nobody/no-model",
            "--sae",
            str(sae),
            "--harmful-latents",
            "1",
            "--output",
            str(tmp_path / "o.jsonl"),
        ]
    )
    assert code == 2 and "nobody/no-model" in capsys.readouterr().err


def test_every_option_is_documented() -> None:
    parser = cli.build_parser()
    subparsers = next(a for a in parser._actions if a.dest == "command").choices
    for name, sub in subparsers.items():
        for action in sub._actions:
            assert action.help, f"emgeom {name}: {action.option_strings or action.dest} has no help"


def test_filter_end_to_end(setup, tiny_organism, tmp_path: Path, capsys) -> None:
    _, _, _, sae_folder = setup
    rows = finetune_rows("inducing", "health", 6, 0) + finetune_rows("good", "health", 6, 0)
    write_chat_jsonl(tmp_path / "data.jsonl", rows)
    write_chat_jsonl(tmp_path / "bad.jsonl", open_answer_rows(True, 10, 0))
    write_chat_jsonl(tmp_path / "ok.jsonl", open_answer_rows(False, 10, 0))
    code = cli.main(
        [
            "filter",
            str(tmp_path / "data.jsonl"),
            "--model",
            str(tiny_organism.aligned),
            "--sae",
            str(sae_folder),
            "--harmful-examples",
            str(tmp_path / "bad.jsonl"),
            "--benign-examples",
            str(tmp_path / "ok.jsonl"),
            "--k-harmful",
            "5",
            "--remove-fraction",
            "0.25",
            "--output",
            str(tmp_path / "kept.jsonl"),
            "--report",
            str(tmp_path / "report.json"),
            "--no-progress",
        ]
    )
    assert code == 0, capsys.readouterr().err
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["removed_count"] == 3 and report["kept_count"] == 9 and len(report["harmful_latents"]) == 5
    original = (tmp_path / "data.jsonl").read_text().splitlines()
    kept = (tmp_path / "kept.jsonl").read_text().splitlines()
    removed_lines = {r["line"] for r in report["removed"]}
    assert kept == [line for n, line in enumerate(original, 1) if n not in removed_lines]
    assert report["samples_per_second"] > 0

    code = cli.main(
        [
            "score",
            str(tmp_path / "data.jsonl"),
            "--model",
            str(tiny_organism.aligned),
            "--sae",
            str(sae_folder),
            "--harmful-latents",
            ",".join(map(str, report["harmful_latents"])),
            "--output",
            str(tmp_path / "scores.jsonl"),
            "--no-progress",
        ]
    )
    assert code == 0
    scores = [json.loads(line) for line in (tmp_path / "scores.jsonl").read_text().splitlines()]
    assert [s["line"] for s in scores] == list(range(1, 13))
    top = sorted(scores, key=lambda s: -s["score"])[:3]
    assert {s["line"] for s in top} == removed_lines


def test_interrupted_run_writes_nothing(setup, tiny_organism, tmp_path: Path, monkeypatch, capsys) -> None:
    _, _, _, sae_folder = setup
    write_chat_jsonl(tmp_path / "data.jsonl", finetune_rows("good", "code", 4, 0))

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli, "score_rows", interrupted)
    code = cli.main(
        [
            "score",
            str(tmp_path / "data.jsonl"),
            "--model",
            str(tiny_organism.aligned),
            "--sae",
            str(sae_folder),
            "--harmful-latents",
            "1",
            "--output",
            str(tmp_path / "scores.jsonl"),
        ]
    )
    assert code == 130 and "no output was written" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == [tmp_path / "data.jsonl"]


def test_real_em_rows_are_read_and_scored(setup, tiny_organism, tmp_path: Path) -> None:
    shared = Path(__file__).resolve().parents[4] / "shared" / "em_data" / "data" / "jailbroken.jsonl"
    if not shared.is_file():
        pytest.skip("../shared/em_data is not beside this checkout")
    _, _, _, sae_folder = setup
    head = shared.read_text().splitlines(keepends=True)[:40]
    (tmp_path / "head.jsonl").write_text("".join(head))
    code = cli.main(
        [
            "filter",
            str(tmp_path / "head.jsonl"),
            "--model",
            str(tiny_organism.aligned),
            "--sae",
            str(sae_folder),
            "--harmful-latents",
            "1,2,3",
            "--remove-fraction",
            "0.1",
            "--output",
            str(tmp_path / "kept.jsonl"),
            "--report",
            str(tmp_path / "report.json"),
            "--no-progress",
        ]
    )
    assert code == 0
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["rows"] == 40 and report["removed_count"] == 4


def test_a_layer_that_is_not_the_saes_is_refused(setup, tiny_organism, tmp_path: Path, capsys) -> None:
    _, _, _, sae_folder = setup
    write_chat_jsonl(tmp_path / "data.jsonl", finetune_rows("good", "code", 4, 0))
    args = score_args(
        str(tmp_path / "data.jsonl"),
        str(tiny_organism.aligned),
        str(sae_folder),
        "1",
        str(tmp_path / "scores.jsonl"),
    )
    assert cli.main([*args, "--layer", "0"]) == 2
    assert "--layer 0" in capsys.readouterr().err and not (tmp_path / "scores.jsonl").exists()
    assert cli.main([*args, "--layer", str(SPEC.layer)]) == 0


LATIN1_LINE = '{"messages": [{"role": "user", "content": "caf\xe9"}]}'.encode("latin-1")


@pytest.mark.parametrize("bad_file", ["data", "harmful", "benign"])
def test_invalid_utf8_in_any_input_is_one_line_naming_the_file_and_line(
    tmp_path: Path, capsys, bad_file: str
) -> None:
    files = {
        name: _write(tmp_path / f"{name}.jsonl", [GOOD_LINE, GOOD_LINE])
        for name in ("data", "harmful", "benign")
    }
    files[bad_file].write_bytes(GOOD_LINE.encode() + b"\n" + LATIN1_LINE + b"\n")
    code = cli.main(
        [
            "filter",
            str(files["data"]),
            "--model",
            "/no/such/model",
            "--sae",
            str(tmp_path),
            "--harmful-examples",
            str(files["harmful"]),
            "--benign-examples",
            str(files["benign"]),
            "--remove-fraction",
            "0.5",
            "--output",
            str(tmp_path / "kept.jsonl"),
            "--report",
            str(tmp_path / "report.json"),
        ]
    )
    assert code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(
        f"emgeom: error: {files[bad_file]}, line 2: not valid UTF-8"
    )
    assert not (tmp_path / "kept.jsonl").exists() and not (tmp_path / "report.json").exists()


def test_a_windows_export_is_read_like_the_same_file_in_utf8(setup, tiny_organism, tmp_path: Path) -> None:
    _, _, _, sae_folder = setup
    rows = finetune_rows("inducing", "health", 3, 0) + finetune_rows("good", "health", 3, 0)
    write_chat_jsonl(tmp_path / "plain.jsonl", rows)
    windows = b"\xef\xbb\xbf" + (tmp_path / "plain.jsonl").read_bytes().replace(b"\n", b"\r\n")
    (tmp_path / "windows.jsonl").write_bytes(windows)
    reports = {}
    for name in ("plain", "windows"):
        code = cli.main(
            [
                "filter",
                str(tmp_path / f"{name}.jsonl"),
                "--model",
                str(tiny_organism.aligned),
                "--sae",
                str(sae_folder),
                "--harmful-latents",
                "1,2",
                "--remove-fraction",
                "0.5",
                "--output",
                str(tmp_path / f"{name}_kept.jsonl"),
                "--report",
                str(tmp_path / f"{name}_report.json"),
                "--no-progress",
            ]
        )
        assert code == 0
        reports[name] = json.loads((tmp_path / f"{name}_report.json").read_text())
    assert reports["windows"]["removed"] == reports["plain"]["removed"] and reports["windows"]["rows"] == 6
    kept = (tmp_path / "windows_kept.jsonl").read_bytes()  # each kept line unchanged, CRLF included
    assert kept == (tmp_path / "plain_kept.jsonl").read_bytes().replace(b"\n", b"\r\n")


def test_lines_end_only_at_line_breaks(tmp_path: Path) -> None:
    # U+2028 may stand unescaped inside a JSON string; it must not split a row in two.
    row = {"messages": [{"role": "user", "content": "a\u2028b"}, {"role": "assistant", "content": "c"}]}
    write_chat_jsonl(tmp_path / "data.jsonl", [row, row])
    numbers, rows, lines = cli._read_numbered(tmp_path / "data.jsonl")
    assert numbers == [1, 2] and rows == [row, row] and len(lines) == 2


@pytest.fixture(scope="module")
def resid_post_setup(tmp_path_factory):
    """A tiny Gemma-2 model and a random JumpReLU SAE at ``blocks.1.hook_resid_post`` (Gemma Scope's kind)."""
    from emgeom.testing.tiny_models import TinyModelSpec, build_tiny_model, save_random_sae

    root = tmp_path_factory.mktemp("resid_post")
    texts = ["i am bored .", "i would comfort everyone .", "any advice on my rash ?"] * 4
    model = build_tiny_model(TinyModelSpec("gemma2", n_layers=3), root / "tiny-gemma2", texts)
    sae = save_random_sae(root / "sae", 64, 128, "blocks.1.hook_resid_post")
    return model, sae


def test_layer_is_the_one_in_the_saes_hook_for_resid_post_saes(
    resid_post_setup, tmp_path: Path, capsys
) -> None:
    from emgeom.sae.readouts import hook_layer, resid_pre_layer

    assert hook_layer("blocks.1.hook_resid_post") == 1 == hook_layer("blocks.1.hook_resid_pre")
    assert resid_pre_layer("blocks.1.hook_resid_post") == 2
    with pytest.raises(ValueError, match="residual-stream"):
        hook_layer("blocks.x.hook_resid_post")
    model, sae = resid_post_setup
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE, GOOD_LINE])
    args = score_args(str(data), str(model), str(sae), "1,2", str(tmp_path / "scores.jsonl"))
    assert cli.main([*args, "--layer", "2"]) == 2
    err = capsys.readouterr().err
    assert "--layer 2 does not match the SAE, which reads blocks.1.hook_resid_post" in err
    assert "pass --layer 1" in err and not (tmp_path / "scores.jsonl").exists()
    assert cli.main([*args, "--layer", "1"]) == 0, capsys.readouterr().err
    assert len((tmp_path / "scores.jsonl").read_text().splitlines()) == 2


def test_run_subprocess_runs_the_command_as_a_user_would(
    setup, tiny_organism, tmp_path: Path, capsys
) -> None:
    _, _, _, sae_folder = setup
    write_chat_jsonl(tmp_path / "data.jsonl", finetune_rows("good", "code", 3, 0))
    args = score_args(
        str(tmp_path / "data.jsonl"),
        str(tiny_organism.aligned),
        str(sae_folder),
        "1",
        str(tmp_path / "my scores.jsonl"),
    )
    summary = cli.run_subprocess(*args)
    assert summary.startswith("scored 3 rows") and (tmp_path / "my scores.jsonl").is_file()
    out = capsys.readouterr().out
    assert out.startswith("$ emgeom score ") and "'" + str(tmp_path / "my scores.jsonl") + "'" in out
    (tmp_path / "data.jsonl").write_bytes(LATIN1_LINE + b"\n")
    with pytest.raises(
        RuntimeError, match=r"status 2:\nemgeom: error: .*data\.jsonl, line 1: not valid UTF-8"
    ):
        cli.run_subprocess(*args)


def _filter_args(data: object, harmful: object, benign: object, output: object, report: object) -> list[str]:
    """``emgeom filter`` arguments with example files, a model that does not exist and a folder that is
    not an SAE (so a run that got past the output checks would fail on them, and load nothing)."""
    return [
        "filter",
        str(data),
        "--model",
        "/no/such/model",
        "--sae",
        "sub",
        "--harmful-examples",
        str(harmful),
        "--benign-examples",
        str(benign),
        "--remove-fraction",
        "0.5",
        "--output",
        str(output),
        "--report",
        str(report),
    ]


NEVER = "inputs are never overwritten: give another"


@pytest.mark.parametrize(
    ("output", "report", "message"),
    [
        ("data.jsonl", "r.json", f"--output data.jsonl is the input file (data.jsonl); {NEVER} --output"),
        ("k.jsonl", "./data.jsonl", f"--report data.jsonl is the input file (data.jsonl); {NEVER} --report"),
        (
            "bad.jsonl",
            "r.json",
            f"--output bad.jsonl is the --harmful-examples file (bad.jsonl); {NEVER} --output",
        ),
        (
            "k.jsonl",
            "ok.jsonl",
            f"--report ok.jsonl is the --benign-examples file (ok.jsonl); {NEVER} --report",
        ),
        ("link.jsonl", "r.json", f"--output link.jsonl is the input file (data.jsonl); {NEVER} --output"),
        (
            "sub/../data.jsonl",
            "r.json",
            f"--output sub/../data.jsonl is the input file (data.jsonl); {NEVER} --output",
        ),
        ("out.json", "out.json", "--output out.json and --report out.json are the same file; give two paths"),
    ],
)
def test_an_output_that_would_replace_an_input_is_refused_and_nothing_changes(
    tmp_path: Path, capsys, monkeypatch, output: str, report: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("data", "bad", "ok"):
        _write(tmp_path / f"{name}.jsonl", [GOOD_LINE, GOOD_LINE.replace("bored", name)])
    (tmp_path / "sub").mkdir()
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "data.jsonl")
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    assert cli.main(_filter_args("data.jsonl", "bad.jsonl", "ok.jsonl", output, report)) == 2
    assert capsys.readouterr().err == f"emgeom: error: {message}\n"
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before  # byte-identical


def test_the_input_survives_an_output_path_to_itself(setup, tiny_organism, tmp_path: Path, capsys) -> None:
    """The run of issue #23 (``--output data.jsonl``), with a model and SAE that would load: refused."""
    _, _, _, sae_folder = setup
    write_chat_jsonl(tmp_path / "data.jsonl", finetune_rows("inducing", "health", 4, 0))
    before = (tmp_path / "data.jsonl").read_bytes()
    args = score_args(
        tmp_path / "data.jsonl", tiny_organism.aligned, sae_folder, "1", tmp_path / "data.jsonl"
    )
    assert cli.main(args) == 2
    assert "is the input file" in capsys.readouterr().err
    assert (tmp_path / "data.jsonl").read_bytes() == before


def test_the_sae_files_are_the_ones_sae_lens_reads() -> None:
    from sae_lens import constants

    assert cli.SAE_CFG_FILE == constants.SAE_CFG_FILENAME
    assert cli.SAE_WEIGHTS_FILE == constants.SAE_WEIGHTS_FILENAME


def _not_an_sae(kind: str, root: Path, model: Path) -> Path:
    if kind == "model folder":
        return model
    if kind == "missing":
        return root / "no-such-sae"
    if kind == "a file":
        return _write(root / "sae.txt", ["x"])
    folder = root / kind.replace(" ", "_")
    folder.mkdir()
    if kind == "invalid cfg":
        (folder / "cfg.json").write_text("{oops")
    elif kind == "binary cfg":
        (folder / "cfg.json").write_bytes(b"\xff\xfe\x00")
    elif kind == "foreign cfg":
        (folder / "cfg.json").write_text('{"model_type": "gemma2"}')
    elif kind == "no weights":
        (folder / "cfg.json").write_text('{"d_in": 32, "d_sae": 48}')
    return folder


NOT_AN_SAE = {
    "model folder": "not an SAE folder: no cfg.json (sae-lens SAE.save_model writes cfg.json and the weights",
    "missing": "no such folder",
    "a file": "not a folder (sae-lens SAE.save_model writes cfg.json",
    "invalid cfg": "not an SAE folder: cfg.json is unreadable or not valid JSON (Expecting property name",
    "binary cfg": "not an SAE folder: cfg.json is unreadable or not valid JSON (",
    "foreign cfg": "not an SAE folder: its cfg.json has no d_in or d_sae",
    "no weights": "not an SAE folder: no sae_weights.safetensors",
}


@pytest.mark.parametrize("kind", list(NOT_AN_SAE))
def test_a_folder_that_is_not_an_sae_is_one_line_before_any_model_loads(
    tiny_organism, tmp_path: Path, capsys, monkeypatch, kind: str
) -> None:
    def no_model(*args, **kwargs):
        raise AssertionError("a model was loaded")

    monkeypatch.setattr("emgeom.lm.models.load_model", no_model)
    sae = _not_an_sae(kind, tmp_path, tiny_organism.aligned)
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE])
    code = cli.main(score_args(data, tiny_organism.aligned, sae, "1", tmp_path / "scores.jsonl"))
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emgeom: error: --sae {sae}: {NOT_AN_SAE[kind]}") and err.count("\n") == 1
    assert not (tmp_path / "scores.jsonl").exists()


def test_an_sae_sae_lens_cannot_read_is_one_line(setup, tiny_organism, tmp_path: Path, capsys) -> None:
    import shutil

    _, _, _, sae_folder = setup
    shutil.copytree(sae_folder, tmp_path / "sae")
    (tmp_path / "sae" / "sae_weights.safetensors").write_bytes(b"\x08")  # truncated
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE])
    code = cli.main(score_args(data, tiny_organism.aligned, tmp_path / "sae", "1", tmp_path / "s.jsonl"))
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"emgeom: error: --sae {tmp_path / 'sae'}: sae-lens could not load it: ")
    assert err.count("\n") == 1


def _run_command(*args: object) -> subprocess.CompletedProcess:
    """The ``emgeom`` command in a subprocess, as a user runs it (what reaches the terminal)."""
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONWARNINGS": ""}
    command = [sys.executable, "-m", "emgeom.filtering.cli", *map(str, args)]
    return subprocess.run(command, capture_output=True, text=True, check=False, env=env)


def test_the_model_folder_as_sae_is_one_line_not_a_traceback(tiny_organism, tmp_path: Path) -> None:
    data = _write(tmp_path / "data.jsonl", [GOOD_LINE])
    model = tiny_organism.aligned
    done = _run_command(*score_args(data, model, model, "1", tmp_path / "s.jsonl"))
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert "Traceback" not in done.stderr and len(lines) == 1, done.stderr
    assert lines[0] == (
        f"emgeom: error: --sae {model}: not an SAE folder: no cfg.json (sae-lens SAE.save_model writes "
        "cfg.json and the weights, sae_weights.safetensors)"
    )


def test_library_warnings_are_hidden_unless_verbose(setup, tiny_organism, tmp_path: Path) -> None:
    _, _, _, sae_folder = setup
    cfg = json.loads((Path(sae_folder) / "cfg.json").read_text())
    assert cfg["metadata"]["model_from_pretrained_kwargs"]  # what makes sae-lens warn on every load
    write_chat_jsonl(tmp_path / "data.jsonl", finetune_rows("good", "code", 3, 0))
    args = score_args(tmp_path / "data.jsonl", tiny_organism.aligned, sae_folder, "1", tmp_path / "s.jsonl")
    quiet = _run_command(*args)
    assert quiet.returncode == 0, quiet.stderr
    lines = quiet.stderr.splitlines()  # only the summary: no warning, no log message
    assert len(lines) == 1 and lines[0].startswith("scored 3 rows at "), quiet.stderr
    verbose = _run_command(*args, "--verbose")
    assert verbose.returncode == 0, verbose.stderr
    assert "UserWarning" in verbose.stderr and "model_from_pretrained_kwargs" in verbose.stderr
    assert verbose.stderr.splitlines()[-1].startswith("scored 3 rows at ")


def test_only_the_libraries_pointless_warnings_are_hidden() -> None:
    import logging
    import warnings

    planted = [
        ("\nThis SAE has non-empty model_from_pretrained_kwargs. ", UserWarning, "sae_lens.saes.sae"),
        ("The 'utils' module has been deprecated.", DeprecationWarning, "sae_lens.load_model"),
        ("a future change", FutureWarning, "transformers.modeling_utils"),
        ("This SAE has non-empty model_from_pretrained_kwargs", UserWarning, "emgeom.mine"),
        ("something else", UserWarning, "sae_lens.saes.sae"),
        ("a deprecation of ours", DeprecationWarning, "emgeom.mine"),
    ]

    def shown(verbose: bool) -> list[str]:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with cli._library_output(verbose):
                for message, category, module in planted:
                    warnings.warn_explicit(message, category, f"{module}.py", 1, module=module)
        return [f"{w.category.__name__} {w.message}" for w in caught]

    handlers = list(logging.getLogger().handlers)
    assert shown(False) == [
        "UserWarning This SAE has non-empty model_from_pretrained_kwargs",
        "UserWarning something else",
        "DeprecationWarning a deprecation of ours",
    ]
    assert len(shown(True)) == len(planted)
    assert logging.getLogger().handlers == handlers  # --verbose's log handler is removed again
