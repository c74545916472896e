"""The recorder packs step rows, inter-token gaps and ended requests into numpy
blocks as a run goes (bounded memory); packing often must change nothing."""

from __future__ import annotations

import json
import warnings

import pandas as pd
import pytest

import simulator
from simulator.metrics import recorder
from tests.test_fast_forward import CASES


def _run(overrides: list[str]):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return simulator.run([*overrides, "workload.num_requests=300", "output.console=false", "output.charts=false"])


@pytest.mark.parametrize("name", ["failure-retry", "mooncake-sample-8", "shed-and-retry", "autoscale-failures-random"])
def test_packing_every_few_rows_changes_nothing(name, monkeypatch):
    whole = _run(CASES[name])
    monkeypatch.setattr(recorder, "PACK_ROWS", 37)
    packed = _run(CASES[name])
    pd.testing.assert_frame_equal(whole.requests, packed.requests, check_exact=True)
    pd.testing.assert_frame_equal(whole.steps, packed.steps, check_exact=True)
    assert json.dumps(whole.summary, sort_keys=True, default=str) == json.dumps(packed.summary, sort_keys=True, default=str)


def test_a_narrow_count_column_widens_before_it_overflows():
    import numpy as np

    from simulator.metrics.columns import Column

    col = Column(np.int32)
    col.extend(np.array([1.0, 2.0, 3.0]))
    assert col.data.dtype == np.int32
    col.extend(np.array([2.0**40, -5.0]))
    assert col.data.dtype == np.int64
    assert col.values().tolist() == [1, 2, 3, 2**40, -5]


def test_a_column_keeps_every_value_as_it_grows_and_widens():
    """Blocks appended past the capacity again and again (it grows eightfold), a widening on the
    way: the column is their concatenation."""
    import numpy as np

    from simulator.metrics.columns import Column

    rng = np.random.default_rng(0)
    blocks = [rng.integers(-1000, 1000, size=int(n)).astype(np.float64) for n in rng.integers(1, 9000, size=40)]
    blocks[25][3] = 2.0**35  # out of int32: the column widens to int64 there
    col = Column(np.int32)
    for block in blocks:
        col.extend(block)
    assert col.data.dtype == np.int64
    assert col.values().tolist() == np.concatenate(blocks).astype(np.int64).tolist()


def _steps_file_by_whole_table(result, path, row_group: int) -> None:
    from simulator.metrics.steps import parquet_options

    result.steps.to_parquet(path, index=False, row_group_size=row_group, **parquet_options(result.steps.columns))


@pytest.mark.parametrize("name", ["failure-retry", "mooncake-sample-8", "disaggregated-chunked-2x"])
def test_steps_parquet_written_a_row_group_at_a_time_is_the_whole_tables_file(name, monkeypatch, tmp_path):
    """steps.parquet comes from the packed rows in row groups: byte for byte the file the
    whole int64 table writes with the same row groups, pool column and pandas metadata included."""
    from simulator.metrics import steps as steps_module

    overrides = CASES[name]
    monkeypatch.setattr(steps_module, "ROW_GROUP", 97)
    streamed = _run(overrides)
    rows = streamed.packed_steps
    assert isinstance(rows, steps_module.StepRows) and len(rows) > 3 * 97  # several row groups
    rows.to_parquet(tmp_path / "streamed.parquet")
    assert rows._table is None  # written without making the whole table
    _steps_file_by_whole_table(streamed, tmp_path / "whole.parquet", 97)
    assert (tmp_path / "streamed.parquet").read_bytes() == (tmp_path / "whole.parquet").read_bytes()
    back = pd.read_parquet(tmp_path / "streamed.parquet")
    pd.testing.assert_frame_equal(back, streamed.steps, check_exact=True)


def test_steps_parquet_encodes_columns_that_hardly_repeat_without_a_dictionary(tmp_path):
    """Counts that grow and times are written DELTA_BINARY_PACKED and BYTE_STREAM_SPLIT
    (faster to write and smaller than a dictionary that overflows); the rest keep theirs."""
    import pyarrow.parquet as pq

    result = _run(CASES["failure-retry"])
    result.packed_steps.to_parquet(tmp_path / "steps.parquet")
    meta = pq.ParquetFile(tmp_path / "steps.parquet").metadata.row_group(0)
    encodings = {meta.column(i).path_in_schema: meta.column(i).encodings for i in range(meta.num_columns)}
    assert "DELTA_BINARY_PACKED" in encodings["step"] and "DELTA_BINARY_PACKED" in encodings["kv_tokens"]
    assert "BYTE_STREAM_SPLIT" in encodings["start_s"] and "BYTE_STREAM_SPLIT" in encodings["duration_s"]
    assert "RLE_DICTIONARY" in encodings["replica"] and "RLE_DICTIONARY" not in encodings["start_s"]
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "steps.parquet"), result.steps, check_exact=True)


def test_the_public_steps_table_has_int64_counts_and_is_made_once():
    import numpy as np

    from simulator.metrics.recorder import _STEP_INT

    result = _run(CASES["failure-retry"])
    rows = result.packed_steps
    assert rows.frame["decode_seqs"].dtype == np.int32  # packed: 4 bytes a count
    table = result.steps
    assert all(table[c].dtype == np.int64 for c in _STEP_INT)
    assert result.steps is table  # made once...
    assert rows.frame is table  # ... and the packed columns let go


@pytest.mark.parametrize("values", [["completed", "rejected", "completed", "", None], [], ["a"] * 3, [None, None], ["s1", "s2", "s3"]])
def test_a_text_column_is_what_pandas_makes_of_it(values):
    """The requests table's text columns: each distinct string converted once, the same array as
    ``pd.array(values, dtype="string")`` (type, dtype, values and missing ones)."""
    import numpy as np

    from simulator.metrics.recorder import _strings

    column = np.asarray(values, dtype=object)
    want, got = pd.array(column, dtype="string"), _strings(column)
    assert type(got) is type(want) and got.dtype == want.dtype
    pd.testing.assert_extension_array_equal(got, want)
