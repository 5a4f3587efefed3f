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
    assert {"test", "book"} <= set(calls["book-cpu-pr"])


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


#: Parameters that chapters 3-6 each declare and that must agree (they determine the shared organism,
#: SAEs and feature sets). Chapter 5 studies the first organism only, so ``organism_seeds`` may differ
#: between chapters within a profile; its default may not.
SHARED_PARAMETERS = frozenset(
    {
        "organism_seeds",
        "d_model",
        "n_layers",
        "n_heads",
        "pretrain_steps",
        "pretrain_batch_size",
        "align_steps",
        "align_rank",
        "sae_layer",
        "sae_width",
        "sae_k",
        "sae_training_tokens",
        "sae_seeds",
        "k",
        "k_harmful",
    }
)


def test_chapters_that_share_a_parameter_name_share_its_default_and_type() -> None:
    """Chapters 3-6 rebuild the same organism and SAEs from their own parameters; one default that drifted
    would silently train a second organism instead of reusing the cached one."""
    from emgeom.book.layout import BookLayout
    from emgeom.book.parameters import read_chapter_parameters

    layout = BookLayout.find(Path(__file__).resolve().parent)
    seen: dict[str, tuple[str, object, object]] = {}
    for chapter in layout.chapters():
        for spec in read_chapter_parameters(layout.chapter_source(chapter)).values():
            if spec.name not in SHARED_PARAMETERS:
                continue
            if spec.name in seen:
                first, default, kind = seen[spec.name]
                assert (spec.default, spec.type) == (default, kind), (
                    f"{spec.name}: {chapter} differs from {first}"
                )
            else:
                seen[spec.name] = (chapter, spec.default, spec.type)
    assert {"d_model", "sae_width"} <= set(seen)


def test_every_profile_gives_shared_parameters_one_value() -> None:
    """Within a profile, chapters that declare the same organism/SAE parameter must run with the same value
    (profile override or default), so that they share one cached organism and one set of SAEs."""
    from emgeom.book.chapters import load_book_profile
    from emgeom.book.layout import BookLayout
    from emgeom.book.parameters import read_chapter_parameters

    layout = BookLayout.find(Path(__file__).resolve().parent)
    for profile_file in sorted(layout.profiles_dir.glob("*.yaml")):
        profile = load_book_profile(layout, profile_file.stem)
        values: dict[str, dict[str, object]] = {}
        for chapter in layout.chapters():
            overrides = profile.chapters.get(chapter, {})
            source = layout.chapter_source(chapter, profile.variants.get(chapter))
            for spec in read_chapter_parameters(source).values():
                if spec.name in SHARED_PARAMETERS - {"organism_seeds"}:
                    values.setdefault(spec.name, {})[chapter] = overrides.get(spec.name, spec.default)
        for name, by_chapter in values.items():
            assert len({repr(v) for v in by_chapter.values()}) == 1, (
                f"{profile_file.stem}: {name} = {by_chapter}"
            )
