"""Trace replay: the readers, their error messages, the replay controls, convert and stats.

The published traces under ``../shared/traces`` are used when present (those
tests skip, saying why, when they are absent); everything else runs on the
synthetic samples in ``traces/`` and on tiny files written to ``tmp_path``.
"""

from __future__ import annotations

import csv
import functools
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from simulator.config.schema import TraceConfig
from simulator.errors import ConfigError
from simulator.report import trace_charts as TC
from simulator.workload import traces as T
from tests.conftest import SHARED

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "traces"
AZURE = SHARED / "traces" / "azure_conv_2023" / "AzureLLMInferenceTrace_conv.csv"
MOONCAKE = SHARED / "traces" / "mooncake_synthetic" / "synthetic_trace.jsonl"

needs_azure = pytest.mark.skipif(
    not AZURE.exists(), reason=f"shared Azure 2023 conversation trace not found at {AZURE}"
)
needs_mooncake = pytest.mark.skipif(
    not MOONCAKE.exists(), reason=f"shared Mooncake synthetic trace not found at {MOONCAKE}"
)

SAMPLE = {
    "azure": SAMPLES / "sample_azure.csv",
    "burstgpt": SAMPLES / "sample_burstgpt.csv",
    "mooncake": SAMPLES / "sample_mooncake.jsonl",
    "servesim": SAMPLES / "sample_servesim.parquet",
}
SAMPLE_ROWS = {"azure": 400, "burstgpt": 400, "mooncake": 300, "servesim": 300}


@functools.cache
def _read(path: str, fmt: str = "auto") -> T.Trace:
    return T.read(path, fmt)


def shared_azure() -> T.Trace:
    return _read(str(AZURE))


def shared_mooncake() -> T.Trace:
    return _read(str(MOONCAKE))


def sample(fmt: str) -> T.Trace:
    return _read(str(SAMPLE[fmt]))


def tc(**kw) -> TraceConfig:
    return TraceConfig(**kw)


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text)
    return p


def error(path, fmt="auto") -> str:
    with pytest.raises(ConfigError) as exc:
        T.read(path, fmt)
    msg = str(exc.value)
    assert "\n" not in msg and "Traceback" not in msg
    return msg


AZ_HEAD = "TIMESTAMP,ContextTokens,GeneratedTokens\n"
BURST_HEAD = "Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type\n"

# --------------------------------------------------------------------------- parsing


@needs_azure
def test_shared_azure_parses():
    assert T.detect(AZURE) == "azure"
    tr = shared_azure()
    assert tr.format == "azure" and len(tr) == 19_366
    assert tr.prompt_tokens[:2].tolist() == [374, 396]
    assert tr.output_tokens[:2].tolist() == [44, 109]
    # 18:15:50.9951690 - 18:15:46.6805900, exactly (100 ns ticks)
    assert tr.arrival_s[0] == 0.0
    assert tr.arrival_s[1] == pytest.approx(4.314579, abs=1e-9)
    assert tr.origin == "2023-11-16 18:15:46.680590"
    assert tr.prefix_flat is None
    # last row: 2023-11-16 19:14:08.4025270 -> 58 min 21.72 s after the first
    assert tr.arrival_s[-1] == pytest.approx(3501.721937, abs=1e-6)


@needs_mooncake
def test_shared_mooncake_parses_ms_to_seconds_and_hash_ids():
    assert T.detect(MOONCAKE) == "mooncake"
    tr = shared_mooncake()
    assert tr.format == "mooncake" and len(tr) == 3_993
    with MOONCAKE.open() as fh:
        first = [json.loads(next(fh)) for _ in range(3)]
    assert tr.prompt_tokens[:3].tolist() == [r["input_length"] for r in first]
    assert tr.output_tokens[:3].tolist() == [r["output_length"] for r in first]
    assert tr.arrival_s[:3].tolist() == [r["timestamp"] / 1000 for r in first]  # ms -> s
    assert tr.arrival_s[2] == pytest.approx(0.040)
    assert tr.arrival_s[-1] == pytest.approx(1022.025)
    ids = tr.prefix_list()
    assert ids[0].tolist() == first[0]["hash_ids"] and tr.prefix_block_tokens == 512
    # one id per started 512-token block
    assert (np.diff(tr.prefix_offsets) == -(-tr.prompt_tokens // 512)).all()


@pytest.mark.parametrize("fmt", sorted(SAMPLE))
def test_samples_parse_and_autodetect(fmt):
    path = SAMPLE[fmt]
    assert T.detect(path) == fmt
    tr = sample(fmt)
    assert tr.format == fmt and len(tr) == SAMPLE_ROWS[fmt]
    assert path.stat().st_size < 200_000
    assert (tr.prompt_tokens >= 1).all() and (tr.output_tokens >= 1).all()
    assert (np.diff(tr.arrival_s) >= 0).all()
    w = T.replay(tr, tc())
    assert w.arrival_s[0] == 0.0 and len(w) == len(tr)


def test_sample_first_values_match_the_files():
    with SAMPLE["azure"].open() as fh:
        rows = list(csv.DictReader(fh))[:2]
    az = sample("azure")
    assert az.prompt_tokens[:2].tolist() == [int(r["ContextTokens"]) for r in rows]
    assert az.output_tokens[:2].tolist() == [int(r["GeneratedTokens"]) for r in rows]
    frac = [float("0." + r["TIMESTAMP"].split(".")[1]) for r in rows]
    secs = [int(r["TIMESTAMP"][17:19]) for r in rows]
    assert az.arrival_s[1] == pytest.approx(
        (secs[1] + frac[1]) - (secs[0] + frac[0]) + 60 * (secs[1] < secs[0]), abs=1e-7
    )

    with SAMPLE["burstgpt"].open() as fh:
        rows = list(csv.DictReader(fh))[:3]
    bg = sample("burstgpt")
    assert bg.arrival_s[:3].tolist() == [float(r["Timestamp"]) for r in rows]
    assert bg.prompt_tokens[:3].tolist() == [int(r["Request tokens"]) for r in rows]
    assert bg.output_tokens[:3].tolist() == [int(r["Response tokens"]) for r in rows]
    assert bg.tenant[:3].tolist() == [r["Model"] for r in rows]

    with SAMPLE["mooncake"].open() as fh:
        first = json.loads(next(fh))
    mc = sample("mooncake")
    assert mc.prefix_list()[0].tolist() == first["hash_ids"] and mc.arrival_s[0] == first["timestamp"] / 1000

    table = pq.read_table(SAMPLE["servesim"])
    ss = sample("servesim")
    assert ss.prefix_block_tokens == 256  # from the Parquet metadata
    assert ss.arrival_s.tolist() == table["arrival_s"].to_pylist()
    assert ss.tenant.tolist() == table["tenant"].to_pylist()
    assert ss.session.tolist() == table["session_id"].to_pylist()
    assert ss.priority.tolist() == table["priority"].to_pylist()
    assert [x.tolist() for x in ss.prefix_list()] == table["prefix_ids"].to_pylist()


def test_burstgpt_tiny_with_session_and_float_seconds(tmp_path):
    p = write(
        tmp_path,
        "b.csv",
        "Timestamp,Session ID,Elapsed time,Model,Request tokens,Response tokens,Total tokens,Log Type\n"
        "5.5,a1,0,ChatGPT,472,18,490,Conversation log\n"
        "45,a1,2,ChatGPT,1087,230,1317,Conversation log\n"
        "118.25,b2,1,GPT-4,417,276,693,API log\n",
    )
    tr = T.read(p)
    assert tr.format == "burstgpt"
    assert tr.arrival_s.tolist() == [5.5, 45.0, 118.25]
    assert tr.session.tolist() == ["a1", "a1", "b2"] and tr.tenant.tolist() == ["ChatGPT", "ChatGPT", "GPT-4"]
    w = T.replay(tr, tc())
    assert w.arrival_s.tolist() == [0.0, 39.5, 112.75]  # re-based
    assert w.prompt_tokens.tolist() == [472, 1087, 417] and w.output_tokens.tolist() == [18, 230, 276]


def test_azure_2024_zone_offsets(tmp_path):
    p = write(
        tmp_path, "a.csv", AZ_HEAD + "2024-05-10 00:00:00.009930+00:00,10,2\n2024-05-10 00:00:01.509930+00:00,20,3\n"
    )
    assert T.read(p).arrival_s.tolist() == [0.0, 1.5]


def test_servesim_csv_with_prefix_ids(tmp_path):
    p = write(
        tmp_path,
        "s.csv",
        "arrival_s,prompt_tokens,output_tokens,tenant,prefix_ids,prefix_block_tokens\n"
        "0.5,40,3,a,1 2 3,16\n1.0,20,4,b,1 2,16\n2.0,5,1,a,,16\n",
    )
    tr = T.read(p)
    assert tr.format == "servesim" and tr.prefix_block_tokens == 16
    assert [x.tolist() for x in tr.prefix_list()] == [[1, 2, 3], [1, 2], []]
    assert tr.tenant.tolist() == ["a", "b", "a"]


def test_gzip_and_sniffed_extension(tmp_path):
    import gzip

    gz = tmp_path / "t.csv.gz"
    gz.write_bytes(gzip.compress((AZ_HEAD + "2023-11-16 18:15:46.0000000,5,6\n").encode()))
    assert T.read(gz).prompt_tokens.tolist() == [5]
    txt = write(tmp_path, "trace.txt", '{"timestamp": 5, "input_length": 3, "output_length": 2, "hash_ids": [7]}\n')
    assert T.detect(txt) == "mooncake"


# --------------------------------------------------------------------------- detection errors


def test_unknown_and_ambiguous_formats(tmp_path):
    msg = error(write(tmp_path, "x.csv", "a,b,c\n1,2,3\n"))
    assert "cannot tell the trace format" in msg and "a, b, c" in msg
    for f in T.FORMATS:
        assert f in msg
    both = write(
        tmp_path, "both.csv", "TIMESTAMP,ContextTokens,GeneratedTokens,arrival_s,prompt_tokens,output_tokens\n"
    )
    assert "more than one format (azure, servesim)" in error(both)
    assert "not a known trace format" in error(SAMPLE["azure"], "foo")
    blob = tmp_path / "x.bin"
    blob.write_bytes(b"\x00\x01\x02\x03")
    msg = error(blob)
    assert "cannot tell the trace format" in msg and "mooncake" in msg
    bad_json = write(tmp_path, "x.jsonl", '{"foo": 1}\n')
    assert "first record (keys: foo)" in error(bad_json)


def test_missing_file_names_the_path(tmp_path):
    msg = error(tmp_path / "nope.csv")
    assert str(tmp_path / "nope.csv") in msg and "does not exist" in msg


# --------------------------------------------------------------------------- bad data

BAD_CSV = [
    # (name, text, fmt, expected fragments)
    (
        "missing",
        "TIMESTAMP,ContextTokens\n2023-11-16 18:15:46.0,5\n",
        "azure",
        ["missing required column(s) GeneratedTokens", "found: TIMESTAMP, ContextTokens"],
    ),
    (
        "text",
        AZ_HEAD + "2023-11-16 18:15:46.0,5,6\n2023-11-16 18:15:47.0,abc,6\n",
        "azure",
        ["row 2 (line 3)", "column 'ContextTokens'", "'abc' is not a number"],
    ),
    (
        "zero-out",
        AZ_HEAD + "2023-11-16 18:15:46.0,5,6\n2023-11-16 18:15:47.0,5,6\n2023-11-16 18:15:48.0,5,0\n",
        "azure",
        ["row 3 (line 4)", "column 'GeneratedTokens'", "0 is not a positive token count", "output token"],
    ),
    (
        "zero-in",
        BURST_HEAD + "1,ChatGPT,0,5,5,API log\n",
        "burstgpt",
        ["row 1 (line 2)", "column 'Request tokens'", "0 is not a positive", "prompt token"],
    ),
    (
        "negative",
        BURST_HEAD + "1,ChatGPT,4,5,9,API log\n2,ChatGPT,4,-3,1,API log\n",
        "burstgpt",
        ["row 2 (line 3)", "column 'Response tokens'", "-3 is not a positive"],
    ),
    (
        "nan",
        BURST_HEAD + "1,ChatGPT,4,5,9,API log\n2,ChatGPT,NaN,5,9,API log\n",
        "burstgpt",
        ["row 2 (line 3)", "column 'Request tokens'", "not a finite number"],
    ),
    (
        "empty-cell",
        AZ_HEAD + "2023-11-16 18:15:46.0,5,6\n2023-11-16 18:15:47.0,,6\n",
        "azure",
        ["row 2 (line 3)", "column 'ContextTokens'", "empty"],
    ),
    (
        "fraction",
        BURST_HEAD + "1,ChatGPT,4.5,5,9,API log\n",
        "burstgpt",
        ["row 1 (line 2)", "column 'Request tokens'", "4.5 is not a whole number"],
    ),
    (
        "bad-time",
        AZ_HEAD + "2023-11-16 18:15:46.0,5,6\nyesterday,5,6\n",
        "azure",
        ["row 2 (line 3)", "column 'TIMESTAMP'", "'yesterday' is not a date-time"],
    ),
    (
        "bad-seconds",
        BURST_HEAD + "1,ChatGPT,4,5,9,API log\nsoon,ChatGPT,4,5,9,API log\n",
        "burstgpt",
        ["row 2 (line 3)", "column 'Timestamp'", "'soon' is not a number"],
    ),
    (
        "fields",
        AZ_HEAD + "2023-11-16 18:15:46.0,5,6\n2023-11-16 18:15:47.0,5\n",
        "azure",
        ["line 3", "2 fields where the header has 3"],
    ),
    ("header-only", AZ_HEAD, "azure", ["no rows"]),
    ("empty", "", None, ["empty"]),
]


@pytest.mark.parametrize("name,text,fmt,fragments", BAD_CSV, ids=[b[0] for b in BAD_CSV])
def test_bad_csv_data(tmp_path, name, text, fmt, fragments):
    p = write(tmp_path, f"{name}.csv", text)
    for how in ("auto", fmt) if fmt else ("auto",):
        msg = error(p, how)
        assert msg.startswith(f"trace {p}"), msg
        for frag in fragments:
            assert frag in msg, msg


def test_bad_data_deep_in_a_large_file_names_the_exact_row(tmp_path):
    rows = [f"{i},ChatGPT,4,5,9,API log" for i in range(50_000)]
    rows[43_210] = "43210,ChatGPT,4,x5,9,API log"
    p = write(tmp_path, "big.csv", BURST_HEAD + "\n".join(rows) + "\n")
    assert "row 43211 (line 43212), column 'Response tokens': 'x5' is not a number" in error(p)


BAD_JSONL = [
    (
        "malformed",
        '{"timestamp": 0, "input_length": 3, "output_length": 2}\n\n{"timestamp": 1, "input_length": 3\n',
        ["line 3", "malformed JSON"],
    ),
    (
        "missing-key",
        '{"timestamp": 0, "output_length": 2}\n',
        ["missing required key(s) input_length", "found: timestamp, output_length"],
    ),
    (
        "zero-out",
        '{"timestamp": 0, "input_length": 3, "output_length": 2}\n{"timestamp": 1, "input_length": 3, "output_length": 0}\n',
        ["row 2 (line 2)", "column 'output_length'", "0 is not a positive token count"],
    ),
    (
        "text-in",
        '{"timestamp": 0, "input_length": "many", "output_length": 2}\n',
        ["row 1 (line 1)", "column 'input_length'", "'many' is not a number"],
    ),
    (
        "hash",
        '{"timestamp": 0, "input_length": 3, "output_length": 2, "hash_ids": "7"}\n',
        ["row 1 (line 1)", "column 'hash_ids'", "list of integers"],
    ),
    (
        "null-ts",
        '{"timestamp": null, "input_length": 3, "output_length": 2}\n',
        ["row 1 (line 1)", "column 'timestamp'", "null"],
    ),
]


@pytest.mark.parametrize("name,text,fragments", BAD_JSONL, ids=[b[0] for b in BAD_JSONL])
def test_bad_jsonl_data(tmp_path, name, text, fragments):
    p = write(tmp_path, f"{name}.jsonl", text)
    msg = error(p, "mooncake")
    assert msg.startswith(f"trace {p}")
    for frag in fragments:
        assert frag in msg, msg


def test_jsonl_rows_and_lines_differ_across_blank_lines(tmp_path):
    p = write(
        tmp_path,
        "gap.jsonl",
        '{"timestamp": 0, "input_length": 3, "output_length": 2}\n\n{"timestamp": 1, "input_length": 0, "output_length": 2}\n',
    )
    assert "row 2 (line 3)" in error(p)


def test_bad_parquet_data(tmp_path):
    p = tmp_path / "n.parquet"
    pq.write_table(pa.table({"arrival_s": [0.0, 1.0], "prompt_tokens": [3, None], "output_tokens": [1, 1]}), p)
    msg = error(p)
    assert "row 2, column 'prompt_tokens'" in msg and "empty" in msg
    pq.write_table(pa.table({"arrival_s": [0.0], "prompt_tokens": [3]}), p)
    msg = error(p)
    assert "missing required column(s) output_tokens" in msg and "found: arrival_s, prompt_tokens" in msg
    pq.write_table(pa.table({"arrival_s": [0.0, float("nan")], "prompt_tokens": [3, 3], "output_tokens": [1, 1]}), p)
    assert "row 2, column 'arrival_s'" in error(p)
    pq.write_table(pa.table({"arrival_s": [0.0], "prompt_tokens": [True], "output_tokens": [1]}), p)
    assert "column 'prompt_tokens': has type bool" in error(p)


def test_backwards_timestamps_fail_then_sort_with_a_warning(tmp_path):
    p = write(
        tmp_path, "back.csv", BURST_HEAD + "1,A,10,1,11,x\n3,A,20,1,21,x\n2,A,30,1,31,x\n2,A,40,1,41,x\n5,A,50,1,51,x\n"
    )
    tr = T.read(p)
    with pytest.raises(ConfigError) as exc:
        T.replay(tr, tc())
    msg = str(exc.value)
    assert f"trace {p}, row 3 (line 4), column 'Timestamp': timestamps go backwards" in msg
    assert "workload.trace.sort=true" in msg
    with pytest.warns(UserWarning, match="sorted the rows by time"):
        w = T.replay(tr, tc(sort=True))
    assert w.arrival_s.tolist() == [0.0, 1.0, 1.0, 2.0, 4.0]
    assert w.prompt_tokens.tolist() == [10, 30, 40, 20, 50]  # ties keep file order
    assert w.notes["rows_sorted"] == 3


# --------------------------------------------------------------------------- replay controls


def test_control_values_are_checked():
    tr = sample("azure")
    cases = [
        (dict(speedup=0.0), "workload.trace.speedup"),
        (dict(sample=0.0), "workload.trace.sample"),
        (dict(sample=1.5), "workload.trace.sample"),
        (dict(start_s=10.0, end_s=5.0), "workload.trace.start_s must be < workload.trace.end_s"),
        (dict(start_s=-1.0), "workload.trace.start_s"),
        (dict(target_rate=0.0), "workload.trace.target_rate"),
        (dict(target_rate=5.0, speedup=2.0), "not both"),
        (dict(loop=True), "workload.trace.loop=true"),
        (dict(format="csv"), "workload.trace.format"),
    ]
    for kw, fragment in cases:
        with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
            T.replay(tr, tc(**kw))
    with pytest.raises(ConfigError, match="keep no request"):
        T.replay(tr, tc(start_s=1e6))


def test_window_rebases_on_the_trace_clock():
    tr = sample("azure")
    t = tr.arrival_s - tr.arrival_s[0]
    w = T.replay(tr, tc(start_s=20.0, end_s=50.0))
    keep = (t >= 20.0) & (t < 50.0)
    assert len(w) == keep.sum() == w.notes["kept_after_window"]
    np.testing.assert_allclose(w.arrival_s, t[keep] - t[keep][0], atol=1e-12)
    assert w.prompt_tokens.tolist() == tr.prompt_tokens[keep].tolist()
    assert T.replay(tr, tc(end_s=30.0)).arrival_s.max() < 30.0


def test_speedup_divides_gaps_and_target_rate_sets_the_rate():
    tr = sample("burstgpt")
    base = T.replay(tr, tc())
    fast = T.replay(tr, tc(speedup=4.0))
    np.testing.assert_allclose(np.diff(fast.arrival_s), np.diff(base.arrival_s) / 4.0, rtol=1e-12, atol=1e-12)
    w = T.replay(tr, tc(target_rate=7.5))
    assert (len(w) - 1) / (w.arrival_s[-1] - w.arrival_s[0]) == pytest.approx(7.5, rel=1e-12)
    assert w.prompt_tokens.tolist() == base.prompt_tokens.tolist()


def test_sample_is_seeded_ordered_and_keeps_the_fraction():
    tr = shared_azure() if AZURE.exists() else sample("azure")
    n, p = len(tr), 0.3
    a = T.replay(tr, tc(sample=p), seed=7)
    b = T.replay(tr, tc(sample=p), seed=7)
    c = T.replay(tr, tc(sample=p), seed=8)
    assert np.array_equal(a.arrival_s, b.arrival_s) and np.array_equal(a.prompt_tokens, b.prompt_tokens)
    assert not np.array_equal(a.arrival_s, c.arrival_s) or len(a) != len(c)
    assert (np.diff(a.arrival_s) >= 0).all()
    se = math.sqrt(n * p * (1 - p))
    assert abs(len(a) - n * p) <= 4 * se, (len(a), n * p, se)
    assert a.notes["kept_after_sample"] == len(a) and a.notes["rows_read"] == n


def test_clip_counts_and_limits_lengths():
    tr = sample("azure")
    max_len = 4096
    w = T.replay(tr, tc(), max_len=max_len)
    too_long = tr.prompt_tokens + tr.output_tokens > max_len
    assert w.notes["clipped_requests"] == too_long.sum() > 0
    assert (w.prompt_tokens + w.output_tokens <= max_len).all()
    assert (w.prompt_tokens <= max_len - 1).all() and (w.output_tokens >= 1).all()
    ok = ~too_long
    assert w.prompt_tokens[ok].tolist() == tr.prompt_tokens[ok].tolist()
    # prompt first clipped to max_len - 1, then the output to what is left
    i = int(np.flatnonzero(tr.prompt_tokens >= max_len)[0])
    assert (w.prompt_tokens[i], w.output_tokens[i]) == (max_len - 1, 1)
    first = int(np.flatnonzero(too_long)[0])
    with pytest.raises(ConfigError) as exc:
        T.replay(tr, tc(clip=False), max_len=max_len)
    msg = str(exc.value)
    assert f"row {first + 1} (line {first + 2})" in msg and "workload.trace.clip=true" in msg


def test_clip_truncates_prefix_ids():
    tr = sample("mooncake")
    w = T.replay(tr, tc(), max_len=2048)
    for ids, prompt in zip(w.prefix_ids, w.prompt_tokens):
        assert len(ids) <= -(-int(prompt) // 512)
    long_row = int(np.argmax(tr.prompt_tokens))
    assert w.prefix_ids[long_row].tolist() == tr.prefix_list()[long_row][:4].tolist()


@needs_mooncake
def test_shared_mooncake_clips_to_the_model_context():
    w = T.replay(shared_mooncake(), tc(), max_len=131_072)
    assert (
        w.notes["clipped_requests"]
        == int((shared_mooncake().prompt_tokens + shared_mooncake().output_tokens > 131_072).sum())
        == 10
    )


def test_loop_reaches_num_requests_and_duration():
    tr = sample("mooncake")
    n = len(tr)
    w = T.replay(tr, tc(loop=True), num_requests=1000)
    assert len(w) == 1000 and w.notes["loops"] == 4 and (np.diff(w.arrival_s) >= 0).all()
    span = tr.arrival_s[-1] - tr.arrival_s[0]
    period = span + span / (n - 1)
    assert w.arrival_s[n] == pytest.approx(period)  # next copy: one mean gap after the last request
    assert w.prompt_tokens[n : 2 * n].tolist() == tr.prompt_tokens.tolist()
    # copies do not share prefix blocks; within a copy the structure is the trace's
    a, b = np.concatenate(w.prefix_ids[:n]), np.concatenate(w.prefix_ids[n : 2 * n])
    assert not set(a.tolist()) & set(b.tolist()) and np.unique(a).size == np.unique(b).size
    d = T.replay(tr, tc(loop=True), duration_s=3 * span)
    t = tr.arrival_s - tr.arrival_s[0]
    expected = np.concatenate([t + k * period for k in range(4)])
    np.testing.assert_allclose(d.arrival_s, expected[expected < 3 * span], rtol=0, atol=1e-9)
    assert d.notes["capped_by"] == "duration_s" and d.notes["loops"] == 3


def test_without_loop_num_requests_and_duration_cap_the_trace():
    tr = sample("azure")
    w = T.replay(tr, tc(), num_requests=50)
    assert len(w) == 50 and w.notes["capped_by"] == "num_requests"
    w = T.replay(tr, tc(), duration_s=10.0)
    assert w.arrival_s.max() < 10.0 and len(w) == int((tr.arrival_s - tr.arrival_s[0] < 10.0).sum())
    assert len(T.replay(tr, tc(), num_requests=10_000)) == len(tr)


def test_notes_record_every_step():
    w = T.replay(
        sample("mooncake"),
        tc(start_s=10.0, end_s=150.0, sample=0.5, speedup=2.0),
        seed=1,
        num_requests=40,
        max_len=3000,
    )
    n = w.notes
    assert (
        n["rows_read"] == 300
        and n["rows_read"] > n["kept_after_window"] > n["kept_after_sample"] >= n["requests"] == 40
    )
    assert (
        n["time_scale"] == 0.5 and n["loops"] == 1 and n["clipped_requests"] >= 1 and n["capped_by"] == "num_requests"
    )


def test_load_from_a_scenario_config():
    import simulator
    from simulator.config.compose import to_scenario

    cfg = to_scenario(
        simulator.compose(
            [
                f"workload.trace.path={SAMPLE['servesim']}",
                "workload.num_requests=100",
                "memory.max_model_len=4096",
                "seed=3",
            ]
        )
    )
    w = T.load(cfg)
    assert len(w) == 100 and (w.prompt_tokens + w.output_tokens <= 4096).all()
    assert w.prefix_block_tokens == 256 and w.tenant is not None and len(w.prefix_ids) == 100
    cfg.workload.trace.path = str(ROOT / "traces" / "missing.csv")
    with pytest.raises(ConfigError, match="workload.trace.path="):
        T.load(cfg)


# --------------------------------------------------------------------------- tier and tenant labels


def _scenario(path, *overrides):
    import simulator

    return simulator.load_config([f"workload.trace.path={path}", "workload.arrival=trace", *overrides])


def test_servesim_tier_column_is_read_kept_and_converted(tmp_path):
    p = write(
        tmp_path,
        "t.csv",
        "arrival_s,prompt_tokens,output_tokens,tenant,tier\n0,10,5,acme,pro\n1,10,5,zed,free\n2,10,5,acme,pro\n",
    )
    tr = T.read(p)
    assert tr.tier.tolist() == ["pro", "free", "pro"]
    w = T.load(_scenario(p, "++tiers={free: {share: 1}, pro: {share: 0}}", "workload.tenants=3"))
    assert w.tier.tolist() == ["pro", "free", "pro"]  # the trace's tiers, not drawn by share
    assert w.tenant.tolist() == ["acme", "zed", "acme"]  # the trace's tenants, not drawn
    out = tmp_path / "t.parquet"
    T.write(tr, out)
    assert T.read(out).tier.tolist() == ["pro", "free", "pro"]
    looped = T.replay(tr, tc(loop=True), num_requests=7)
    assert looped.tier.tolist() == ["pro", "free", "pro"] * 2 + ["pro"]


def test_trace_labels_missing_are_drawn(tmp_path):
    """A trace without tier or tenant columns gets them as synthetic traffic would."""
    tiers = "++tiers={free: {share: 3}, pro: {share: 1}}"
    w = T.load(_scenario(SAMPLE["azure"], tiers, "workload.tenants=2", "workload.num_requests=null"))
    assert set(w.tier.tolist()) == {"free", "pro"}
    assert all(t.startswith(f"{tier}-") for t, tier in zip(w.tenant.tolist(), w.tier.tolist()))
    plain = T.load(_scenario(SAMPLE["azure"], "workload.num_requests=null"))
    assert plain.tier is None and plain.tenant is None
    assert plain.arrival_s.tobytes() == w.arrival_s.tobytes()
    # a trace tier column with tenants drawn per trace tier
    p = write(tmp_path, "t.csv", "arrival_s,prompt_tokens,output_tokens,tier\n0,10,5,pro\n1,10,5,free\n")
    w = T.load(_scenario(p, tiers, "workload.tenants=1"))
    assert w.tier.tolist() == ["pro", "free"] and w.tenant.tolist() == ["pro-0", "free-0"]


def test_trace_tier_errors(tmp_path):
    p = write(tmp_path, "t.csv", "arrival_s,prompt_tokens,output_tokens,tier\n0,10,5,pro\n1,10,5,gold\n")
    with pytest.raises(ConfigError) as exc:
        T.load(_scenario(p, "++tiers={pro: {share: 1}}"))
    assert str(exc.value) == (
        f"trace {p}, row 2 (line 3), column 'tier': tier 'gold' is not a tier of the scenario "
        "(the scenario defines pro); add it to tiers or drop the column."
    )
    with pytest.raises(ConfigError, match=r"row 1 \(line 2\), column 'tier'.*the scenario defines no tiers"):
        T.load(_scenario(p))
    empty = write(tmp_path, "e.csv", "arrival_s,prompt_tokens,output_tokens,tier\n0,10,5,pro\n1,10,5,\n")
    assert "row 2 (line 3), column 'tier': the cell is empty." in error(empty)


# --------------------------------------------------------------------------- convert and stats


def _same(a, b):
    assert np.array_equal(a.arrival_s, b.arrival_s)
    assert np.array_equal(a.prompt_tokens, b.prompt_tokens) and np.array_equal(a.output_tokens, b.output_tokens)
    if a.prefix_ids is None:
        assert b.prefix_ids is None
    else:
        assert [x.tolist() for x in a.prefix_ids] == [x.tolist() for x in b.prefix_ids]
    assert a.prefix_block_tokens == b.prefix_block_tokens


@pytest.mark.parametrize("src", ["azure", "burstgpt", "mooncake", "servesim"])
@pytest.mark.parametrize("ext", [".parquet", ".csv"])
def test_convert_round_trips(tmp_path, src, ext):
    from simulator.tracecli import main

    path = AZURE if src == "azure" and AZURE.exists() else SAMPLE[src]
    out = tmp_path / f"out{ext}"
    assert main(["convert", str(path), str(out)]) == 0
    assert T.detect(out) == "servesim"
    original, converted = _read(str(path)), T.read(out)
    _same(T.replay(original, tc()), T.replay(converted, tc()))
    if original.tenant is not None:
        assert converted.tenant.tolist() == original.tenant.tolist()


def test_convert_refuses_backwards_times_unless_sorted(tmp_path, capsys):
    from simulator.tracecli import main

    p = write(tmp_path, "back.csv", BURST_HEAD + "1,A,10,1,11,x\n3,A,20,1,21,x\n2,A,30,1,31,x\n")
    with pytest.raises(SystemExit) as exc:
        main(["convert", str(p), str(tmp_path / "o.parquet")])
    assert exc.value.code == 2 and "timestamps go backwards" in capsys.readouterr().err
    assert main(["convert", str(p), str(tmp_path / "o.parquet"), "--sort"]) == 0
    assert "warning" in capsys.readouterr().err
    assert T.read(tmp_path / "o.parquet").arrival_s.tolist() == [0.0, 1.0, 2.0]


def test_prefix_reuse_numbers_by_hand(tmp_path):
    p = write(
        tmp_path,
        "r.jsonl",
        '{"timestamp": 0, "input_length": 1024, "output_length": 1, "hash_ids": [1, 2]}\n'
        '{"timestamp": 1000, "input_length": 1300, "output_length": 1, "hash_ids": [1, 2, 3]}\n'
        '{"timestamp": 2000, "input_length": 600, "output_length": 1, "hash_ids": [1, 4]}\n',
    )
    s = T.describe(T.read(p))["prefix"]
    assert s["blocks"] == 7 and s["distinct_blocks"] == 4
    assert s["block_reuse"] == pytest.approx(3 / 7)  # 1, 2 in row 2; 1 in row 3
    assert s["token_reuse"] == pytest.approx((512 + 512 + 512) / (1024 + 1300 + 600))


def _stats(path, tmp_path, capsys) -> tuple[str, Path]:
    from simulator.tracecli import main

    assert main(["stats", str(path), "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    pngs = list(tmp_path.glob("*_stats.png"))
    assert len(pngs) == 1 and pngs[0].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and pngs[0].stat().st_size > 20_000
    return out, pngs[0]


@needs_azure
def test_stats_shared_azure(tmp_path, capsys):
    out, png = _stats(AZURE, tmp_path, capsys)
    for text in ("19,366", "5.530 req/s", "1.094", "3,501.7 s", "1,020", "14,050", "129", "1,000"):
        assert text in out, text
    assert "prefix" not in out and png.name == "AzureLLMInferenceTrace_conv_stats.png"


@needs_mooncake
def test_stats_shared_mooncake(tmp_path, capsys):
    out, _ = _stats(MOONCAKE, tmp_path, capsys)
    for text in ("3,993", "3.906 req/s", "11,587", "191,378", "43,924 distinct", "64.0%", "65.1%"):
        assert text in out, text


def test_fit_prints_a_workload_that_runs(tmp_path, capsys):
    """`servesim-trace fit` prints YAML whose tables, used as overrides, reproduce the trace's lengths."""
    import yaml

    import simulator
    from simulator.tracecli import main

    rows = "".join(f"{t},{p},{o}\n" for t, (p, o) in enumerate(zip(range(10, 1010, 10), range(100, 0, -1))))
    path = write(tmp_path, "t.csv", "arrival_s,prompt_tokens,output_tokens\n" + rows)
    assert main(["fit", str(path)]) == 0
    fitted = yaml.safe_load(capsys.readouterr().out)
    assert fitted["arrival"] == "constant" and fitted["rate"] == pytest.approx(1.0, rel=0.02)  # one a second
    assert fitted["prompt_tokens"]["tokens"][0] == 10 and fitted["prompt_tokens"]["tokens"][-1] == 1000
    assert fitted["output_tokens"]["tokens"][-1] == 100
    overrides = [
        f"workload.{key}.{field}=[{','.join(map(str, fitted[key][field]))}]"
        for key in ("prompt_tokens", "output_tokens")
        for field in ("quantiles", "tokens")
    ]
    cfg = simulator.load_config(overrides)
    assert cfg.workload.prompt_tokens.tokens[-1] == 1000


def test_stats_sample_and_errors(tmp_path, capsys):
    from simulator.tracecli import main

    out, _ = _stats(SAMPLE["servesim"], tmp_path, capsys)
    assert "300" in out and "256 tokens" in out
    with pytest.raises(SystemExit) as exc:
        main(["stats", str(tmp_path / "missing.jsonl")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and err.startswith("servesim-trace: error: trace file") and "missing.jsonl" in err


def test_generator_reproduces_the_samples(tmp_path):
    import importlib.util

    spec = importlib.util.spec_from_file_location("trace_generate", SAMPLES / "generate.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gen.main(tmp_path)
    for name in ("sample_azure.csv", "sample_burstgpt.csv", "sample_mooncake.jsonl"):
        assert (tmp_path / name).read_bytes() == (SAMPLES / name).read_bytes(), name
    assert pq.read_table(tmp_path / "sample_servesim.parquet").equals(
        pq.read_table(SAMPLES / "sample_servesim.parquet")
    )


def test_convert_refuses_to_overwrite_its_input_and_names_its_own_sort_flag(tmp_path, capsys):
    from simulator import tracecli

    src = tmp_path / "t.csv"
    src.write_text("TIMESTAMP,ContextTokens,GeneratedTokens\n2023-11-16 18:15:48.0000000,374,44\n2023-11-16 18:15:47.0000000,300,44\n")
    with pytest.raises(SystemExit) as info:
        tracecli.main(["convert", str(src), str(src)])
    assert info.value.code == 2 and "is the input trace itself" in capsys.readouterr().err
    assert src.read_text().startswith("TIMESTAMP")  # untouched
    with pytest.raises(SystemExit) as info:
        tracecli.main(["convert", str(src), str(tmp_path / "out.parquet")])
    assert info.value.code == 2 and "use --sort to sort the rows" in capsys.readouterr().err


# --------------------------------------------------------------------------- unreadable files (issue 14, item 2)

_NOISE = np.random.default_rng(14).bytes(4096)  # random bytes: not UTF-8 (0x80-0xff without a lead byte)
_SERVESIM_ROWS = b"arrival_s,prompt_tokens,output_tokens\n0,10,5\n1,12,6\n"


def _gz_corrupt(body: bytes, how: str) -> bytes:
    import gzip

    z = bytearray(gzip.compress(body, mtime=0))
    if how == "truncated":
        return bytes(z[: len(z) // 2])
    for k in range(len(z) // 3, len(z) // 3 + 64):  # scramble the middle of the deflate stream
        z[k] ^= 0x5A
    return bytes(z)


def _big_csv() -> bytes:
    rng = np.random.default_rng(1)
    rows = "".join(f"{i * 0.1:.1f},{a},{b}\n" for i, (a, b) in enumerate(rng.integers(1, 5000, size=(20_000, 2))))
    return b"arrival_s,prompt_tokens,output_tokens\n" + rows.encode()


def _big_jsonl() -> bytes:
    rng = np.random.default_rng(2)
    return "".join(
        f'{{"timestamp": {i * 100}, "input_length": {a}, "output_length": {b}}}\n'
        for i, (a, b) in enumerate(rng.integers(1, 5000, size=(20_000, 2)))
    ).encode()


# name, bytes, format, what the sentence says
UNREADABLE = [
    ("binary.csv", lambda: _NOISE, "auto", "line 1: is not UTF-8 text"),
    ("binary.jsonl", lambda: _NOISE, "auto", "line 1: is not UTF-8 text"),
    ("latin1.csv", lambda: _SERVESIM_ROWS + "2,caf\xe9,3\n".encode("latin-1"), "auto", "line 4: is not UTF-8 text"),
    ("header_then_binary.csv", lambda: _SERVESIM_ROWS + _NOISE, "auto", "line 4: is not UTF-8 text"),
    (
        "header_then_binary.jsonl",
        lambda: b'{"timestamp": 0, "input_length": 10, "output_length": 5}\n' + _NOISE,
        "auto",
        "line 2: is not UTF-8 text",
    ),
    ("azure_binary.csv", lambda: AZ_HEAD.encode() + b"2023-11-16 18:15:46.6805900,10,5\n" + _NOISE, "azure", "is not UTF-8 text"),
    ("forced_azure.csv", lambda: _NOISE, "azure", "line 1: is not UTF-8 text"),
    ("truncated.csv.gz", lambda: _gz_corrupt(_big_csv(), "truncated"), "auto", "is a corrupt or truncated gzip file"),
    ("scrambled.csv.gz", lambda: _gz_corrupt(_big_csv(), "scrambled"), "auto", "is a corrupt or truncated gzip file"),
    ("truncated.jsonl.gz", lambda: _gz_corrupt(_big_jsonl(), "truncated"), "auto", "is a corrupt or truncated gzip file"),
    ("scrambled.jsonl.gz", lambda: _gz_corrupt(_big_jsonl(), "scrambled"), "auto", "is a corrupt or truncated gzip file"),
    ("not_gzip.csv.gz", lambda: _SERVESIM_ROWS, "auto", "is not valid gzip data"),
    ("binary.csv.gz", lambda: __import__("gzip").compress(_SERVESIM_ROWS + _NOISE, mtime=0), "auto", "line 4: is not UTF-8 text"),
]


@pytest.fixture(params=UNREADABLE, ids=[u[0] for u in UNREADABLE])
def unreadable(request, tmp_path):
    name, make, fmt, fragment = request.param
    p = tmp_path / "traces" / name
    p.parent.mkdir()
    p.write_bytes(make())
    return p, fmt, fragment


def test_unreadable_trace_is_one_sentence_naming_the_file(unreadable):
    p, fmt, fragment = unreadable
    msg = error(p, fmt)
    assert msg.startswith(f"trace {p}") and fragment in msg and msg.endswith(".")


def test_unreadable_trace_stats_exits_2_with_one_line(unreadable, tmp_path, capsys):
    from simulator.tracecli import main

    p, fmt, fragment = unreadable
    with pytest.raises(SystemExit) as exc:
        main(["stats", str(p), "--format", fmt, "--out", str(tmp_path / "charts")])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"servesim-trace: error: trace {p}") and fragment in err
    assert "Traceback" not in err and not (tmp_path / "charts").exists()


CLI_UNREADABLE = ["header_then_binary.csv", "scrambled.csv.gz", "truncated.jsonl.gz", "azure_binary.csv"]


@pytest.mark.parametrize("case", CLI_UNREADABLE)
def test_unreadable_trace_run_exits_2_and_leaves_no_run_directory(case, tmp_path):
    from tests.conftest import servesim_cli

    name, make, fmt, fragment = next(u for u in UNREADABLE if u[0] == case)
    p = tmp_path / name
    p.write_bytes(make())
    proc = servesim_cli("workload.arrival=trace", f"workload.trace.path={p}", f"workload.trace.format={fmt}", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"servesim: error: trace {p}") and fragment in lines[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists(), list((tmp_path / "outputs").rglob("*"))  # no run directory, no empty date folder


# --------------------------------------------------------------------------- replay says what it changed (issue 14, item 3)


def _rows_csv(tmp_path, n: int, prompt=lambda i: 50, name="rows.csv") -> Path:
    p = tmp_path / name
    p.write_text("arrival_s,prompt_tokens,output_tokens\n" + "".join(f"{i * 0.01:.2f},{prompt(i)},4\n" for i in range(n)))
    return p


def test_trace_replay_defaults_to_the_whole_trace(tmp_path):
    import simulator

    p = _rows_csv(tmp_path, 2_500)  # more rows than the chat workload's 2,000 requests
    cfg = _scenario(p)
    assert cfg.workload.num_requests is None and len(T.load(cfg)) == 2_500
    assert _scenario(p, "workload.num_requests=2000").workload.num_requests == 2_000  # a user's cap still caps
    assert len(T.load(_scenario(p, "workload.num_requests=300"))) == 300
    assert _scenario(p, "workload.trace.loop=true").workload.num_requests == 2_000  # a loop needs an end
    assert simulator.load_config([]).workload.num_requests == 2_000  # synthetic runs unchanged
    assert simulator.load_config(["workload.arrival=poisson"]).workload.num_requests == 2_000


def test_cli_replays_the_whole_trace_and_says_so(tmp_path):
    import subprocess
    import sys

    p = _rows_csv(tmp_path, 2_100)
    args = [sys.executable, "-m", "simulator.cli", "workload.arrival=trace", f"workload.trace.path={p}", "output.charts=false"]
    proc = subprocess.run([*args, f"hydra.run.dir={tmp_path}/run"], cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert "replay: all 2,100 rows of rows.csv (servesim), unchanged" in proc.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["requests"]["total"] == 2_100
    proc = subprocess.run(
        [*args, "workload.num_requests=2000", f"hydra.run.dir={tmp_path}/capped"], cwd=tmp_path, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, proc.stderr
    assert "capped at workload.num_requests=2000 (null replays the whole trace)" in proc.stdout


def _summary_with(notes: dict, rejected: dict | None = None) -> dict:
    base = {
        "trace": "/x/conversation_trace.jsonl", "trace_format": "mooncake", "rows_read": 1000, "rows_sorted": 0,
        "kept_after_window": 1000, "kept_after_sample": 1000, "sample": 1.0, "window_s": None, "time_scale": 1.0,
        "clipped_in_trace": 0, "clipped_requests": 0, "max_len": 131072, "loops": 1, "capped_by": None,
        "num_requests": None, "duration_s": None, "requests": 1000, "max_batch_tokens": 8192,
    }
    rejected = rejected or {}
    return {"workload": {**base, **notes}, "requests": {"total": 1000, "rejected_by_reason": rejected}}


def test_console_states_every_change_replay_made():
    from simulator.report.console import replay_line

    assert replay_line({"requests": {}}) is None  # synthetic traffic: no replay line
    assert replay_line(_summary_with({})) == "replay: all 1,000 rows of conversation_trace.jsonl (mooncake), unchanged"
    line = replay_line(
        _summary_with(
            {
                "rows_sorted": 3, "window_s": [10.0, None], "kept_after_window": 900, "sample": 0.5,
                "kept_after_sample": 450, "time_scale": 0.5, "clipped_requests": 7, "max_len": 4096,
                "capped_by": "num_requests", "num_requests": 400, "requests": 400,
            }
        )
    )
    for part in (
        "replay: 400 requests from 1,000 rows", "3 rows sorted by time", "window [10 s, end) kept 900 rows",
        "sampled 50%: kept 450", "gaps scaled x0.5", "7 requests clipped to 4,096 tokens",
        "capped at workload.num_requests=400 (null replays the whole trace)",
    ):
        assert part in line, part
    looped = replay_line(_summary_with({"loops": 3, "capped_by": "num_requests", "num_requests": 2500, "requests": 2500}))
    assert "looped 3 times" in looped and "capped at workload.num_requests=2500" in looped and "null" not in looped
    assert "cut at workload.duration_s=60" in replay_line(_summary_with({"capped_by": "duration_s", "duration_s": 60.0}))


def test_console_explains_rejections_with_a_hint():
    from simulator.report.console import rejection_lines

    lines = rejection_lines(_summary_with({}, {"prompt_exceeds_max_batch_tokens": 500, "queue_full": 3}))
    assert lines == [
        "note: 500 rejected (50% of requests): prompt_exceeds_max_batch_tokens (prompts longer than "
        "scheduler.max_batch_tokens=8192; raise it or use scheduler=chunked_prefill)"
    ]
    assert "kv_capacity (prompt + output larger than one replica's whole KV cache" in rejection_lines(
        _summary_with({}, {"kv_capacity": 2})
    )[0]


def test_run_with_overlong_prompts_prints_the_rejection_hint(tmp_path):
    import io

    from rich.console import Console

    import simulator
    from simulator.report.console import render_summary

    p = _rows_csv(tmp_path, 8, prompt=lambda i: 17_000 if i % 2 else 100)
    result = simulator.run(["workload.arrival=trace", f"workload.trace.path={p}"])
    assert result.summary["requests"]["rejected_by_reason"] == {"prompt_exceeds_max_batch_tokens": 4}
    buf = io.StringIO()
    render_summary(result.summary, console=Console(file=buf, width=200, highlight=False, soft_wrap=True))
    out = buf.getvalue()
    assert "replay: all 8 rows of rows.csv (servesim), unchanged" in out
    assert (
        "note: 4 rejected (50% of requests): prompt_exceeds_max_batch_tokens (prompts longer than "
        "scheduler.max_batch_tokens=16384; raise it or use scheduler=chunked_prefill)" in out
    )


# --------------------------------------------------------------------------- stats charts with zero gaps (issue 14, item 9)


def test_stats_chart_with_zero_gaps_and_a_narrow_gap_range_is_reproducible(tmp_path):
    # Mooncake-like: most requests share a timestamp, the rest come every 3 s (+/- 1 ms)
    t = np.repeat(np.arange(200) * 3000 + (np.arange(200) % 3), 10)
    p = tmp_path / "bursty.jsonl"
    p.write_text("".join(f'{{"timestamp": {int(x)}, "input_length": {100 + i}, "output_length": 5}}\n' for i, x in enumerate(t)))
    tr = T.read(p)
    s = T.describe(tr)
    assert s["zero_gaps"] == 200 * 9
    a = TC.stats_chart(tr, tmp_path / "a.png", s).read_bytes()
    b = TC.stats_chart(tr, tmp_path / "b.png").read_bytes()
    assert a == b and a[:8] == b"\x89PNG\r\n\x1a\n"


def test_stats_chart_when_every_request_arrives_at_once(tmp_path):
    p = write(tmp_path, "once.csv", "arrival_s,prompt_tokens,output_tokens\n" + "5,10,5\n" * 20)
    assert TC.stats_chart(T.read(p), tmp_path / "once.png").read_bytes()[:4] == b"\x89PNG"
    assert TC._fmt_gap(1e-5) == "10 µs" and TC._fmt_gap(0.1) == "100 ms" and TC._fmt_gap(2.0) == "2 s"


def test_a_failed_run_in_its_own_working_directory_is_one_line_and_leaves_nothing(tmp_path):
    """hydra.job.chdir: the run directory is the job's working directory when the run fails and is removed."""
    from tests.conftest import servesim_cli

    proc = servesim_cli("hydra.job.chdir=true", "workload.arrival=trace", "workload.trace.path=nosuch.csv", cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("servesim: error: workload.trace.path='nosuch.csv' is not a file"), proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()
