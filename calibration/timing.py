"""Timing primitives for the calibration harness: per-call samples and a summary.

On CUDA every call is bracketed by a pair of ``torch.cuda.Event`` s recorded on
the current stream (the GPU time of the call's kernels, as triton's
``do_bench`` measures it); the host synchronises once after the warm-up and
once after the timed calls. On CPU each call is bracketed by
``time.perf_counter`` (CPU ops are synchronous).
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import time
from collections.abc import Callable

import numpy as np
import torch


def _device(device) -> torch.device:
    d = torch.device(device)
    if d.type == "cuda" and d.index is None:
        d = torch.device("cuda", torch.cuda.current_device())
    return d


def time_fn(fn: Callable[[], object], *, device="cpu", warmup: int = 3, repeats: int = 10) -> np.ndarray:
    """Call ``fn`` ``warmup`` times untimed, then ``repeats`` times timed.

    Returns the per-call times in seconds (float64 array of length ``repeats``).
    """
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    if warmup < 0:
        raise ValueError(f"warmup must be non-negative, got {warmup}")
    dev = _device(device)
    if dev.type == "cuda":
        with torch.cuda.device(dev):
            for _ in range(warmup):
                fn()
            torch.cuda.synchronize(dev)
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(repeats)]
            for s, e in zip(starts, ends):
                s.record()
                fn()
                e.record()
            torch.cuda.synchronize(dev)
            return np.array([s.elapsed_time(e) / 1e3 for s, e in zip(starts, ends)], dtype=np.float64)
    if dev.type != "cpu":
        raise ValueError(f"time_fn supports cpu and cuda devices, got {dev}")
    for _ in range(warmup):
        fn()
    out = np.empty(repeats, dtype=np.float64)
    clock = time.perf_counter
    for i in range(repeats):
        t0 = clock()
        fn()
        out[i] = clock() - t0
    return out


def summarise(samples) -> dict:
    """Median, 10th and 90th percentiles and count of a sample of seconds."""
    a = np.asarray(samples, dtype=np.float64)
    if a.size == 0:
        raise ValueError("summarise needs at least one sample")
    p10, med, p90 = np.percentile(a, [10, 50, 90])
    return {"time_s": float(med), "p10_s": float(p10), "p90_s": float(p90), "repeats": int(a.size)}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass  # no /proc (not Linux): fall back to what platform knows
    return platform.processor() or platform.machine() or "unknown cpu"


def _nvidia_driver() -> str | None:
    exe = shutil.which("nvidia-smi")
    if exe is None:
        return None
    try:
        out = subprocess.run(
            [exe, "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except Exception:  # never fail provenance on a driver query
        return None
    lines = [ln.strip() for ln in out.stdout.splitlines() if ln.strip()]
    return lines[0] if out.returncode == 0 and lines else None


def device_info(device="cpu") -> dict:
    """Provenance of the measuring device (no hostname)."""
    dev = _device(device)
    if dev.type == "cuda":
        name = torch.cuda.get_device_name(dev)
        driver = _nvidia_driver()
    else:
        name = _cpu_model()
        driver = None
    return {
        "device": name,
        "device_kind": dev.type,
        "driver": driver,
        "cuda": torch.version.cuda,
        "torch": torch.__version__,
        "cpu_threads": int(torch.get_num_threads()),
        "cpu_count": os.cpu_count(),
    }
