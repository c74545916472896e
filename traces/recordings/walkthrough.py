"""Write the walk-through recordings of docs/validate.md (seeded; the same files on every run).

Three runs of ``vllm bench serve --save-result --save-detailed`` as its newest versions write
them (per-request ``start_times`` and ``latencies`` included), at 4, 8 and 14 req/s, of
Llama-3.1-8B on one H100 serving the default chat workload. They are *synthetic*: servesim
produced them with latency factors it was not told, so the walk-through can show how close
``servesim-validate --calibrate`` comes to them (docs/validate.md: a combination that replays
every recording, not each factor exactly):

    latency.compute_efficiency=0.62 latency.memory_efficiency=0.74
    latency.step_overhead_s=0.0045 latency.request_overhead_s=0.012

Each request's inter-token latencies are the gaps between the ends of the decode steps that
streamed its tokens (from the run's steps table), as a streaming client would see them.

    python traces/recordings/walkthrough.py
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
HIDDEN = {"compute_efficiency": 0.62, "memory_efficiency": 0.74, "step_overhead_s": 0.0045, "request_overhead_s": 0.012}
RUNS = ((4.0, 11), (8.0, 12), (14.0, 13))  # (request rate, seed)
N = 300


def _itls(requests: pd.DataFrame, steps: pd.DataFrame) -> list[list[float]]:
    """Per request: the gaps between the ends of its replica's decode steps after its first token."""
    ends = {r: np.sort((g["start_s"] + g["duration_s"]).to_numpy()[g["decode_seqs"].to_numpy() > 0]) for r, g in steps.groupby("replica")}
    out = []
    for row in requests.itertuples():
        e = ends[row.replica]
        times = e[(e > row.first_token_s + 1e-12) & (e <= row.finish_s + 1e-12)]
        out.append(np.diff(np.concatenate(([row.first_token_s], times))).round(6).tolist())
    return out


def recording(rate: float, seed: int) -> dict:
    import simulator

    overrides = [f"workload.rate={rate}", f"workload.num_requests={N}", f"seed={seed}"]
    r = simulator.run(overrides + [f"latency.{k}={v}" for k, v in HIDDEN.items()])
    q = r.requests[r.requests["status"] == "completed"].sort_values("request_id")
    start = q["arrival_s"].to_numpy()
    end = start + q["e2e_s"].to_numpy()
    duration = float(end.max() - start.min())
    outputs = q["output_tokens"].to_numpy()
    return {
        "date": "20261204-120000",
        "endpoint_type": "openai",
        "backend": "vllm",
        "label": None,
        "model_id": "meta-llama/Llama-3.1-8B-Instruct",
        "tokenizer_id": "meta-llama/Llama-3.1-8B-Instruct",
        "num_prompts": N,
        "request_rate": rate,
        "burstiness": 1.0,
        "max_concurrency": None,
        "duration": round(duration, 6),
        "completed": len(q),
        "total_input_tokens": int(q["prompt_tokens"].sum()),
        "total_output_tokens": int(outputs.sum()),
        "request_throughput": len(q) / duration,
        "output_throughput": float(outputs.sum()) / duration,
        "input_lens": q["prompt_tokens"].astype(int).tolist(),
        "output_lens": outputs.astype(int).tolist(),
        "ttfts": q["ttft_s"].round(6).tolist(),
        "itls": _itls(q, r.steps),
        "latencies": q["e2e_s"].round(6).tolist(),
        "start_times": (start + 1000.0).round(6).tolist(),  # perf_counter() values: any origin
        "generated_texts": [""] * len(q),
        "errors": [""] * len(q),
    }


def main() -> None:
    for rate, seed in RUNS:
        path = HERE / f"walkthrough_vllm_rate{int(rate)}.json"
        path.write_text(json.dumps(recording(rate, seed)))  # compact, as the client writes it
        print(path)


if __name__ == "__main__":
    main()
