"""Execute the book's chapters under a profile, with papermill, skipping those whose inputs are unchanged.

A chapter's cache key hashes its jupytext source, every ``lib/emgeom`` source file, its parameters, the
profile name and ``requirements.lock`` (``jupyter-cache`` would miss changes in ``lib/``, hence this).
Papermill cannot read jupytext ``.py`` files, so the runner reads them with jupytext and hands papermill
the notebook object.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import jupytext
import nbformat

from emgeom.book.chapters import (
    chapter_declarations,
    chapter_key,
    full_parameters,
    load_book_profile,
    read_all_specs,
)
from emgeom.book.layout import BookLayout, ProfileBuild
from emgeom.book.lock import runner_lock
from emgeom.book.parameters import ParameterError
from emgeom.book.profiles import Profile
from emgeom.book.reports import ChapterRun, StageRun, render_profile, write_report
from emgeom.core import results as results_mod
from emgeom.core.artifacts import ENV_ARTIFACTS_DIR
from emgeom.core.io import atomic_write_json, atomic_write_text, utc_timestamp
from emgeom.core.results import load_declarations

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
INJECTED_TAG = "injected-parameters"
REMOVE_TAG = "remove-cell"


class ChapterFailed(RuntimeError):
    """A chapter raised during execution; names the chapter, the failing cell and the partial notebook."""


def kernel_environment(layout: BookLayout, profile: Profile, chapter: str) -> dict[str, str]:
    """Variables every chapter kernel runs with: offline hubs, thread count, where to record results."""
    threads = str(profile.threads)
    return {
        "HF_HUB_OFFLINE": os.environ.get("HF_HUB_OFFLINE", "1"),
        "TRANSFORMERS_OFFLINE": os.environ.get("TRANSFORMERS_OFFLINE", "1"),
        "OMP_NUM_THREADS": threads,
        "MKL_NUM_THREADS": threads,
        "EMGEOM_THREADS": threads,
        # Shared cores and OpenMP spin-waiting made 2 threads 8-9x slower than 1 here.
        "OMP_WAIT_POLICY": "PASSIVE",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "EMGEOM_BOOK_ROOT": str(layout.root),
        ENV_ARTIFACTS_DIR: str(layout.artifacts_dir),
        results_mod.ENV_CHAPTER: chapter,
        results_mod.ENV_PROFILE: profile.name,
        results_mod.ENV_RESULTS_FILE: str(layout.profile_build(profile.name).staging_dir / f"{chapter}.json"),
        results_mod.ENV_DECLARATIONS: str(layout.results_declaration(chapter, profile.variants.get(chapter))),
    }


@contextlib.contextmanager
def _patched_environ(values: dict[str, str]) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def _load_state(build: ProfileBuild, chapter: str) -> ChapterRun | None:
    path = build.runs_dir / f"{chapter}.json"
    if not path.exists():
        return None
    try:
        return ChapterRun(**json.loads(path.read_text()))
    except (json.JSONDecodeError, TypeError):
        return None  # an unreadable state is a cache miss, never a crash


def _is_cached(build: ProfileBuild, chapter: str, key: str) -> ChapterRun | None:
    state = _load_state(build, chapter)
    if (
        state is not None
        and state.status == "ok"
        and state.key == key
        and build.executed_notebook(chapter).exists()
        and (build.results_dir / f"{chapter}.json").exists()
    ):
        return state
    return None


def _finish_notebook(path: Path, profile: Profile, overrides: dict[str, Any]) -> nbformat.NotebookNode:
    """Hide the injected-parameters cell in the book and say, visibly, what this page was run with."""
    nb = nbformat.read(path, as_version=4)
    anchor = None
    for i, cell in enumerate(nb.cells):
        tags = cell.metadata.setdefault("tags", [])
        if INJECTED_TAG in tags:
            if REMOVE_TAG not in tags:
                tags.append(REMOVE_TAG)
            anchor = i
        elif anchor is None and "parameters" in tags:
            anchor = i
    shown = ", ".join(f"`{k}={v!r}`" for k, v in overrides.items()) or "none (the defaults above)"
    note = nbformat.v4.new_markdown_cell(
        f"*This page was executed under the **{profile.name}** profile. Parameter overrides: {shown}.*"
    )
    note.metadata["tags"] = ["emgeom-run-note"]
    nb.cells.insert((anchor if anchor is not None else 0) + 1, note)
    return nb


def execute_chapter(
    layout: BookLayout,
    chapter: str,
    profile: Profile,
    parameters: dict[str, Any],
    progress: bool = True,
) -> None:
    """Execute one chapter; publish its notebook and results (in the profile's build folder) only if
    every cell succeeds and every declared result was recorded."""
    import papermill  # slow import: only when something actually executes

    build = layout.profile_build(profile.name)
    variant = profile.variants.get(chapter)
    notebook = jupytext.read(layout.chapter_source(chapter, variant))
    if variant:  # the executed page must not pair with (and overwrite) the default source on a sync
        notebook.metadata.pop("jupytext", None)
    notebook.metadata["kernelspec"] = dict(KERNELSPEC)
    notebook.metadata.setdefault("language_info", {"name": "python"})
    partial = build.executing_dir / f"{chapter}.ipynb"
    partial.parent.mkdir(parents=True, exist_ok=True)
    staging = build.staging_dir / f"{chapter}.json"
    staging.parent.mkdir(parents=True, exist_ok=True)
    staging.unlink(missing_ok=True)
    with _patched_environ(kernel_environment(layout, profile, chapter)):
        try:
            papermill.execute_notebook(
                notebook,
                str(partial),
                parameters=parameters,
                kernel_name=KERNELSPEC["name"],
                cwd=str(layout.notebooks_dir),
                progress_bar=progress,
                log_output=False,
            )
        except papermill.PapermillExecutionError as err:
            raise ChapterFailed(
                f"chapter {chapter!r} failed in cell {err.cell_index} (execution count {err.exec_count}): "
                f"{err.ename}: {err.evalue}\n  partial notebook kept at {partial}"
            ) from err
    doc = (
        json.loads(staging.read_text())
        if staging.exists()
        else {"chapter": chapter, "profile": profile.name, "results": {}}
    )
    declared = load_declarations(layout.results_declaration(chapter, variant))
    missing = results_mod.missing_results(declared, doc["results"])
    if missing:
        raise ChapterFailed(
            f"chapter {chapter!r} ran to the end but did not record {len(missing)} declared result(s): "
            f"{', '.join(missing)}\n  partial notebook kept at {partial}"
        )
    finished = _finish_notebook(partial, profile, parameters)
    atomic_write_text(build.executed_notebook(chapter), nbformat.writes(finished))
    atomic_write_json(build.results_dir / f"{chapter}.json", doc)
    staging.unlink(missing_ok=True)
    partial.unlink(missing_ok=True)


def _execute_in_worker(root: str, chapter: str, profile_name: str, parameters: dict[str, Any]) -> str:
    """Execute one chapter in a worker process; returns ``""`` on success, the failure text otherwise.
    (The kernel's environment is set with ``os.environ``, so concurrent chapters need processes.)"""
    layout = BookLayout(Path(root))
    try:
        execute_chapter(layout, chapter, load_book_profile(layout, profile_name), parameters, progress=False)
    except ChapterFailed as err:
        return str(err)
    return ""


def run_book(
    layout: BookLayout,
    profile_name: str,
    only: list[str] | None = None,
    force: bool = False,
    progress: bool = True,
    jobs: int = 1,
    wait: bool = True,
) -> list[ChapterRun]:
    """Validate everything, then execute the selected chapters whose inputs changed: in book order, or
    with ``jobs > 1`` up to ``jobs`` at a time, each in its own process (chapters share cached artifacts
    through :func:`~emgeom.core.artifacts.cached_folder`, whose lock makes a chapter wait for an artifact
    another is building rather than build it twice; every chapter runs with its own seeds and thread
    count, so its numbers do not depend on what runs beside it).

    One runner per checkout: the run holds :attr:`~emgeom.book.layout.BookLayout.lock_path` from
    validation to the last page it writes. A second run waits for it, saying so, or with
    ``wait=False`` raises :class:`RunnerBusy` naming the first one's pid. Each profile keeps its own
    executed notebooks and results (:meth:`~emgeom.book.layout.BookLayout.profile_build`); at the end the
    run puts its profile's executed notebooks in place for the HTML book and writes the generated pages
    from its results (:func:`render_profile`).

    Raises :class:`ParameterError` before anything executes if the profile or ``only`` is invalid,
    :class:`~emgeom.book.preflight.PreflightError` if a model, SAE, dataset or judge the selected
    chapters name cannot be had, and :class:`ChapterFailed` after the first failing chapter (chapters
    not yet started are not run; the report is written first).
    """
    if jobs < 1:
        raise ParameterError(f"--jobs must be at least 1, got {jobs}")
    with runner_lock(layout, wait=wait):
        return _run_locked(layout, profile_name, only, force, progress, jobs)


def _run_locked(
    layout: BookLayout, profile_name: str, only: list[str] | None, force: bool, progress: bool, jobs: int
) -> list[ChapterRun]:
    specs = read_all_specs(layout)
    profile = load_book_profile(layout, profile_name)
    selected = list(specs)
    if only:
        unknown = [c for c in only if c not in specs]
        if unknown:
            raise ParameterError(f"--only: unknown chapters {unknown}; chapters are: {', '.join(specs)}")
        selected = [c for c in specs if c in only]

    from emgeom.book.preflight import preflight

    preflight({c: full_parameters(layout, profile, c) for c in selected}, profile.name)
    chapter_declarations(layout, selected, profile)  # a missing or malformed declaration fails here

    build = layout.profile_build(profile.name)
    done: dict[str, ChapterRun] = {}
    todo: list[tuple[str, str]] = []  # (chapter, key), in book order
    for chapter in specs:
        if chapter not in selected:
            continue
        key = chapter_key(
            layout, chapter, profile.name, profile.chapters[chapter], profile.variants.get(chapter)
        )
        cached = None if force else _is_cached(build, chapter, key)
        if cached is not None:
            cached.this_run = "cached"
            done[chapter] = cached
            print(f"[emgeom.book] {chapter}: unchanged (key {key[:12]}), skipped", flush=True)
        else:
            todo.append((chapter, key))

    stages: list[StageRun] = []
    failure = _execute_all(layout, profile, todo, done, progress, jobs, stages)
    runs = []
    for chapter in specs:
        if chapter in done:
            runs.append(done[chapter])
            continue
        previous = _load_state(build, chapter)
        if previous is not None:
            previous.this_run = "not selected" if chapter not in selected else "not run (earlier failure)"
            runs.append(previous)
    render_profile(layout, profile, write_report(layout, profile, runs, stages))
    if failure is not None:
        raise failure
    return runs


#: Seconds assumed for a step never timed before (an organism, an SAE, a chapter), to order the work.
_DEFAULT_ESTIMATES = {"organism": 170.0, "sae": 30.0, "chapter": 60.0}


def _execute_all(
    layout: BookLayout,
    profile: Profile,
    todo: list[tuple[str, str]],
    done: dict[str, ChapterRun],
    progress: bool,
    jobs: int,
    stages: list[StageRun],
) -> ChapterFailed | None:
    """Execute ``todo`` (in order, or with ``jobs > 1`` as a graph of steps, at most ``jobs`` at a time),
    adding each finished run to ``done``; returns the first failure. After a failure nothing new starts;
    running steps finish.

    With ``jobs > 1`` the organisms and SAEs the chapters read are built first as steps of their own
    (:mod:`emgeom.book.artifact_jobs`), each in a worker process, and a chapter starts once the steps it
    reads are done. Among the steps that can start, the one with the longest chain of work after it
    goes first (times of earlier runs where known), so the short independent chapters fill the gaps.
    """

    build = layout.profile_build(profile.name)

    def record(chapter: str, key: str, error: str, seconds: float) -> ChapterRun:
        status = "failed" if error else "ok"
        run = ChapterRun(
            chapter,
            profile.name,
            profile.chapters[chapter],
            key,
            status,
            round(seconds, 2),
            utc_timestamp(),
            "failed" if error else "executed",
            error,
        )
        atomic_write_json(build.runs_dir / f"{chapter}.json", asdict(run))
        print(f"[emgeom.book] {chapter}: {status} in {run.wall_seconds:.1f} s", flush=True)
        done[chapter] = run
        return run

    if jobs == 1 or len(todo) <= 1:
        for chapter, key in todo:
            print(f"[emgeom.book] {chapter}: executing under profile {profile.name!r}", flush=True)
            start = time.perf_counter()
            try:
                execute_chapter(layout, chapter, profile, profile.chapters[chapter], progress=progress)
                error = ""
            except ChapterFailed as err:
                error = str(err)
            record(chapter, key, error, time.perf_counter() - start)
            if error:
                return ChapterFailed(error)
        return None

    import multiprocessing
    from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

    from emgeom.book.artifact_jobs import plan_artifacts, run_artifact_job

    keys = dict(todo)
    artifact_jobs, chapter_needs = plan_artifacts({c: full_parameters(layout, profile, c) for c in keys})
    by_name = {j.name: j for j in artifact_jobs}
    needs: dict[str, set[str]] = {j.name: set(j.needs) for j in artifact_jobs}
    needs.update({c: set(chapter_needs.get(c, ())) for c in keys})
    known = _known_timings(layout, profile.name)
    estimate = {j.name: _job_estimate(j, known) for j in artifact_jobs}
    for chapter in keys:
        previous = _load_state(build, chapter)
        estimate[chapter] = (
            previous.wall_seconds if previous else known.get(chapter, _DEFAULT_ESTIMATES["chapter"])
        )
    priority = _critical_paths(needs, estimate)
    environment = kernel_environment(layout, profile, "artifacts")
    print(
        f"[emgeom.book] {len(artifact_jobs)} artifact steps and {len(keys)} chapters, {jobs} at a time",
        flush=True,
    )

    failure: ChapterFailed | None = None
    finished: set[str] = set()
    waiting = set(needs)
    running: dict[Future[str], tuple[str, float]] = {}
    with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
        while waiting or running:
            ready = sorted((n for n in waiting if needs[n] <= finished), key=lambda n: -priority[n])
            while ready and len(running) < jobs and failure is None:
                name = ready.pop(0)
                waiting.discard(name)
                if name in by_name:
                    print(f"[emgeom.book] {name}: building", flush=True)
                    future = pool.submit(run_artifact_job, by_name[name], environment)
                else:
                    print(f"[emgeom.book] {name}: executing under profile {profile.name!r}", flush=True)
                    future = pool.submit(
                        _execute_in_worker, str(layout.root), name, profile.name, profile.chapters[name]
                    )
                running[future] = (name, time.perf_counter())
            if not running:
                break  # a failure stopped new work, or what is left waits on a failed step
            completed, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in completed:
                name, start = running.pop(future)
                error = future.result()
                seconds = time.perf_counter() - start
                if name in by_name:
                    stage = StageRun(
                        name,
                        by_name[name].kind,
                        "failed" if error else "ok",
                        round(seconds, 2),
                        utc_timestamp(),
                        "failed" if error else "executed",
                        error,
                    )
                    stages.append(stage)
                    print(f"[emgeom.book] {name}: {stage.status} in {stage.wall_seconds:.1f} s", flush=True)
                else:
                    record(name, keys[name], error, seconds)
                if error:
                    failure = failure or ChapterFailed(error)
                else:
                    finished.add(name)
    return failure


def _known_timings(layout: BookLayout, profile: str) -> dict[str, float]:
    """Seconds each step took when last built: the committed timings of the profile
    (``ci/timings/<profile>.json``, written by ``benchmarks/build_times.py --save``), updated by this
    checkout's own step times (each step's last execution, :attr:`ProfileBuild.step_times_path`)."""
    known: dict[str, float] = {}
    for path in (layout.timings_file(profile), layout.profile_build(profile).step_times_path):
        with contextlib.suppress(OSError, json.JSONDecodeError):
            known.update({k: float(v) for k, v in json.loads(path.read_text()).items() if float(v) > 1})
    return known


def _job_estimate(job: Any, known: dict[str, float]) -> float:
    """Seconds an artifact step is expected to take: its last build's, else a default (an SAE's grows
    with its width)."""
    if job.name in known:
        return known[job.name]
    width = getattr(job.sae, "d_sae", 1024) if job.sae is not None else 1024
    return _DEFAULT_ESTIMATES[job.kind] * max(1.0, width / 1024)


def _critical_paths(needs: dict[str, set[str]], estimate: dict[str, float]) -> dict[str, float]:
    """For each step, its own estimated time plus the longest chain of steps that wait on it."""
    after: dict[str, list[str]] = {n: [] for n in needs}
    for name, required in needs.items():
        for r in required:
            after.setdefault(r, []).append(name)
    memo: dict[str, float] = {}

    def path(name: str) -> float:
        if name not in memo:
            memo[name] = estimate.get(name, 0.0) + max((path(a) for a in after.get(name, [])), default=0.0)
        return memo[name]

    return {n: path(n) for n in needs}
