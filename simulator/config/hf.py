"""A model's shape from its Hugging Face ``config.json`` (``model.hf_config=PATH``).

Each architecture family (``model_type``) is a :class:`HFFamily` registered in
:data:`HF_FAMILIES`: it maps the file's keys to servesim's ``model.*`` fields
(layers, widths, heads, experts, latent attention, sliding windows).
Multimodal configs that nest the language model under ``text_config``
(Llama 4) are read from there. Unknown keys are ignored; a missing key that
the shape needs is one sentence naming it.

The dtype knobs (``model.weight_dtype``, ``model.kv_dtype``) stay the
scenario's: a checkpoint's ``torch_dtype`` says how it was saved, not how it
is served.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from simulator.errors import ConfigError
from simulator.registry import Component, Registry


class HFFamily(Component):
    """One ``model_type``: how its config.json spells servesim's model fields."""

    #: servesim field -> the config.json keys that may hold it, first found wins
    keys: ClassVar[dict[str, tuple[str, ...]]] = {}
    #: fields fixed by the architecture, not by the file
    fixed: ClassVar[dict[str, Any]] = {}

    @classmethod
    def fields(cls, hf: dict, path: str) -> dict[str, Any]:
        keys = {**COMMON, **cls.keys}
        out: dict[str, Any] = dict(cls.fixed)
        for field, names in keys.items():
            value = next((hf[n] for n in names if hf.get(n) is not None), None)
            if value is not None:
                out[field] = value
        for field in REQUIRED:
            if field not in out:
                raise ConfigError(
                    f"model.hf_config={path}: {hf.get('model_type')} config has no {' or '.join(keys[field])}, "
                    f"which servesim needs for model.{field}."
                )
        out.setdefault("num_kv_heads", out["num_attention_heads"])
        if "head_dim" not in out and out["hidden_size"] % out["num_attention_heads"]:
            raise ConfigError(
                f"model.hf_config={path}: hidden_size {out['hidden_size']} is not a multiple of num_attention_heads "
                f"{out['num_attention_heads']}, and the config gives no head_dim."
            )
        out.setdefault("head_dim", out["hidden_size"] // out["num_attention_heads"])
        return cls.adjust(hf, out)

    @classmethod
    def adjust(cls, hf: dict, out: dict[str, Any]) -> dict[str, Any]:
        """Family-specific fields that are not a plain key (layer lists, patterns)."""
        return out


HF_FAMILIES: Registry[type[HFFamily]] = Registry("model_type", "Hugging Face model type")

COMMON: dict[str, tuple[str, ...]] = {
    "num_layers": ("num_hidden_layers", "n_layer", "num_layers"),
    "hidden_size": ("hidden_size", "n_embd", "d_model"),
    "num_attention_heads": ("num_attention_heads", "n_head"),
    "num_kv_heads": ("num_key_value_heads",),
    "head_dim": ("head_dim",),
    "intermediate_size": ("intermediate_size", "ffn_dim", "n_inner"),
    "vocab_size": ("vocab_size",),
    "max_context": ("max_position_embeddings", "n_positions", "max_seq_len"),
    "tie_word_embeddings": ("tie_word_embeddings",),
    "qkv_bias": ("attention_bias",),
    "sliding_window": ("sliding_window",),
}
REQUIRED = ("num_layers", "hidden_size", "num_attention_heads", "intermediate_size", "vocab_size", "max_context")


@HF_FAMILIES.register("llama")
class Llama(HFFamily):
    """The common keys as Llama writes them (grouped-query attention, gated MLP)."""


@HF_FAMILIES.register("mistral")
class Mistral(HFFamily):
    """The common keys; Mistral's ``sliding_window`` applies to every layer when set."""


class _QwenWindow(HFFamily):
    """Qwen configs carry a ``sliding_window`` that applies only with ``use_sliding_window``."""

    @classmethod
    def adjust(cls, hf, out):
        if not hf.get("use_sliding_window"):
            out["sliding_window"] = None
        return out


@HF_FAMILIES.register("qwen2")
class Qwen2(_QwenWindow):
    fixed = {"qkv_bias": True}


@HF_FAMILIES.register("qwen3")
class Qwen3(_QwenWindow):
    """Qwen3: QKV bias from ``attention_bias`` (Qwen2 always has one), the window only with ``use_sliding_window``."""


@HF_FAMILIES.register("mixtral")
class Mixtral(HFFamily):
    keys = {"num_experts": ("num_local_experts",), "experts_per_token": ("num_experts_per_tok",)}


@HF_FAMILIES.register("qwen3_moe")
class Qwen3Moe(_QwenWindow):
    keys = {
        "num_experts": ("num_experts",),
        "experts_per_token": ("num_experts_per_tok",),
        "moe_intermediate_size": ("moe_intermediate_size",),
        "moe_layer_step": ("decoder_sparse_step",),
    }

    @classmethod
    def adjust(cls, hf, out):
        if hf.get("mlp_only_layers"):
            raise ConfigError("model.hf_config: qwen3_moe mlp_only_layers (dense layers among MoE ones) is not modelled.")
        return super().adjust(hf, out)


@HF_FAMILIES.register("deepseek_v3")
class DeepseekV3(HFFamily):
    keys = {
        "num_experts": ("n_routed_experts",),
        "experts_per_token": ("num_experts_per_tok",),
        "shared_experts": ("n_shared_experts",),
        "moe_intermediate_size": ("moe_intermediate_size",),
        "first_dense_layers": ("first_k_dense_replace",),
        "moe_layer_step": ("moe_layer_freq",),
        "kv_lora_rank": ("kv_lora_rank",),
        "q_lora_rank": ("q_lora_rank",),
        "qk_rope_head_dim": ("qk_rope_head_dim",),
        "qk_nope_head_dim": ("qk_nope_head_dim",),
        "v_head_dim": ("v_head_dim",),
        "mtp_layers": ("num_nextn_predict_layers",),
    }

    @classmethod
    def adjust(cls, hf, out):
        out["head_dim"] = int(out.get("qk_nope_head_dim", 0)) + int(out.get("qk_rope_head_dim", 0))
        return out


HF_FAMILIES.register("deepseek_v2")(DeepseekV3)


@HF_FAMILIES.register("gpt_oss")
class GptOss(HFFamily):
    keys = {
        "num_experts": ("num_local_experts",),
        "experts_per_token": ("num_experts_per_tok", "experts_per_token"),
    }
    fixed = {"qkv_bias": True}

    @classmethod
    def adjust(cls, hf, out):
        out["moe_intermediate_size"] = out["intermediate_size"]  # every MLP is an MoE of this width
        types = hf.get("layer_types") or []
        if types:
            out["sliding_window_layers"] = sum(t == "sliding_attention" for t in types)
        return out


@HF_FAMILIES.register("llama4")
class Llama4(HFFamily):
    keys = {
        "num_experts": ("num_local_experts",),
        "experts_per_token": ("num_experts_per_tok",),
        "moe_layer_step": ("interleave_moe_layer_step",),
    }

    @classmethod
    def adjust(cls, hf, out):
        # experts use intermediate_size; the dense layers between MoE ones use intermediate_size_mlp
        out["moe_intermediate_size"] = out["intermediate_size"]
        if hf.get("intermediate_size_mlp"):
            out["intermediate_size"] = hf["intermediate_size_mlp"]
        out["shared_experts"] = 1  # Llama 4's MoE layers add one shared expert
        # chunked local attention on the RoPE layers (no_rope_layers[i] == 1) keeps at most one chunk
        # of KV: servesim models it as a sliding window of attention_chunk_size on those layers
        chunk, rope = hf.get("attention_chunk_size"), hf.get("no_rope_layers") or []
        if chunk and rope:
            out["sliding_window"], out["sliding_window_layers"] = int(chunk), int(sum(rope))
        return out


def read(path: str) -> dict:
    """The config.json at ``path`` (a file, or a folder holding one), as a dict."""
    p = Path(path).expanduser()
    if p.is_dir():
        p = p / "config.json"
    try:
        hf = json.loads(p.read_text())
    except FileNotFoundError:
        raise ConfigError(f"model.hf_config={path}: no such file (give a config.json or the folder holding it).") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"model.hf_config={path}: not a JSON config ({exc}).") from None
    if not isinstance(hf, dict):
        raise ConfigError(f"model.hf_config={path}: not a JSON object.")
    if isinstance(hf.get("text_config"), dict):  # multimodal: the language model's own config
        hf = {**hf["text_config"], "model_type": hf.get("model_type", hf["text_config"].get("model_type"))}
    return hf


#: the ModelConfig fields that describe the shape: reset to their defaults before a config.json fills them
SHAPE_FIELDS = (
    "num_kv_heads", "head_dim", "qkv_bias", "tie_word_embeddings", "mlp", "num_experts", "experts_per_token",
    "shared_experts", "moe_intermediate_size", "first_dense_layers", "moe_layer_step", "kv_lora_rank", "q_lora_rank",
    "qk_rope_head_dim", "qk_nope_head_dim", "v_head_dim", "sliding_window", "sliding_window_layers", "mtp_layers",
)


def _name(hf: dict, path: str) -> str:
    """``Qwen3-30B-A3B`` from ``_name_or_path`` (``Qwen/Qwen3-30B-A3B``), else the folder's name."""
    named = str(hf.get("_name_or_path") or "").rstrip("/").rsplit("/", 1)[-1]
    if named:
        return named
    p = Path(path).expanduser().resolve()
    return (p if p.is_dir() else p.parent).name or str(hf.get("model_type"))


def model_from_hf(model, path: str):
    """``model`` (a ModelConfig) with its shape taken from the config.json at ``path``;
    the precision knobs and ``expert_imbalance`` stay as the scenario sets them."""
    from dataclasses import fields as dataclass_fields

    hf = read(path)
    kind = hf.get("model_type")
    if kind not in HF_FAMILIES:
        raise ConfigError(
            f"model.hf_config={path}: model_type {kind!r} is not one servesim reads; "
            f"choose a config of: {', '.join(HF_FAMILIES.names())}."
        )
    defaults = {f.name: f.default for f in dataclass_fields(model) if f.name in SHAPE_FIELDS}
    shape = {**defaults, **HF_FAMILIES.get(str(kind)).fields(hf, path)}
    return replace(model, name=_name(hf, path), hf_id=str(hf.get("_name_or_path", "")), params_total=None,
                   source=f"model.hf_config={path}", **shape)
