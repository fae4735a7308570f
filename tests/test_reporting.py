"""dlfd.reporting: means over seeds (docs/method.md, §5 D6 "single runs"), tables and JSON."""

import doctest
import json
import math

import numpy as np
import pytest
import torch

from dlfd import reporting as R


def test_docstring_examples():
    assert doctest.testmod(R).failed == 0


def test_aggregate_mean_std_and_passthrough():
    recs = [{"method": "x", "a": 1.0, "b": 2, "flag": True, "seed": 0},
            {"method": "x", "a": 3.0, "b": float("nan"), "flag": True, "seed": 1},
            {"method": "x", "a": 5.0, "b": 4, "extra": 9.0, "flag": True, "seed": 2}]
    agg = R.aggregate(recs)
    assert agg["n"] == 3 and agg["method"] == "x" and agg["flag"] is True
    assert agg["a_mean"] == pytest.approx(3.0) and agg["a_std"] == pytest.approx(2.0)  # ddof=1
    assert agg["b_mean"] == pytest.approx(3.0)  # NaN skipped
    assert agg["extra_mean"] == 9.0 and math.isnan(agg["extra_std"])  # one value: no spread
    assert "seed_mean" in agg
    mixed = R.aggregate([{"m": "a"}, {"m": "b"}])
    assert "m" not in mixed
    with pytest.raises(ValueError):
        R.aggregate([])


def test_render_table_and_plain():
    rows = {"Original": R.aggregate([{"test_acc": 0.6, "mia": 0.7}, {"test_acc": 0.8, "mia": 0.7}]),
            "Retrained": {"test_acc": 0.61}}
    md = R.render_table(rows, ["test_acc", "mia"], ".3f")
    lines = md.splitlines()
    assert lines[0] == "| method | test_acc | mia |"
    assert "| Original | 0.700 ± 0.141 | 0.700 ± 0.000 |" in lines
    assert "| Retrained | 0.610 | — |" in lines
    md2 = R.render_table(rows, {"test_acc": "TA"}, {"test_acc": ".1f"}, name="model")
    assert md2.splitlines()[0] == "| model | TA |" and "0.7 ± 0.1" in md2
    plain = R.render_plain(rows, ["test_acc", "mia"]).splitlines()
    assert len({len(line.rstrip()) for line in plain[:2]}) == 1  # header and rule align
    assert plain[0].split() == ["method", "test_acc", "mia"]
    assert "0.700 ± 0.141" in plain[2]


def test_save_json_atomic_and_no_overwrite(tmp_path):
    p = tmp_path / "sub" / "r.json"
    obj = {"a": np.float32(0.5), "b": np.arange(3), "c": float("nan"), "d": torch.tensor([1.5]),
           "e": {"f": (1, np.int64(2))}, "g": np.bool_(True)}
    R.save_json(obj, p)
    assert json.loads(p.read_text()) == {"a": 0.5, "b": [0, 1, 2], "c": None, "d": [1.5],
                                         "e": {"f": [1, 2]}, "g": True}
    with pytest.raises(FileExistsError):
        R.save_json({"x": 1}, p)
    assert json.loads(p.read_text())["a"] == 0.5  # untouched
    R.save_json({"x": 1}, p, overwrite=True)
    assert json.loads(p.read_text()) == {"x": 1}
    assert [q.name for q in p.parent.iterdir()] == ["r.json"]  # no temporary left behind
    with pytest.raises(TypeError):
        R.save_json({"x": object()}, tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()


def test_aggregate_nan_and_inf_count_as_numbers():
    agg = R.aggregate([{"rte": float("inf"), "a": 1}, {"rte": float("nan"), "a": np.float32(2)}])
    assert agg["rte_mean"] == float("inf") and "rte" not in agg and agg["a_mean"] == 1.5
    assert R.render_table({"x": {"v": float("nan")}}, ["v"]).splitlines()[-1] == "| x | nan |"


def test_save_json_leaves_nothing_for_an_unstorable_object(tmp_path):
    with pytest.raises(TypeError, match="cannot store a object"):
        R.save_json({"x": object()}, tmp_path / "new" / "bad.json")
    assert not (tmp_path / "new").exists()
