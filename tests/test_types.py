"""The type checker passes: mypy over the files and settings of ``[tool.mypy]`` in pyproject.toml.

This is how CI type-checks the package (``.ci/run`` runs the test suite; mypy
is in the ``test`` extra). The cache goes to a temporary folder, so nothing is
written into the repository.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
from mypy import api

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the module: the checks after the first reuse what it parsed."""
    return tmp_path_factory.mktemp("mypy")


def test_mypy_passes(cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)  # [tool.mypy] files are relative to the repository root
    out, err, code = api.run(["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache)])
    assert code == 0, f"mypy found problems (run `mypy` in the repository root):\n{out}{err}"


@pytest.mark.parametrize(
    "snippet, error",
    [
        ('def f(s: Summary) -> object:\n    return s["latency_s"]["ttft"]["p95"]\n', 'TypedDict "Stats" has no key "p95"'),
        ('def f(s: Summary) -> object:\n    return s["througput"]\n', 'TypedDict "Summary" has no key "througput"'),
        ("row: StepTuple = (0, 1, 0.0, 0.5)\n", 'Incompatible types in assignment'),
        ("from simulator.metrics.recorder import Recorder\n\ndef f(r: Recorder) -> None:\n    r.record_decode(r.decode_row(0, 1, 0.0, 0.5))\n",
         'Too few arguments'),
    ],
)
def test_the_output_contract_catches_a_wrong_key_or_row(
    cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, snippet: str, error: str
) -> None:
    """The typed summary and step row are not decoration: a misspelt key or a short row is an error."""
    monkeypatch.chdir(ROOT)
    code = "from simulator.metrics.recorder import StepTuple\nfrom simulator.metrics.sections import Summary\n\n" + snippet
    (tmp_path / "snippet.py").write_text(code)
    config = ["--config-file", str(ROOT / "pyproject.toml"), "--cache-dir", str(cache)]
    out, err, status = api.run([*config, "--no-error-summary", str(tmp_path / "snippet.py")])
    assert status == 1 and error in out, out + err


def test_the_recorded_step_tuple_matches_the_named_step_row() -> None:
    """StepTuple (what the engine records) and StepRow (names and types of steps.parquet) agree field by field."""
    from simulator.metrics.recorder import STEP_COLUMNS, StepRow, StepTuple

    assert typing.get_args(StepTuple) == tuple(typing.get_type_hints(StepRow).values())
    assert STEP_COLUMNS[:4] == ("replica", "step", "start_s", "duration_s")  # positions Recorder.cut_last_step uses


def test_the_short_rows_are_subsets_of_the_step_row() -> None:
    """DecodeTuple and PrefillTuple (what a plain decode step's and a prompt-only step's records are packed
    from, as their packers' signatures say) match DecodeStepRow and PrefillStepRow, whose every field is a
    StepRow column of the same type."""
    from simulator.metrics import recorder as r

    full = typing.get_type_hints(r.StepRow)
    for row, recorded, pack in ((r.DecodeStepRow, r.DecodeTuple, r.DecodePack), (r.PrefillStepRow, r.PrefillTuple, r.PrefillPack)):
        hints = typing.get_type_hints(row)
        assert typing.get_args(recorded) == tuple(hints.values()) == tuple(typing.get_args(pack)[0])
        assert all(full[name] is kind for name, kind in hints.items())
