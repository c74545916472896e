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
    attn_prefill (is_prefill, batch_size, prefill_chunk_size) -> attn_prefill
    attn_decode (batch_size, kv_cache_size)                   -> attn_decode

Vidur publishes min/max rather than percentiles: they become ``p10_s`` and
``p90_s``. ``emb`` is dropped (servesim folds the embedding lookup into the
per-step overhead). A missing ``attention.csv`` leaves attention to the
roofline model, and ``describe()`` of the run says so.
"""

from __future__ import annotations

from pathlib import Path

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


def read_mlp(path: Path, tp: int) -> tuple[pd.DataFrame, dict]:
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
        parts.append(_rows(op, tokens, 0, 0, *(_stat(df, vop, s, path).to_numpy() for s in ("median", "min", "max"))))
    norm = [[_stat(df, n, s, path).to_numpy() for s in ("median", "min", "max")] for n in NORMS]
    parts.append(_rows("norm", tokens, 0, 0, *((a + b) / 2 for a, b in zip(*norm))))
    shape = {ours: int(df[theirs].iloc[0]) for theirs, ours in SHAPE_COLUMNS.items() if theirs in df.columns}
    if "n_expanded_embd" in df.columns:
        shape["intermediate_size"] = int(df["n_expanded_embd"].iloc[0])
    if "num_attention_heads" in shape and "hidden_size" in shape:
        shape["head_dim"] = shape["hidden_size"] // shape["num_attention_heads"]
    return pd.concat(parts, ignore_index=True), shape


def read_attention(path: Path, tp: int) -> pd.DataFrame:
    df = pd.read_csv(path)
    if "num_tensor_parallel_workers" in df.columns:
        df = df[df["num_tensor_parallel_workers"] == tp]
    parts = []
    pre = df[df["is_prefill"].astype(bool)]
    if len(pre):
        b = pre["batch_size"].astype(int).to_numpy()
        L = pre["prefill_chunk_size"].astype(int).to_numpy()
        parts.append(_rows("attn_prefill", b * L, b, L, *(_stat(pre, "attn_prefill", s, path).to_numpy() for s in ("median", "min", "max"))))
    dec = df[~df["is_prefill"].astype(bool)]
    if len(dec):
        b = dec["batch_size"].astype(int).to_numpy()
        c = dec["kv_cache_size"].astype(int).to_numpy()
        parts.append(_rows("attn_decode", b, b, c, *(_stat(dec, "attn_decode", s, path).to_numpy() for s in ("median", "min", "max"))))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def import_vidur(directory: str | Path, *, tp: int = 1, name: str | None = None, dtype: str = "fp16") -> Profile:
    """A profile from a Vidur ``compute/<gpu>/<model>/`` directory (``mlp.csv``, optionally ``attention.csv``)."""
    d = Path(directory)
    mlp = d / "mlp.csv"
    if not mlp.is_file():
        raise VidurFormatError(f"{d}: no mlp.csv; expected Vidur's compute/<gpu>/<model>/ layout.")
    table, shape = read_mlp(mlp, tp)
    notes = ["linear layers, norms, activation, rotary and residual add measured by Vidur"]
    attn = d / "attention.csv"
    if attn.is_file():
        table = pd.concat([table, read_attention(attn, tp)], ignore_index=True)
        notes.append("attention measured by Vidur")
    else:
        notes.append("no attention.csv: attention and LM head fall back to the roofline model")
    gpu = d.parent.parent.name if d.parent.parent.name else "unknown"
    model_name = name or d.name
    meta = {
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
    }
    return Profile(table, meta)
