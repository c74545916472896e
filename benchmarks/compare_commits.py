"""Two commits side by side in one run: the rows of bench_scale.py for each, alternating.

    python benchmarks/compare_commits.py BASE [HEAD] [--rows startup,10k] [--big 100000] [--repeat 3]

The machine is shared and noisy, so figures are only compared within one run:
each commit is checked out in a temporary git worktree and every row is run
``--repeat`` times, alternating between the commits, keeping each one's best
wall time and its largest peak memory. ``HEAD`` may be ``.``: the working tree
as it is. The package is imported from each worktree (``PYTHONPATH``), its
scenario tree included.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_scale  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def checkout(commit: str, into: Path) -> Path:
    """A worktree of ``commit`` (or the working tree for ``.``) whose package finds its own scenarios."""
    if commit == ".":
        return ROOT
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", "-q", str(into), commit], check=True)
    # an editable install maps simulator.scenarios to this checkout's scenarios/: point the worktree at its own
    link = into / "simulator" / "scenarios"
    if not link.exists():
        link.symlink_to(into / "scenarios")
    return into


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("base")
    ap.add_argument("head", nargs="?", default=".")
    ap.add_argument("--rows", default="startup,10k", help="bench_scale rows (default: startup,10k)")
    ap.add_argument("--big", type=int, default=100_000, help="requests of the fleet row (default 100,000)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args(argv)
    defined = bench_scale.rows(args.big)
    chosen = [r.strip() for r in args.rows.split(",")]
    with tempfile.TemporaryDirectory() as tmp:
        trees = {c: checkout(c, Path(tmp) / f"tree{i}") for i, c in enumerate((args.base, args.head))}
        best: dict[tuple[str, str], dict] = {}
        try:
            for key in chosen:
                for _ in range(args.repeat):
                    for commit, tree in trees.items():
                        env = {**os.environ, "PYTHONPATH": str(tree)}
                        r = bench_scale.measure(defined[key][1], cwd=tree, env=env, warm=key == "startup-warm")
                        old = best.get((key, commit))
                        if old is None or r["wall_s"] < old["wall_s"]:
                            r["peak_mb"] = max(r["peak_mb"], old["peak_mb"]) if old else r["peak_mb"]
                            best[(key, commit)] = r
        finally:
            for tree in trees.values():
                if tree != ROOT:
                    subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)
    print(f"| run | commit | wall (best of {args.repeat}) | CPU | peak memory | engine steps/s |")
    print("|---|---|---:|---:|---:|---:|")
    for key in chosen:
        for commit in trees:
            r = best[(key, commit)]
            rate = "-" if key.startswith("startup") else f"{r['steps_per_s']:,.0f}"  # (start-up is not a rate)
            print(f"| {defined[key][0]} | {commit} | {r['wall_s']:.2f} s | {r['cpu_s']:.2f} s | {r['peak_mb']:,.0f} MB | {rate} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
