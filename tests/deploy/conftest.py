"""Shared fixtures of the packaging checks: rendered chart, CRDs, metric names.

The chart is rendered by Helm itself, embedded as a library (helm-python-sdk),
once per ``ci/*-values.yaml`` scenario and cached for the session. The CRDs are
read from ``crds/`` at the repository root, the single source the chart copies.
Metric names come from the registries the server and the operator really
build (``server/metrics.py``, ``operator/metrics.py``), never from a list kept
here.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import helm_python as helm
import promql_parser
import pytest
import yaml
from prometheus_client import CollectorRegistry

from loanops.operator.metrics import OperatorMetrics
from loanops.server.metrics import ServerMetrics

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "loanops"
CRDS = ROOT / "crds"
SCENARIOS = sorted(path.name for path in (CHART / "ci").glob("*-values.yaml"))
RELEASE = "loanops"
NAMESPACE = "loanops-system"
# The Kubernetes version objects are validated against: the chart's minimum
# (kubeVersion >=1.29 in Chart.yaml) would miss fields deprecated since, so the
# check uses a fixed, currently supported release instead.
KUBERNETES_VERSION = "1.31.0"

Manifest = dict[str, Any]


def load_yaml_documents(text: str) -> list[Manifest]:
    """Parse a multi-document YAML string, dropping empty documents."""
    return [doc for doc in yaml.safe_load_all(text) if doc]


@functools.cache
def render_chart(scenario: str) -> tuple[Manifest, ...]:
    """Render the chart with one ci/ values file and return its objects."""
    values = yaml.safe_load((CHART / "ci" / scenario).read_text()) or {}
    return render_values(values)


def render_values(values: dict[str, Any], *, name: str = RELEASE) -> tuple[Manifest, ...]:
    """Render the chart with ``values`` (merged over values.yaml) into objects."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=name, namespace=NAMESPACE, is_install=True)
    objects: list[Manifest] = []
    for path, text in sorted(manifests.items()):
        if path.endswith((".yaml", ".yml")):
            objects.extend(load_yaml_documents(text))
    return tuple(objects)


def render_notes(values: dict[str, Any]) -> str:
    """Render only NOTES.txt for ``values``."""
    with helm.Chart.load(CHART) as chart:
        manifests = chart.render(values, name=RELEASE, namespace=NAMESPACE, is_install=True)
    return next(text for path, text in manifests.items() if path.endswith("NOTES.txt"))


def objects_of_kind(objects: tuple[Manifest, ...], kind: str) -> list[Manifest]:
    """The rendered objects of one kind."""
    return [obj for obj in objects if obj["kind"] == kind]


@pytest.fixture(params=SCENARIOS)
def scenario(request: pytest.FixtureRequest) -> str:
    """Each ci/*-values.yaml file of the chart, in turn."""
    return str(request.param)


@pytest.fixture
def rendered(scenario: str) -> tuple[Manifest, ...]:
    """The objects the chart renders for the current scenario."""
    return render_chart(scenario)


@pytest.fixture(scope="session")
def default_objects() -> tuple[Manifest, ...]:
    """The objects of the chart's default values (`helm template` as is)."""
    return render_values({})


@pytest.fixture(scope="session")
def monitoring_objects() -> tuple[Manifest, ...]:
    """The objects with every monitoring object switched on."""
    return render_chart("monitoring-values.yaml")


@functools.cache
def load_crds() -> dict[str, Manifest]:
    """The repository's CRDs by kind (LoanModel, DriftPolicy)."""
    crds = {}
    for path in sorted(CRDS.glob("*.yaml")):
        crd = yaml.safe_load(path.read_text())
        crds[crd["spec"]["names"]["kind"]] = crd
    return crds


@pytest.fixture(scope="session")
def crds() -> dict[str, Manifest]:
    """The LoanModel and DriftPolicy CRDs of crds/."""
    found = load_crds()
    assert set(found) == {"LoanModel", "DriftPolicy"}, f"crds/ holds {sorted(found)}"
    return found


def openapi_schema(crd: Manifest, version: str = "v1alpha1") -> Manifest:
    """The openAPIV3Schema of one served version of a CRD."""
    for entry in crd["spec"]["versions"]:
        if entry["name"] == version:
            return dict(entry["schema"]["openAPIV3Schema"])
    raise KeyError(f"{crd['metadata']['name']} serves no version {version!r}")


def exported_names(registry: CollectorRegistry) -> set[str]:
    """Every series name a registry exposes, whether or not it has samples yet.

    Labelled metrics show no sample before their first use, so the names come
    from each family's type the way the exposition format derives them:
    counters add ``_total``, histograms ``_bucket``, ``_sum`` and ``_count``.
    """
    suffixes = {
        "counter": ("_total", "_created"),
        "histogram": ("_bucket", "_sum", "_count", "_created"),
        "gauge": ("",),
    }
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in suffixes.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


@pytest.fixture(scope="session")
def server_metric_names() -> set[str]:
    """Series names the prediction server exports."""
    return exported_names(ServerMetrics().registry)


@pytest.fixture(scope="session")
def operator_metric_names() -> set[str]:
    """Series names the operator exports."""
    return exported_names(OperatorMetrics().registry)


# Grafana's own variables, replaced by plausible values before parsing a query.
GRAFANA_VARIABLES = {
    "$__rate_interval": "5m",
    "$__interval": "1m",
    "$__range": "1h",
    "${datasource}": "prometheus",
    "$namespace": "credit-risk",
    "$loanmodel": "loan-approval",
}


def substitute_grafana_variables(query: str) -> str:
    """A dashboard query with its $variables replaced, ready for a PromQL parser."""
    for variable, value in GRAFANA_VARIABLES.items():
        query = query.replace(variable, value)
    leftover = re.findall(r"\$\{?\w+", query)
    assert not leftover, f"unknown Grafana variables {leftover} in {query!r}"
    return query


def walk(node: Any) -> Iterator[Any]:
    """Every value nested in a JSON-like structure, the node itself first."""
    yield node
    if isinstance(node, dict):
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def metric_labels(metrics: Any) -> dict[str, set[str]]:
    """Label names of every series a metrics holder exports, by series name.

    Samples give the labels of whatever has been observed or is a custom
    collector; a labelled metric shows no sample before its first use, so its
    declared label names (prometheus_client keeps them in ``_labelnames``,
    with no public accessor) are added from the holder's attributes.
    """
    declared: dict[str, set[str]] = {}
    for metric in vars(metrics).values():
        names = getattr(metric, "_labelnames", None)
        if names is not None:
            declared[next(iter(metric.describe())).name] = set(names)
    labels: dict[str, set[str]] = {}
    for family in metrics.registry.collect():
        found = {key for sample in family.samples for key in sample.labels}
        for series in exported_names_of(family.name, family.type):
            own = found | declared.get(family.name, set())
            if series.endswith("_bucket"):
                own.add("le")
            else:
                own.discard("le")
            labels[series] = own
    return labels


def exported_names_of(name: str, kind: str) -> tuple[str, ...]:
    """The series names of one metric family of the given type."""
    if kind == "counter":
        return (f"{name}_total",)
    if kind == "histogram":
        return (f"{name}_bucket", f"{name}_sum", f"{name}_count")
    return (name,)


# Labels Prometheus attaches to every series scraped through a PodMonitor, and
# the one the servers' PodMonitor adds from the pod label loanops.io/loanmodel.
TARGET_LABELS = {"namespace", "pod", "container", "endpoint", "job", "instance"}
SERVER_TARGET_LABELS = TARGET_LABELS | {"loanmodel"}
# The operator's series name their object in loanmodel_namespace; its target
# label `namespace` is the operator's own namespace, so grouping by it is a bug.
OPERATOR_TARGET_LABELS = TARGET_LABELS - {"namespace"}


@pytest.fixture(scope="session")
def allowed_labels() -> dict[str, set[str]]:
    """For every exported series name, the labels a query may use with it."""
    allowed = {
        name: names | SERVER_TARGET_LABELS for name, names in metric_labels(ServerMetrics()).items()
    }
    for name, names in metric_labels(OperatorMetrics()).items():
        allowed[name] = names | OPERATOR_TARGET_LABELS
    return allowed


def promql_nodes(expression: Any) -> list[Any]:
    """Every node of a parsed PromQL expression, parents before children."""
    nodes: list[Any] = []
    promql_parser.walk(expression, pre_visit=lambda node: nodes.append(node))
    return nodes


def selectors(expression: Any) -> list[Any]:
    """The vector selectors (metric references) of a parsed expression."""
    # walk() descends from a range selector into its vector selector too.
    return [n for n in promql_nodes(expression) if isinstance(n, promql_parser.VectorSelector)]


def check_promql(query: str, allowed: dict[str, set[str]]) -> list[str]:
    """Problems of one query: unknown metrics, and labels a metric does not carry."""
    expression = promql_parser.parse(query)
    problems = []
    for selector in selectors(expression):
        if selector.name not in allowed:
            problems.append(f"{selector.name} is not exported")
            continue
        for matcher in selector.matchers.matchers:
            if matcher.name not in allowed[selector.name]:
                problems.append(f"{selector.name} has no label {matcher.name}")
    for node in promql_nodes(expression):
        grouping: list[str] = []
        if isinstance(node, promql_parser.AggregateExpr) and node.modifier is not None:
            grouping = list(node.modifier.labels)
        elif isinstance(node, promql_parser.BinaryExpr) and node.modifier is not None:
            matching = node.modifier.matching
            grouping = list(matching.labels) if matching is not None else []
        for selector in selectors(node):
            missing = set(grouping) - allowed.get(selector.name, set(grouping))
            if missing:
                problems.append(f"{selector.name} grouped by missing labels {sorted(missing)}")
    return problems
