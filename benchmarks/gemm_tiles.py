"""Does tile quantisation explain the roofline's per-GEMM error? (docs/fidelity_rounds.md, round 4)

    python benchmarks/gemm_tiles.py [--shared ../shared]

Reads Vidur's per-GEMM torch timings (``shared/reference/vidur_profiles/compute``:
A100 Llama-2-7B and Llama-3-8B, H100 Llama-2-7B and Llama-2-70B; QKV, O, gate+up
and down at TP 1-8, up to 4,096 tokens) and prints:

1. the catalog's Hopper/Ampere factors' signed error by row count at TP 1, at
   full tiles (128, 256, 512 rows) and just past them (136, 264, 520): the
   sawtooth a smooth maximum cannot follow;
2. least-squares refits (log time) of the roofline's four GEMM factors
   (compute and memory efficiency, overlap exponent, kernel latency) with the
   math priced on the real row count (the roofline's form) and on rows padded
   to a tile: the per-GEMM median and p90 |error| of each;
3. the H100 catalog factors against the one public H100 GEMM benchmark at an
   engine's shapes found with rows from 1 to 128 (``VLLM_PR_49363``).

The GEMM time is the roofline's (simulator/latency/roofline.py, ``_Gemm``),
written over numpy arrays so a fit takes seconds; only the padded form is new.
Not a test: it reports figures.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import least_squares

from simulator.config.catalog import load_hardware

GEMMS = ("attn_pre_proj", "attn_post_proj", "mlp_up_proj", "mlp_down_proj")
TABLES = {  # hardware -> Vidur model directories
    "a100-80gb": ("a100/meta-llama/Llama-2-7b-hf", "a100/meta-llama/Meta-Llama-3-8B"),
    "h100-sxm": ("h100/meta-llama/Llama-2-7b-hf", "h100/meta-llama/Llama-2-70b-hf"),
}
#: (rows up to, tile height): the tile heights the H100 tables' steps show
TILES = ((512, 64), (1024, 128), (math.inf, 256))
#: vLLM's benchmarks/kernels/benchmark_fp8_gemm.py on an H100, google/gemma-4-31B-it at TP 1,
#: N=12288 K=5376 (vllm-project/vllm PR #49363, 2026-07-21): rows -> TFLOP/s of torch BF16
#: and of FP8 per-tensor weights and activations without the quantisation kernel
VLLM_PR_49363_NK = (12288, 5376)
VLLM_PR_49363: dict[str, dict[int, float]] = {"bf16": {1: 2.870, 16: 46.54, 64: 182.59, 128: 352.56},
                                              "fp8": {1: 5.163, 16: 83.05, 64: 318.41, 128: 581.82}}


def load(path: Path) -> pd.DataFrame:
    """One row per (tokens, TP, GEMM): rows M, shard K x N, median seconds."""
    df = pd.read_csv(path / "mlp.csv")
    first = df.iloc[0]
    h, heads, kv_heads, inter = (int(first[c]) for c in ("n_embd", "n_head", "n_kv_head", "n_expanded_embd"))
    d = h // heads
    q, kv = heads * d, kv_heads * d
    out = []
    for tp, part in df.groupby("num_tensor_parallel_workers"):
        shapes = {"attn_pre_proj": (h, (q + 2 * kv) / tp), "attn_post_proj": (q / tp, h),
                  "mlp_up_proj": (h, 2 * inter / tp), "mlp_down_proj": (inter / tp, h)}
        for m, row in part.groupby("num_tokens").median(numeric_only=True).iterrows():
            if m <= 4096:
                out += [(m, k, n, row[f"time_stats.{op}.median"] / 1e3, tp) for op, (k, n) in shapes.items()]
    return pd.DataFrame(out, columns=["M", "K", "N", "t", "tp"])


def padded(m: np.ndarray) -> np.ndarray:
    out = m.astype(float).copy()
    lower = 0.0
    for upto, tile in TILES:
        sel = (m > lower) & (m <= upto)
        out[sel] = np.ceil(m[sel] / tile) * tile
        lower = upto
    return out


def gemm_s(p, d: Mapping[str, Any], flops: float, bw: float, pad: bool = False, weight_bytes: float = 2) -> np.ndarray:
    """The roofline's GEMM time (16-bit activations) for factors p = (ce, me, n, latency_us)."""
    ce, me, n, lat_us = p
    m, k, nn = (np.asarray(d[c], dtype=float) for c in ("M", "K", "N"))
    c = 2 * (padded(m) if pad else m) * k * nn / (flops * ce)
    mem = (weight_bytes * k * nn + 2 * m * (k + nn)) / (bw * me)
    return lat_us * 1e-6 + (c**n + mem**n) ** (1 / n)


def fit(d: pd.DataFrame, flops: float, bw: float, pad: bool) -> tuple[np.ndarray, np.ndarray]:
    def resid(p):
        return np.log(gemm_s(p, d, flops, bw, pad)) - np.log(d["t"].to_numpy())

    sol = least_squares(resid, (0.76, 0.9, 1.3, 5.0), bounds=([0.3, 0.5, 1.0, 0.0], [1.0, 0.93, 30.0, 20.0]))
    return sol.x, np.expm1(resid(sol.x))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--shared", type=Path, default=Path(__file__).resolve().parents[2] / "shared",
                    help="the shared data directory (default: ../shared beside the project)")
    args = ap.parse_args()
    root = args.shared / "reference" / "vidur_profiles" / "compute"
    for hw_name, dirs in TABLES.items():
        hw = load_hardware(hw_name)
        flops, bw = float(hw.bf16_tflops) * 1e12, float(hw.memory_bw_gbps) * 1e9
        d = pd.concat([load(root / x) for x in dirs], ignore_index=True)
        g = hw.gemm
        catalog = (g.compute_efficiency, g.memory_efficiency, g.overlap_exponent, g.latency_us)
        err = np.expm1(np.log(gemm_s(catalog, d, flops, bw, pad=False)) - np.log(d["t"].to_numpy()))
        tp1 = pd.Series(err[d["tp"].to_numpy() == 1]).groupby(d.loc[d["tp"] == 1, "M"].to_numpy()).median()
        print(f"{hw_name}: {len(d)} GEMM timings from {', '.join(dirs)}")
        print("  catalog factors, median signed error of the four GEMMs at TP 1 by rows:")
        print("   " + "  ".join(f"{m}: {tp1.get(m, float('nan')):+.0%}" for m in (128, 136, 256, 264, 512, 520)))
        for pad in (False, True):
            p, e = fit(d, flops, bw, pad)
            a = np.abs(e)
            form = "rows padded to 64/128/256-row tiles" if pad else "real rows (the roofline)"
            print(f"  refit, {form}: compute {p[0]:.3f}, memory {p[1]:.3f}, n {p[2]:.3f}, {p[3]:.2f} us"
                  f" -> median {np.median(a):.1%}, p90 {np.quantile(a, 0.9):.1%}")
    published_h100()


def published_h100() -> None:
    hw = load_hardware("h100-sxm")
    g, bw = hw.gemm, float(hw.memory_bw_gbps) * 1e9
    n, k = VLLM_PR_49363_NK
    print(f"h100-sxm catalog factors against vllm PR #49363 (N {n}, K {k}), servesim / measured time - 1 by rows:")
    for dtype, peak, ce, wb in (("bf16", hw.bf16_tflops, g.compute_efficiency, 2),
                                ("fp8", hw.fp8_tflops, g.compute_efficiency_fp8, 1)):
        rows = np.array(list(VLLM_PR_49363[dtype]))
        measured = 2 * rows * k * n / (np.array(list(VLLM_PR_49363[dtype].values())) * 1e12)
        shapes = {"M": rows, "K": np.full(len(rows), k), "N": np.full(len(rows), n)}
        assert peak is not None, "the H100 catalog entry has BF16 and FP8 peaks"
        t = gemm_s((ce, g.memory_efficiency, g.overlap_exponent, g.latency_us), shapes, float(peak) * 1e12, bw,
                   weight_bytes=wb)
        print(f"  {dtype}: " + "  ".join(f"{r}: {x:+.0%}" for r, x in zip(rows, t / measured - 1)))


if __name__ == "__main__":
    main()
