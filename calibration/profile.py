"""The profile format: operator timings of one transformer layer, plus metadata.

A profile is a directory with two files:

``profile.parquet`` - one row per measured point:

    op          str    one of OPS below
    tokens      int64  rows through the op (attention: query tokens of the batch)
    batch       int64  sequences (attention ops; 0 for the others)
    ctx         int64  attention: prompt or chunk length (prefill, causal) or
                       context length (decode) per sequence; 0 for the others
    kv          int64  optional; prefill attention: tokens already in the KV
                       cache before the chunk, per sequence (chunked prefill
                       over an existing context, Vidur's ``kv_cache_size``);
                       0 for the others. A table without the column (older
                       profiles, the torch harness) means 0 everywhere: fresh
                       prompts only.
    time_s      float  median seconds for ONE layer on ONE GPU (TP shard);
                       lm_head: once per step, for ``tokens`` logit rows.
                       Zero is allowed (an op that takes no time, e.g. a
                       no-op reshape); negative, NaN or non-numeric is not.
    p10_s       float  10th percentile of the repeats
    p90_s       float  90th percentile of the repeats
    repeats     int64  timed repeats

``metadata.json`` - provenance and the shapes measured: ``format``
(``servesim-profile/1``), ``source``, ``device``, ``device_kind``
(``cuda``/``cpu``), ``driver``, ``cuda``, ``torch``, ``dtype``, ``kv_dtype``,
``model`` (name and shape), ``tp``, ``grid``, ``date``, ``step_overhead_s``
(fitted per-step cost outside the operators), ``allreduce`` (how
communication was obtained) and free-form ``notes``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import pandas as pd

FORMAT = "servesim-profile/1"
PARQUET = "profile.parquet"
METADATA = "metadata.json"

#: Per-layer operators keyed by ``tokens`` alone.
TOKEN_OPS = ("qkv", "attn_out", "mlp_gate_up", "mlp_down", "norm", "act", "rope", "add", "allreduce")
#: Attention operators keyed by (batch, ctx).
ATTENTION_OPS = ("attn_prefill", "attn_decode")
#: Once per step, keyed by the number of logit rows.
STEP_OPS = ("lm_head",)
OPS = TOKEN_OPS + ATTENTION_OPS + STEP_OPS

COLUMNS = ("op", "tokens", "batch", "ctx", "time_s", "p10_s", "p90_s", "repeats")
#: Optional columns and the value their absence means.
OPTIONAL = {"kv": 0}

#: Model shape keys a profile records and a scenario's model must match.
SHAPE_KEYS = ("hidden_size", "num_attention_heads", "num_kv_heads", "head_dim", "intermediate_size", "vocab_size")


@dataclass
class Profile:
    table: pd.DataFrame
    metadata: dict = field(default_factory=dict)
    path: Path | None = None

    def ops(self) -> set[str]:
        return set(self.table["op"].unique())

    def save(self, directory: str | Path) -> Path:
        out = Path(directory)
        out.mkdir(parents=True, exist_ok=True)
        table = normalise(self.table)
        table.to_parquet(out / PARQUET, index=False)
        meta = {"format": FORMAT, **self.metadata}
        (out / METADATA).write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
        self.path = out
        return out


def normalise(table: pd.DataFrame) -> pd.DataFrame:
    """Check columns, ops and times; fix dtypes and a stable row order.

    The optional ``kv`` column is kept when present (missing cells mean 0) and
    not added when absent, so a table without it round-trips unchanged.
    """
    missing = [c for c in COLUMNS if c not in table.columns]
    if missing:
        raise ValueError(f"profile table lacks columns: {', '.join(missing)}")
    unknown = sorted(set(table["op"]) - set(OPS))
    if unknown:
        raise ValueError(f"profile table has unknown ops: {', '.join(unknown)}; known: {', '.join(OPS)}")
    cols = list(COLUMNS) + [c for c in OPTIONAL if c in table.columns]
    t = table.loc[:, cols].copy()
    for c, default in OPTIONAL.items():
        if c in t.columns:
            t[c] = t[c].fillna(default)
    for c in ("tokens", "batch", "ctx", "repeats", *(c for c in OPTIONAL if c in t.columns)):
        t[c] = t[c].astype("int64")
    for c in ("time_s", "p10_s", "p90_s"):
        values = pd.to_numeric(t[c], errors="coerce")
        bad = values.isna() & t[c].notna()
        if bad.any():
            raise ValueError(f"profile {c} must be numbers; got {t.loc[bad, c].iloc[0]!r} ({int(bad.sum())} such rows)")
        t[c] = values.astype("float64")
    t["op"] = t["op"].astype(str)
    if t["time_s"].isna().any():
        rows = t[t["time_s"].isna()]
        raise ValueError(
            f"profile times must be numbers >= 0: {len(rows)} rows have no time_s (NaN), e.g. op "
            f"{rows['op'].iloc[0]} at tokens={rows['tokens'].iloc[0]}; drop or fill them"
        )
    if (t["time_s"] < 0).any():
        rows = t[t["time_s"] < 0]
        raise ValueError(
            f"profile times must be numbers >= 0: {len(rows)} rows are negative, e.g. op "
            f"{rows['op'].iloc[0]} at tokens={rows['tokens'].iloc[0]} time_s={rows['time_s'].iloc[0]!r}"
        )
    order = ["op", "batch", "ctx", *(c for c in OPTIONAL if c in t.columns), "tokens"]
    return t.sort_values(order, kind="stable").reset_index(drop=True)


def packaged_dir() -> Path:
    """The profiles shipped with servesim (calibration/profiles/)."""
    return Path(str(resources.files("simulator.calibration").joinpath("profiles")))


def resolve(path_or_name: str) -> Path:
    """A profile directory: a path, or the name of a shipped profile."""
    p = Path(path_or_name).expanduser()
    if (p / PARQUET).is_file():
        return p
    shipped = packaged_dir() / path_or_name
    if (shipped / PARQUET).is_file():
        return shipped
    from simulator.errors import ConfigError

    names = sorted(d.name for d in packaged_dir().iterdir() if (d / PARQUET).is_file()) if packaged_dir().is_dir() else []
    raise ConfigError(
        f"latency.profile.path={path_or_name!r} is neither a profile directory (with {PARQUET} and {METADATA}) "
        f"nor a shipped profile; shipped: {', '.join(names) or 'none'}."
    )


_LOADED: dict[tuple, Profile] = {}


def load(path_or_name: str) -> Profile:
    """Read a profile; a directory already read (same files, unchanged) is not read again.

    Validation and the simulation both need the profile of a run; callers
    must treat the returned Profile as read-only.
    """
    d = resolve(path_or_name)
    stamp = tuple((f.stat().st_mtime_ns, f.stat().st_size) if f.is_file() else None for f in (d / PARQUET, d / METADATA))
    key = (str(d.resolve()), stamp)
    if key not in _LOADED:
        _LOADED[key] = _read(d)
    return _LOADED[key]


def _read(d: Path) -> Profile:
    meta = json.loads((d / METADATA).read_text()) if (d / METADATA).is_file() else {}
    if meta.get("format") != FORMAT:
        from simulator.errors import ConfigError

        raise ConfigError(f"{d} is not a {FORMAT} profile (metadata.json format={meta.get('format')!r}).")
    return Profile(normalise(pd.read_parquet(d / PARQUET)), meta, d)
