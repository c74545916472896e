"""Checks of ``workload.*``: arrivals, lengths, stopping rules, retries, prefixes, and run memory.

Each family member checks its own settings through its registry
(:meth:`simulator.registry.Registry.check`); what is left here are the rules
that span keys (a schedule needs a renewal process, a workload must end, its
longest request must fit the model).
"""

from __future__ import annotations

import math
import warnings
from typing import TYPE_CHECKING

from omegaconf import ListConfig

from simulator.config.checks import fraction, need, plain, positive
from simulator.errors import ConfigError

if TYPE_CHECKING:
    from simulator.config.schema import ScenarioConfig
    from simulator.workload.base import Workload


def check_workload_config(cfg: ScenarioConfig) -> None:
    """``workload.*`` on its own (before memory and the engine are considered)."""
    wl = cfg.workload
    _arrival(wl)
    if wl.cv != 1.0 and wl.arrival != "gamma":  # the schema's default; only gamma arrivals read it
        warnings.warn(f"workload.cv={wl.cv:g} shapes workload.arrival=gamma only; with workload.arrival={wl.arrival} "
                      f"it is not used (add workload.arrival=gamma for bursty arrivals).", stacklevel=2)
    _tenants_and_retries(wl)
    need(
        wl.num_requests is not None or wl.duration_s is not None or (wl.arrival == "trace" and not wl.trace.loop),
        "set workload.num_requests or workload.duration_s (or both) so the workload ends"
        + (" (a looped trace never does)." if wl.arrival == "trace" else "."),
    )
    if wl.num_requests is not None:
        need(wl.num_requests >= 1, f"workload.num_requests must be >= 1 (got {wl.num_requests}).")
    if wl.duration_s is not None:
        positive(wl.duration_s, "workload.duration_s")
    _length(wl.prompt_tokens, "workload.prompt_tokens")
    _length(wl.output_tokens, "workload.output_tokens")
    _prefix(wl.prefix)
    _samples(cfg)


def _samples(cfg: ScenarioConfig) -> None:
    """workload.n: a positive count; the samples share the prompt through prefix caching, in open loop.
    workload.beam_width: beams share blocks in paged memory, under a continuous or chunked scheduler."""
    n, w = cfg.workload.n, cfg.workload.beam_width
    need(isinstance(n, int) and n >= 1, f"workload.n must be an integer >= 1 (got {n!r}).")
    need(isinstance(w, int) and w >= 1, f"workload.beam_width must be an integer >= 1 (got {w!r}).")
    if w > 1:
        need(n == 1, f"workload.beam_width={w} and workload.n={n}: a request is either sampled n times or beam-searched, not both.")
        need(cfg.memory.allocation == "paged", f"workload.beam_width={w} shares blocks between beams, which needs memory.allocation=paged.")
        need(
            cfg.scheduler.speculative.method == "none" and cfg.scheduler.policy in ("continuous", "chunked_prefill"),
            f"workload.beam_width={w} runs with scheduler=continuous or chunked_prefill and without speculative decoding.",
        )
        need(
            int(cfg.scheduler.max_batch_size) >= w,
            f"workload.beam_width={w} needs scheduler.max_batch_size >= {w} (each beam is a sequence of the batch).",
        )
    if n == 1:
        return
    need(
        bool(cfg.memory.prefix_caching),
        f"workload.n={n} shares each prompt's KV blocks between its samples through prefix caching, as vLLM V1 "
        "does; set memory.prefix_caching=true.",
    )
    need(
        cfg.workload.arrival != "closed_loop",
        f"workload.n={n} needs open-loop arrivals (poisson, gamma, constant or trace): a closed-loop user "
        "waits for one answer, not n.",
    )


def _arrival(wl) -> None:
    from simulator.workload.arrivals import ARRIVALS

    if wl.arrival != "trace" and wl.trace.path:
        raise ConfigError(
            f"workload.trace.path is set but workload.arrival={wl.arrival}; set workload.arrival=trace to replay "
            f"the trace, or clear workload.trace.path."
        )
    source = ARRIVALS.check(wl.arrival, wl, "workload")
    if wl.rate_schedule is not None:
        need(
            source.renewal,
            f"workload.rate_schedule is set but workload.arrival={wl.arrival}, which has no rate; "
            f"use it with {', '.join(n for n in ARRIVALS if ARRIVALS.get(n).renewal)}, or set workload.rate_schedule=null.",
        )
        _rate_schedule(wl.rate_schedule)


def _tenants_and_retries(wl) -> None:
    need(wl.tenants >= 0, f"workload.tenants must be an integer >= 0 (got {wl.tenants}).")
    positive(wl.tenant_skew, "workload.tenant_skew", allow_zero=True)
    _retry(wl.retry)


def _prefix(pf) -> None:
    for key in ("system_prompts", "system_tokens", "sessions"):
        need(getattr(pf, key) >= 0, f"workload.prefix.{key} must be >= 0 (got {getattr(pf, key)}).")
    need(pf.turns >= 1, f"workload.prefix.turns must be >= 1 (got {pf.turns}).")
    need(
        (pf.system_prompts > 0) == (pf.system_tokens > 0),
        "set workload.prefix.system_prompts and workload.prefix.system_tokens together (both > 0, or both 0).",
    )


def _length(spec, key: str) -> None:
    from simulator.workload.lengths import LENGTHS

    LENGTHS.check(spec.dist, spec, key)


def _rate_schedule(pieces) -> None:
    """``workload.rate_schedule``: ``[[start_s, rate], ...]`` from 0, starts increasing, some rate > 0."""
    key = "workload.rate_schedule"
    pieces = list(pieces)
    need(len(pieces) >= 1, f"{key} must hold at least one [start_s, rate] pair, or be null (got []).")
    prev = None
    for i, p in enumerate(pieces):
        pair = list(p) if isinstance(p, (list, tuple, ListConfig)) else None
        need(
            pair is not None
            and len(pair) == 2
            and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in pair),
            f"{key}[{i}] must be a [start_s, rate] pair of numbers (got {plain(p)!r}).",
        )
        assert pair is not None  # need() raised otherwise
        start, rate = pair
        if i == 0:
            need(start == 0, f"{key}[0] must start at 0 s, so the rate is known from the start (got start_s={start}).")
        else:
            need(
                math.isfinite(start) and start > prev,
                f"{key}[{i}] starts at {start} s, not after the previous piece's {prev} s; start times must strictly increase.",
            )
        positive(rate, f"{key}[{i}] rate", allow_zero=True)
        prev = start
    rates = [list(p)[1] for p in pieces]
    need(any(r > 0 for r in rates), f"{key} needs a piece with a rate > 0 (got rates {', '.join(map(str, rates))}).")


def _retry(rt) -> None:
    key = "workload.retry"
    need(rt.max_attempts >= 1, f"{key}.max_attempts must be an integer >= 1 (got {rt.max_attempts}).")
    positive(rt.backoff_s, f"{key}.backoff_s", allow_zero=True)
    need(
        rt.multiplier >= 1 and math.isfinite(rt.multiplier),
        f"{key}.multiplier must be a finite number >= 1 (got {rt.multiplier}).",
    )
    need(
        rt.max_backoff_s >= rt.backoff_s,
        f"{key}.max_backoff_s must be >= {key}.backoff_s (got max_backoff_s={rt.max_backoff_s}, backoff_s={rt.backoff_s}).",
    )
    fraction(rt.jitter, f"{key}.jitter", allow_zero=True)


_BOUND_KEY = {"fixed": "value", "uniform": "high", "lognormal": "max", "empirical": "max"}


def _cap_hint(wl, limit: int) -> str:
    """`` (e.g. workload.prompt_tokens.max=N)`` when capping the prompt alone would fit ``limit``."""
    from simulator.workload.lengths import upper_bound

    out = upper_bound(wl.output_tokens)
    room = int(limit - out - wl.prefix.system_tokens) // max(wl.prefix.turns if wl.prefix.sessions > 0 else 1, 1)
    key = _BOUND_KEY.get(wl.prompt_tokens.dist)
    if key is None or not math.isfinite(out) or room < 1:
        return ""
    return f" (e.g. workload.prompt_tokens.{key}={room})"


def check_longest(cfg: ScenarioConfig) -> float | None:
    """The longest request fits the model (or ``memory.max_model_len``); returns the longest prompt
    the workload can produce (``None`` when unknown before the run: traces, growing conversations)."""
    from simulator.workload.lengths import upper_bound

    wl, m, mem = cfg.workload, cfg.model, cfg.memory
    if mem.max_model_len is not None:
        need(
            1 <= mem.max_model_len <= m.max_context,
            f"memory.max_model_len must lie in [1, {m.max_context}] for model {m.name} (got {mem.max_model_len}).",
        )
    pf = wl.prefix
    prompt, output = upper_bound(wl.prompt_tokens), upper_bound(wl.output_tokens)
    longest = prompt + output + pf.system_tokens
    if pf.sessions > 0 and pf.turns > 1:
        longest *= pf.turns  # a last turn holds the whole conversation
    limit, what = max_len(cfg)
    if math.isfinite(longest) and wl.arrival != "trace":
        need(
            longest <= limit,
            f"the workload can produce requests of {int(longest)} tokens (workload.prompt_tokens up to "
            f"{int(prompt)} + workload.output_tokens up to {int(output)}"
            + (", with shared prefixes and conversation history" if longest != prompt + output else "")
            + f"), longer than {what}; lower those maxima"
            + _cap_hint(wl, limit)
            + ".",
        )
    if wl.arrival == "trace" or (pf.sessions > 0 and pf.turns > 1):
        return None  # conversations grow; long turns are rejected at run time
    return prompt + pf.system_tokens


def max_len(cfg: ScenarioConfig) -> tuple[int, str]:
    """The longest request (prompt + output) the engine accepts, and its name for messages."""
    if cfg.memory.max_model_len is not None:
        return int(cfg.memory.max_model_len), f"memory.max_model_len={cfg.memory.max_model_len}"
    return int(cfg.model.max_context), f"model {cfg.model.name}'s context of {cfg.model.max_context} tokens"


def check_workload(cfg: ScenarioConfig, workload: Workload) -> None:
    """Checks that need the sampled requests (unbounded distributions)."""
    if len(workload) == 0:
        wl = cfg.workload
        rate = (
            f"workload.rate={wl.rate}"
            if wl.rate_schedule is None
            else f"workload.rate_schedule={plain(wl.rate_schedule)}".replace(" ", "")
        )
        raise ConfigError(
            f"the workload is empty: no request arrives within workload.duration_s={wl.duration_s} at {rate}; raise either."
        )
    longest = int((workload.prompt_tokens + workload.output_tokens).max())
    limit, what = max_len(cfg)
    if longest > limit:
        raise ConfigError(
            f"the workload drew a request of {longest} tokens, longer than {what}; "
            f"lower workload.prompt_tokens / workload.output_tokens."
        )
    _warn_if_cut_short(cfg, workload)


def _warn_if_cut_short(cfg: ScenarioConfig, workload: Workload) -> None:
    """An open process whose ``workload.num_requests`` ran out before its ``duration_s`` or the last
    change of its ``rate_schedule``: the run is shorter than the scenario reads, so say so."""
    wl = cfg.workload
    if wl.arrival in ("trace", "closed_loop") or wl.num_requests is None or len(workload) < int(wl.num_requests):
        return
    last = float(workload.arrival_s[-1])
    ends = []
    if wl.duration_s is not None and last < float(wl.duration_s):
        ends.append(f"workload.duration_s={wl.duration_s:g}")
    if wl.rate_schedule is not None:
        from simulator.workload.arrivals import RateSchedule

        final = float(RateSchedule.from_config(wl.rate_schedule).starts[-1])
        if last < final:
            ends.append(f"the rate schedule's last change at {final:g} s (its later rates never ran)")
    if ends:
        warnings.warn(
            f"workload.num_requests={wl.num_requests} ended the arrivals at {last:.1f} s, before "
            f"{' and '.join(ends)}; set workload.num_requests=null"
            f"{'' if wl.duration_s is not None else ' and a workload.duration_s'} to run the whole of it.",
            stacklevel=2,
        )


def check_run_memory(cfg: ScenarioConfig) -> None:
    """Refuse, before the workload is drawn, a run that cannot fit in memory: a run keeps
    every request and step until it writes its tables (see ``simulator.workload.BYTES_PER_REQUEST``)."""
    import simulator.workload as workload

    expected = workload.expected_requests(cfg)
    available = workload.available_memory()
    if expected is None or available is None:  # a trace of unknown length, or not Linux: no check
        return
    n, source = expected
    needed = workload.memory_needed(cfg, n)
    share = workload.MEMORY_SHARE
    if needed <= share * available:
        return
    per = workload.memory_needed(cfg, 1.0) - workload.BASE_BYTES
    fits = int((share * available - workload.BASE_BYTES) / per) // 1000 * 1000
    wl = cfg.workload
    what = source if source.startswith("workload.num_requests") else f"about {n:,.0f} requests ({source})"
    reps = f" over replications={cfg.replications}" if cfg.replications > 1 else ""
    gb = lambda b: f"{b / 1e9:,.0f}" if b >= 100e9 else f"{b / 1e9:,.1f}"  # noqa: E731
    fewer = f"at most about workload.num_requests={fits} could fit" if fits >= 1000 else "even a small run may not fit"
    if wl.arrival in ("closed_loop", "trace"):  # their requests are drawn (or looped) up to workload.num_requests
        advice = f"ask for fewer requests ({fewer})"
    elif wl.rate_schedule is not None:
        advice = f"set a shorter workload.duration_s or ask for fewer requests ({fewer})"
    else:
        advice = (
            f"set workload.duration_s to end the run sooner (about {max(fits, 1) / float(wl.rate):,.0f} s at "
            f"workload.rate={wl.rate}) or ask for fewer requests ({fewer})"
        )
    raise ConfigError(
        f"{what} would need about {gb(needed)} GB of memory{reps} (a run keeps every request and engine step "
        f"until it ends), more than {share:.0%} of the {gb(available)} GB available; {advice}."
    )
