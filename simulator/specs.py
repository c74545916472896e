"""Quantities derived from the hardware and model catalogs.

One place computes bytes per weight, KV bytes per token, parameter counts per
layer and the KV capacity of a replica, so the memory manager, the latency
models and the config validator all agree.
"""

from __future__ import annotations

from dataclasses import dataclass

#: Bytes per element for the precisions the catalogs and knobs accept.
DTYPE_BYTES: dict[str, float] = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}


def dtype_bytes(dtype: str, key: str) -> float:
    from simulator.errors import ConfigError

    try:
        return DTYPE_BYTES[dtype]
    except KeyError:
        raise ConfigError(
            f"{key}={dtype!r} is not a known precision; choose one of: {', '.join(DTYPE_BYTES)}."
        ) from None


@dataclass(frozen=True)
class ModelSpec:
    """Per-replica model facts at a given tensor-parallel degree."""

    name: str
    num_layers: int
    hidden_size: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    max_context: int
    params_total: float
    weight_bytes_per_param: float
    kv_bytes_per_element: float
    tp: int
    tie_word_embeddings: bool = False

    @classmethod
    def from_config(cls, model, tp: int = 1) -> ModelSpec:
        return cls(
            name=model.name,
            num_layers=int(model.num_layers),
            hidden_size=int(model.hidden_size),
            num_heads=int(model.num_attention_heads),
            num_kv_heads=int(model.num_kv_heads),
            head_dim=int(model.head_dim),
            intermediate_size=int(model.intermediate_size),
            vocab_size=int(model.vocab_size),
            max_context=int(model.max_context),
            params_total=float(model.params_total),
            weight_bytes_per_param=dtype_bytes(model.weight_dtype, "model.weight_dtype"),
            kv_bytes_per_element=dtype_bytes(model.kv_dtype, "model.kv_dtype"),
            tp=int(tp),
            tie_word_embeddings=bool(model.tie_word_embeddings),
        )

    # -- parameters -------------------------------------------------------
    @property
    def layer_linear_params(self) -> int:
        """Matmul weights of one decoder layer (QKV, O, gate, up, down), whole model."""
        h, d = self.hidden_size, self.head_dim
        qkv = h * (self.num_heads + 2 * self.num_kv_heads) * d
        o = self.num_heads * d * h
        mlp = 3 * h * self.intermediate_size
        return qkv + o + mlp

    @property
    def lm_head_params(self) -> int:
        return self.hidden_size * self.vocab_size

    @property
    def weight_bytes(self) -> float:
        """Weights of the whole model (all TP shards together)."""
        return self.params_total * self.weight_bytes_per_param

    @property
    def weight_bytes_read_per_step(self) -> float:
        """Weights a forward pass streams from memory: all but the input
        embedding table, of which only the looked-up rows are read (with tied
        embeddings the table is read whole, as the LM head)."""
        if self.tie_word_embeddings:
            return self.weight_bytes
        return self.weight_bytes - self.lm_head_params * self.weight_bytes_per_param

    # -- KV cache ---------------------------------------------------------
    @property
    def kv_bytes_per_token(self) -> float:
        """K and V for one token across all layers (whole model)."""
        return 2 * self.num_layers * self.num_kv_heads * self.head_dim * self.kv_bytes_per_element

    @property
    def kv_bytes_per_token_per_gpu(self) -> float:
        return self.kv_bytes_per_token / self.tp


@dataclass(frozen=True)
class MemoryBudget:
    """Where one replica's GPU memory goes (bytes, summed over its TP GPUs)."""

    total: float
    usable: float  # total x gpu_memory_utilization
    weights: float
    activation_reserve: float
    kv: float  # what is left for the KV cache (may be negative: does not fit)
    kv_tokens: int
    kv_blocks: int


def device_bytes(hardware) -> float:
    """Memory of one GPU in bytes: what the driver reports (``memory_gib``), else the datasheet's GB."""
    gib = getattr(hardware, "memory_gib", None)
    return float(gib) * 2**30 if gib is not None else float(hardware.memory_gb) * 1e9


def memory_budget(hardware, memory, spec: ModelSpec) -> MemoryBudget:
    total = device_bytes(hardware) * spec.tp
    usable = total * float(memory.gpu_memory_utilization)
    reserve = float(memory.activation_reserve_gb) * 1e9 * spec.tp
    kv = usable - spec.weight_bytes - reserve
    kv_tokens = int(kv // spec.kv_bytes_per_token) if kv > 0 else 0
    kv_blocks = kv_tokens // int(memory.block_size)
    return MemoryBudget(total, usable, spec.weight_bytes, reserve, kv, kv_tokens, kv_blocks)
