"""Monitoring objects: what Prometheus scrapes, the alerts, the dashboard.

Every PromQL expression is parsed (promql-parser) and every metric and label
it names is compared with the registries of the server and the operator, so
an alert on a metric nobody exports, or grouped by a label its series lack,
fails here. The failure modes of the earlier system are asserted one by one:
a latency threshold beyond the histogram, an approval ratio without sum(), an
alert on idle pods, Prometheus scraping a load-balanced Service.
"""

from __future__ import annotations

import json
from typing import Any

import promql_parser
import pytest
import yaml

from loanops.server.metrics import LATENCY_BUCKETS
from tests.deploy.conftest import (
    CHART,
    Manifest,
    check_promql,
    objects_of_kind,
    promql_nodes,
    render_chart,
    render_values,
    selectors,
    substitute_grafana_variables,
)

ALERTS = {
    "HighErrorRate",
    "LowApprovalRate",
    "HighLatency",
    "TrainingFailing",
    "ModelStale",
    "DriftDetected",
}
# The labels the operator puts on its children (its engineer's contract).
SERVER_POD_LABELS = {
    "app.kubernetes.io/managed-by": "loanops",
    "app.kubernetes.io/name": "loanops-server",
    "app.kubernetes.io/instance": "loan-approval",
    "loanops.io/loanmodel": "loan-approval",
}
TRAINER_POD_LABELS = {**SERVER_POD_LABELS, "app.kubernetes.io/name": "loanops-trainer"}
DRIFT_POD_LABELS = {**SERVER_POD_LABELS, "app.kubernetes.io/name": "loanops-drift"}


def alert_rules(objects: tuple[Manifest, ...]) -> dict[str, Manifest]:
    """The alerting rules of the rendered PrometheusRule, by alert name."""
    (rule,) = objects_of_kind(objects, "PrometheusRule")
    return {r["alert"]: r for group in rule["spec"]["groups"] for r in group["rules"]}


def dashboard() -> dict[str, Any]:
    """The Grafana dashboard the chart ships."""
    return dict(json.loads((CHART / "dashboards" / "loanops.json").read_text()))


def dashboard_queries() -> list[tuple[str, str]]:
    """(panel title, query) of every target, template variables included."""
    board = dashboard()
    queries = [(p["title"], t["expr"]) for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            inner = variable["query"]["query"].removeprefix("label_values(").removesuffix(")")
            queries.append((variable["name"], inner.rsplit(",", 1)[0]))
    return queries


def strip_parens(node: Any) -> Any:
    """The expression inside any number of parentheses."""
    while isinstance(node, promql_parser.ParenExpr):
        node = node.expr
    return node


def assert_sum_of_counter_rates(node: Any) -> None:
    """``node`` is sum(rate(<counter>_total[...])) (or by some labels)."""
    node = strip_parens(node)
    assert isinstance(node, promql_parser.AggregateExpr), node.prettify()
    assert str(node.op) == "sum", node.prettify()
    call = strip_parens(node.expr)
    assert isinstance(call, promql_parser.Call), node.prettify()
    assert call.func.name == "rate", node.prettify()
    names = [selector.name for selector in selectors(call)]
    assert names
    assert all(name.endswith(("_total", "_count")) for name in names), names


def comparison_threshold(expression: Any) -> float:
    """The number on the right of a top-level comparison."""
    node = strip_parens(expression)
    while isinstance(node, promql_parser.BinaryExpr) and str(node.op) == "and":
        node = strip_parens(node.lhs)
    assert isinstance(node, promql_parser.BinaryExpr)
    assert isinstance(node.rhs, promql_parser.NumberLiteral), node.prettify()
    return float(node.rhs.val)


def test_monitoring_is_off_by_default(default_objects: tuple[Manifest, ...]) -> None:
    kinds = {obj["kind"] for obj in default_objects}
    assert not kinds & {"PodMonitor", "ServiceMonitor", "PrometheusRule", "ConfigMap"}


def test_prometheus_rule_has_the_six_alerts(monitoring_objects: tuple[Manifest, ...]) -> None:
    rules = alert_rules(monitoring_objects)
    assert set(rules) == ALERTS
    for rule in rules.values():
        assert rule["labels"]["severity"] in {"critical", "warning", "info"}
        assert rule["labels"]["team"] == "credit-risk", "alertLabels reach every alert"
        assert rule["annotations"]["summary"].endswith(".")


def test_alert_expressions_name_exported_metrics_and_labels(
    monitoring_objects: tuple[Manifest, ...], allowed_labels: dict[str, set[str]]
) -> None:
    for name, rule in alert_rules(monitoring_objects).items():
        assert check_promql(rule["expr"], allowed_labels) == [], name


def test_promql_check_catches_unknown_metrics_and_labels(
    allowed_labels: dict[str, set[str]],
) -> None:
    # The comparison must be able to fail: a made-up metric, a gauge read as a
    # counter, and an operator series grouped by the operator's own namespace.
    assert check_promql("rate(loan_requests_total[5m])", allowed_labels) == [
        "loan_requests_total is not exported"
    ]
    assert check_promql("loan_approval_rate_total", allowed_labels)
    assert check_promql("sum by (namespace) (loanops_operator_training_failing)", allowed_labels)
    assert check_promql('loan_predictions_total{kind="x"}', allowed_labels)


def test_high_latency_threshold_lies_on_a_latency_bucket(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    expression = promql_parser.parse(alert_rules(monitoring_objects)["HighLatency"]["expr"])
    threshold = comparison_threshold(expression)
    assert threshold == 2.0
    # A quantile above the largest finite bucket cannot be estimated, and one
    # between buckets is interpolated; on a bucket bound it is exact.
    assert threshold in LATENCY_BUCKETS
    assert threshold <= max(LATENCY_BUCKETS)
    quantile = strip_parens(expression.lhs)
    assert quantile.func.name == "histogram_quantile"
    assert quantile.args[0].val == 0.95
    (selector,) = selectors(quantile)
    assert selector.name == "loan_request_latency_seconds_bucket"
    assert "le" in strip_parens(quantile.args[1]).modifier.labels


def test_latency_thresholds_allowed_by_schema_are_buckets() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    thresholds = schema["properties"]["monitoring"]["properties"]["prometheusRule"]
    allowed = thresholds["properties"]["thresholds"]["properties"]["latencySeconds"]["enum"]
    assert set(allowed) <= set(LATENCY_BUCKETS)
    configured = alert_rules(render_chart("multi-namespace-values.yaml"))["HighLatency"]
    assert comparison_threshold(promql_parser.parse(configured["expr"])) == 1.0


@pytest.mark.parametrize("alert", ["HighErrorRate", "LowApprovalRate"])
def test_ratio_alerts_divide_sums_of_counter_rates(
    alert: str, monitoring_objects: tuple[Manifest, ...]
) -> None:
    expression = promql_parser.parse(alert_rules(monitoring_objects)[alert]["expr"])
    node = strip_parens(expression)
    if str(node.op) == "and":
        node = strip_parens(node.lhs)
    ratio = strip_parens(node.lhs)
    assert isinstance(ratio, promql_parser.BinaryExpr)
    assert str(ratio.op) == "/"
    assert_sum_of_counter_rates(ratio.lhs)
    assert_sum_of_counter_rates(ratio.rhs)


def test_low_approval_rate_needs_traffic_and_ignores_the_gauge(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    expression = promql_parser.parse(alert_rules(monitoring_objects)["LowApprovalRate"]["expr"])
    node = strip_parens(expression)
    assert str(node.op) == "and", "the ratio alone would also judge idle models"
    guard = strip_parens(node.rhs)
    assert str(guard.op) == ">="
    assert guard.rhs.val == 50
    (selector,) = selectors(guard)
    assert selector.name == "loan_predictions_total"
    assert any(
        isinstance(n, promql_parser.Call) and n.func.name == "increase" for n in promql_nodes(guard)
    )
    # The gauge is NaN before the first decision and per pod: never alert on it.
    assert "loan_approval_rate" not in {s.name for s in selectors(expression)}


def test_lifecycle_alerts_read_operator_series_per_object(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    rules = alert_rules(monitoring_objects)
    expected = {
        "TrainingFailing": "loanops_operator_training_failing",
        "ModelStale": "loanops_operator_champion_promoted_timestamp_seconds",
        "DriftDetected": "loanops_operator_drift_detected",
    }
    for alert, metric in expected.items():
        expression = promql_parser.parse(rules[alert]["expr"])
        assert [s.name for s in selectors(expression)] == [metric]
        groups = [n for n in promql_nodes(expression) if isinstance(n, promql_parser.AggregateExpr)]
        assert {"loanmodel_namespace", "loanmodel"} <= set(groups[0].modifier.labels)
    assert "30 * 86400" in rules["ModelStale"]["expr"]


def test_server_pod_monitor_selects_server_pods_by_http_port(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    assert objects_of_kind(monitoring_objects, "ServiceMonitor") == []
    monitors = {m["metadata"]["name"]: m for m in objects_of_kind(monitoring_objects, "PodMonitor")}
    servers = monitors["loanops-servers"]["spec"]
    selector = servers["selector"]["matchLabels"]
    assert selector.items() <= SERVER_POD_LABELS.items()
    assert not selector.items() <= TRAINER_POD_LABELS.items()
    assert not selector.items() <= DRIFT_POD_LABELS.items()
    (endpoint,) = servers["podMetricsEndpoints"]
    assert endpoint["port"] == "http"
    assert endpoint["path"] == "/metrics"
    assert servers["namespaceSelector"] == {"any": True}
    # The dashboard and alerts group by `loanmodel`, taken from the pod label.
    (relabel,) = endpoint["relabelings"]
    assert relabel["sourceLabels"] == ["__meta_kubernetes_pod_label_loanops_io_loanmodel"]
    assert relabel["targetLabel"] == "loanmodel"


def test_operator_pod_monitor_selects_the_operator_pod(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    (monitor,) = [
        m
        for m in objects_of_kind(monitoring_objects, "PodMonitor")
        if m["metadata"]["name"] == "loanops-operator"
    ]
    (deployment,) = objects_of_kind(monitoring_objects, "Deployment")
    pod = deployment["spec"]["template"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items()
    (endpoint,) = monitor["spec"]["podMetricsEndpoints"]
    ports = {p["name"] for c in pod["spec"]["containers"] for p in c["ports"]}
    assert endpoint["port"] == "metrics"
    assert endpoint["port"] in ports


def test_pod_monitor_follows_the_watched_namespaces() -> None:
    objects = render_chart("multi-namespace-values.yaml")
    (servers,) = [
        m for m in objects_of_kind(objects, "PodMonitor") if "servers" in m["metadata"]["name"]
    ]
    assert servers["spec"]["namespaceSelector"] == {
        "matchNames": ["credit-risk", "credit-risk-staging"]
    }


def test_monitoring_labels_are_configurable(monitoring_objects: tuple[Manifest, ...]) -> None:
    for kind in ("PodMonitor", "PrometheusRule"):
        for obj in objects_of_kind(monitoring_objects, kind):
            assert obj["metadata"]["labels"]["release"] == "kube-prometheus-stack", kind
    (config_map,) = objects_of_kind(monitoring_objects, "ConfigMap")
    assert config_map["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert config_map["metadata"]["namespace"] == "monitoring"
    assert config_map["metadata"]["annotations"] == {"grafana_folder": "Credit risk"}


def test_monitoring_objects_have_the_prometheus_operator_shape(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    # No schema of monitoring.coreos.com is available offline; these are the
    # fields the Prometheus Operator requires or would reject as unknown.
    for monitor in objects_of_kind(monitoring_objects, "PodMonitor"):
        assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
        assert set(monitor["spec"]) == {"selector", "namespaceSelector", "podMetricsEndpoints"}
        for endpoint in monitor["spec"]["podMetricsEndpoints"]:
            assert set(endpoint) <= {"port", "path", "interval", "scrapeTimeout", "relabelings"}
    (rule,) = objects_of_kind(monitoring_objects, "PrometheusRule")
    for group in rule["spec"]["groups"]:
        assert set(group) == {"name", "rules"}
        for entry in group["rules"]:
            assert set(entry) == {"alert", "expr", "for", "labels", "annotations"}


def test_dashboard_config_map_carries_the_dashboard_file(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    (config_map,) = objects_of_kind(monitoring_objects, "ConfigMap")
    assert json.loads(config_map["data"]["loanops.json"]) == dashboard()


def test_dashboard_queries_name_exported_metrics_and_labels(
    allowed_labels: dict[str, set[str]],
) -> None:
    queries = dashboard_queries()
    assert len(queries) >= 15
    for title, query in queries:
        assert check_promql(substitute_grafana_variables(query), allowed_labels) == [], title


def test_dashboard_covers_serving_drift_and_training() -> None:
    by_title: dict[str, list[str]] = {}
    for title, query in dashboard_queries():
        by_title.setdefault(title, []).append(query)
    metrics = {
        title: {s.name for q in queries for s in selectors(promql_parser.parse(
            substitute_grafana_variables(q)))}
        for title, queries in by_title.items()
    }  # fmt: skip
    assert "loan_request_latency_seconds_count" in metrics["Request rate"]
    assert "loan_prediction_default_probability_bucket" in metrics["P(default) distribution"]
    assert "loan_prediction_errors_total" in metrics["Errors"]
    assert "loan_model_info" in metrics["Served version"]
    assert "loanops_operator_drift_score" in metrics["Drift score per field"]
    assert "loanops_operator_trainings_total" in metrics["Training outcomes"]
    quantiles = sorted(
        strip_parens(promql_parser.parse(substitute_grafana_variables(q))).args[0].val
        for q in by_title["Prediction latency"]
    )
    assert quantiles == [0.5, 0.95, 0.99]


def test_dashboard_approval_rate_is_a_ratio_of_sums() -> None:
    (query,) = [q for title, q in dashboard_queries() if title == "Approval rate"]
    ratio = strip_parens(promql_parser.parse(substitute_grafana_variables(query)))
    assert str(ratio.op) == "/"
    assert_sum_of_counter_rates(ratio.lhs)
    assert_sum_of_counter_rates(ratio.rhs)


def test_dashboard_panels_use_the_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"]
    assert board["title"] == "loanops"
    for panel in board["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    positions = [tuple(p["gridPos"].values()) for p in board["panels"]]
    assert len(positions) == len(set(positions)), "two panels share a place"


def test_rule_thresholds_follow_values() -> None:
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    thresholds = values["monitoring"]["prometheusRule"]["thresholds"]
    rules = alert_rules(
        render_values(
            {"monitoring": {"prometheusRule": {"enabled": True, "thresholds": {"minDecisions": 7}}}}
        )
    )
    guard = strip_parens(strip_parens(promql_parser.parse(rules["LowApprovalRate"]["expr"])).rhs)
    assert guard.rhs.val == 7
    error = promql_parser.parse(rules["HighErrorRate"]["expr"])
    assert comparison_threshold(error) == thresholds["errorRatio"]
