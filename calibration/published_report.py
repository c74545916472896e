"""The published-measurement suite's outputs: a chart and a Markdown report.

``servesim-calibrate published --out DIR`` writes ``published.csv`` (one row
per case), ``published.md`` (the error tables and every case) and
``published.png`` (predicted against measured, one panel per metric family).
docs/fidelity.md is written from them.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

#: Okabe-Ito colours (colour-blind safe): held-out cases in blue, fitted ones in orange.
SPLIT_COLORS = {"holdout": "#0072B2", "fit": "#E69F00"}
FAMILY_ORDER = ("throughput", "ttft", "tpot/itl", "e2e")


def chart(df: pd.DataFrame, path: Path) -> Path:
    """Predicted against measured on log axes, one panel per family and unit, with the +-15% band."""
    import matplotlib

    matplotlib.use("Agg")
    from importlib import resources

    import matplotlib.pyplot as plt

    style = str(resources.files("simulator.report").joinpath("servesim.mplstyle"))
    ran = df[df["skipped"] == ""].copy()
    seconds = ran["unit"] == "s"  # one latency unit per panel: ms
    ran.loc[seconds, ["measured", "predicted"]] *= 1e3
    ran.loc[seconds, "unit"] = "ms"
    counts = ran.groupby(["family", "unit"]).size()
    # a panel per family and unit; a unit with fewer than 3 cases (request throughput) stays in the table only
    panels = [(f, u) for f in FAMILY_ORDER for u in sorted(set(ran.loc[ran["family"] == f, "unit"]), reverse=True) if counts[(f, u)] >= 3]
    with plt.style.context(style):
        fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 3.6), squeeze=False)
        for ax, (family, unit) in zip(axes[0], panels):
            part = ran[(ran["family"] == family) & (ran["unit"] == unit)]
            lo = min(part["measured"].min(), part["predicted"].min()) / 1.4
            hi = max(part["measured"].max(), part["predicted"].max()) * 1.4
            ax.fill_between([lo, hi], [lo / 1.15, hi / 1.15], [lo * 1.15, hi * 1.15], color="0.85", lw=0, label="±15%")
            ax.plot([lo, hi], [lo, hi], color="0.4", lw=1)
            for split, color in SPLIT_COLORS.items():
                sub = part[part["split"] == split]
                ax.scatter(sub["measured"], sub["predicted"], s=16, color=color, label=f"{split} ({len(sub)})",
                           edgecolors="white", linewidths=0.4, zorder=3)
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlim(lo, hi)
            ax.set_ylim(lo, hi)
            ax.set_title(f"{family} ({unit})")
            ax.set_xlabel("measured")
            ax.set_ylabel("servesim")
            ax.legend(loc="upper left")
        fig.suptitle("servesim against published real-GPU measurements", fontweight="bold")
        fig.tight_layout()
        fig.savefig(path, metadata={"Software": None})
        plt.close(fig)
    return path


def _len(x) -> str:
    return f"{float(x):g}"


def _num(x: float) -> str:
    return f"{x:,.0f}" if abs(x) >= 100 else f"{x:.3g}"


def _predicted(r) -> str:
    """servesim's figure; a stochastic case's with the standard error of its mean over seeds."""
    seeds = int(getattr(r, "seeds", 1) or 1)
    return f"{_num(r.predicted)} ± {r.predicted_se:.2g} ({seeds} seeds)" if seeds > 1 else _num(r.predicted)


def _pct(x: float) -> str:
    return f"{x:+.1%}" if pd.notna(x) else ""


def _interval(lo: float, hi: float) -> str:
    return f"{lo:.1%}-{hi:.1%}" if pd.notna(lo) and pd.notna(hi) else ""


#: the error columns shown as percentages (the signed one with its sign)
PERCENT_COLUMNS = ("median_abs", "p90_abs", "signed_median")


def percentages(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of an error table (``error_table``, ``breakdown``) with its error columns as percentages."""
    out = frame.copy()
    for col in PERCENT_COLUMNS:
        out[col] = frame[col].map("{:+.1%}".format if col == "signed_median" else "{:.1%}".format)
    return out


def summary(table: pd.DataFrame) -> pd.DataFrame:
    """The error table as printed: percentages, and each split's 95% intervals beside its figures."""
    out = percentages(table[["split", "family", "cases", "runs", *PERCENT_COLUMNS]])
    for stat in ("median", "p90"):
        lo, hi = (table.get(f"{stat}_{end}", pd.Series(float("nan"), index=table.index)) for end in ("lo", "hi"))
        out[f"{stat}_95%"] = [_interval(a, b) for a, b in zip(lo, hi)]
    return out


def markdown(df: pd.DataFrame, table: pd.DataFrame, command: str, by: pd.DataFrame | None = None,
             shared: dict | None = None) -> str:
    """The report: error tables per split and family, the held-out cases by engine and GPU (``by``, from
    ``published.breakdown``) and how they share runs (``shared``, from ``published.sharing``),
    then every case with its signed error."""
    lines = [
        "# servesim against published measurements",
        "",
        f"Produced by `{command}`. Error = servesim / measured - 1 (a positive throughput error or a",
        "negative latency error means servesim is optimistic). Runs: the independent simulations behind",
        "the cases (two metrics of one benchmark run, or one workload under engine versions that share a",
        "preset, are one run); the 95% intervals resample runs with replacement (seeded bootstrap).",
        "A case run at a Poisson rate or with drawn lengths is simulated with several seeds: its figure",
        "is their mean, shown with the standard error of that mean.",
        "",
        "| split | family | cases | runs | median abs error (95%) | p90 abs error (95%) | signed median |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    shown = summary(table)
    for r, mid, tail in zip(table.itertuples(), shown["median_95%"], shown["p90_95%"]):
        lines.append(
            f"| {r.split} | {r.family} | {r.cases} | {r.runs} | {r.median_abs:.1%}{f' ({mid})' if mid else ''} | "
            f"{r.p90_abs:.1%}{f' ({tail})' if tail else ''} | {_pct(r.signed_median)} |"
        )
    if by is not None and len(by):
        lines += ["", "## Held out, by engine and GPU", "",
                  "| cases | n | runs | median abs error | p90 abs error | signed median | over 15% |", "|---|---:|---:|---:|---:|---:|---:|"]
        lines += [
            f"| {r.group} | {r.cases} | {r.runs} | {r.median_abs:.1%} | {r.p90_abs:.1%} | {_pct(r.signed_median)} | {r.over_15} |"
            for r in by.itertuples()
        ]
    if shared:
        lines += [
            "",
            f"{shared['shared']} held-out cases share their run with another held-out case; {shared['runs_both']} runs have cases "
            f"in both splits ({shared['held_in_both']} held-out cases in them). Resampling single cases instead of runs gives 95% "
            f"intervals of {_interval(*shared['median_cases'])} for the held-out median and {_interval(*shared['p90_cases'])} for its p90.",
        ]
    ran = df[df["skipped"] == ""].sort_values(["split", "family", "id"])
    lines += ["", "## Every case", "", "| id | split | engine | GPU | model | TP | dtype | ISL/OSL | mode | metric | measured | servesim | error |",
              "|---|---|---|---|---|---:|---|---|---|---|---:|---:|---:|"]
    for r in ran.itertuples():
        lines.append(
            f"| {r.id} | {r.split} | {r.preset} {r.version} | {r.hardware} | {r.model} | {r.tp} | {r.dtype} | {_len(r.isl)}/{_len(r.osl)} | "
            f"{r.mode} | {r.metric} | {_num(r.measured)} {r.unit} | {_predicted(r)} | {_pct(r.error)} |"
        )
    lines += ["", "Every case's exact servesim overrides are in the `overrides` column of `published.csv`."]
    skipped = df[df["skipped"] != ""]
    if len(skipped):
        lines += ["", "## Not run", "", "| id | why |", "|---|---|"]
        lines += [f"| {r.id} | {r.skipped} |" for r in skipped.itertuples()]
    return "\n".join(lines) + "\n"
