"""The runner on a throwaway book with two tiny chapters (each executes in a real kernel in ~1-2 s)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest

from emgeom.book.chapters import chapter_key
from emgeom.book.cli import main
from emgeom.book.layout import BookLayout
from emgeom.book.parameters import ParameterError
from emgeom.book.runner import ChapterFailed, run_book
from emgeom.core.results import DeclarationError

HEADER = (
    "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n"
    "#     language: python\n#     name: python3\n# ---\n\n"
)

GOOD = (
    HEADER
    + """# %% [markdown]
# # A

# %% tags=["parameters"]
value: float = 1.0
fail: bool = False

# %%
from emgeom.core.results import record
if fail:
    raise RuntimeError("planted failure")
record("doubled", 2 * value, ci=(value, 3 * value), n_seeds=3, note="demo")
"""
)

SECOND = (
    HEADER
    + """# %% tags=["parameters"]
n: int = 2

# %%
from emgeom.core.results import record
print(n * 21)
record("answer", n * 21)
"""
)


@pytest.fixture
def book(tmp_path: Path) -> BookLayout:
    (tmp_path / "_toc.yml").write_text("format: jb-book\nroot: intro\n")
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "01_good.py").write_text(GOOD)
    (tmp_path / "notebooks" / "02_second.py").write_text(SECOND)
    (tmp_path / "notebooks" / "01_good.results.yaml").write_text(
        "doubled:\n  meaning: twice the value\n  unit: demo\n"
    )
    (tmp_path / "notebooks" / "02_second.results.yaml").write_text(
        "answer:\n  meaning: n times 21\n  unit: demo\n"
    )
    (tmp_path / "lib" / "emgeom").mkdir(parents=True)
    (tmp_path / "lib" / "emgeom" / "thing.py").write_text("X = 1\n")
    (tmp_path / "requirements.lock").write_text("demo==1\n")
    profiles = tmp_path / "ci" / "profiles"
    profiles.mkdir(parents=True)
    (profiles / "demo.yaml").write_text("chapters:\n  01_good: {value: 1.5}\n  02_second: {}\n")
    (profiles / "failing.yaml").write_text("chapters:\n  01_good: {fail: true}\n  02_second: {}\n")
    (profiles / "typo.yaml").write_text("chapters:\n  01_good: {valeu: 2.0}\n  02_second: {}\n")
    return BookLayout(tmp_path)


def test_runs_publishes_results_then_caches(book: BookLayout):
    runs = run_book(book, "demo", progress=False)
    assert [r.this_run for r in runs] == ["executed", "executed"]
    demo = book.profile_build("demo")
    doc = json.loads((demo.results_dir / "01_good.json").read_text())
    assert doc == {
        "chapter": "01_good",
        "profile": "demo",
        "results": {"doubled": {"value": 3.0, "ci": [1.5, 4.5], "n_seeds": 3, "note": "demo"}},
    }
    assert book.rendered_notebook("01_good").read_bytes() == demo.executed_notebook("01_good").read_bytes()
    nb = nbformat.read(book.rendered_notebook("01_good"), as_version=4)
    injected = [c for c in nb.cells if "injected-parameters" in c.metadata.get("tags", [])]
    assert len(injected) == 1 and "remove-cell" in injected[0].metadata["tags"]
    assert any("executed under the **demo** profile" in c.source for c in nb.cells)
    report = json.loads(book.report_path.read_text())
    assert [c["chapter"] for c in report["chapters"]] == ["01_good", "02_second"]
    assert "torch" in report["packages"] and report["commit"]
    assert "`doubled`" in (book.generated_dir / "build_status.md").read_text()

    again = run_book(book, "demo", progress=False)
    assert [r.this_run for r in again] == ["cached", "cached"]


def test_a_change_in_lib_or_parameters_reruns(book: BookLayout):
    run_book(book, "demo", progress=False)
    key = chapter_key(book, "01_good", "demo", {"value": 1.5})
    (book.lib_dir / "thing.py").write_text("X = 2\n")
    assert chapter_key(book, "01_good", "demo", {"value": 1.5}) != key
    assert [r.this_run for r in run_book(book, "demo", progress=False)] == ["executed", "executed"]
    assert chapter_key(book, "01_good", "demo", {"value": 2.5}) != chapter_key(
        book, "01_good", "demo", {"value": 1.5}
    )


def test_only_and_force(book: BookLayout):
    run_book(book, "demo", progress=False)
    runs = run_book(book, "demo", only=["02_second"], force=True, progress=False)
    assert [r.this_run for r in runs] == ["not selected", "executed"]
    with pytest.raises(ParameterError, match="unknown chapters"):
        run_book(book, "demo", only=["03_nope"], progress=False)


def test_failing_chapter_stops_and_keeps_everything_else(book: BookLayout):
    run_book(book, "demo", progress=False)
    demo = book.profile_build("demo")
    good_notebook = demo.executed_notebook("01_good").read_text()
    good_results = (demo.results_dir / "01_good.json").read_text()
    (book.profiles_dir / "demo.yaml").write_text("chapters:\n  01_good: {fail: true}\n  02_second: {}\n")
    with pytest.raises(ChapterFailed) as err:
        run_book(book, "demo", progress=False)
    text = str(err.value)
    assert "chapter '01_good' failed in cell" in text and "planted failure" in text
    partial = demo.executing_dir / "01_good.ipynb"
    assert partial.exists() and str(partial) in text
    assert demo.executed_notebook("01_good").read_text() == good_notebook  # last good output intact
    assert book.rendered_notebook("01_good").read_text() == good_notebook
    assert (demo.results_dir / "01_good.json").read_text() == good_results
    report = json.loads(book.report_path.read_text())
    assert [c["this_run"] for c in report["chapters"]] == ["failed", "cached"]
    # a failed run is never a cache hit
    (book.profiles_dir / "demo.yaml").write_text("chapters:\n  01_good: {value: 1.5}\n  02_second: {}\n")
    assert run_book(book, "demo", progress=False)[0].this_run == "executed"


def test_cli_exit_codes(book: BookLayout, capsys):
    assert main(["--root", str(book.root), "run", "--profile", "typo"]) == 2
    err = capsys.readouterr().err
    assert "profile 'typo', chapter '01_good': unknown parameter 'valeu'; allowed: value, fail" in err
    assert not book.profile_build("typo").root.exists()  # refused before anything executed
    assert main(["--root", str(book.root), "check", "--profile", "demo"]) == 0
    assert main(["--root", str(book.root), "run", "--profile", "failing", "--no-progress"]) == 1
    assert "planted failure" in capsys.readouterr().err


def test_a_chapter_without_declarations_is_refused_before_anything_runs(book: BookLayout):
    (book.notebooks_dir / "02_second.results.yaml").unlink()
    with pytest.raises(DeclarationError, match=r"02_second\.results\.yaml: no results declaration"):
        run_book(book, "demo", progress=False)
    assert not book.profile_build("demo").results_dir.exists()
    assert main(["--root", str(book.root), "run", "--profile", "demo"]) == 2


def test_recording_an_undeclared_name_fails_the_chapter(book: BookLayout):
    (book.notebooks_dir / "01_good.results.yaml").write_text("tripled:\n  meaning: m\n  unit: u\n")
    with pytest.raises(ChapterFailed, match="'doubled' is not declared"):
        run_book(book, "demo", progress=False)
    assert not (book.profile_build("demo").results_dir / "01_good.json").exists()


def test_changing_a_declaration_reruns_its_chapter(book: BookLayout):
    run_book(book, "demo", progress=False)
    (book.notebooks_dir / "01_good.results.yaml").write_text("doubled:\n  meaning: 2x\n  unit: demo\n")
    runs = run_book(book, "demo", progress=False)
    assert [r.this_run for r in runs] == ["executed", "cached"]


def test_chapters_run_side_by_side_give_the_same_results(book: BookLayout, tmp_path: Path):
    runs = run_book(book, "demo", progress=False, jobs=2)
    assert [r.this_run for r in runs] == ["executed", "executed"]
    doc = json.loads((book.profile_build("demo").results_dir / "01_good.json").read_text())
    assert doc["results"]["doubled"]["value"] == 3.0
    assert [r.this_run for r in run_book(book, "demo", progress=False, jobs=2)] == ["cached", "cached"]
    report = json.loads(book.report_path.read_text())
    assert [c["chapter"] for c in report["chapters"]] == ["01_good", "02_second"]


def test_a_failure_beside_another_chapter_is_reported_and_raised(book: BookLayout):
    with pytest.raises(ChapterFailed, match="planted failure"):
        run_book(book, "failing", progress=False, jobs=2)
    report = json.loads(book.report_path.read_text())
    status = {c["chapter"]: c["status"] for c in report["chapters"]}
    assert status["01_good"] == "failed"
    assert not (book.profile_build("failing").results_dir / "01_good.json").exists()
    with pytest.raises(ParameterError, match="--jobs"):
        run_book(book, "demo", progress=False, jobs=0)


def test_a_shared_value_reruns_exactly_the_chapters_that_read_it(book: BookLayout):
    profiles = book.profiles_dir
    (profiles / "shared.yaml").write_text("shared: {n: 3}\nchapters:\n  01_good: {}\n  02_second: {}\n")
    run_book(book, "shared", progress=False)
    (profiles / "shared.yaml").write_text("shared: {n: 4}\nchapters:\n  01_good: {}\n  02_second: {}\n")
    runs = run_book(book, "shared", progress=False)
    assert [r.this_run for r in runs] == ["cached", "executed"]
    assert runs[1].parameters == {"n": 4}
    assert "84" in book.rendered_notebook("02_second").read_text()


ORGANISM_CHAPTER = (
    HEADER
    + """# %% tags=["parameters"]
organism_seeds: list[int] = [0]
d_model: int = 16
n_layers: int = 1
n_heads: int = 2
pretrain_steps: int = 2
pretrain_batch_size: int = 4
align_steps: int = 2
align_rank: int = 1

# %%
from emgeom.core.results import record
from emgeom.organism.study import build_organisms, organism_configs
configs = organism_configs(
    organism_seeds, d_model=d_model, n_layers=n_layers, n_heads=n_heads, pretrain_steps=pretrain_steps,
    pretrain_batch_size=pretrain_batch_size, align_steps=align_steps, align_rank=align_rank,
)
organisms = build_organisms(configs, progress=False)
record("found_built", float(all(all(o.cache_hits.values()) for o in organisms.values())), note="demo")
"""
)


def test_organisms_are_built_as_their_own_steps_before_the_chapters_that_read_them(book: BookLayout):
    (book.notebooks_dir / "03_organism.py").write_text(ORGANISM_CHAPTER)
    (book.notebooks_dir / "03_organism.results.yaml").write_text(
        "found_built:\n  meaning: demo\n  unit: demo\n"
    )
    (book.profiles_dir / "organisms.yaml").write_text(
        "shared: {organism_seeds: [0, 1]}\nchapters:\n  01_good: {}\n  02_second: {}\n  03_organism: {}\n"
    )
    runs = run_book(book, "organisms", progress=False, jobs=2)
    assert [r.status for r in runs] == ["ok", "ok", "ok"]
    doc = json.loads((book.profile_build("organisms").results_dir / "03_organism.json").read_text())
    assert doc["results"]["found_built"]["value"] == 1.0  # the chapter only loaded what the steps built
    report = json.loads(book.report_path.read_text())
    stages = {s["stage"]: s for s in report["stages"]}
    assert set(stages) == {"organism 0", "organism 1"}
    assert all(s["status"] == "ok" and s["kind"] == "organism" for s in stages.values())
    chapter_end = {c["chapter"]: c["finished_at"] for c in report["chapters"]}["03_organism"]
    assert all(s["finished_at"] <= chapter_end for s in stages.values())
    from emgeom.book.timeline import build_timeline

    assert {"organism 0", "organism 1", "03_organism"} <= {c.chapter for c in build_timeline(report).chapters}
    assert "| organism 1 | organism | ok |" in (book.generated_dir / "build_status.md").read_text()


def test_a_declared_result_that_was_not_recorded_fails_the_chapter(book: BookLayout):
    (book.notebooks_dir / "02_second.results.yaml").write_text(
        "answer:\n  meaning: m\n  unit: u\nforgotten:\n  meaning: never recorded\n  unit: u\n"
    )
    with pytest.raises(ChapterFailed, match=r"did not record 1 declared result.*forgotten"):
        run_book(book, "demo", progress=False)
    demo = book.profile_build("demo")
    assert not (demo.results_dir / "02_second.json").exists()
    assert not demo.executed_notebook("02_second").exists()
    assert json.loads((demo.runs_dir / "02_second.json").read_text())["status"] == "failed"


def test_profiles_keep_their_own_pages_and_a_switch_back_executes_nothing(book: BookLayout):
    (book.profiles_dir / "other.yaml").write_text("chapters:\n  01_good: {value: 5.0}\n  02_second: {}\n")
    run_book(book, "demo", progress=False)
    demo_page = book.rendered_notebook("01_good").read_text()
    assert [r.this_run for r in run_book(book, "other", progress=False)] == ["executed", "executed"]
    assert "**other** profile" in book.rendered_notebook("01_good").read_text()
    assert (book.rendered_profile_path).read_text().strip() == "other"
    assert [r.this_run for r in run_book(book, "demo", progress=False)] == ["cached", "cached"]
    assert book.rendered_notebook("01_good").read_text() == demo_page
    assert "**demo**" in (book.generated_dir / "build_status.md").read_text()
    other = json.loads((book.profile_build("other").results_dir / "01_good.json").read_text())
    assert other["results"]["doubled"]["value"] == 10.0


def test_a_warm_run_keeps_the_last_builds_step_times(book: BookLayout):
    run_book(book, "demo", progress=False)
    demo = book.profile_build("demo")
    last = json.loads(demo.last_build_path.read_text())
    assert [c["this_run"] for c in last["chapters"]] == ["executed", "executed"]
    run_book(book, "demo", progress=False)  # warm: executes nothing
    assert json.loads(demo.last_build_path.read_text()) == last
    assert [c["this_run"] for c in json.loads(book.report_path.read_text())["chapters"]] == ["cached"] * 2
    assert set(json.loads(demo.step_times_path.read_text())) == {"01_good", "02_second"}


def _runner(book: BookLayout, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "emgeom.book", "--root", str(book.root), "run", "--profile", "demo", *extra],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"HF_HUB_OFFLINE": "1"},
    )


def test_two_runners_at_once_never_lose_results(book: BookLayout):
    first, second = _runner(book, "--no-progress"), _runner(book, "--no-progress")
    outs = [p.communicate(timeout=300) for p in (first, second)]
    assert [p.returncode for p in (first, second)] == [0, 0], outs
    printed = outs[0][0] + outs[1][0]
    assert "holds this checkout: waiting for it" in printed  # one waited for the other...
    assert printed.count("01_good: executing") == 1  # ...then found the chapters cached
    results = book.profile_build("demo").results_dir
    assert json.loads((results / "01_good.json").read_text())["results"]["doubled"]["value"] == 3.0
    assert json.loads((results / "02_second.json").read_text())["results"]["answer"]["value"] == 42.0
    assert not book.lock_owner_path.exists()


def test_a_runner_told_not_to_wait_refuses_in_one_line_naming_the_holder(book: BookLayout):
    from emgeom.book.lock import runner_lock

    with runner_lock(book):
        refused = _runner(book, "--no-wait")
        _, err = refused.communicate(timeout=120)
    assert refused.returncode == 2
    assert err.strip().count("\n") == 0 and f"another runner (pid {os.getpid()}," in err
    assert not book.profile_build("demo").root.exists()  # nothing executed
