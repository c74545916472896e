"""Records of a run and the summary computed from them."""

from simulator.metrics.recorder import REQUEST_COLUMNS, STEP_COLUMNS, Recorder
from simulator.metrics.summary import summarize

__all__ = ["REQUEST_COLUMNS", "STEP_COLUMNS", "Recorder", "summarize"]
