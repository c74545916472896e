"""Models beyond dense Llama: mixtures of experts, latent attention, sliding windows, config.json.

Derived quantities are pinned to the figures their makers publish (each
source is in the catalog file); direction tests check that the step-time
model responds to the architecture the way the physics says.
"""

from __future__ import annotations

import json

import pytest

import simulator
from simulator.config.catalog import load_model
from simulator.specs import ModelSpec, memory_budget
from tests.conftest import servesim_cli


def spec(name: str, tp: int = 1, **changes) -> ModelSpec:
    from dataclasses import replace

    return ModelSpec.from_config(replace(load_model(name), **changes), tp)


# --------------------------------------------------------------------------- published figures


@pytest.mark.parametrize(
    "name,total,active,active_counts_input_embedding",
    [
        ("deepseek-v3", 671e9, 36.6e9, False),  # README_WEIGHTS: 36.6B activated incl. the 0.9B output head
        ("qwen3-30b-a3b", 30.5e9, 3.3e9, True),  # card: 30.5B in total, 3.3B activated
        ("qwen3-235b-a22b", 235e9, 22e9, True),  # card: 235B / 22B
        ("mixtral-8x7b", 46.7e9, 12.9e9, True),  # Mistral AI: 46.7B total, 12.9B per token
        ("gpt-oss-120b", 116.8e9, 5.1e9, False),  # gpt-oss model card: 116.8B total, 5.1B active
        ("llama-3.3-70b", 70.55e9, 70.55e9, True),
    ],
)
def test_parameter_counts_match_the_published_ones(name, total, active, active_counts_input_embedding):
    """Total within 0.5% of the published count, active within 2% (the publishers round to
    0.1B; some count the input embedding as active, some do not, as noted per row)."""
    s = spec(name)
    assert s.params_derived == pytest.approx(total, rel=0.005)
    mine = s.params_active - (0 if active_counts_input_embedding else s.lm_head_params)
    assert mine == pytest.approx(active, rel=0.02)


def test_deepseek_v3_mla_cache_is_the_latent_and_every_tp_rank_holds_it():
    """(kv_lora_rank 512 + rope 64) x 61 layers x 2 B = 70,272 B per token (DeepSeek-V2's MLA
    cache formula; vLLM caches one 576-wide head per layer); not split by TP."""
    assert spec("deepseek-v3", kv_dtype="bf16").kv_bytes_per_token_per_gpu == 70_272
    assert spec("deepseek-v3", tp=8, kv_dtype="bf16").kv_bytes_per_token_per_gpu == 70_272
    assert spec("deepseek-v3", kv_dtype="fp8").kv_bytes_per_token_per_gpu == 35_136
    # a GQA cache is split by TP: Llama-3.3-70B's 320 KiB per token is 40 KiB per GPU at TP 8
    assert spec("llama-3.3-70b", tp=8).kv_bytes_per_token_per_gpu == 327_680 / 8


def test_moe_layer_counts_follow_the_config_rules():
    assert spec("deepseek-v3").moe_layers == 58  # first_k_dense_replace 3 of 61
    assert spec("mixtral-8x7b").moe_layers == 32
    assert spec("mixtral-8x7b", moe_layer_step=2).moe_layers == 16  # Llama 4 Maverick-style interleave
    assert spec("llama-3.3-70b").moe_layers == 0


# --------------------------------------------------------------------------- direction tests


def _roofline(name: str, tp: int = 1, **changes):
    from dataclasses import replace

    from simulator.latency.roofline import RooflineLatency

    cfg = simulator.load_config([f"model={name}", f"cluster.tp={tp}", "hardware=h200", "workload.prompt_tokens.max=2000"])
    cfg = replace(cfg, model=replace(cfg.model, **changes))
    return RooflineLatency(cfg, ModelSpec.from_config(cfg.model, tp)), cfg


def test_experts_touched_grows_from_k_to_all():
    s = spec("mixtral-8x7b")
    assert s.experts_touched(1) == pytest.approx(2)
    assert s.experts_touched(4) == pytest.approx(8 * (1 - 0.75**4))  # E (1 - (1 - k/E)^B)
    assert s.experts_touched(256) == pytest.approx(8, rel=1e-6)
    skewed = spec("mixtral-8x7b", expert_imbalance=2.0)
    assert skewed.experts_touched(4) < s.experts_touched(4)


def test_moe_decode_reads_the_active_weights_at_batch_one_and_all_experts_at_large_batches():
    """Mixtral on 2 H200s: batch-1 GEMM time sits near the active weights' read time (12.9B
    params), batch 64 near all of them (46.7B: it touches all 8 experts of every layer)."""
    model, cfg = _roofline("mixtral-8x7b", tp=2)
    s = model.spec
    bw = float(cfg.hardware.memory_bw_gbps) * 1e9 * model.memory_efficiency
    per_gpu = lambda params: params * s.weight_bytes_per_param / 2 / bw  # noqa: E731
    embed = s.lm_head_params  # the LM head is priced apart (lm_head_s); the input table is not read
    one, many = model.linear_s(1), model.linear_s(64)
    assert per_gpu(s.params_active - 2 * embed) <= one <= 1.3 * per_gpu(s.params_active - 2 * embed)
    assert per_gpu(s.params_total - 2 * embed) <= many <= 1.3 * per_gpu(s.params_total - 2 * embed)
    dense, _ = _roofline("mixtral-8x7b", tp=2, num_experts=0, experts_per_token=0)  # one 14336-wide MLP
    assert one > dense.linear_s(1)  # two experts read per layer, not one


def test_a_sliding_window_caps_kv_growth_and_attention():
    """gpt-oss-120b's 18 sliding layers hold at most 128 tokens each: KV that grows per token is
    the 18 full layers', the windows are set aside per sequence, and long-context decode
    attention costs about half of the same model without the window."""
    windowed, plain = spec("gpt-oss-120b"), spec("gpt-oss-120b", sliding_window=None)
    assert windowed.kv_bytes_per_token == plain.kv_bytes_per_token / 2
    hw = simulator.load_config(["hardware=h200", "model=gpt-oss-120b", "workload.prompt_tokens.max=2000"])
    b_windowed = memory_budget(hw.hardware, hw.memory, windowed, max_seqs=256)
    b_plain = memory_budget(hw.hardware, hw.memory, plain, max_seqs=256)
    assert b_windowed.kv_tokens > 1.9 * b_plain.kv_tokens  # twice the tokens, less the windows' pool
    with_w, _ = _roofline("gpt-oss-120b", tp=2)
    without, _ = _roofline("gpt-oss-120b", tp=2, sliding_window=None)
    long_ctx = with_w.attention_decode_s(64, 64 * 8000)
    assert long_ctx == pytest.approx(without.attention_decode_s(64, 64 * 8000) / 2, rel=0.1)  # kernel latency aside
    # below the window nothing changes
    assert with_w.attention_decode_s(64, 64 * 100) == pytest.approx(without.attention_decode_s(64, 64 * 100))


def test_mla_decode_attention_reads_the_latent_not_full_heads():
    ds = spec("deepseek-v3", kv_dtype="bf16")
    full = 2 * ds.num_heads * ds.head_dim * ds.num_layers * ds.kv_bytes_per_element  # 128 heads of K and V
    assert ds.kv_bytes_per_token == pytest.approx(full / 85.3, rel=0.01)  # 576 latent values vs 2 x 128 x 192


# --------------------------------------------------------------------------- config.json


MIXTRAL = {
    "_name_or_path": "mistralai/Mixtral-8x7B-v0.1", "model_type": "mixtral", "hidden_size": 4096,
    "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
    "num_local_experts": 8, "num_experts_per_tok": 2, "vocab_size": 32000, "max_position_embeddings": 32768,
    "tie_word_embeddings": False, "sliding_window": None, "torch_dtype": "bfloat16", "rope_theta": 1e6,
}
DEEPSEEK = {
    "model_type": "deepseek_v3", "num_hidden_layers": 61, "hidden_size": 7168, "num_attention_heads": 128,
    "num_key_value_heads": 128, "intermediate_size": 18432, "moe_intermediate_size": 2048, "n_routed_experts": 256,
    "n_shared_experts": 1, "num_experts_per_tok": 8, "first_k_dense_replace": 3, "moe_layer_freq": 1,
    "kv_lora_rank": 512, "q_lora_rank": 1536, "qk_rope_head_dim": 64, "qk_nope_head_dim": 128, "v_head_dim": 128,
    "vocab_size": 129280, "max_position_embeddings": 163840, "tie_word_embeddings": False,
}
QWEN3_MOE = {
    "model_type": "qwen3_moe", "num_hidden_layers": 48, "hidden_size": 2048, "num_attention_heads": 32,
    "num_key_value_heads": 4, "head_dim": 128, "intermediate_size": 6144, "moe_intermediate_size": 768,
    "num_experts": 128, "num_experts_per_tok": 8, "decoder_sparse_step": 1, "mlp_only_layers": [],
    "vocab_size": 151936, "max_position_embeddings": 40960, "sliding_window": None, "use_sliding_window": False,
    "tie_word_embeddings": False,
}
GPT_OSS = {
    "model_type": "gpt_oss", "num_hidden_layers": 36, "hidden_size": 2880, "num_attention_heads": 64,
    "num_key_value_heads": 8, "head_dim": 64, "intermediate_size": 2880, "num_local_experts": 128,
    "num_experts_per_tok": 4, "experts_per_token": 4, "sliding_window": 128,
    "layer_types": ["sliding_attention", "full_attention"] * 18, "vocab_size": 201088,
    "max_position_embeddings": 131072, "attention_bias": True, "tie_word_embeddings": False,
}
QWEN2 = {  # its sliding_window is inert without use_sliding_window
    "model_type": "qwen2", "num_hidden_layers": 28, "hidden_size": 3584, "num_attention_heads": 28,
    "num_key_value_heads": 4, "intermediate_size": 18944, "vocab_size": 152064, "max_position_embeddings": 32768,
    "sliding_window": 131072, "use_sliding_window": False, "tie_word_embeddings": False,
}
LLAMA4 = {"model_type": "llama4", "text_config": {
    "model_type": "llama4_text", "num_hidden_layers": 48, "hidden_size": 5120, "num_attention_heads": 40,
    "num_key_value_heads": 8, "head_dim": 128, "intermediate_size": 8192, "intermediate_size_mlp": 16384,
    "num_local_experts": 16, "num_experts_per_tok": 1, "interleave_moe_layer_step": 1, "vocab_size": 202048,
    "max_position_embeddings": 262144, "attention_chunk_size": 8192, "no_rope_layers": [1, 1, 1, 0] * 12}}


def _write(tmp_path, hf: dict, folder: str = "m"):
    d = tmp_path / folder
    d.mkdir()
    (d / "config.json").write_text(json.dumps(hf))
    return d


@pytest.mark.parametrize(
    "hf,catalog",
    [(MIXTRAL, "mixtral-8x7b"), (DEEPSEEK, "deepseek-v3"), (QWEN3_MOE, "qwen3-30b-a3b"), (GPT_OSS, "gpt-oss-120b")],
)
def test_a_config_json_gives_the_catalog_shape(tmp_path, hf, catalog):
    cfg = simulator.load_config([f"model.hf_config={_write(tmp_path, hf)}", "hardware=h200", "cluster.tp=8",
                                 "model.weight_dtype=fp8", "workload.prompt_tokens.max=2000"])
    mine, theirs = ModelSpec.from_config(cfg.model, 8), spec(catalog, tp=8, weight_dtype="fp8")
    assert mine.params_derived == theirs.params_derived
    assert mine.params_active == pytest.approx(theirs.params_active, rel=1e-4)  # catalog totals are published, rounded
    assert mine.kv_bytes_per_token == theirs.kv_bytes_per_token
    assert (mine.moe_layers, mine.sliding_layers, mine.sliding_window) == (theirs.moe_layers, theirs.sliding_layers, theirs.sliding_window)
    assert cfg.model.source.startswith("model.hf_config=")


def test_qwen2_window_is_inert_and_llama4_reads_its_text_config(tmp_path):
    q = simulator.load_config([f"model.hf_config={_write(tmp_path, QWEN2, 'q')}", "workload.prompt_tokens.max=2000"])
    assert q.model.sliding_window is None and q.model.qkv_bias and q.model.name == "q"
    llama4 = ModelSpec.from_config(
        simulator.load_config([f"model.hf_config={_write(tmp_path, LLAMA4, 'l4')}", "cluster.tp=8",
                               "workload.prompt_tokens.max=2000"]).model, 8)
    assert llama4.moe_layers == 48 and llama4.shared_experts == 1 and llama4.sliding_layers == 36
    assert llama4.params_derived == pytest.approx(107.8e9, rel=0.01)  # Meta: 109B with the vision tower


@pytest.mark.parametrize(
    "hf,match",
    [
        ({**MIXTRAL, "model_type": "falcon"}, r"model_type 'falcon' is not one servesim reads; choose a config of: .*mixtral"),
        ({k: v for k, v in MIXTRAL.items() if k != "num_hidden_layers"}, r"has no num_hidden_layers .* model\.num_layers"),
        ({**MIXTRAL, "num_experts_per_tok": 9}, r"model\.experts_per_token must lie in \[1, model\.num_experts=8\]"),
    ],
)
def test_config_json_mistakes_are_one_sentence(tmp_path, hf, match):
    with pytest.raises(simulator.ConfigError, match=match):
        simulator.load_config([f"model.hf_config={_write(tmp_path, hf)}", "workload.prompt_tokens.max=2000"])


def test_a_missing_or_broken_config_json_is_one_sentence(tmp_path):
    with pytest.raises(simulator.ConfigError, match=r"no such file"):
        simulator.load_config([f"model.hf_config={tmp_path / 'nope'}"])
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(simulator.ConfigError, match=r"not a JSON config"):
        simulator.load_config([f"model.hf_config={tmp_path / 'bad.json'}"])


def test_servesim_runs_a_mixtral_config_json_on_two_h100s(tmp_path):
    path = _write(tmp_path, MIXTRAL) / "config.json"
    out = servesim_cli(f"model.hf_config={path}", "hardware=h100-sxm", "cluster.tp=2", "workload.num_requests=200",
                       cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert "Mixtral-8x7B-v0.1 · 1x h100-sxm TP2" in out.stdout and "200 completed" in out.stdout


@pytest.mark.parametrize("name", ["deepseek-v3", "qwen3-30b-a3b", "qwen3-235b-a22b", "mixtral-8x7b", "gpt-oss-120b"])
def test_catalog_moe_models_run(name):
    overrides = {"deepseek-v3": ["hardware=h200", "cluster.tp=8"], "qwen3-235b-a22b": ["hardware=h200", "cluster.tp=8"],
                 "gpt-oss-120b": ["cluster.tp=2"], "mixtral-8x7b": ["cluster.tp=2"]}.get(name, [])
    r = simulator.run([f"model={name}", *overrides, "workload.num_requests=100", "output.console=false", "output.charts=false"])
    assert r.summary["requests"]["completed"] == 100


def test_servesim_model_show_prints_the_derived_figures(capsys, tmp_path):
    from simulator.modelcli import main

    assert main(["show", "deepseek-v3", "--tp", "8"]) == 0
    out = capsys.readouterr().out
    for text in ("58 MoE: 256 experts, 8 per token, 1 shared", "MLA (latent 512 + rope 64)", "671.03B total",
                 "bf16 70,272 B", "fp8 672.9 GB"):  # the embedding table and LM head in BF16
        assert text in out, text
    assert main(["show", str(_write(tmp_path, MIXTRAL))]) == 0
    assert "46.70B total, 12.88B active" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["show", "no-such-model"])
    assert exc.value.code == 2 and "is not a known model" in capsys.readouterr().err


# --------------------------------------------------------------------------- expert parallelism


def test_expert_parallelism_is_checked():
    for overrides, match in (
        (["cluster.ep=2"], r"cluster\.ep=2 needs a mixture-of-experts model; model=llama-3\.1-8b is dense"),
        (["model=mixtral-8x7b", "cluster.tp=4", "cluster.ep=2"], r"cluster\.ep=2 must be a multiple of cluster\.tp=4"),
        (["model=mixtral-8x7b", "cluster.tp=2", "cluster.ep=4"], r"cluster\.replicas must be a multiple of 2 \(got 1\)"),
        (["model=qwen3-30b-a3b", "cluster.tp=2", "cluster.ep=2", "cluster=disaggregated"], r"cluster\.ep"),
    ):
        with pytest.raises(simulator.ConfigError, match=match):
            simulator.load_config([*overrides, "workload.prompt_tokens.max=2000"])


def test_expert_parallelism_moves_the_busiest_gpu_not_the_memory():
    """EP over the replica's 8 GPUs keeps the weights per GPU (tp-th of everything either way) and
    the same all-reduce. Under uniform routing its whole-expert GEMMs are a little cheaper than
    TP's slices (each GPU reads a token's activations once, not once per slice); a routing skew
    (expert_imbalance 2) slows EP's busiest GPU, where TP shares every expert's load."""
    tp, _ = _roofline("qwen3-235b-a22b", tp=8)
    ep, cfg = _roofline("qwen3-235b-a22b", tp=8)
    assert tp.ep == 1
    from dataclasses import replace

    from simulator.latency.roofline import RooflineLatency

    cfg = replace(cfg, cluster=replace(cfg.cluster, ep=8))
    ep = RooflineLatency(cfg, tp.spec)
    skewed_cfg = replace(cfg, model=replace(cfg.model, expert_imbalance=2.0))
    skewed = RooflineLatency(skewed_cfg, ModelSpec.from_config(skewed_cfg.model, 8))
    assert 0.7 * tp.moe_s(4096) < ep.moe_s(4096) <= tp.moe_s(4096)
    assert skewed.moe_s(4096) > 1.5 * ep.moe_s(4096)
    assert ep.allreduce_s(4096) == tp.allreduce_s(4096)


def test_expert_parallelism_across_replicas_cuts_expert_memory_and_adds_all_to_all():
    """DeepSeek-V3 on H200s with data-parallel attention (tp 1): alone it does not fit one GPU;
    with its experts spread over 8 replicas (ep 8) each GPU holds the attention, the dense layers
    and an eighth of the routed experts, and every MoE layer pays a dispatch and a combine."""
    one = spec("deepseek-v3")
    spread = ModelSpec.from_config(load_model("deepseek-v3"), 1, 8)
    routed = one.moe_layers * one.num_experts * one.expert_params * one.weight_bytes_per_param
    assert spread.weight_bytes == pytest.approx(one.weight_bytes - routed * 7 / 8)
    assert spread.weight_bytes < 141e9 * 0.9 < one.weight_bytes
    r = simulator.run(["model=deepseek-v3", "hardware=h200", "cluster.tp=1", "cluster.ep=8", "cluster.replicas=8",
                       "workload.num_requests=100", "output.console=false", "output.charts=false"])
    assert r.summary["requests"]["completed"] == 100
    from dataclasses import replace

    from simulator.latency.base import StepShape
    from simulator.latency.roofline import RooflineLatency

    cfg = simulator.load_config(["model=deepseek-v3", "hardware=h200", "cluster.tp=1", "cluster.ep=8", "cluster.replicas=8",
                                 "workload.prompt_tokens.max=2000"])
    ep = RooflineLatency(cfg, spread)
    assert ep.alltoall_s(64) > 0 and ep.alltoall_s(128) > ep.alltoall_s(64)
    assert "alltoall" in ep.breakdown(StepShape(decode_seqs=64, decode_ctx_tokens=64000))
    in_node = RooflineLatency(replace(cfg, cluster=replace(cfg.cluster, ep=1)), one)
    assert in_node.alltoall_s(64) == 0


def test_every_catalog_count_agrees_with_its_derived_one():
    """Where a catalog file gives params_total, the widths reproduce it within 1% (biases and norms
    are the difference); where it does not, the derived count is used."""
    from simulator.config.catalog import names

    for name in names("model"):
        model = load_model(name)
        derived = ModelSpec.from_config(model).params_derived
        if model.params_total:
            assert derived == pytest.approx(model.params_total, rel=0.01), name
        else:
            assert ModelSpec.from_config(model).params_total == derived


def test_a_plain_mlp_has_two_matrices():
    gated, plain = spec("llama-3.1-8b"), spec("llama-3.1-8b", mlp="plain")
    assert gated.mlp_params(1000) == 3 * 4096 * 1000 and plain.mlp_params(1000) == 2 * 4096 * 1000
    assert plain.params_derived < gated.params_derived
    assert plain.params_total == plain.params_derived  # the catalog's published count no longer applies
    assert spec("llama-3.1-8b", num_layers=16).weight_bytes < 0.6 * gated.weight_bytes
    with pytest.raises(simulator.ConfigError, match=r"model\.mlp='swiglu' is not known; choose gated .* or plain"):
        simulator.load_config(["model.mlp=swiglu"])


def test_a_config_whose_heads_do_not_divide_is_refused(tmp_path):
    from simulator.errors import ConfigError

    bad = {"model_type": "llama", "num_hidden_layers": 4, "hidden_size": 2048, "num_attention_heads": 30,
           "num_key_value_heads": 4, "intermediate_size": 5632, "vocab_size": 32000, "max_position_embeddings": 4096}  # fmt: skip
    path = tmp_path / "config.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match="hidden_size 2048 is not a multiple of num_attention_heads 30"):
        simulator.load_config([f"model.hf_config={path}"])
    path.write_text(json.dumps({**bad, "num_attention_heads": 32, "num_key_value_heads": 6}))
    with pytest.raises(ConfigError, match="num_attention_heads=32 must be a multiple of num_kv_heads=6"):
        simulator.load_config([f"model.hf_config={path}"])


def test_quantised_checkpoints_hold_the_embedding_table_and_the_lm_head_in_16_bits():
    """Quantised checkpoints (FP8: ModelOpt, llm-compressor; INT4: AWQ, GPTQ) quantise the decoder
    layers' linear layers only: the input embedding and the LM head stay in 16 bits, which on a 70B
    FP8 model is 2.1 GB more than one byte a parameter, out of the KV cache."""
    bf16, fp8, int4 = (spec("llama-3.1-70b", weight_dtype=d) for d in ("bf16", "fp8", "int4"))
    table = bf16.lm_head_params  # vocab x hidden: the embedding and the (untied) LM head each
    body = bf16.params_total - 2 * table
    assert bf16.weight_bytes == pytest.approx(2 * bf16.params_total)
    assert fp8.weight_bytes == pytest.approx(body + 2 * table + 2 * table)
    assert fp8.weight_bytes - fp8.params_total == pytest.approx(2 * table) and 2 * table > 2.0e9
    assert int4.weight_bytes == pytest.approx(0.5 * body + 2 * table + 2 * table)
    assert fp8.weight_bytes_read_per_step == pytest.approx(body + 2 * table)  # all but the embedding table
    cfg = simulator.load_config(["hardware=h100-sxm"])
    budget = memory_budget(cfg.hardware, cfg.memory, fp8)
    assert budget.kv == pytest.approx(budget.usable - budget.activation_reserve - fp8.params_total - 2 * table)
    for dtype, width in (("fp8", 1.0), ("int4", 0.5)):  # a tied table is held once, in 16 bits
        tied = spec("llama-3.2-1b", weight_dtype=dtype)
        assert tied.tie_word_embeddings
        assert tied.weight_bytes == pytest.approx(width * (tied.params_total - tied.lm_head_params) + 2 * tied.lm_head_params)


def test_an_mtp_module_shares_the_targets_embedding_and_head():
    """DeepSeek-V3's MTP module is one decoder block that shares the embedding and output head with
    the main model (technical report, section 2.2): memory holds its block only."""
    from simulator.latency.speculative import proposer_spec

    cfg = simulator.load_config(["model=deepseek-v3", "model.weight_dtype=fp8", "cluster.tp=8", "hardware=h200",
                                 "scheduler.speculative.method=mtp"])  # fmt: skip
    target = ModelSpec.from_config(cfg.model, 8)
    mtp = proposer_spec(cfg, target)
    assert mtp is not None and mtp.shares_tables
    block = mtp.params_total - 2 * mtp.lm_head_params
    assert mtp.weight_bytes == pytest.approx(block * mtp.weight_bytes_per_param)
    assert mtp.weight_bytes < 0.02 * target.weight_bytes
