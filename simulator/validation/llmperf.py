"""LLMPerf's ``*_individual_responses.json`` (ray-project/llmperf, formerly Anyscale's).

Client: ``python token_benchmark_ray.py --results-dir DIR ...``, which writes
``{model}_{mean_input}_{mean_output}_individual_responses.json`` (a JSON list, one object per
completed or failed request, in the order they finished) next to ``..._summary.json``. Read from
the client source at ray-project/llmperf: ``token_benchmark_ray.py`` and
``src/llmperf/common_metrics.py`` / ``src/llmperf/ray_clients/*.py`` from LLMPerfV2 (1eac866,
2023-12-05) to f1d6bed47e4501b0e371082b41601b59ab55269f (2024-12-09); the per-request keys are
the same throughout.

Field mapping, per request:

============================= ===================================================================
``number_input_tokens``       ``prompt_tokens`` (counted by the client with the Llama tokenizer
                              ``hf-internal-testing/llama-tokenizer``, not the server's)
``number_output_tokens``      ``output_tokens`` (the generated text re-tokenised with that Llama
                              tokenizer, not the server's count)
``ttft_s``                    ``ttft_s`` (seconds)
``end_to_end_latency_s``      ``e2e_s`` (seconds)
``inter_token_latency_s``     not used: one number per request (the sum of all chunk gaps,
                              TTFT included, over the output tokens), not a list; ``itl`` is None
``error_code`` / ``error_msg`` ``ok = False`` where ``error_code`` is not null (-1 or the HTTP
                              status). Failed requests are kept.
============================= ===================================================================

Not recorded: per-request start times (``start_s`` is NaN; LLMPerf runs a closed loop of
``--num-concurrent-requests`` clients, each sending its next request when the last one ends).

``meta`` comes from the ``*_summary.json`` companion next to the file where present
(``model``, ``num_concurrent_requests`` -> ``max_concurrency``, ``timestamp`` -> ``date``,
``results_*``), with ``request_rate = inf`` (the closed loop); the individual-responses file itself
carries no run description. ``burstiness`` is not recorded; ``duration_s`` is the summary's completed
requests over its ``results_num_completed_requests_per_min`` (none without the summary).
"""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from simulator.validation.recording import Recording, RecordingError, RecordingFormat, frame, register

SUMMARY = "LLMPerf (ray-project/llmperf) token_benchmark_ray.py *_individual_responses.json"
KEYS = ("ttft_s", "end_to_end_latency_s", "number_input_tokens", "number_output_tokens", "error_code")
SUFFIX = "_individual_responses.json"


def _sniff(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            h = f.read(1 << 12).decode("utf-8", errors="replace").lstrip()
        return h.startswith("[") and all(f'"{k}"' in h for k in ("ttft_s", "end_to_end_latency_s", "number_input_tokens"))
    except Exception:
        return False


def _number(path: Path, at: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) or value < 0:
        raise RecordingError(f"{path}: {at}.{key} is {value!r}; it must be a finite number >= 0.")
    return float(value)


def _summary(path: Path) -> dict[str, Any]:
    """The ``*_summary.json`` written with ``path``, or {} (it only adds the run's description)."""
    if not path.name.endswith(SUFFIX):
        return {}
    try:
        d = json.loads((path.parent / (path.name[: -len(SUFFIX)] + "_summary.json")).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return d if isinstance(d, dict) else {}


def read(path: Path) -> Recording:
    """The recording in an LLMPerf ``*_individual_responses.json``."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: cannot be read as an LLMPerf individual-responses JSON ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(data, list):
        raise RecordingError(f"{path}: holds a JSON {type(data).__name__}; an LLMPerf individual-responses file is a list, one object per request.")
    ttft, e2e, prompt, output, ok = [], [], [], [], []
    for i, r in enumerate(data):
        at = f"request {i}"
        if not isinstance(r, dict):
            raise RecordingError(f"{path}: {at} is a {type(r).__name__}, not an object with {', '.join(KEYS)}.")
        missing = [k for k in KEYS if k not in r]
        if missing:
            raise RecordingError(f"{path}: {at} has no '{missing[0]}'; LLMPerf writes {', '.join(KEYS)} for every request.")
        good = r["error_code"] is None
        prompt.append(_number(path, at, "number_input_tokens", r["number_input_tokens"]))
        output.append(_number(path, at, "number_output_tokens", r["number_output_tokens"]))
        if good:
            ttft.append(_number(path, at, "ttft_s", r["ttft_s"]))
            e2e.append(_number(path, at, "end_to_end_latency_s", r["end_to_end_latency_s"]))
        else:
            ttft.append(np.nan)
            e2e.append(np.nan)
        ok.append(good)
    if not data:
        raise RecordingError(f"{path}: the list is empty; no requests recorded.")
    s = _summary(path)
    conc = s.get("num_concurrent_requests")
    stamp = s.get("timestamp")
    done, per_min = s.get("results_num_completed_requests"), s.get("results_num_completed_requests_per_min")
    # the run's length, from the summary's completed requests and their rate (LLMPerf records no send times)
    duration = None
    if isinstance(done, int | float) and isinstance(per_min, int | float) and not isinstance(done, bool) and per_min > 0:
        duration = float(done) / float(per_min) * 60.0
    meta: dict[str, Any] = {
        "request_rate": float("inf"),
        "burstiness": None,
        "max_concurrency": int(conc) if isinstance(conc, int | float) and not isinstance(conc, bool) else None,
        "duration_s": duration,
        "model": s.get("model"),
        "backend": s.get("llm_api"),
        "date": datetime.fromtimestamp(stamp, tz=UTC).isoformat() if isinstance(stamp, int | float) and not isinstance(stamp, bool) else None,
        "client": "LLMPerf token_benchmark_ray.py individual responses" + (f" (+ summary, results version {s.get('version')})" if s else " (no summary file found)"),
    }
    rows = {
        "prompt_tokens": np.array(prompt),
        "output_tokens": np.array(output),
        "ttft_s": np.array(ttft, dtype=np.float64),
        "e2e_s": np.array(e2e, dtype=np.float64),
        "ok": np.array(ok, dtype=bool),
    }
    return Recording(frame(rows), "llmperf", str(path), meta)


LLMPERF = register(RecordingFormat("llmperf", SUMMARY, _sniff, read))
