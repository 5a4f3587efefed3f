"""Command line of the chapter runner: ``python -m emgeom.book {run,check,list}``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from emgeom.book.chapters import load_book_profile, read_all_specs, read_variant_specs
from emgeom.book.layout import BookLayout
from emgeom.book.lock import RunnerBusy
from emgeom.book.parameters import ParameterError
from emgeom.book.preflight import PreflightError
from emgeom.book.runner import ChapterFailed, run_book
from emgeom.core.results import DeclarationError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m emgeom.book",
        description="Execute the book's chapters under a run profile (ci/profiles/<name>.yaml).",
    )
    parser.add_argument("--root", type=Path, default=None, help="book checkout (default: found from cwd)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="validate the profile, then execute chapters whose inputs changed")
    run.add_argument("--profile", default="cpu", help="profile name (default: cpu)")
    run.add_argument("--only", nargs="+", metavar="CHAPTER", help="execute only these chapters")
    run.add_argument("--force", action="store_true", help="execute even when the cache key matches")
    run.add_argument("--no-progress", action="store_true", help="hide papermill's cell progress bar")
    run.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="chapters executed at once, each in its own process with the profile's threads (default: 1)",
    )
    run.add_argument(
        "--no-wait",
        action="store_true",
        help="if another runner holds this checkout, refuse at once instead of waiting for it",
    )
    check = sub.add_parser("check", help="validate a profile against every chapter; execute nothing")
    check.add_argument("--profile", default="cpu")
    sub.add_parser("list", help="list chapters and their parameters")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        layout = BookLayout.find(args.root)
        if args.command == "list":
            variants = read_variant_specs(layout)
            for chapter, specs in read_all_specs(layout).items():
                print(chapter)
                for spec in specs.values():
                    print(f"    {spec.name}: {spec.type} = {spec.default!r}")
                for variant, vspecs in variants.get(chapter, {}).items():
                    print(f"  variant {variant} (notebooks/{variant}/{chapter}.py)")
                    for spec in vspecs.values():
                        print(f"    {spec.name}: {spec.type} = {spec.default!r}")
            return 0
        if args.command == "check":
            load_book_profile(layout, args.profile)
            print(f"profile {args.profile!r} is valid for every chapter")
            return 0
        runs = run_book(
            layout,
            args.profile,
            only=args.only,
            force=args.force,
            progress=not args.no_progress,
            jobs=args.jobs,
            wait=not args.no_wait,
        )
    except (ParameterError, PreflightError, DeclarationError, FileNotFoundError, RunnerBusy) as err:
        print(f"emgeom.book: error: {err}", file=sys.stderr)
        return 2
    except ChapterFailed as err:
        print(f"emgeom.book: {err}", file=sys.stderr)
        return 1
    executed = sum(r.this_run == "executed" for r in runs)
    print(
        f"[emgeom.book] done: {executed} executed, {sum(r.this_run == 'cached' for r in runs)} cached; "
        f"report at {layout.report_path}"
    )
    return 0
