"""A real Llama-shaped decoder stack with random weights, for validating profiles.

:class:`DecoderStack` runs ONE engine iteration of a mixed batch (some prompts
being prefilled, some sequences decoding one token) through ``num_layers``
decoder layers built from exactly the operator implementations that
:mod:`.harness` times, so that a prediction made from a profile (sum of the
per-layer operator times, times layers, plus lm_head) can be checked against
the measured step. TP=1 only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .harness import (
    apply_rope,
    cached_decode_attention,
    linear,
    op_shapes,
    prefill_attention,
    residual_add,
    rms_norm,
    rope_cos_sin,
    silu_mul,
    split_qkv,
    torch_dtype,
)
from .timing import time_fn


@dataclass
class _Layer:
    in_norm: torch.Tensor
    qkv: torch.Tensor
    attn_out: torch.Tensor
    post_norm: torch.Tensor
    gate_up: torch.Tensor
    down: torch.Tensor


@dataclass
class StepInputs:
    """Everything one step needs, allocated before it is timed."""

    prefill_seqs: int
    prompt_len: int
    decode_seqs: int
    ctx: int
    ids: torch.Tensor  # [T] token ids
    cos: torch.Tensor  # [T, d]
    sin: torch.Tensor  # [T, d]
    last_rows: torch.Tensor  # [b_p + b_d] row of each sequence's last token
    caches: list[tuple[torch.Tensor, torch.Tensor]]  # per layer: K, V [b_d, KV, ctx+1, d]

    @property
    def prefill_tokens(self) -> int:
        return self.prefill_seqs * self.prompt_len

    @property
    def tokens(self) -> int:
        return self.prefill_tokens + self.decode_seqs


class DecoderStack:
    def __init__(self, shape: dict, num_layers: int, *, dtype: str = "fp32", device="cpu", seed: int = 0):
        if int(num_layers) < 1:
            raise ValueError(f"num_layers must be at least 1, got {num_layers}")
        self.dtype_name, self.dtype = torch_dtype(dtype)
        self.device = torch.device(device)
        self.num_layers = int(num_layers)
        self.s = s = op_shapes(shape, tp=1)
        self.seed = int(seed)
        h, inter, d = s["hidden"], s["intermediate"], s["head_dim"]
        g = torch.Generator(device=self.device).manual_seed(self.seed)

        def rand(shp, scale):
            t = torch.randn(*shp, generator=g, device=self.device, dtype=torch.float32)
            return t.mul_(scale).to(self.dtype)

        def norm_w():
            t = torch.randn(h, generator=g, device=self.device, dtype=torch.float32)
            return t.mul_(0.1).add_(1.0).to(self.dtype)

        self.embed = rand((s["vocab"], h), 1.0)
        self.layers = [
            _Layer(
                in_norm=norm_w(),
                qkv=rand(s["qkv_weight"], h**-0.5),
                attn_out=rand(s["attn_out_weight"], (s["q_heads"] * d) ** -0.5),
                post_norm=norm_w(),
                gate_up=rand(s["mlp_gate_up_weight"], h**-0.5),
                down=rand(s["mlp_down_weight"], inter**-0.5),
            )
            for _ in range(self.num_layers)
        ]
        self.final_norm = norm_w()
        self.lm_head = rand(s["lm_head_weight"], h**-0.5)
        self._prepared: StepInputs | None = None

    # -- inputs --------------------------------------------------------------
    def _gen(self, stream: int) -> torch.Generator:
        return torch.Generator(device=self.device).manual_seed(self.seed * 1000 + stream)

    def prepare(self, prefill_seqs: int, prompt_len: int, decode_seqs: int, ctx: int) -> StepInputs:
        """Token ids, rope tables and KV caches (random contents) for one step.

        The last composition prepared is kept, so repeated calls with the same
        arguments reuse its (possibly large) caches.
        """
        b_p, n, b_d, c = int(prefill_seqs), int(prompt_len), int(decode_seqs), int(ctx)
        if min(b_p, n, b_d, c) < 0:
            raise ValueError(
                f"step sizes must be non-negative, got {prefill_seqs=}, {prompt_len=}, {decode_seqs=}, {ctx=}"
            )
        if b_p > 0 and n < 1:
            raise ValueError(f"prefill_seqs={b_p} needs prompt_len >= 1, got {n}")
        if b_p == 0:
            n = 0
        if b_d == 0:
            c = 0
        if b_p == 0 and b_d == 0:
            raise ValueError(
                "a step needs at least one prefill or decode sequence (both prefill_seqs and decode_seqs are 0)"
            )
        p = self._prepared
        if p is not None and (p.prefill_seqs, p.prompt_len, p.decode_seqs, p.ctx) == (b_p, n, b_d, c):
            return p
        self._prepared = None  # free the previous caches before allocating new ones
        s, dev, dt = self.s, self.device, self.dtype
        # Prefill ids, decode ids and caches come from separate seeded streams,
        # so a sequence's inputs do not depend on what else is in the batch.
        vocab = s["vocab"]
        ids = torch.cat(
            [
                torch.randint(0, vocab, (b_p * n,), generator=self._gen(1), device=dev),
                torch.randint(0, vocab, (b_d,), generator=self._gen(2), device=dev),
            ]
        )
        positions = torch.cat(
            [torch.arange(n, dtype=torch.int64).repeat(b_p), torch.full((b_d,), c, dtype=torch.int64)]
        ).to(dev)
        cos, sin = rope_cos_sin(positions, s["head_dim"], s["rope_theta"], dt)
        last_rows = torch.cat(
            [torch.arange(1, b_p + 1, dtype=torch.int64) * n - 1, b_p * n + torch.arange(b_d, dtype=torch.int64)]
        ).to(dev)
        caches: list[tuple[torch.Tensor, torch.Tensor]] = []
        if b_d:
            kv_shape = (b_d, s["kv_heads"], c + 1, s["head_dim"])
            g = self._gen(3)
            for _ in range(self.num_layers):
                k = torch.randn(kv_shape, generator=g, device=dev, dtype=dt)
                v = torch.randn(kv_shape, generator=g, device=dev, dtype=dt)
                caches.append((k, v))
        self._prepared = StepInputs(b_p, n, b_d, c, ids, cos, sin, last_rows, caches)
        return self._prepared

    # -- the step ------------------------------------------------------------
    def execute(self, step: StepInputs) -> torch.Tensor:
        """One forward pass of the prepared step; logits [b_p + b_d, vocab]."""
        s = self.s
        hq, hkv, d, inter, eps = s["q_heads"], s["kv_heads"], s["head_dim"], s["intermediate"], s["rms_eps"]
        b_p, n, b_d, c = step.prefill_seqs, step.prompt_len, step.decode_seqs, step.ctx
        tp_ = step.prefill_tokens
        with torch.inference_mode():
            x = F.embedding(step.ids, self.embed)
            for i, layer in enumerate(self.layers):
                h = rms_norm(x, layer.in_norm, eps)
                qkv = linear(h, layer.qkv)
                q, k, v = split_qkv(qkv, hq, hkv, d)
                q, k = apply_rope(q, k, step.cos, step.sin)
                parts = []
                if b_p:
                    parts.append(prefill_attention(q[:tp_], k[:tp_], v[:tp_], b_p, n))
                if b_d:
                    kc, vc = step.caches[i]
                    parts.append(cached_decode_attention(q[tp_:], k[tp_:], v[tp_:], kc, vc, c))
                o = parts[0] if len(parts) == 1 else torch.cat(parts)
                x = residual_add(x, linear(o, layer.attn_out))
                h = rms_norm(x, layer.post_norm, eps)
                gu = linear(h, layer.gate_up)
                a = silu_mul(gu[:, :inter], gu[:, inter:])
                x = residual_add(x, linear(a, layer.down))
            last = rms_norm(x[step.last_rows], self.final_norm, eps)
            return linear(last, self.lm_head)

    def run_step(self, prefill_seqs: int, prompt_len: int, decode_seqs: int, ctx: int) -> torch.Tensor:
        """Prepare and run one engine iteration; logits [prefill_seqs + decode_seqs, vocab]."""
        return self.execute(self.prepare(prefill_seqs, prompt_len, decode_seqs, ctx))

    def time_step(
        self,
        prefill_seqs: int,
        prompt_len: int,
        decode_seqs: int,
        ctx: int,
        *,
        warmup: int = 2,
        repeats: int = 5,
        threads: int | None = None,
    ) -> np.ndarray:
        """Seconds per step, ``repeats`` samples; inputs and caches allocated untimed."""
        step = self.prepare(prefill_seqs, prompt_len, decode_seqs, ctx)
        old_threads = torch.get_num_threads()
        if threads is not None:
            torch.set_num_threads(int(threads))
        try:
            return time_fn(lambda: self.execute(step), device=self.device, warmup=warmup, repeats=repeats)
        finally:
            if threads is not None:
                torch.set_num_threads(old_threads)
