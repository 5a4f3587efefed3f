"""The chapters of a checkout and what a profile asks of them: parameter specs (defaults and types, read
from each chapter's ``parameters`` cell), the validated profile, each chapter's full parameter values,
and the cache key of one execution.

A chapter's cache key hashes its jupytext source and results declaration, every ``lib/emgeom`` source
file, its parameters, the profile name and ``requirements.lock`` (``jupyter-cache`` would miss changes in
``lib/``, hence this).
"""

from __future__ import annotations

from typing import Any

from emgeom.book.layout import BookLayout
from emgeom.book.parameters import ParameterError, ParameterSpec, read_chapter_parameters
from emgeom.book.profiles import Profile, load_profile
from emgeom.core.io import canonical_json, hash_parts, hash_tree
from emgeom.core.results import ResultDeclaration, load_declarations


def chapter_key(
    layout: BookLayout, chapter: str, profile: str, parameters: dict[str, Any], variant: str | None = None
) -> str:
    """Cache key of one chapter execution (hex SHA-256)."""
    declaration = layout.results_declaration(chapter, variant)
    return hash_parts(
        [
            layout.chapter_source(chapter, variant).read_bytes(),
            declaration.read_bytes() if declaration.exists() else b"",
            hash_tree(layout.lib_dir),
            canonical_json(parameters),
            profile,
            layout.lock_file.read_bytes() if layout.lock_file.exists() else b"",
        ]
    )


def read_all_specs(layout: BookLayout) -> dict[str, dict[str, ParameterSpec]]:
    """Parameter specs of every chapter, in book order."""
    chapters = layout.chapters()
    if not chapters:
        raise ParameterError(f"no chapters (NN_name.py) in {layout.notebooks_dir}")
    return {c: read_chapter_parameters(layout.chapter_source(c)) for c in chapters}


def read_variant_specs(layout: BookLayout) -> dict[str, dict[str, dict[str, ParameterSpec]]]:
    """Parameter specs of every chapter variant: ``{chapter: {variant: specs}}``."""
    return {
        chapter: {v: read_chapter_parameters(layout.chapter_source(chapter, v)) for v in variants}
        for chapter, variants in layout.variants().items()
    }


def load_book_profile(layout: BookLayout, name: str) -> Profile:
    """Profile ``name`` validated against the chapters (and chapter variants) of this checkout."""
    return load_profile(layout.profiles_dir, name, read_all_specs(layout), read_variant_specs(layout))


def chapter_declarations(
    layout: BookLayout, chapters: list[str], profile: Profile | None = None
) -> dict[str, dict[str, ResultDeclaration]]:
    """The results declarations of each chapter (of the variant ``profile`` runs, if given)."""
    variants = profile.variants if profile else {}
    return {c: load_declarations(layout.results_declaration(c, variants.get(c))) for c in chapters}


def full_parameters(layout: BookLayout, profile: Profile, chapter: str) -> dict[str, Any]:
    """A chapter's parameter values under ``profile``: the source's defaults updated by the overrides."""
    specs = read_chapter_parameters(layout.chapter_source(chapter, profile.variants.get(chapter)))
    return {name: spec.default for name, spec in specs.items()} | profile.chapters[chapter]
