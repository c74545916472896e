"""Import operator profiles published in Vidur's format.

Vidur (microsoft/vidur) profiles each GPU and model into
``compute/<gpu>/<model>/mlp.csv`` (per-layer linear and elementwise ops by
``num_tokens`` and ``num_tensor_parallel_workers``) and
``compute/<gpu>/<model>/attention.csv`` (prefill and decode attention by
batch size, chunk size and KV cache size). Times are milliseconds with
``time_stats.<op>.{min,max,mean,median,std}`` columns.

This importer maps them onto servesim's profile format for one TP degree:

    attn_pre_proj -> qkv            attn_post_proj -> attn_out
    mlp_up_proj   -> mlp_gate_up    mlp_down_proj  -> mlp_down
    mlp_act       -> act            attn_rope      -> rope
    input_layernorm, post_attention_layernorm -> norm (their mean)
    add           -> add
    attn_prefill (is_prefill, batch_size, prefill_chunk_size, kv_cache_size)
                  -> attn_prefill (batch, ctx = chunk length, kv = cached context)
    attn_decode (batch_size, kv_cache_size) -> attn_decode (batch, ctx)

An attention row's time is the attention layer as Vidur times it: the
kernel (``attn_prefill`` or ``attn_decode``) plus ``attn_kv_cache_save``
(writing the new keys and values) plus ``attn_input_reshape`` and
``attn_output_reshape`` (zero in FlashInfer tables: no-op reshapes).

Vidur publishes min/max rather than percentiles: they become ``p10_s`` and
``p90_s``. ``emb`` is dropped (servesim folds the embedding lookup into the
per-step overhead). A missing ``attention.csv`` leaves attention to the
roofline model, and ``describe()`` of the run says so.

Empty cells (rows the profiler did not finish: the A30 Qwen2-7B ``mlp.csv``
has 470) are skipped op by op - that op interpolates between its measured
neighbours there - and the metadata notes say how many and which
(``skipped_cells``: op -> token counts).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .profile import Profile

MLP_OPS = {
    "attn_pre_proj": "qkv",
    "attn_post_proj": "attn_out",
    "mlp_up_proj": "mlp_gate_up",
    "mlp_down_proj": "mlp_down",
    "mlp_act": "act",
    "attn_rope": "rope",
    "add": "add",
}
NORMS = ("input_layernorm", "post_attention_layernorm")
SHAPE_COLUMNS = {"n_head": "num_attention_heads", "n_kv_head": "num_kv_heads", "n_embd": "hidden_size", "vocab_size": "vocab_size"}


class VidurFormatError(ValueError):
    """A file is not in Vidur's profile format (the message names file and column)."""


def _stat(df: pd.DataFrame, op: str, stat: str, path: Path) -> pd.Series:
    col = f"time_stats.{op}.{stat}"
    if col not in df.columns:
        raise VidurFormatError(f"{path}: column {col!r} is missing; is this a Vidur profile?")
    return df[col].astype(float) / 1e3


def _rows(op: str, tokens, batch, ctx, med, lo, hi) -> pd.DataFrame:
    return pd.DataFrame(
        {"op": op, "tokens": tokens, "batch": batch, "ctx": ctx, "time_s": med, "p10_s": lo, "p90_s": hi, "repeats": 0}
    )


ATTENTION_EXTRAS = ("attn_kv_cache_save", "attn_input_reshape", "attn_output_reshape")
STATS = ("median", "min", "max")


def _op_rows(df: pd.DataFrame, op: str, tokens, path: Path, skipped: dict) -> tuple:
    """(tokens, median, min, max) of one Vidur op, rows with an empty cell skipped (and counted)."""
    stats = [_stat(df, op, s, path).to_numpy() for s in STATS]
    empty = np.zeros(len(df), dtype=bool)
    for v in stats:
        empty |= np.isnan(v)
    if empty.any():
        cells = int(df[[c for c in df.columns if c.startswith(f"time_stats.{op}.")]].isna().to_numpy().sum())
        entry = skipped.setdefault(op, {"cells": 0, "num_tokens": []})
        entry["cells"] += cells
        entry["num_tokens"] += sorted(int(x) for x in np.asarray(tokens)[empty])
    keep = ~empty
    return (np.asarray(tokens)[keep], *(v[keep] for v in stats))


def read_mlp(path: Path, tp: int, skipped: dict | None = None) -> tuple[pd.DataFrame, dict]:
    """The token ops of one TP degree. ``skipped`` (op -> {cells, num_tokens}) collects empty cells."""
    skipped = {} if skipped is None else skipped
    df = pd.read_csv(path)
    for col in ("num_tokens", "num_tensor_parallel_workers"):
        if col not in df.columns:
            raise VidurFormatError(f"{path}: column {col!r} is missing; is this a Vidur mlp.csv?")
    tps = sorted(int(x) for x in df["num_tensor_parallel_workers"].unique())
    df = df[df["num_tensor_parallel_workers"] == tp]
    if df.empty:
        raise VidurFormatError(f"{path}: no rows for TP {tp}; it has TP {', '.join(map(str, tps))}.")
    df = df.sort_values("num_tokens", kind="stable")
    tokens = df["num_tokens"].astype(int).to_numpy()
    parts = []
    for vop, op in MLP_OPS.items():
        tok, med, lo, hi = _op_rows(df, vop, tokens, path, skipped)
        parts.append(_rows(op, tok, 0, 0, med, lo, hi))
    norm = [[_stat(df, n, s, path).to_numpy() for s in STATS] for n in NORMS]
    for n in NORMS:  # count the norms' empty cells too
        _op_rows(df, n, tokens, path, skipped)
    med, lo, hi = ((a + b) / 2 for a, b in zip(*norm))
    keep = ~np.isnan(med) & ~np.isnan(lo) & ~np.isnan(hi)
    parts.append(_rows("norm", tokens[keep], 0, 0, med[keep], lo[keep], hi[keep]))
    shape = {ours: int(df[theirs].iloc[0]) for theirs, ours in SHAPE_COLUMNS.items() if theirs in df.columns}
    if "n_expanded_embd" in df.columns:
        shape["intermediate_size"] = int(df["n_expanded_embd"].iloc[0])
    if "num_attention_heads" in shape and "hidden_size" in shape:
        shape["head_dim"] = shape["hidden_size"] // shape["num_attention_heads"]
    return pd.concat(parts, ignore_index=True), shape


def _attention_stats(df: pd.DataFrame, kernel: str, path: Path) -> list:
    """(median, min, max) of the attention layer: the kernel plus the KV-cache write and reshapes."""
    out = []
    for s in STATS:
        total = _stat(df, kernel, s, path).to_numpy()
        for extra in ATTENTION_EXTRAS:
            if f"time_stats.{extra}.{s}" in df.columns:
                total = total + np.nan_to_num(_stat(df, extra, s, path).to_numpy())
        out.append(total)
    return out


def read_attention(path: Path, tp: int) -> pd.DataFrame:
    """Prefill rows keyed by (batch, chunk, cached context); decode rows by (batch, context)."""
    df = pd.read_csv(path)
    for col in ("is_prefill", "batch_size", "prefill_chunk_size", "kv_cache_size"):
        if col not in df.columns:
            raise VidurFormatError(f"{path}: column {col!r} is missing; is this a Vidur attention.csv?")
    if "num_tensor_parallel_workers" in df.columns:
        tps = sorted(int(x) for x in df["num_tensor_parallel_workers"].unique())
        df = df[df["num_tensor_parallel_workers"] == tp]
        if df.empty:
            raise VidurFormatError(f"{path}: no rows for TP {tp}; it has TP {', '.join(map(str, tps))}.")
    prefill = df["is_prefill"].astype(str).str.lower().isin(["true", "1"])
    parts = []
    pre = df[prefill]
    if len(pre):
        b = pre["batch_size"].astype(int).to_numpy()
        c = pre["prefill_chunk_size"].astype(int).to_numpy()
        rows = _rows("attn_prefill", b * c, b, c, *_attention_stats(pre, "attn_prefill", path))
        rows["kv"] = pre["kv_cache_size"].astype(int).to_numpy()
        parts.append(rows)
    dec = df[~prefill]
    if len(dec):
        b = dec["batch_size"].astype(int).to_numpy()
        c = dec["kv_cache_size"].astype(int).to_numpy()
        rows = _rows("attn_decode", b, b, c, *_attention_stats(dec, "attn_decode", path))
        rows["kv"] = 0
        parts.append(rows)
    out = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    if len(out):
        out = out[~out[["time_s", "p10_s", "p90_s"]].isna().any(axis=1)]
    return out


def import_vidur(directory: str | Path, *, tp: int = 1, name: str | None = None, dtype: str = "fp16") -> Profile:
    """A profile from a Vidur ``compute/<gpu>/<model>/`` directory (``mlp.csv``, optionally ``attention.csv``)."""
    d = Path(directory)
    mlp = d / "mlp.csv"
    if not mlp.is_file():
        raise VidurFormatError(f"{d}: no mlp.csv; expected Vidur's compute/<gpu>/<model>/ layout.")
    skipped: dict = {}
    table, shape = read_mlp(mlp, tp, skipped)
    notes = ["linear layers, norms, activation, rotary and residual add measured by Vidur"]
    if skipped:
        cells = sum(e["cells"] for e in skipped.values())
        which = ", ".join(
            f"{op} {e['cells']} cells ({len(e['num_tokens'])} rows, num_tokens {_spans(e['num_tokens'])})"
            for op, e in sorted(skipped.items())
        )
        notes.append(f"mlp.csv: {cells} empty cells skipped ({which}); those ops interpolate between measured neighbours")
    attn = d / "attention.csv"
    if attn.is_file():
        at = read_attention(attn, tp)
        table = pd.concat([table.assign(kv=0), at], ignore_index=True)
        kinds = sorted(set(at["op"])) if len(at) else []
        notes.append(
            f"attention measured by Vidur ({', '.join(kinds) or 'no rows'}; prefill keyed by chunk and cached context; "
            "each row = kernel + attn_kv_cache_save + reshapes)"
        )
    else:
        notes.append("no attention.csv: attention and LM head fall back to the roofline model")
    gpu = d.parent.parent.name if d.parent.parent.name else "unknown"
    model_name = name or d.name
    meta: dict[str, Any] = {
        "source": f"vidur: {d}",
        "device": gpu,
        "device_kind": "cuda",
        "dtype": dtype,  # Vidur profiles in fp16
        "kv_dtype": dtype,
        "model": {"name": model_name, **shape},
        "tp": tp,
        "grid": {"tokens": sorted(int(x) for x in table.loc[table["op"] == "qkv", "tokens"].unique())},
        "step_overhead_s": None,
        "allreduce": "not in the profile: ring model over hardware.interconnect_gbps",
        "notes": "; ".join(notes),
        "skipped_cells": {op: e for op, e in sorted(skipped.items())},
    }
    if "vocab_size" in shape:
        meta["notes"] += f"; vocab_size {shape['vocab_size']} as Vidur recorded it (no LM head rows: the scenario's vocabulary is priced by the roofline)"
    return Profile(table, meta)


def _spans(values: list[int]) -> str:
    """Distinct values for a note: all of them when few, else ``first..last (n distinct values)``."""
    vs = sorted(set(values))
    if len(vs) <= 6:
        return ", ".join(map(str, vs))
    return f"{vs[0]}..{vs[-1]} ({len(vs)} distinct values)"
