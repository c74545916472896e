"""The notebooks in notebooks/ are kept in a shape CI and papermill can rely on.

Running them is nbmake's job (``pytest --nbmake notebooks``); these checks are
cheap and run with the rest of the suite: outputs stripped, a ``parameters``
cell first, no paths relative to the notebook.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parents[1] / "notebooks"
EXPECTED = {"what_if.ipynb", "trace_replay.ipynb", "capacity_planning.ipynb"}


def _load(name: str) -> dict:
    return json.loads((NOTEBOOKS / name).read_text())


def test_the_notebooks_are_all_there():
    assert EXPECTED <= {p.name for p in NOTEBOOKS.glob("*.ipynb")}


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_outputs_are_stripped(name):
    for i, cell in enumerate(_load(name)["cells"]):
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [], f"{name} cell {i} has outputs"
            assert cell["execution_count"] is None, f"{name} cell {i} has an execution count"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_title_then_a_parameters_cell(name):
    cells = _load(name)["cells"]
    assert cells[0]["cell_type"] == "markdown" and "".join(cells[0]["source"]).startswith("# ")
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code[0]["metadata"].get("tags") == ["parameters"], f"{name}: first code cell is not tagged parameters"
    assert all("parameters" not in c["metadata"].get("tags", []) for c in code[1:])


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_uses_the_package_api_not_relative_paths(name):
    source = "\n".join("".join(c["source"]) for c in _load(name)["cells"] if c["cell_type"] == "code")
    assert "simulator.run(" in source and "simulator.compose(" in source
    for relative in ("../", "./scenarios", "os.chdir", "initialize(config_path"):
        assert relative not in source, f"{name} uses {relative!r}"


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_no_empty_cells_and_a_closing_what_next(name):
    cells = _load(name)["cells"]
    assert all("".join(c["source"]).strip() for c in cells), f"{name} has an empty cell"
    last = cells[-1]
    assert last["cell_type"] == "markdown" and "what to try next" in "".join(last["source"]).lower()
