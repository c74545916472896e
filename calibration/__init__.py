"""servesim calibration: measure a GPU with torch, fit step latencies, validate.

Shipped as ``simulator.calibration``. Only the measuring modules
(:mod:`.harness`, :mod:`.stack`, :mod:`.validate`) import torch, and only when
they run; the profile format (:mod:`.profile`), the predictor (:mod:`.fit`)
and the Vidur importer (:mod:`.vidur`) need numpy and pandas alone, so the
simulator can use profiles without torch installed.
"""
