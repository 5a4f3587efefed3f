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
