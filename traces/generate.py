"""Write servesim's small synthetic sample traces, one per supported format.

    python traces/generate.py [OUT_DIR]      # default: this folder

Every sample is generated here from a fixed seed (numpy), not copied from any
published trace, so it can ship with the repository. The numbers only look
like production traffic (lognormal lengths around the Azure 2023
conversation trace's medians, bursty arrivals, multi-turn sessions that share
system prompts); they exist to exercise the readers, the replay controls and
the docs, not to stand for any real service.

Files (a few hundred rows each, well under 200 KB):

    sample_azure.csv        Azure LLM inference CSV: TIMESTAMP, ContextTokens, GeneratedTokens
    sample_burstgpt.csv     BurstGPT CSV: Timestamp, Model, Request tokens, Response tokens, Total tokens, Log Type
    sample_mooncake.jsonl   Mooncake JSONL: timestamp (ms), input_length, output_length, hash_ids (512-token blocks)
    sample_servesim.parquet servesim's schema: arrival_s, prompt_tokens, output_tokens, tenant, priority,
                            session_id, prefix_ids (256-token blocks, in the file's metadata)
"""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20250101
HERE = Path(__file__).resolve().parent


def _lognormal(rng: np.random.Generator, median: float, sigma: float, n: int, lo: int, hi: int) -> np.ndarray:
    return np.clip(np.round(median * np.exp(sigma * rng.standard_normal(n))), lo, hi).astype(np.int64)


def _bursty_gaps(rng: np.random.Generator, n: int, rate: float, cv: float) -> np.ndarray:
    """Gamma inter-arrival gaps with mean 1/rate and coefficient of variation cv."""
    shape = 1.0 / (cv * cv)
    return rng.gamma(shape, 1.0 / (rate * shape), size=n)


def azure(out: Path, n: int = 400) -> Path:
    """One rate swell over ~100 s; 7-digit fractional seconds like the published file."""
    rng = np.random.default_rng([SEED, 1])
    t = np.cumsum(_bursty_gaps(rng, n, rate=4.0, cv=1.2))
    t += 0.3 * np.sin(t / 15.0)  # a gentle swell, still in order
    t = np.maximum.accumulate(t)
    prompt = _lognormal(rng, 1020, 0.99, n, 2, 14000)
    output = _lognormal(rng, 129, 0.86, n, 7, 1000)
    t0 = datetime(2023, 11, 16, 18, 15, 46)
    ticks = np.round(t * 1e7).astype(np.int64)  # 100 ns ticks
    lines = ["TIMESTAMP,ContextTokens,GeneratedTokens"]
    for k, p, o in zip(ticks.tolist(), prompt.tolist(), output.tolist()):
        stamp = t0 + timedelta(seconds=k // 10_000_000)
        lines.append(f"{stamp:%Y-%m-%d %H:%M:%S}.{k % 10_000_000:07d},{p},{o}")
    path = out / "sample_azure.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def burstgpt(out: Path, n: int = 400) -> Path:
    """Bursty (CV 3) arrivals in seconds, two models, conversation and API logs."""
    rng = np.random.default_rng([SEED, 2])
    t = np.round(np.cumsum(_bursty_gaps(rng, n, rate=1.5, cv=3.0)), 3)
    gpt4 = rng.random(n) < 0.25
    prompt = np.where(gpt4, _lognormal(rng, 900, 1.1, n, 1, 30000), _lognormal(rng, 450, 1.2, n, 1, 16000))
    output = np.where(gpt4, _lognormal(rng, 300, 0.8, n, 1, 4000), _lognormal(rng, 180, 0.9, n, 1, 4000))
    api = rng.random(n) < 0.3
    lines = ["Timestamp,Model,Request tokens,Response tokens,Total tokens,Log Type"]
    for ti, g, p, o, a in zip(t.tolist(), gpt4.tolist(), prompt.tolist(), output.tolist(), api.tolist()):
        lines.append(f"{ti:g},{'GPT-4' if g else 'ChatGPT'},{p},{o},{p + o},{'API log' if a else 'Conversation log'}")
    path = out / "sample_burstgpt.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


class _Blocks:
    """Chained prefix-block ids: equal ids at position k mean equal content up to the end of block k."""

    def __init__(self, block: int) -> None:
        self.block = block
        self.ids: dict[tuple, int] = {}

    def hash_ids(self, segments: list[tuple[tuple, int]]) -> list[int]:
        """``segments``: (content key, tokens) runs making up the prompt."""
        out, parent, pos = [], -1, 0
        runs = [(key, start, start + length) for key, length, start in _with_starts(segments)]
        total = runs[-1][2] if runs else 0
        while pos < total:
            end = min(pos + self.block, total)
            covered = tuple((k, max(a, pos) - a, min(b, end) - a) for k, a, b in runs if a < end and b > pos)
            key = (parent, covered)
            parent = self.ids.setdefault(key, len(self.ids))
            out.append(parent)
            pos = end
        return out


def _with_starts(segments):
    start = 0
    for key, length in segments:
        yield key, length, start
        start += length


def _sessions(rng: np.random.Generator, n: int, block: int, rate: float, systems: int, warmup: float = 300.0):
    """Multi-turn chat sessions: turn k's prompt is a shared system prompt plus turns 1..k-1 and their answers.

    Sessions start as a Poisson process of ``rate`` per second from ``-warmup``;
    only turns at t >= 0 are kept (the first ``n`` of them).

    Returns rows (arrival_s, prompt, output, hash_ids, session, system) in time order.
    """
    blocks = _Blocks(block)
    sys_tokens = rng.integers(600, 2400, size=systems)
    rows = []
    session, t_start = 0, -warmup  # sessions already under way at t=0: a steady rate from the start
    while t_start < 0 or sum(r[0] >= 0 for r in rows) < 2 * n:
        t_start += rng.exponential(1.0 / rate)
        system = int(rng.integers(systems))
        turns = int(rng.integers(1, 7))
        segments = [(("sys", system), int(sys_tokens[system]))]
        t = t_start
        for k in range(turns):
            user = int(_lognormal(rng, 300, 1.0, 1, 4, 6000)[0])
            answer = int(_lognormal(rng, 150, 0.8, 1, 2, 1500)[0])
            segments.append((("user", session, k), user))
            prompt = sum(length for _, length in segments)
            rows.append((t, prompt, answer, blocks.hash_ids(segments), session, system))
            segments.append((("answer", session, k), answer))
            t += 5.0 + rng.exponential(20.0)  # reading and typing
        session += 1
    rows = sorted((r for r in rows if r[0] >= 0), key=lambda r: r[0])
    return rows[:n]


def mooncake(out: Path, n: int = 300) -> Path:
    rng = np.random.default_rng([SEED, 3])
    rows = _sessions(rng, n, block=512, rate=0.4, systems=4)
    t0 = rows[0][0]
    path = out / "sample_mooncake.jsonl"
    with path.open("w") as fh:
        for t, prompt, answer, ids, _, _ in rows:
            fh.write(
                json.dumps(
                    {
                        "timestamp": int(round((t - t0) * 1000)),
                        "input_length": prompt,
                        "output_length": answer,
                        "hash_ids": ids,
                    }
                )
                + "\n"
            )
    return path


def servesim(out: Path, n: int = 300) -> Path:
    rng = np.random.default_rng([SEED, 4])
    rows = _sessions(rng, n, block=256, rate=0.5, systems=3)
    t0 = rows[0][0]
    tenants = np.array(["chat", "code", "support"])
    table = pa.table(
        {
            "arrival_s": pa.array([round(r[0] - t0, 6) for r in rows], pa.float64()),
            "prompt_tokens": pa.array([r[1] for r in rows], pa.int64()),
            "output_tokens": pa.array([r[2] for r in rows], pa.int64()),
            "tenant": pa.array([str(tenants[r[5]]) for r in rows], pa.string()),
            "priority": pa.array([0 if r[5] == 0 else 1 for r in rows], pa.int64()),
            "session_id": pa.array([f"s{r[4]:04d}" for r in rows], pa.string()),
            "prefix_ids": pa.array([r[3] for r in rows], pa.list_(pa.int64())),
        }
    ).replace_schema_metadata({b"prefix_block_tokens": b"256", b"source_format": b"synthetic (traces/generate.py)"})
    path = out / "sample_servesim.parquet"
    pq.write_table(table, path, compression="zstd")
    return path


def main(out: str | Path = HERE) -> list[Path]:
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    return [azure(out), burstgpt(out), mooncake(out), servesim(out)]


if __name__ == "__main__":
    for p in main(sys.argv[1] if len(sys.argv) > 1 else HERE):
        print(f"{p} ({p.stat().st_size / 1024:.1f} KB)")
