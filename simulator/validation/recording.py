"""A recorded benchmark run of a real engine, as servesim reads it: one row per request.

Every client's result file (vLLM's ``benchmark_serving.py`` / ``vllm bench
serve``, SGLang's ``bench_serving``, genai-perf, LLMPerf, or a plain table)
is read into a :class:`Recording`:

``requests`` (a DataFrame, in the order the client sent them):

============== =====================================================================
start_s        when the client sent it, seconds from the first request (NaN: not recorded)
prompt_tokens  input length in tokens
output_tokens  output length in tokens (what the engine generated)
ttft_s         time to first token (NaN for a failed request)
e2e_s          time to the last token (NaN for a failed request)
itl            the request's inter-token latencies in seconds (a list), or None
ok             False for a request the client recorded as failed
============== =====================================================================

``meta``: what the client says about the run, where it says it:
``request_rate`` (req/s; ``inf`` = all at once), ``burstiness`` (the gamma
shape of its arrivals, 1 = Poisson), ``max_concurrency``, ``duration_s``,
``model``, ``backend``, ``date`` and ``client`` (the tool and version the
format was read as).

Readers register in :data:`FORMATS` by name with a ``sniff`` test; bad files
raise :class:`RecordingError`, one sentence naming the file and the field.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from simulator.errors import ServesimError

#: the columns of Recording.requests, in order
COLUMNS = ("start_s", "prompt_tokens", "output_tokens", "ttft_s", "e2e_s", "itl", "ok")


class RecordingError(ServesimError):
    """A recorded benchmark file servesim cannot read (the message names the file and the field)."""


@dataclass
class Recording:
    requests: pd.DataFrame
    format: str
    path: str
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> pd.DataFrame:
        """The requests that completed."""
        return self.requests[self.requests["ok"]]

    def check(self) -> Recording:
        """Column types and values as documented; raises RecordingError naming the file."""
        df = self.requests
        missing = [c for c in COLUMNS if c not in df.columns]
        if missing:
            raise RecordingError(f"{self.path}: the {self.format} reader produced no {', '.join(missing)} (a bug).")
        if not len(df):
            raise RecordingError(f"{self.path}: no requests recorded.")
        for col in ("prompt_tokens", "output_tokens"):
            v = pd.to_numeric(df[col], errors="coerce")
            bad = np.flatnonzero(~(v >= 1) & df["ok"].to_numpy())
            if len(bad):
                raise RecordingError(
                    f"{self.path}: request {int(bad[0])} has {col}={df[col].iloc[bad[0]]}; lengths must be whole numbers >= 1."
                )
        if not df["ok"].any():
            raise RecordingError(f"{self.path}: every request is recorded as failed; nothing to compare with.")
        return self


@dataclass(frozen=True)
class RecordingFormat:
    """One client's result file: how to recognise it and how to read it."""

    name: str
    summary: str  # the client and the versions covered, for messages and docs
    sniff: Callable[[Path], bool]
    read: Callable[[Path], Recording]


FORMATS: dict[str, RecordingFormat] = {}


def register(fmt: RecordingFormat) -> RecordingFormat:
    FORMATS[fmt.name] = fmt
    return fmt


def frame(rows: dict[str, Any]) -> pd.DataFrame:
    """A requests frame from column arrays (missing optional columns filled), columns in order."""
    n = len(next(iter(rows.values())))
    out = {
        "start_s": rows.get("start_s", np.full(n, np.nan)),
        "prompt_tokens": rows["prompt_tokens"],
        "output_tokens": rows["output_tokens"],
        "ttft_s": rows["ttft_s"],
        "e2e_s": rows["e2e_s"],
        "itl": rows.get("itl", [None] * n),
        "ok": rows.get("ok", np.ones(n, dtype=bool)),
    }
    df = pd.DataFrame(out)
    df["start_s"] = pd.to_numeric(df["start_s"], errors="coerce").astype("float64")
    for col in ("ttft_s", "e2e_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype("float64")
    df["ok"] = df["ok"].astype(bool) & df["ttft_s"].notna() & df["e2e_s"].notna()
    for col in ("prompt_tokens", "output_tokens"):
        df[col] = pd.to_numeric(df[col], errors="coerce").fillna(0).astype("int64")
    return df
