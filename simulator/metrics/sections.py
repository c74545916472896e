"""The shape of ``summary.json``, as types: one ``TypedDict`` per section.

:func:`simulator.metrics.summary.summarize` returns a :class:`Summary`; the
console, the sweep table, the charts and the planner read it through these
names, so a misspelt or missing key is a type error (``mypy``, run by
``tests/test_types.py``) instead of a ``KeyError`` at run time. The keys are the
public contract of ``../shared/DESIGN.md`` and ``docs/outputs.md``: a key added
here is added there.

At run time these are plain dicts (``TypedDict`` costs nothing), so the JSON
written is unchanged. A summary read back from disk (``json.loads``) is typed
``Summary`` by the reader that trusts it.
"""

from __future__ import annotations

from typing import Any, Literal, NotRequired, TypedDict

LatencyKey = Literal["ttft", "tpot", "itl", "e2e", "queue"]
StatKey = Literal["mean", "p50", "p90", "p99", "max"]
#: the distributions of the ``latency_s`` section, in order
LATENCY_KEYS: tuple[LatencyKey, ...] = ("ttft", "tpot", "itl", "e2e", "queue")
#: the figures of each distribution, in order
STAT_KEYS: tuple[StatKey, ...] = ("mean", "p50", "p90", "p99", "max")


#: mean, the ``PCTS`` percentiles (see :mod:`simulator.metrics.stats`) and max; ``None`` when empty
class Stats(TypedDict):
    mean: float | None
    p50: float | None
    p90: float | None
    p99: float | None
    max: float | None
#: the ``PCTS`` percentiles only (per-tier and per-tenant latencies)
class Percentiles(TypedDict):
    p50: float | None
    p90: float | None
    p99: float | None


class DecodeBatch(TypedDict):
    mean_decode_batch: float
    decode_step_share: float


class ScenarioSection(TypedDict):
    name: str
    model: str
    hardware: str
    replicas: int
    tp: int
    pp: int
    scheduler: str
    disaggregated: bool
    engine: str | None
    memory_allocation: str
    latency_model: str
    arrival: str
    rate_rps: float
    seed: int
    users: NotRequired[int]  # closed loop
    think_s: NotRequired[float]  # closed loop
    rate_schedule: NotRequired[list[list[float]]]  # a time-varying open process


class PoolSection(DecodeBatch):
    name: str
    model: str
    hardware: str
    replicas: int
    tp: int
    pp: int
    gpus: int
    scheduler: str
    multi_step: NotRequired[int]  # decode steps per scheduling decision, where more than one (scheduler.multi_step)
    allocation: str
    latency_model: str
    kv_blocks_per_replica: int
    kv_tokens_per_replica: int
    kv_gb_per_replica: float
    steps: int
    busy_fraction: float
    mean_batch_size: float
    prefill_tokens: int
    decode_tokens: int
    price_per_gpu_hour: float | None  # at the pool's pricing tier
    tier: str  # the pricing tier the pool pays (docs/pricing.md)


class RequestsSection(TypedDict):
    total: int
    completed: int
    rejected: int
    rejected_by_reason: dict[str, int]
    preemptions: int
    retries: int


class WindowSection(TypedDict):
    start_s: float
    end_s: float
    last_arrival_s: float
    in_system_midway: int  # requests arrived and not yet ended at last_arrival_s / 2
    in_system_at_last_arrival: int  # ... and at last_arrival_s
    note: str


class ThroughputSection(TypedDict):
    requests_per_s: float
    output_tokens_per_s: float
    total_tokens_per_s: float


class LatencySection(TypedDict):
    ttft: Stats
    tpot: Stats
    itl: Stats
    e2e: Stats
    queue: Stats


class SloSection(TypedDict):
    ttft_s: float | None
    tpot_s: float | None
    e2e_s: float | None
    attainment: float | None
    goodput_rps: float


class ContiguousSection(TypedDict):
    """memory.contiguous_allocator set: what placing reservations as ranges of one pool cost."""

    allocator: str
    requests_delayed_by_fragmentation: int  # waited for a range while enough blocks were free in all
    fragmentation_refusals: int
    rounding_share: float  # buddy: blocks taken beyond those asked for, of those taken
    external_fragmentation_mean: float  # 1 - longest free range / free blocks, sampled at every placement and release
    external_fragmentation_max: float
    pool_token_share: float | None  # KV tokens over the whole pool, time-weighted (the vLLM paper's measure)


class KvCacheSection(TypedDict):
    pool: str
    allocation: str
    blocks_per_replica: int
    block_size: int
    tokens_per_replica: int
    gb_per_replica: float
    peak_usage: float
    mean_usage: float
    real_token_share: float | None
    blocks_in_use_at_end: int
    contiguous: NotRequired[ContiguousSection]


class PreemptionSection(TypedDict):
    mode: str
    count: int
    swaps: int
    recomputed_tokens: int
    recompute_time_s: float
    swap_time_s: float


class EngineSection(DecodeBatch):
    steps: int
    busy_fraction: float
    mean_batch_size: float


class LittlesLawSection(TypedDict):
    L_from_steps: float
    lambda_times_W: float
    note: str


class ServingReplicas(TypedDict):
    min: int
    max: int
    mean: float


class BilledGpus(TypedDict):
    max: int
    mean: float


class ClusterFigures(TypedDict):
    """The replica timeline's figures (:func:`simulator.metrics.breakdown.replica_figures`)."""

    source: str
    serving_replicas: ServingReplicas
    billed_gpus: BilledGpus
    scale_ups: int
    scale_downs: int
    failures: int
    replacements: int
    failure_times_s: list[float]
    spot_interruptions: int  # spot notices (interrupted events)
    spot_reclaims: int  # failures that are a notice's reclaim (breakdown.spot_reclaims); each is one of the failures


class ClusterSection(ClusterFigures):
    failures_skipped: int


class GroupCost(TypedDict):
    gpu_hours: float
    price_per_gpu_hour: float | None
    usd: float | None
    tier: str  # the pricing tier the group pays (docs/pricing.md)


class TierCost(TypedDict):
    """One pricing tier's share of the bill (the ``cost`` section's ``by_tier``)."""

    gpu_hours: float
    usd: float | None


class CostFigures(TypedDict):
    gpu_hours: float
    price_per_gpu_hour: float | None
    usd: float | None
    by_group: dict[str, GroupCost]
    by_tier: dict[str, TierCost]


class TokenCost(TypedDict):
    """Per request and per token (:func:`simulator.metrics.cost.token_cost`); ``None`` where undefined or unpriced."""

    usd_per_request: float | None
    usd_per_million_tokens: float | None
    usd_per_million_input_tokens: float | None
    usd_per_million_output_tokens: float | None
    input_gpu_share: float | None


class EnergyGroup(TypedDict):
    """One group's (pool's) energy (:func:`simulator.metrics.energy.energy_section`)."""

    hardware: str
    idle_w: float
    tdp_w: float
    gpu_hours: float  # billed, as in the cost section
    gpu_kwh: float
    mean_power_w_per_gpu: float | None  # over billed time
    busy_utilisation: float | None  # time-weighted over its steps


class EnergySection(TypedDict):
    """GPU and facility energy, power and their price; the figures are None without power data."""

    gpu_kwh: float | None
    facility_kwh: float | None  # gpu_kwh x pue
    pue: float
    mean_power_w_per_gpu: float | None  # GPU energy / billed GPU-seconds
    busy_utilisation: float | None  # time-weighted utilisation of the steps (0-1)
    joules_per_token: float | None  # GPU energy / (prompt + output tokens of completed requests)
    joules_per_output_token: float | None
    usd_per_kwh: float
    usd: float | None  # facility_kwh x usd_per_kwh
    by_group: dict[str, EnergyGroup]
    note: str


class CostSection(CostFigures, TokenCost):
    gpus: int
    peak_gpus: int
    mean_usd_per_hour: float | None  # usd over the window's hours: the mean spend rate of the run (the headline usd_per_hour is GPUs x price)
    note: str
    response_cache_usd: NotRequired[float]  # with a response cache: its hits' USD, included in usd


class LabelThroughput(TypedDict):
    requests_per_s: float
    output_tokens_per_s: float


class LabelHead(TypedDict, total=False):
    """What a label's entry opens with: a tier's settings, or the one tier a tenant's requests share."""

    priority: int | None  # tiers only, with share, ttft_s and tpot_s
    share: float | None
    ttft_s: float | None
    tpot_s: float | None
    tier: str  # tenants only


class LabelSection(LabelHead):
    """One tier's or tenant's figures (:func:`simulator.metrics.breakdown.breakdown`)."""

    requests: int
    completed: int
    rejected: int
    rejected_by_reason: dict[str, int]
    rejection_rate: float | None
    slo_attainment: float | None
    goodput_rps: float
    throughput: LabelThroughput
    latency_s: dict[str, Percentiles]
    mean_attempts: float | None


class PrefixCacheSection(TypedDict):
    lookups_blocks: int
    hit_blocks: int
    saved_prefill_tokens: int
    evictions: int
    cached_blocks_at_end: int
    block_hit_rate: float
    token_hit_rate: float
    note: str
    #: memory.offload: per lower tier (host, ssd) blocks stored, hit (loaded back) and held at the end; loaded_gb
    offload: NotRequired[dict[str, Any]]


class KvTransferSection(TypedDict):
    transfers: int
    gb: float
    mean_s: float | None
    bandwidth_gbps: float
    layerwise: bool
    mean_exposed_s: float | None


class SpeculativeSection(TypedDict):
    method: str
    num_tokens: int
    acceptance_rate: float
    acceptance_spread: float
    draft_model: str | None
    expected_tokens_per_step: float  # (1 - a^(k+1)) / (1 - a) per sequence and verification step
    tokens_per_step: float | None  # what the run's verification steps kept, per sequence
    verified_seq_steps: int


class ResponseCacheSection(TypedDict):
    """The response cache in front of the GPUs (docs/levers/cache_cascade.md)."""

    hit_rate: float  # configured (cluster.response_cache.hit_rate)
    hit_rate_by_tenant: dict[str, float]  # configured, per tenant label
    requests: int  # every request issued
    hits: int
    measured_hit_rate: float | None  # hits / requests
    latency_s: float
    usd_per_hit: float
    usd: float  # hits x usd_per_hit, included in cost.usd
    note: str


class CascadeSection(TypedDict):
    """The model cascade: how requests were routed and escalated (docs/levers/cache_cascade.md)."""

    small: str
    large: str
    share: float
    escalation_rate: float
    overload_queue: int | None
    sent_to_small: int  # route "small"
    by_overload: int  # route "overload": in the share, but the small group was too busy
    straight_to_large: int  # route "large": not in the share
    escalated: int
    measured_escalation_rate: float | None  # escalated / attempts completed on the small group
    answered_by_small: int
    answered_by_large: int
    note: str


class ParallelSamplingSection(TypedDict):
    n: int
    prompts: int
    samples: int
    prompts_completed: int
    shared_prompt_blocks: int
    shared_kv_gb: float
    prompt_e2e_s: Stats
    note: str


class BeamSearchSection(TypedDict):
    width: int
    block_steps_shared: int  # blocks held, summed over every beam group's decode steps
    block_steps_unshared: int  # what width separate copies of each beam would have held
    memory_saving: float | None  # 1 - shared / unshared
    note: str


class Summary(TypedDict):
    """``summary.json``: the fixed sections in order, then the optional ones."""

    scenario: ScenarioSection
    pools: list[PoolSection]
    requests: RequestsSection
    window: WindowSection
    throughput: ThroughputSection
    latency_s: LatencySection
    slo: SloSection
    kv_cache: KvCacheSection
    preemption: PreemptionSection
    engine: EngineSection
    littles_law: LittlesLawSection
    cluster: ClusterSection
    cost: CostSection
    energy: NotRequired[EnergySection]  # every run since the energy model (simulator.metrics.energy); absent in older files
    tiers: NotRequired[dict[str, LabelSection]]  # when tiers are configured
    tenants: NotRequired[dict[str, LabelSection]]  # when any request carries a tenant
    workload: NotRequired[dict[str, Any]]  # the workload source's notes (a trace's name, a fit's figures)
    prefix_cache: NotRequired[PrefixCacheSection]  # when a replica caches prefixes
    uncertainty: NotRequired[dict[str, Any]]  # uncertainty=on: the run's draw of the model error
    kv_transfer: NotRequired[KvTransferSection]  # when disaggregated
    speculative: NotRequired[SpeculativeSection]  # scheduler.speculative.method set
    parallel_sampling: NotRequired[ParallelSamplingSection]  # workload.n > 1
    beam_search: NotRequired[BeamSearchSection]  # workload.beam_width > 1
    response_cache: NotRequired[ResponseCacheSection]  # a positive cluster.response_cache hit rate
    cascade: NotRequired[CascadeSection]  # cluster.cascade.enabled
    replications: NotRequired[dict[str, Any]]  # run.replications > 1 (simulator.metrics.replications)
