"""``servesim-calibrate predict``: what one engine step costs, operator by operator.

A step is described the way a replica describes it to its latency model
(:class:`~simulator.latency.base.StepShape`): prefill chunks, each ``CHUNK``
new tokens after ``CONTEXT`` cached ones, and decoding sequences, ``COUNT`` of
them over ``CONTEXT`` tokens of context each. The scenario's latency model
(roofline, profile or constant, with every override applied) prices it and
says how the time splits over operators; attention operators have keys
containing ``attention``.
"""

from __future__ import annotations

from simulator.errors import ConfigError


def _pairs(specs: list[str], flag: str) -> list[tuple[int, int]]:
    what, example = ("CHUNK:CONTEXT", "512:0") if flag == "--prefill" else ("COUNT:CONTEXT", "32:1024")
    first = what.split(":")[0].lower()
    out = []
    for spec in specs:
        try:
            a, b = (int(x) for x in spec.split(":"))
        except ValueError:
            raise ConfigError(f"{flag} {spec!r} is not of the form {what} with two integers (e.g. {flag} {example}).") from None
        if a < 1 or b < 0:
            raise ConfigError(f"{flag} {spec!r}: the {first} must be >= 1 and the context >= 0.")
        out.append((a, b))
    return out


def shape_of(prefill: list[str], decode: list[str]):
    """The StepShape of ``--prefill CHUNK:CONTEXT`` and ``--decode COUNT:CONTEXT`` arguments,
    and the longest sequence it holds (tokens)."""
    from simulator.latency.base import StepShape

    chunks, decodes = _pairs(prefill, "--prefill"), _pairs(decode, "--decode")
    shape = StepShape()
    for chunk, ctx in chunks:
        shape.prefill_seqs += 1
        shape.prefill_tokens += chunk
        shape.prefill_attn_pairs += chunk * (ctx + (chunk + 1) / 2)
        shape.prefill_ctx_tokens += ctx
    for count, ctx in decodes:
        shape.decode_seqs += count
        shape.decode_ctx_tokens += count * ctx
    if shape.prefill_seqs + shape.decode_seqs == 0:
        raise ConfigError("describe the step with at least one --prefill CHUNK:CONTEXT or --decode COUNT:CONTEXT.")
    longest = max([c + p for c, p in chunks] + [p + 1 for _, p in decodes])
    return shape, longest


def predict(overrides: list[str], prefill: list[str], decode: list[str]) -> dict:
    """``{"step_s", "ops", "cpu_s", "cpu_overlapped", "latency_model", "shape"}`` for one step under the
    scenario. ``cpu_s`` is the engine's CPU work in the step; with ``cpu_overlapped``
    (``scheduler.async_scheduling``) only what the GPU's work does not hide is in ``ops``'
    ``step_overhead``."""
    from dataclasses import asdict

    from simulator.config.compose import compose, to_scenario
    from simulator.config.validate import check_latency, check_pipeline
    from simulator.latency import build_latency_model
    from simulator.specs import ModelSpec

    shape, longest = shape_of(prefill, decode)
    # composed (typos and bad types still fail), without the workload and memory checks of a run:
    # one step's price needs only the hardware, the model, TP and the latency model
    cfg = to_scenario(compose(list(overrides)))
    if longest > int(cfg.model.max_context):
        raise ConfigError(f"the step holds a sequence of {longest} tokens, longer than model {cfg.model.name}'s context "
                          f"of {cfg.model.max_context} tokens.")
    check_latency(cfg.latency)
    check_pipeline(cfg)
    cl = cfg.cluster
    model = build_latency_model(cfg, ModelSpec.from_config(cfg.model, cl.tp, cl.ep, cl.pp))
    cpu = model.cpu_s(shape)
    ops = model.breakdown(shape)
    stages = f" TP{cl.tp} PP{cl.pp}" if cl.pp > 1 else ""
    return {
        "step_s": model.step_time(shape),
        "ops": ops,
        "cpu_s": cpu,
        "cpu_overlapped": bool(cfg.scheduler.async_scheduling),
        "latency_model": model.describe(),
        "scenario": f"{cfg.model.name} on {cl.tp * cl.pp}x {cfg.hardware.name}{stages} ({cfg.model.weight_dtype})",
        "shape": asdict(shape),
    }


def render(out: dict) -> str:
    total = out["step_s"]
    s = out["shape"]
    lines = [
        f"{out['scenario']} · {out['latency_model']}",
        f"step: {s['prefill_seqs']} prefill chunk(s), {s['prefill_tokens']} tokens · {s['decode_seqs']} decoding sequence(s)",
        f"{'operator':<20}{'ms':>10}{'share':>8}",
    ]
    for op, sec in out["ops"].items():
        lines.append(f"{op:<20}{sec * 1e3:>10.3f}{sec / total:>8.1%}")
    lines.append(f"{'step':<20}{total * 1e3:>10.3f}")
    if out.get("cpu_overlapped") and out.get("cpu_s"):
        lines.append(f"the engine's CPU work, {out['cpu_s'] * 1e3:.3f} ms, runs beside the GPU's (scheduler.async_scheduling): "
                     "step_overhead is the part the GPU's work does not hide")
    return "\n".join(lines)
