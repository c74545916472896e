"""TensorRT-LLM 0.14's online-serving table, every row at a request rate, replayed like the suite's cases.

    python benchmarks/trtllm014_serving.py

The published suite holds 34 figures of this table (calibration/published/cases_nvidia.yaml,
``trtllm-0.14-serve-*``: every block's lowest-load row and some others). This replays all its rows
at QPS 2-32 the same way (each built from one of the suite's own cases, so the engine, backend,
request count and arrival rules are the suite's; the unbounded-rate rows are offline runs and are
left out) and prints mean TTFT and ITL against the table, to see how the errors run with load,
prompt length, model and GPU rather than case by case. The rows are transcribed from
NVIDIA/TensorRT-LLM docs/source/performance/perf-overview.md @ 258c7540 ("Online Serving
Measurements ... generated using version 0.14.0, with 500 requests and BF16 precision"; Triton's
tensorrtllm_backend). Not a test and not cases: docs/fidelity_rounds.md (round 9) quotes the figures.
"""

from __future__ import annotations

import numpy as np

from simulator.calibration.published import load_cases, run_case

#: (GPU, model, input, output) -> rows of (QPS, mean TTFT ms, mean ITL ms), as the table prints them (whole ms)
TABLE = {
    ("h100-sxm", "llama-3.1-70b", 467, 256): ((2, 62, 21), (4, 68, 24), (8, 92, 32), (16, 175, 66), (32, 1229, 86)),
    ("h100-sxm", "llama-3.1-70b", 467, 16): ((2, 53, 18), (4, 58, 20), (8, 71, 24), (16, 109, 38), (32, 1197, 482)),
    ("h100-sxm", "llama-3.1-70b", 202, 214): ((2, 48, 20), (4, 51, 22), (8, 57, 25), (16, 74, 32), (32, 116, 42)),
    ("h100-sxm", "llama-3.1-8b", 467, 256): ((2, 23, 8), (4, 24, 9), (8, 26, 9), (16, 30, 11), (32, 50, 19)),
    ("h100-sxm", "llama-3.1-8b", 467, 16): ((2, 19, 7), (4, 20, 7), (8, 22, 7), (16, 24, 8), (32, 29, 10)),
    ("h100-sxm", "llama-3.1-8b", 202, 214): ((2, 19, 7), (4, 20, 8), (8, 21, 9), (16, 23, 10), (32, 27, 11)),
    ("h200", "llama-3.1-70b", 467, 256): ((2, 58, 18), (4, 63, 20), (8, 84, 27), (16, 165, 60), (32, 1279, 83)),
    ("h200", "llama-3.1-70b", 467, 16): ((2, 50, 15), (4, 55, 16), (8, 67, 20), (16, 103, 33), (32, 1259, 485)),
    ("h200", "llama-3.1-70b", 202, 214): ((2, 43, 17), (4, 46, 18), (8, 51, 21), (16, 67, 28), (32, 112, 39)),
    ("h200", "llama-3.1-8b", 467, 256): ((2, 21, 6), (4, 23, 7), (8, 24, 7), (16, 27, 9), (32, 44, 16)),
    ("h200", "llama-3.1-8b", 467, 16): ((2, 18, 5), (4, 19, 6), (8, 20, 6), (16, 22, 7), (32, 27, 9)),
    ("h200", "llama-3.1-8b", 202, 214): ((2, 17, 6), (4, 18, 6), (8, 19, 7), (16, 20, 8), (32, 24, 9)),
}


def main() -> None:
    template = next(c for c in load_cases() if c.id == "trtllm-0.14-serve-h200-llama31-70b-bf16-tp4-202-214-qps32-ttft")
    runs: dict[str, list] = {}
    errors: dict[str, list[float]] = {}
    print(f"{'GPU':8s} {'model':13s} {'in/out':>7s} {'QPS':>3s}  {'TTFT':>5s} {'servesim':>8s} {'error':>7s}  {'ITL':>4s} {'servesim':>8s} {'error':>7s}")
    for (gpu, model, isl, osl), rows in TABLE.items():
        for qps, ttft, itl in rows:
            tp = 4 if model.endswith("70b") else 1
            predicted = {
                metric: run_case(template.variant({"input_tokens": isl, "output_tokens": osl, "rate": qps}, hardware=gpu, model=model,
                                                  tp=tp, gpus=tp, metric=metric, id=f"trtllm-0.14-serve-{gpu}-{model}-{isl}-{osl}-qps{qps}"),
                                 runs=runs)
                for metric in ("ttft_mean", "itl_mean")
            }
            e_ttft, e_itl = predicted["ttft_mean"] / ttft - 1, predicted["itl_mean"] / itl - 1
            errors.setdefault(f"TTFT, {isl}-token prompts, QPS {'2-8' if qps <= 8 else '16-32'}", []).append(e_ttft)
            errors.setdefault(f"ITL, {model}, QPS {'2-8' if qps <= 8 else '16-32'}", []).append(e_itl)
            print(f"{gpu:8s} {model:13s} {isl:>3d}/{osl:<3d} {qps:3d}  {ttft:5d} {predicted['ttft_mean']:8.1f} {e_ttft:+7.1%}"
                  f"  {itl:4d} {predicted['itl_mean']:8.1f} {e_itl:+7.1%}", flush=True)
    print()
    for group, errs in errors.items():
        print(f"{group:38s} {len(errs):2d} rows: median {np.median(errs):+6.1%}, range {min(errs):+.0%} to {max(errs):+.0%}")


if __name__ == "__main__":
    main()
