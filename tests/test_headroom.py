"""Headroom sizing: servesim-plan cheapest over a rate schedule, surviving replica failures at the peak."""

from __future__ import annotations

import pytest

from simulator.errors import ConfigError
from simulator.plan import cheapest
from simulator.plan.cli import main as plan_main
from simulator.plan.headroom import check_schedule, expected_requests, headroom_overrides, parse_schedule, peak

SPIKE = [[0, 6], [20, 18], [40, 6], [60, 0]]  # 6 req/s, a 20-second spike to 18, back to 6, end at 60 s


def test_a_schedule_reads_checks_and_has_a_peak():
    pairs = parse_schedule("0:6, 20:18,40:6,60:0")
    assert pairs == [(0, 6), (20, 18), (40, 6), (60, 0)] == check_schedule(SPIKE)
    assert peak(pairs) == (20, 18) and expected_requests(pairs) == 6 * 20 + 18 * 20 + 6 * 20
    ov = headroom_overrides(pairs, 2, constant_window_s=600)
    assert ov == ["workload.rate_schedule=[[0,6],[20,18],[40,6],[60,0]]", "workload.duration_s=60",
                  "cluster.failures.at_s=[20,20]", "cluster.failures.replica=[]"]  # fmt: skip
    assert headroom_overrides(None, 1, constant_window_s=600) == ["cluster.failures.at_s=[200]", "cluster.failures.replica=[]"]


@pytest.mark.parametrize(("schedule", "message"), [
    ([[0, 6], [20, 18]], "ends with a rate of 0"),
    ([[5, 6], [20, 0]], "starts at time 0"),
    ([[0, 6], [20, 8], [10, 0]], "times increase"),
    ([[0, 0], [20, 0]], "positive rate"),
])  # fmt: skip
def test_bad_schedules_are_refused(schedule, message):
    with pytest.raises(ConfigError, match=message):
        check_schedule(schedule)


def test_bad_schedule_text_is_refused():
    with pytest.raises(ConfigError, match="SECONDS:RATE"):
        parse_schedule("0:6,20")


def test_surviving_a_failure_at_the_peak_takes_more_replicas(tmp_path):
    """One H100 serves the spike; losing the busiest replica as it starts needs a second one."""
    plain = cheapest(None, "ttft_p99_s<=2", rate_schedule=SPIKE, out_dir=tmp_path / "plain")
    robust = cheapest(None, "ttft_p99_s<=2", rate_schedule=SPIKE, survive_failures=1, out_dir=tmp_path / "robust")
    assert plain.best is not None and robust.best is not None
    assert robust.best["replicas"] > plain.best["replicas"]
    assert "with 1 replica failed at the peak" in robust.answer and "peaking at 18 req/s" in robust.answer


def test_the_command_line_takes_a_schedule_and_failures(tmp_path, capsys):
    plan_main(["cheapest", "--schedule", "0:6,20:18,40:6,60:0", "--survive-failures", "1", "--require", "ttft_p99_s<=2",
               "--out", str(tmp_path), "--quiet"])  # fmt: skip
    assert "with 1 replica failed at the peak: 2x h100-sxm" in capsys.readouterr().out


def test_cheapest_needs_a_rate_or_a_schedule(tmp_path):
    with pytest.raises(ConfigError, match="--rate"):
        cheapest(None, "ttft_p99_s<=2", out_dir=tmp_path)
