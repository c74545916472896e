"""The published-measurement suite: servesim against real engines on real GPUs.

``calibration/published/*.yaml`` hold cases transcribed from public benchmark
tables and reports (TensorRT-LLM's performance overviews, AMD's vLLM results,
vLLM and SGLang benchmark outputs in their issue trackers, ...): each with
its engine and version, model, GPU, TP, precision, workload (fixed input and
output lengths; offline, at a request rate, at a concurrency, or one static
batch), the measured figure, and its source (URL or repository, path and
commit, and the quoted row).

Each case becomes a servesim scenario (:func:`overrides`): the catalog model
and GPU, the engine's preset (``engine=``), the settings the source states,
and a workload of the same shape. The simulated figure is computed the way
the benchmark client computes it (:func:`measure`), and the error is signed:

    error = predicted / measured - 1

so a positive throughput error and a negative latency error both mean servesim
is optimistic.

**Splits.** A case is in the ``fit`` split when the first hex digit of the
SHA-256 of its id is below 5 (about a third), else ``holdout``. The split is
a pure function of the id, fixed before any factor was looked at; the engine
presets' overheads are the only quantities fitted to published cases, and
only to the fit split (:func:`fit_overheads`). The roofline's efficiencies
come from operator timings, not from these cases.

Cases servesim cannot express (a model or GPU outside the catalog, FP4, pipeline
parallelism) are listed as skipped, with the reason.
"""

from __future__ import annotations

import copy
import hashlib
import math
from collections import Counter
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path

import numpy as np
import pandas as pd

#: Metric -> family, for the per-family error table.
FAMILIES = {
    "output_throughput": "throughput",
    "total_throughput": "throughput",
    "request_throughput": "throughput",
    "ttft_mean": "ttft",
    "ttft_median": "ttft",
    "ttft_p99": "ttft",
    "tpot_mean": "tpot/itl",
    "tpot_median": "tpot/itl",
    "itl_mean": "tpot/itl",
    "itl_median": "tpot/itl",
    "e2e_latency_mean": "e2e",
}
ENGINES = ("vllm", "sglang", "trtllm")
PRECISIONS = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "int8": "int8", "int4": "int4"}
KV_PRECISIONS = {"bf16": "bf16", "fp16": "fp16", "fp8": "fp8", "auto": None, None: None}


@dataclass
class Case:
    """One published measurement (a row of calibration/published/*.yaml)."""

    raw: dict
    file: str
    skip: str | None = None  # why servesim cannot run it
    extra: list[str] = field(default_factory=list)

    def __getattr__(self, key):
        try:
            return self.__dict__["raw"][key]
        except KeyError:
            raise AttributeError(key) from None

    def variant(self, workload: dict | None = None, **fields) -> Case:
        """A copy of this case with ``fields`` of its row and keys of its ``workload`` changed (the
        benchmarks replay a source table's other cells from one of its cases this way)."""
        raw = copy.deepcopy(self.raw)
        raw.update(fields)
        raw["workload"].update(workload or {})
        return replace(self, raw=raw)

    @property
    def family(self) -> str:
        return FAMILIES[self.raw["metric"]]

    @property
    def split(self) -> str:
        return split_of(self.raw["id"])


def split_of(case_id: str) -> str:
    return "fit" if int(hashlib.sha256(case_id.encode()).hexdigest()[0], 16) < 5 else "holdout"


def published_dir() -> Path:
    return Path(str(resources.files("simulator.calibration").joinpath("published")))


def load_cases(paths: list[Path] | None = None) -> list[Case]:
    """Every case of the given YAML files (default: the shipped suite), with skip reasons set."""
    import yaml

    from simulator.config.catalog import names

    paths = paths or sorted(published_dir().glob("*.yaml"))
    hardware, models = set(names("hardware")), set(names("model"))
    cases, seen = [], set()
    for path in paths:
        for raw in yaml.safe_load(Path(path).read_text()).get("cases", []):
            missing = [k for k in ("id", "engine", "model", "hardware", "tp", "workload", "metric", "value", "source") if k not in raw]
            if missing:
                raise ValueError(f"{path}: case {raw.get('id', '?')} lacks {', '.join(missing)}")
            if raw["id"] in seen:
                raise ValueError(f"{path}: case id {raw['id']} appears twice")
            seen.add(raw["id"])
            if raw["metric"] not in FAMILIES:
                raise ValueError(f"{path}: case {raw['id']}: unknown metric {raw['metric']!r}; known: {', '.join(FAMILIES)}")
            case = Case(raw, Path(path).name)
            case.skip = _skip_reason(raw, hardware, models)
            cases.append(case)
    return cases


def _skip_reason(raw: dict, hardware: set, models: set) -> str | None:
    if raw["model"] not in models:
        return f"model {raw['model']} is not in the catalog"
    if raw["hardware"] not in hardware:
        return f"hardware {raw['hardware']} is not in the catalog"
    if str(raw.get("weight_dtype", "bf16")) not in PRECISIONS:
        return f"precision {raw.get('weight_dtype')} is not modelled"
    if int(raw.get("pp", 1) or 1) != 1:
        return "pipeline parallelism is not modelled"
    if raw["engine"] not in ENGINES:
        return f"engine {raw['engine']} has no preset"
    wl = raw["workload"]
    if str(wl.get("dataset", "fixed")).lower() == "sharegpt":
        return "ShareGPT lengths: only their means are recorded, not the distribution the engine served"
    if wl.get("mode") not in ("offline", "rate", "concurrency", "batch"):
        return f"workload mode {wl.get('mode')!r} is not replayed"
    return None


def _version(text) -> tuple[int, ...]:
    parts = []
    for p in str(text).lstrip("v").split("."):
        digits = "".join(ch for ch in p if ch.isdigit())
        if not digits:
            break
        parts.append(int(digits))
    return tuple(parts) or (0,)


#: vLLM releases that changed the preset, and their dates (github.com/vllm-project/vllm/releases)
VLLM_RELEASES = (((0, 8), "2025-03-18", "vllm_v1"), ((0, 6), "2024-09-04", "vllm_v0"))


#: the first vLLM release whose custom all-reduce runs on MI300 (vllm-project/vllm PR #14125, its enable
#: check fixed by PR #16010, both in v0.8.4): engine=vllm_v0 describes 0.6-0.7, which had none on ROCm
ROCM_CUSTOM_ALLREDUCE = (0, 8, 4)


def preset(case) -> str:
    """The engine preset a case runs under: vLLM's V1 engine is the default from v0.8.0, and
    v0.6.0 moved V0's output processing off the critical path (vllm_v05 is the version before).
    A V1-era release whose ``engine_env`` turns V1 off (``VLLM_USE_V1: 0``) ran V0. A source
    that names no version ran the latest release at its date, and one that names neither
    (vLLM's performance CI pages) the current engine, V1."""
    if case.engine == "vllm":
        text = str(case.raw.get("engine_version", "")).lstrip("v")
        if text[:1].isdigit():
            v = _version(text)
            name = next((name for since, _, name in VLLM_RELEASES if v >= since), "vllm_v05")
            if name == "vllm_v1" and not _uses_v1(case):  # a V1-era release run on its V0 engine
                return "vllm_v0"
            return name
        date = str(case.raw.get("date", ""))
        if not (date[:4].isdigit() and date[4:5] == "-"):
            return VLLM_RELEASES[0][2]
        return next((name for _, since, name in VLLM_RELEASES if date >= since), "vllm_v05")
    return case.engine


def _uses_v1(case) -> bool:
    """The case's ``engine_env`` does not turn vLLM's V1 engine off (``VLLM_USE_V1: 0``, the switch
    releases 0.8-0.10 kept; AMD's rocm/vllm images up to vLLM 0.9.0.1 shipped V0 as their default)."""
    flag = (case.raw.get("engine_env") or {}).get("VLLM_USE_V1", 1)
    return str(flag).strip().lower() not in ("0", "false")


def _engine_defaults(case, hw, max_context: int) -> list[str]:
    """Batch limits the engine picks by itself for this GPU and client (see scenarios/engine/*.yaml).
    ``max_context``: the checkpoint's context length, vLLM's ``max_model_len`` unless the case sets it."""
    name, offline = preset(case), case.workload["mode"] in ("offline", "batch")
    big = float(hw.memory_gib or hw.memory_gb) >= 70 and not hw.name.startswith("a100")
    if name == "vllm_v1":  # vllm/engine/arg_utils.py get_batch_defaults
        tokens, seqs = (16384 if offline else 8192, 1024) if big else (8192 if offline else 2048, 256)
        return [f"scheduler.max_batch_tokens={tokens}", f"scheduler.max_batch_size={seqs}"]
    if name in ("vllm_v0", "vllm_v05"):  # vllm/config.py SchedulerConfig: max(max_model_len, 2048) without chunked prefill
        # max_model_len: the engine argument when the case gives it, else the checkpoint's
        # max_position_embeddings (benchmark_throughput.py and benchmark_latency.py leave it unset)
        stated = (case.raw.get("engine_args") or {}).get("max_model_len")
        return [f"scheduler.max_batch_tokens={max(int(stated or max_context), 2048)}"]
    if name == "sglang":
        return [f"scheduler.max_batch_tokens={sglang_chunk(float(hw.memory_gib or hw.memory_gb), str(case.raw.get('date', '')))}"]
    return []


#: SGLang's default chunked_prefill_size by GPU memory (GiB) changed twice (python/sglang/srt/server_args.py):
#: from sgl-project/sglang PR #6718 (2025-05-28) GPUs of 160 GiB and more (B200, MI300) take 16,384;
#: from PR #10372 (2025-09-19) those under 60 GiB (A100 40 GB, L40) take 4,096. Under 35 GiB 2,048
#: throughout, 8,192 otherwise (H100, A100 80 GB and H200, whose 141 GB stay under 160 GiB).
SGLANG_CHUNK_CHANGES = ("2025-05-28", "2025-09-19")


def sglang_chunk(mem_gib: float, date: str) -> int:
    """SGLang's default chunked_prefill_size on a GPU of ``mem_gib`` for a source dated ``date``
    (``YYYY-MM-DD``; no date: the current rule)."""
    dated = date[:4].isdigit()
    if mem_gib < 35:
        return 2048
    if mem_gib >= 160 and (not dated or date >= SGLANG_CHUNK_CHANGES[0]):
        return 16384
    if mem_gib < 60 and (not dated or date >= SGLANG_CHUNK_CHANGES[1]):
        return 4096
    return 8192


_ARGS = {  # engine argument -> servesim key
    "max_num_seqs": "scheduler.max_batch_size",
    "max_batch_size": "scheduler.max_batch_size",
    "max_running_requests": "scheduler.max_batch_size",
    "max_num_batched_tokens": "scheduler.max_batch_tokens",
    "max_num_tokens": "scheduler.max_batch_tokens",
    "chunked_prefill_size": "scheduler.max_batch_tokens",
    "gpu_memory_utilization": "memory.gpu_memory_utilization",
    "mem_fraction_static": "memory.gpu_memory_utilization",
    "num_scheduler_steps": "scheduler.multi_step",
}


def _engine_args(case, cfg_model, hw) -> list[str]:
    out = []
    for key, value in (case.raw.get("engine_args") or {}).items():
        if key in _ARGS and isinstance(value, (int, float)) and not isinstance(value, bool):
            out.append(f"{_ARGS[key]}={value}")
        elif key in ("enable_chunked_prefill", "chunked_prefill", "enable_chunked_context") and isinstance(value, bool):
            off = "inflight" if preset(case) == "trtllm" else "continuous"
            out.append(f"scheduler.policy={'chunked_prefill' if value else off}")
        elif key == "scheduler_policy" and str(value).lower().startswith("max_util"):
            out.append("memory.allocation=paged")  # TensorRT-LLM MAX_UTILIZATION: allocate as it goes, evict if needed
        elif key == "kv_cache_free_gpu_mem_fraction" and isinstance(value, (int, float)):
            out.append(f"memory.gpu_memory_utilization={_free_fraction(value, cfg_model, hw, int(case.tp)):.4f}")
    return out


def _backend(case) -> str | None:
    """TensorRT-LLM's backend as the case states it (``engine_args.backend``): ``pytorch``, or a TensorRT
    engine (trtllm-build engines, Triton's tensorrtllm_backend, NIM); None when not stated."""
    backend = (case.raw.get("engine_args") or {}).get("backend")
    return str(backend).split()[0] if backend else None


def _free_fraction(fraction: float, model, hw, tp: int) -> float:
    """TensorRT-LLM gives the KV cache a fraction of the memory left after the weights; as a share of all memory."""
    from simulator.specs import ModelSpec, device_bytes

    total = device_bytes(hw)
    weights = ModelSpec.from_config(model, tp).weight_bytes / tp
    return min(1.0, (fraction * (total - weights) + weights) / total)


def overrides(case, max_requests: int | None = None) -> list[str]:
    """The servesim overrides that replay ``case``."""
    from simulator.config.catalog import load_hardware, load_model

    wl = case.workload
    hw = load_hardware(case.hardware)
    model = load_model(case.model)
    model.weight_dtype = PRECISIONS[str(case.raw.get("weight_dtype", "bf16"))]
    kv = KV_PRECISIONS.get(case.raw.get("kv_dtype"), None)
    n = _requests(case, max_requests)
    lengths, isl, osl = _lengths(wl)
    name = preset(case)
    ov = [
        f"engine={name}", f"hardware={case.hardware}", f"model={case.model}", f"cluster.tp={int(case.tp)}",
        f"model.weight_dtype={model.weight_dtype}", *lengths,
        f"workload.num_requests={n}", f"memory.max_model_len={isl + osl}",
        "output.charts=false", "output.console=false", "output.progress=off", f"name={case.id}",
    ]
    if kv is not None:
        ov.append(f"model.kv_dtype={kv}")
    ov += _engine_defaults(case, hw, int(case.raw.get("max_context") or model.max_context))
    mode = wl["mode"]
    if mode in ("offline", "batch"):
        ov += ["workload.arrival=constant", "workload.rate=1e9"]
    elif mode == "rate":
        ov += ["workload.arrival=poisson", f"workload.rate={float(wl['rate'])}"]
    else:
        ov += ["workload.arrival=closed_loop", f"workload.users={int(wl['concurrency'])}", "workload.think_s=0"]
    ov += _engine_args(case, model, hw)
    if name == "trtllm":  # the overlap scheduler is the PyTorch backend's; TensorRT engines step without it
        ov.append(f"scheduler.async_scheduling={str(_backend(case) == 'pytorch').lower()}")
    if name == "vllm_v0" and _version(case.raw.get("engine_version", "")) >= ROCM_CUSTOM_ALLREDUCE:
        ov.append("latency.custom_allreduce=[nvidia,amd]")  # the release's all-reduce, whichever engine runs
    if mode == "batch":
        ov.append(f"scheduler.max_batch_size={n}")
    if _batch_tokens(ov) <= isl and "scheduler.policy=chunked_prefill" not in ov:
        if name == "trtllm":  # a whole prompt must fit beside the generations: trtllm-bench chunks contexts
            ov.append("scheduler.policy=chunked_prefill")
        elif name in ("vllm_v0", "vllm_v05") and _batch_tokens(ov) < isl:  # V0's budget is at least max_model_len
            ov.append(f"scheduler.max_batch_tokens={isl}")
    return ov + case.extra


def _lengths(wl: dict) -> tuple[list[str], int, int]:
    """Length overrides, and the longest prompt and output. ``random-uniform``: SGLang's
    random dataset without a range ratio draws U[1, L]; the case records the mean (L + 1) / 2."""
    if str(wl.get("dataset", "fixed")) == "random-uniform":
        top = [round(2 * float(wl[k]) - 1) for k in ("input_tokens", "output_tokens")]
        ov = [f"workload.{k}.dist=uniform" for k in ("prompt_tokens", "output_tokens")]
        ov += [f"workload.{k}.low=1" for k in ("prompt_tokens", "output_tokens")]
        ov += [f"workload.prompt_tokens.high={top[0]}", f"workload.output_tokens.high={top[1]}"]
        return ov, top[0], top[1]
    isl, osl = int(wl["input_tokens"]), int(wl["output_tokens"])
    ov = ["workload.prompt_tokens.dist=fixed", f"workload.prompt_tokens.value={isl}",
          "workload.output_tokens.dist=fixed", f"workload.output_tokens.value={osl}"]
    return ov, isl, osl


def _batch_tokens(ov: list[str]) -> int:
    vals = [int(float(o.split("=", 1)[1])) for o in ov if o.startswith("scheduler.max_batch_tokens=")]
    return vals[-1] if vals else 8192


def _requests(case, cap: int | None) -> int:
    wl = case.workload
    if wl["mode"] == "batch":
        return int(wl.get("batch_size") or 1)
    if wl["mode"] == "concurrency":  # eight rounds: six of them inside the steady window (steady_window)
        n = min(int(wl.get("num_requests") or 10**9), max(8 * int(wl["concurrency"]), 64))
    else:
        n = int(wl.get("num_requests") or 1000)
    return min(n, cap) if cap else n


def measure(case, result) -> float:
    """The case's metric on a simulated run, computed as the benchmark client does, in the case's unit."""
    req = result.requests
    done = req[req["status"] == "completed"]
    metric = case.metric
    duration = float(done["finish_s"].max() - req["arrival_s"].min())
    steady = case.workload["mode"] == "concurrency"
    if steady:  # a closed loop's steady state, not its start-up burst and drain (steady_window)
        done, duration = steady_window(done, int(case.workload["concurrency"]))
    if FAMILIES[metric] == "throughput":
        tokens = {
            "output_throughput": done["output_tokens"].sum(),
            "total_throughput": done["output_tokens"].sum() + done["prompt_tokens"].sum(),
            "request_throughput": len(done),
        }[metric]
        value = float(tokens) / duration
        return value / int(case.raw.get("gpus") or case.tp) if case.raw.get("per_gpu") else value
    if metric == "e2e_latency_mean":
        seconds = duration if case.workload["mode"] == "batch" else float(done["e2e_s"].mean())
    elif metric.startswith("ttft"):
        seconds = _stat(done["ttft_s"], metric)
    elif metric.startswith("tpot"):
        seconds = _stat(done["tpot_s"].dropna(), metric)
    elif steady:  # genai-perf's ITL: (e2e - TTFT) / (output - 1) per request, averaged over requests
        gaps = (done["e2e_s"] - done["ttft_s"]) / (done["output_tokens"] - 1).clip(lower=1)
        seconds = float(gaps.mean() if metric == "itl_mean" else gaps.median())
    else:  # ITL: every gap between consecutive tokens, its mean over all gaps (vLLM's clients)
        itl = result.summary["latency_s"]["itl"]
        seconds = float(itl["mean"] if metric == "itl_mean" else itl["p50"])
    return seconds * {"s": 1.0, "ms": 1e3}[case.raw.get("unit", "s")]


def steady_window(done: pd.DataFrame, users: int) -> tuple[pd.DataFrame, float]:
    """The completed requests of a closed loop's steady state, and its length in seconds.

    At ``users`` clients that all start at once, the first prompts queue behind
    each other; a run of a few rounds averaged over its start reports that burst
    more than the load. The suite assumes the published closed-loop figures (NIM's,
    measured with genai-perf) describe the load's steady state: NIM's benchmarking
    guide warms the server up before it measures ("Set Up ... and Warm Up"), and the
    sources do not say how many requests were measured. The window is the span in
    which every client is busy: from the ``users``-th completion (the first wave has
    drained) to the ``users``-th before last (after it, clients have nothing left to
    send); a request counts when it ends inside it, as perf_analyzer counts requests
    ending inside its measurement windows. The whole run is used instead when there
    is no such span: one client (no burst), too few completions (``--max-requests``
    below 2 x ``users`` + 1), or completions tied at its edges."""
    ends = np.sort(done["finish_s"].to_numpy())
    whole = (done, float(ends[-1] - done["arrival_s"].min()) if len(ends) else 0.0)
    if users <= 1 or len(ends) <= 2 * users:
        return whole
    lo, hi = float(ends[users - 1]), float(ends[len(ends) - users - 1])
    if hi <= lo:
        return whole
    inside = done[(done["finish_s"] > lo) & (done["finish_s"] <= hi)]
    return inside, hi - lo


def _stat(series: pd.Series, metric: str) -> float:
    if metric.endswith("_mean"):
        return float(series.mean())
    if metric.endswith("_median"):
        return float(series.median())
    return float(np.percentile(series, 99))


#: Seeds a stochastic case is replayed with. A benchmark at a Poisson request rate, or with lengths
#: drawn from a distribution, is one draw of a random run; so is one simulation of it, and near
#: saturation two seeds' mean TTFT differ by up to 10%. The prediction is the mean over these
#: seeds (the expected value of the simulated figure), reported with its standard error.
REPLICATIONS = 5


def stochastic(ov: list[str]) -> bool:
    """Whether the scenario ``ov`` draws at random: anything but constant arrivals (offline, static
    batches) or a closed loop without think time, or lengths not fixed (the last override of each key
    counts, as hydra applies them). A run whose overrides pick a seed is that one draw."""
    last = dict(o.split("=", 1) for o in ov if "=" in o)
    if "seed" in last:
        return False
    arrival = last.get("workload.arrival")
    steady = arrival == "constant" or (arrival == "closed_loop" and float(last.get("workload.think_s", 0) or 0) == 0)
    fixed = all(last.get(f"workload.{k}.dist") == "fixed" for k in ("prompt_tokens", "output_tokens"))
    return not (steady and fixed)


def run_case(case, max_requests: int | None = None, extra: list[str] | None = None, runs: dict[str, list] | None = None) -> float:
    """The case's predicted figure (``runs``: a simulation cache shared by cases read from one run, as in :func:`_replay`)."""
    return _replay(case, overrides(case, max_requests) + list(extra or []), runs)[0]


def _replay(case, ov: list[str], runs: dict[str, list] | None = None) -> tuple[float, float, int]:
    """Simulate ``case`` under the overrides ``ov`` and measure its metric: the mean over
    :data:`REPLICATIONS` seeds when the scenario is :func:`stochastic` (else one run), the
    standard error of that mean, and the number of runs. ``runs`` caches the simulations by
    :func:`run_key`, so the cases read from one benchmark run (its TTFT and ITL) share them."""
    import warnings

    from simulator.api import run

    key = run_key(" ".join(ov))
    results = runs.get(key) if runs is not None else None
    if results is None:
        seeds = range(REPLICATIONS) if stochastic(ov) else (None,)
        with warnings.catch_warnings():  # a case replays a benchmark as it ran: advice about its settings is noise here
            warnings.simplefilter("ignore")
            results = [run(ov if seed is None else [*ov, f"seed={seed}"]) for seed in seeds]
        if runs is not None:
            runs[key] = results
    v = np.asarray([measure(case, r) for r in results])
    se = float(v.std(ddof=1) / math.sqrt(len(v))) if len(v) > 1 else 0.0
    return float(v.mean()), se, len(v)


def run_suite(cases: list[Case], max_requests: int | None = None, extra: list[str] | None = None, progress=None) -> pd.DataFrame:
    """One row per case: what was measured, what servesim predicts, the signed error."""
    rows: list[dict] = []
    plans: list[list[str] | Exception | None] = []  # each case's overrides, why they failed, or None (skipped)
    for case in cases:
        try:
            plans.append(None if case.skip else overrides(case, max_requests) + list(extra or []))
        except Exception as exc:  # a case the harness cannot express: reported with it below
            plans.append(exc)
    runs: dict[str, list] = {}  # run_key -> the simulations of one benchmark run (see _replay)
    pending = Counter(run_key(" ".join(ov)) for ov in plans if isinstance(ov, list))  # cases still to read each run
    for i, (case, ov) in enumerate(zip(cases, plans)):
        row = {
            "id": case.id, "split": case.split, "engine": case.engine, "preset": preset(case) if not case.skip else "",
            "version": str(case.raw.get("engine_version", "")), "hardware": case.hardware, "model": case.model,
            "tp": int(case.tp), "dtype": str(case.raw.get("weight_dtype", "")), "mode": case.workload.get("mode"),
            "isl": case.workload.get("input_tokens"), "osl": case.workload.get("output_tokens"),
            "metric": case.metric, "family": case.family, "unit": case.raw.get("unit", ""),
            "measured": float(case.value), "predicted": math.nan, "predicted_se": math.nan, "seeds": 0,
            "error": math.nan, "skipped": case.skip or "",
            "file": case.file, "overrides": "",
        }
        if isinstance(ov, Exception):
            row["skipped"] = f"servesim refused it: {ov}"
        elif ov is not None:
            try:
                row["overrides"] = " ".join(ov)
                key = run_key(row["overrides"])
                row["predicted"], row["predicted_se"], row["seeds"] = _replay(case, ov, runs)
                row["error"] = row["predicted"] / row["measured"] - 1
                pending[key] -= 1
                if pending[key] <= 0:  # no later case reads this run: let its results go
                    runs.pop(key, None)
            except Exception as exc:  # a case the simulator refuses (does not fit, ...): reported, not fatal
                row["skipped"] = f"servesim refused it: {exc}"
        rows.append(row)
        if progress:
            progress(i + 1, len(cases), row)
    return pd.DataFrame(rows)


#: resamples behind each 95% interval of :func:`error_table` (seeded: the same table every time)
BOOTSTRAP_RESAMPLES = 2000


def run_key(overrides: str) -> str:
    """The simulation a case replays: its overrides without its own ``name=``. Two metrics read
    from one benchmark run (its TTFT and its ITL), or one workload measured under several engine
    versions that share a preset, replay one simulation and are one independent sample."""
    return " ".join(o for o in str(overrides).split() if not o.startswith("name="))


def bootstrap_interval(errors: np.ndarray, runs: np.ndarray, q: float, resamples: int = BOOTSTRAP_RESAMPLES,
                       seed: int = 0) -> tuple[float, float]:
    """95% percentile interval of the q-quantile of ``errors``, resampling whole runs with replacement.

    Resampling runs, not cases, keeps cases that share a simulation together: counting the same
    prediction twice does not narrow the interval."""
    codes, n_runs = pd.factorize(runs)[0], len(set(runs))
    members = [np.flatnonzero(codes == k) for k in range(n_runs)]
    rng = np.random.default_rng(seed)
    stats = np.empty(resamples)
    for i in range(resamples):
        pick = rng.integers(0, n_runs, n_runs)
        stats[i] = np.quantile(np.concatenate([errors[members[k]] for k in pick]), q)
    lo, hi = np.quantile(stats, [0.025, 0.975])
    return float(lo), float(hi)


def _ran(df: pd.DataFrame) -> pd.DataFrame:
    """The cases that ran, with their |error| (``abs``) and the simulation each replays (``run``)."""
    ran = df[df["skipped"] == ""].copy()
    ran["abs"] = ran["error"].abs()
    ran["run"] = ran["overrides"].map(run_key) if "overrides" in ran else ran["id"]
    return ran


def _stats(sub: pd.DataFrame) -> dict:
    """Cases, independent runs, median and p90 |error| and the signed median of some ran cases."""
    return {
        "cases": len(sub), "runs": sub["run"].nunique(), "median_abs": float(sub["abs"].median()),
        "p90_abs": float(sub["abs"].quantile(0.9)), "signed_median": float(sub["error"].median()),
    }


def error_table(df: pd.DataFrame, intervals: bool = True) -> pd.DataFrame:
    """Median and p90 of |error| (and the signed median) per split and metric family, with the
    number of independent runs and, for split-wide rows, 95% bootstrap intervals over runs."""
    ran = _ran(df)
    groups = []
    for split in ("holdout", "fit", "all"):
        part = ran if split == "all" else ran[ran["split"] == split]
        for family in ["all", *sorted(part["family"].unique())]:
            sub = part if family == "all" else part[part["family"] == family]
            if len(sub):
                row = {"split": split, "family": family, **_stats(sub)}
                if intervals and family == "all":
                    err, runs = sub["abs"].to_numpy(), sub["run"].to_numpy()
                    row["median_lo"], row["median_hi"] = bootstrap_interval(err, runs, 0.5)
                    row["p90_lo"], row["p90_hi"] = bootstrap_interval(err, runs, 0.9)
                groups.append(row)
    return pd.DataFrame(groups)


def breakdown(df: pd.DataFrame, split: str = "holdout") -> pd.DataFrame:
    """One split's cases by engine preset, by GPU, and two slices (NVIDIA GPUs, FP8 weights): cases, runs,
    median and p90 |error|, signed median and how many are off by more than 15%."""
    ran = _ran(df)
    ran = ran[ran["split"] == split]
    slices = [(f"engine={preset}", ran[ran["preset"] == preset]) for preset in sorted(ran["preset"].unique())]
    slices += [(f"hardware={hw}", ran[ran["hardware"] == hw]) for hw in sorted(ran["hardware"].unique())]
    slices += [("NVIDIA GPUs", ran[~ran["hardware"].str.startswith("mi")]), ("FP8 weights", ran[ran["dtype"] == "fp8"])]
    rows = [{"group": name, **_stats(sub), "over_15": int((sub["abs"] > 0.15).sum())} for name, sub in slices if len(sub)]
    return pd.DataFrame(rows)


def sharing(df: pd.DataFrame) -> dict | None:
    """How the held-out cases share simulations: cases whose run holds another held-out case, runs with
    cases in both splits (and the held-out cases in them), and the 95% intervals of the held-out median
    and p90 when single cases rather than runs are resampled (None without held-out cases)."""
    ran = _ran(df)
    held = ran[ran["split"] == "holdout"]
    if held.empty:
        return None
    per_run = held.groupby("run").size()
    both = set(ran.loc[ran["split"] == "fit", "run"]) & set(held["run"])
    err, ids = held["abs"].to_numpy(), held["id"].to_numpy()
    return {
        "shared": int(per_run[per_run > 1].sum()), "runs_both": len(both), "held_in_both": int(held["run"].isin(both).sum()),
        "median_cases": bootstrap_interval(err, ids, 0.5), "p90_cases": bootstrap_interval(err, ids, 0.9),
    }


#: The engine overheads fitted to the fit split, their grids (seconds) and physical bounds.
OVERHEAD_GRID = {
    "latency.step_overhead_s": (0.00025, 0.0005, 0.001, 0.0015, 0.002, 0.003, 0.004, 0.006),
    "latency.step_overhead_per_seq_s": (0.0, 1e-6, 2e-6, 5e-6, 1e-5, 2e-5, 4e-5, 8e-5),
    "latency.request_overhead_s": (0.0, 0.002, 0.005, 0.01, 0.02, 0.04),
}


#: an engine needs at least this many fit-split cases before its overheads are fitted
MIN_FIT_CASES = 5


def _loss(cases: list[Case], values: dict, max_requests: int | None) -> float:
    extra = [f"{k}={v}" for k, v in values.items()]
    runs: dict[str, list] = {}
    errors = [math.log(_replay(c, overrides(c, max_requests) + extra, runs)[0] / float(c.value)) for c in cases]
    return float(np.mean(np.abs(errors)))


def fit_overheads(cases: list[Case], preset_name: str, max_requests: int | None = None, rounds: int = 5, say=None) -> dict:
    """Fit one engine preset's overheads to the fit-split cases run under it.

    Coordinate descent over :data:`OVERHEAD_GRID` (each key in turn, the others
    held), round after round until a round changes nothing (at most ``rounds``),
    minimising the mean |log(predicted / measured)|; the request
    overhead is fitted only when an online case (rate or concurrency) is
    among them, since offline figures cannot see it. An engine with fewer
    than :data:`MIN_FIT_CASES` fit cases keeps its preset's values. Returns
    the chosen values, the loss and the cases used.
    """
    from simulator.config.compose import compose

    used = [c for c in cases if not c.skip and c.split == "fit" and preset(c) == preset_name]
    base = compose([f"engine={preset_name}"]).latency
    values = {k: float(getattr(base, k.split(".", 1)[1])) for k in OVERHEAD_GRID}
    keys = [k for k in OVERHEAD_GRID if k != "latency.request_overhead_s" or any(c.workload["mode"] in ("rate", "concurrency") for c in used)]
    if len(used) < MIN_FIT_CASES:  # too few to fit three numbers honestly: keep the preset's documented values
        return {"values": values, "loss": math.nan, "cases": [c.id for c in used]}
    best = _loss(used, values, max_requests)
    for _ in range(rounds):
        start = dict(values)
        for key in keys:
            for candidate in OVERHEAD_GRID[key]:
                trial = {**values, key: candidate}
                loss = _loss(used, trial, max_requests)
                if loss < best - 1e-9:
                    best, values = loss, trial
            if say:
                say(f"{preset_name}: {key}={values[key]:g} (mean |log error| {best:.3f})")
        if values == start:  # converged: every key is at its best with the others held
            break
    else:
        if say:
            say(f"{preset_name}: still moving after {rounds} sweeps; these values are where the fit stopped")
    return {"values": values, "loss": best, "cases": [c.id for c in used]}
