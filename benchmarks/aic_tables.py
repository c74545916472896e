"""Fit the roofline's prefill-attention factors to NVIDIA AIConfigurator's measured kernel tables.

    python benchmarks/aic_tables.py AICONFIGURATOR_CHECKOUT [--gemm]

AIConfigurator (github.com/ai-dynamo/aiconfigurator, Apache-2.0) ships kernel
timings it collected on real GPUs with each engine's own kernels, under
``aic-core/src/aiconfigurator_core/systems/data/<gpu>/<op>/<engine>/<version>/``.
This script reads them from a checkout (nothing is copied into servesim) and
prints:

1. **Context (prefill) attention**, ``context_attention_perf.parquet``: BF16
   query and KV cache, head_dim 128, no sliding window, a fresh prompt of
   ``isl`` tokens for each of ``batch_size`` sequences, per layer. The form
   servesim prices (simulator/latency/roofline.py)::

       t = latency + 4 * heads * head_dim * batch * (pairs + row_pairs * isl) / (bf16_peak * efficiency)

   with ``pairs = isl (isl + 1) / 2`` causal query-key pairs per sequence:
   attention reaches ``efficiency`` of the BF16 peak on long prompts, and each
   query row costs as much as ``row_pairs`` more pairs (the fixed work of a
   query tile: loading it, the softmax bookkeeping, writing the output), which
   is why short prompts run far below that. Least squares on log time, per
   table and jointly per GPU over three engines (TensorRT-LLM, vLLM, SGLang);
   the joint fits are the catalog's ``hardware.attention`` values. Also the
   former model's signed error by prompt length (efficiency 0.60, no row
   cost, the GEMM kernel latency).
2. **Decode attention**, ``generation_attention_perf.parquet``: large kernels
   (batch >= 64, context >= 4k, 4-8 query heads per KV head) read their KV
   cache at 81-87% of HBM bandwidth with BF16 entries, below the GEMMs' share
   (the catalog's ``hardware.attention.decode_kv_rate_bf16_g`` and, per engine,
   ``decode_kv_rate_bf16_by_engine_g``), and with 1-byte FP8 entries the count
   of entries a second, not the bytes, levels off on Hopper (dequantising them
   binds first): ``decode_kv_rate_g`` and ``decode_kv_rate_by_engine_g``.
3. with ``--gemm``, the catalog's ``hardware.gemm`` factors against the BF16
   GEMM tables (``gemm_perf.parquet``), and against the FP8 ones less the
   dynamic activation quantisation they time (each release's
   ``computescale_perf.parquet``: a static-FP8 checkpoint's GEMM): servesim's
   signed error by row count. Then the FP8 efficiency refitted (least squares
   on log time, the other three GEMM factors held) to TensorRT-LLM's newest
   release's static FP8 GEMMs (:data:`FP8_FIT`): H100 and H200 jointly (one
   GH100), L40S and B200 each; these are the catalog's
   ``hardware.gemm.compute_efficiency_fp8``.

Not a test (CI has no checkout of AIConfigurator): it reports the figures
docs/fidelity.md quotes.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd
from gemm_tiles import gemm_s  # the roofline's GEMM time over arrays (benchmarks/gemm_tiles.py)
from scipy.optimize import least_squares

from simulator.config.catalog import load_hardware

DATA = Path("aic-core/src/aiconfigurator_core/systems/data")
#: servesim hardware -> AIConfigurator system directory
SYSTEMS = {"h100-sxm": "h100_sxm", "h200": "h200_sxm", "a100-80gb": "a100_sxm", "l40s": "l40s", "b200": "b200_sxm"}
#: the tables each joint fit uses: one release per engine (the most complete table of each)
JOINT = {
    "hopper": [("h100-sxm", "trtllm/1.2.0rc5"), ("h100-sxm", "vllm/0.19.0"), ("h100-sxm", "sglang/0.5.10"),
               ("h200", "trtllm/1.2.0rc5"), ("h200", "vllm/0.18.0"), ("h200", "sglang/0.5.10")],
    "a100": [("a100-80gb", "trtllm/1.0.0"), ("a100-80gb", "vllm/0.14.0"), ("a100-80gb", "sglang/0.5.10")],
    "l40s": [("l40s", "trtllm/1.0.0"), ("l40s", "vllm/0.14.0"), ("l40s", "sglang/0.5.10")],
}  # B200's tables are left out: they do not follow one form across engines (its joint fit runs to efficiency 1.0)
LENGTHS = ((16, 256), (512, 1024), (1536, 4096), (6144, 16384))
#: the FP8 efficiency fits: GPU group -> (servesim hardware, TensorRT-LLM release) tables
FP8_FIT = {
    "hopper": [("h100-sxm", "1.3.0rc20"), ("h200", "1.3.0rc20")],
    "l40s": [("l40s", "1.3.0rc20")],
    "b200": [("b200", "1.3.0rc20")],
}


def context_table(root: Path, hw: str, engine: str) -> pd.DataFrame:
    d = pd.read_parquet(root / DATA / SYSTEMS[hw] / "attention" / engine / "context_attention_perf.parquet")
    d = d[(d["attn_dtype"] == "bfloat16") & (d["kv_cache_dtype"] == "bfloat16") & (d["head_dim"] == 128)]
    if "window_size" in d:
        d = d[d["window_size"] == 0]
    if "step" in d and (d["step"] == 0).any():
        d = d[d["step"] == 0]
    return d.assign(peak=float(load_hardware(hw).bf16_tflops) * 1e12)


def attention_s(p, d: pd.DataFrame) -> np.ndarray:
    efficiency, row_pairs, latency_us = p
    isl = d["isl"].to_numpy(float)
    work = 4 * d["num_heads"].to_numpy(float) * d["head_dim"].to_numpy(float) * d["batch_size"].to_numpy(float)
    return latency_us * 1e-6 + work * (isl * (isl + 1) / 2 + row_pairs * isl) / (d["peak"].to_numpy() * efficiency)


def fit_attention(d: pd.DataFrame) -> np.ndarray:
    t = d["latency"].to_numpy() * 1e-3  # the tables hold milliseconds

    def resid(p):
        return np.log(attention_s(p, d)) - np.log(t)

    return least_squares(resid, (0.6, 500.0, 12.0), bounds=([0.05, 0.0, 0.0], [1.0, 20000.0, 200.0])).x


def describe(p, d: pd.DataFrame) -> str:
    e = attention_s(p, d) / (d["latency"].to_numpy() * 1e-3) - 1
    return f"median |error| {np.median(np.abs(e)):.1%}, p90 {np.quantile(np.abs(e), 0.9):.1%}"


def by_length(p, d: pd.DataFrame) -> str:
    e = attention_s(p, d) / (d["latency"].to_numpy() * 1e-3) - 1
    isl = d["isl"].to_numpy()
    return "  ".join(f"{lo}-{hi}: {np.median(e[(isl >= lo) & (isl <= hi)]):+.0%}" for lo, hi in LENGTHS)


def attention_report(root: Path) -> None:
    print("Context attention: joint fits (efficiency, row_pairs, latency us) and each table under them")
    for name, tables in JOINT.items():
        parts = []
        for hw, engine in tables:
            try:
                parts.append((hw, engine, context_table(root, hw, engine)))
            except FileNotFoundError:
                print(f"  ({name}: no {hw} {engine} table in this checkout)")
        if not parts:
            continue
        d = pd.concat([x for _, _, x in parts], ignore_index=True)
        p = fit_attention(d)
        print(f"{name}: efficiency {p[0]:.3f}, row_pairs {p[1]:.0f}, latency {p[2]:.1f} us over {len(d)} timings: {describe(p, d)}")
        for hw, engine, x in parts:
            former = (0.60, 0.0, float(load_hardware(hw).gemm.latency_us))
            print(f"  {hw:9s} {engine:16s} {describe(p, x)}; former model by prompt length: {by_length(former, x)}")


#: the generation-attention tables of each GPU's decode figures: each engine's newest release in the checkout
DECODE = {
    "h100-sxm": ("trtllm/1.3.0rc20", "vllm/0.24.0", "sglang/0.5.14"),
    "h200": ("trtllm/1.3.0rc20", "vllm/0.24.0", "sglang/0.5.14"),
    "b200": ("trtllm/1.3.0rc20", "vllm/0.24.0", "sglang/0.5.14"),
    "l40s": ("trtllm/1.3.0rc20", "vllm/0.24.0", "sglang/0.5.14"),
}  # (earlier TensorRT-LLM tables on Hopper and Blackwell read faster than HBM allows: not per-layer timings)


def decode_report(root: Path) -> None:
    """Large decode-attention kernels (batch >= 64, context >= 4k, 4-8 query heads per KV head as the
    catalog's grouped-query models have, head_dim 128), pooled over three engines: the KV entries
    read a second and that as a fraction of HBM, by KV width. hardware.attention.decode_kv_rate_g is
    the FP8 row's rate, decode_kv_rate_by_engine_g each engine's; decode_kv_rate_bf16_g and
    decode_kv_rate_bf16_by_engine_g the BF16 row's. (A100: its newest tables disagree, TensorRT-LLM
    1.0.0 reading faster than HBM allows and SGLang 0.5.10 at 40%: no rate is set.)"""
    print("Decode attention, batch >= 64, context >= 4k, 4-8 query heads per KV head: KV entries/s (fraction of HBM)")
    for hw, engines in DECODE.items():
        spec, parts = load_hardware(hw), []
        for engine in engines:
            path = root / DATA / SYSTEMS[hw] / "attention" / engine / "generation_attention_perf.parquet"
            if path.exists():
                parts.append(pd.read_parquet(path).assign(engine=engine))
        if not parts:
            print(f"  ({hw}: no generation-attention tables in this checkout)")
            continue
        d = pd.concat(parts, ignore_index=True)
        window = d["window_size"].fillna(0) if "window_size" in d else 0  # (a table without the column has none)
        d = d[(d["head_dim"] == 128) & (d["beam_width"] == 1) & (window == 0)]
        ctx = d["isl"] + d["step"]
        ratio = d["num_heads"] / d["num_key_value_heads"]
        keep = (d["batch_size"] >= 64) & (ctx >= 4096) & (ratio >= 4) & (ratio <= 8)
        d, ctx = d[keep], ctx[keep]
        entries = d["batch_size"] * ctx * 2 * d["num_key_value_heads"] * d["head_dim"]
        width = np.where(d["kv_cache_dtype"].astype(str).str.contains("fp8"), 1.0, 2.0)
        rate = entries / (d["latency"] * 1e-3)
        frac = rate * width / (float(spec.memory_bw_gbps) * 1e9)
        for w, name in ((2.0, "bf16"), (1.0, "fp8")):
            sel = width == w
            if sel.any():
                per = " ".join(f"{e.split('/')[0]} {np.median(rate[sel & (d['engine'] == e)]) / 1e9:.0f}" for e in engines
                               if (sel & (d["engine"] == e)).any())
                print(f"  {hw:9s} {name} KV: {np.median(rate[sel]) / 1e9:,.0f} G entries/s ({np.median(frac[sel]):.1%} of HBM) "
                      f"over {int(sel.sum())} timings; by engine: {per}")


def static_fp8(root: Path, hw: str, engine_version: str) -> pd.DataFrame:
    """One release's FP8 GEMM timings (K, N >= 1024) less its activation quantisation: ms per GEMM
    (``latency``) with the GPU's FP8 peak and bandwidth (``peak``, ``bw``), or empty without both tables."""
    gemm = root / DATA / SYSTEMS[hw] / "gemm" / engine_version / "gemm_perf.parquet"
    scale = root / DATA / SYSTEMS[hw] / "quantize" / engine_version / "computescale_perf.parquet"
    if not (gemm.exists() and scale.exists()):
        return pd.DataFrame()
    d = pd.read_parquet(gemm)
    d = d[(d["gemm_dtype"] == "fp8") & (d["m"] > 0) & (d["k"] >= 1024) & (d["n"] >= 1024)]
    q = pd.read_parquet(scale)
    q = q[q["quant_dtype"].astype(str).str.contains("fp8")].groupby(["m", "k"])["latency"].median()
    d = d.join(q.rename("quantise"), on=["m", "k"], how="inner")
    d = d.assign(latency=d["latency"] - d["quantise"])
    spec = load_hardware(hw)
    return d[d["latency"] > 0].assign(peak=float(spec.fp8_tflops or 0) * 1e12, bw=float(spec.memory_bw_gbps) * 1e9)


def _fp8_times(ce: float, rest: tuple[float, float, float], d: pd.DataFrame) -> np.ndarray:
    """The roofline's time (s) of each FP8 GEMM of ``d`` at compute efficiency ``ce`` and the other factors ``rest``."""
    return gemm_s((ce, *rest), {"M": d["m"].to_numpy(float), "K": d["k"], "N": d["n"]}, d["peak"].to_numpy(),
                  d["bw"].to_numpy(), weight_bytes=1)


def fp8_fit(root: Path) -> None:
    """The FP8 compute efficiency that least-squares (log time) TensorRT-LLM's static FP8 GEMMs, the
    other GEMM factors held at the catalog's."""
    bins = ((1, 16), (17, 128), (129, 512), (513, 2048), (2049, 10**6))
    print("FP8 compute efficiency refitted to TensorRT-LLM's static FP8 GEMMs (other factors held)")
    for group, tables in FP8_FIT.items():
        d = pd.concat([static_fp8(root, hw, f"trtllm/{version}") for hw, version in tables])
        if d.empty:
            continue
        g = load_hardware(tables[0][0]).gemm
        rest = (g.memory_efficiency, g.overlap_exponent, g.latency_us)
        y = np.log(d["latency"].to_numpy() * 1e-3)
        ce = float(least_squares(lambda p, d=d, rest=rest, y=y: np.log(_fp8_times(p[0], rest, d)) - y, [0.8],
                                 bounds=([0.2], [1.0])).x[0])
        e, m = _fp8_times(ce, rest, d) / (d["latency"].to_numpy() * 1e-3) - 1, d["m"].to_numpy()
        print(f"  {group:7s} {', '.join(f'{hw} {v}' for hw, v in tables)}: efficiency {ce:.3f} "
              f"(catalog {g.compute_efficiency_fp8:g}), {len(d)} GEMMs, median |error| {np.median(np.abs(e)):.1%}, by rows "
              + "  ".join(f"{np.median(e[(m >= lo) & (m <= hi)]):+.0%}" for lo, hi in bins))


def gemm_report(root: Path) -> None:
    """The catalog's GEMM factors against every BF16 table, and against the FP8 tables with the
    dynamic activation quantisation they include taken out (each release's own ``computescale``
    table, ``quantize/<engine>/<version>/``): what a static-FP8 checkpoint's GEMM costs."""
    bins = ((1, 16), (17, 128), (129, 512), (513, 2048), (2049, 10**6))
    print("GEMMs: the catalog's hardware.gemm factors, signed error by rows (1-16, 17-128, 129-512, 513-2048, more)")
    for dtype in ("bfloat16", "fp8"):
        print(f" {dtype}{' (static: the table less its release computescale table)' if dtype == 'fp8' else ''}")
        for hw in ("h100-sxm", "h200", "a100-80gb"):
            spec = load_hardware(hw)
            g = spec.gemm
            for f in sorted((root / DATA / SYSTEMS[hw] / "gemm").glob("*/*/gemm_perf.parquet")):
                if dtype == "fp8":
                    d = static_fp8(root, hw, f"{f.parent.parent.name}/{f.parent.name}")
                else:
                    d = pd.read_parquet(f)
                    d = d[(d["gemm_dtype"] == dtype) & (d["m"] > 0) & (d["k"] >= 1024) & (d["n"] >= 1024)]
                if d.empty:
                    continue
                m = d["m"].to_numpy(float)
                ce, peak, wb = ((g.compute_efficiency, float(spec.bf16_tflops), 2) if dtype == "bfloat16"
                                else (g.compute_efficiency_fp8, float(spec.fp8_tflops or 0), 1))
                factors = (ce, g.memory_efficiency, g.overlap_exponent, g.latency_us)
                t = gemm_s(factors, {"M": m, "K": d["k"], "N": d["n"]}, peak * 1e12, float(spec.memory_bw_gbps) * 1e9, weight_bytes=wb)
                e = t / (d["latency"].to_numpy() * 1e-3) - 1
                row = "  ".join(f"{np.median(e[(m >= lo) & (m <= hi)]):+.0%}" for lo, hi in bins)
                print(f"  {hw:9s} {f.parent.parent.name}/{f.parent.name:12s} median |error| {np.median(np.abs(e)):.1%}: {row}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkout", type=Path, help="a checkout of github.com/ai-dynamo/aiconfigurator")
    ap.add_argument("--gemm", action="store_true", help="also price the BF16 GEMM tables with the catalog's factors")
    args = ap.parse_args()
    attention_report(args.checkout)
    decode_report(args.checkout)
    if args.gemm:
        gemm_report(args.checkout)
        fp8_fit(args.checkout)


if __name__ == "__main__":
    main()
