"""Prometheus metrics of the prediction server.

Names are kept from the earlier system so dashboards and alerts carry over;
latency and the served version are new. Every probability metric says which
probability it holds. The approval-rate gauge is a rolling mean over the last
decisions and is NaN until the first one, so an idle pod never looks like a
pod that declines everyone.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

# Seconds; from 1 ms to 10 s so that the 2 s p95 alert falls inside the buckets.
LATENCY_BUCKETS = (
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 2.5, 5.0, 10.0,
)  # fmt: skip
PROBABILITY_BUCKETS = tuple(round(0.05 * i, 2) for i in range(1, 20))
BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500)


class ServerMetrics:
    """The server's metrics, in a registry of their own."""

    def __init__(self, *, approval_window: int = 1000) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.predictions = Counter(
            "loan_predictions", "Scored applications by decision.", ["result"], registry=r
        )
        self.probability = Histogram(
            "loan_prediction_probability",
            "Approval probability (1 - P(default)) of scored applications.",
            buckets=PROBABILITY_BUCKETS,
            registry=r,
        )
        self.default_probability = Histogram(
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
        self.income = Histogram(
            "loan_request_income",
            "Annual income in requests (USD).",
            buckets=(10e3, 20e3, 30e3, 40e3, 50e3, 60e3, 80e3, 100e3, 150e3, 250e3, 500e3),
            registry=r,
        )
        self.amount = Histogram(
            "loan_request_amount",
            "Requested loan amount (USD).",
            buckets=(1e3, 2.5e3, 5e3, 7.5e3, 10e3, 15e3, 20e3, 25e3, 35e3, 50e3),
            registry=r,
        )
        self.lti = Histogram(
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
        self._recent: deque[bool] = deque(maxlen=approval_window)
        self._lock = threading.Lock()

    def observe_decisions(
        self,
        decisions: Iterable[tuple[bool, float]],
        applications: Iterable[dict[str, float | str | int]],
    ) -> None:
        """Record decisions as (approved, P(default)) and their applications' fields."""
        with self._lock:
            approvals = 0
            total = 0
            for approved, default_probability in decisions:
                self.probability.observe(1.0 - default_probability)
                self.default_probability.observe(default_probability)
                self._recent.append(approved)
                approvals += approved
                total += 1
            self.predictions.labels(result="approved").inc(approvals)
            self.predictions.labels(result="declined").inc(total - approvals)
            self.approval_rate.set(sum(self._recent) / len(self._recent))
        for application in applications:
            self.income.observe(float(application["person_income"]))
            self.amount.observe(float(application["loan_amnt"]))
            self.lti.observe(float(application["loan_percent_income"]))
