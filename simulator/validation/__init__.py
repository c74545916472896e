"""Validate servesim against a recorded benchmark of a real engine: read it, replay it, compare, calibrate.

:mod:`~simulator.validation.recording` (the data model and the reader
registry), one module per client format, :mod:`~simulator.validation.replay`
(the recording as a servesim workload), :mod:`~simulator.validation.compare`
(measured against simulated), :mod:`~simulator.validation.report` (Markdown
and charts), :mod:`~simulator.validation.calibrate` (fitting latency factors)
and :mod:`~simulator.validation.cli` (``servesim-validate``).
"""

from simulator.validation.formats import read_recording
from simulator.validation.recording import COLUMNS, FORMATS, Recording, RecordingError

__all__ = ["COLUMNS", "FORMATS", "Recording", "RecordingError", "read_recording"]
