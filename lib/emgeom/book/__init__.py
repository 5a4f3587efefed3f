"""The chapter runner: profiles, parameter validation, cached papermill execution, the build report.

Entry point: ``python -m emgeom.book run --profile cpu [--only CHAPTER ...]``.
"""

from emgeom.book.layout import BookLayout
from emgeom.book.parameters import ParameterError, ParameterSpec, read_chapter_parameters
from emgeom.book.profiles import Profile, load_profile
from emgeom.book.runner import ChapterFailed, ChapterRun, run_book

__all__ = [
    "BookLayout",
    "ChapterFailed",
    "ChapterRun",
    "ParameterError",
    "ParameterSpec",
    "Profile",
    "load_profile",
    "read_chapter_parameters",
    "run_book",
]
