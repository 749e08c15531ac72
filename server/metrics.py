"""Prometheus metrics of the prediction server.

Names are kept from the earlier system so dashboards and alerts carry over;
latency and the served version are new. Every probability metric says which
probability it holds. The approval-rate gauge is a rolling mean over the last
decisions and is NaN until the first one, so an idle pod never looks like a
pod that declines everyone.

The per-decision histograms take a whole request's values in one call
(:class:`BatchHistogram`): observing a 100-row batch value by value cost
500 locked calls, more than scoring the batch without its booster call.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left
from collections import deque
from collections.abc import Iterator, Sequence
from itertools import accumulate, islice
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector
from prometheus_client.utils import INF, floatToGoString

# Seconds; from 1 ms to 10 s so that the 2 s p95 alert falls inside the buckets.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0,
)  # fmt: skip
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500)
# Up to this many values per call, bisecting in Python beats numpy's fixed
# cost per call (a few µs); past it, numpy's per-value cost wins.
_FEW_VALUES = 8


def _go_float(bound: float) -> str:
    """Spell a bucket bound as prometheus-client does in ``le`` labels."""
    spelled: str = floatToGoString(bound)  # type: ignore[no-untyped-call]
    return spelled


def _library_exposes_created() -> bool:
    """Whether prometheus-client's own histograms expose ``_created`` samples.

    It is configurable (``PROMETHEUS_DISABLE_CREATED_SERIES``); asking a
    throwaway histogram keeps :class:`BatchHistogram` consistent with it.
    """
    probe = Histogram("probe", "Probe.", registry=None)
    return any(s.name.endswith("_created") for s in next(iter(probe.collect())).samples)


class BatchHistogram(Collector):
    """A histogram without labels that observes many values per call.

    Exposed exactly as prometheus-client's ``Histogram`` (cumulative
    ``_bucket`` samples with ``le``, then ``_count``, ``_sum`` and, when the
    library exposes it, ``_created``), so dashboards cannot tell them apart.
    """

    _exposes_created: bool | None = None

    def __init__(
        self,
        name: str,
        documentation: str,
        *,
        buckets: Sequence[float],
        registry: CollectorRegistry,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.upper_bounds: tuple[float, ...] = (*(float(b) for b in buckets), INF)
        self._bounds_array = np.asarray(self.upper_bounds, dtype=np.float64)
        self._counts = [0] * len(self.upper_bounds)
        self._sum = 0.0
        self._created = time.time()
        self._lock = threading.Lock()
        if BatchHistogram._exposes_created is None:
            BatchHistogram._exposes_created = _library_exposes_created()
        registry.register(self)

    def observe(self, values: Sequence[float]) -> None:
        """Count each value in the bucket of the first upper bound it does not exceed."""
        # bisect_left and searchsorted(side="left") both put a value equal to
        # a bound in that bound's bucket: "le" means less than or equal.
        if len(values) <= _FEW_VALUES:
            buckets = [bisect_left(self.upper_bounds, value) for value in values]
            with self._lock:
                for bucket in buckets:
                    self._counts[bucket] += 1
                self._sum += sum(values)
            return
        observed = np.asarray(values, dtype=np.float64)
        indexes = np.searchsorted(self._bounds_array, observed, side="left")
        counts = np.bincount(indexes, minlength=len(self.upper_bounds)).tolist()
        total = float(observed.sum())
        with self._lock:
            for bucket, count in enumerate(counts):
                self._counts[bucket] += count
            self._sum += total

    def describe(self) -> Iterator[Metric]:
        """Name the family without samples, for the registry's duplicate check."""
        yield HistogramMetricFamily(self.name, self.documentation)

    def collect(self) -> Iterator[Metric]:
        """Return the family with cumulative bucket counts."""
        with self._lock:
            cumulative = list(accumulate(self._counts))
            total = self._sum
        family = HistogramMetricFamily(self.name, self.documentation)
        family.add_metric(
            [],
            [
                (_go_float(bound), float(count))
                for bound, count in zip(self.upper_bounds, cumulative, strict=True)
            ],
            total,
        )
        if self._exposes_created:
            family.add_sample(f"{self.name}_created", {}, self._created)
        yield family


class ServerMetrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self, *, approval_window: int = 1000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.predictions = Counter(
            "loan_predictions", "Scored applications by decision.", ["result"], registry=r
        )
        self.probability = BatchHistogram(
            "loan_prediction_probability",
            "Approval probability (1 - P(default)) of scored applications.",
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.default_probability = BatchHistogram(
            "loan_prediction_default_probability",
            "P(default) of scored applications.",
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.errors = Counter(
            "loan_prediction_errors", "Failed requests by kind.", ["kind"], registry=r
        )
        self.approval_rate = Gauge(
            "loan_approval_rate",
            "Share of approved applications over the last decisions; NaN before any.",
            registry=r,
        )
        self.income = BatchHistogram(
            "loan_request_income",
            "Annual income in requests (USD).",
            buckets=(10e3, 20e3, 30e3, 40e3, 50e3, 60e3, 80e3, 100e3, 150e3, 250e3, 500e3),
            registry=r,
        )
        self.amount = BatchHistogram(
            "loan_request_amount",
            "Requested loan amount (USD).",
            buckets=(1e3, 2.5e3, 5e3, 7.5e3, 10e3, 15e3, 20e3, 25e3, 35e3, 50e3),
            registry=r,
        )
        self.lti = BatchHistogram(
            "loan_request_lti_ratio",
            "Loan amount as a share of annual income in requests.",
            buckets=(0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.75, 1.0),
            registry=r,
        )
        self.batch_size = Histogram(
            "loan_batch_size", "Applications per batch request.", buckets=BATCH_BUCKETS, registry=r
        )
        self.latency = Histogram(
            "loan_request_latency_seconds",
            "Time to answer a request, by path.",
            ["path"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.model_info = Gauge(
            "loan_model_info",
            "The served model version (value 1).",
            ["name", "version"],
            registry=r,
        )
        self.approval_rate.set(float("nan"))
        self._approved_counter = self.predictions.labels(result="approved")
        self._declined_counter = self.predictions.labels(result="declined")
        self._recent: deque[bool] = deque(maxlen=approval_window)
        # Approvals among _recent, kept as decisions come and go, so that the
        # rate costs no pass over the whole window per request.
        self._recent_approvals = 0
        self._lock = threading.Lock()

    def observe_decisions(
        self,
        *,
        approved: Sequence[bool],
        default_probability: Sequence[float],
        applications: Sequence[dict[str, Any]],
    ) -> None:
        """Record a request's decisions (approved, P(default)) and their applications."""
        self.probability.observe([1.0 - p for p in default_probability])
        self.default_probability.observe(default_probability)
        approvals = sum(approved)
        self._approved_counter.inc(approvals)
        self._declined_counter.inc(len(approved) - approvals)
        with self._lock:
            self._remember(approved)
            self.approval_rate.set(self._recent_approvals / len(self._recent))
        self.income.observe([float(a["person_income"]) for a in applications])
        self.amount.observe([float(a["loan_amnt"]) for a in applications])
        self.lti.observe([float(a["loan_percent_income"]) for a in applications])

    def _remember(self, approved: Sequence[bool]) -> None:
        window = self._recent.maxlen or len(approved)
        kept = list(approved[-window:])
        leaving = len(self._recent) + len(kept) - window
        if leaving > 0:
            self._recent_approvals -= sum(islice(self._recent, leaving))
        self._recent.extend(kept)
        self._recent_approvals += sum(kept)
