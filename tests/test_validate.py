"""servesim-validate: replay a recording, compare, calibrate; recordings made by servesim with hidden factors.

The oracle: a recording servesim itself produced, replayed under the same
scenario, must match to rounding; produced under hidden latency factors, the
calibration must recover them (within the tolerances stated below) and drive
the error on a held-out recording under 3%.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import simulator
from simulator.validation import Recording, read_recording
from simulator.validation.calibrate import fit
from simulator.validation.cli import main
from simulator.validation.compare import comparison, headline_error, measured_figures, simulated_figures
from simulator.validation.recording import RecordingError, frame
from simulator.validation.replay import replay

HIDDEN = {"compute_efficiency": 0.6, "memory_efficiency": 0.7, "step_overhead_s": 0.004, "request_overhead_s": 0.015}


def record(path: Path, rate: float, n: int, seed: int, factors: dict | None = None, failed: int = 0) -> Path:
    """A plain recording of a servesim run (with ``factors`` hidden in it); the first ``failed`` rows marked failed."""
    ov = [f"workload.rate={rate}", f"workload.num_requests={n}", f"seed={seed}"]
    ov += [f"latency.{k}={v}" for k, v in (factors or {}).items()]
    q = simulator.run(ov).requests
    q = q[q["status"] == "completed"].sort_values("request_id")
    df = pd.DataFrame({c: q[c].to_numpy() for c in ("arrival_s", "prompt_tokens", "output_tokens", "ttft_s", "e2e_s")})
    df["ok"] = np.arange(len(df)) >= failed
    df.to_csv(path, index=False)
    return path


def test_a_servesim_recording_replays_to_itself(tmp_path):
    rec = read_recording(record(tmp_path / "r.csv", 10, 300, 1))
    rp = replay(rec)
    assert rp.arrivals == "recorded" and rp.paired
    result = simulator.api.run_workload(rp.cfg, rp.workload)
    table = comparison(measured_figures(rp.recorded, None), simulated_figures(result))
    lat = table[table["family"] != "itl"]
    assert lat["error"].abs().max() < 1e-6  # same arrivals, lengths and step times: the same run


def test_failed_requests_are_kept_in_the_recording_and_left_out_of_the_replay(tmp_path):
    rec = read_recording(record(tmp_path / "r.csv", 10, 200, 1, failed=5))
    assert len(rec.requests) == 200 and int((~rec.requests["ok"]).sum()) == 5
    rp = replay(rec)
    assert rp.failed == 5 and len(rp.workload) == 195


def test_calibration_recovers_hidden_factors_and_predicts_a_held_out_load(tmp_path):
    fitted = [read_recording(record(tmp_path / f"r{r}.csv", r, 300, s, HIDDEN)) for r, s in ((4, 5), (14, 3))]
    held = read_recording(record(tmp_path / "r8.csv", 8, 300, 7, HIDDEN))
    f = fit([replay(r) for r in fitted], fitted)
    # stated tolerance: every factor within 10% (measured: 2.5-9.7%; memory_efficiency and step_overhead_s trade against
    # each other at these two loads, docs/validate.md), and the held-out error under 3%
    for k, v in HIDDEN.items():
        assert f.factors[k] == pytest.approx(v, rel=0.10), k
    rp = replay(held)
    from simulator.validation.calibrate import with_factors

    before = simulator.api.run_workload(rp.cfg, rp.workload)
    after = simulator.api.run_workload(with_factors(rp.cfg, f.factors), rp.workload)
    m = measured_figures(rp.recorded, None)
    assert headline_error(comparison(m, simulated_figures(before))) > 0.2
    assert headline_error(comparison(m, simulated_figures(after))) < 0.03


def test_replay_uses_the_best_arrivals_the_file_has(tmp_path):
    n = 50
    base = {"prompt_tokens": np.full(n, 100), "output_tokens": np.full(n, 20), "ttft_s": np.full(n, 0.05), "e2e_s": np.full(n, 0.5)}
    conc = Recording(frame(base), "x", "conc.json", {"request_rate": math.inf, "max_concurrency": 8})
    rp = replay(conc)
    assert rp.arrivals == "concurrency" and rp.cfg.workload.users == 8 and rp.paired
    rate = Recording(frame(base), "x", "rate.json", {"request_rate": 5.0, "burstiness": 4.0})
    rp = replay(rate)
    assert rp.arrivals == "rate" and rp.cfg.workload.arrival == "gamma" and rp.cfg.workload.cv == pytest.approx(0.5)
    assert not rp.paired and list(rp.workload.output_tokens) == [20] * n
    dur = Recording(frame(base), "x", "dur.json", {"duration_s": 10.0})
    assert replay(dur).cfg.workload.rate == pytest.approx(5.0)
    with pytest.raises(RecordingError, match="none.json: records neither send times"):
        replay(Recording(frame(base), "x", "none.json", {}))


def test_the_command_writes_a_report_a_chart_and_the_tables(tmp_path, capsys):
    path = record(tmp_path / "bench.csv", 10, 200, 1, HIDDEN)
    assert main([str(path), "--out", str(tmp_path / "v"), "--formats", "png"]) == 0
    out = tmp_path / "v" / "bench"
    text = (out / "validate.md").read_text()
    assert "read as **plain**" in text and "TTFT p99" in text and "Per request" in text
    assert (out / "validate.png").is_file() and (out / "per_request.csv").is_file()
    table = pd.read_csv(out / "comparison.csv")
    assert set(table["family"]) == {"throughput", "ttft", "tpot", "itl", "e2e"}
    assert "median |error|" in capsys.readouterr().out


def test_bad_input_is_one_sentence(tmp_path, capsys):
    bad = tmp_path / "bad.csv"
    bad.write_text("arrival_s,prompt_tokens\n0,10\n")
    assert main([str(bad)]) == 2
    assert "not a recording servesim recognises" in capsys.readouterr().err
    assert main([str(tmp_path / "missing.json")]) == 2
    assert "missing.json: no such file" in capsys.readouterr().err
    nope = tmp_path / "x.csv"
    pd.DataFrame({"arrival_s": [0.0], "prompt_tokens": [0], "output_tokens": [5], "ttft_s": [0.1], "e2e_s": [0.5]}).to_csv(nope, index=False)
    assert main([str(nope)]) == 2
    assert "x.csv: request 0 has prompt_tokens=0" in capsys.readouterr().err


def test_a_chart_format_or_a_forced_reader_that_does_not_fit_is_one_sentence(tmp_path, capsys):
    example = Path(__file__).resolve().parents[1] / "traces" / "recordings" / "vllm_bench_serve.json"
    assert main([str(example), "--formats", "sglang", "--out", str(tmp_path)]) == 2
    assert "chart formats are png and svg (to read every RESULT as sglang, use --format sglang)" in capsys.readouterr().err
    assert not any(tmp_path.iterdir())  # refused before anything was written
    assert main([str(example), "--format", "sglang", "--out", str(tmp_path)]) == 2
    assert "not a sglang result" in capsys.readouterr().err
