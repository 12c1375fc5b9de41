"""Latency percentiles from an HDR histogram (the ``hdrhistogram`` package), in microseconds."""

from __future__ import annotations

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: anything slower is recorded as one hour
SIGNIFICANT_DIGITS = 3
PERCENTILES = {"p50": 50.0, "p99": 99.0, "p999": 99.9, "p9999": 99.99}


class LatencyRecorder:
    def __init__(self) -> None:
        self._histogram = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)

    @property
    def count(self) -> int:
        return self._histogram.get_total_count()

    def record_seconds(self, seconds: float) -> None:
        micros = min(max(int(round(seconds * 1_000_000)), LOWEST_US), HIGHEST_US)
        self._histogram.record_value(micros)

    def summary(self) -> dict[str, float]:
        """``{count, min, mean, p50, p99, p999, p9999, max}``; latencies in µs (to 3 significant digits),
        all 0 when nothing was recorded."""
        h = self._histogram
        count = h.get_total_count()
        result: dict[str, float] = {"count": count}
        if count == 0:
            result.update({"min": 0, "mean": 0.0, **{k: 0 for k in PERCENTILES}, "max": 0})
            return result
        result["min"] = h.get_min_value()
        result["mean"] = round(h.get_mean_value(), 1)
        for name, percentile in PERCENTILES.items():
            result[name] = h.get_value_at_percentile(percentile)
        result["max"] = h.get_max_value()
        return result
