"""vLLM's serving benchmark result JSON (``--save-result --save-detailed``).

Client: vLLM's ``benchmarks/benchmark_serving.py --save-result`` and its successor
``vllm bench serve --save-result --save-detailed``. Read from the client source at
vllm-project/vllm ``benchmarks/benchmark_serving.py`` @ 0049e29c41fd383bda519a3f250e3227713081ef
and ``vllm/benchmarks/serve.py`` @ def9ce85ba1079af970a58ed3d42dd861ae35d58 (no per-request
times) and @ 009e6d4a1cd6ba3fb2a9fc00f4ec06f5297232a1 (adds ``latencies``, ``start_times``,
``queue_times``). One JSON object per run; with ``--append-result`` the file holds one object per
line (one per run) and :func:`read` takes the last unless given ``run=``.

Field mapping (one entry per request, in the order the client sent them):

================ ==========================================================================
``input_lens``   ``prompt_tokens`` (the dataset's prompt length)
``output_lens``  ``output_tokens`` (the server's ``usage`` count, else the client's re-tokenisation;
                 0 for a failed request)
``ttfts``        ``ttft_s`` (seconds)
``itls``         ``itl`` (seconds between streamed chunks; a list per request)
``latencies``    ``e2e_s`` where present; otherwise ``e2e_s = ttft + sum(itl)`` (the client's own
                 ``latency`` is the time of the last chunk, which is the same sum)
``start_times``  ``start_s`` (``time.perf_counter()`` when the request was sent, after any
                 ``--max-concurrency`` wait; made relative to the first) where present, else NaN:
                 ``benchmark_serving.py`` and ``vllm bench serve`` before the newest versions record
                 no per-request start times
``errors``       ``ok = False`` where non-empty; a request with ``ttfts`` 0 or ``output_lens`` 0
                 (what the client writes for a failed one) is also failed. Failed requests are kept.
================ ==========================================================================

``meta``: ``request_rate`` (``"inf"`` -> ``inf``; None under ``--ramp-up-strategy``, whose
``ramp_up`` is kept), ``burstiness``, ``max_concurrency``, ``duration_s`` (``duration``), ``model``
(``model_id``), ``backend``, ``date`` (ISO 8601, the client's local time), ``client``.

``benchmark_serving.py`` at the commit above keeps the per-request lists even without
``--save-detailed`` (it deletes them before merging the result in); ``vllm bench serve`` drops
them unless ``--save-detailed`` is given, and :func:`read` then says so.

The helpers below (:func:`load_runs`, :func:`pick_run`, :func:`requests_from_lists`) are shared
with the SGLang reader, whose result format is adapted from this one.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from simulator.validation.recording import Recording, RecordingError, RecordingFormat, frame, register

SUMMARY = "vLLM benchmark_serving.py / vllm bench serve --save-result --save-detailed (JSON)"
DETAILED = ("input_lens", "output_lens", "ttfts", "itls")


def head(path: Path, n: int = 1 << 16) -> str:
    """The first ``n`` bytes of ``path`` as text (for sniffing; never raises)."""
    try:
        with open(path, "rb") as f:
            return f.read(n).decode("utf-8", errors="replace")
    except OSError:
        return ""


def load_runs(path: Path, what: str) -> list[dict[str, Any]]:
    """The JSON objects in ``path``: one (a JSON file) or one per non-empty line (JSONL)."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise RecordingError(f"{path}: cannot be read as a {what} ({type(exc).__name__}: {exc}).") from exc
    try:
        runs: list[Any] = [json.loads(text)]
    except json.JSONDecodeError:
        runs = []
        for i, line in enumerate(text.splitlines()):
            if not line.strip():
                continue
            try:
                runs.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise RecordingError(f"{path}: line {i + 1} is not JSON ({exc.msg}); a {what} holds one JSON object per run.") from exc
    bad = [i for i, r in enumerate(runs) if not isinstance(r, dict)]
    if not runs or bad:
        raise RecordingError(f"{path}: {'no run found' if not runs else f'run {bad[0]} is not a JSON object'}; a {what} holds one JSON object per run.")
    return runs


def pick_run(path: Path, runs: list[dict[str, Any]], run: int) -> dict[str, Any]:
    """Run ``run`` (a Python index: -1 is the last) of the ``runs`` in ``path``."""
    if not -len(runs) <= run < len(runs):
        raise RecordingError(f"{path}: run={run} is out of range; the file holds {len(runs)} run(s) (0 to {len(runs) - 1}, or -1 for the last).")
    return runs[run]


def _floats(path: Path, field: str, values: Any) -> np.ndarray:
    try:
        return np.asarray(values, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise RecordingError(f"{path}: {field} holds a value that is not a number ({exc}).") from exc


def _negative(path: Path, field: str, a: np.ndarray, ok: np.ndarray) -> None:
    bad = np.flatnonzero(ok & ~(a >= 0))
    if len(bad):
        raise RecordingError(f"{path}: {field}[{int(bad[0])}] is {a[bad[0]]!r}; times and lengths must be finite and >= 0.")


def requests_from_lists(path: Path, d: dict[str, Any], how: str) -> dict[str, Any]:
    """The ``frame`` columns from the per-request lists of a vLLM or SGLang result ``d``.

    ``how`` finishes the sentence for a missing list (the flag that writes them).
    """
    missing = [k for k in DETAILED if k not in d]
    if missing:
        raise RecordingError(f"{path}: no '{missing[0]}' list; the per-request lists are written only {how}.")
    lists = {k: d[k] for k in (*DETAILED, "errors", "latencies", "start_times") if k in d and d[k] is not None}
    for k, v in lists.items():
        if not isinstance(v, list):
            raise RecordingError(f"{path}: '{k}' is a {type(v).__name__}, not a list with one entry per request.")
    n = len(lists["input_lens"])
    for k, v in lists.items():
        if len(v) != n:
            raise RecordingError(f"{path}: '{k}' has {len(v)} entries but 'input_lens' has {n}; the per-request lists must be the same length.")
    if n == 0:
        raise RecordingError(f"{path}: 'input_lens' is empty; no requests recorded.")
    prompt = _floats(path, "input_lens", lists["input_lens"])
    output = _floats(path, "output_lens", lists["output_lens"])
    ttft = _floats(path, "ttfts", lists["ttfts"])
    itls: list[list[float]] = []
    for i, v in enumerate(lists["itls"]):
        if not isinstance(v, list):
            raise RecordingError(f"{path}: itls[{i}] is a {type(v).__name__}, not a list of seconds.")
        itls.append(_floats(path, f"itls[{i}]", v).tolist())
    errors = lists.get("errors", [None] * n)
    ok = np.array([not e for e in errors], dtype=bool) & (ttft != 0) & (output != 0)  # 0: the client's value for a failure
    everyone = np.ones(n, dtype=bool)
    _negative(path, "input_lens", prompt, everyone)
    _negative(path, "output_lens", output, everyone)
    _negative(path, "ttfts", ttft, ok)
    for j in np.flatnonzero(ok):
        g = np.asarray(itls[j], dtype=np.float64)
        if len(g) and not (g >= 0).all():
            raise RecordingError(f"{path}: itls[{int(j)}] holds {g[~(g >= 0)][0]!r}; times must be finite and >= 0.")
    if "latencies" in lists:
        e2e = _floats(path, "latencies", lists["latencies"])
        _negative(path, "latencies", e2e, ok)
    else:
        e2e = ttft + np.array([math.fsum(g) for g in itls])
    if "start_times" in lists:
        sent = _floats(path, "start_times", lists["start_times"])
        _negative(path, "start_times", sent, everyone)
        start = sent - sent.min()
    else:
        start = np.full(n, np.nan)
    return {
        "start_s": start,
        "prompt_tokens": prompt,
        "output_tokens": output,
        "ttft_s": np.where(ok, ttft, np.nan),
        "e2e_s": np.where(ok, e2e, np.nan),
        "itl": [g if k else None for g, k in zip(itls, ok)],
        "ok": ok,
    }


def rate(value: Any) -> float | None:
    """A request rate as a client writes it (a number, ``"inf"``, ``Infinity``) as a float; None if not a rate."""
    if value is None or isinstance(value, bool):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def _date(value: Any) -> str | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value, "%Y%m%d-%H%M%S").isoformat()
    except ValueError:
        return value


def names_keys(text: str, keys: tuple[str, ...]) -> bool:
    """``text`` (the start of a file) opens a JSON object that names every one of ``keys`` (for sniffing)."""
    text = text.lstrip()
    return text.startswith("{") and all(f'"{k}"' in text for k in keys)


def _sniff(path: Path) -> bool:
    return names_keys(head(path), ("model_id", "num_prompts", "request_rate"))


def read(path: Path, run: int = -1) -> Recording:
    """The recording in a vLLM result file (``run``: which run of an ``--append-result`` file; -1 the last)."""
    path = Path(path)
    runs = load_runs(path, "vLLM result file")
    d = pick_run(path, runs, run)
    rows = requests_from_lists(path, d, "by vllm bench serve --save-result --save-detailed (or benchmark_serving.py --save-result)")
    conc = d.get("max_concurrency")
    meta: dict[str, Any] = {
        "request_rate": rate(d.get("request_rate")),
        "burstiness": rate(d.get("burstiness")),
        "max_concurrency": int(conc) if isinstance(conc, int | float) and not isinstance(conc, bool) else None,
        "duration_s": rate(d.get("duration")),
        "model": d.get("model_id"),
        "backend": d.get("backend", d.get("endpoint_type")),
        "date": _date(d.get("date")),
        "client": ("vllm bench serve" if "endpoint_type" in d or "failed" in d else "vLLM benchmark_serving.py / vllm bench serve")
        + f" --save-result JSON ({'with' if 'start_times' in d else 'without'} per-request start times)",
        "run": run % len(runs),
        "runs": len(runs),
    }
    if d.get("ramp_up_strategy"):
        meta["request_rate"] = None
        meta["ramp_up"] = {k: d.get(f"ramp_up_{k}") for k in ("strategy", "start_rps", "end_rps")}
    for k in ("num_prompts", "completed", "failed", "label", "tokenizer_id"):
        if d.get(k) is not None:
            meta[k] = d[k]
    return Recording(frame(rows), "vllm", str(path), meta)


VLLM = register(RecordingFormat("vllm", SUMMARY, _sniff, read))
