"""``servesim-model``: what servesim derives from a model's shape.

    servesim-model show MODEL [--tp N]

MODEL is a catalog name (``mixtral-8x7b``) or a Hugging Face ``config.json``
(or the folder holding one). Prints the layers, parameters in total and used
per token, weight bytes by precision, KV-cache bytes per token and linear
FLOPs per token, as the simulator uses them. Mistakes print one sentence and
exit with status 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from simulator.errors import ServesimError

PROG = "servesim-model"


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog=PROG, description="Show what servesim derives from a model's shape.")
    sub = ap.add_subparsers(dest="command", required=True, metavar="{show}")
    sh = sub.add_parser("show", help="parameters, weight and KV bytes, FLOPs per token")
    sh.add_argument("model", help="a catalog name (scenarios/model/) or a config.json (or its folder)")
    sh.add_argument("--tp", type=int, default=1, help="tensor-parallel degree for the per-GPU figures (default 1)")
    return ap


def load_model(model: str):
    """The ModelConfig of a catalog name or a config.json path."""
    from simulator.config.catalog import load_model as catalog_model

    if Path(model).expanduser().exists():
        from simulator.config.hf import model_from_hf

        return model_from_hf(catalog_model("llama-3.1-8b", "model"), model)
    return catalog_model(model, "model")


def describe(model, tp: int = 1) -> list[tuple[str, str]]:
    """(label, value) rows of what servesim derives from ``model`` at ``tp``."""
    from dataclasses import replace

    from simulator.specs import ModelSpec

    spec = ModelSpec.from_config(model, tp)
    rows = [("model", f"{model.name}" + (f" ({model.hf_id})" if model.hf_id and model.hf_id != model.name else ""))]
    layers = f"{spec.num_layers}"
    if spec.is_moe:
        layers += (
            f" ({spec.moe_layers} MoE: {spec.num_experts} experts, {spec.experts_per_token} per token"
            + (f", {spec.shared_experts} shared" if spec.shared_experts else "")
            + f", width {spec.moe_intermediate_size})"
        )
    rows.append(("layers", layers))
    attention = (
        f"MLA (latent {spec.kv_lora_rank} + rope {spec.qk_rope_head_dim}), {spec.num_heads} heads"
        if spec.is_mla
        else f"{spec.num_heads} heads, {spec.num_kv_heads} KV heads of {spec.head_dim}"
    )
    if model.sliding_window:
        attention += f"; sliding window {model.sliding_window} on {model.sliding_window_layers or spec.num_layers} layers"
    rows.append(("attention", attention))
    derived = spec.params_derived
    given = f" (catalog {model.params_total / 1e9:.2f}B)" if model.params_total else ""
    rows.append(("parameters", f"{spec.params_total / 1e9:.2f}B total{given}, {spec.params_active / 1e9:.2f}B active per token"))
    if model.params_total and abs(derived / model.params_total - 1) > 0.01:
        rows.append(("warning", f"derived {derived / 1e9:.2f}B differs from the catalog's by over 1%"))
    held = {d: ModelSpec.from_config(replace(model, weight_dtype=d), tp).weight_bytes for d in ("bf16", "fp8", "int4")}
    rows.append(("weights", ", ".join(f"{d} {v / 1e9:.1f} GB" for d, v in held.items())))  # embedding in 16 bits, FP8's LM head too
    if tp > 1:
        rows.append((f"per GPU (TP {tp})", f"{spec.weight_bytes / tp / 1e9:.1f} GB of {model.weight_dtype} weights"))
    kv = {d: ModelSpec.from_config(replace(model, kv_dtype=d), tp).kv_bytes_per_token_per_gpu for d in ("bf16", "fp8")}
    rows.append(("KV per token" + (" per GPU" if tp > 1 else ""), ", ".join(f"{d} {v:,.0f} B" for d, v in kv.items())))
    rows.append(("FLOPs per token", f"{2 * (spec.params_active - spec.lm_head_params) / 1e9:.1f} GFLOP (linear layers and LM head)"))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        model = load_model(args.model)
        heads = int(model.num_attention_heads)
        if args.tp < 1 or heads % args.tp:
            raise ServesimError(f"--tp {args.tp} must divide model {model.name}'s {heads} attention heads, as cluster.tp must.")
        rows = describe(model, args.tp)
    except ServesimError as exc:
        print(f"{PROG}: error: {exc}", file=sys.stderr)
        sys.exit(2)
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
