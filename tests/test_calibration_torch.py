"""The torch calibration harness, the timing helpers and the decoder stack (CPU, tiny shapes)."""

from __future__ import annotations

import json
import math
import socket
from datetime import datetime

import pytest

torch = pytest.importorskip("torch")

import numpy as np  # noqa: E402

from simulator.calibration import harness  # noqa: E402
from simulator.calibration.harness import (  # noqa: E402
    apply_rope,
    decode_attention,
    grid_for,
    measure,
    measure_metadata,
    op_shapes,
    prefill_attention,
    rms_norm,
    rope_cos_sin,
    token_grid,
)
from simulator.calibration.profile import ATTENTION_OPS, STEP_OPS, TOKEN_OPS, normalise  # noqa: E402
from simulator.calibration.stack import DecoderStack  # noqa: E402
from simulator.calibration.timing import device_info, summarise, time_fn  # noqa: E402

TINY = {
    "hidden_size": 128,
    "num_attention_heads": 4,
    "num_kv_heads": 2,
    "head_dim": 32,
    "intermediate_size": 352,
    "vocab_size": 512,
}
GRID = {
    "tokens": [1, 3, 16, 64],
    "lm_head_rows": [1, 4],
    "prefill": [[1, 16], [2, 32]],
    "decode": [[1, 16], [4, 64]],
}
REPEATS = 5
EXPECTED_OPS = (set(TOKEN_OPS) - {"allreduce"}) | set(ATTENTION_OPS) | set(STEP_OPS)


@pytest.fixture(scope="module")
def table():
    return measure(TINY, dtype="fp32", grid=GRID, warmup=1, repeats=REPEATS, threads=1)


# -- the harness table --------------------------------------------------------


def test_table_is_a_valid_profile(table):
    assert list(table.columns) == ["op", "tokens", "batch", "ctx", "time_s", "p10_s", "p90_s", "repeats"]
    again = normalise(table)
    assert again.equals(table)


def test_every_op_is_measured_and_no_allreduce_without_a_process_group(table):
    assert set(table["op"]) == EXPECTED_OPS
    assert "allreduce" not in set(table["op"])


def test_times_are_positive_and_percentiles_ordered(table):
    assert (table["time_s"] > 0).all()
    assert (table["p10_s"] <= table["time_s"]).all()
    assert (table["time_s"] <= table["p90_s"]).all()
    assert (table["repeats"] == REPEATS).all()
    assert table["time_s"].max() < 1.0  # a tiny layer's op takes microseconds, not seconds


def test_recorded_grid_is_what_was_requested_and_measured(table):
    assert table.attrs["grid"] == GRID
    meta = measure_metadata(TINY, 1, "fp32", None, "cpu", GRID, 1, REPEATS)
    assert meta["grid"] == GRID
    json.dumps(meta)  # serialisable
    for op in set(TOKEN_OPS) - {"allreduce"}:
        rows = table[table["op"] == op]
        assert sorted(rows["tokens"]) == GRID["tokens"], op
        assert (rows["batch"] == 0).all() and (rows["ctx"] == 0).all()
    lm = table[table["op"] == "lm_head"]
    assert sorted(lm["tokens"]) == GRID["lm_head_rows"]
    pre = table[table["op"] == "attn_prefill"]
    assert sorted(map(list, zip(pre["batch"], pre["ctx"]))) == GRID["prefill"]
    assert (pre["tokens"] == pre["batch"] * pre["ctx"]).all()
    dec = table[table["op"] == "attn_decode"]
    assert sorted(map(list, zip(dec["batch"], dec["ctx"]))) == GRID["decode"]
    assert (dec["tokens"] == dec["batch"]).all()


def test_partial_grid_falls_back_to_defaults_and_empty_lists_skip():
    g = harness.resolve_grid({"tokens": [2, 8], "prefill": []}, "cpu")
    assert g["tokens"] == [2, 8] and g["prefill"] == []
    assert g["decode"] == grid_for("cpu")["decode"]
    with pytest.raises(ValueError, match="bogus"):
        harness.resolve_grid({"bogus": [1]}, "cpu")
    with pytest.raises(ValueError, match="positive"):
        harness.resolve_grid({"tokens": [0]}, "cpu")


def test_default_grids():
    cpu, gpu = grid_for("cpu"), grid_for("cuda")
    assert cpu["tokens"][:8] == [1, 2, 3, 4, 6, 8, 12, 16] and cpu["tokens"][-2:] == [768, 1024]
    assert token_grid(16384) == gpu["tokens"] and gpu["tokens"][-1] == 16384
    assert cpu["lm_head_rows"] == [1, 2, 4, 8, 16, 32, 64, 128, 256]
    assert gpu["lm_head_rows"][-1] == 1024
    assert len(cpu["prefill"]) == 18 and len(cpu["decode"]) == 24
    assert max(b * n for b, n in gpu["prefill"]) == 32768 and [8, 8192] not in gpu["prefill"]
    assert max(b * c for b, c in gpu["decode"]) == 2**21 and [256, 16384] not in gpu["decode"]
    assert [1, 32768] in gpu["decode"] and [256, 8192] in gpu["decode"]
    json.dumps(gpu)


@pytest.mark.parametrize("name", ["fp8", "int8", "int4"])
def test_unmeasurable_dtypes_raise(name):
    with pytest.raises(ValueError, match=f"{name}.*not measurable"):
        measure(TINY, dtype=name, grid=GRID)
    with pytest.raises(ValueError, match=f"kv_dtype='{name}'"):
        measure(TINY, dtype="bf16", kv_dtype=name, grid=GRID)


def test_unknown_dtype_and_mixed_kv_dtype_raise():
    with pytest.raises(ValueError, match="fp64"):
        measure(TINY, dtype="fp64", grid=GRID)
    with pytest.raises(ValueError, match="kv_dtype"):
        measure(TINY, dtype="bf16", kv_dtype="fp16", grid=GRID)


def test_op_shapes_shard_by_tp():
    one, two, four = op_shapes(TINY, 1), op_shapes(TINY, 2), op_shapes(TINY, 4)
    assert one["qkv_weight"] == ((4 + 2 * 2) * 32, 128)
    assert two["qkv_weight"] == ((2 + 2 * 1) * 32, 128)
    assert two["attn_out_weight"] == (128, 2 * 32)
    assert two["mlp_gate_up_weight"] == (2 * 176, 128)
    assert two["mlp_down_weight"] == (128, 176)
    assert two["lm_head_weight"] == (256, 128)
    assert (four["q_heads"], four["kv_heads"]) == (1, 1)  # KV heads replicate past tp = num_kv_heads
    with pytest.raises(ValueError, match="tp=3"):
        op_shapes(TINY, 3)
    with pytest.raises(ValueError, match="vocab_size"):
        op_shapes({k: v for k, v in TINY.items() if k != "vocab_size"}, 1)


def test_measure_at_tp2_uses_sharded_shapes(monkeypatch):
    seen_linear, seen_decode, seen_prefill = set(), set(), set()
    real_linear, real_decode, real_prefill = harness.linear, harness.decode_attention, harness.prefill_attention

    def spy_linear(x, w):
        seen_linear.add(tuple(w.shape))
        return real_linear(x, w)

    def spy_decode(q, k, v):
        seen_decode.add((tuple(q.shape), tuple(k.shape)))
        return real_decode(q, k, v)

    def spy_prefill(q, k, v, b, n):
        seen_prefill.add((tuple(q.shape), tuple(k.shape), b, n))
        return real_prefill(q, k, v, b, n)

    monkeypatch.setattr(harness, "linear", spy_linear)
    monkeypatch.setattr(harness, "decode_attention", spy_decode)
    monkeypatch.setattr(harness, "prefill_attention", spy_prefill)
    grid = {"tokens": [4], "lm_head_rows": [2], "prefill": [[2, 8]], "decode": [[3, 16]]}
    t = measure(TINY, tp=2, dtype="bf16", grid=grid, warmup=0, repeats=2, threads=1)
    assert set(t["op"]) == EXPECTED_OPS
    assert seen_linear == {(128, 128), (128, 64), (352, 128), (128, 176), (256, 128)}
    assert seen_decode == {((3, 2, 32), (3, 1, 16, 32))}
    assert seen_prefill == {((16, 2, 32), (16, 1, 32), 2, 8)}


def test_threads_set_during_measure_and_restored(monkeypatch):
    before = torch.get_num_threads()
    during = []
    grid = {"tokens": [2], "lm_head_rows": [], "prefill": [], "decode": []}
    t = measure(
        TINY,
        dtype="fp32",
        grid=grid,
        warmup=0,
        repeats=1,
        threads=1,
        progress=lambda msg: during.append((msg, torch.get_num_threads())),
    )
    assert torch.get_num_threads() == before
    assert during and all(n == 1 for _, n in during)
    assert {msg.split(":")[0] for msg, _ in during} == set(TOKEN_OPS) - {"allreduce"}
    assert set(t["op"]) == set(TOKEN_OPS) - {"allreduce"}


def test_metadata_provenance():
    meta = measure_metadata(dict(TINY, name="tiny"), 2, "bf16", None, "cpu", None, 3, 10)
    for key in (
        "source",
        "date",
        "device",
        "device_kind",
        "driver",
        "cuda",
        "torch",
        "model",
        "tp",
        "dtype",
        "kv_dtype",
        "grid",
        "warmup",
        "repeats",
        "allreduce",
    ):
        assert key in meta, key
    assert meta["source"] == "servesim-calibrate"
    assert datetime.fromisoformat(meta["date"]).utcoffset().total_seconds() == 0
    assert meta["device_kind"] == "cpu" and meta["torch"] == torch.__version__
    assert meta["model"] == {"name": "tiny", **TINY}
    assert (meta["tp"], meta["dtype"], meta["kv_dtype"]) == (2, "bf16", "bf16")
    assert meta["grid"] == grid_for("cpu")
    assert "not measured" in meta["allreduce"]
    assert measure_metadata(TINY, 1, "fp32", None, "cpu", GRID, 1, 5, threads=1)["cpu_threads"] == 1
    assert "hostname" not in meta
    host = socket.gethostname()
    if len(host) > 4:
        assert host not in json.dumps(meta)


# -- timing -------------------------------------------------------------------


def test_time_fn_and_summarise():
    calls = []
    s = time_fn(lambda: calls.append(1), device="cpu", warmup=2, repeats=7)
    assert isinstance(s, np.ndarray) and s.shape == (7,) and (s >= 0).all()
    assert len(calls) == 9
    out = summarise([1.0, 2.0, 3.0, 4.0, 5.0])
    assert out == {"time_s": 3.0, "p10_s": pytest.approx(1.4), "p90_s": pytest.approx(4.6), "repeats": 5}
    with pytest.raises(ValueError):
        time_fn(lambda: None, device="cpu", repeats=0)


def test_device_info_cpu():
    info = device_info("cpu")
    assert info["device_kind"] == "cpu" and info["driver"] is None
    assert isinstance(info["device"], str) and info["device"]
    assert info["torch"] == torch.__version__ and info["cpu_threads"] >= 1


# -- the shared operator implementations --------------------------------------


def _reference_attention(q, k, v, causal):
    """q [b, H, Lq, d], k/v [b, KV, Lk, d] with GQA by repeating KV heads."""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    if causal:
        lq, lk = scores.shape[-2:]
        mask = torch.ones(lq, lk, dtype=torch.bool).tril()
        scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


def test_prefill_attention_matches_reference():
    torch.manual_seed(1)
    b, n, hq, hkv, d = 2, 5, 4, 2, 8
    q, k, v = torch.randn(b * n, hq, d), torch.randn(b * n, hkv, d), torch.randn(b * n, hkv, d)
    out = prefill_attention(q, k, v, b, n)
    as_b = lambda t: t.view(b, n, t.shape[1], d).transpose(1, 2)  # noqa: E731
    ref = _reference_attention(as_b(q), as_b(k), as_b(v), causal=True).transpose(1, 2).reshape(b * n, hq * d)
    assert out.shape == (b * n, hq * d)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_decode_attention_matches_reference():
    torch.manual_seed(2)
    b, c, hq, hkv, d = 3, 7, 4, 2, 8
    q, kc, vc = torch.randn(b, hq, d), torch.randn(b, hkv, c, d), torch.randn(b, hkv, c, d)
    out = decode_attention(q, kc, vc)
    ref = _reference_attention(q.unsqueeze(2), kc, vc, causal=False).reshape(b, hq * d)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_rms_norm_and_rope():
    torch.manual_seed(3)
    x, w = torch.randn(4, 16, dtype=torch.bfloat16), torch.randn(16, dtype=torch.bfloat16)
    xf = x.float()
    ref = w * (xf / xf.pow(2).mean(-1, keepdim=True).add(1e-5).sqrt()).to(torch.bfloat16)
    torch.testing.assert_close(rms_norm(x, w, 1e-5), ref)
    q, k = torch.randn(3, 4, 8), torch.randn(3, 2, 8)
    cos, sin = rope_cos_sin(torch.tensor([0, 5, 9]), 8, 10000.0, torch.float32)
    rq, rk = apply_rope(q, k, cos, sin)
    torch.testing.assert_close(rq[0], q[0])  # position 0 is not rotated
    torch.testing.assert_close(rq.norm(dim=-1), q.norm(dim=-1))  # rotations keep lengths
    assert not torch.allclose(rk[1:], k[1:])


# -- the decoder stack --------------------------------------------------------


@pytest.fixture(scope="module")
def stack():
    return DecoderStack(TINY, 2, dtype="fp32", seed=0)


def test_stack_runs_mixed_prefill_only_and_decode_only_steps(stack):
    mixed = stack.run_step(2, 16, 3, 20)
    prefill = stack.run_step(2, 16, 0, 0)
    decode = stack.run_step(0, 0, 3, 20)
    assert mixed.shape == (5, 512) and prefill.shape == (2, 512) and decode.shape == (3, 512)
    assert torch.isfinite(mixed).all()
    # Sequences are independent: batching prefill with decode changes no one's logits.
    torch.testing.assert_close(mixed[:2], prefill, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(mixed[2:], decode, atol=1e-4, rtol=1e-4)


def test_stack_in_bf16():
    logits = DecoderStack(TINY, 1, dtype="bf16").run_step(1, 8, 2, 8)
    assert logits.dtype == torch.bfloat16 and logits.shape == (3, 512) and torch.isfinite(logits).all()


def test_time_step_returns_repeats_positive_samples(stack):
    before = torch.get_num_threads()
    s = stack.time_step(1, 16, 4, 32, warmup=1, repeats=4, threads=1)
    assert s.shape == (4,) and (s > 0).all()
    assert torch.get_num_threads() == before


def test_empty_step_is_an_error(stack):
    with pytest.raises(ValueError, match="at least one"):
        stack.run_step(0, 16, 0, 32)
    with pytest.raises(ValueError, match="at least one"):
        stack.time_step(0, 0, 0, 0)
    with pytest.raises(ValueError, match="prompt_len"):
        stack.run_step(2, 0, 1, 8)
