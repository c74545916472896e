"""TensorRT-LLM 0.10's H100 throughput table, every cell of the catalog's models, replayed like the suite's cases.

    python benchmarks/trtllm010_cells.py

The published suite holds five H100 cells of this table (calibration/published/cases_nvidia.yaml,
``trtllm-0.10-h100-*``). This replays all 39 H100 cells of the same three models the same way
(each built from the suite's own 0.10 H100 case, so the engine arguments, memory fraction and
workload rules are the suite's) to ask whether its two large misses belong to their cells or to the
release: the cells are transcribed from
https://github.com/NVIDIA/TensorRT-LLM/blob/v0.10.0/docs/source/performance/perf-overview.md
("All data in the table below was generated using version 0.10.0"; tokens/s, all GPUs of the run).
Not a test and not cases (the suite keeps one case per source row it was built from): it prints
each cell's signed error, grouped by attention kind and by whether decode dominates (output 2,048
tokens) or not. docs/fidelity.md and docs/fidelity_rounds.md (round 9) quote the figures.
"""

from __future__ import annotations

from simulator.calibration.published import load_cases, run_case

#: (model, TP, precision, input, output, H100 tokens/s): every cell of the v0.10.0 table's two H100 80GB HBM3
#: columns (FP8, FP16) for the three models the catalog has (an empty cell did not fit or was not run)
CELLS = (
    ("llama-2-7b", 1, "fp8", 128, 128, 16985.6), ("llama-2-7b", 1, "fp16", 128, 128, 10725.31),
    ("llama-2-7b", 1, "fp8", 2048, 128, 2355.47), ("llama-2-7b", 1, "fp16", 2048, 128, 1235.4),
    ("llama-2-7b", 1, "fp8", 128, 2048, 6679.36), ("llama-2-7b", 1, "fp16", 128, 2048, 3399.43),
    ("llama-2-7b", 1, "fp8", 2048, 2048, 2805.32), ("llama-2-7b", 1, "fp16", 2048, 2048, 1335.51),
    ("llama-3.1-8b", 1, "fp8", 128, 128, 16708.53), ("llama-3.1-8b", 1, "fp16", 128, 128, 12085.78),
    ("llama-3.1-8b", 1, "fp8", 2048, 128, 2427.09), ("llama-3.1-8b", 1, "fp16", 2048, 128, 1604.7),
    ("llama-3.1-8b", 1, "fp8", 128, 2048, 8013.55), ("llama-3.1-8b", 1, "fp16", 128, 2048, 6208.23),
    ("llama-3.1-8b", 1, "fp8", 2048, 2048, 3500.48), ("llama-3.1-8b", 1, "fp16", 2048, 2048, 2776.31),
    ("llama-2-70b", 1, "fp8", 128, 128, 2134.52), ("llama-2-70b", 2, "fp8", 128, 128, 6035.36),
    ("llama-2-70b", 4, "fp8", 128, 128, 8148.67), ("llama-2-70b", 4, "fp16", 128, 128, 5454.76),
    ("llama-2-70b", 8, "fp8", 128, 128, 9385.26), ("llama-2-70b", 8, "fp16", 128, 128, 7491.94),
    ("llama-2-70b", 1, "fp8", 2048, 128, 222.16), ("llama-2-70b", 2, "fp8", 2048, 128, 757.55),
    ("llama-2-70b", 4, "fp8", 2048, 128, 1083.25), ("llama-2-70b", 4, "fp16", 2048, 128, 695.33),
    ("llama-2-70b", 8, "fp8", 2048, 128, 1346.9), ("llama-2-70b", 8, "fp16", 2048, 128, 1016.58),
    ("llama-2-70b", 1, "fp8", 128, 2048, 635.32), ("llama-2-70b", 2, "fp8", 128, 2048, 4710.45),
    ("llama-2-70b", 4, "fp8", 128, 2048, 8485.56), ("llama-2-70b", 4, "fp16", 128, 2048, 3686.63),
    ("llama-2-70b", 8, "fp8", 128, 2048, 12333.24), ("llama-2-70b", 8, "fp16", 128, 2048, 7927.16),
    ("llama-2-70b", 2, "fp8", 2048, 2048, 2267.45), ("llama-2-70b", 4, "fp8", 2048, 2048, 4019.31),
    ("llama-2-70b", 4, "fp16", 2048, 2048, 1814.78), ("llama-2-70b", 8, "fp8", 2048, 2048, 7061.32),
    ("llama-2-70b", 8, "fp16", 2048, 2048, 3658.42),
)
#: the model's attention: Llama-2-7B has one KV head per query head, the others share one among 4-8
ATTENTION = {"llama-2-7b": "MHA", "llama-3.1-8b": "GQA", "llama-2-70b": "GQA"}


def main() -> None:
    template = next(c for c in load_cases() if c.id == "trtllm-0.10-h100-llama2-7b-fp16-tp1-128-2048")
    suite = {(c.model, c.tp, c.weight_dtype, c.workload["input_tokens"], c.workload["output_tokens"])
             for c in load_cases() if c.id.startswith("trtllm-0.10-h100")}
    print(f"{'model':14s} {'TP':>2s} {'prec':4s} {'in/out':>9s} {'measured':>9s} {'servesim':>9s} {'error':>7s}  attention")
    errors: dict[str, list[float]] = {}
    for model, tp, precision, isl, osl, value in CELLS:
        case = template.variant({"input_tokens": isl, "output_tokens": osl}, model=model, tp=tp, gpus=tp, weight_dtype=precision,
                                kv_dtype=precision, value=value, id=f"trtllm-0.10-h100-{model}-{precision}-tp{tp}-{isl}-{osl}")
        predicted = run_case(case)
        error = predicted / value - 1
        errors.setdefault(f"{ATTENTION[model]}, output {osl}", []).append(error)
        mark = "  (a suite case)" if (model, tp, precision, isl, osl) in suite else ""
        print(f"{model:14s} {tp:2d} {precision:4s} {isl:>4d}/{osl:<4d} {value:9.0f} {predicted:9.0f} {error:+7.1%}  {ATTENTION[model]}{mark}")
    for kind, errs in errors.items():
        print(f"{kind}: {len(errs)} cells, signed errors {min(errs):+.0%} to {max(errs):+.0%}, median {sorted(errs)[len(errs) // 2]:+.0%}")


if __name__ == "__main__":
    main()
