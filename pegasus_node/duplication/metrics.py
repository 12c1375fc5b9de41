"""Prometheus metrics of the duplicators on this process (``/metrics``), the ones seed 002 tells operators to
watch: writes shipped, failed and skipped, mutations pending, the time lag, WAL loads that failed, and the
non-idempotent writes left out. One series per partition and duplication, read at scrape time."""

from __future__ import annotations

import weakref
from collections.abc import Iterator

from prometheus_client.core import REGISTRY, CounterMetricFamily, GaugeMetricFamily, Metric

_SOURCES: "weakref.WeakSet" = weakref.WeakSet()  # every live ServerDuplications of this process

_COUNTERS = (
    ("shipped_ops", "pegasus_dup_shipped_ops", "Writes shipped to the remote cluster and acknowledged"),
    ("failed_shipping_ops", "pegasus_dup_failed_shipping_ops", "Writes in shipments that failed (retried, skipped "
                                                               "or stopped by the fail mode)"),
    ("skipped_ops", "pegasus_dup_skipped_ops", "Writes dropped after repeated failures (FAIL_SKIP)"),
    ("load_failed", "pegasus_dup_load_file_failed", "Times the mutations to ship could not be loaded from the WAL"),
    ("non_idempotent_skipped", "pegasus_dup_disabled_non_idempotent_writes", "incr and check_and_set writes not "
                                                                             "shipped (not idempotent)"),
    ("lagging_writes", "pegasus_dup_lagging_writes", "Writes acknowledged by the remote cluster later than "
                                                     "[pegasus.server] dup_lagging_write_threshold_ms after they "
                                                     "were written"),
)
_GAUGES = (
    ("pending_mutations", "pegasus_dup_pending_mutations", "Committed mutations not yet confirmed by the remote"),
    ("time_lag_ms", "pegasus_dup_time_lag_ms", "Age of the newest shipped write while others wait, in ms"),
)
_LABELS = ["app_id", "partition_index", "dupid"]


def watch(source) -> None:
    """Report ``source``'s duplicators (a ServerDuplications) until it is garbage."""
    _SOURCES.add(source)


class _DuplicationCollector:
    def collect(self) -> Iterator[Metric]:
        families = [(key, CounterMetricFamily(name, text, labels=_LABELS)) for key, name, text in _COUNTERS]
        families += [(key, GaugeMetricFamily(name, text, labels=_LABELS)) for key, name, text in _GAUGES]
        for source in list(_SOURCES):
            for status in source.status():
                labels = [str(status["gpid"][0]), str(status["gpid"][1]), str(status["dupid"])]
                for key, family in families:
                    family.add_metric(labels, status[key])
        for _, family in families:
            yield family


REGISTRY.register(_DuplicationCollector())
