from pathlib import Path

import pytest

from emgeom.book.chapters import load_book_profile
from emgeom.book.layout import BookLayout
from emgeom.book.parameters import ParameterError, parse_parameters_source
from emgeom.book.profiles import load_profile

REPO = Path(__file__).resolve().parents[3]
SPECS = {
    "01_a": parse_parameters_source("steps: int = 1", "a"),
    "02_b": parse_parameters_source("n: int = 2", "b"),
}


def write(tmp_path: Path, text: str) -> Path:
    (tmp_path / "p.yaml").write_text(text)
    return tmp_path


def test_valid_profile_loads(tmp_path):
    prof = load_profile(
        write(tmp_path, "threads: 2\nchapters:\n  01_a: {steps: 5}\n  02_b: {}\n"), "p", SPECS
    )
    assert prof.threads == 2
    assert prof.chapters == {"01_a": {"steps": 5}, "02_b": {}}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("chapters:\n  01_a: {}\n", r"no entry for chapters \['02_b'\]"),
        ("chapters:\n  01_a: {}\n  02_b: {}\n  03_c: {}\n", r"unknown chapters \['03_c'\]"),
        (
            "chapters:\n  01_a: {stepz: 1}\n  02_b: {}\n",
            "profile 'p', chapter '01_a': unknown parameter 'stepz'",
        ),
        ("threads: 0\nchapters: {}\n", "threads must be a positive int"),
        ("thread: 1\nchapters: {}\n", "unknown keys"),
        ("chapters: [1]\n", "must map chapter names"),
        ("chapters: {01_a: [1], 02_b: {}}\n", "parameters must be a mapping"),
        (":\n  - [", "not valid YAML"),
    ],
)
def test_bad_profiles_are_refused(tmp_path, text, message):
    with pytest.raises(ParameterError, match=message):
        load_profile(write(tmp_path, text), "p", SPECS)


def test_unknown_profile_lists_known_ones(tmp_path):
    write(tmp_path, "chapters: {}\n")
    with pytest.raises(ParameterError, match=r"unknown profile 'nope'.*available: p"):
        load_profile(tmp_path, "nope", SPECS)


@pytest.mark.parametrize("name", sorted(p.stem for p in (REPO / "ci" / "profiles").glob("*.yaml")))
def test_every_shipped_profile_is_valid_for_every_chapter(name):
    layout = BookLayout(REPO)
    profile = load_book_profile(layout, name)
    assert set(profile.chapters) == set(layout.chapters())
    for chapter, variant in profile.variants.items():
        assert layout.chapter_source(chapter, variant).is_file()


VARIANTS = {"01_a": {"real": parse_parameters_source("model: str = 'x'", "a/real")}}


def test_a_variant_is_validated_against_its_own_parameters(tmp_path):
    text = "chapters:\n  01_a: {variant: real, model: m}\n  02_b: {}\n"
    prof = load_profile(write(tmp_path, text), "p", SPECS, VARIANTS)
    assert prof.variants == {"01_a": "real"} and prof.chapters["01_a"] == {"model": "m"}
    with pytest.raises(ParameterError, match="chapter '01_a': unknown parameter 'steps'"):
        load_profile(
            write(tmp_path, "chapters:\n  01_a: {variant: real, steps: 1}\n  02_b: {}\n"),
            "p",
            SPECS,
            VARIANTS,
        )
    with pytest.raises(ParameterError, match=r"unknown variant 'gpu'; available: real"):
        load_profile(write(tmp_path, "chapters:\n  01_a: {variant: gpu}\n  02_b: {}\n"), "p", SPECS, VARIANTS)
    with pytest.raises(ParameterError, match=r"unknown variant 'real'; available: \(none\)"):
        load_profile(
            write(tmp_path, "chapters:\n  01_a: {}\n  02_b: {variant: real}\n"), "p", SPECS, VARIANTS
        )


def test_the_real_profiles_choose_the_real_model_variants():
    layout = BookLayout(REPO)
    for name in ("gemma-2-2b", "llama-3.1-8b"):
        profile = load_book_profile(layout, name)
        assert set(profile.variants) == {
            "04_sae_geometry",
            "05_finetuning_mechanism",
            "06_geometry_filtering",
            "08_blocking_directions",
        }
        assert all(profile.chapters[c]["model"] != "organism" for c in profile.variants)


SHARED_SPECS = {
    "01_a": parse_parameters_source("seeds: list[int] = [0]\nsteps: int = 1", "a"),
    "02_b": parse_parameters_source("seeds: list[int] = [0]\nn: int = 2", "b"),
    "03_c": parse_parameters_source("n: int = 2", "c"),
}


def test_a_shared_value_reaches_exactly_the_chapters_that_declare_it(tmp_path):
    text = "shared:\n  seeds: [0, 1, 2]\n  n: 7\nchapters:\n  01_a: {steps: 3}\n  02_b: {}\n  03_c: {}\n"
    prof = load_profile(write(tmp_path, text), "p", SHARED_SPECS)
    assert prof.shared == {"seeds": [0, 1, 2], "n": 7}
    assert prof.chapters == {
        "01_a": {"seeds": [0, 1, 2], "steps": 3},
        "02_b": {"seeds": [0, 1, 2], "n": 7},
        "03_c": {"n": 7},
    }


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "shared: {seeds: [1]}\nchapters:\n  01_a: {seeds: [2]}\n  02_b: {}\n  03_c: {}\n",
            r"chapter '01_a': \['seeds'\] are set in the 'shared' section",
        ),
        (
            "shared: {sedes: [1]}\nchapters:\n  01_a: {}\n  02_b: {}\n  03_c: {}\n",
            r"shared parameters \['sedes'\] are declared by no chapter",
        ),
        (
            "shared: {seeds: 3}\nchapters:\n  01_a: {}\n  02_b: {}\n  03_c: {}\n",
            r"chapter '01_a' \(from 'shared'\): parameter 'seeds' must be list\[int\]",
        ),
        ("shared: [1]\nchapters: {}\n", "'shared' must map parameter names"),
    ],
)
def test_bad_shared_sections_are_refused(tmp_path, text, message):
    with pytest.raises(ParameterError, match=message):
        load_profile(write(tmp_path, text), "p", SHARED_SPECS)
