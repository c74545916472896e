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
