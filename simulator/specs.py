"""Quantities derived from the hardware and model catalogs.

One place computes bytes per weight, KV bytes per token, parameter counts per
layer and the KV capacity of a replica, so the memory manager, the latency
models and the config validator all agree.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

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
    """Per-replica model facts at a given tensor-parallel degree.

    Dense models are the defaults. A mixture of experts (``num_experts`` > 0)
    replaces the MLP of its MoE layers by ``num_experts`` routed experts of
    width ``moe_intermediate_size``, of which each token uses
    ``experts_per_token``, plus ``shared_experts`` always-on ones and a router.
    Multi-head latent attention (``kv_lora_rank`` > 0) projects K and V through
    a ``kv_lora_rank`` latent and caches only that latent and the rope key.
    """

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
    #: the embedding table and LM head are another model's, not held again (an MTP module shares its target's)
    shares_tables: bool = False
    tie_word_embeddings: bool = False
    gated_mlp: bool = True
    num_experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0
    moe_intermediate_size: int = 0
    first_dense_layers: int = 0
    moe_layer_step: int = 1
    expert_imbalance: float = 1.0
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    sliding_window: int = 0  # 0: none
    sliding_layers: int = 0  # layers that keep only the last sliding_window tokens
    ep: int = 1  # GPUs the routed experts are spread over (> tp: across data-parallel replicas)
    pp: int = 1  # pipeline stages, each on tp GPUs

    @classmethod
    def from_config(cls, model, tp: int = 1, ep: int = 1, pp: int = 1) -> ModelSpec:
        fields = dict(
            name=model.name,
            num_layers=int(model.num_layers),
            hidden_size=int(model.hidden_size),
            num_heads=int(model.num_attention_heads),
            num_kv_heads=int(model.num_kv_heads),
            head_dim=int(model.head_dim),
            intermediate_size=int(model.intermediate_size),
            vocab_size=int(model.vocab_size),
            max_context=int(model.max_context),
            params_total=0.0,
            weight_bytes_per_param=dtype_bytes(model.weight_dtype, "model.weight_dtype"),
            kv_bytes_per_element=dtype_bytes(model.kv_dtype, "model.kv_dtype"),
            tp=int(tp),
            ep=max(int(ep), 1),
            pp=max(int(pp), 1),
            tie_word_embeddings=bool(model.tie_word_embeddings),
            gated_mlp=getattr(model, "mlp", "gated") != "plain",
            num_experts=int(getattr(model, "num_experts", 0) or 0),
            experts_per_token=int(getattr(model, "experts_per_token", 0) or 0),
            shared_experts=int(getattr(model, "shared_experts", 0) or 0),
            moe_intermediate_size=int(getattr(model, "moe_intermediate_size", None) or model.intermediate_size),
            first_dense_layers=int(getattr(model, "first_dense_layers", 0) or 0),
            moe_layer_step=int(getattr(model, "moe_layer_step", 1) or 1),
            expert_imbalance=float(getattr(model, "expert_imbalance", 1.0) or 1.0),
            kv_lora_rank=int(getattr(model, "kv_lora_rank", 0) or 0),
            q_lora_rank=int(getattr(model, "q_lora_rank", 0) or 0),
            qk_rope_head_dim=int(getattr(model, "qk_rope_head_dim", 0) or 0),
            qk_nope_head_dim=int(getattr(model, "qk_nope_head_dim", 0) or 0),
            v_head_dim=int(getattr(model, "v_head_dim", 0) or 0),
        )
        window = getattr(model, "sliding_window", None)
        if window:
            layers = getattr(model, "sliding_window_layers", None)
            fields.update(sliding_window=int(window), sliding_layers=int(model.num_layers if layers is None else layers))
        spec = cls(**fields)
        given, derived = getattr(model, "params_total", None), float(spec.params_derived)
        # the published count where the catalog has one (it includes norms and biases, within 2% of the
        # matmul weights); a shape overridden away from it (model.num_layers=40, model.mlp=plain) is derived
        return replace(spec, params_total=float(given) if given and abs(given / derived - 1) <= 0.02 else derived)

    # -- shape ------------------------------------------------------------
    @property
    def is_moe(self) -> bool:
        return self.num_experts > 0

    @property
    def is_mla(self) -> bool:
        return self.kv_lora_rank > 0

    @property
    def moe_layers(self) -> int:
        """Layers whose MLP is a mixture of experts: from ``first_dense_layers`` on, every
        ``moe_layer_step``-th (Hugging Face's ``(layer + 1) % step == 0``)."""
        if not self.is_moe:
            return 0
        return sum(1 for i in range(self.first_dense_layers, self.num_layers) if (i + 1) % self.moe_layer_step == 0)

    @property
    def dense_layers(self) -> int:
        return self.num_layers - self.moe_layers

    # -- parameters -------------------------------------------------------
    @property
    def attention_params(self) -> int:
        """Matmul weights of one layer's attention (whole model)."""
        h, d = self.hidden_size, self.head_dim
        if not self.is_mla:
            return h * (self.num_heads + 2 * self.num_kv_heads) * d + self.num_heads * d * h
        heads, rope, nope, v = self.num_heads, self.qk_rope_head_dim, self.qk_nope_head_dim, self.v_head_dim
        q = (h * self.q_lora_rank + self.q_lora_rank * heads * (nope + rope)) if self.q_lora_rank else h * heads * (nope + rope)
        kv = h * (self.kv_lora_rank + rope) + self.kv_lora_rank * heads * (nope + v)
        return q + kv + heads * v * h

    def mlp_params(self, width: int) -> int:
        """One MLP (or one expert) of ``width``: gate, up and down (up and down when not gated)."""
        return (3 if self.gated_mlp else 2) * self.hidden_size * width

    @property
    def expert_params(self) -> int:
        return self.mlp_params(self.moe_intermediate_size)

    @property
    def moe_layer_params(self) -> int:
        """One MoE layer's MLP: every routed expert, the shared experts and the router."""
        return (self.num_experts + self.shared_experts) * self.expert_params + self.hidden_size * self.num_experts

    @property
    def layer_linear_params(self) -> int:
        """Matmul weights of one dense decoder layer (QKV, O, gate, up, down), whole model."""
        return self.attention_params + self.mlp_params(self.intermediate_size)

    @property
    def lm_head_params(self) -> int:
        return self.hidden_size * self.vocab_size

    @property
    def params_derived(self) -> float:
        """Every matmul weight and the embeddings (norms and biases, a few millionths, left out)."""
        layers = self.num_layers * self.attention_params + self.dense_layers * self.mlp_params(self.intermediate_size)
        layers += self.moe_layers * self.moe_layer_params
        return float(layers + self.lm_head_params * (1 if self.tie_word_embeddings else 2))

    @property
    def params_active(self) -> float:
        """Parameters one token uses: all but the routed experts it does not pick."""
        unused = self.moe_layers * (self.num_experts - self.experts_per_token) * self.expert_params
        return self.params_total - unused

    @property
    def table_bytes_per_param(self) -> float:
        """Bytes per parameter of the input embedding table and the LM head: 16 bits in quantised
        checkpoints (the FP8, INT8 and INT4 formats the engines serve, ModelOpt, llm-compressor, AWQ
        and GPTQ, quantise the decoder layers' linear layers and leave both tables alone), else
        the weights' own width."""
        return max(self.weight_bytes_per_param, 2.0)

    @property
    def weight_bytes(self) -> float:
        """Weights one replica holds (all its TP shards together): the whole model, except that
        experts spread over ``ep`` > ``tp`` GPUs leave each replica tp/ep of the routed experts.
        The embedding table and the LM head are held at their own widths (a tied table once, in
        16 bits like any embedding table: the formats leave a tied head unquantised too), or
        not at all when they are another model's (``shares_tables``)."""
        held = self.params_total
        if self.ep > self.tp:
            held -= self.moe_layers * self.num_experts * self.expert_params * (1 - self.tp / self.ep)
        tables = self.lm_head_params * (1 if self.tie_word_embeddings else 2)
        body = (held - tables) * self.weight_bytes_per_param
        return body if self.shares_tables else body + tables * self.table_bytes_per_param

    @property
    def weight_bytes_read_per_step(self) -> float:
        """Weights a forward pass streams from memory: all but the input
        embedding table, of which only the looked-up rows are read (with tied
        embeddings the table is read whole, as the LM head)."""
        head = self.lm_head_params * self.table_bytes_per_param
        if self.shares_tables:  # the head it reads is held by the model it shares it with
            return self.weight_bytes + head
        return self.weight_bytes if self.tie_word_embeddings else self.weight_bytes - head

    def experts_touched(self, tokens: float) -> float:
        """Distinct routed experts a step of ``tokens`` tokens reads in one MoE layer:
        E (1 - (1 - k/E)^(tokens / imbalance)) under uniform routing; a skew
        (``expert_imbalance`` > 1) concentrates tokens on fewer experts."""
        e, k = self.num_experts, self.experts_per_token
        if e == 0 or tokens <= 0:
            return 0.0
        return e * (1.0 - (1.0 - k / e) ** (tokens / self.expert_imbalance))

    # -- KV cache ---------------------------------------------------------
    @property
    def kv_bytes_per_token_per_layer(self) -> float:
        """KV for one token in one layer, summed over the replica's GPUs. GQA shards K and V over
        TP; an MLA latent is not split by heads, so every TP rank holds it whole."""
        if self.is_mla:
            return (self.kv_lora_rank + self.qk_rope_head_dim) * self.kv_bytes_per_element * self.tp
        return 2 * self.num_kv_heads * self.head_dim * self.kv_bytes_per_element

    @property
    def kv_bytes_per_token(self) -> float:
        """KV that grows with every token: the full-attention layers' (sliding-window layers hold at
        most their window per sequence, budgeted apart: :func:`memory_budget`)."""
        full = self.num_layers - (self.sliding_layers if self.sliding_layers < self.num_layers else 0)
        return full * self.kv_bytes_per_token_per_layer

    def window_kv_bytes(self, sequences: int, block_size: int) -> float:
        """The sliding-window layers' KV for ``sequences`` sequences at their window (plus a block
        each, the unit engines allocate in), as SGLang's and vLLM's hybrid allocators pool it."""
        if not self.sliding_layers or self.sliding_layers >= self.num_layers:
            return 0.0
        return sequences * (self.sliding_window + block_size) * self.sliding_layers * self.kv_bytes_per_token_per_layer

    @property
    def kv_bytes_per_token_per_gpu(self) -> float:
        return self.kv_bytes_per_token / self.gpus

    @property
    def gpus(self) -> int:
        """GPUs of one replica: tp per pipeline stage, pp stages."""
        return self.tp * self.pp


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


def memory_budget(hardware, memory, spec: ModelSpec, max_seqs: int = 1, proposer: ModelSpec | None = None) -> MemoryBudget:
    """Where one replica's memory goes; with sliding-window layers, their KV for ``max_seqs``
    concurrent sequences is set aside first and the rest holds the growing KV. A speculative
    ``proposer`` (a draft model, or the target's MTP module) adds its weights, and its KV to every
    token's: it keeps its own cache of the same tokens in the same blocks."""
    total = device_bytes(hardware) * spec.gpus
    usable = total * float(memory.gpu_memory_utilization)
    reserve = float(memory.activation_reserve_gb) * 1e9 * spec.gpus
    weights = spec.weight_bytes + (proposer.weight_bytes if proposer is not None else 0.0)
    per_token = spec.kv_bytes_per_token + (proposer.kv_bytes_per_token if proposer is not None else 0.0)
    kv = usable - weights - reserve - spec.window_kv_bytes(max_seqs, int(memory.block_size))
    kv_tokens = int(kv // per_token) if kv > 0 else 0
    kv_blocks = kv_tokens // int(memory.block_size)
    return MemoryBudget(total, usable, weights, reserve, kv, kv_tokens, kv_blocks)
