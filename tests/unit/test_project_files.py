"""Pins agree across files; CI workflows, .ci/run and the README call the same make targets."""

import re
from pathlib import Path

import yaml
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]


def lock_pins() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, version = line.split("==")
            pins[name.lower().replace("_", "-")] = version
    return pins


def env_pins() -> dict[str, str]:
    env = yaml.safe_load((REPO / "environment.yml").read_text())
    pip = next(d for d in env["dependencies"] if isinstance(d, dict))["pip"]
    return {
        (r := Requirement(s)).name.lower().replace("_", "-"): str(r.specifier)[2:] for s in pip if "==" in s
    }


def test_environment_yml_names_the_lock_versions():
    lock, env = lock_pins(), env_pins()
    drift = {n: (v, lock.get(n)) for n, v in env.items() if lock.get(n) != v}
    assert not drift, f"environment.yml and requirements.lock disagree: {drift}"
    for pair in ("torch", "transformer-lens", "sae-lens"):
        assert pair in env


def test_key_pins():
    lock = lock_pins()
    assert lock["torch"] == "2.13.0"
    assert lock["sae-lens"] == "6.54.12" and lock["transformer-lens"].startswith("3.")
    assert lock["jupyter-book"].startswith("1.")


def test_lock_satisfies_pyproject():
    import tomllib

    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    lock = lock_pins()
    for dep in map(Requirement, deps):
        name = dep.name.lower().replace("_", "-")
        assert name in lock, f"{name} missing from requirements.lock"
        assert dep.specifier.contains(lock[name], prereleases=True), f"{name}=={lock[name]} violates {dep}"


def make_targets() -> set[str]:
    return set(re.findall(r"^([a-z][a-z-]*):", (REPO / "Makefile").read_text(), flags=re.M))


def make_calls(text: str) -> list[str]:
    return re.findall(r"\bmake ([a-z][a-z-]*)", text)


def test_workflows_call_existing_make_targets():
    targets = make_targets()
    calls = {}
    for wf in (REPO / "ci" / "workflows").glob("*.yml"):
        doc = yaml.safe_load(wf.read_text())
        runs = [s["run"] for job in doc["jobs"].values() for s in job.get("steps", []) if "run" in s]
        calls[wf.stem] = [c for r in runs for c in make_calls(r)]
        assert set(calls[wf.stem]) <= targets, f"{wf.name} calls unknown targets"
    assert "book" in calls["book-gpu"] and any(
        "PROFILE=" in s
        for s in (REPO / "ci/workflows/book-gpu.yml").read_text().split("\n")
        if "make book" in s
    )
    assert {"test", "book"} <= set(calls["book-cpu"])


def _steps(workflow: str) -> list[dict]:
    doc = yaml.safe_load((REPO / "ci" / "workflows" / f"{workflow}.yml").read_text())
    return [s for job in doc["jobs"].values() for s in job.get("steps", [])]


def test_the_cpu_book_is_published_from_main_with_execution_cached_there_and_read_only_in_prs():
    from emgeom.book.layout import BookLayout

    doc = yaml.safe_load((REPO / "ci" / "workflows" / "book-cpu.yml").read_text())
    on = doc[True] if True in doc else doc["on"]  # YAML 1.1 reads the key `on` as True
    assert "pull_request" in on and on["push"]["branches"] == ["main"]
    steps = _steps("book-cpu")
    uses = {s.get("uses", "").split("@")[0]: s for s in steps}
    restore, save = uses["actions/cache/restore"], uses["actions/cache/save"]
    main_only = "github.ref == 'refs/heads/main'"
    assert "if" not in restore and main_only in save["if"] and "pull_request" in save["if"]
    # the cached paths are where the runner keeps the cpu profile's executions and the trained artifacts
    layout = BookLayout(REPO)
    cached = set(save["with"]["path"].split())
    assert cached == set(restore["with"]["path"].split())
    assert {
        str(layout.profile_build("cpu").root.relative_to(REPO)),
        str(layout.profile_build("cpu-full").root.relative_to(REPO)),
        str(layout.artifacts_dir.relative_to(REPO)),
    } == cached
    assert main_only in uses["actions/upload-pages-artifact"]["if"]
    assert main_only in doc["jobs"]["deploy"]["if"]
    # pull requests build cpu; main builds and publishes cpu-full, the profile whose verdicts decide
    builds = {s["run"].strip(): s.get("if", "") for s in steps if "make book" in s.get("run", "")}
    assert "pull_request" in builds["make book PROFILE=cpu"] and "==" in builds["make book PROFILE=cpu"]
    assert "!=" in builds["make book PROFILE=cpu-full"]
    deploy = [s["uses"].split("@")[0] for s in doc["jobs"]["deploy"]["steps"]]
    assert deploy == ["actions/deploy-pages"]


def test_the_gpu_workflow_caches_the_profile_folder_it_builds():
    cache = next(s for s in _steps("book-gpu") if s.get("uses", "").startswith("actions/cache@"))
    assert "_build/profiles/${{ env.PROFILE }}" in cache["with"]["path"].splitlines()


def test_readme_commands_and_ci_entry_point():
    readme = (REPO / "README.md").read_text()
    first_block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert make_calls(first_block) == ["book", "test"]
    assert "make test" in (REPO / ".ci" / "run").read_text()
    assert {"book", "test"} <= make_targets()


def test_toc_lists_every_chapter():
    toc = (REPO / "_toc.yml").read_text()
    for chapter in sorted(p.stem for p in (REPO / "notebooks").glob("[0-9][0-9]_*.py")):
        assert f"notebooks/{chapter}" in toc


def _cpu_shared() -> dict[str, object]:
    from emgeom.book.chapters import load_book_profile
    from emgeom.book.layout import BookLayout

    return load_book_profile(BookLayout.find(Path(__file__).resolve().parent), "cpu").shared


def test_the_cpu_profile_defines_the_organisms_and_saes_once() -> None:
    """Everything that determines an organism or an SAE is in the cpu profile's shared section, the two
    SAE settings an earlier sync test missed included."""
    shared = _cpu_shared()
    assert {
        "organism_seeds",
        "d_model",
        "pretrain_steps",
        "sae_width",
        "sae_architecture",
        "sae_l1_coefficient",
        "sae_seeds",
        "coupling_mistake_rates",
    } <= set(shared)
    assert len(shared["organism_seeds"]) >= 3  # type: ignore[arg-type]
    assert len(shared["coupling_mistake_rates"]) >= 4  # type: ignore[arg-type]


def test_chapter_defaults_equal_the_cpu_profiles_shared_values() -> None:
    """A chapter run on its own (papermill, defaults) must build the same organisms and SAEs as the book
    under the cpu profile, or it would silently train new ones instead of reusing the cached ones."""
    from emgeom.book.layout import BookLayout
    from emgeom.book.parameters import read_chapter_parameters

    layout = BookLayout.find(Path(__file__).resolve().parent)
    shared = _cpu_shared()
    readers = {name: [] for name in shared}
    for chapter in layout.chapters():
        for spec in read_chapter_parameters(layout.chapter_source(chapter)).values():
            if spec.name in shared:
                assert spec.default == shared[spec.name], (
                    f"{chapter}: default of {spec.name} differs from cpu"
                )
                readers[spec.name].append(chapter)
    assert all(readers.values()), readers


def test_every_profile_runs_its_chapters_on_one_organism_family() -> None:
    """Within a profile, chapters that declare the same organism/SAE parameter run with the same value
    (from the shared section, or the defaults where a profile has none), so they share one cached set of
    organisms and SAEs."""
    from emgeom.book.chapters import full_parameters, load_book_profile
    from emgeom.book.layout import BookLayout

    layout = BookLayout.find(Path(__file__).resolve().parent)
    names = set(_cpu_shared())
    for profile_file in sorted(layout.profiles_dir.glob("*.yaml")):
        profile = load_book_profile(layout, profile_file.stem)
        values: dict[str, dict[str, object]] = {}
        for chapter in layout.chapters():
            if chapter in profile.variants:  # a real-model variant reads no organism
                continue
            for name, value in full_parameters(layout, profile, chapter).items():
                if name in names:
                    values.setdefault(name, {})[chapter] = value
        for name, by_chapter in values.items():
            assert len({repr(v) for v in by_chapter.values()}) == 1, (
                f"{profile_file.stem}: {name} = {by_chapter}"
            )
