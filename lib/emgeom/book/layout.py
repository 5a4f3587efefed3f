"""Where the book's sources and build artifacts live, relative to the repository root."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from emgeom.core.paths import find_checkout
from emgeom.core.results import declaration_path

CHAPTER_FILE = re.compile(r"^\d\d_[a-z0-9_]+\.py$")


@dataclass(frozen=True)
class BookLayout:
    """Paths of one checkout of the book. Chapters are ``notebooks/NN_name.py`` (jupytext percent)."""

    root: Path

    @classmethod
    def find(cls, start: Path | None = None) -> BookLayout:
        """The layout of the checkout containing ``start`` (default: the working directory)."""
        root = find_checkout(start)
        if root is None:
            here = (start or Path.cwd()).resolve()
            raise FileNotFoundError(
                f"no book checkout (a folder with _toc.yml and notebooks/) at or above {here}"
            )
        return cls(root)

    @property
    def notebooks_dir(self) -> Path:
        return self.root / "notebooks"

    @property
    def profiles_dir(self) -> Path:
        return self.root / "ci" / "profiles"

    def timings_file(self, profile: str) -> Path:
        """Step times of a profile's last full build, committed so a cold build can order its work."""
        return self.root / "ci" / "timings" / f"{profile}.json"

    @property
    def lib_dir(self) -> Path:
        return self.root / "lib" / "emgeom"

    @property
    def lock_file(self) -> Path:
        return self.root / "requirements.lock"

    @property
    def build_dir(self) -> Path:
        return self.root / "_build"

    def profile_build(self, profile: str) -> ProfileBuild:
        """Where one profile's executed notebooks, results, run states and report are kept
        (``_build/profiles/<profile>/``): each profile has its own, so switching profiles and back
        executes nothing that is cached."""
        return ProfileBuild(self.build_dir / "profiles" / profile)

    @property
    def lock_path(self) -> Path:
        """The lock one runner of this checkout holds while it runs (a second one waits or refuses)."""
        return self.build_dir / "runner.lock"

    @property
    def lock_owner_path(self) -> Path:
        """Pid and start time of the runner holding :attr:`lock_path` (read to name it)."""
        return self.build_dir / "runner.owner"

    @property
    def artifacts_dir(self) -> Path:
        """Trained models and SAEs shared by chapters, each in a folder keyed by its config hash."""
        return self.build_dir / "artifacts"

    @property
    def report_path(self) -> Path:
        """The report of the last run, whatever its profile (a copy of that profile's report)."""
        return self.build_dir / "report.json"

    @property
    def rendered_profile_path(self) -> Path:
        """Names the profile whose executed notebooks are in place for the HTML book."""
        return self.build_dir / "rendered_profile"

    @property
    def generated_dir(self) -> Path:
        """Book pages written by the runner (not in git)."""
        return self.root / "book" / "generated"

    def chapter_source(self, chapter: str, variant: str | None = None) -> Path:
        """``notebooks/<chapter>.py``, or a variant's ``notebooks/<variant>/<chapter>.py``."""
        folder = self.notebooks_dir / variant if variant else self.notebooks_dir
        return folder / f"{chapter}.py"

    def results_declaration(self, chapter: str, variant: str | None = None) -> Path:
        """The declarations of what a chapter (or its variant) records, beside its source."""
        return declaration_path(self.chapter_source(chapter, variant))

    def variants(self) -> dict[str, list[str]]:
        """For each chapter with variants, the variant names (the folders under ``notebooks/`` that hold
        a source of that chapter). A variant is the same chapter of the book written for another kind
        of model (``real_models``); a profile chooses it per chapter."""
        chapters = set(self.chapters())
        out: dict[str, list[str]] = {}
        for path in sorted(self.notebooks_dir.glob("*/*.py")):
            if CHAPTER_FILE.match(path.name) and path.stem in chapters:
                out.setdefault(path.stem, []).append(path.parent.name)
        return out

    def rendered_notebook(self, chapter: str) -> Path:
        """The executed notebook the HTML book renders: the ``.ipynb`` paired with the jupytext source,
        a copy of the rendered profile's (:meth:`ProfileBuild.executed_notebook`)."""
        return self.notebooks_dir / f"{chapter}.ipynb"

    def chapters(self) -> list[str]:
        """All chapter names, in book order."""
        return sorted(p.stem for p in self.notebooks_dir.glob("*.py") if CHAPTER_FILE.match(p.name))


@dataclass(frozen=True)
class ProfileBuild:
    """One profile's build outputs, under ``_build/profiles/<profile>/``."""

    root: Path

    @property
    def results_dir(self) -> Path:
        """Published results, ``<chapter>.json``, one per successfully executed chapter."""
        return self.root / "results"

    @property
    def staging_dir(self) -> Path:
        """Results being recorded by a chapter that is still executing."""
        return self.root / "staging"

    @property
    def runs_dir(self) -> Path:
        """The last run state of each chapter (its cache key and status)."""
        return self.root / "runs"

    @property
    def executing_dir(self) -> Path:
        """Notebooks being executed; a failed chapter's partial notebook stays here for inspection."""
        return self.root / "executing"

    @property
    def notebooks_dir(self) -> Path:
        """Executed notebooks of this profile, ``<chapter>.ipynb``."""
        return self.root / "notebooks"

    def executed_notebook(self, chapter: str) -> Path:
        return self.notebooks_dir / f"{chapter}.ipynb"

    @property
    def report_path(self) -> Path:
        """The last run report of this profile."""
        return self.root / "report.json"

    @property
    def last_build_path(self) -> Path:
        """The report of this profile's last run that executed anything (a warm re-run, which executes
        nothing, leaves it alone): what the build timeline and ``make bench`` read."""
        return self.root / "last_build.json"

    @property
    def step_times_path(self) -> Path:
        """Seconds each step (artifact or chapter) took the last time it was executed, over all runs."""
        return self.root / "step_times.json"
