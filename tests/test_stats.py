"""Paired bootstrap comparisons over seeds (dlfd.stats)."""

from __future__ import annotations

import numpy as np
import pytest

from dlfd.stats import (PairedCI, paired_bootstrap_ci, paired_comparisons, paired_table,
                        render_paired)


@pytest.mark.parametrize("d", [0.0, 0.25, -1.5])
def test_constant_difference_gives_a_point_interval(d):
    b = np.array([0.5, 0.25, 0.75, 1.0, 0.0])
    ci = paired_bootstrap_ci(b + d, b, n_boot=500)
    assert ci.mean == pytest.approx(d, abs=1e-12)
    assert ci.low == ci.mean == ci.high and ci.half_width == 0.0
    assert ci.resolved == (d != 0.0)
    assert ci.n == 5


def test_pure_noise_is_mostly_unresolved():
    rng = np.random.default_rng(0)
    contains_zero = 0
    for trial in range(20):
        a, b = rng.normal(0, 1, 50), rng.normal(0, 1, 50)
        ci = paired_bootstrap_ci(a, b, n_boot=2000, seed=trial)
        contains_zero += ci.low <= 0.0 <= ci.high
        assert not ci.resolved or not (ci.low <= 0.0 <= ci.high)
    assert contains_zero >= 16


def test_known_mean_and_interval_around_it():
    rng = np.random.default_rng(1)
    b = rng.normal(0, 1, 40)
    a = b + 0.3 + rng.normal(0, 0.1, 40)
    ci = paired_bootstrap_ci(a, b, n_boot=4000)
    assert ci.mean == pytest.approx(float(np.mean(a - b)))
    assert ci.low < ci.mean < ci.high and ci.resolved
    # The pairing removes the large shared per-seed variation: the CI is about ±2·0.1/√40.
    assert ci.half_width < 0.06
    assert ci.half_width == pytest.approx((ci.high - ci.low) / 2)
    assert ci.as_dict()["resolved"] is True


def test_level_and_seed():
    rng = np.random.default_rng(2)
    a, b = rng.normal(0.1, 1, 30), rng.normal(0, 1, 30)
    wide = paired_bootstrap_ci(a, b, n_boot=3000, level=0.99)
    narrow = paired_bootstrap_ci(a, b, n_boot=3000, level=0.8)
    assert wide.low < narrow.low and narrow.high < wide.high
    assert paired_bootstrap_ci(a, b, seed=3) == paired_bootstrap_ci(a, b, seed=3)


@pytest.mark.parametrize("a,b,match", [
    ([1.0, 2.0, 3.0], [1.0, 2.0], "a has 3 values and b has 2"),
    ([1.0], [2.0], "at least 2 seeds"),
    ([1.0, np.nan], [1.0, 2.0], "a has non-finite values at seed index\\(es\\) \\[1\\]"),
    ([1.0, 2.0], [np.inf, 2.0], "b has non-finite"),
    ([[1.0, 2.0]], [[1.0, 2.0]], "flat list"),
])
def test_bad_inputs_raise(a, b, match):
    with pytest.raises(ValueError, match=match):
        paired_bootstrap_ci(a, b)


@pytest.mark.parametrize("kw", [dict(n_boot=0), dict(level=1.0), dict(level=0.0),
                                dict(seed=-1), dict(n_boot=True)])
def test_bad_settings_raise(kw):
    with pytest.raises(ValueError):
        paired_bootstrap_ci([1.0, 2.0], [0.0, 1.0], **kw)


def test_paired_table_and_render():
    per_seed = {"dlfd": [0.50, 0.55, 0.52], "finetune": [0.70, 0.74, 0.71],
                "retrained": [0.50, 0.55, 0.52]}
    table = paired_table(per_seed, against="dlfd", n_boot=500)
    assert list(table) == ["finetune", "retrained"]
    assert table["finetune"].mean == pytest.approx(0.58 / 3, abs=1e-9)
    assert table["finetune"].resolved and not table["retrained"].resolved
    md = render_paired(table, "mia", against="dlfd")
    lines = md.splitlines()
    assert lines[0] == "| method | mean Δ mia vs dlfd | 95% CI | resolved |"
    assert lines[2].startswith("| finetune | +0.193 | [+0.")
    assert lines[2].endswith("| yes |") and lines[3].endswith("| no |")
    assert len(lines) == 4
    with pytest.raises(ValueError, match="'finetune' has non-finite"):
        paired_table({**per_seed, "finetune": [0.7, float("nan"), 0.7]}, against="dlfd")


def test_render_mixed_levels_puts_level_in_cells():
    t = {"a": PairedCI(0.1, 0.0, 0.2, 3, 0.9, 10), "b": PairedCI(0.1, 0.05, 0.2, 3, 0.95, 10)}
    md = render_paired(t, "acc")
    assert "| CI |" in md.splitlines()[0] and "(90%)" in md and "(95%)" in md


def test_paired_table_errors_name_the_method():
    with pytest.raises(ValueError, match="against='nope'"):
        paired_table({"a": [1.0, 2.0], "b": [1.0, 2.0]}, against="nope")
    with pytest.raises(ValueError, match="'short' has 2 values and 'a' has 3"):
        paired_table({"a": [1.0, 2.0, 3.0], "short": [1.0, 2.0]}, against="a")


def test_paired_comparisons_pairs_by_seed_and_selection():
    rec = lambda v, **kw: {"nomus": v, **kw}
    per_seed = {
        "retrained": {0: rec(0.9), 1: rec(0.8), 2: rec(0.85)},
        "dlfd": {0: rec(0.7), 1: rec(0.6), 2: rec(0.65)},
        "ft": {0: rec(0.75), 1: rec(0.65), 2: rec(0.7, nomus_half_b=0.5)},
        "ft [test]": {0: rec(0.8), 1: rec(0.7)},          # seeds 0 and 1 only
        "ft [test-half]": {1: rec(0.6), 2: rec(0.55)},    # against ft's half B: seed 2 only
        "dlfd_public [test]": {0: rec(0.6), 1: rec(0.5), 2: rec(0.55)},
    }
    out = paired_comparisons(per_seed)
    assert set(out["vs_dlfd"]) == {"retrained", "ft"}
    assert out["vs_dlfd"]["ft"].mean == pytest.approx(0.05)
    assert out["vs_retrained"]["dlfd"].mean == pytest.approx(-0.2)
    sel = out["selection_vs_last"]
    assert sel["ft [test]"].n == 2 and sel["ft [test]"].mean == pytest.approx(0.05)
    assert "ft [test-half]" not in sel  # one common seed with a half-B score: no CI
    assert sel["dlfd_public [test]"].mean == pytest.approx(-0.1)  # against the project's dlfd
