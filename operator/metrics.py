"""The operator's own Prometheus metrics, served on its ``/metrics`` port.

Names carry the ``loanops_operator_`` prefix. Labels that name a Kubernetes
object are ``loanmodel_namespace``, ``loanmodel`` and ``driftpolicy``: a plain
``namespace`` label would clash with the one Prometheus attaches to every
scraped target (it would be renamed ``exported_namespace``).
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

# Training Jobs run from minutes to hours.
TRAINING_BUCKETS = (30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0)
OBJECT = ("loanmodel_namespace", "loanmodel")


class OperatorMetrics:
    """Every metric the operator exports, in one registry of its own."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = r = registry if registry is not None else CollectorRegistry()
        self.reconciliations = Counter(
            "loanops_operator_reconciliations",
            "Reconciliations by resource kind and result (ok or error).",
            ["kind", "result"],
            registry=r,
        )
        self.handler_errors = Counter(
            "loanops_operator_handler_errors",
            "Reconciliations that raised, by resource kind and error class.",
            ["kind", "error"],
            registry=r,
        )
        self.trainings = Counter(
            "loanops_operator_trainings",
            "Finished training Jobs by outcome (succeeded or failed).",
            ["outcome"],
            registry=r,
        )
        self.training_duration = Histogram(
            "loanops_operator_training_duration_seconds",
            "Time from a training Job's start to its end, by outcome.",
            ["outcome"],
            buckets=TRAINING_BUCKETS,
            registry=r,
        )
        self.promotions = Counter(
            "loanops_operator_promotions",
            "Promotion decisions (promoted, rejected, dry_run, awaiting_approval).",
            ["decision"],
            registry=r,
        )
        self.champion_promoted = Gauge(
            "loanops_operator_champion_promoted_timestamp_seconds",
            "When the champion version now served was promoted (Unix time).",
            [*OBJECT, "version"],
            registry=r,
        )
        self.training_failing = Gauge(
            "loanops_operator_training_failing",
            "1 while the latest training Job of a LoanModel has failed, else 0.",
            list(OBJECT),
            registry=r,
        )
        self.drift_score = Gauge(
            "loanops_operator_drift_score",
            "PSI of each field in the latest drift check of a DriftPolicy.",
            [*OBJECT, "driftpolicy", "field"],
            registry=r,
        )
        self.drift_detected = Gauge(
            "loanops_operator_drift_detected",
            "1 when the latest drift check of a DriftPolicy found drift, else 0.",
            [*OBJECT, "driftpolicy"],
            registry=r,
        )
        self.drift_checks = Counter(
            "loanops_operator_drift_checks",
            "Finished drift checks by result (drift, no_drift, insufficient_data, failed).",
            ["result"],
            registry=r,
        )

    def serve(self, port: int, host: str = "0.0.0.0") -> None:
        """Expose the registry over HTTP in a background thread."""
        start_http_server(port, addr=host, registry=self.registry)
