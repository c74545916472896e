"""Write the synthetic example recordings in this folder (seeded; byte-identical on every run).

Each file is shaped exactly like its client writes it (keys, nesting, order, units); the numbers
come from a toy engine (TTFT grows with the prompt and the load, ~12-20 ms per output token) and
the texts are filler words. See README.md.

    python traces/recordings/generate.py
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
MODEL = "meta-llama/Llama-3.1-8B-Instruct"
WORDS = "the a of to and in is that for it as with on was be by this are at from or an".split()


def _text(rng: np.random.Generator, n: int) -> list[str]:
    return [" " + WORDS[int(i)] for i in rng.integers(0, len(WORDS), n)]


def _engine(rng: np.random.Generator, prompt: np.ndarray, output: np.ndarray, load: float) -> tuple[np.ndarray, list[list[float]]]:
    """Toy TTFT (s) and per-token gaps (s) for each request."""
    ttft = 0.018 + prompt / 14000.0 * load + rng.gamma(2.0, 0.01 * load, len(prompt))
    itls = [list(0.0115 * load + rng.gamma(4.0, 0.0006 * load, max(int(n) - 1, 0))) for n in output]
    return ttft, [[float(g) for g in gaps] for gaps in itls]


def _stats_ms(values: list[float], prefix: str, percentiles: tuple[float, ...] = (99,)) -> dict[str, float]:
    a = np.asarray(values or [0.0]) * 1000
    out = {f"mean_{prefix}_ms": float(a.mean()), f"median_{prefix}_ms": float(np.median(a)), f"std_{prefix}_ms": float(a.std())}
    out.update({f"p{int(p)}_{prefix}_ms": float(np.percentile(a, p)) for p in percentiles})
    return out


def vllm() -> None:
    """``vllm bench serve --save-result --save-detailed`` (newest layout: latencies, start_times)."""
    rng = np.random.default_rng(7)
    n, rate, failed = 20, 4.0, 13
    prompt = np.clip(rng.lognormal(np.log(420), 0.5, n), 32, 3000).astype(int)
    output = np.clip(rng.lognormal(np.log(70), 0.6, n), 4, 240).astype(int)
    gaps = rng.gamma(1.0, 1.0 / rate, n)
    gaps[0] = 0.0
    arrival = 81234.5678 + np.cumsum(gaps)  # time.perf_counter() of the client process
    queue = rng.uniform(2e-5, 9e-5, n)
    start = arrival + queue
    ttft, itls = _engine(rng, prompt, output, 1.15)
    lat = [float(t + sum(g)) for t, g in zip(ttft, itls)]
    ok = np.arange(n) != failed
    out_lens = [int(o) if k else 0 for o, k in zip(output, ok)]
    texts = ["".join(_text(rng, int(o))) if k else "" for o, k in zip(output, ok)]
    errors = [
        ""
        if k
        else "Traceback (most recent call last):\n  File \"/usr/local/lib/python3.12/dist-packages/vllm/benchmarks/lib/endpoint_request_func.py\", line 214, in async_request_openai_completions\n    async for chunk_bytes in response.content.iter_any():\naiohttp.client_exceptions.ClientPayloadError: Response payload is not completed\n"
        for k in ok
    ]
    duration = float(max(s + x for s, x in zip(start, lat)) - start[0] + 0.004)
    done_in = int(sum(p for p, k in zip(prompt, ok) if k))
    done_out = sum(out_lens)
    result = {
        "date": "20250612-143015",
        "endpoint_type": "vllm",
        "backend": "vllm",
        "label": None,
        "model_id": MODEL,
        "tokenizer_id": MODEL,
        "num_prompts": n,
        "request_rate": rate,
        "burstiness": 1.0,
        "max_concurrency": None,
        "duration": duration,
        "completed": int(ok.sum()),
        "failed": int((~ok).sum()),
        "total_input_tokens": done_in,
        "total_output_tokens": done_out,
        "request_throughput": float(ok.sum() / duration),
        "request_goodput": None,
        "output_throughput": done_out / duration,
        "total_token_throughput": (done_in + done_out) / duration,
        "input_lens": [int(p) for p in prompt],
        "output_lens": out_lens,
        "ttfts": [float(t) if k else 0.0 for t, k in zip(ttft, ok)],
        "itls": [g if k else [] for g, k in zip(itls, ok)],
        "latencies": [x if k else 0.0 for x, k in zip(lat, ok)],
        "start_times": [float(s) for s in start],
        "queue_times": [float(q) for q in queue],
        "generated_texts": texts,
        "errors": errors,
        "max_output_tokens_per_s": 236.0,
        "max_concurrent_requests": 5,
        "rtfx": 0.0,
    }
    okt = [float(t) for t, k in zip(ttft, ok) if k]
    tpots = [(x - float(t)) / (o - 1) for x, t, o, k in zip(lat, ttft, output, ok) if k and o > 1]
    result.update(_stats_ms(okt, "ttft"))
    result.update(_stats_ms(tpots, "tpot"))
    result.update(_stats_ms([g for gs, k in zip(itls, ok) if k for g in gs], "itl"))
    with open(HERE / "vllm_bench_serve.json", "w", encoding="utf-8") as f:
        json.dump(result, f)


def _sglang_run(rng: np.random.Generator, n: int, rate: float, conc: int | None, failed: int | None) -> dict:
    prompt = rng.integers(256, 1025, n)
    output = rng.integers(32, 129, n)
    ttft, itls = _engine(rng, prompt, output, 1.0 if conc is None else 1.6)
    ok = np.array([i != failed for i in range(n)])
    e2e = [float(t + sum(g)) for t, g in zip(ttft, itls)]
    duration = float(sum(e2e) / (conc or 2) + 0.8)
    out_lens = [int(o) if k else 0 for o, k in zip(output, ok)]
    done_in = int(sum(p for p, k in zip(prompt, ok) if k))
    done_out = sum(out_lens)
    okt = [float(t) for t, k in zip(ttft, ok) if k]
    oke = [x for x, k in zip(e2e, ok) if k]
    tpots = [(x - float(t)) / (o - 1) for x, t, o, k in zip(e2e, ttft, output, ok) if k and o > 1]
    gaps = [g for gs, k in zip(itls, ok) if k for g in gs]
    s_e2e, s_ttft, s_tpot = _stats_ms(oke, "e2e_latency"), _stats_ms(okt, "ttft"), _stats_ms(tpots, "tpot")
    s_itl = _stats_ms(gaps, "itl", (95, 99))
    result = {
        "tag": None,
        "backend": "sglang",
        "dataset_name": "random",
        "request_rate": rate,
        "max_concurrency": conc,
        "sharegpt_output_len": None,
        "random_input_len": 1024,
        "random_output_len": 128,
        "random_range_ratio": 0.25,
        "server_info": {
            "model_path": MODEL,
            "tokenizer_path": MODEL,
            "tp_size": 1,
            "dp_size": 1,
            "version": "0.4.9.post2",
            "internal_states": [{"last_gen_throughput": float(rng.uniform(900, 1400))}],
        },
        "duration": duration,
        "completed": int(ok.sum()),
        "total_input_tokens": done_in,
        "total_input_text_tokens": done_in,
        "total_input_vision_tokens": 0,
        "total_output_tokens": done_out,
        "total_output_tokens_retokenized": done_out - int(rng.integers(0, 6)),
        "request_throughput": float(ok.sum() / duration),
        "input_throughput": done_in / duration,
        "output_throughput": done_out / duration,
        "total_throughput": (done_in + done_out) / duration,
        **s_e2e,
        **s_ttft,
        **s_tpot,
        **s_itl,
        "concurrency": float(sum(oke) / duration),
        "accept_length": None,
        "max_output_tokens_per_s": float(rng.integers(300, 700)),
        "max_concurrent_requests": int(conc or 3),
        "input_lens": [int(p) for p in prompt],
        "output_lens": out_lens,
        "ttfts": [float(t) if k else 0.0 for t, k in zip(ttft, ok)],
        "itls": [g if k else [] for g, k in zip(itls, ok)],
        "generated_texts": ["".join(_text(rng, int(o))) if k else "" for o, k in zip(output, ok)],
        "errors": ["" if k else "Internal Server Error: {\"object\":\"error\",\"message\":\"The server is busy\",\"type\":\"InternalServerError\",\"code\":500}" for k in ok],
    }
    return result


def sglang() -> None:
    """``python -m sglang.bench_serving --output-file X.jsonl --output-details``, run twice into one file."""
    rng = np.random.default_rng(11)
    runs = [_sglang_run(rng, 12, 2.0, None, None), _sglang_run(rng, 20, float("inf"), 8, 6)]
    with open(HERE / "sglang_bench_serving.jsonl", "w", encoding="utf-8") as f:
        for r in runs:
            f.write(json.dumps(r) + "\n")  # as the client: json.dumps, so inf is written Infinity


def _chunk(cid: str, created: int, choices: list | None, usage: dict | None) -> str:
    body = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": MODEL, "choices": choices, "usage": usage}
    return "data: " + json.dumps(body, separators=(",", ":")) + "\n\n"


def genai_perf() -> None:
    """perf_analyzer's profile_export.json as genai-perf runs it: one concurrency-4 experiment, OpenAI chat, streamed."""
    rng = np.random.default_rng(5)
    n, conc, failed = 20, 4, 9
    prompt_words = rng.integers(60, 220, n)
    max_tokens = rng.integers(6, 25, n)
    t0 = 1749738615_123456789
    free = [t0 + int(rng.integers(0, 400_000)) for _ in range(conc)]  # closed loop: one request per free slot
    requests = []
    for i in range(n):
        slot = int(np.argmin(free))
        sent = free[slot] + int(rng.integers(30_000, 120_000))
        words = _text(rng, int(prompt_words[i]))
        payload = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "".join(words).strip()}],
            "stream": True,
            "max_tokens": int(max_tokens[i]),
            "stream_options": {"include_usage": True},
        }
        cid, created = f"chatcmpl-{rng.integers(0, 16**12):012x}", int(sent // 1_000_000_000)
        p_tokens = int(prompt_words[i]) + 12  # the chat template's tokens
        if i == failed:
            err = {"error": {"object": "error", "message": "CUDA error: an illegal memory access was encountered", "type": "InternalServerError", "param": None, "code": 500}}
            outs = ["data: " + json.dumps(err, separators=(",", ":")) + "\n\n", "data: [DONE]\n\n"]
            stamps = [sent + int(rng.integers(20_000_000, 60_000_000))]
            stamps.append(stamps[-1] + 40_000)
        else:
            ttft, itls = _engine(rng, np.array([p_tokens]), np.array([int(max_tokens[i])]), 1.4)
            first = sent + int(ttft[0] * 1e9)
            content = [first, *(first + np.cumsum([int(g * 1e9) for g in itls[0]])).tolist()]
            text = _text(rng, len(content))
            outs = [_chunk(cid, created, [{"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}], None)]
            stamps = [first - 45_000]
            for t, w in zip(content, text):
                outs.append(_chunk(cid, created, [{"index": 0, "delta": {"content": w}, "logprobs": None, "finish_reason": None}], None))
                stamps.append(int(t))
            outs.append(_chunk(cid, created, [{"index": 0, "delta": {"content": ""}, "logprobs": None, "finish_reason": "length", "stop_reason": None}], None))
            stamps.append(stamps[-1] + 90_000)
            o = len(content)
            outs.append(_chunk(cid, created, [], {"prompt_tokens": p_tokens, "total_tokens": p_tokens + o, "completion_tokens": o}))
            stamps.append(stamps[-1] + 35_000)
            outs.append("data: [DONE]\n\n")
            stamps.append(stamps[-1] + 30_000)
        free[slot] = stamps[-1]
        requests.append(
            {
                "timestamp": int(sent),
                "request_inputs": {"payload": json.dumps(payload, separators=(",", ":"))},
                "response_timestamps": [int(s) for s in stamps],
                "response_outputs": [{"response": r} for r in outs],
            }
        )
    end = max(r["response_timestamps"][-1] for r in requests)
    mid = (t0 + end) // 2
    data = {
        "experiments": [{"experiment": {"mode": "concurrency", "value": conc}, "requests": requests, "window_boundaries": [t0, mid, mid, end + 1_000_000]}],
        "version": "2.57.0",
        "service_kind": "openai",
        "endpoint": "v1/chat/completions",
    }
    with open(HERE / "genai_perf_profile_export.json", "w", encoding="utf-8") as f:
        f.write(json.dumps(data, separators=(",", ":")))  # rapidjson's compact Writer


def llmperf() -> None:
    """token_benchmark_ray.py --results-dir: ``*_individual_responses.json`` and its ``*_summary.json``."""
    rng = np.random.default_rng(3)
    n, conc, failed = 20, 4, 15
    prompt = np.clip(rng.normal(550, 150, n), 41, None).astype(int)
    asked = np.clip(rng.normal(150, 80, n), 1, None).astype(int)
    output = np.maximum((asked * rng.uniform(0.93, 1.05, n)).astype(int), 1)
    ttft, itls = _engine(rng, prompt, output, 1.5)
    rows = []
    for i in range(n):
        if i == failed:  # as LLMPerfV2 writes a failed request (later versions stop the thread instead)
            rows.append(
                {
                    "error_code": 503,
                    "error_msg": "{\"object\":\"error\",\"message\":\"Service Unavailable\",\"type\":\"ServiceUnavailableError\",\"code\":503}",
                    "inter_token_latency_s": 0,
                    "ttft_s": 0,
                    "end_to_end_latency_s": 0,
                    "request_output_throughput_token_per_s": 0,
                    "number_total_tokens": int(prompt[i]),
                    "number_output_tokens": 0,
                    "number_input_tokens": int(prompt[i]),
                }
            )
            continue
        e2e = float(ttft[i] + sum(itls[i]) + rng.uniform(0.0005, 0.002))
        last = float(ttft[i] + sum(itls[i]))
        rows.append(
            {
                "error_code": None,
                "error_msg": "",
                "inter_token_latency_s": last / int(output[i]),
                "ttft_s": float(ttft[i]),
                "end_to_end_latency_s": e2e,
                "request_output_throughput_token_per_s": int(output[i]) / e2e,
                "number_total_tokens": int(prompt[i] + output[i]),
                "number_output_tokens": int(output[i]),
                "number_input_tokens": int(prompt[i]),
            }
        )
    name = re.sub(r"-{2,}", "-", re.sub(r"[^\w\d-]+", "-", f"{MODEL}_550_150"))
    with open(HERE / f"{name}_individual_responses.json", "w", encoding="utf-8") as f:
        json.dump(rows, f, indent=4)
    good = [r for r in rows if r["error_code"] is None]
    summary: dict = {"version": "2023-08-31", "name": f"{name}_summary", "model": MODEL, "mean_input_tokens": 550, "stddev_input_tokens": 150}
    summary.update({"mean_output_tokens": 150, "stddev_output_tokens": 80, "num_concurrent_requests": conc})
    span = sum(r["end_to_end_latency_s"] for r in good) / conc + 0.5
    for key in ("inter_token_latency_s", "ttft_s", "end_to_end_latency_s", "request_output_throughput_token_per_s", "number_input_tokens", "number_output_tokens"):
        a = np.array([r[key] for r in good], dtype=float)
        for q in (25, 50, 75, 90, 95, 99):
            summary[f"results_{key}_quantiles_p{q}"] = float(np.quantile(a, q / 100))
        summary.update({f"results_{key}_mean": float(a.mean()), f"results_{key}_min": float(a.min()), f"results_{key}_max": float(a.max()), f"results_{key}_stddev": float(a.std(ddof=1))})
    summary.update(
        {
            "results_num_requests_started": n,
            "results_error_rate": 1 / n,
            "results_number_errors": 1,
            "results_error_code_frequency": "{503: 1}",
            "results_mean_output_throughput_token_per_s": sum(r["number_output_tokens"] for r in good) / span,
            "results_num_completed_requests": len(good),
            "results_num_completed_requests_per_min": len(good) / span * 60,
            "timestamp": 1749738900,
        }
    )
    with open(HERE / f"{name}_summary.json", "w", encoding="utf-8") as f:
        json.dump(summary, f, indent=4, default=str)


if __name__ == "__main__":
    vllm()
    sglang()
    genai_perf()
    llmperf()
