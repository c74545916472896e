"""The plan directory of a search: where its runs go, and its table and answer (plan.parquet, plan.csv, plan.json)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pandas as pd

from simulator.files import json_safe


def _plan_dir(out_dir: str | Path | None) -> Path:
    if out_dir is not None:
        d = Path(out_dir)
    else:
        now = datetime.now()
        d = base = Path("plans") / now.strftime("%Y-%m-%d") / now.strftime("%H-%M-%S")
        n = 0
        while d.exists():
            n += 1
            d = base.with_name(f"{base.name}-{n}")
    d.mkdir(parents=True, exist_ok=True)
    return d


def _write_plan(d: Path, table: pd.DataFrame, meta: dict) -> None:
    table.to_parquet(d / "plan.parquet", index=False)
    table.to_csv(d / "plan.csv", index=False)
    (d / "plan.json").write_text(json.dumps(json_safe(meta), indent=2) + "\n")


def _table(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame(rows)
