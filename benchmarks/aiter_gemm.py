"""The MI300X catalog's GEMM factors against AMD's own tuned GEMM timings.

    python benchmarks/aiter_gemm.py TUNED_CSV

``TUNED_CSV`` is ``aiter/configs/a8w8_bpreshuffle_tuned_gemm.csv`` from ROCm/aiter
(at commit 1ba09a4743, 2026-07-29, it holds 32 rows for the MI300X: ``gfx942`` with
304 CUs; later commits dropped them): AITER's INT8 per-token GEMMs with pre-shuffled
weights, each shape timed by AITER's tuner (``us``). The MI300X's INT8 and FP8 peaks
are equal (2,615 TOP/s dense), so these time the roofline's FP8 path
(``hardware.gemm.compute_efficiency_fp8``, one-byte weights). Prints each shape's
signed error and the median by row count. Not a test: it reports figures
(docs/fidelity.md quotes them).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from gemm_tiles import gemm_s  # the roofline's GEMM time over arrays (benchmarks/gemm_tiles.py)

from simulator.config.catalog import load_hardware


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", type=Path, help="ROCm/aiter aiter/configs/a8w8_bpreshuffle_tuned_gemm.csv")
    d = pd.read_csv(ap.parse_args().csv)
    d = d[(d["gfx"] == "gfx942") & (d["cu_num"] == 304)]
    if d.empty:
        sys.exit("no MI300X rows (gfx942, 304 CUs) in that file: take it from ROCm/aiter commit 1ba09a4743")
    hw = load_hardware("mi300x")
    g = hw.gemm
    factors = (g.compute_efficiency_fp8, g.memory_efficiency, g.overlap_exponent, g.latency_us)
    t = gemm_s(factors, {"M": d["M"].to_numpy(float), "K": d["K"], "N": d["N"]}, float(hw.fp8_tflops) * 1e12,
               float(hw.memory_bw_gbps) * 1e9, weight_bytes=1)
    d = d.assign(servesim_us=t * 1e6, error=t * 1e6 / d["us"] - 1)
    print(d[["M", "N", "K", "us", "tflops", "servesim_us", "error"]].to_string(index=False, float_format="{:.3g}".format))
    m, e = d["M"].to_numpy(), d["error"].to_numpy()
    bins = ((1, 128), (129, 512), (513, 2048), (2049, 10**9))
    print(f"{len(d)} shapes: median |error| {np.median(np.abs(e)):.1%}, signed by rows: "
          + "  ".join(f"{lo}-{hi if hi < 10**9 else 'more'} {np.median(e[(m >= lo) & (m <= hi)]):+.0%}" for lo, hi in bins))


if __name__ == "__main__":
    main()
