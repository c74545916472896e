"""Structured scenario configuration.

Every key a scenario understands is declared here as a dataclass field with a
type and a default; hydra's ConfigStore holds the tree as ``base_config``
(:func:`register`, called when hydra imports the scenario package
``simulator.scenarios``, and by :func:`simulator.compose`) so that a typo
(``workload.rte=5``) or a wrong type (``workload.rate=abc``) fails while
composing. Importing this module builds nothing: a run that composes nothing
(a composition read back from :mod:`simulator.config.cache`) never pays for
the structured tree. Semantic checks that types cannot express (a negative
rate, a model that does not fit, an unknown policy name) live in
:mod:`simulator.config.validate`.

The hardware and model groups double as the catalogs: each YAML file under
``scenarios/hardware`` and ``scenarios/model`` holds one GPU or one model, with
its sources.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING, DictConfig, OmegaConf


@dataclass
class GemmConfig:
    """Achieved GEMM efficiency of a GPU family (see simulator/latency/roofline.py).
    Fitted to measured GEMM timings where a table exists; ``source`` says which."""

    compute_efficiency: float = 0.75  # fraction of the dense BF16 peak a large GEMM reaches
    compute_efficiency_fp8: float = 0.719  # fraction of the dense FP8 peak (W8A8: Hopper's, fitted to TensorRT-LLM's FP8 GEMMs)
    fp8_source: str = ""
    memory_efficiency: float = 0.82  # fraction of HBM bandwidth a weight-streaming GEMM reaches
    overlap_exponent: float = 1.4  # smooth max of compute and memory time (inf = the plain roofline)
    latency_us: float = 5.0  # fixed cost of one kernel
    source: str = ""


@dataclass
class AttentionConfig:
    """Achieved prefill-attention speed of a GPU family (see simulator/latency/roofline.py): a prompt's
    causal query-key pairs run at ``efficiency`` of the BF16 peak, each query row costs ``row_pairs``
    pairs more (a query tile's fixed work), and each layer's kernel ``latency_us``. Fitted to measured
    engine kernel timings where a table exists; ``source`` says which."""

    efficiency: float = 0.647
    row_pairs: float = 530.0
    latency_us: float = 12.2
    source: str = ""
    #: KV-cache entries (billions a second, one GPU) an attention kernel reads at most from an FP8
    #: cache: converting the 1-byte entries, not HBM, bounds it on Hopper and Blackwell; null = no
    #: such bound (HBM alone, at memory_efficiency). Applied to grouped-query attention's FP8 KV only
    decode_kv_rate_g: float | None = None
    #: the same per engine family (``trtllm``, ``vllm``, ``sglang``: engine_name up to its first "_"),
    #: where each engine's own decode kernel was timed (null: no bound for that engine); an engine
    #: not listed uses decode_kv_rate_g
    decode_kv_rate_by_engine_g: dict[str, float | None] = field(default_factory=dict)
    #: the same two for 16-bit (BF16 or FP16) caches: the share of HBM a decode kernel reaches with
    #: 2-byte entries (81-87% where measured), below the GEMMs' memory_efficiency; null = HBM alone
    decode_kv_rate_bf16_g: float | None = None
    decode_kv_rate_bf16_by_engine_g: dict[str, float | None] = field(default_factory=dict)
    decode_source: str = ""


@dataclass
class HardwareConfig:
    """One accelerator type (per-GPU figures)."""

    name: str = MISSING
    vendor: str = "nvidia"
    memory_gb: float = MISSING  # the datasheet's capacity, as marketed
    #: device memory as the driver reports it (nvidia-smi MiB / 1024); the KV budget uses this.
    #: null = memory_gb x 1e9 bytes
    memory_gib: float | None = None
    memory_bw_gbps: float = MISSING  # HBM bandwidth, GB/s
    bf16_tflops: float = MISSING  # dense tensor-core peak
    fp8_tflops: float | None = None  # dense; None = no FP8 tensor cores
    int8_tops: float | None = None  # dense
    interconnect_gbps: float = MISSING  # one-way GPU-to-GPU bandwidth (NVLink/PCIe), GB/s
    host_link_gbps: float = MISSING  # one-way GPU-to-host bandwidth (PCIe), GB/s
    #: measured all-reduce cost by GPU count: [{gpus, latency_us, bandwidth_gbps (algorithm bandwidth)}, ...]
    allreduce: list[Any] = field(default_factory=list)
    allreduce_source: str = ""
    #: point-to-point send/recv between pipeline stages in one node: p2p_latency_us + bytes / p2p_gbps
    #: (null: 10 us and interconnect_gbps)
    p2p_latency_us: float | None = None
    p2p_gbps: float | None = None
    p2p_source: str = ""
    #: GPUs of one server that share its scale-up fabric (NVLink, xGMI); tensor parallelism over more
    #: GPUs than this crosses the scale-out network (simulator/latency/roofline.py, allreduce_paths)
    gpus_per_node: int = 8
    #: scale-out network per GPU (one NIC per GPU, rail-optimised), one-way GB/s achieved;
    #: null: not in the catalog, so tensor or expert parallelism cannot span nodes
    network_gbps: float | None = None
    #: what one network hop adds to a collective's latency (NCCL's cost model: 5 us, its NET tree/LL constant)
    network_latency_us: float = 5.0
    network_source: str = ""
    gemm: GemmConfig = field(default_factory=GemmConfig)
    attention: AttentionConfig = field(default_factory=AttentionConfig)
    price_per_gpu_hour: float | None = None  # USD, point-in-time snapshot
    price_source: str = ""
    #: board power for the energy model (simulator/metrics/energy.py, docs/energy.md): idle_w = a bare idle
    #: board's draw (no process; a board holding a loaded engine idles higher); tdp_w = the maximum board power.
    #: null: energy not estimated
    idle_w: float | None = None
    tdp_w: float | None = None
    power_source: str = ""
    confidence: str = ""
    source: str = MISSING


@dataclass
class ModelConfig:
    """A decoder-only transformer, as its Hugging Face config.json describes it."""

    name: str = MISSING
    hf_id: str = ""
    num_layers: int = MISSING
    hidden_size: int = MISSING
    num_attention_heads: int = MISSING
    num_kv_heads: int = MISSING
    head_dim: int = MISSING
    intermediate_size: int = MISSING
    vocab_size: int = MISSING
    max_context: int = MISSING  # max_position_embeddings
    qkv_bias: bool = False
    tie_word_embeddings: bool = False
    params_total: float | None = None  # published parameter count (checked against the derived one); null: derived
    # Precision knobs: bytes per weight and per KV element follow from these.
    weight_dtype: str = "bf16"
    kv_dtype: str = "bf16"
    source: str = MISSING
    #: a Hugging Face config.json (or a folder holding one): the shape comes from it (docs/models.md)
    hf_config: str | None = None
    mlp: str = "gated"  # gated (gate, up, down: SwiGLU) | plain (up, down: GPT/OPT-style)
    # Mixture of experts (num_experts > 0): routed experts per MoE layer and how many each token uses.
    num_experts: int = 0
    experts_per_token: int = 0
    shared_experts: int = 0  # always-on experts per MoE layer (DeepSeek, Qwen2-MoE)
    moe_intermediate_size: int | None = None  # one expert's width (null: intermediate_size)
    first_dense_layers: int = 0  # layers before the first MoE layer (DeepSeek's first_k_dense_replace)
    moe_layer_step: int = 1  # every k-th layer is MoE (Llama 4's interleave_moe_layer_step)
    expert_imbalance: float = 1.0  # routing skew: the busiest expert's load over the mean (1: uniform)
    # Multi-head latent attention (kv_lora_rank > 0): the cache holds one latent of
    # kv_lora_rank + qk_rope_head_dim per token and layer (DeepSeek-V2/V3).
    kv_lora_rank: int = 0
    q_lora_rank: int = 0
    qk_rope_head_dim: int = 0
    qk_nope_head_dim: int = 0
    v_head_dim: int = 0
    # Sliding-window attention: layers that keep only the last sliding_window tokens of KV.
    sliding_window: int | None = None
    sliding_window_layers: int | None = None  # how many layers use the window (null: all)
    #: multi-token-prediction modules the checkpoint ships (DeepSeek-V3: 1; HF num_nextn_predict_layers),
    #: which scheduler.speculative.method=mtp drafts with
    mtp_layers: int = 0


@dataclass
class LengthConfig:
    """A token-length distribution. Only the parameters of ``dist`` are read.

    fixed: value | uniform: low, high (inclusive) |
    lognormal: median, sigma, min, max | exponential: mean |
    empirical: quantiles (0 .. 1, increasing), tokens (the lengths at them),
    optional min, max (clip)
    """

    dist: str = "fixed"
    value: int | None = None
    low: int | None = None
    high: int | None = None
    median: float | None = None
    sigma: float | None = None
    min: int | None = None
    max: int | None = None
    mean: float | None = None
    quantiles: list[float] | None = None
    tokens: list[int] | None = None


@dataclass
class TraceConfig:
    """Replay of a recorded trace (``workload.arrival=trace``)."""

    path: str | None = None
    format: str = "auto"  # auto | azure | burstgpt | mooncake | servesim
    start_s: float | None = None  # keep requests in [start_s, end_s) of the trace's own clock (after re-basing to 0)
    end_s: float | None = None
    speedup: float = 1.0  # divide inter-arrival times by this
    target_rate: float | None = None  # or rescale time so the mean rate is this (req/s)
    sample: float = 1.0  # keep this fraction of requests (seeded)
    clip: bool = True  # clip prompt/output lengths to the engine's max length (counted in the summary)
    loop: bool = False  # repeat the trace until workload.num_requests / workload.duration_s
    sort: bool = False  # sort rows whose timestamps go backwards (warning) instead of failing


@dataclass
class SharedPrefixConfig:
    """Synthetic prefix reuse: shared system prompts and multi-turn sessions."""

    system_prompts: int = 0  # number of distinct shared system prompts (0 = none)
    system_tokens: int = 0  # tokens of each system prompt, prepended to the sampled prompt
    sessions: int = 0  # number of concurrent multi-turn sessions (0 = none)
    turns: int = 1  # turns per session: turn k's prompt holds turns 1..k-1 and their answers


@dataclass
class RetryConfig:
    """Clients that retry a rejected request after an exponential backoff."""

    max_attempts: int = 1  # attempts per request, the first included (1 = never retry)
    backoff_s: float = 1.0  # delay before the first retry
    multiplier: float = 2.0  # each further retry waits this many times longer
    max_backoff_s: float = 60.0  # cap on one delay
    jitter: float = 1.0  # delay x U(1 - jitter, 1): 1 = "full jitter", 0 = none


@dataclass
class WorkloadConfig:
    name: str = "custom"
    arrival: str = "poisson"  # poisson | gamma | constant | closed_loop | trace
    rate: float = 1.0  # requests per second
    #: time-varying rate: [[start_s, rate], ...] pieces, each holding until the next
    #: (a non-homogeneous process; ``rate`` is then unused). null = constant ``rate``.
    rate_schedule: list[Any] | None = None
    cv: float = 1.0  # coefficient of variation of inter-arrival times (gamma)
    num_requests: int | None = 1000
    duration_s: float | None = None
    users: int = 16  # closed_loop: concurrent users, each waiting for its answer then thinking
    think_s: float = 5.0  # closed_loop: mean think time between a user's requests (exponential)
    tenants: int = 0  # tenants per tier (0 = no tenant labels); requests spread over them
    tenant_skew: float = 0.0  # Zipf exponent of traffic over a tier's tenants (0 = uniform)
    prompt_tokens: LengthConfig = field(default_factory=LengthConfig)
    output_tokens: LengthConfig = field(default_factory=LengthConfig)
    trace: TraceConfig = field(default_factory=TraceConfig)
    prefix: SharedPrefixConfig = field(default_factory=SharedPrefixConfig)
    retry: RetryConfig = field(default_factory=RetryConfig)
    #: parallel sampling (OpenAI's n): completions per prompt, sharing the prompt's KV blocks
    #: through prefix caching (docs/levers/parallel_sampling.md)
    n: int = 1
    #: beam search: beams per request, decoded in lock-step and sharing their common history's
    #: KV blocks (vLLM v0's engine-side beam search; docs/levers/parallel_sampling.md)
    beam_width: int = 1


@dataclass
class SpeculativeConfig:
    """Speculative decoding (docs/levers/speculative.md): propose k tokens, verify them in one target step."""

    method: str = "none"  # none | draft (a draft model) | ngram (prompt lookup, no model) | mtp (multi-token-prediction heads)
    num_tokens: int = 4  # k: tokens proposed per step (vLLM num_speculative_tokens)
    acceptance_rate: float = 0.7  # per proposed token, the chance it is accepted given the ones before were
    acceptance_spread: float = 0.0  # > 0: each request draws its own rate from a Beta with this standard deviation
    draft_model: str | None = None  # method=draft: a model catalog name (or a config.json path)


@dataclass
class SchedulerConfig:
    policy: str = "continuous"
    max_batch_size: int = 256  # vLLM --max-num-seqs
    max_batch_tokens: int = 8192  # vLLM --max-num-batched-tokens
    max_wait_s: float = 0.0  # static batching: longest wait for a full batch
    preemption_mode: str = "recompute"  # recompute | swap (vLLM --preemption-mode)
    multi_step: int = 1  # decode steps per scheduling decision (vLLM V0 --num-scheduler-steps)
    #: the engine's CPU work for a step runs while the GPU runs the previous one, so a step takes the
    #: longer of the two (vLLM --async-scheduling, SGLang's overlap scheduler, TensorRT-LLM's PyTorch
    #: backend; simulator/latency/overlap.py)
    async_scheduling: bool = False
    speculative: SpeculativeConfig = field(default_factory=SpeculativeConfig)


@dataclass
class ProfileConfig:
    path: str | None = None


@dataclass
class LatencyConfig:
    """Step-time model. The roofline's factors are documented, with their sources,
    in simulator/latency/roofline.py and docs/fidelity.md."""

    model: str = "roofline"  # constant | roofline | profile
    step_s: float = 0.01  # constant: every step takes exactly this long
    # roofline: null = the hardware catalog's measured values (hardware.gemm); a number overrides them
    compute_efficiency: float | None = None  # BF16/FP16 tensor-core math of GEMMs
    compute_efficiency_fp8: float | None = None  # FP8 (W8A8) GEMMs, of the dense FP8 peak
    memory_efficiency: float | None = None  # HBM bandwidth
    overlap_exponent: float | None = None  # smooth max of compute and memory time per GEMM (inf = the plain roofline)
    gemm_latency_s: float | None = None  # fixed cost of one GEMM / attention kernel
    # attention (null = hardware.attention, fitted to engines' measured kernels)
    attention_efficiency: float | None = None  # attention math, of the BF16 peak
    attention_row_pairs: float | None = None  # prefill: extra pairs' work per query row (a query tile's fixed cost)
    attention_latency_s: float | None = None  # prefill: fixed cost of one layer's attention kernel
    attention_decode_kv_rate_g: float | None = None  # KV entries (billions/s) attention reads at most, any KV width and model (inf: none)
    # tensor-parallel all-reduce when the hardware's measured table lacks the GPU count
    comm_efficiency: float = 0.80
    allreduce_latency_s: float = 3e-5
    #: GPU vendors (hardware.vendor) on which the engine runs its own one-shot all-reduce kernel for
    #: small messages (the custom_* rows of hardware.allreduce) besides NCCL/RCCL; [] = NCCL/RCCL only,
    #: as vLLM's and SGLang's --disable-custom-all-reduce (engine presets set it)
    custom_allreduce: list[str] = field(default_factory=lambda: ["nvidia", "amd"])
    # engine CPU work per iteration (engine presets set these)
    step_overhead_s: float = 0.002
    step_overhead_per_seq_s: float = 0.0
    # API server work per request before it reaches the engine (tokenisation, HTTP, queueing)
    request_overhead_s: float = 0.0
    profile: ProfileConfig = field(default_factory=ProfileConfig)
    #: uncertainty=on: the log step-time error's mean and standard deviation; null = the published
    #: suite's held-out figures for the GPU family (simulator/latency/uncertainty.py)
    error_log_mean: float | None = None
    error_log_sd: float | None = None


@dataclass
class OffloadConfig:
    """KV tiers below GPU memory for the prefix cache (docs/policies/kv_offload.md): blocks the
    GPU cache evicts spill to host memory, and from there to local SSD, instead of vanishing; a
    prompt whose leading blocks sit in a lower tier loads them back (paying the copy) instead of
    recomputing them. Capacities and bandwidths are per GPU, like ``swap_space_gb``."""

    host_gb: float = 0.0  # host DRAM for offloaded KV per GPU (0: no host tier)
    host_gbps: float | None = None  # host -> GPU copy bandwidth per GPU; null = hardware.host_link_gbps
    host_latency_us: float = 10.0  # fixed cost of one load from host memory (a DMA launch and sync)
    ssd_gb: float = 0.0  # local NVMe SSD for offloaded KV per GPU (0: no SSD tier)
    ssd_gbps: float = 6.0  # SSD -> GPU read bandwidth per GPU (a PCIe Gen4 x4 NVMe drive reads about 7 GB/s)
    ssd_latency_us: float = 100.0  # fixed cost of one load from SSD (NVMe read latency is tens of microseconds)


@dataclass
class MemoryConfig:
    allocation: str = "paged"
    block_size: int = 16  # tokens per KV block (vLLM --block-size)
    gpu_memory_utilization: float = 0.90  # vLLM --gpu-memory-utilization
    activation_reserve_gb: float = 2.0  # per GPU, kept for activations and runtime
    watermark: float = 0.01  # fraction of blocks kept free when admitting prefills
    max_model_len: int | None = None  # vLLM --max-model-len; None = the model's context
    swap_space_gb: float = 4.0  # per GPU host memory for swapped KV (vLLM --swap-space)
    prefix_caching: bool = False
    # reserve_* modes: null = capacity counted in tokens (internal waste only); first_fit | buddy =
    # each reservation is a contiguous range of one KV pool, so free space also fragments (docs/levers/fragmentation.md)
    contiguous_allocator: str | None = None
    offload: OffloadConfig = field(default_factory=OffloadConfig)


@dataclass
class PoolSchedulerConfig:
    """A pool's scheduler; unset (null) fields inherit the scenario's ``scheduler``."""

    policy: str | None = None
    max_batch_size: int | None = None
    max_batch_tokens: int | None = None
    max_wait_s: float | None = None
    preemption_mode: str | None = None


@dataclass
class PoolConfig:
    """One side of a disaggregated deployment."""

    replicas: int = 1
    tp: int = 1
    hardware: str | None = None  # a hardware catalog name; null = the scenario's hardware
    scheduler: PoolSchedulerConfig = field(default_factory=PoolSchedulerConfig)


@dataclass
class LinkConfig:
    """The path KV caches take from a prefill replica to a decode replica."""

    bandwidth_gbps: float = 50.0  # one-way GB/s per prefill replica (a 400 Gb/s NIC)
    latency_s: float = 5e-5  # fixed cost per transfer
    layerwise: bool = False  # copy each layer's KV as prefill computes it: only the last layer's share is exposed


@dataclass
class DisaggregationConfig:
    enabled: bool = False
    prefill: PoolConfig = field(default_factory=PoolConfig)
    decode: PoolConfig = field(default_factory=PoolConfig)
    link: LinkConfig = field(default_factory=LinkConfig)
    decode_router: str = "least_loaded"  # least_loaded | round_robin


@dataclass
class GroupConfig:
    """One group of identical colocated replicas in a heterogeneous cluster."""

    replicas: int = 1
    tp: int = 1
    hardware: str | None = None  # a hardware catalog name; null = the scenario's hardware
    model: str | None = None  # a model catalog name; null = the scenario's model
    scheduler: PoolSchedulerConfig = field(default_factory=PoolSchedulerConfig)
    tier: str | None = None  # pricing tier it pays (on_demand | reserved | spot; docs/pricing.md); null = cluster.tier


@dataclass
class ColdStartConfig:
    """What a new (or repaired) replica goes through before it serves."""

    provision_s: float = 60.0  # get a node and start the engine
    storage_gbps: float = 2.0  # weight loading bandwidth per GPU (GB/s); load time = weight bytes per GPU / this


@dataclass
class AutoscalerConfig:
    """Adds or removes replicas from a load metric, like Kubernetes' HPA:
    desired = ceil(serving x metric / target), stabilised over windows."""

    enabled: bool = False
    metric: str = "queue"  # queue (waiting per replica) | requests (waiting + running per replica) | kv_usage (fraction of KV blocks in use)
    target: float = 8.0  # the metric's desired value per serving replica
    min_replicas: int = 1
    max_replicas: int = 8
    interval_s: float = 10.0  # how often the metric is read
    up_window_s: float = 0.0  # scale up to the lowest recommendation over this window
    down_window_s: float = 120.0  # scale down to the highest recommendation over this window
    group: str | None = None  # which replica group scales (null = the first)


@dataclass
class FailureConfig:
    """Replica failures: at fixed times and/or at random, and their repair."""

    at_s: list[float] = field(default_factory=list)  # fail one replica at each of these times
    replica: list[int] = field(default_factory=list)  # ... which one (replica index); empty = the busiest
    mtbf_gpu_hours: float | None = None  # random failures: mean hours between failures of one GPU
    repair_s: float = 300.0  # a failed replica is replaced after this long (then cold start)
    in_flight: str = "retry"  # retry: requests on it go back to the router | lost: they end rejected


@dataclass
class ResponseCacheConfig:
    """A response (or semantic) cache in front of the GPUs (docs/levers/cache_cascade.md)."""

    hit_rate: float = 0.0  # share of requests answered from the cache (0: no cache)
    hit_rate_by_tenant: dict[str, float] = field(default_factory=dict)  # per tenant label; others use hit_rate
    latency_s: float = 0.02  # time to answer a hit (lookup, embedding for a semantic cache)
    usd_per_hit: float = 0.0  # what a hit costs (lookup service, embedding call)


@dataclass
class CascadeConfig:
    """A small model answers first and escalates to a large one (docs/levers/cache_cascade.md)."""

    enabled: bool = False
    small: str = "small"  # the cluster.groups name of the small-model group
    large: str = "large"  # the cluster.groups name of the large-model group
    share: float = 1.0  # share of requests sent to the small model first (the rest go straight to the large)
    escalation_rate: float = 0.2  # chance a small-model answer is judged not good enough and redone by the large
    overload_queue: int | None = None  # escalate on arrival when the small group's queue per replica exceeds this


@dataclass
class ClusterConfig:
    replicas: int = 1
    tp: int = 1
    #: pipeline parallelism: stages of a replica, each on tp GPUs (docs/levers/pipeline.md)
    pp: int = 1
    #: expert parallelism: the GPUs the routed experts are spread over. 1: every expert sharded over
    #: the replica's TP GPUs; tp: each GPU holds whole experts; a multiple of tp: experts spread over
    #: ep/tp replicas that run attention data-parallel, with all-to-all dispatch and combine (docs/models.md)
    ep: int = 1
    router: str = "round_robin"
    #: the pricing tier the replicas pay (on_demand | reserved | spot; docs/pricing.md); a group's own tier wins
    tier: str = "on_demand"
    #: Heterogeneous replica groups (name -> group); when set, replicas/tp
    #: above are ignored and each group has its own count, TP, hardware, model.
    groups: dict[str, GroupConfig] = field(default_factory=dict)
    affinity_slack: float = 2.0  # affinity routers leave a replica holding more than slack x (the least load + 1)
    # Prefill/decode disaggregation: when enabled, replicas/tp above are
    # ignored and each pool has its own.
    disaggregation: DisaggregationConfig = field(default_factory=DisaggregationConfig)
    autoscaler: AutoscalerConfig = field(default_factory=AutoscalerConfig)
    cold_start: ColdStartConfig = field(default_factory=ColdStartConfig)
    failures: FailureConfig = field(default_factory=FailureConfig)
    response_cache: ResponseCacheConfig = field(default_factory=ResponseCacheConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)


@dataclass
class RateLimitConfig:
    """A token bucket per tenant, charged prompt + requested output tokens."""

    tokens_per_s: float | None = None  # refill rate per tenant (null = no limit)
    burst_tokens: float | None = None  # bucket size (null = one second of refill)


@dataclass
class AdmissionConfig:
    """Gateway checks, in order, after the router picked a replica; each
    rejection is recorded with its reason (see docs/cluster.md)."""

    max_queue: int | None = None  # queue_full: more than this many requests already wait on the replica
    max_wait_s: float | None = None  # wait_too_long: the expected queueing delay exceeds this
    kv_watermark: float | None = None  # kv_pressure: the replica's KV usage is above this fraction
    slo_aware: bool = False  # slo_unattainable: the predicted TTFT exceeds the request's TTFT SLO
    rate_limit: RateLimitConfig = field(default_factory=RateLimitConfig)


@dataclass
class TierConfig:
    """A priority tier (free / pro / enterprise ...). Null fields inherit
    ``slo.*`` and ``admission.*``."""

    share: float = 1.0  # share of synthetic traffic (normalised over tiers)
    priority: int = 0  # higher is queued ahead and preempted last
    ttft_s: float | None = None
    tpot_s: float | None = None
    max_queue: int | None = None
    max_wait_s: float | None = None
    kv_watermark: float | None = None
    tokens_per_s: float | None = None
    burst_tokens: float | None = None


@dataclass
class GpuPriceConfig:
    """One GPU type's prices in USD per GPU-hour, by pricing tier, each with its source and date
    (docs/pricing.md). Null: no price for that tier."""

    on_demand: float | None = None  # pay as you go (the hardware entry's price_per_gpu_hour wins when set)
    on_demand_source: str = ""
    on_demand_date: str = ""
    reserved: float | None = None  # a committed term (pricing.reserved_term)
    reserved_source: str = ""
    reserved_date: str = ""
    spot: float | None = None  # spare capacity the provider may reclaim (pricing.spot)
    spot_source: str = ""
    spot_date: str = ""
    #: spot interruptions per replica-hour for this GPU type; null = pricing.spot.interruptions_per_hour
    spot_interruptions_per_hour: float | None = None
    spot_interruptions_source: str = ""


@dataclass
class SpotConfig:
    """How spot capacity is taken back: a Poisson process per serving spot replica, each
    interruption announced ``notice_s`` before the replica is gone (docs/pricing.md)."""

    interruptions_per_hour: float = 0.0  # per replica-hour serving (one replica = one instance)
    notice_s: float = 120.0  # warning before the instance is reclaimed: the replica takes no new requests meanwhile
    source: str = ""


@dataclass
class PricingConfig:
    """A pricing catalog (``pricing=`` picks a snapshot in scenarios/pricing/): prices per GPU type and tier."""

    name: str = "none"
    description: str = ""
    reserved_term: str = ""  # what the reserved prices commit to (e.g. a 1-year term, billed every hour)
    #: hardware catalog name -> its prices (override as pricing.hardware.h100-sxm.spot=2.0)
    hardware: dict[str, GpuPriceConfig] = field(default_factory=dict)
    spot: SpotConfig = field(default_factory=SpotConfig)


@dataclass
class SLOConfig:
    ttft_s: float | None = 1.0
    tpot_s: float | None = 0.1
    e2e_s: float | None = None


@dataclass
class OutputConfig:
    charts: bool = True  # write latency_cdf.png next to the data
    #: write requests.parquet, steps.parquet and replicas.parquet (false: summary.json and scenario.yaml only,
    #: for sweeps of many points whose report needs only the summaries)
    tables: bool = True
    console: bool = True  # print the summary table
    perfetto: bool = False  # also write the run as a Chrome/Perfetto trace (timeline.perfetto.json)
    progress: str = "auto"  # progress bar: auto (only on a terminal, never in CI), on, off


@dataclass
class EnergyConfig:
    """Energy and its price (docs/energy.md): facility overhead and electricity, and how much of a
    GPU's dynamic power a memory-bound step draws. Per-GPU watts are the hardware's (``hardware.idle_w``,
    ``hardware.tdp_w``)."""

    #: power usage effectiveness: facility energy / IT energy. 1.58: the industry average of Uptime
    #: Institute's 2023 Global Data Center Survey (Uptime Intelligence update 221, 23 Nov 2023)
    pue: float = 1.58
    #: USD per kWh of facility energy. 0.12: the median US state's average retail revenue per kWh,
    #: 11.94 cents in September 2024 (EIA Electricity Monthly Update, end use, November 2024)
    usd_per_kwh: float = 0.12
    #: share of the idle-to-TDP range a step drawn at full HBM bandwidth with idle tensor cores adds:
    #: (300 - 75) / (700 - 75) = 0.36 from decode on an H200 (137-300 W on a 700 W GPU; Ma et al.,
    #: arXiv:2605.11999, May 2026). 1: memory traffic draws as much as math
    memory_power_share: float = 0.36


@dataclass
class UncertaintyConfig:
    """Model error carried into runs (``uncertainty=on``; simulator/latency/uncertainty.py, docs/uncertainty.md)."""

    enabled: bool = False  # each run multiplies its step times by a draw of the measured model error
    interval: float = 0.9  # the central share of replications the summary's intervals span


@dataclass
class ScenarioConfig:
    """The whole scenario; see scenarios/config.yaml for the defaults used."""

    name: str = "default"
    seed: int = 0
    #: independent runs of this point (seeds seed, seed+1, ...); the summary reports their spread
    replications: int = 1
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    workload: WorkloadConfig = field(default_factory=WorkloadConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    latency: LatencyConfig = field(default_factory=LatencyConfig)
    memory: MemoryConfig = field(default_factory=MemoryConfig)
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    admission: AdmissionConfig = field(default_factory=AdmissionConfig)
    #: priority tiers by name; empty = one implicit tier
    tiers: dict[str, TierConfig] = field(default_factory=dict)
    slo: SLOConfig = field(default_factory=SLOConfig)
    #: the pricing catalog: tier prices per GPU type and spot interruptions (docs/pricing.md)
    pricing: PricingConfig = field(default_factory=PricingConfig)
    output: OutputConfig = field(default_factory=OutputConfig)
    energy: EnergyConfig = field(default_factory=EnergyConfig)
    #: model error as a random step-time factor per run, and the intervals replications report
    uncertainty: UncertaintyConfig = field(default_factory=UncertaintyConfig)
    #: the engine preset in force (set by ``engine=``: scenarios/engine/); "generic" = none
    engine_name: str = "generic"


@functools.cache
def schema_node(schema: type) -> DictConfig:
    """``OmegaConf.structured(schema)``, built once per process (about 25 ms for
    :class:`ScenarioConfig`); shared, so read it or copy it, never change it."""
    return OmegaConf.structured(schema)


def register() -> None:
    """Register the schema with hydra as ``base_config`` (idempotent: stored once per process;
    hydra copies the stored node at each composition). Whatever composes ``scenarios/config.yaml``
    calls it first: hydra imports ``simulator.scenarios`` (whose ``__init__`` calls it) before it
    reads the tree, and :func:`simulator.config.compose` and the command line call it themselves."""
    cs = ConfigStore.instance()
    stored = cs.repo.get("base_config.yaml")
    if stored is None or OmegaConf.get_type(stored.node) is not ScenarioConfig:
        cs.store(name="base_config", node=schema_node(ScenarioConfig))  # (store copies it)


__all__: list[Any] = [
    "HardwareConfig",
    "GemmConfig",
    "ModelConfig",
    "LengthConfig",
    "WorkloadConfig",
    "TraceConfig",
    "SharedPrefixConfig",
    "SchedulerConfig",
    "LatencyConfig",
    "ProfileConfig",
    "MemoryConfig",
    "ClusterConfig",
    "GroupConfig",
    "ColdStartConfig",
    "AutoscalerConfig",
    "FailureConfig",
    "AdmissionConfig",
    "RateLimitConfig",
    "TierConfig",
    "RetryConfig",
    "DisaggregationConfig",
    "PoolConfig",
    "PoolSchedulerConfig",
    "LinkConfig",
    "SLOConfig",
    "GpuPriceConfig",
    "SpotConfig",
    "PricingConfig",
    "OutputConfig",
    "EnergyConfig",
    "ScenarioConfig",
    "register",
    "schema_node",
]
