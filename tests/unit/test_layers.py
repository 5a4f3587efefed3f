"""The package's layers: the import-linter contracts of ``pyproject.toml`` hold, and they would catch a
lower layer that imports a higher one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(project: Path, lib: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the ``emgeom`` package found in ``lib`` with ``project``'s contracts."""
    env = os.environ | {"PYTHONPATH": str(lib)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(project / "pyproject.toml")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def copy_of_package(tmp_path: Path) -> Path:
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    shutil.copytree(
        ROOT / "lib" / "emgeom", tmp_path / "lib" / "emgeom", ignore=shutil.ignore_patterns("__pycache__")
    )
    return tmp_path


def test_the_package_keeps_its_layers() -> None:
    result = lint_imports(ROOT, ROOT / "lib")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 kept, 0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "planted", "edge"),
    [
        ("core/stats.py", "import emgeom.book.layout", "emgeom.core.stats -> emgeom.book.layout"),
        ("sae/load.py", "from emgeom.organism import oracle", "emgeom.sae.load -> emgeom.organism.oracle"),
        ("lm/chat.py", "from emgeom.toy import superposition", "emgeom.lm.chat -> emgeom.toy.superposition"),
        ("book/layout.py", "from emgeom.book import runner", "emgeom.book.layout -> emgeom.book.runner"),
        (
            "filtering/scoring.py",
            "from emgeom.claims.filtering import study",
            "emgeom.filtering.scoring -> emgeom.claims.filtering.study",
        ),
        (
            "em/emergence.py",
            "import emgeom.claims.geometry.nulls",
            "emgeom.em.emergence -> emgeom.claims.geometry.nulls",
        ),
        (
            "claims/geometry/study.py",
            "from emgeom.claims.mechanism import measurement",
            "emgeom.claims.geometry.study -> emgeom.claims.mechanism.measurement",
        ),
        (
            "claims/verdicts.py",
            "from emgeom.claims.coupling import study",
            "emgeom.claims.verdicts -> emgeom.claims.coupling.study",
        ),
        (
            "book/artifact_jobs.py",
            "from emgeom.book import runner",
            "emgeom.book.artifact_jobs -> emgeom.book.runner",
        ),
    ],
)
def test_an_upward_import_breaks_a_contract(tmp_path: Path, module: str, planted: str, edge: str) -> None:
    project = copy_of_package(tmp_path)
    path = project / "lib" / "emgeom" / module
    path.write_text(path.read_text() + f"\n{planted}  # planted by the test\n")
    result = lint_imports(project, project / "lib")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout
    assert edge in result.stdout, result.stdout


def test_every_module_of_the_runner_has_a_layer() -> None:
    """import-linter ignores a module its layers do not name, so an unnamed runner module could import
    upwards unnoticed: every module and package of ``emgeom.book`` must be named."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    book = next(c for c in config if c["id"] == "book-layers")
    named = {m.strip() for layer in book["layers"] for m in layer.split("|")}
    folder = ROOT / "lib" / "emgeom" / "book"
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    modules |= {p.name for p in folder.iterdir() if (p / "__init__.py").exists()}
    assert modules - named == set()
