"""Time one transformer layer's operators with torch, in the profile format.

:func:`measure` returns a table with the columns of :data:`.profile.COLUMNS`:
one row per (op, grid point), times for ONE layer on ONE GPU at its TP shard
(``lm_head``: once per step). :func:`measure_metadata` returns the provenance
that goes into ``metadata.json``.

The operator implementations below (:func:`rms_norm`, :func:`apply_rope`,
:func:`prefill_attention`, ...) are shared with :mod:`.stack`, which runs a
real decoder stack made of exactly these calls, so that the sum of the
measured operator times is a model of a real engine step.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial

import pandas as pd
import torch
import torch.nn.functional as F

from .profile import COLUMNS, SHAPE_KEYS, normalise
from .timing import device_info, summarise, time_fn

SOURCE = "servesim-calibrate"

# -- dtypes -------------------------------------------------------------------

_DTYPES: dict[str, tuple[str, torch.dtype]] = {
    "fp32": ("fp32", torch.float32),
    "float32": ("fp32", torch.float32),
    "bf16": ("bf16", torch.bfloat16),
    "bfloat16": ("bf16", torch.bfloat16),
    "fp16": ("fp16", torch.float16),
    "float16": ("fp16", torch.float16),
}
#: Precisions the simulator knows but this harness cannot time (they need
#: quantised kernels, not plain torch matmuls).
UNMEASURABLE = ("fp8", "int8", "int4")


def torch_dtype(name: str, what: str = "dtype") -> tuple[str, torch.dtype]:
    """(canonical name, torch dtype) for a precision name; ValueError otherwise."""
    key = str(name).lower()
    if key in _DTYPES:
        return _DTYPES[key]
    measurable = "fp32, bf16, fp16"
    if key in UNMEASURABLE:
        raise ValueError(f"{what}={name!r} is not measurable by this harness yet; measurable: {measurable}.")
    raise ValueError(f"{what}={name!r} is not a known precision; measurable: {measurable}.")


# -- shapes -------------------------------------------------------------------


def op_shapes(shape: dict, tp: int = 1) -> dict:
    """Per-GPU sizes of one layer at tensor-parallel degree ``tp``.

    Heads and the MLP width are split evenly (they must divide); KV heads are
    split when ``tp`` divides them and replicated (one per GPU) when ``tp``
    exceeds them; the vocabulary is split with ceil. Weight shapes are
    ``F.linear``'s ``[out_features, in_features]``.
    """
    missing = [k for k in SHAPE_KEYS if k not in shape]
    if missing:
        raise ValueError(f"model shape lacks: {', '.join(missing)}")
    tp = int(tp)
    if tp < 1:
        raise ValueError(f"tp must be at least 1, got {tp}")
    h = int(shape["hidden_size"])
    heads = int(shape["num_attention_heads"])
    kv = int(shape["num_kv_heads"])
    d = int(shape["head_dim"])
    inter = int(shape["intermediate_size"])
    vocab = int(shape["vocab_size"])
    if heads % tp:
        raise ValueError(f"num_attention_heads={heads} is not divisible by tp={tp}")
    if inter % tp:
        raise ValueError(f"intermediate_size={inter} is not divisible by tp={tp}")
    if kv % tp and tp % kv:
        raise ValueError(f"num_kv_heads={kv} and tp={tp}: one must divide the other")
    q_heads = heads // tp
    kv_heads = max(1, kv // tp)
    inter_tp = inter // tp
    vocab_tp = -(-vocab // tp)
    return {
        "tp": tp,
        "hidden": h,
        "q_heads": q_heads,
        "kv_heads": kv_heads,
        "head_dim": d,
        "intermediate": inter_tp,
        "vocab": vocab_tp,
        "rms_eps": float(shape.get("rms_eps", 1e-5)),
        "rope_theta": float(shape.get("rope_theta", 10000.0)),
        "qkv_weight": ((q_heads + 2 * kv_heads) * d, h),
        "attn_out_weight": (h, q_heads * d),
        "mlp_gate_up_weight": (2 * inter_tp, h),
        "mlp_down_weight": (h, inter_tp),
        "lm_head_weight": (vocab_tp, h),
        "norm_weight": (h,),
    }


# -- the operators (shared with stack.py) -------------------------------------

linear = F.linear


def rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    """RMSNorm as HF LlamaRMSNorm: float32 statistics, cast back, then scale."""
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def silu_mul(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    return F.silu(gate) * up


def residual_add(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    return x + y


def split_qkv(qkv: torch.Tensor, q_heads: int, kv_heads: int, head_dim: int):
    """Views q [T, H, d], k [T, KV, d], v [T, KV, d] of a fused qkv output [T, (H+2KV)d]."""
    t = qkv.shape[0]
    nq, nk = q_heads * head_dim, kv_heads * head_dim
    q = qkv[:, :nq].view(t, q_heads, head_dim)
    k = qkv[:, nq : nq + nk].view(t, kv_heads, head_dim)
    v = qkv[:, nq + nk :].view(t, kv_heads, head_dim)
    return q, k, v


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float, dtype: torch.dtype):
    """cos, sin [T, d] for the rotate-half rotary embedding at ``positions``."""
    dev = positions.device
    inv_freq = 1.0 / (theta ** (torch.arange(0, head_dim, 2, device=dev, dtype=torch.float32) / head_dim))
    freqs = positions.to(torch.float32)[:, None] * inv_freq[None, :]
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(q: torch.Tensor, k: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor):
    """Rotary embedding (rotate-half form) on q [T, H, d] and k [T, KV, d]; cos, sin [T, d]."""
    c = cos.unsqueeze(1)
    s = sin.unsqueeze(1)
    return q * c + _rotate_half(q) * s, k * c + _rotate_half(k) * s


def prefill_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, batch: int, length: int) -> torch.Tensor:
    """Causal attention of ``batch`` prompts of ``length`` tokens each.

    q [b*L, H, d], k and v [b*L, KV, d] (token-major, as the qkv projection
    produces them) are viewed as [b, H, L, d] for SDPA; returns [b*L, H*d].
    """
    t, hq, d = q.shape
    kv = k.shape[1]
    qb = q.view(batch, length, hq, d).transpose(1, 2)
    kb = k.view(batch, length, kv, d).transpose(1, 2)
    vb = v.view(batch, length, kv, d).transpose(1, 2)
    o = F.scaled_dot_product_attention(qb, kb, vb, is_causal=True, enable_gqa=True)
    return o.transpose(1, 2).reshape(t, hq * d)


def decode_attention(q: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor) -> torch.Tensor:
    """One query token per sequence against its cache: q [b, H, d], caches [b, KV, c, d]; returns [b, H*d]."""
    b, hq, d = q.shape
    o = F.scaled_dot_product_attention(q.unsqueeze(2), k_cache, v_cache, enable_gqa=True)
    return o.reshape(b, hq * d)


def cached_decode_attention(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, k_cache: torch.Tensor, v_cache: torch.Tensor, slot: int
) -> torch.Tensor:
    """Write this step's k, v [b, KV, d] into cache slot ``slot``, then attend over
    slots 0..slot: the decode attention of a step, KV write included (engines
    fuse the two, e.g. vLLM's reshape_and_cache + paged attention)."""
    k_cache[:, :, slot] = k
    v_cache[:, :, slot] = v
    return decode_attention(q, k_cache[:, :, : slot + 1], v_cache[:, :, : slot + 1])


# -- the grid -----------------------------------------------------------------


def _pow2(lo: int, hi: int) -> list[int]:
    out, n = [], 1
    while n <= hi:
        if n >= lo:
            out.append(n)
        n *= 2
    return out


def token_grid(max_tokens: int) -> list[int]:
    """Powers of two 1..max_tokens and the 3*2^k points between them."""
    pts = set(_pow2(1, max_tokens))
    n = 3
    while n <= max_tokens:
        pts.add(n)
        n *= 2
    return sorted(pts)


GRID_KEYS = ("tokens", "lm_head_rows", "prefill", "decode")


def grid_for(device="cpu") -> dict:
    """The default grid: small on CPU, production sizes on a GPU.

    ``tokens``: rows through the token ops; ``lm_head_rows``: logit rows;
    ``prefill``: [batch, prompt length] pairs; ``decode``: [batch, context] pairs.
    """
    if torch.device(device).type == "cuda":
        prefill = [[b, n] for b in (1, 2, 4, 8) for n in _pow2(128, 8192) if b * n <= 32768]
        decode = [[b, c] for b in _pow2(1, 256) for c in _pow2(128, 32768) if b * c <= 2**21]
        return {"tokens": token_grid(16384), "lm_head_rows": _pow2(1, 1024), "prefill": prefill, "decode": decode}
    prefill = [[b, n] for b in (1, 2, 4) for n in (16, 32, 64, 128, 256, 512)]
    decode = [[b, c] for b in (1, 2, 4, 8, 16, 32) for c in (16, 64, 256, 1024)]
    return {"tokens": token_grid(1024), "lm_head_rows": _pow2(1, 256), "prefill": prefill, "decode": decode}


def _positive_ints(values, key: str) -> list[int]:
    out = []
    for v in values:
        if int(v) != v or int(v) < 1:
            raise ValueError(f"grid[{key!r}] must hold positive integers, got {v!r}")
        out.append(int(v))
    return out


def resolve_grid(grid: dict | None, device="cpu") -> dict:
    """The grid to measure: ``grid``'s keys over the device defaults, as plain
    JSON-serialisable lists (an empty list skips those ops)."""
    base = grid_for(device)
    if grid is None:
        return base
    unknown = sorted(set(grid) - set(GRID_KEYS))
    if unknown:
        raise ValueError(f"unknown grid keys: {', '.join(unknown)}; known: {', '.join(GRID_KEYS)}")
    out = dict(base)
    for key in ("tokens", "lm_head_rows"):
        if key in grid:
            out[key] = _positive_ints(grid[key], key)
    for key in ("prefill", "decode"):
        if key in grid:
            pairs = []
            for p in grid[key]:
                if len(p) != 2:
                    raise ValueError(f"grid[{key!r}] must hold [batch, ctx] pairs, got {p!r}")
                pairs.append(_positive_ints(p, key))
            out[key] = pairs
    return out


# -- measuring ----------------------------------------------------------------


def _dist_group():
    """torch.distributed when a process group of more than one rank is up, else None."""
    try:
        import torch.distributed as dist
    except ImportError:  # pragma: no cover - torch builds without distributed
        return None
    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist
    return None


def _randn(shape, *, dtype, device, scale: float = 1.0) -> torch.Tensor:
    t = torch.randn(*shape, dtype=torch.float32, device=device)
    if scale != 1.0:
        t.mul_(scale)
    return t.to(dtype)


def measure(
    shape: dict,
    *,
    tp: int = 1,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    device="cpu",
    grid: dict | None = None,
    warmup: int = 3,
    repeats: int = 10,
    progress: Callable[[str], None] | None = None,
    threads: int | None = None,
) -> pd.DataFrame:
    """Time every operator of one layer over ``grid``; a profile table.

    The resolved grid is in ``table.attrs["grid"]``. ``threads`` sets torch's
    CPU thread count for the duration (restored afterwards); None leaves it.
    """
    dname, dt = torch_dtype(dtype)
    kname, kdt = torch_dtype(kv_dtype if kv_dtype is not None else dtype, "kv_dtype")
    if kdt != dt:
        raise ValueError(
            f"kv_dtype={kname} differs from dtype={dname}; this harness measures attention in one precision only."
        )
    s = op_shapes(shape, tp)
    dev = torch.device(device)
    g = resolve_grid(grid, dev)
    say = progress or (lambda _msg: None)

    rows: list[dict] = []

    def timed(op: str, tokens: int, batch: int, ctx: int, fn) -> None:
        samples = time_fn(fn, device=dev, warmup=warmup, repeats=repeats)
        rows.append({"op": op, "tokens": tokens, "batch": batch, "ctx": ctx, **summarise(samples)})

    old_threads = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        with torch.inference_mode():
            torch.manual_seed(0)
            _measure_token_ops(s, g["tokens"], dt, dev, timed, say)
            _measure_lm_head(s, g["lm_head_rows"], dt, dev, timed, say)
            _measure_attention(s, g["prefill"], g["decode"], dt, dev, timed, say)
    finally:
        if threads is not None:
            torch.set_num_threads(old_threads)

    table = normalise(pd.DataFrame(rows, columns=list(COLUMNS)))
    table.attrs["grid"] = g
    return table


def _measure_token_ops(s: dict, tokens: list[int], dt, dev, timed, say) -> None:
    if not tokens:
        return
    tmax = max(tokens)
    h, d, hq, hkv, inter = s["hidden"], s["head_dim"], s["q_heads"], s["kv_heads"], s["intermediate"]

    def each(op: str, make_fn) -> None:
        """make_fn(t) -> a callable with its inputs already sliced (slicing stays untimed)."""
        say(f"{op}: {len(tokens)} token counts up to {tmax}")
        for t in tokens:
            timed(op, t, 0, 0, make_fn(t))

    x = _randn((tmax, h), dtype=dt, device=dev)

    w = _randn(s["qkv_weight"], dtype=dt, device=dev, scale=h**-0.5)
    each("qkv", lambda t, w=w: partial(linear, x[:t], w))

    xo = _randn((tmax, hq * d), dtype=dt, device=dev)
    w = _randn(s["attn_out_weight"], dtype=dt, device=dev, scale=(hq * d) ** -0.5)
    each("attn_out", lambda t, xo=xo, w=w: partial(linear, xo[:t], w))
    del xo

    w = _randn(s["mlp_gate_up_weight"], dtype=dt, device=dev, scale=h**-0.5)
    each("mlp_gate_up", lambda t, w=w: partial(linear, x[:t], w))

    xd = _randn((tmax, inter), dtype=dt, device=dev)
    w = _randn(s["mlp_down_weight"], dtype=dt, device=dev, scale=inter**-0.5)
    each("mlp_down", lambda t, xd=xd, w=w: partial(linear, xd[:t], w))
    del xd, w

    wn = (1.0 + 0.1 * torch.randn(h, device=dev)).to(dt)
    eps = s["rms_eps"]
    each("norm", lambda t: partial(rms_norm, x[:t], wn, eps))

    gu = _randn((tmax, 2 * inter), dtype=dt, device=dev)
    each("act", lambda t, gu=gu: partial(silu_mul, gu[:t, :inter], gu[:t, inter:]))
    del gu

    qkv = _randn((tmax, (hq + 2 * hkv) * d), dtype=dt, device=dev)
    cos, sin = rope_cos_sin(torch.arange(tmax, device=dev), d, s["rope_theta"], dt)

    def rope_fn(t, qkv=qkv, cos=cos, sin=sin):
        q, k, _v = split_qkv(qkv[:t], hq, hkv, d)
        return partial(apply_rope, q, k, cos[:t], sin[:t])

    each("rope", rope_fn)
    del rope_fn, qkv, cos, sin

    y = _randn((tmax, h), dtype=dt, device=dev)
    each("add", lambda t, y=y: partial(residual_add, x[:t], y[:t]))
    del y

    dist = _dist_group()
    if dist is not None:
        buf = torch.zeros((tmax, h), dtype=dt, device=dev)
        each("allreduce", lambda t: partial(dist.all_reduce, buf[:t]))
        del buf


def _measure_lm_head(s: dict, rows: list[int], dt, dev, timed, say) -> None:
    if not rows:
        return
    h = s["hidden"]
    rmax = max(rows)
    say(f"lm_head: {len(rows)} row counts up to {rmax}")
    x = _randn((rmax, h), dtype=dt, device=dev)
    w = _randn(s["lm_head_weight"], dtype=dt, device=dev, scale=h**-0.5)
    for r in rows:
        timed("lm_head", r, 0, 0, partial(linear, x[:r], w))


def _measure_attention(s: dict, prefill: list, decode: list, dt, dev, timed, say) -> None:
    d, hq, hkv = s["head_dim"], s["q_heads"], s["kv_heads"]
    if prefill:
        say(f"attn_prefill: {len(prefill)} (batch, prompt length) points")
    for b, n in prefill:
        t = b * n
        # q and k come out of rope as fresh tensors; v is a view of the qkv output.
        qkv = _randn((t, (hq + 2 * hkv) * d), dtype=dt, device=dev)
        q, k, v = split_qkv(qkv, hq, hkv, d)
        q, k = q.contiguous(), k.contiguous()
        timed("attn_prefill", t, b, n, partial(prefill_attention, q, k, v, b, n))
        del qkv, q, k, v
    if decode:
        say(f"attn_decode: {len(decode)} (batch, context) points")
    for b, c in decode:
        # ctx c counts the step's own token: c - 1 cached keys plus the one written now.
        q = _randn((b, hq, d), dtype=dt, device=dev)
        k = _randn((b, hkv, d), dtype=dt, device=dev)
        v = _randn((b, hkv, d), dtype=dt, device=dev)
        kc = _randn((b, hkv, c, d), dtype=dt, device=dev)
        vc = _randn((b, hkv, c, d), dtype=dt, device=dev)
        timed("attn_decode", b, b, c, partial(cached_decode_attention, q, k, v, kc, vc, c - 1))
        del q, k, v, kc, vc


def allreduce_note() -> str:
    dist = _dist_group()
    if dist is None:
        return "not measured: no torch.distributed process group; the predictor models it from link bandwidth"
    return f"measured: torch.distributed all_reduce, backend {dist.get_backend()}, world size {dist.get_world_size()}"


def measure_metadata(
    shape: dict,
    tp: int = 1,
    dtype: str = "bf16",
    kv_dtype: str | None = None,
    device="cpu",
    grid: dict | None = None,
    warmup: int = 3,
    repeats: int = 10,
    threads: int | None = None,
) -> dict:
    """Provenance for ``metadata.json`` of a :func:`measure` run with these arguments.

    ``cpu_threads`` is ``threads`` when given (what measure() ran with), else torch's current setting.
    """
    dname, _ = torch_dtype(dtype)
    kname, _ = torch_dtype(kv_dtype if kv_dtype is not None else dtype, "kv_dtype")
    model_shape: dict[str, int | float] = {k: int(shape[k]) for k in SHAPE_KEYS}
    for k in ("rms_eps", "rope_theta"):
        if k in shape:
            model_shape[k] = float(shape[k])
    info = device_info(device)
    if threads is not None:
        info["cpu_threads"] = int(threads)
    return {
        "source": SOURCE,
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        **info,
        "model": {"name": shape.get("name"), **model_shape},
        "tp": int(tp),
        "dtype": dname,
        "kv_dtype": kname,
        "grid": resolve_grid(grid, device),
        "warmup": int(warmup),
        "repeats": int(repeats),
        "allreduce": allreduce_note(),
    }
