"""The README and ``servesim --help`` name everything the package ships, so the lists cannot drift.

The README's configuration-group table lists every option of every group in
``scenarios/`` (the CPU calibration rig, ``hardware=cpu`` and
``model=tiny-llama``, is named in the paragraph below it instead), and the help
text's "Related tools" line names every console script of ``pyproject.toml``.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = ROOT / "scenarios"
TEST_RIGS = {"hardware": {"cpu"}, "model": {"tiny-llama"}}


def group_table() -> dict[str, set[str]]:
    """README group table: group -> the backticked names in its options column."""
    rows = {}
    for line in (ROOT / "README.md").read_text().splitlines():
        m = re.match(r"\| `([a-z_]+)` \| (.*?) \| .* \|$", line)
        if m and (SCENARIOS / m.group(1)).is_dir():
            rows[m.group(1)] = set(re.findall(r"`([^`=]+)`", m.group(2)))
    return rows


def test_readme_group_table_lists_every_shipped_option():
    table = group_table()
    groups = {p.name for p in SCENARIOS.iterdir() if p.is_dir() and not p.name.startswith("_")}
    assert groups - set(table) == set(), f"groups without a README row: {sorted(groups - set(table))}"
    for group in sorted(groups):
        shipped = {p.stem for p in (SCENARIOS / group).glob("*.yaml")} - TEST_RIGS.get(group, set())
        missing = shipped - table[group]
        assert not missing, f"README's `{group}` row leaves out {sorted(missing)}"
        unknown = {name for name in table[group] - shipped if re.fullmatch(r"[a-z0-9_.-]+", name)}
        unknown -= {"config.json"}  # model.hf_config=config.json, not a catalog entry
        assert not unknown, f"README's `{group}` row names {sorted(unknown)}, which scenarios/{group}/ lacks"


def test_readme_names_the_test_rigs():
    text = (ROOT / "README.md").read_text()
    for group, names in TEST_RIGS.items():
        for name in names:
            assert f"`{group}={name}`" in text


def test_help_names_every_console_script():
    scripts = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]) - {"servesim"}
    out = subprocess.run([sys.executable, "-m", "simulator.cli", "--help"], capture_output=True, text=True, check=True).stdout
    related = out[out.index("Related tools:"):out.index("Docs:")]
    assert {s for s in scripts if s not in related} == set()
