"""The figures the notebooks share draw what they are given (dlfd.plots)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from dlfd import plots  # noqa: E402


def _rec(mia, probe, sep, acc):
    return {"mia": mia, "probe_acc": probe, "separability": sep, "test_acc": acc}


def test_collapse_curve_draws_one_line_per_method_and_one_marker_per_model():
    sweeps = {"neggrad": [(1e-2, _rec(0.5, 0.6, 5.0, 0.3)), (1e-3, _rec(0.65, 0.8, 8.0, 0.8))],
              "unsir": [(1e-3, _rec(0.55, 0.7, 7.0, 0.5))]}
    points = {"original": _rec(0.7, 0.81, 8.7, 0.82), "retrained": _rec(0.5, 0.72, 8.0, 0.73)}
    fig = plots.collapse_curve(sweeps, points)
    assert len(fig.axes) == 2
    for ax, key in zip(fig.axes, ("probe_acc", "separability")):
        lines = {line.get_label(): line for line in ax.get_lines()}
        assert set(lines) == {"neggrad", "unsir", "original", "retrained"}
        # sorted by strength: the weakest learning rate first
        assert list(lines["neggrad"].get_xdata()) == [0.65, 0.5]
        assert list(lines["neggrad"].get_ydata()) == [sweeps["neggrad"][1][1][key],
                                                      sweeps["neggrad"][0][1][key]]
        assert [t.get_text() for t in ax.texts] == ["0.001", "0.01", "0.001"]
    plt.close(fig)
