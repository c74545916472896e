"""The roofline latency model and the hardware/model catalogs it reads."""

from __future__ import annotations

import math
import random
import re
from dataclasses import replace
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from simulator.config.schema import HardwareConfig, ModelConfig, ScenarioConfig
from simulator.config.validate import check_latency
from simulator.errors import ConfigError
from simulator.latency.base import LATENCY_MODELS, StepShape, build_latency_model
from simulator.latency.roofline import RooflineLatency
from simulator.specs import ModelSpec

SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"
#: Catalog entries that describe the CPU test rig, not real GPUs and models.
TEST_RIG = {"cpu", "tiny-llama"}
HARDWARE_FILES = sorted(p for p in (SCENARIOS / "hardware").glob("*.yaml") if p.stem not in TEST_RIG)
MODEL_FILES = sorted(p for p in (SCENARIOS / "model").glob("*.yaml") if p.stem not in TEST_RIG)

# KV bytes per token at 16-bit and parameter counts, transcribed from
# shared/reference/models.yaml (derived there from the models' HF config.json
# files; they match the vendors' published sizes).
REFERENCE_MODELS = {
    "llama-3.1-8b": (131072, 8.030e9),
    "llama-3.1-70b": (327680, 70.554e9),
    "llama-2-7b": (524288, 6.738e9),
    "llama-2-70b": (327680, 68.977e9),
    "mistral-7b": (131072, 7.242e9),
    "qwen2.5-7b": (57344, 7.616e9),
    "qwen2.5-72b": (327680, 72.706e9),
    "qwen2-7b": (57344, 7.616e9),
}
REFERENCE_GPUS = {"a100-40gb", "a100-80gb", "h100-sxm", "h100-pcie", "h200", "l40s", "b200", "mi300x", "a30"}

H100_BW = 3.35e12
ENTRIES = 2 * 32 * 8 * 128  # Llama-3.1-8B's KV entries per token: K and V, 32 layers, 8 KV heads of 128
OVERHEAD = 0.002


def load(schema, path: Path):
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), OmegaConf.load(path)))


def scenario(hardware="h100-sxm", model="llama-3.1-8b", tp=1, weight_dtype=None, **latency) -> ScenarioConfig:
    model_node = OmegaConf.load(SCENARIOS / "model" / f"{model}.yaml")
    if weight_dtype is not None:
        model_node.weight_dtype = weight_dtype
    merged = OmegaConf.merge(
        OmegaConf.structured(ScenarioConfig),
        {
            "hardware": OmegaConf.load(SCENARIOS / "hardware" / f"{hardware}.yaml"),
            "model": model_node,
            "cluster": {"tp": tp},
            "latency": {"model": "roofline", **latency},
        },
    )
    return OmegaConf.to_object(merged)


def roofline(hardware="h100-sxm", model="llama-3.1-8b", tp=1, weight_dtype=None, **latency) -> RooflineLatency:
    cfg = scenario(hardware, model, tp, weight_dtype, **latency)
    return RooflineLatency(cfg, ModelSpec.from_config(cfg.model, tp))


def decode(batch: int, ctx: int = 1024) -> StepShape:
    return StepShape(decode_seqs=batch, decode_ctx_tokens=batch * ctx)


def prefill(seqs: int, length: int) -> StepShape:
    """``seqs`` whole prompts of ``length`` tokens, none cached."""
    return StepShape(
        prefill_seqs=seqs,
        prefill_tokens=seqs * length,
        prefill_attn_pairs=seqs * length * (length + 1) / 2,
    )


# -- catalogs ---------------------------------------------------------------


def test_catalogs_hold_the_expected_entries():
    assert REFERENCE_GPUS <= {p.stem for p in HARDWARE_FILES}
    assert set(REFERENCE_MODELS) <= {p.stem for p in MODEL_FILES}


@pytest.mark.parametrize("path", HARDWARE_FILES, ids=lambda p: p.stem)
def test_hardware_entry_loads_and_is_consistent(path):
    hw = load(HardwareConfig, path)
    assert hw.name == path.stem
    assert hw.vendor in {"nvidia", "amd"}
    assert hw.source.strip() and hw.confidence in {"high", "medium", "low"}
    assert 0 < hw.memory_gb <= 300 and 500 < hw.memory_bw_gbps < 20000
    assert 0 < hw.host_link_gbps <= 128 and 0 < hw.interconnect_gbps <= 1000
    # Dense figures: FP8 doubles BF16 on every GPU here; a sparse headline
    # slipping into one of the two would break the ratio.
    if hw.fp8_tflops is not None:
        assert hw.fp8_tflops / hw.bf16_tflops == pytest.approx(2.0, rel=0.03)
    if hw.int8_tops is not None:
        assert hw.int8_tops == pytest.approx(hw.fp8_tflops or 2 * hw.bf16_tflops, rel=0.01)
    if hw.price_per_gpu_hour is not None:
        assert 0.5 < hw.price_per_gpu_hour < 20
        assert re.search(r"20\d\d", hw.price_source), "a price needs a dated source"


@pytest.mark.parametrize("path", MODEL_FILES, ids=lambda p: p.stem)
def test_model_entry_loads_and_is_consistent(path):
    m = load(ModelConfig, path)
    assert m.name == path.stem and m.source.strip() and m.hf_id
    assert m.num_attention_heads % m.num_kv_heads == 0
    assert m.max_context >= 4096


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_kv_bytes_per_token_match_the_reference(name):
    m = load(ModelConfig, SCENARIOS / "model" / f"{name}.yaml")
    assert ModelSpec.from_config(m).kv_bytes_per_token == REFERENCE_MODELS[name][0]
    assert ModelSpec.from_config(m, tp=2).kv_bytes_per_token_per_gpu == REFERENCE_MODELS[name][0] / 2


@pytest.mark.parametrize("name", sorted(REFERENCE_MODELS))
def test_parameter_count_follows_from_the_widths(name):
    m = load(ModelConfig, SCENARIOS / "model" / f"{name}.yaml")
    spec = ModelSpec.from_config(m)
    h = spec.hidden_size
    embeddings = spec.vocab_size * h
    norms = (2 * spec.num_layers + 1) * h  # two RMSNorms per layer + the final one
    counted = spec.layer_linear_params * spec.num_layers + spec.lm_head_params + embeddings + norms
    assert counted == pytest.approx(m.params_total, rel=0.01)
    assert m.params_total == pytest.approx(REFERENCE_MODELS[name][1], rel=1e-6)
    assert spec.weight_bytes == 2 * m.params_total  # bf16 by default


# -- the latency model --------------------------------------------------------


def test_registered_and_built_by_name():
    assert LATENCY_MODELS.get("roofline") is RooflineLatency
    cfg = scenario()
    model = build_latency_model(cfg, ModelSpec.from_config(cfg.model))
    assert isinstance(model, RooflineLatency)
    assert model.describe() == "roofline h100-sxm (76% MFU, 93% MBU, KV read at 1,452 G entries/s, 2 ms overhead)"
    assert roofline(tp=2).describe().startswith("roofline h100-sxm x2 ")


def test_empty_step_costs_the_overhead():
    assert roofline().step_time(StepShape()) == OVERHEAD
    assert roofline(step_overhead_s=0.005).step_time(StepShape()) == 0.005
    assert roofline(step_overhead_s=0.005, step_overhead_per_seq_s=1e-4).step_time(decode(10)) > 0.005 + 10e-4


#: No fixed costs: the tests below check the roofline's regimes.
BARE = {"step_overhead_s": 0.0, "gemm_latency_s": 0.0}


def test_decode_batch_one_is_memory_bound_at_weight_read_time():
    model = roofline(**BARE)
    shape = decode(1, ctx=512)
    parts = model.breakdown(shape)
    # Every weight but the input embedding table (128256 x 4096) is streamed once, at the measured 93% of HBM;
    # the KV cache at the H100's measured decode rate for 16-bit entries (1,452 G entries/s = 86.7% of HBM).
    expected = 2 * (8.030e9 - 128256 * 4096) / (H100_BW * 0.93)
    assert parts["linear"] + parts["lm_head"] == pytest.approx(expected, rel=0.03)
    assert parts["attention_decode"] == pytest.approx(513 * ENTRIES / 1452e9, rel=1e-9)
    assert model.step_time(shape) == pytest.approx(sum(parts.values()), rel=1e-12)


def test_kernel_latency_is_paid_per_gemm():
    cfg = scenario()
    spec = ModelSpec.from_config(cfg.model)
    with_lat, without = roofline(step_overhead_s=0.0), roofline(**BARE)
    extra = with_lat.linear_s(1) - without.linear_s(1)
    assert extra == pytest.approx(4 * spec.num_layers * 5.27e-6, rel=1e-9)  # 4 GEMMs a layer, H100's fitted latency


def test_large_prefill_is_compute_bound_and_linear_in_tokens():
    model = roofline(**BARE)
    t1, t2 = model.linear_s(8192), model.linear_s(16384)
    assert t2 / t1 == pytest.approx(2.0, rel=0.01)
    # ~2 * 6.98e9 FLOP per token (the layers' GEMMs) at the fitted 76.4% of 989 TFLOP/s; the smooth
    # maximum keeps a few percent of the weight-streaming time even this far past the knee
    assert t1 == pytest.approx(8192 * 2 * 6.98e9 / (989.4e12 * 0.764), rel=0.06)


def test_the_knee_is_slower_than_either_roof():
    """Near the compute/memory balance a GEMM reaches neither roof (Vidur's A100/H100 timings)."""
    smooth, plain = roofline(**BARE), roofline(overlap_exponent=float("inf"), **BARE)
    knee = 256
    assert smooth.linear_s(knee) > 1.3 * plain.linear_s(knee)
    assert smooth.linear_s(1) == pytest.approx(plain.linear_s(1), rel=0.01)
    assert smooth.linear_s(16384) == pytest.approx(plain.linear_s(16384), rel=0.05)


def test_one_long_prompt_costs_more_than_many_short_ones():
    model = roofline()
    assert model.step_time(prefill(1, 8192)) > model.step_time(prefill(16, 512))


FIELDS = ("prefill_seqs", "prefill_tokens", "prefill_attn_pairs", "prefill_ctx_tokens", "decode_seqs", "decode_ctx_tokens")


@pytest.mark.parametrize("tp", [1, 4])
@pytest.mark.parametrize("field", FIELDS)
def test_step_time_is_monotone_in_every_field(field, tp):
    model = roofline(model="llama-3.1-70b", tp=tp) if tp > 1 else roofline()
    rng = random.Random(7)
    grew = 0
    for _ in range(300):
        shape = StepShape(
            prefill_seqs=rng.randint(0, 8),
            prefill_tokens=rng.choice([0, 1, 16, 200, 2000, 8000]),
            prefill_attn_pairs=rng.choice([0.0, 1.0, 1e3, 1e5, 1e7]),
            prefill_ctx_tokens=rng.choice([0, 100, 10_000]),
            decode_seqs=rng.choice([0, 1, 32, 256]),
            decode_ctx_tokens=rng.choice([0, 1000, 100_000, 1_000_000]),
        )
        base = model.step_time(shape)
        assert base == pytest.approx(sum(model.breakdown(shape).values()), rel=1e-12)
        for step in (1, 10, 1000, 100_000):
            bigger = replace(shape, **{field: getattr(shape, field) + step})
            t = model.step_time(bigger)
            assert t >= base, (field, shape, step)
            grew += t > base
    assert grew > 0, f"{field} never changes the step time"


def test_tp2_halves_weight_reads_and_adds_measured_allreduces():
    one, two = roofline(tp=1, **BARE), roofline(tp=2, **BARE)
    shape = decode(1, ctx=512)
    p1, p2 = one.breakdown(shape), two.breakdown(shape)
    assert p1["allreduce"] == 0.0
    assert p2["linear"] == pytest.approx(p1["linear"] / 2, rel=0.01)
    # 2 all-reduces per layer of 4096 x 2 bytes: small, so the engines' custom kernel (8.7 us + bytes / 59.5 GB/s)
    assert p2["allreduce"] == pytest.approx(2 * 32 * (8.7e-6 + 8192 / 59.5e9), rel=1e-9)
    assert two.allreduce_source == "measured"
    # a large message goes by NCCL's ring (the DGX H100 fit: 16.6 us + bytes / 282.1 GB/s)
    assert two.allreduce_s(8192) == pytest.approx(2 * 32 * (16.6e-6 + 8192 * 8192 / 282.1e9), rel=1e-9)


def test_mi300x_tp8_decode_all_reduces_by_the_one_shot_kernel_and_large_ones_by_rccl():
    """vLLM on ROCm all-reduces under 8 MiB with its custom kernel at TP 8; the 8-GPU row prices it from
    the nearest 8x MI300X measurement (6.6 us + bytes / 62 GB/s) and RCCL's fit (14.7 us + bytes / 131.8 GB/s)
    takes over where it is faster (scenarios/hardware/mi300x.yaml)."""
    model = roofline(hardware="mi300x", model="llama-3.1-70b", tp=8, weight_dtype="fp8")
    hidden_bytes = 8192 * 2
    assert model.allreduce_s(1) == pytest.approx(2 * 80 * (6.6e-6 + hidden_bytes / 62e9), rel=1e-9)
    assert model.allreduce_s(1024) == pytest.approx(2 * 80 * (14.7e-6 + 1024 * hidden_bytes / 131.8e9), rel=1e-9)


def test_custom_allreduce_runs_only_on_the_vendors_the_engine_has_it_for():
    """latency.custom_allreduce lists the GPU vendors whose engine runs its one-shot kernel; elsewhere,
    and with [], every all-reduce goes by NCCL/RCCL. vLLM V0 (engine=vllm_v0, vllm_v05) had none on ROCm
    ("not supported on AMD GPUs", vllm/config.py until PR #14125, 2025), so those presets list nvidia only."""
    rccl = 2 * 80 * (14.7e-6 + 8192 * 2 / 131.8e9)
    assert roofline(hardware="mi300x", model="llama-3.1-70b", tp=8, custom_allreduce=["nvidia"]).allreduce_s(1) == pytest.approx(rccl, rel=1e-9)
    nccl = 2 * 32 * (16.6e-6 + 4096 * 2 / 282.1e9)  # the DGX H100 NCCL fit at 2 GPUs
    assert roofline(tp=2, custom_allreduce=[]).allreduce_s(1) == pytest.approx(nccl, rel=1e-9)
    assert roofline(tp=2, custom_allreduce=["nvidia"]).allreduce_s(1) < nccl
    for engine, amd in (("vllm_v0", False), ("vllm_v05", False), ("vllm_v1", True), ("sglang", True)):
        preset = OmegaConf.load(SCENARIOS / "engine" / f"{engine}.yaml")
        vendors = list(OmegaConf.select(preset, "latency.custom_allreduce", default=["nvidia", "amd"]))
        assert "nvidia" in vendors and ("amd" in vendors) == amd, engine
    # the run's latency description says so where the GPU has a custom path the engine does not take
    assert "no custom all-reduce" in roofline(hardware="mi300x", model="llama-3.1-70b", tp=8, custom_allreduce=["nvidia"]).describe()
    assert "all-reduce" not in roofline(hardware="mi300x", model="llama-3.1-70b", tp=8).describe()
    assert "all-reduce" not in roofline(custom_allreduce=[]).describe()  # TP 1: no all-reduce at all
    with pytest.raises(ConfigError, match=r"latency\.custom_allreduce must be a list of GPU vendors among nvidia, amd"):
        check_latency(scenario(custom_allreduce=["intel"]).latency)


def test_tp_communication_grows_with_tokens_and_shrinks_with_bandwidth():
    nvlink = roofline(tp=4)
    pcie = roofline(hardware="l40s", tp=4)  # no measured table: a ring over PCIe
    assert pcie.allreduce_source == "ring model"
    assert nvlink.allreduce_s(4096) > nvlink.allreduce_s(8)
    assert pcie.allreduce_s(4096) > nvlink.allreduce_s(4096) * 5


def test_fp8_weights_cut_decode_time_and_compute_at_their_own_efficiency():
    bf16, fp8 = roofline(**BARE), roofline(weight_dtype="fp8", **BARE)
    shape = decode(8)
    assert fp8.step_time(shape) < bf16.step_time(shape)
    assert fp8.linear_s(1) == pytest.approx(bf16.linear_s(1) / 2, rel=0.05)
    # prefill math at the FP8 peak (2x) times its own efficiency (Hopper's 0.719 vs BF16's 0.764)
    assert fp8.linear_s(16384) == pytest.approx(bf16.linear_s(16384) * 0.764 / (2 * 0.719), rel=0.06)  # the smooth max keeps some weight-streaming time


def test_quantised_checkpoints_keep_the_lm_head_in_16_bits():
    """FP8 (ModelOpt, llm-compressor) and weight-only INT8/INT4 (AWQ, GPTQ) checkpoints leave the
    LM head unquantised: it reads 16-bit weights at the BF16 rate whatever the layers' format."""
    bf16 = roofline(**BARE)
    for dtype in ("fp8", "int8", "int4"):
        assert roofline(weight_dtype=dtype, **BARE).lm_head_s(1) == pytest.approx(bf16.lm_head_s(1), rel=1e-12), dtype


def test_fp8_on_a100_names_the_key_and_the_gpu():
    with pytest.raises(ConfigError, match=r"model\.weight_dtype") as err:
        roofline(hardware="a100-80gb", weight_dtype="fp8")
    assert "a100-80gb" in str(err.value)


def test_int_weights_shrink_bytes_but_not_the_math_peak():
    bf16, int4 = roofline(**BARE), roofline(weight_dtype="int4", **BARE)
    assert int4.linear_s(16384) == pytest.approx(bf16.linear_s(16384), rel=0.03)
    assert int4.linear_s(1) < bf16.linear_s(1) / 3
    # weight-only INT8 works on a GPU without FP8
    assert roofline(hardware="a100-80gb", weight_dtype="int8").step_time(decode(1)) > 0


def test_fp32_weights_run_at_the_tf32_rate():
    bf16, fp32 = roofline(**BARE), roofline(weight_dtype="fp32", **BARE)
    assert fp32.linear_s(16384) == pytest.approx(2 * bf16.linear_s(16384), rel=0.03)
    assert fp32.linear_s(1) == pytest.approx(2 * bf16.linear_s(1), rel=0.01)


def test_faster_memory_means_faster_decode():
    shape = decode(1)
    times = [roofline(hardware=hw).step_time(shape) for hw in ("a100-40gb", "a100-80gb", "h100-sxm", "h200", "b200")]
    assert times == sorted(times, reverse=True) and len(set(times)) == len(times)


def test_efficiency_knobs_override_the_hardware_and_scale_their_regime():
    base = roofline(**BARE)
    slow_mem = roofline(memory_efficiency=0.93 / 2, **BARE)
    assert slow_mem.step_time(decode(1, ctx=16)) == pytest.approx(2 * base.step_time(decode(1, ctx=16)), rel=0.01)
    slow_math = roofline(compute_efficiency=0.764 / 2, **BARE)
    assert slow_math.linear_s(16384) == pytest.approx(2 * base.linear_s(16384), rel=0.03)


def test_each_gpu_family_uses_its_own_measured_factors():
    a100, h100 = roofline(hardware="a100-80gb"), roofline(hardware="h100-sxm")
    assert (a100.compute_efficiency, a100.memory_efficiency) == (0.745, 0.821)
    assert (h100.compute_efficiency, h100.memory_efficiency) == (0.764, 0.93)


def test_prefill_attention_prices_each_query_row_and_its_kernels_from_the_catalog():
    """t = layers x latency + 4 x layers x heads x head_dim x (pairs + row_pairs x rows) / (peak x efficiency),
    with the GPU's hardware.attention values (fitted to engines' measured kernels), latency.* overriding them."""
    r = roofline()
    cfg = scenario()
    att, spec = cfg.hardware.attention, ModelSpec.from_config(cfg.model, 1)
    assert att.source and (att.efficiency, att.row_pairs, att.latency_us) == (0.647, 530, 12.2)
    peak = cfg.hardware.bf16_tflops * 1e12
    for length in (64, 512, 4096):
        pairs = length * (length + 1) / 2
        work = 4 * spec.num_layers * spec.num_heads * spec.head_dim * (pairs + att.row_pairs * length)
        want = spec.num_layers * att.latency_us * 1e-6 + work / (peak * att.efficiency)
        assert r.attention_prefill_s(pairs, length, length) == pytest.approx(want, rel=1e-9)
    # the row cost is why short prompts run far below the peak: a fifth of it at 512 tokens, over half at 16k
    def share(length):
        flops = 4 * spec.num_layers * spec.num_heads * spec.head_dim * length * (length + 1) / 2
        return flops / (r.attention_prefill_s(length * (length + 1) / 2, length, length) * peak)
    assert share(512) < 0.25 < 0.5 < share(16384) < att.efficiency
    plain = roofline(attention_row_pairs=0.0, attention_latency_s=0.0, attention_efficiency=0.5)
    assert plain.attention_prefill_s(1000.0, 0, 100) == pytest.approx(4 * spec.num_layers * spec.num_heads * spec.head_dim * 1000 / (peak * 0.5))
    assert roofline(hardware="a100-80gb")._attn_row == 288 and roofline(hardware="l40s")._attn_row == 281


@pytest.mark.parametrize("path", HARDWARE_FILES, ids=lambda p: p.stem)
def test_every_gpu_names_where_its_attention_factors_come_from(path):
    hw = load(HardwareConfig, path)
    assert hw.attention.source and 0 < hw.attention.efficiency <= 1 and hw.attention.row_pairs >= 0 and hw.attention.latency_us >= 0


def test_decode_attention_grows_with_context():
    model = roofline()
    short, long = model.step_time(decode(64, ctx=256)), model.step_time(decode(64, ctx=8192))
    kv_read = 64 * (8192 - 256) * ENTRIES / 1452e9  # the H100's 16-bit decode rate
    assert long - short == pytest.approx(kv_read, rel=0.01)


def test_tiny_test_model_parameter_count_follows_from_its_widths():
    m = load(ModelConfig, SCENARIOS / "model" / "tiny-llama.yaml")
    spec = ModelSpec.from_config(m)
    h = spec.hidden_size
    counted = spec.layer_linear_params * spec.num_layers + spec.lm_head_params + spec.vocab_size * h + (2 * spec.num_layers + 1) * h
    assert counted == m.params_total


def kv_scenario(hardware: str, kv_dtype: str, engine: str = "generic", model: str = "llama-3.1-8b", tp: int = 1,
                **latency) -> RooflineLatency:
    cfg = scenario(hardware=hardware, model=model, weight_dtype="fp8", **latency)
    cfg.model.kv_dtype, cfg.engine_name = kv_dtype, engine
    return RooflineLatency(cfg, ModelSpec.from_config(cfg.model, tp))


BATCH, CTX = 256, 4096


def kv_read(model) -> float:
    """Decode attention's context-dependent time for BATCH sequences of CTX tokens."""
    return model.attention_decode_s(BATCH, BATCH * CTX) - model.attention_decode_s(BATCH, 0)


def test_fp8_kv_decode_attention_runs_at_the_gpus_entry_rate_where_converting_binds():
    """Decode attention reads KV at HBM speed, or at hardware.attention.decode_kv_rate_g entries a second
    where that is slower: FP8 entries on an H200 (2,649 G/s pooled = 55% of HBM, AIConfigurator's tables);
    16-bit entries at their own measured rate (2,023 G/s = 84% of HBM), and every GPU without one at HBM speed."""
    h200_fp8, h200_bf16 = kv_scenario("h200", "fp8"), kv_scenario("h200", "bf16")
    assert kv_read(h200_fp8) == pytest.approx(BATCH * CTX * ENTRIES / 2649e9, rel=1e-9)
    assert kv_read(h200_bf16) == pytest.approx(BATCH * CTX * ENTRIES / 2023e9, rel=1e-9)
    # the bound is per entry: FP8 halves the bytes but not the time
    assert 0.5 < kv_read(h200_fp8) / kv_read(h200_bf16) < 0.95
    # on an H100 the same entries take 2,649/2,344 of the H200's time (the same SMs convert them)
    assert kv_read(kv_scenario("h100-sxm", "fp8")) == pytest.approx(kv_read(h200_fp8) * 2649 / 2344, rel=1e-9)
    # no measured rate: HBM alone (no table for the A100 or H100 PCIe, nor for 16-bit entries on the MI300X)
    for hw in ("a100-80gb", "h100-pcie"):
        attention = scenario(hardware=hw).hardware.attention
        assert attention.decode_kv_rate_g is None and attention.decode_kv_rate_bf16_g is None, hw
    mi300x_bf16 = kv_scenario("mi300x", "bf16")
    assert kv_read(mi300x_bf16) == pytest.approx(BATCH * CTX * ENTRIES * 2 / (5300e9 * mi300x_bf16.memory_efficiency), rel=1e-9)
    # the MI300X's FP8 rate, 2,750 G/s = 52% of HBM, from AMD's published vLLM latencies (benchmarks/amd_v0_latency.py)
    assert kv_read(kv_scenario("mi300x", "fp8")) == pytest.approx(BATCH * CTX * ENTRIES / 2750e9, rel=1e-9)
    # the L40S converts FP8 entries at 697 G/s = 81% of its HBM, below the GEMMs' 91.7%
    assert kv_read(kv_scenario("l40s", "fp8")) == pytest.approx(BATCH * CTX * ENTRIES / 697e9, rel=1e-9)
    # an engine preset reads its own kernels' rate (on an H200 TensorRT-LLM's 3,607 G/s, vLLM's 2,669 for
    # every vllm_* preset, SGLang's 2,235); an engine without one the pooled rate
    for engine, rate in (("trtllm", 3607e9), ("vllm_v1", 2669e9), ("vllm_v05", 2669e9), ("sglang", 2235e9), ("generic", 2649e9)):
        assert kv_read(kv_scenario("h200", "fp8", engine)) == pytest.approx(BATCH * CTX * ENTRIES / rate, rel=1e-9), engine
    assert "KV read at 3,607 G entries/s" in kv_scenario("h200", "fp8", "trtllm").describe()
    assert "KV read at 2,023 G entries/s" in h200_bf16.describe()
    assert "KV read" not in mi300x_bf16.describe() and "KV read at 2,750 G entries/s" in kv_scenario("mi300x", "fp8").describe()


def test_16_bit_caches_read_at_a_decode_rate_when_the_gpu_has_one():
    """hardware.attention.decode_kv_rate_bf16_g (and per engine decode_kv_rate_bf16_by_engine_g) bound
    BF16 and FP16 caches as the FP8 fields bound FP8 ones: the catalog carries AIConfigurator's measured
    rates where its tables exist (H100 SXM, H200, B200, L40S), none elsewhere (HBM at memory_efficiency)."""
    for hw, pooled, trtllm in (("h100-sxm", 1452, 1403), ("h200", 2023, 1872), ("b200", 3245, 3167), ("l40s", 358, 334)):
        attention = scenario(hardware=hw).hardware.attention
        assert attention.decode_kv_rate_bf16_g == pooled and attention.decode_kv_rate_bf16_by_engine_g["trtllm"] == trtllm, hw
        assert pooled * 2e9 < float(scenario(hardware=hw).hardware.memory_bw_gbps) * 1e9 * 0.93, hw  # below HBM x efficiency
    cfg = scenario(hardware="h200", weight_dtype="fp8")
    cfg.hardware.attention.decode_kv_rate_bf16_by_engine_g = {"trtllm": 1872.0, "sglang": None}
    for kv, engine, rate in (("bf16", "generic", 2023e9), ("fp16", "generic", 2023e9), ("bf16", "trtllm", 1872e9),
                             ("bf16", "sglang", None), ("fp8", "generic", 2649e9), ("int8", "trtllm", None)):
        cfg.model.kv_dtype, cfg.engine_name = kv, engine
        model = RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))
        width = {"bf16": 2, "fp16": 2, "fp8": 1, "int8": 1}[kv]
        expected = BATCH * CTX * ENTRIES / rate if rate else BATCH * CTX * ENTRIES * width / (4.8e12 * 0.93)
        assert kv_read(model) == pytest.approx(expected, rel=1e-9), (kv, engine)
    cfg.model.kv_dtype, cfg.engine_name = "bf16", "generic"
    assert "KV read at 2,023 G entries/s" in RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1)).describe()
    cfg.hardware.attention.decode_kv_rate_bf16_by_engine_g = {"trt_llm": 100.0}  # a typo is refused, not ignored
    with pytest.raises(ConfigError, match=r"decode_kv_rate_bf16_by_engine_g has no engine family 'trt_llm'"):
        RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))
    cfg.hardware.attention.decode_kv_rate_bf16_by_engine_g = {}
    cfg.hardware.attention.decode_kv_rate_bf16_g = 0  # checked even when the cache is FP8
    cfg.model.kv_dtype = "fp8"
    with pytest.raises(ConfigError, match=r"hardware\.attention\.decode_kv_rate_bf16_g must be a positive number.*leave it null"):
        RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))


def test_the_catalog_rates_cover_fp8_and_16_bit_grouped_query_caches_only():
    """The rates were measured on FP8 and 16-bit caches of grouped-query kernels: INT8/INT4 caches and
    latent attention (MLA) read at HBM speed unless latency.attention_decode_kv_rate_g says otherwise."""
    for kv in ("int8", "int4"):
        model = kv_scenario("h200", kv, "trtllm")
        assert kv_read(model) == pytest.approx(BATCH * CTX * ENTRIES * {"int8": 1, "int4": 0.5}[kv] / (4.8e12 * 0.93), rel=1e-9)
    assert kv_read(kv_scenario("h200", "bf16", "trtllm")) == pytest.approx(BATCH * CTX * ENTRIES / 1872e9, rel=1e-9)
    mla = kv_scenario("h200", "fp8", "sglang", model="deepseek-v3", tp=8)
    assert mla.kv_rate is None and mla._kv_tok == pytest.approx(mla.spec.kv_bytes_per_token / 8 / (4.8e12 * 0.93), rel=1e-9)
    # the override applies to any model and width; inf turns every bound off
    forced = kv_scenario("h200", "fp8", "sglang", model="deepseek-v3", tp=8, attention_decode_kv_rate_g=500.0)
    assert forced._kv_tok == pytest.approx(mla.spec.kv_bytes_per_token / mla.spec.kv_bytes_per_element / 8 / 500e9, rel=1e-9)
    assert kv_read(kv_scenario("h200", "int4", attention_decode_kv_rate_g=100.0)) == pytest.approx(BATCH * CTX * ENTRIES / 100e9)
    unbound_bf16 = kv_scenario("h200", "bf16", attention_decode_kv_rate_g=math.inf)
    assert kv_read(unbound_bf16) == pytest.approx(BATCH * CTX * ENTRIES * 2 / (4.8e12 * 0.93), rel=1e-9)
    assert kv_read(kv_scenario("h200", "fp8", "trtllm", attention_decode_kv_rate_g=math.inf)) == pytest.approx(kv_read(unbound_bf16) / 2)
    assert kv_read(kv_scenario("l40s", "fp8", attention_decode_kv_rate_g=100.0)) == pytest.approx(BATCH * CTX * ENTRIES / 100e9)


def test_an_engine_rate_set_to_null_is_no_bound_for_that_engine():
    cfg = scenario(hardware="h200", weight_dtype="fp8")
    cfg.model.kv_dtype, cfg.engine_name = "fp8", "trtllm"
    cfg.hardware.attention.decode_kv_rate_by_engine_g["trtllm"] = None
    free = RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))
    assert free.kv_rate is None and kv_read(free) == pytest.approx(BATCH * CTX * ENTRIES / (4.8e12 * 0.93), rel=1e-9)
    cfg.hardware.attention.decode_kv_rate_by_engine_g["trt_llm"] = 100.0  # a typo is refused, not ignored
    with pytest.raises(ConfigError, match=r"decode_kv_rate_by_engine_g has no engine family 'trt_llm'; choose among: sglang, trtllm, vllm"):
        RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))


def test_the_entry_rate_also_bounds_prefill_reads_and_the_fast_decode_path():
    model = kv_scenario("h200", "fp8")
    # the fast paths price the same steps as step_time
    assert model.decode_step_time(128, 128 * 2048) == model.step_time(decode(128, 2048))
    assert model.decode_times(128, 128 * 2048, 60) == [model.step_time(StepShape(decode_seqs=128, decode_ctx_tokens=128 * (2048 + i)))
                                                      for i in range(60)]
    # a long context read by a one-token chunk (reading, not math, bound) is priced at the entry rate too
    fp8 = model.attention_prefill_s(0.0, 100_000, 1) - model._prefill_attn_fixed
    bf16 = kv_scenario("h200", "bf16").attention_prefill_s(0.0, 100_000, 1) - model._prefill_attn_fixed
    assert fp8 == pytest.approx(100_000 * 65536 / 2649e9, rel=1e-9)
    assert bf16 == pytest.approx(100_000 * 65536 / 2023e9, rel=1e-9)


@pytest.mark.parametrize("value", [0, -3.0, float("nan"), "fast"])
def test_a_bad_entry_rate_names_its_key_even_when_not_in_use(value):
    cfg = scenario(hardware="h200")  # a BF16 cache: no rate is used, the catalog is still checked
    cfg.hardware.attention.decode_kv_rate_g = value
    with pytest.raises(ConfigError, match=r"hardware\.attention\.decode_kv_rate_g must be a positive number.*leave it null"):
        RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))
    cfg = scenario(hardware="h200")
    cfg.hardware.attention.decode_kv_rate_by_engine_g["sglang"] = value
    with pytest.raises(ConfigError, match=r"decode_kv_rate_by_engine_g\.sglang must be a positive number.*set it to null"):
        RooflineLatency(cfg, ModelSpec.from_config(cfg.model, 1))
