"""Argo CD: the project, the two Applications, the LoanModel health check.

The Lua health check runs in a real Lua interpreter (lupa) against LoanModel
statuses of each outcome. The ignoreDifferences expressions run in jq (the
language Argo CD's jqPathExpressions use) against an object as kopf leaves it.
The manifests of the synced folder are validated against the CRDs' schemas
and their CEL rules (cel-python).
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import celpy
import jsonschema
import pytest
import yaml
from lupa import LuaRuntime

from tests.deploy.conftest import ROOT, Manifest, openapi_schema, walk

ARGOCD = ROOT / "argocd"
LUA = ARGOCD / "health" / "loanmodel.lua"
REPO = "https://github.com/loanops/loanops.git"


def load(name: str) -> Manifest:
    """One YAML manifest under argocd/."""
    return dict(yaml.safe_load((ARGOCD / name).read_text()))


def run_health_check(obj: Manifest, script: str | None = None) -> dict[str, str]:
    """Run the Lua health check as Argo CD does: ``obj`` is a global table."""
    lua = LuaRuntime(unpack_returned_tuples=True)
    lua.globals().obj = lua.table_from(obj, recursive=True)
    # Argo CD runs the script as a chunk and reads the table it returns.
    result = lua.execute(script if script is not None else LUA.read_text())
    return {"status": result.status, "message": result.message}


def condition(kind: str, status: str, reason: str, message: str = "") -> Manifest:
    """A status condition as the operator writes it."""
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message or f"{kind} is {status}.",
        "lastTransitionTime": "2026-01-05T10:00:00Z",
    }


def loanmodel(generation: int = 3, status: Manifest | None = None) -> Manifest:
    """A LoanModel with an optional status."""
    obj: Manifest = {
        "apiVersion": "loanops.io/v1alpha1",
        "kind": "LoanModel",
        "metadata": {"name": "loan-approval", "namespace": "credit-risk", "generation": generation},
        "spec": {"data": {"uri": "/data/train.csv"}, "mlflow": {"trackingUri": "http://m",
                 "modelName": "loan-approval"}},
    }  # fmt: skip
    if status is not None:
        obj["status"] = status
    return obj


SERVED = condition("Ready", "True", "Serving", "Version 4 is served on 2 of 2 replicas.")
TRAINED = condition("Trained", "True", "TrainingSucceeded")


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (loanmodel(status={"observedGeneration": 3, "phase": "Ready",
                           "conditions": [TRAINED, SERVED]}), "Healthy"),
        (loanmodel(status=None), "Progressing"),
        (loanmodel(status={}), "Progressing"),
        (loanmodel(status={"observedGeneration": 3, "phase": "Training",
                           "conditions": [condition("Trained", "Unknown", "TrainingRunning"),
                                          condition("Ready", "False", "Training")]}),
         "Progressing"),
        (loanmodel(status={"observedGeneration": 3, "phase": "Rolling",
                           "conditions": [TRAINED, condition("Ready", "False", "Rolling")]}),
         "Progressing"),
        (loanmodel(status={"observedGeneration": 3, "phase": "AwaitingApproval",
                           "conditions": [TRAINED,
                                          condition("Ready", "False", "AwaitingApproval")]}),
         "Progressing"),
        # Ready from an older spec: the new one is not handled yet.
        (loanmodel(generation=4, status={"observedGeneration": 3, "phase": "Ready",
                                         "conditions": [TRAINED, SERVED]}), "Progressing"),
        (loanmodel(status={"observedGeneration": 3, "phase": "Failed",
                           "conditions": [condition("Ready", "False", "ServingFailed")]}),
         "Degraded"),
        # A failed retraining while the older champion is still served.
        (loanmodel(status={"observedGeneration": 3, "phase": "Ready",
                           "conditions": [condition("Trained", "False", "TrainingFailed",
                                                    "Job loan-approval-7f3 failed: OOMKilled."),
                                          SERVED]}), "Degraded"),
    ],
    ids=["ready", "no-status", "empty-status", "training", "rolling", "awaiting-approval",
         "older-generation", "failed-phase", "training-failed"],
)  # fmt: skip
def test_lua_health_check_outcomes(obj: Manifest, expected: str) -> None:
    health = run_health_check(obj)
    assert health["status"] == expected
    assert health["message"], "Argo CD shows the message next to the status"


def test_lua_health_check_reports_the_failure_message() -> None:
    failed = condition("Trained", "False", "TrainingFailed", "Job loan-approval-7f3 failed.")
    obj = loanmodel(status={"observedGeneration": 3, "phase": "Failed", "conditions": [failed]})
    assert run_health_check(obj)["message"] == "Job loan-approval-7f3 failed."


def test_argocd_cm_patch_embeds_the_tested_lua() -> None:
    data = load("argocd-cm-patch.yaml")["data"]
    assert data["resource.customizations.health.loanops.io_LoanModel"] == LUA.read_text()
    # The operator labels children app.kubernetes.io/instance=<LoanModel>;
    # label tracking would attribute them to an Application of that name.
    assert data["application.resourceTrackingMethod"] == "annotation"


def ignore_rules() -> list[Manifest]:
    """Every ignoreDifferences entry for loanops kinds, in the Application and argocd-cm."""
    rules = list(load("loanops-models.yaml")["spec"]["ignoreDifferences"])
    for key, text in load("argocd-cm-patch.yaml")["data"].items():
        if key.startswith("resource.customizations.ignoreDifferences."):
            rules.append({"kind": key.rsplit("_", 1)[1], **yaml.safe_load(text)})
    return rules


def test_ignore_rules_cover_both_kinds_everywhere() -> None:
    rules = ignore_rules()
    kinds = sorted(r["kind"] for r in rules)
    assert kinds == ["DriftPolicy", "DriftPolicy", "LoanModel", "LoanModel"]
    for rule in rules:
        assert "/status" in rule["jsonPointers"]


def jq_paths(expression: str, document: Manifest) -> list[list[Any]]:
    """The paths jq's path() yields for ``expression`` on ``document``."""
    jq = shutil.which("jq")
    assert jq, "jq evaluates the jqPathExpressions as Argo CD's gojq would"
    result = subprocess.run(
        [jq, "-c", f"[path({expression})]"], input=json.dumps(document),
        capture_output=True, text=True, check=True, timeout=10,
    )  # fmt: skip
    return list(json.loads(result.stdout))


def test_ignore_rules_hide_kopf_annotations_only() -> None:
    touched = loanmodel()
    touched["metadata"]["annotations"] = {
        "kopf.zalando.org/last-handled-configuration": "{}",
        "kopf.zalando.org/reconcile.abc": '{"started": "2026-01-05"}',
        "loanops.io/retrain": "2026-01-05T10:00:00Z",
    }
    touched["metadata"]["finalizers"] = ["kopf.zalando.org/KopfFinalizerMarker", "other/keep"]
    for rule in ignore_rules():
        paths = [p for e in rule["jqPathExpressions"] for p in jq_paths(e, touched)]
        assert sorted(paths) == [
            ["metadata", "annotations", "kopf.zalando.org/last-handled-configuration"],
            ["metadata", "annotations", "kopf.zalando.org/reconcile.abc"],
            ["metadata", "finalizers", 0],
        ], "the user's own annotations must still count as drift"
        # And a fresh object without annotations must not make jq fail.
        for expression in rule["jqPathExpressions"]:
            assert jq_paths(expression, loanmodel()) == []


def test_models_application_respects_ignored_fields_and_missing_crds() -> None:
    spec = load("loanops-models.yaml")["spec"]
    options = spec["syncPolicy"]["syncOptions"]
    assert "RespectIgnoreDifferences=true" in options
    assert "SkipDryRunOnMissingResource=true" in options
    assert spec["source"]["path"] == "argocd/models"
    assert (ROOT / spec["source"]["path"]).is_dir()


def test_applications_sync_chart_before_models() -> None:
    chart = load("loanops.yaml")
    models = load("loanops-models.yaml")
    wave = "argocd.argoproj.io/sync-wave"
    chart_wave = int(chart["metadata"]["annotations"][wave])
    assert chart_wave < int(models["metadata"]["annotations"][wave])
    source = chart["spec"]["source"]
    assert source["path"] == "charts/loanops"
    assert (ROOT / source["path"] / "Chart.yaml").exists()
    assert "ServerSideApply=true" in chart["spec"]["syncPolicy"]["syncOptions"]


def test_applications_stay_inside_their_project() -> None:
    project = load("project.yaml")
    assert project["kind"] == "AppProject"
    destinations = {(d["server"], d["namespace"]) for d in project["spec"]["destinations"]}
    for name in ("loanops.yaml", "loanops-models.yaml"):
        app = load(name)
        assert app["kind"] == "Application"
        assert app["spec"]["project"] == "loanops"
        assert app["spec"]["source"]["repoURL"] == REPO
        destination = app["spec"]["destination"]
        assert (destination["server"], destination["namespace"]) in destinations
    assert project["spec"]["sourceRepos"] == [REPO]
    assert "*" not in json.dumps(project["spec"]), "no wildcard in the project"


def test_project_allows_every_kind_the_chart_renders(
    monitoring_objects: tuple[Manifest, ...],
) -> None:
    spec = load("project.yaml")["spec"]
    cluster = {(e["group"], e["kind"]) for e in spec["clusterResourceWhitelist"]}
    namespaced = {(e["group"], e["kind"]) for e in spec["namespaceResourceWhitelist"]}
    for obj in monitoring_objects:
        group = obj["apiVersion"].rpartition("/")[0]
        scoped = "namespace" in obj["metadata"]
        assert (group, obj["kind"]) in (namespaced if scoped else cluster), obj["kind"]
    assert {("loanops.io", "LoanModel"), ("loanops.io", "DriftPolicy")} <= namespaced


def model_manifests() -> list[Manifest]:
    """The LoanModels and DriftPolicies of the synced folder."""
    return [yaml.safe_load(p.read_text()) for p in sorted((ARGOCD / "models").glob("*.yaml"))]


def cel_violations(schema: Manifest, value: Any, path: str = "") -> list[str]:
    """Messages of the x-kubernetes-validations rules ``value`` breaks."""
    broken = []
    environment = celpy.Environment()
    for rule in schema.get("x-kubernetes-validations", []):
        program = environment.program(environment.compile(rule["rule"]))
        if not program.evaluate({"self": celpy.json_to_cel(value)}):
            broken.append(f"{path}: {rule.get('message', rule['rule'])}")
    for name, child in schema.get("properties", {}).items():
        if isinstance(value, dict) and name in value:
            broken += cel_violations(child, value[name], f"{path}.{name}")
    return broken


def test_synced_manifests_match_the_crds(crds: dict[str, Manifest]) -> None:
    manifests = model_manifests()
    assert sorted(m["kind"] for m in manifests) == ["DriftPolicy", "LoanModel"]
    for manifest in manifests:
        schema = openapi_schema(crds[manifest["kind"]])
        # OpenAPI 3.0 schemas: boolean exclusiveMinimum, as in JSON Schema draft 4.
        jsonschema.Draft4Validator(schema).validate(manifest)
        assert cel_violations(schema, manifest) == []
    (policy,) = [m for m in manifests if m["kind"] == "DriftPolicy"]
    (model,) = [m for m in manifests if m["kind"] == "LoanModel"]
    assert policy["spec"]["modelRef"]["name"] == model["metadata"]["name"]


def test_crd_checks_reject_a_broken_loanmodel(crds: dict[str, Manifest]) -> None:
    (model,) = [m for m in model_manifests() if m["kind"] == "LoanModel"]
    schema = openapi_schema(crds["LoanModel"])
    wrong_type = json.loads(json.dumps(model))
    wrong_type["spec"]["training"]["maxEvals"] = "many"
    with pytest.raises(jsonschema.ValidationError, match="many"):
        jsonschema.Draft4Validator(schema).validate(wrong_type)
    local_with_secret = json.loads(json.dumps(model))
    local_with_secret["spec"]["data"]["uri"] = "/data/train.csv"
    assert cel_violations(schema, local_with_secret)


def test_argocd_folder_holds_only_what_is_documented() -> None:
    files = sorted(str(p.relative_to(ARGOCD)) for p in ARGOCD.rglob("*") if p.is_file())
    assert files == [
        "argocd-cm-patch.yaml",
        "health/loanmodel.lua",
        "loanops-models.yaml",
        "loanops.yaml",
        "models/driftpolicy.yaml",
        "models/loanmodel.yaml",
        "project.yaml",
    ]
    for path in ARGOCD.rglob("*.yaml"):
        for node in walk(yaml.safe_load(path.read_text())):
            assert node != "latest", path


def test_lua_runner_can_see_a_broken_script() -> None:
    # A script that always says Healthy must be told apart from the real one.
    always = 'return {status = "Healthy", message = "ok"}'
    obj = loanmodel(status={"phase": "Failed"})
    assert run_health_check(obj, always)["status"] == "Healthy"
    assert run_health_check(obj)["status"] == "Degraded"
    assert Path(LUA).read_text().count("return health") == 4
