from pathlib import Path

import pytest

from emgeom.book.parameters import (
    ParameterError,
    parse_parameters_source,
    read_chapter_parameters,
    validate_overrides,
)

CELL = """
steps: int = 100
lr: float = 1e-3
seeds: list[int] = [0, 1]
name: str = "x"
flag: bool = True
maybe: float | None = None
table: dict[str, float] = {"a": 1.0}
"""


def specs():
    return parse_parameters_source(CELL, "ch.py")


def test_parses_types_and_defaults():
    s = specs()
    assert list(s) == ["steps", "lr", "seeds", "name", "flag", "maybe", "table"]
    assert s["seeds"].default == [0, 1]
    assert str(s["seeds"].type) == "list[int]"
    assert str(s["maybe"].type) == "float | None"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("steps", 5),
        ("lr", 2),
        ("lr", 0.5),
        ("seeds", []),
        ("maybe", None),
        ("maybe", 3.0),
        ("table", {"b": 2}),
    ],
)
def test_accepts_valid_values(name, value):
    assert validate_overrides({name: value}, specs(), "w") == {name: value}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("steps", 1.5),
        ("steps", True),
        ("lr", "0.1"),
        ("seeds", [0, "1"]),
        ("seeds", "0"),
        ("flag", 1),
        ("name", None),
        ("table", {"a": "x"}),
    ],
)
def test_rejects_wrong_types_naming_the_parameter(name, value):
    with pytest.raises(ParameterError, match=rf"parameter '{name}' must be"):
        validate_overrides({name: value}, specs(), "profile 'p', chapter 'c'")


def test_unknown_name_lists_allowed_names_and_all_problems():
    with pytest.raises(ParameterError) as err:
        validate_overrides({"stepz": 1, "lr": "bad"}, specs(), "profile 'smoke', chapter '01_x'")
    text = str(err.value)
    assert "profile 'smoke', chapter '01_x': unknown parameter 'stepz'" in text
    assert "allowed: steps, lr, seeds" in text
    assert "parameter 'lr' must be float" in text  # both problems in one report


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("x = 1", "annotated assignments"),
        ("x: int = 1\nprint(x)", "annotated assignments"),
        ("x: tuple = (1,)", "unsupported type annotation"),
        ("x: int = 'a'", "is not a int"),
        ("x: int = 1\nx: int = 2", "declared twice"),
        ("x: int = f(1)", "must be a literal"),
        ("x: int = ", "not valid Python"),
    ],
)
def test_bad_parameters_cells_are_refused(source, message):
    with pytest.raises(ParameterError, match=message):
        parse_parameters_source(source, "ch.py")


def test_reads_the_tagged_cell_of_a_jupytext_file(tmp_path: Path):
    path = tmp_path / "01_demo.py"
    path.write_text(
        '# %% [markdown]\n# hi\n\n# %% tags=["parameters"]\nsteps: int = 3\n\n# %%\nprint(steps)\n'
    )
    assert read_chapter_parameters(path)["steps"].default == 3
    path.write_text("# %%\nsteps: int = 3\n")
    with pytest.raises(ParameterError, match="exactly one cell tagged 'parameters'"):
        read_chapter_parameters(path)
