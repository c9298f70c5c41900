"""The RL learning curve: moving average arithmetic, the PNG written beside metrics.csv, torn eval lines skipped."""

import json

import numpy as np
import pytest

from vla_gen_bench.training.curves import moving_average, plot_curve

pytest.importorskip("matplotlib")


def test_moving_average_is_trailing_and_starts_with_what_exists():
    np.testing.assert_allclose(moving_average([1, 2, 3, 4, 5], 2), [1, 1.5, 2.5, 3.5, 4.5])
    np.testing.assert_allclose(moving_average([0, 0, 3], 5), [0, 0, 1])


def _rows(n):
    return [
        {"iteration": str(i + 1), "env_steps": str(1280 * (i + 1)), "success": str(0.1 * (i % 3)), "grasp": "0.3",
         "return_mean": str(0.1 + 0.01 * i)}
        for i in range(n)
    ]  # fmt: skip


def test_plot_curve_writes_a_png_with_evaluations_and_survives_a_torn_line(tmp_path):
    ev = tmp_path / "eval.jsonl"
    rec = {"tag": "iter_0002", "results": {"ind": {"successes": 3, "n": 16, "ci_low": 0.07, "ci_high": 0.43}}}
    ev.write_text(json.dumps(rec) + "\n" + json.dumps({**rec, "tag": "final"}) + '\n{"tag": "fin')
    png = plot_curve(_rows(4), tmp_path / "curve.png", ev)
    assert png == tmp_path / "curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(tmp_path.glob("*.tmp.png"))
    assert plot_curve([], tmp_path / "empty.png") is None
    assert not (tmp_path / "empty.png").exists()


def test_metrics_log_redraws_the_curve_each_row(tmp_path):
    from vla_gen_bench.training.run_dir import MetricsLog

    log = MetricsLog(tmp_path / "metrics.csv")
    for row in _rows(2):
        log.log(row)
    assert (tmp_path / "curve.png").stat().st_size > 1000
    assert len(log.rows()) == 2
