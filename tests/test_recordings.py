"""The recording readers (vLLM, SGLang, genai-perf, LLMPerf) on the synthetic examples in traces/recordings/.

Each reader is checked against the raw file it reads (the expected values are
taken from the JSON, not restated), on sniffing, on failed requests (kept, with
``ok=False``), and on one broken file per format whose message must name the
file and the field.
"""

from __future__ import annotations

import importlib.util
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from simulator.validation import FORMATS, RecordingError, read_recording
from simulator.validation import genai_perf as genai_perf_reader
from simulator.validation import sglang as sglang_reader
from simulator.validation import vllm as vllm_reader

HERE = Path(__file__).resolve().parents[1] / "traces" / "recordings"
VLLM = HERE / "vllm_bench_serve.json"
SGLANG = HERE / "sglang_bench_serving.jsonl"
GENAI = HERE / "genai_perf_profile_export.json"
LLMPERF = HERE / "meta-llama-Llama-3-1-8B-Instruct_550_150_individual_responses.json"
EXAMPLES = {"vllm": VLLM, "sglang": SGLANG, "genai_perf": GENAI, "llmperf": LLMPERF}
MODEL = "meta-llama/Llama-3.1-8B-Instruct"


def _lines(path: Path) -> list[dict]:
    return [json.loads(x) for x in path.read_text().splitlines() if x.strip()]


def _write(path: Path, data) -> Path:
    path.write_text(json.dumps(data))
    return path


def _bad(path: Path, *words: str, fmt: str | None = None, **kw) -> str:
    """The RecordingError message for ``path``; it names the file and each of ``words``."""
    with pytest.raises(RecordingError) as e:
        if kw:
            {"vllm": vllm_reader.read, "sglang": sglang_reader.read, "genai_perf": genai_perf_reader.read}[fmt or ""](path, **kw)
        else:
            read_recording(path, fmt)
    msg = str(e.value)
    assert str(path) in msg, msg
    for w in words:
        assert w in msg, (w, msg)
    return msg


# --- vLLM --------------------------------------------------------------------------------------


def test_vllm_example_maps_every_per_request_list():
    d = json.loads(VLLM.read_text())
    rec = read_recording(VLLM)
    q = rec.requests
    assert rec.format == "vllm" and len(q) == len(d["input_lens"]) == 20
    assert q["prompt_tokens"].tolist() == d["input_lens"] and q["output_tokens"].tolist() == d["output_lens"]
    ok = np.array([not e for e in d["errors"]])
    assert q["ok"].tolist() == ok.tolist() and not q["ok"].iloc[13]  # the failed one is kept
    assert np.allclose(q["ttft_s"][ok], np.array(d["ttfts"])[ok]) and q["ttft_s"][~ok].isna().all()
    assert np.allclose(q["e2e_s"][ok], np.array(d["latencies"])[ok]) and q["e2e_s"][~ok].isna().all()
    assert np.allclose(q["start_s"], np.array(d["start_times"]) - min(d["start_times"])) and q["start_s"].iloc[0] == 0
    assert all(q["itl"].iloc[i] == d["itls"][i] for i in np.flatnonzero(ok)) and q["itl"].iloc[13] is None
    m = rec.meta
    assert (m["request_rate"], m["burstiness"], m["max_concurrency"]) == (4.0, 1.0, None)
    assert m["duration_s"] == d["duration"] and m["model"] == MODEL and m["backend"] == "vllm"
    assert m["date"] == "2025-06-12T14:30:15" and "vllm bench serve" in m["client"] and "with per-request start times" in m["client"]


def test_vllm_older_layout_has_no_start_times_and_sums_the_gaps(tmp_path):
    d = json.loads(VLLM.read_text())
    for k in ("latencies", "start_times", "queue_times", "failed", "endpoint_type", "label"):
        d.pop(k)
    d["request_rate"], d["max_concurrency"] = "inf", 16  # benchmark_serving.py writes "inf" as a string
    rec = read_recording(_write(tmp_path / "old.json", d))
    q = rec.requests
    assert q["start_s"].isna().all()
    sums = np.array([t + math.fsum(g) for t, g in zip(d["ttfts"], d["itls"])])
    assert np.allclose(q["e2e_s"][q["ok"]], sums[q["ok"].to_numpy()])
    assert rec.meta["request_rate"] == math.inf and rec.meta["max_concurrency"] == 16 and "without" in rec.meta["client"]


def test_vllm_append_result_file_reads_the_last_run_or_the_one_asked(tmp_path):
    d = json.loads(VLLM.read_text())
    first = {**d, "request_rate": 1.0, **{k: d[k][:5] for k in ("input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "errors")}}
    p = tmp_path / "appended.json"
    p.write_text(json.dumps(first) + "\n" + json.dumps(d))  # --append-result: one object per line
    last = read_recording(p)
    assert len(last.requests) == 20 and last.meta["request_rate"] == 4.0 and (last.meta["run"], last.meta["runs"]) == (1, 2)
    assert len(vllm_reader.read(p, run=0).requests) == 5
    _bad(p, "run=2", fmt="vllm", run=2)


def test_vllm_bad_files_name_the_file_and_the_field(tmp_path):
    d = json.loads(VLLM.read_text())
    _bad(_write(tmp_path / "short.json", {**d, "ttfts": d["ttfts"][:-1]}), "'ttfts'", "19", "20")
    ttfts = list(d["ttfts"])
    ttfts[2] = -0.5
    _bad(_write(tmp_path / "neg.json", {**d, "ttfts": ttfts}), "ttfts[2]")
    plain = {k: v for k, v in d.items() if k not in ("input_lens", "output_lens", "ttfts", "itls", "latencies", "start_times", "errors")}
    _bad(_write(tmp_path / "summary_only.json", plain), "'input_lens'", "--save-detailed")


# --- SGLang ------------------------------------------------------------------------------------


def test_sglang_example_reads_the_last_run():
    runs = _lines(SGLANG)
    d = runs[-1]
    rec = read_recording(SGLANG)
    q = rec.requests
    assert rec.format == "sglang" and len(runs) == 2 and len(q) == len(d["input_lens"]) == 20
    assert q["prompt_tokens"].tolist() == d["input_lens"] and q["output_tokens"].tolist() == d["output_lens"]
    ok = np.array([not e for e in d["errors"]])
    assert q["ok"].tolist() == ok.tolist() and not q["ok"].iloc[6]
    assert np.allclose(q["ttft_s"][ok], np.array(d["ttfts"])[ok])
    sums = np.array([t + math.fsum(g) for t, g in zip(d["ttfts"], d["itls"])])
    assert np.allclose(q["e2e_s"][ok], sums[ok]) and q["e2e_s"][~ok].isna().all()  # no per-request latency: ttft + sum(itl)
    assert q["start_s"].isna().all()  # not recorded
    assert all(q["itl"].iloc[i] == d["itls"][i] for i in np.flatnonzero(ok))
    m = rec.meta
    assert m["request_rate"] == math.inf and m["max_concurrency"] == 8 and m["burstiness"] is None  # Infinity in the file
    assert m["duration_s"] == d["duration"] and m["model"] == MODEL and m["backend"] == "sglang" and m["date"] is None
    assert (m["run"], m["runs"]) == (1, 2) and "SGLang" in m["client"]


def test_sglang_first_run_and_the_nested_details_layout(tmp_path):
    first = sglang_reader.read(SGLANG, run=0)
    assert len(first.requests) == 12 and first.meta["request_rate"] == 2.0 and first.meta["burstiness"] == 1.0
    d = _lines(SGLANG)[-1]
    keys = ("input_lens", "output_lens", "ttfts", "itls", "generated_texts", "errors")
    nested = {**{k: v for k, v in d.items() if k not in keys}, "details": {k: d[k] for k in keys}}  # benchmark/metrics.py
    p = tmp_path / "nested.jsonl"
    p.write_text(json.dumps(nested) + "\n")
    rec = read_recording(p)
    assert rec.format == "sglang" and len(rec.requests) == 20 and "nested" in rec.meta["client"]


def test_sglang_bad_file_names_the_file_and_the_field(tmp_path):
    runs = _lines(SGLANG)
    no_itls = {k: v for k, v in runs[-1].items() if k != "itls"}
    p = tmp_path / "no_itls.jsonl"
    p.write_text(json.dumps(runs[0]) + "\n" + json.dumps(no_itls) + "\n")
    _bad(p, "'itls'", "--output-details")
    short = {**runs[-1], "output_lens": runs[-1]["output_lens"][:7]}
    p2 = tmp_path / "short.jsonl"
    p2.write_text(json.dumps(short) + "\n")
    _bad(p2, "'output_lens'", "7")


# --- genai-perf --------------------------------------------------------------------------------


def test_genai_perf_example_times_each_request_from_its_ns_timestamps():
    data = json.loads(GENAI.read_text())
    reqs = data["experiments"][0]["requests"]
    rec = read_recording(GENAI)
    q = rec.requests
    assert rec.format == "genai_perf" and len(q) == len(reqs) == 20
    t0 = min(r["timestamp"] for r in reqs)
    assert np.allclose(q["start_s"], [(r["timestamp"] - t0) / 1e9 for r in reqs])
    assert not q["ok"].iloc[9] and q["ok"].sum() == 19 and np.isnan(q["ttft_s"].iloc[9])  # the streamed error is kept
    for i, r in enumerate(reqs):
        if i == 9:
            continue
        # role chunk, content chunks, finish chunk, usage chunk, [DONE]: the content chunks time the request
        content = np.array(r["response_timestamps"][1:-3])
        usage = json.loads(r["response_outputs"][-2]["response"][len("data: ") :])["usage"]
        assert q["ttft_s"].iloc[i] == pytest.approx((content[0] - r["timestamp"]) / 1e9)
        assert q["e2e_s"].iloc[i] == pytest.approx((content[-1] - r["timestamp"]) / 1e9)
        assert np.allclose(q["itl"].iloc[i], np.diff(content) / 1e9)
        assert (q["prompt_tokens"].iloc[i], q["output_tokens"].iloc[i]) == (usage["prompt_tokens"], usage["completion_tokens"])
        assert usage["completion_tokens"] == len(content)
    m = rec.meta
    assert (m["request_rate"], m["max_concurrency"]) == (math.inf, 4) and "burstiness" not in m
    assert m["model"] == MODEL and m["backend"] == "openai v1/chat/completions" and m["date"].startswith("2025-06-12T14:30:15")
    assert m["duration_s"] == pytest.approx((max(r["response_timestamps"][-4] for i, r in enumerate(reqs) if i != 9) - t0) / 1e9)
    assert "genai-perf" in m["client"] and "2.57.0" in m["client"]


def test_genai_perf_without_token_counts_says_what_is_missing_or_uses_a_tokenizer(tmp_path):
    data = json.loads(GENAI.read_text())
    for r in data["experiments"][0]["requests"]:
        keep = [i for i, o in enumerate(r["response_outputs"]) if '"usage":{' not in o["response"]]
        r["response_outputs"] = [r["response_outputs"][i] for i in keep]
        r["response_timestamps"] = [r["response_timestamps"][i] for i in keep]
    p = _write(tmp_path / "profile_export.json", data)
    _bad(p, "token counts", "usage", "requests[0]")
    rec = genai_perf_reader.read(p, count_tokens=lambda s: len(s.split()))
    ok = rec.requests["ok"].to_numpy()
    expected = read_recording(GENAI).requests
    assert (rec.requests["output_tokens"][ok] == expected["output_tokens"][ok]).all()  # one filler word per chunk
    assert np.allclose(rec.requests["ttft_s"][ok], expected["ttft_s"][ok])


def test_genai_perf_joins_an_sse_event_split_across_responses(tmp_path):
    data = json.loads(GENAI.read_text())
    r = data["experiments"][0]["requests"][0]
    chunk, at = r["response_outputs"][2]["response"], r["response_timestamps"][2]
    r["response_outputs"][2:3] = [{"response": chunk[:30]}, {"response": chunk[30:]}]  # perf_analyzer got it in two reads
    r["response_timestamps"][2:3] = [at, at + 1000]
    split, whole = read_recording(_write(tmp_path / "split.json", data)).requests.iloc[0], read_recording(GENAI).requests.iloc[0]
    assert (split["ttft_s"], split["e2e_s"], split["itl"], split["output_tokens"]) == (whole["ttft_s"], whole["e2e_s"], whole["itl"], whole["output_tokens"])


def test_genai_perf_request_rate_mode_and_bad_files(tmp_path):
    data = json.loads(GENAI.read_text())
    data["experiments"][0]["experiment"] = {"mode": "request_rate", "value": 2.5}
    rec = read_recording(_write(tmp_path / "rate.json", data))
    assert (rec.meta["request_rate"], rec.meta["max_concurrency"], rec.meta["burstiness"]) == (2.5, None, math.inf)
    broken = json.loads(GENAI.read_text())
    del broken["experiments"][0]["requests"][3]["response_timestamps"]
    _bad(_write(tmp_path / "missing.json", broken), "requests[3]", "response_timestamps")
    uneven = json.loads(GENAI.read_text())
    uneven["experiments"][0]["requests"][5]["response_timestamps"].pop()
    _bad(_write(tmp_path / "uneven.json", uneven), "requests[5].response_timestamps", "response_outputs")
    early = json.loads(GENAI.read_text())
    r = early["experiments"][0]["requests"][2]
    r["timestamp"] = r["response_timestamps"][-1] + 1
    _bad(_write(tmp_path / "early.json", early), "requests[2].response_timestamps", "negative")


# --- LLMPerf -----------------------------------------------------------------------------------


def test_llmperf_example_and_its_summary():
    rows = json.loads(LLMPERF.read_text())
    rec = read_recording(LLMPERF)
    q = rec.requests
    assert rec.format == "llmperf" and len(q) == len(rows) == 20
    ok = np.array([r["error_code"] is None for r in rows])
    assert q["ok"].tolist() == ok.tolist() and not q["ok"].iloc[15]
    assert q["prompt_tokens"].tolist() == [r["number_input_tokens"] for r in rows]
    assert q["output_tokens"].tolist() == [r["number_output_tokens"] for r in rows]
    assert np.allclose(q["ttft_s"][ok], [r["ttft_s"] for r in rows if r["error_code"] is None])
    assert np.allclose(q["e2e_s"][ok], [r["end_to_end_latency_s"] for r in rows if r["error_code"] is None])
    assert q["e2e_s"][~ok].isna().all() and q["start_s"].isna().all() and q["itl"].isna().all()  # not recorded
    m = rec.meta
    assert (m["request_rate"], m["max_concurrency"], m["model"]) == (math.inf, 4, MODEL)
    assert m["date"] == "2025-06-12T14:35:00+00:00" and "summary" in m["client"]


def test_llmperf_without_its_summary_and_bad_files(tmp_path):
    alone = tmp_path / LLMPERF.name
    shutil.copy(LLMPERF, alone)
    rec = read_recording(alone)
    assert rec.meta["max_concurrency"] is None and rec.meta["model"] is None and "no summary" in rec.meta["client"]
    rows = json.loads(LLMPERF.read_text())
    del rows[4]["ttft_s"]
    _bad(_write(tmp_path / "x_individual_responses.json", rows), "request 4", "'ttft_s'")
    rows = json.loads(LLMPERF.read_text())
    rows[7]["end_to_end_latency_s"] = -1.0
    _bad(_write(tmp_path / "y_individual_responses.json", rows), "request 7", "end_to_end_latency_s")


# --- sniffing and the registry -----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(EXAMPLES))
def test_sniffing_picks_the_right_reader_and_only_it(name):
    path = EXAMPLES[name]
    assert read_recording(path).format == name
    assert [f for f, fmt in FORMATS.items() if fmt.sniff(path)] == [name]
    assert FORMATS[name].read(path).check().format == name


def test_sniff_never_raises(tmp_path):
    odd = [tmp_path, tmp_path / "absent.json", tmp_path / "binary.json", tmp_path / "empty.jsonl"]
    odd[2].write_bytes(bytes(range(256)) * 8)
    odd[3].write_text("")
    for fmt in FORMATS.values():
        for p in odd:
            assert fmt.sniff(p) is False, (fmt.name, p)


def test_an_unknown_file_lists_the_formats(tmp_path):
    p = _write(tmp_path / "mystery.json", {"hello": [1, 2, 3]})
    msg = _bad(p, "not a recording")
    for name in ("vllm", "sglang", "genai_perf", "llmperf", "plain"):
        assert name in msg
    summary = HERE / "meta-llama-Llama-3-1-8B-Instruct_550_150_summary.json"
    assert not any(f.sniff(summary) for f in FORMATS.values())  # the LLMPerf companion is not a recording


def test_the_examples_are_what_generate_py_writes(tmp_path):
    spec = importlib.util.spec_from_file_location("recordings_generate", HERE / "generate.py")
    assert spec and spec.loader
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    gen.HERE = tmp_path
    for f in (gen.vllm, gen.sglang, gen.genai_perf, gen.llmperf):
        f()
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([*(p.name for p in EXAMPLES.values()), "meta-llama-Llama-3-1-8B-Instruct_550_150_summary.json"])
    for name in written:
        assert (tmp_path / name).read_bytes() == (HERE / name).read_bytes(), name
