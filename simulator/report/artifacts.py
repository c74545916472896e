"""The files a run directory holds beyond its data: the latency CDFs, the cluster timeline,
the Perfetto trace. Registered with :data:`simulator.api.ARTIFACT_WRITERS` on import
(``import simulator`` does it), so :meth:`simulator.api.Result.save` writes them
without the API importing the report layer. matplotlib loads only when a chart is drawn.
"""

from __future__ import annotations

from pathlib import Path

from simulator.api import ARTIFACT_WRITERS, Result
from simulator.files import CDF_CHART, PERFETTO_FILE, TIMELINE_CHART


def write_run_artifacts(result: Result, out: Path, charts: bool, perfetto: bool) -> None:
    """The Perfetto trace when ``perfetto``; the latency CDFs and (for tiers, autoscaling or
    failures) the cluster timeline when ``charts``."""
    if perfetto:
        from simulator.report.perfetto import export as export_perfetto

        export_perfetto(result, out / PERFETTO_FILE)
    if charts:
        from simulator.report.charts import latency_cdf_chart
        from simulator.report.timeline import cluster_timeline_chart, wants_cluster_timeline

        latency_cdf_chart(result, out / CDF_CHART)
        if wants_cluster_timeline(result.config):
            cluster_timeline_chart(result, out / TIMELINE_CHART)


if write_run_artifacts not in ARTIFACT_WRITERS:
    ARTIFACT_WRITERS.append(write_run_artifacts)
