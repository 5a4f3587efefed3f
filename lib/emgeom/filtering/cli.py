"""``emgeom``: score and filter chat fine-tuning data by closeness to harmful SAE features.

    emgeom score  data.jsonl --model M --sae S --harmful-latents 3,17,40 --output scores.jsonl
    emgeom filter data.jsonl --model M --sae S --harmful-examples bad.jsonl --benign-examples ok.jsonl \\
                  --remove-fraction 0.3 --output kept.jsonl --report report.json

Input is OpenAI chat JSONL (``{"messages": [...]}`` per line, the format of every EM dataset). Every
input problem is reported with its line before any model is loaded; outputs are written atomically, so
an error or Ctrl-C leaves no partial file, and an ``--output`` or ``--report`` that is one of the input
files is refused, so the inputs are never overwritten. Library warnings the user cannot act on are
hidden unless ``--verbose``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import re
import sys
import warnings
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from emgeom.core.io import atomic_write_json, atomic_write_text
from emgeom.filtering.scoring import SCORE_METHODS, removal_mask, score_rows
from emgeom.lm.chat import ChatDataError, ChatRow, parse_chat_lines, read_text_lines

EXIT_USAGE = 2

# What ``sae_lens.SAE.load_from_disk`` (sae-lens 6.54: ``sae_lens_disk_loader``) reads from a folder; the
# names of ``sae_lens.constants.SAE_CFG_FILENAME`` and ``SAE_WEIGHTS_FILENAME`` (a test checks they agree),
# spelled out here so that checking a folder does not import sae-lens.
SAE_CFG_FILE = "cfg.json"
SAE_WEIGHTS_FILE = "sae_weights.safetensors"
SAE_FOLDER_HINT = f"sae-lens SAE.save_model writes {SAE_CFG_FILE} and the weights, {SAE_WEIGHTS_FILE}"


class CLIError(Exception):
    """A problem with the command's input, reported as ``emgeom: error: ...`` with exit status 2."""


def _add_common(p: argparse.ArgumentParser) -> None:
    p.add_argument("input", type=Path, help='chat JSONL to score: one {"messages": [...]} object per line')
    p.add_argument("--model", required=True, help="a local model folder or a Hugging Face hub id")
    sae = p.add_argument_group("SAE (one of)")
    sae.add_argument("--sae", type=Path, help="a local SAE folder (sae-lens save_model format)")
    sae.add_argument("--sae-release", help="a sae-lens release, e.g. gemma-scope-2b-pt-res-canonical")
    sae.add_argument("--sae-id", help="the SAE id within --sae-release, e.g. layer_12/width_16k/canonical")
    harm = p.add_argument_group("harmful features (one of)")
    harm.add_argument("--harmful-latents", help="comma-separated latent indices, e.g. 3,17,40")
    harm.add_argument(
        "--harmful-examples",
        type=Path,
        help="chat JSONL of harmful answers; with --benign-examples, the harmful latents are the "
        "top --k-harmful by mean activation on these minus the benign ones",
    )
    harm.add_argument(
        "--benign-examples", type=Path, help="chat JSONL of benign answers (see --harmful-examples)"
    )
    harm.add_argument(
        "--k-harmful", type=int, default=10, help="harmful latents to select from examples (default 10)"
    )
    p.add_argument(
        "--layer",
        type=int,
        help="the layer the SAE must read: L of its hook point blocks.L.hook_resid_pre or "
        "blocks.L.hook_resid_post (for Gemma Scope, the layer_L of --sae-id); checked against the "
        "SAE's own hook point before scoring (default: the SAE's)",
    )
    p.add_argument(
        "--method",
        choices=SCORE_METHODS,
        default="harmful_mass",
        help="score definition (default harmful_mass; see emgeom.filtering.scoring)",
    )
    p.add_argument("--batch-size", type=int, default=32, help="samples per forward pass (default 32)")
    p.add_argument("--device", default="cpu", help="torch device (default cpu)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--verbose",
        action="store_true",
        help="also show the libraries' warnings and their log messages from INFO up (sae-lens, "
        "TransformerLens); by default the library warnings a user cannot act on are hidden",
    )


DESCRIPTION = "Score and filter chat fine-tuning data by closeness to harmful SAE features."
EXAMPLES = """examples:
  emgeom score  data.jsonl --model M --sae S --harmful-latents 3,17,40 --output scores.jsonl
  emgeom filter data.jsonl --model M --sae S --harmful-examples bad.jsonl --benign-examples ok.jsonl \\
                --remove-fraction 0.3 --output kept.jsonl --report report.json

Input: OpenAI chat JSONL, one {"messages": [...]} object per line. Errors name the line and stop before
any model is loaded; outputs are written atomically (nothing is written on an error or Ctrl-C), and an
--output or --report that is the input or an example file is refused: inputs are never overwritten."""


def build_parser() -> argparse.ArgumentParser:
    """The ``emgeom`` argument parser (every option has a help text)."""
    parser = argparse.ArgumentParser(
        prog="emgeom",
        description=DESCRIPTION,
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True)
    common = {"epilog": EXAMPLES, "formatter_class": argparse.RawDescriptionHelpFormatter}
    score = sub.add_parser(
        "score",
        help="write one score per input row, keyed by line number",
        description="Write one score per input row, keyed by its line number.",
        **common,
    )
    _add_common(score)
    score.add_argument("--output", type=Path, required=True, help='JSONL of {"line": n, "score": x}')
    filt = sub.add_parser(
        "filter",
        help="remove the rows closest to the harmful features",
        description="Remove the rows whose answers are closest to the harmful features.",
        **common,
    )
    _add_common(filt)
    filt.add_argument(
        "--remove-fraction",
        type=float,
        required=True,
        help="fraction of rows to remove, highest scores first (0-1)",
    )
    filt.add_argument("--output", type=Path, required=True, help="the kept rows, each line unchanged")
    filt.add_argument(
        "--report",
        type=Path,
        required=True,
        help="JSON report: what was dropped (line, score), counts, throughput",
    )
    return parser


def _read_numbered(path: Path) -> tuple[list[int], list[ChatRow], list[str]]:
    """Line numbers, parsed rows and raw lines (for writing kept rows unchanged)."""
    try:
        raw = read_text_lines(path)  # invalid UTF-8 names its line; a leading byte-order mark is dropped
        rows = parse_chat_lines(raw, source=str(path))
    except ChatDataError as err:
        raise CLIError(str(err)) from None
    numbers, lines = [], []
    for n, line in enumerate(raw, start=1):
        if line.strip():
            numbers.append(n)
            lines.append(line if line.endswith("\n") else line + "\n")
    return numbers, rows, lines


def _check_args(args: argparse.Namespace) -> None:
    if bool(args.sae) == bool(args.sae_release or args.sae_id):
        raise CLIError("give either --sae FOLDER or --sae-release with --sae-id")
    if (args.sae_release and not args.sae_id) or (args.sae_id and not args.sae_release):
        raise CLIError("--sae-release and --sae-id go together")
    if args.sae and not args.sae.exists():
        raise CLIError(f"--sae {args.sae}: no such folder")
    if args.sae and not args.sae.is_dir():
        raise CLIError(f"--sae {args.sae}: not a folder ({SAE_FOLDER_HINT})")
    if bool(args.harmful_latents) == bool(args.harmful_examples or args.benign_examples):
        raise CLIError("give either --harmful-latents or --harmful-examples with --benign-examples")
    if (args.harmful_examples and not args.benign_examples) or (
        args.benign_examples and not args.harmful_examples
    ):
        raise CLIError("--harmful-examples and --benign-examples go together")
    if args.harmful_latents:
        try:
            args.harmful_latents = [int(x) for x in args.harmful_latents.split(",") if x.strip()]
        except ValueError:
            raise CLIError(
                f"--harmful-latents must be comma-separated integers, got {args.harmful_latents!r}"
            ) from None
    if args.batch_size < 1 or args.k_harmful < 1:
        raise CLIError("--batch-size and --k-harmful must be at least 1")
    fraction = getattr(args, "remove_fraction", None)  # only `filter` has it
    if fraction is not None and not 0.0 <= fraction <= 1.0:
        raise CLIError(f"--remove-fraction must be between 0 and 1, got {args.remove_fraction}")
    for out in (args.output, getattr(args, "report", None)):
        if out is not None and not out.parent.resolve().is_dir():
            raise CLIError(f"{out}: the folder {out.parent} does not exist")
    _check_no_overwrite(args)


def _same_file(a: Path, b: Path) -> bool:
    """Whether ``a`` and ``b`` name one file: the same path once links, ``.`` and ``..`` are resolved,
    or (for a hard link, or a case-insensitive file system) the same existing file."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist yet
        return False


def _check_no_overwrite(args: argparse.Namespace) -> None:
    """Refuse an ``--output`` or ``--report`` that would replace the input or an example file, and an
    ``--output`` that is also the ``--report`` (the second write would replace the first)."""
    inputs = [
        ("the input file", args.input),
        ("the --harmful-examples file", args.harmful_examples),
        ("the --benign-examples file", args.benign_examples),
    ]
    outputs = [("--output", args.output), ("--report", getattr(args, "report", None))]
    for flag, out in outputs:
        for what, path in inputs:
            if out is not None and path is not None and _same_file(out, path):
                raise CLIError(
                    f"{flag} {out} is {what} ({path}); inputs are never overwritten: give another {flag}"
                )
    report = getattr(args, "report", None)
    if report is not None and _same_file(args.output, report):
        raise CLIError(f"--output {args.output} and --report {report} are the same file; give two paths")


def _check_sae_folder(folder: Path) -> None:
    """Refuse a folder ``SAE.load_from_disk`` cannot read (no or invalid ``cfg.json``, no weights) in one
    line naming it, before any model loads. Cheap: reads only ``cfg.json``."""
    cfg_file = folder / SAE_CFG_FILE
    if not cfg_file.is_file():
        raise CLIError(f"--sae {folder}: not an SAE folder: no {SAE_CFG_FILE} ({SAE_FOLDER_HINT})")
    try:
        cfg = json.loads(cfg_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as err:
        raise CLIError(
            f"--sae {folder}: not an SAE folder: {SAE_CFG_FILE} is unreadable or not valid JSON "
            f"({_one_line(err)})"
        ) from None
    missing = [k for k in ("d_in", "d_sae") if not isinstance(cfg, dict) or k not in cfg]
    if missing:
        raise CLIError(
            f"--sae {folder}: not an SAE folder: its {SAE_CFG_FILE} has no {' or '.join(missing)} "
            f"(not an sae-lens SAE config; {SAE_FOLDER_HINT})"
        )
    if not (folder / SAE_WEIGHTS_FILE).is_file():
        raise CLIError(f"--sae {folder}: not an SAE folder: no {SAE_WEIGHTS_FILE} ({SAE_FOLDER_HINT})")


def _one_line(err: BaseException) -> str:
    return re.sub(r"\s*\n\s*", " ", str(err)).strip()


# Python warnings from the libraries that say nothing a user of the command can act on: API deprecations
# inside sae-lens / TransformerLens / transformers, and sae-lens's advice to load the model with the SAE's
# ``model_from_pretrained_kwargs`` (the command builds the model unprocessed itself, as published SAEs
# were trained on). Anything else is still shown.
_LIBRARIES = r"(sae_lens|transformer_lens|transformers)(\.|$)"
_HIDDEN_WARNINGS: list[tuple[str, type[Warning], str]] = [
    (r"\s*This SAE has non-empty model_from_pretrained_kwargs", UserWarning, r"sae_lens(\.|$)"),
    ("", DeprecationWarning, _LIBRARIES),
    ("", FutureWarning, _LIBRARIES),
]


@contextlib.contextmanager
def _library_output(verbose: bool) -> Iterator[None]:
    """Hide :data:`_HIDDEN_WARNINGS` while models load and score; with ``verbose``, show every warning
    (once per place, deprecations included) and log messages from INFO up (TransformerLens logs to the
    root logger; sae-lens propagates to it; transformers keeps its own handler at its own level).
    Restores the warning filters and the logging set-up afterwards (``main`` may run inside another
    program, e.g. the tests)."""
    with warnings.catch_warnings():
        if not verbose:
            for message, category, module in _HIDDEN_WARNINGS:
                warnings.filterwarnings("ignore", message=message, category=category, module=module)
            yield
            return
        warnings.simplefilter("default")
        root = logging.getLogger()
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        level = root.level
        root.addHandler(handler)
        root.setLevel(logging.INFO)
        try:
            yield
        finally:
            root.setLevel(level)
            root.removeHandler(handler)


def _load(args: argparse.Namespace) -> tuple[Any, Any, Any, str]:
    from emgeom.lm.models import ModelUnavailableError, hooked_transformer, load_model
    from emgeom.sae.load import SAEMismatchError, SAEUnavailableError, check_sae_fits, load_published_sae

    try:
        model, tokenizer = load_model(args.model, device=args.device)
        hooked = hooked_transformer(model, tokenizer, args.model)
        if args.sae:
            sae, sae_name = _load_sae_folder(args.sae, args.device), str(args.sae)
        else:
            sae, sae_name = (
                load_published_sae(args.sae_release, args.sae_id, device=args.device),
                f"{args.sae_release}/{args.sae_id}",
            )
        check_sae_fits(sae, hooked)
        if args.layer is not None:
            _check_layer(args.layer, sae.cfg.metadata.hook_name)
    except (ModelUnavailableError, SAEUnavailableError, SAEMismatchError) as err:
        raise CLIError(str(err)) from None
    return hooked, tokenizer, sae, sae_name


def _load_sae_folder(folder: Path, device: str) -> Any:
    """``SAE.load_from_disk(folder)``; a folder that passed :func:`_check_sae_folder` but still cannot be
    read (a truncated weights file, a config of an unknown architecture) is one line naming it."""
    from sae_lens import SAE

    try:
        return SAE.load_from_disk(str(folder), device=device)
    except Exception as err:  # whatever sae-lens raises, the folder is the problem
        raise CLIError(
            f"--sae {folder}: sae-lens could not load it: {type(err).__name__}: {_one_line(err)}"
        ) from None


def _check_layer(layer: int, hook_name: str) -> None:
    """Refuse an SAE that does not read ``--layer``: its hook point must be ``blocks.<layer>.hook_resid_pre``
    or ``blocks.<layer>.hook_resid_post``."""
    from emgeom.sae.load import SAEMismatchError
    from emgeom.sae.readouts import hook_layer

    try:
        sae_layer = hook_layer(hook_name)
    except ValueError as err:
        raise SAEMismatchError(f"--layer {layer}: {err}") from None
    if sae_layer != layer:
        raise SAEMismatchError(
            f"--layer {layer} does not match the SAE, which reads {hook_name} (layer {sae_layer}); "
            f"pass --layer {sae_layer}, or an SAE of layer {layer}"
        )


def _harmful(args: argparse.Namespace, hooked: Any, tokenizer: Any, sae: Any) -> list[int]:
    if args.harmful_latents:
        bad = [i for i in args.harmful_latents if not 0 <= i < int(sae.cfg.d_sae)]
        if bad:
            raise CLIError(
                f"--harmful-latents {bad} out of range for an SAE with {int(sae.cfg.d_sae)} latents"
            )
        return list(args.harmful_latents)
    from emgeom.sae.geometry import harmful_latents

    return [
        int(i)
        for i in harmful_latents(
            hooked, sae, tokenizer, args._harmful_rows, args._benign_rows, args.k_harmful
        )
    ]


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _check_args(args)
    numbers, rows, lines = _read_numbered(args.input)
    if args.harmful_examples:
        args._harmful_rows = _read_numbered(args.harmful_examples)[1]
        args._benign_rows = _read_numbered(args.benign_examples)[1]
    if args.sae:
        _check_sae_folder(args.sae)
    with _library_output(args.verbose):
        hooked, tokenizer, sae, sae_name = _load(args)
        harmful = _harmful(args, hooked, tokenizer, sae)
        result = score_rows(
            hooked,
            sae,
            tokenizer,
            rows,
            harmful,
            args.method,
            batch_size=args.batch_size,
            progress=not args.no_progress,
        )
    scores = [None if s != s else float(s) for s in result.scores]  # NaN -> null
    if args.command == "score":
        atomic_write_text(
            args.output,
            "".join(json.dumps({"line": n, "score": s}) + "\n" for n, s in zip(numbers, scores, strict=True)),
        )
        print(
            f"scored {len(rows)} rows at {result.samples_per_second:.1f} samples/s -> {args.output}",
            file=sys.stderr,
        )
        return 0
    remove = removal_mask(result.scores, args.remove_fraction)
    atomic_write_text(args.output, "".join(line for line, r in zip(lines, remove, strict=True) if not r))
    report = {
        "input": str(args.input),
        "model": args.model,
        "sae": sae_name,
        "method": args.method,
        "harmful_latents": harmful,
        "rows": len(rows),
        "removed_count": int(remove.sum()),
        "kept_count": int((~remove).sum()),
        "remove_fraction": args.remove_fraction,
        "unscored_lines": [n for n, s in zip(numbers, scores, strict=True) if s is None],
        "removed": [{"line": n, "score": s} for n, s, r in zip(numbers, scores, remove, strict=True) if r],
        "samples_per_second": result.samples_per_second,
        "scoring_seconds": result.seconds,
    }
    atomic_write_json(args.report, report)
    print(
        f"kept {report['kept_count']} of {len(rows)} rows -> {args.output}; report -> {args.report} "
        f"({result.samples_per_second:.1f} samples/s)",
        file=sys.stderr,
    )
    return 0


def run_subprocess(*args: str) -> str:
    """Run the ``emgeom`` command with ``args`` in a subprocess, as a user would (the book's "Apply it to
    your data" page does): print the command line and the command's summary line, and return that line;
    raise :class:`RuntimeError` with the command's error output if it fails.

    It runs ``python -m emgeom.filtering.cli`` with this interpreter: the code the installed ``emgeom``
    script runs, found wherever that script was installed (or if it was not)."""
    import shlex
    import subprocess

    command = [sys.executable, "-m", "emgeom.filtering.cli", *args]
    print("$ emgeom " + " ".join(shlex.quote(a) for a in args))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"emgeom exited with status {done.returncode}:\n{done.stderr}")
    summary = done.stderr.strip().splitlines()[-1] if done.stderr.strip() else ""
    print(summary)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return run(argv)
    except CLIError as err:
        print(f"emgeom: error: {err}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("emgeom: interrupted; no output was written", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
