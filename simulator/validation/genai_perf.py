"""NVIDIA genai-perf's ``profile_export.json`` (perf_analyzer's raw per-request export).

Client: ``genai-perf profile ...``, which runs perf_analyzer with ``--profile-export-file
profile_export.json`` and then computes its metrics from that file. Read from the client source
at triton-inference-server/perf_analyzer @ 263c5f6e0c7a6c15472a54409174981f67930cfe (genai-perf
0.0.16dev): ``src/profile_data_exporter.cc`` (the file's layout) and
``genai-perf/genai_perf/profile_data_parser/llm_profile_data_parser.py`` (how genai-perf reads it).

Layout: ``{"experiments": [{"experiment": {"mode": "concurrency"|"request_rate", "value": N},
"requests": [{"timestamp": ns, "request_inputs": {...}, "response_timestamps": [ns, ...],
"response_outputs": [{...}, ...]}, ...], "window_boundaries": [ns, ...]}], "version": ...,
"service_kind": "openai"|"triton"|"triton_c_api"|..., "endpoint": "v1/chat/completions"|...}``.
Timestamps are nanoseconds since the epoch. :func:`read` takes the last experiment unless given
``experiment=``.

Field mapping, per request (as genai-perf computes its own metrics):

================== =========================================================================
``timestamp``      ``start_s`` (seconds from the experiment's first request)
responses          as genai-perf: an SSE event split across responses is joined again, and a
                   response with no text (the role-only first chunk, the ``[DONE]`` event, a
                   usage-only chunk, SSE comments) is dropped first
``ttft_s``         first remaining response timestamp - ``timestamp``
``e2e_s``          last remaining response timestamp - ``timestamp`` (genai-perf's request latency)
``itl``            gaps between the remaining response timestamps (one per streamed response)
``ok``             False for a request with no remaining response (genai-perf skips those) or
                   with an SSE error event / a ``{"error": ...}`` payload. perf_analyzer stops the
                   run on a transport error, so such requests are rare. Failed requests are kept.
================== =========================================================================

Token counts are **not recorded** in the file: genai-perf re-tokenises the request payload text
and the response texts with the model's tokenizer (the ``*_genai_perf.json`` companion holds only
aggregate statistics and the run's configuration). They are taken, in this order, from:
(1) ``input_ids`` / ``output_ids`` in the request and responses (``triton_c_api``, as genai-perf
does); (2) the server's ``usage`` object in an OpenAI response (streamed with
``--extra-inputs '{"stream_options":{"include_usage":true}}'``): ``prompt_tokens`` and
``completion_tokens``; (3) ``count_tokens`` (a ``str -> int`` tokenizer count) given to
:func:`read`, applied as genai-perf does (the prompt text; all response texts joined). Otherwise
:func:`read` raises a :class:`RecordingError` saying so.

``meta``: ``request_rate`` (the experiment value in ``request_rate`` mode; ``inf`` in
``concurrency`` mode, a closed loop), ``max_concurrency`` (the value in ``concurrency`` mode),
``burstiness`` (``inf`` in ``request_rate`` mode: perf_analyzer's default ``constant`` request
distribution, which genai-perf leaves as is; not set in ``concurrency`` mode), ``duration_s``
(last response - first request, genai-perf's benchmark duration), ``model`` (the payload's
``model``), ``backend`` (``service_kind`` and ``endpoint``), ``date`` (the first request, UTC),
``client``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from simulator.validation.recording import Recording, RecordingError, RecordingFormat, frame, register
from simulator.validation.vllm import head, names_keys

SUMMARY = "NVIDIA genai-perf / perf_analyzer profile_export.json (per-request ns timestamps)"


def _sniff(path: Path) -> bool:
    return names_keys(head(path, 1 << 12), ("experiments", "experiment", "mode"))


def _json(text: str) -> Any:
    try:
        return json.loads(text)
    except (json.JSONDecodeError, TypeError):
        return None


class _Response:
    """One perf_analyzer response output: its text, token ids, usage and whether it is an error."""

    def __init__(self, output: dict[str, Any]) -> None:
        self.text = ""
        self.error = False
        self.usage: dict[str, Any] | None = None
        self.ids: int | None = None
        if "output_ids" in output:  # triton_c_api: token ids, no text
            ids = output["output_ids"]
            self.ids = len(ids) if isinstance(ids, list) else (1 if isinstance(ids, int) and not isinstance(ids, bool) else 0)
            return
        if "text_output" in output:  # triton (and its /generate endpoint): text, maybe as an SSE event
            raw = output["text_output"]
            self.text = raw if isinstance(raw, str) else " ".join(map(str, raw)) if isinstance(raw, list) else ""
            return
        raw = output.get("response", "")
        for event in str(raw).strip().split("\n\n"):  # a response may carry several SSE events
            self._event(event.strip())

    def _event(self, event: str) -> None:
        if not event or event.startswith(":"):
            return
        if event.startswith(("event:", "id:", "retry:")):
            if event.startswith("event:") and "error" in event.lower():
                self.error = True
            return
        body = event[len("data:") :].strip() if event.startswith("data:") else event
        if body == "[DONE]":
            return
        data = _json(body)
        if isinstance(data, list) and data and isinstance(data[0], dict):  # HuggingFace generate
            self.text += str(data[0].get("generated_text") or "")
            return
        if not isinstance(data, dict):
            return
        if "error" in data:
            self.error = True
            return
        if isinstance(data.get("usage"), dict):
            self.usage = data["usage"]
        if "text_output" in data:
            self.text += str(data.get("text_output") or "")
        choices = data.get("choices")
        if isinstance(choices, list) and choices and isinstance(choices[0], dict):
            c = choices[0]
            part = (c.get("delta") or {}).get("content") if "delta" in c else (c.get("message") or {}).get("content") if "message" in c else c.get("text")
            self.text += str(part or "")

    @property
    def empty(self) -> bool:
        return not self.text and not self.ids


def _unsplinter(outs: list[Any]) -> list[dict[str, Any]]:
    """The response outputs with SSE events split across responses joined again, as genai-perf does."""
    outs = [dict(o) if isinstance(o, dict) else {} for o in outs]
    for i in reversed(range(1, len(outs))):
        r, prev = outs[i].get("response"), outs[i - 1].get("response")
        if not isinstance(r, str) or not r or r.startswith((":", "event:", "id:", "retry:", "data:")):
            continue
        if not isinstance(prev, str) or "data:" not in prev:
            continue
        k = r.find("data: ")
        outs[i - 1]["response"], outs[i]["response"] = (prev + r, "") if k == -1 else (prev + r[:k], r[k:])
    return outs


def _prompt_text(inputs: dict[str, Any]) -> str:
    """The request's prompt as genai-perf tokenises it."""
    if "text_input" in inputs:
        t = inputs["text_input"]
        return " ".join(map(str, t)) if isinstance(t, list) else str(t)
    payload = _json(inputs.get("payload", ""))
    if not isinstance(payload, dict):
        return ""
    if "messages" in payload:
        parts: list[str] = []
        for m in payload["messages"]:
            c = m.get("content", "") if isinstance(m, dict) else ""
            if isinstance(c, list):  # multimodal: the text parts only
                parts.extend(str(x.get("text", "")) for x in c if isinstance(x, dict) and x.get("type") == "text")
            else:
                parts.append(str(c))
        return " ".join(parts)
    if "prompt" in payload:
        p = payload["prompt"]
        return " ".join(map(str, p)) if isinstance(p, list) else str(p)
    if "text_input" in payload:
        t = payload["text_input"]
        return " ".join(map(str, t)) if isinstance(t, list) else str(t)
    return str(payload.get("inputs", ""))


def _ns(path: Path, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordingError(f"{path}: {field} is {value!r}; perf_analyzer writes timestamps as integer nanoseconds.")
    return int(value)


def _count(path: Path, field: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise RecordingError(f"{path}: {field} is {value!r}; a token count must be a whole number >= 0.")
    return int(value)


def _experiment(path: Path, experiment: int) -> tuple[dict[str, Any], list, dict[str, Any], str]:
    """(the file, its experiments, the chosen one, where it is) of a profile export; one sentence when broken."""
    try:
        data = json.loads(path.read_text(encoding="utf-8", errors="ignore"))
    except (OSError, json.JSONDecodeError) as exc:
        raise RecordingError(f"{path}: cannot be read as a genai-perf profile export JSON ({type(exc).__name__}: {exc}).") from exc
    if not isinstance(data, dict) or not isinstance(data.get("experiments"), list) or not data["experiments"]:
        raise RecordingError(f"{path}: no 'experiments' list; a genai-perf profile_export.json holds one entry per experiment.")
    exps = data["experiments"]
    if not -len(exps) <= experiment < len(exps):
        raise RecordingError(f"{path}: experiment={experiment} is out of range; the file holds {len(exps)} experiment(s).")
    exp = exps[experiment]
    where = f"experiments[{experiment % len(exps)}]"
    if not isinstance(exp, dict) or not isinstance(exp.get("requests"), list):
        raise RecordingError(f"{path}: {where} has no 'requests' list.")
    return data, exps, exp, where


def _request(path: Path, at: str, req: Any, count_tokens: Callable[[str], int] | None) -> dict[str, Any]:
    """One request's send time (ns), TTFT, e2e, gaps, whether it completed, token counts (None: not recorded), model."""
    if not isinstance(req, dict):
        raise RecordingError(f"{path}: {at} is not an object.")
    for key in ("timestamp", "response_timestamps", "response_outputs"):
        if key not in req:
            raise RecordingError(f"{path}: {at} has no '{key}'; perf_analyzer writes timestamp, request_inputs, response_timestamps and response_outputs.")
    t0 = _ns(path, f"{at}.timestamp", req["timestamp"])
    stamps, outs = req["response_timestamps"], req["response_outputs"]
    if not isinstance(stamps, list) or not isinstance(outs, list) or len(stamps) != len(outs):
        n_s = len(stamps) if isinstance(stamps, list) else type(stamps).__name__
        n_o = len(outs) if isinstance(outs, list) else type(outs).__name__
        raise RecordingError(f"{path}: {at}.response_timestamps has {n_s} entries but response_outputs has {n_o}; they must pair one to one.")
    raw_inputs = req.get("request_inputs")
    inputs: dict[str, Any] = raw_inputs if isinstance(raw_inputs, dict) else {}
    payload = _json(inputs.get("payload", ""))
    resp = [_Response(o) for o in _unsplinter(outs)]
    ts = [_ns(path, f"{at}.response_timestamps[{j}]", s) for j, s in enumerate(stamps)]
    kept = [(t, r) for t, r in zip(ts, resp) if not r.empty]
    good = bool(kept) and not any(r.error for r in resp)
    out: dict[str, Any] = {"sent": t0, "ok": good, "ttft": np.nan, "e2e": np.nan, "itl": None,
                           "model": payload.get("model") if isinstance(payload, dict) else None}  # fmt: skip
    if good:
        times = np.array([t for t, _ in kept], dtype=np.int64)
        if times[0] < t0 or (np.diff(times) < 0).any():
            raise RecordingError(f"{path}: {at}.response_timestamps go before the request or backwards; times must not be negative.")
        out.update(ttft=(times[0] - t0) / 1e9, e2e=(times[-1] - t0) / 1e9, itl=(np.diff(times) / 1e9).tolist())
    # token counts: ids, else the server's usage, else the caller's tokenizer
    usage = next((r.usage for r in reversed(resp) if r.usage), None)
    if "input_ids" in inputs or any(r.ids is not None for r in resp):
        ids_in = inputs.get("input_ids", [])
        out.update(prompt=len(ids_in) if isinstance(ids_in, list) else 1, output=sum(r.ids or 0 for r in resp))
    elif usage is not None and "completion_tokens" in usage:
        out.update(prompt=_count(path, f"{at} usage.prompt_tokens", usage.get("prompt_tokens")),
                   output=_count(path, f"{at} usage.completion_tokens", usage["completion_tokens"]))  # fmt: skip
    elif count_tokens is not None:
        out.update(prompt=count_tokens(_prompt_text(inputs)), output=count_tokens("".join(r.text for r in resp)) if good else 0)
    else:
        out.update(prompt=None if good else 0, output=None if good else 0)
    return out


def _meta(data: dict[str, Any], exp: dict[str, Any], experiment: int, n: int, sent: np.ndarray, ends: list[float], model: Any) -> dict[str, Any]:
    """What the file says about the run: its mode (concurrency or request rate), duration, model, date, client."""
    raw = exp.get("experiment")
    spec: dict[str, Any] = raw if isinstance(raw, dict) else {}
    mode, value = spec.get("mode"), spec.get("value")
    service, endpoint = str(data.get("service_kind", "")), str(data.get("endpoint", ""))
    meta: dict[str, Any] = {
        "request_rate": float("inf") if mode == "concurrency" else (float(value) if mode == "request_rate" and value is not None else None),
        "max_concurrency": int(value) if mode == "concurrency" and value is not None else None,
        "duration_s": float(max(ends) - int(sent.min())) / 1e9 if ends else None,
        "model": model,
        "backend": " ".join(x for x in (service, endpoint) if x) or None,
        "date": datetime.fromtimestamp(int(sent.min()) / 1e9, tz=UTC).isoformat(),
        "client": f"genai-perf profile_export.json (perf_analyzer {data.get('version', '?')}), experiment {experiment % n} of {n}",
        "experiment": experiment % n,
        "experiments": n,
    }
    if mode == "request_rate":
        meta["burstiness"] = float("inf")
    return meta


def read(path: Path, experiment: int = -1, count_tokens: Callable[[str], int] | None = None) -> Recording:
    """The recording in a genai-perf ``profile_export.json`` (``experiment``: which one; -1 the last).

    ``count_tokens`` counts a text's tokens with the model's tokenizer, for files that record
    neither token ids nor the server's ``usage``.
    """
    path = Path(path)
    data, exps, exp, where = _experiment(path, experiment)
    reqs = [_request(path, f"{where}.requests[{i}]", req, count_tokens) for i, req in enumerate(exp["requests"])]
    if not reqs:
        raise RecordingError(f"{path}: {where}.requests is empty; no requests recorded.")
    missing = next((f"{where}.requests[{i}]" for i, r in enumerate(reqs) if r["prompt"] is None), None)
    if missing is not None:
        raise RecordingError(
            f"{path}: {missing} records no token counts (no input_ids/output_ids, no usage in its responses): genai-perf "
            "re-tokenises the prompt and response texts with the model's tokenizer, so rerun with "
            "--extra-inputs '{\"stream_options\":{\"include_usage\":true}}' or pass count_tokens to read()."
        )
    t = np.array([r["sent"] for r in reqs], dtype=np.int64)
    ends = [r["sent"] + r["e2e"] * 1e9 for r in reqs if r["ok"]]
    model = next((r["model"] for r in reqs if r["model"] is not None), None)
    rows = {
        "start_s": (t - t.min()) / 1e9,
        "prompt_tokens": np.array([r["prompt"] for r in reqs]),
        "output_tokens": np.array([r["output"] for r in reqs]),
        "ttft_s": np.array([r["ttft"] for r in reqs], dtype=np.float64),
        "e2e_s": np.array([r["e2e"] for r in reqs], dtype=np.float64),
        "itl": [r["itl"] for r in reqs],
        "ok": np.array([r["ok"] for r in reqs], dtype=bool),
    }
    return Recording(frame(rows), "genai_perf", str(path), _meta(data, exp, experiment, len(exps), t, ends, model))


GENAI_PERF = register(RecordingFormat("genai_perf", SUMMARY, _sniff, read))
