import json
import math

import pytest

from emgeom.core import results
from emgeom.core.io import atomic_write_json, atomic_write_text, hash_parts


def test_atomic_write_replaces_whole_file_and_cleans_up_on_error(tmp_path):
    target = tmp_path / "sub" / "a.json"
    atomic_write_json(target, {"a": 1})
    assert json.loads(target.read_text()) == {"a": 1}
    with pytest.raises(ValueError):
        atomic_write_json(target, {"a": math.nan})  # not valid JSON: refused, old file kept
    assert json.loads(target.read_text()) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]
    atomic_write_text(target, "x")
    assert target.read_text() == "x"


def test_hash_parts_is_boundary_sensitive():
    assert hash_parts(["ab", "c"]) != hash_parts(["a", "bc"])
    assert hash_parts([b"x"]) == hash_parts(["x"])


def test_record_writes_the_chapter_file(tmp_path, monkeypatch, capsys):
    path = tmp_path / "r.json"
    monkeypatch.setenv(results.ENV_RESULTS_FILE, str(path))
    monkeypatch.setenv(results.ENV_CHAPTER, "01_x")
    monkeypatch.setenv(results.ENV_PROFILE, "smoke")
    results.record("alpha", 0.5, ci=(0.4, 0.6), n_seeds=3, note="n")
    results.record("beta", math.nan, ci=(0.0, math.inf))
    doc = json.loads(path.read_text())
    assert doc["chapter"] == "01_x" and doc["profile"] == "smoke"
    assert doc["results"]["alpha"] == {"value": 0.5, "ci": [0.4, 0.6], "n_seeds": 3, "note": "n"}
    assert doc["results"]["beta"]["value"] is None and doc["results"]["beta"]["ci"] is None
    assert "recorded alpha = 0.5" in capsys.readouterr().out
    assert results.session_results()["alpha"].value == 0.5


@pytest.mark.parametrize(("name", "kwargs"), [("Bad-Name", {}), ("ok", {"n_seeds": 0})])
def test_record_refuses_bad_input(monkeypatch, name, kwargs):
    monkeypatch.delenv(results.ENV_RESULTS_FILE, raising=False)
    with pytest.raises(ValueError):
        results.record(name, 1.0, **kwargs)
