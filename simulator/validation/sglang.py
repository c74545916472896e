"""SGLang's ``bench_serving`` result JSONL (``--output-file X.jsonl --output-details``).

Client: ``python -m sglang.bench_serving --output-file X.jsonl --output-details``, which appends
one JSON object per run (per line) to the file. Read from the client source at sgl-project/sglang
``python/sglang/bench_serving.py`` @ 50a613687fe1ffc6f1bb630c684a24c428a54a74 (2024: summary
only, no per-request lists: such lines are refused, naming the flag) and
@ 0033168f0f58b2bc05aa0273bd475d9c01bafb1c (``--output-details`` adds the lists at the top level,
``max_concurrency``; later versions add ``tag``, ``server_info``, ``request_rate: "trace"``), and
the refactored ``python/sglang/benchmark/metrics.py`` @ 1291c7fc351de2eb2548a95b82a27fb166143efa
(same lists, top level) and @ 6e48df336a77303519023e2f95009509f0e94e83 (the lists nested under
``"details"``); both layouts are read. :func:`read` takes the last line unless given ``run=``.

Field mapping (one entry per request, in the order the client sent them), as for vLLM, whose
format SGLang's is adapted from:

================ ==========================================================================
``input_lens``   ``prompt_tokens``
``output_lens``  ``output_tokens`` (the server's count; 0 for a failed request)
``ttfts``        ``ttft_s`` (seconds)
``itls``         ``itl`` (seconds between streamed chunks; the native ``sglang`` backend spreads
                 a multi-token chunk's gap over its tokens)
``errors``       ``ok = False`` where non-empty; ``ttfts`` 0 or ``output_lens`` 0 also mark a
                 failed request. Failed requests are kept.
================ ==========================================================================

Not recorded: per-request start times (``start_s`` is NaN) and per-request end-to-end latency:
``e2e_s = ttft + sum(itl)``, the time of the last streamed token (the client's own ``latency``
also counts the final ``[DONE]`` chunk, a little later, but is not written per request).

``meta``: ``request_rate`` (JSON ``Infinity`` -> ``inf``; None for ``"trace"``, the mooncake
trace's own timestamps, kept as ``arrivals="trace"``), ``burstiness`` (the file's if it has one,
else 1.0 for a finite rate: every version read draws exponential gaps, a Poisson process),
``max_concurrency``, ``duration_s`` (``duration``), ``model`` (``server_info.model_path`` where
recorded; the file has no model field), ``backend``, ``date`` (not recorded: None), ``client``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from simulator.validation.recording import Recording, RecordingFormat, frame, register
from simulator.validation.vllm import head, load_runs, names_keys, pick_run, rate, requests_from_lists

SUMMARY = "SGLang python -m sglang.bench_serving --output-file X.jsonl --output-details (one JSON line per run)"


def _sniff(path: Path) -> bool:
    first = head(path).lstrip().split("\n", 1)[0]  # one JSON object per line
    return names_keys(first, ("dataset_name", "random_range_ratio", "request_rate"))


def read(path: Path, run: int = -1) -> Recording:
    """The recording in an SGLang ``bench_serving`` JSONL file (``run``: which line; -1 the last)."""
    path = Path(path)
    runs = load_runs(path, "SGLang bench_serving JSONL file")
    d = pick_run(path, runs, run)
    details = d["details"] if isinstance(d.get("details"), dict) else d
    rows = requests_from_lists(path, details, f"with --output-details (this is run {run % len(runs)} of {len(runs)})")
    request_rate = rate(d.get("request_rate"))
    conc = d.get("max_concurrency")
    raw_server = d.get("server_info")
    server: dict[str, Any] = raw_server if isinstance(raw_server, dict) else {}
    burst = rate(d.get("burstiness"))
    if burst is None and request_rate is not None and math.isfinite(request_rate):
        burst = 1.0
    meta: dict[str, Any] = {
        "request_rate": request_rate,
        "burstiness": burst,
        "max_concurrency": int(conc) if isinstance(conc, int | float) and not isinstance(conc, bool) else None,
        "duration_s": rate(d.get("duration")),
        "model": server.get("model_path") or server.get("served_model_name"),
        "backend": d.get("backend"),
        "date": None,
        "client": "SGLang bench_serving --output-details JSONL" + (" (details nested, benchmark/metrics.py)" if details is not d else ""),
        "run": run % len(runs),
        "runs": len(runs),
    }
    if d.get("request_rate") == "trace":
        meta["arrivals"] = "trace"
    for k in ("dataset_name", "completed", "tag"):
        if d.get(k) is not None:
            meta[k] = d[k]
    return Recording(frame(rows), "sglang", str(path), meta)


SGLANG = register(RecordingFormat("sglang", SUMMARY, _sniff, read))
