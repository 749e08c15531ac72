"""The Helm chart: it lints, renders valid objects for every ci/ scenario, asks
for no more rights than the operator uses, and keeps its CRDs in step with
crds/.

Rendering is Helm's own (helm-python-sdk), validation is against the schemas
of a fixed Kubernetes release (kubernetes-validate, strict: unknown fields
fail), so a typo in a template fails here rather than at `helm install`.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import helm_python as helm
import jsonschema
import kubernetes_validate
import pytest
import typer
import yaml

from loanops.cli import app
from tests.deploy.conftest import (
    CHART,
    CRDS,
    KUBERNETES_VERSION,
    NAMESPACE,
    SCENARIOS,
    Manifest,
    objects_of_kind,
    render_chart,
    render_notes,
    render_values,
    walk,
)

# Objects of API groups kubernetes-validate has no schema for; they are
# checked structurally in test_monitoring.py.
PROMETHEUS_OPERATOR = "monitoring.coreos.com/v1"

# What the operator reads and writes (its engineer's contract), as
# (API group, resource, verb); the namespaced Role holds exactly these.
OPERATOR_RIGHTS = {
    *{("loanops.io", r, v) for r in ("loanmodels", "driftpolicies") for v in
       ("get", "list", "watch", "patch")},
    *{("loanops.io", f"{r}/status", v) for r in ("loanmodels", "driftpolicies") for v in
       ("get", "patch", "update")},
    *{("batch", "jobs", v) for v in ("get", "list", "watch", "create", "delete")},
    *{("batch", "cronjobs", v) for v in ("get", "list", "watch", "create", "patch", "delete")},
    *{("apps", "deployments", v) for v in ("get", "list", "watch", "create", "patch")},
    *{("", "services", v) for v in ("get", "list", "watch", "create", "patch")},
    *{("", "pods", v) for v in ("get", "list", "watch")},
    *{(g, "events", v) for g in ("", "events.k8s.io") for v in ("create", "patch")},
}  # fmt: skip
CRD_DISCOVERY = {
    ("apiextensions.k8s.io", "customresourcedefinitions", v) for v in ("list", "watch")
}
NAMESPACE_DISCOVERY = {("", "namespaces", v) for v in ("list", "watch")}


def rights(role: Manifest) -> set[tuple[str, str, str]]:
    """A Role's or ClusterRole's rules as (group, resource, verb) triples."""
    return {
        (group, resource, verb)
        for rule in role.get("rules", [])
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }


def operator_container(objects: tuple[Manifest, ...]) -> Manifest:
    """The operator Deployment's only container."""
    (deployment,) = objects_of_kind(objects, "Deployment")
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    return dict(container)


def env_of(container: Manifest) -> dict[str, str]:
    """A container's plain environment variables."""
    return {item["name"]: item.get("value", "") for item in container.get("env", [])}


def test_chart_lints_without_warnings() -> None:
    report = helm.lint(CHART, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report["errors"]
    assert problems == []


@pytest.mark.parametrize("values_file", SCENARIOS)
def test_chart_lints_with_each_scenario(values_file: str) -> None:
    values = yaml.safe_load((CHART / "ci" / values_file).read_text()) or {}
    report = helm.lint(CHART, values, strict=True)
    assert [m for m in report["messages"] if m["severity"] >= 2] + report["errors"] == []


def test_scenario_objects_pass_kubernetes_schemas(rendered: tuple[Manifest, ...]) -> None:
    assert rendered, "the scenario rendered nothing"
    for obj in rendered:
        if obj["apiVersion"] == PROMETHEUS_OPERATOR:
            continue
        kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_strict_validation_rejects_a_misspelt_field(default_objects: tuple[Manifest, ...]) -> None:
    # The check above must be able to fail: a field Kubernetes does not know.
    (deployment,) = objects_of_kind(default_objects, "Deployment")
    broken = copy.deepcopy(deployment)
    broken["spec"]["replica"] = 1
    with pytest.raises(kubernetes_validate.ValidationError, match="replica"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_default_values_install_operator_crds_and_rbac(
    default_objects: tuple[Manifest, ...],
) -> None:
    kinds = sorted((obj["kind"], obj["metadata"]["name"]) for obj in default_objects)
    assert kinds == [
        ("ClusterRole", "loanops"),
        ("ClusterRoleBinding", "loanops"),
        ("CustomResourceDefinition", "driftpolicies.loanops.io"),
        ("CustomResourceDefinition", "loanmodels.loanops.io"),
        ("Deployment", "loanops"),
        ("ServiceAccount", "loanops"),
    ]


def test_no_rbac_rule_uses_a_wildcard_or_secrets(rendered: tuple[Manifest, ...]) -> None:
    roles = objects_of_kind(rendered, "Role") + objects_of_kind(rendered, "ClusterRole")
    for role in roles:
        for rule in role["rules"]:
            for field in ("apiGroups", "resources", "verbs", "resourceNames", "nonResourceURLs"):
                assert not any("*" in entry for entry in rule.get(field, [])), (role, rule)
            assert "secrets" not in rule["resources"], "children read Secrets via secretKeyRef"
            assert not {"escalate", "bind", "impersonate"} & set(rule["verbs"])


def test_cluster_wide_rbac_is_exactly_the_operator_contract(
    default_objects: tuple[Manifest, ...],
) -> None:
    (cluster_role,) = objects_of_kind(default_objects, "ClusterRole")
    assert rights(cluster_role) == OPERATOR_RIGHTS | CRD_DISCOVERY | NAMESPACE_DISCOVERY
    assert objects_of_kind(default_objects, "Role") == []


def test_one_namespace_gets_a_role_not_cluster_rights() -> None:
    objects = render_chart("single-namespace-values.yaml")
    (role,) = objects_of_kind(objects, "Role")
    assert role["metadata"]["namespace"] == "credit-risk"
    assert rights(role) == OPERATOR_RIGHTS
    # Cluster-wide, only the read-only CRD discovery kopf relies on remains.
    (cluster_role,) = objects_of_kind(objects, "ClusterRole")
    assert rights(cluster_role) == CRD_DISCOVERY
    (binding,) = objects_of_kind(objects, "RoleBinding")
    assert binding["metadata"]["namespace"] == "credit-risk"
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": "loanops", "namespace": NAMESPACE}
    ]


def test_bindings_point_at_rendered_roles_and_account(rendered: tuple[Manifest, ...]) -> None:
    roles = {("Role", o["metadata"]["namespace"], o["metadata"]["name"]) for o in rendered
             if o["kind"] == "Role"}  # fmt: skip
    cluster_roles = {o["metadata"]["name"] for o in objects_of_kind(rendered, "ClusterRole")}
    account = operator_pod_spec(rendered)["serviceAccountName"]
    bindings = objects_of_kind(rendered, "RoleBinding") + objects_of_kind(
        rendered, "ClusterRoleBinding"
    )
    assert bindings
    for binding in bindings:
        ref = binding["roleRef"]
        if ref["kind"] == "Role":
            assert ("Role", binding["metadata"]["namespace"], ref["name"]) in roles
        else:
            assert ref["name"] in cluster_roles
        assert binding["subjects"] == [
            {"kind": "ServiceAccount", "name": account, "namespace": NAMESPACE}
        ]


def operator_pod_spec(objects: tuple[Manifest, ...]) -> Manifest:
    """The pod spec of the operator Deployment."""
    (deployment,) = objects_of_kind(objects, "Deployment")
    return dict(deployment["spec"]["template"]["spec"])


def test_operator_runs_one_standalone_replica(rendered: tuple[Manifest, ...]) -> None:
    (deployment,) = objects_of_kind(rendered, "Deployment")
    assert deployment["spec"]["replicas"] == 1
    assert deployment["spec"]["strategy"] == {"type": "Recreate"}
    container = operator_container(rendered)
    assert "command" not in container, "the image's entrypoint (loanops) must stay PID 1"
    assert container["args"][:2] == ["operator", "--standalone"]


def test_operator_watches_the_listed_namespaces() -> None:
    cluster_wide = operator_container(render_chart("default-values.yaml"))["args"]
    assert "--all-namespaces" in cluster_wide
    assert not any(arg.startswith("--namespace") for arg in cluster_wide)
    listed = operator_container(render_chart("multi-namespace-values.yaml"))["args"]
    assert [a for a in listed if a.startswith("--namespace")] == [
        "--namespace=credit-risk",
        "--namespace=credit-risk-staging",
    ]
    assert "--all-namespaces" not in listed


def test_operator_probes_and_ports_agree(rendered: tuple[Manifest, ...]) -> None:
    container = operator_container(rendered)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert set(ports) == {"metrics", "healthz"}
    assert f"--liveness=http://0.0.0.0:{ports['healthz']}/healthz" in container["args"]
    assert f"--metrics-port={ports['metrics']}" in container["args"]
    assert env_of(container)["LOANOPS_OPERATOR_METRICS_PORT"] == str(ports["metrics"])
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "healthz"}


def test_operator_pod_runs_as_non_root(rendered: tuple[Manifest, ...]) -> None:
    pod = operator_pod_spec(rendered)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] > 0
    container = operator_container(rendered)
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]


def test_child_resources_are_valid_resource_requirements(rendered: tuple[Manifest, ...]) -> None:
    env = env_of(operator_container(rendered))
    for name in (
        "LOANOPS_OPERATOR_TRAINING_RESOURCES",
        "LOANOPS_OPERATOR_SERVING_RESOURCES",
        "LOANOPS_OPERATOR_DRIFT_RESOURCES",
    ):
        resources = json.loads(env[name])
        assert resources["requests"], name
        # Validated the way the API server will see it: inside a container.
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": "probe"},
            "spec": {"containers": [{"name": "c", "image": "x:1", "resources": resources}]},
        }
        kubernetes_validate.validate(pod, KUBERNETES_VERSION, strict=True)
    assert float(env["LOANOPS_OPERATOR_RESYNC_SECONDS"]) > 0


def all_images(objects: tuple[Manifest, ...]) -> list[str]:
    """Every image reference the operator runs or hands to its children."""
    container = operator_container(objects)
    env = env_of(container)
    return [
        container["image"],
        env["LOANOPS_OPERATOR_TRAINER_IMAGE"],
        env["LOANOPS_OPERATOR_SERVER_IMAGE"],
    ]


def test_images_are_pinned_never_latest(rendered: tuple[Manifest, ...]) -> None:
    for image in all_images(rendered):
        reference = r"[a-z0-9.\-/]+(:[\w][\w.\-]{0,127}|@sha256:[a-f0-9]{64})"
        assert re.fullmatch(reference, image), image
        assert not image.endswith(":latest"), image


def test_image_tag_digest_and_app_version_precedence() -> None:
    default = all_images(render_values({}))
    assert default == [
        "ghcr.io/loanops/loanops-operator:0.1.0",
        "ghcr.io/loanops/loanops-trainer:0.1.0",
        "ghcr.io/loanops/loanops-server:0.1.0",
    ]
    sha = "4f1c2e9d8b7a6c5d4e3f2a1b0c9d8e7f6a5b4c3d"
    digest = "sha256:" + "ab" * 32
    images = all_images(render_values({"imageTag": sha, "operator": {"image": {"digest": digest}}}))
    assert images == [
        f"ghcr.io/loanops/loanops-operator@{digest}",
        f"ghcr.io/loanops/loanops-trainer:{sha}",
        f"ghcr.io/loanops/loanops-server:{sha}",
    ]


def test_chart_crd_copies_are_identical_to_crds_folder() -> None:
    copies = {p.name: p.read_bytes() for p in (CHART / "files" / "crds").glob("*.yaml")}
    sources = {p.name: p.read_bytes() for p in CRDS.glob("*.yaml")}
    assert set(sources) == {"loanmodels.loanops.io.yaml", "driftpolicies.loanops.io.yaml"}
    assert set(copies) == set(sources)
    stale = [name for name in sources if copies[name] != sources[name]]
    assert not stale, f"run: cp crds/*.yaml charts/loanops/files/crds/ ({stale} differ)"


def test_rendered_crds_are_the_source_plus_keep_policy(
    default_objects: tuple[Manifest, ...], crds: dict[str, Manifest]
) -> None:
    rendered = {o["spec"]["names"]["kind"]: o for o in default_objects
                if o["kind"] == "CustomResourceDefinition"}  # fmt: skip
    assert set(rendered) == set(crds)
    for kind, source in crds.items():
        crd = copy.deepcopy(rendered[kind])
        annotations = crd["metadata"].pop("annotations")
        labels = crd["metadata"].pop("labels")
        expected = copy.deepcopy(source)
        expected_labels = expected["metadata"].pop("labels", {})
        expected["metadata"].pop("annotations", None)
        assert crd == expected, f"{kind}: the chart's CRD differs from crds/"
        assert expected_labels.items() <= labels.items()
        assert annotations["helm.sh/resource-policy"] == "keep"
        assert "Delete=false" in annotations["argocd.argoproj.io/sync-options"]
        assert int(annotations["argocd.argoproj.io/sync-wave"]) < 0


def test_crds_can_be_left_out_or_not_kept() -> None:
    kinds = {o["kind"] for o in render_chart("external-crds-values.yaml")}
    assert "CustomResourceDefinition" not in kinds
    unkept = render_values({"crds": {"keep": False}})
    for crd in objects_of_kind(unkept, "CustomResourceDefinition"):
        assert "helm.sh/resource-policy" not in crd["metadata"]["annotations"]


def test_existing_service_account_is_used_not_created() -> None:
    objects = render_chart("external-crds-values.yaml")
    assert objects_of_kind(objects, "ServiceAccount") == []
    assert operator_pod_spec(objects)["serviceAccountName"] == "loanops-operator"


def value_keys_without_comment(text: str) -> list[str]:
    """Keys of a values.yaml with neither a comment line above nor a trailing one."""
    missing = []
    previous = ""
    for line in text.splitlines():
        stripped = line.strip()
        key = re.match(r"^\s*([A-Za-z_][\w.\-]*):", line)
        if key and not line.lstrip().startswith("-"):
            commented = previous.startswith("#") or " # " in line
            if not commented:
                missing.append(key.group(1))
        if stripped:
            previous = stripped
    return missing


def test_every_value_is_commented() -> None:
    text = (CHART / "values.yaml").read_text()
    assert value_keys_without_comment(text) == []
    # The check itself must notice a bare key.
    assert value_keys_without_comment("# a\nfirst: 1\nsecond: 2\n") == ["second"]


def test_values_file_matches_schema_and_schema_is_closed() -> None:
    schema = json.loads((CHART / "values.schema.json").read_text())
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    jsonschema.Draft7Validator(schema).validate(values)
    # Every object level is closed, so a misspelt key is an error.
    for node in walk(schema):
        if isinstance(node, dict) and node.get("type") == "object" and "properties" in node:
            assert node.get("additionalProperties") is False, sorted(node["properties"])


@pytest.mark.parametrize(
    ("values", "complaint"),
    [
        ({"operator": {"watchNamespace": ["credit-risk"]}}, "watchNamespace"),
        ({"operator": {"watchNamespaces": ["Credit_Risk"]}}, "Credit_Risk"),
        ({"monitoring": {"prometheusRule": {"thresholds": {"latencySeconds": 3}}}}, "latencySec"),
        ({"defaults": {"server": {"resources": {"requests": {"cpu": "lots"}}}}}, "lots"),
        ({"operator": {"image": {"digest": "sha256:short"}}}, "sha256:short"),
    ],
)
def test_schema_refuses_bad_values(values: dict[str, Any], complaint: str) -> None:
    with pytest.raises(helm.HelmError, match=re.escape(complaint)):
        render_values(values)


def test_long_names_are_cut_to_63_characters() -> None:
    # Helm allows release names of up to 53 characters.
    objects = render_values({"monitoring": {"podMonitor": {"enabled": True}}}, name="r" * 53)
    for obj in objects:
        if obj["kind"] != "CustomResourceDefinition":
            assert len(obj["metadata"]["name"]) <= 63, obj["metadata"]["name"]
        for value in obj["metadata"].get("labels", {}).values():
            assert len(value) <= 63
    monitors = {o["metadata"]["name"] for o in objects_of_kind(objects, "PodMonitor")}
    assert len(monitors) == 2, "cut names must stay distinct"


def test_selector_labels_leave_out_chart_version(rendered: tuple[Manifest, ...]) -> None:
    (deployment,) = objects_of_kind(rendered, "Deployment")
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert not {"helm.sh/chart", "app.kubernetes.io/version"} & set(selector)
    assert selector.items() <= deployment["spec"]["template"]["metadata"]["labels"].items()


def test_notes_name_the_watch_scope() -> None:
    assert "all namespaces" in render_notes({})
    notes = render_notes({"operator": {"watchNamespaces": ["credit-risk"]}})
    assert "the namespaces credit-risk" in notes
    assert "kubectl apply --server-side -f crds/" in render_notes({"crds": {"install": False}})


def test_operator_arguments_parse_with_the_real_cli(rendered: tuple[Manifest, ...]) -> None:
    # Parsed (not run) by the `loanops operator` command itself, so an option
    # the CLI does not know, or a malformed value, fails here.
    args = operator_container(rendered)["args"]
    command = typer.main.get_command(app).commands[args[0]]  # type: ignore[attr-defined]
    context = command.make_context(args[0], list(args[1:]))
    assert context.params["standalone"] is True
    assert context.params["metrics_port"] == 8080
    assert context.params["liveness"].endswith(":8081/healthz")
    assert bool(context.params["namespace"]) != context.params["all_namespaces"]
