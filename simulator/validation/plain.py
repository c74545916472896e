"""The plain per-request table: CSV or Parquet with ``arrival_s, prompt_tokens, output_tokens,
ttft_s, e2e_s`` and optionally ``itl`` (a list of seconds, or in CSV a space-separated string)
and ``ok`` (false for failed requests)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from simulator.validation.recording import Recording, RecordingError, RecordingFormat, frame, register

REQUIRED = ("arrival_s", "prompt_tokens", "output_tokens", "ttft_s", "e2e_s")


def _load(path: Path) -> pd.DataFrame:
    try:
        return pd.read_parquet(path) if path.suffix == ".parquet" else pd.read_csv(path)
    except Exception as exc:  # a broken file: say which, and why, in one sentence
        raise RecordingError(f"{path}: cannot be read as a {path.suffix or 'CSV'} table ({type(exc).__name__}: {exc}).") from exc


def _sniff(path: Path) -> bool:
    if path.suffix not in (".csv", ".parquet"):
        return False
    try:
        cols = pd.read_parquet(path).columns if path.suffix == ".parquet" else pd.read_csv(path, nrows=1).columns
    except Exception:
        return False
    return set(REQUIRED) <= set(cols)


def _itl(value) -> list[float] | None:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    if isinstance(value, str):
        return [float(x) for x in value.split()] if value.strip() else None
    return [float(x) for x in value]


def _read(path: Path) -> Recording:
    df = _load(path)
    missing = [c for c in REQUIRED if c not in df.columns]
    if missing:
        raise RecordingError(f"{path}: no column {', '.join(missing)}; a plain recording has {', '.join(REQUIRED)} (and optionally itl, ok).")
    rows = {
        "start_s": df["arrival_s"].to_numpy(dtype=np.float64) - float(df["arrival_s"].min()),
        "prompt_tokens": df["prompt_tokens"].to_numpy(),
        "output_tokens": df["output_tokens"].to_numpy(),
        "ttft_s": df["ttft_s"].to_numpy(),
        "e2e_s": df["e2e_s"].to_numpy(),
        "itl": [_itl(v) for v in df["itl"]] if "itl" in df.columns else [None] * len(df),
        "ok": df["ok"].astype(bool).to_numpy() if "ok" in df.columns else np.ones(len(df), dtype=bool),
    }
    return Recording(frame(rows), "plain", str(path), {"client": "a plain per-request table"})


PLAIN = register(RecordingFormat("plain", "CSV or Parquet: arrival_s, prompt_tokens, output_tokens, ttft_s, e2e_s[, itl, ok]", _sniff, _read))
