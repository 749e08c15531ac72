"""The CRDs in ``crds/`` checked as the API server would, without a cluster.

``crd_validation`` plays the API server (pruning, defaulting, OpenAPI and CEL
validation); these tests hold the CRDs to the structural-schema rules, run the
manifests users copy (``examples/``, ``argocd/models/``) and a set of invalid
ones through it, keep the CRD defaults equal to the pydantic models in
``loanops.operator.resources``, and check that what the operator writes into
``status`` is neither refused nor pruned.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from celpy import celtypes
from pydantic import BaseModel

from loanops.operator.conditions import (
    DRIFTED,
    PROMOTED,
    READY,
    SERVING,
    TRAINED,
    Condition,
    merge_conditions,
)
from loanops.operator.resources import API_VERSION, DriftPolicySpec, LoanModelSpec
from loanops.operator.settings import OperatorSettings
from tests.operator.crd_validation import (
    ROOT_FIELDS,
    Rejection,
    UndeclaredPathError,
    admit,
    apply_defaults,
    child_schema,
    evaluate_rule,
    format_path,
    merge_patch,
    openapi_schema,
    resolve_json_path,
    scalar_defaults,
    schema_rejections,
    to_cel,
    walk_schema,
)

ROOT = Path(__file__).resolve().parents[2]
MANIFEST_FOLDERS = (ROOT / "examples", ROOT / "argocd" / "models")
KINDS = ("LoanModel", "DriftPolicy")
SPECS: dict[str, type[BaseModel]] = {"LoanModel": LoanModelSpec, "DriftPolicy": DriftPolicySpec}

# The smallest manifests the CRDs accept: required fields only.
MINIMAL: dict[str, dict[str, Any]] = {
    "LoanModel": {
        "apiVersion": API_VERSION,
        "kind": "LoanModel",
        "metadata": {"name": "minimal"},
        "spec": {
            "data": {"uri": "s3://lending-data/applications/"},
            "mlflow": {"trackingUri": "http://mlflow:5000", "modelName": "loan-approval"},
        },
    },
    "DriftPolicy": {
        "apiVersion": API_VERSION,
        "kind": "DriftPolicy",
        "metadata": {"name": "minimal"},
        "spec": {"modelRef": {"name": "loan-approval"}, "schedule": "0 * * * *"},
    },
}

# The same plus each optional object whose fields have defaults, holding only
# its required fields, so that every CRD default is reached by defaulting.
WITH_OPTIONAL_OBJECTS: dict[str, dict[str, Any]] = {
    "LoanModel": {
        "spec.data.credentialsSecret": {"name": "lending-data-s3"},
        "spec.mlflow.credentialsSecret": {"name": "mlflow-credentials"},
        "spec.serving.apiKeySecret": {"name": "loan-approval-api-key"},
        "spec.serving.predictionLog": {
            "uri": "s3://lending-data/prediction-log/",
            "credentialsSecret": {"name": "lending-data-s3"},
        },
    },
    "DriftPolicy": {},
}

DELETE = object()


def changed(kind: str, changes: dict[str, Any]) -> dict[str, Any]:
    """The minimal manifest of ``kind`` with dotted paths set (or removed with DELETE)."""
    manifest = copy.deepcopy(MINIMAL[kind])
    for dotted, value in changes.items():
        *parents, leaf = dotted.split(".")
        node = manifest
        for part in parents:
            node = node.setdefault(part, {})
        if value is DELETE:
            del node[leaf]
        else:
            node[leaf] = copy.deepcopy(value)
    return manifest


def lookup(value: Any, path: tuple[str, ...]) -> Any:
    """The value at ``path`` inside nested dicts; KeyError names the missing step."""
    for depth, part in enumerate(path):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(".".join(path[: depth + 1]))
        value = value[part]
    return value


def user_manifests() -> Iterator[Any]:
    """Every LoanModel and DriftPolicy document in the folders users copy from."""
    for folder in MANIFEST_FOLDERS:
        for path in sorted(folder.glob("*.yaml")):
            documents = [d for d in yaml.safe_load_all(path.read_text()) if d]
            for index, document in enumerate(documents):
                if document.get("kind") in KINDS:
                    name = f"{path.relative_to(ROOT)}#{index}"
                    yield pytest.param(document, id=name)


# -- structural schema ----------------------------------------------------------------------


def _properties(crd: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema node by path, but the root's apiVersion, kind and metadata.

    Those three belong to the API server: a CRD may leave ``metadata`` a bare
    object and give the other two short descriptions.
    """
    for path, node in walk_schema(openapi_schema(crd)):
        if path and path[0] not in ROOT_FIELDS:
            yield ".".join(str(p) for p in path), node


@pytest.mark.parametrize("kind", KINDS)
def test_schema_every_field_has_description(crds: dict[str, Any], kind: str) -> None:
    # Items and map values of scalars ("[]", "{}" steps) are described by
    # their field; objects and every named field need their own text, which
    # is what `kubectl explain` prints.
    missing = [
        path
        for path, node in _properties(crds[kind])
        if (not path.endswith(("[]", "{}")) or node.get("type") == "object")
        and not str(node.get("description") or "").strip()
    ]
    assert missing == []


@pytest.mark.parametrize("kind", KINDS)
def test_schema_every_node_has_a_type(crds: dict[str, Any], kind: str) -> None:
    types = {"object", "array", "string", "integer", "number", "boolean"}
    untyped = [
        format_path(path) or "<root>"
        for path, node in walk_schema(openapi_schema(crds[kind]))
        if node.get("type") not in types
    ]
    assert untyped == []


@pytest.mark.parametrize("kind", KINDS)
def test_schema_every_object_declares_its_fields(crds: dict[str, Any], kind: str) -> None:
    open_objects, ambiguous, itemless = [], [], []
    for path, node in _properties(crds[kind]):
        declared = [
            k
            for k in ("properties", "additionalProperties", "x-kubernetes-preserve-unknown-fields")
            if k in node
        ]
        if node.get("type") == "object" and not declared:
            open_objects.append(path)
        # A structural schema may not say both (the API server refuses the CRD).
        if "properties" in node and "additionalProperties" in node:
            ambiguous.append(path)
        if node.get("type") == "array" and not isinstance(node.get("items"), dict):
            itemless.append(path)
    assert (open_objects, ambiguous, itemless) == ([], [], [])


@pytest.mark.parametrize("kind", KINDS)
def test_schema_defaults_are_valid_values(crds: dict[str, Any], kind: str) -> None:
    # The API server refuses a CRD whose default would itself be rejected.
    invalid = {}
    for path, node in walk_schema(openapi_schema(crds[kind])):
        if "default" in node:
            found = schema_rejections(node, apply_defaults(node, node["default"]))
            if found:
                invalid[format_path(path)] = found
    assert invalid == {}


@pytest.mark.parametrize("kind", KINDS)
def test_cel_rules_compile_and_name_real_fields(crds: dict[str, Any], kind: str) -> None:
    rules = 0
    for path, node in walk_schema(openapi_schema(crds[kind])):
        for rule in node.get("x-kubernetes-validations") or []:
            rules += 1
            # On the defaults of an empty object: each rule must parse and give
            # a boolean; what the rules refuse is the invalid cases' business.
            verdict = evaluate_rule(rule["rule"], to_cel(node, apply_defaults(node, {})))
            assert isinstance(verdict, celtypes.BoolType), (format_path(path), rule["rule"])
            if "fieldPath" in rule:
                resolve_json_path(node, rule["fieldPath"])
            assert rule.get("message", "").strip(), rule["rule"]
    assert rules > 0


# -- defaulting -----------------------------------------------------------------------------


def test_defaults_fill_children_of_default_objects(crds: dict[str, Any]) -> None:
    spec = admit(crds["LoanModel"], MINIMAL["LoanModel"]).stored["spec"]

    # training, promotion and serving are absent; `default: {}` creates them,
    # then their own fields are defaulted.
    assert spec["training"]["maxEvals"] == 20
    assert spec["promotion"]["mode"] == "Auto"
    assert spec["serving"]["replicas"] == 2
    # An optional object without a default stays absent.
    assert "credentialsSecret" not in spec["data"]
    assert "apiKeySecret" not in spec["serving"]


def test_defaults_never_replace_given_values(crds: dict[str, Any]) -> None:
    manifest = changed("LoanModel", {"spec.training": {"maxEvals": 5, "families": ["xgboost"]}})

    spec = admit(crds["LoanModel"], manifest).stored["spec"]

    assert spec["training"]["maxEvals"] == 5
    assert spec["training"]["families"] == ["xgboost"]
    assert spec["training"]["cvFolds"] == 3
    assert manifest["spec"]["training"] == {"maxEvals": 5, "families": ["xgboost"]}


def test_defaults_fill_fields_set_to_null(crds: dict[str, Any]) -> None:
    # `kubectl apply` sends null for a removed field; the API server drops a
    # null that is not nullable before defaulting, so the default comes back.
    manifest = changed("LoanModel", {"spec.training": {"maxEvals": None}})

    admission = admit(crds["LoanModel"], manifest)

    assert admission.stored["spec"]["training"]["maxEvals"] == 20
    assert admission.rejections == []


def test_pruning_reports_a_misspelt_field(crds: dict[str, Any]) -> None:
    manifest = changed("LoanModel", {"spec.promotion.minImprovment": 0.01})

    admission = admit(crds["LoanModel"], manifest)

    assert admission.pruned == ["spec.promotion.minImprovment"]
    assert "minImprovment" not in admission.stored["spec"]["promotion"]


# -- manifests users apply ------------------------------------------------------------------


def test_user_manifests_are_found() -> None:
    kinds = sorted(p.values[0]["kind"] for p in user_manifests())
    # examples/ (two LoanModels, one DriftPolicy) and argocd/models/ (one each).
    assert kinds == ["DriftPolicy", "DriftPolicy", "LoanModel", "LoanModel", "LoanModel"]


@pytest.mark.parametrize("manifest", list(user_manifests()))
def test_user_manifest_is_accepted_whole(crds: dict[str, Any], manifest: dict[str, Any]) -> None:
    assert manifest["apiVersion"] == API_VERSION

    admission = admit(crds[manifest["kind"]], manifest)

    assert (admission.pruned, admission.rejections) == ([], []), admission.summary()
    # The operator reads the stored spec with these models.
    SPECS[manifest["kind"]].model_validate(admission.stored["spec"])


def _secret_references(value: Any) -> Iterator[str]:
    if isinstance(value, dict):
        for key, item in value.items():
            if key.endswith("Secret") and isinstance(item, dict):
                yield item["name"]
            yield from _secret_references(item)


def test_example_secrets_cover_every_reference() -> None:
    documents = list(yaml.safe_load_all((ROOT / "examples" / "secrets.yaml").read_text()))
    secrets = {d["metadata"]["name"]: d for d in documents if d and d["kind"] == "Secret"}
    referenced = {
        name
        for path in (ROOT / "examples").glob("loanmodel*.yaml")
        for name in _secret_references(yaml.safe_load(path.read_text()))
    }

    assert referenced, "the LoanModel examples name no Secret"
    assert referenced <= secrets.keys()
    # Nobody should mistake these for real credentials.
    for secret in secrets.values():
        assert all("PLACEHOLDER" in v for v in secret["stringData"].values()), secret


# -- manifests the API server refuses -------------------------------------------------------

INVALID = [
    pytest.param(
        "LoanModel",
        {"spec.training.families": ["xgboost", "lightgbm"]},
        Rejection("spec.training.families[1]", "enum", "'lightgbm' is not one of"),
        id="unknown-family",
    ),
    pytest.param(
        "LoanModel",
        {"spec.training.families": ["xgboost", "xgboost"]},
        Rejection("spec.training.families", "list-type", "duplicate in set"),
        id="duplicate-family",
    ),
    pytest.param(
        "LoanModel",
        {"spec.training.maxEvals": 0},
        Rejection("spec.training.maxEvals", "minimum", "less than the minimum of 1"),
        id="max-evals-0",
    ),
    pytest.param(
        "LoanModel",
        {"spec.training.cvFolds": 1},
        Rejection("spec.training.cvFolds", "minimum", "less than the minimum of 2"),
        id="cv-folds-1",
    ),
    pytest.param(
        "LoanModel",
        {"spec.promotion.minImprovement": -0.01},
        Rejection("spec.promotion.minImprovement", "minimum", "less than the minimum of 0"),
        id="negative-min-improvement",
    ),
    pytest.param(
        "LoanModel",
        {"spec.promotion.mode": "Sometimes"},
        Rejection("spec.promotion.mode", "enum", "'Sometimes' is not one of"),
        id="promotion-mode-sometimes",
    ),
    pytest.param(
        "LoanModel",
        {"spec.promotion.mode": "DryRun", "spec.serving.pinnedVersion": "3"},
        Rejection("spec.serving.pinnedVersion", "cel", "cannot be combined with promotion.mode"),
        id="pinned-version-with-dry-run",
    ),
    pytest.param(
        "LoanModel",
        {"spec.data": {"uri": "/data/applications.csv", "credentialsSecret": {"name": "s3"}}},
        Rejection("spec.data.credentialsSecret", "cel", "only used with an s3:// uri"),
        id="credentials-secret-with-local-uri",
    ),
    pytest.param(
        "LoanModel",
        {"spec.promotion": {"metric": "eval_roc_auc", "minimum": 1.5}},
        Rejection("spec.promotion.minimum", "cel", r"must lie in \[0, 1\]"),
        id="minimum-above-1-for-roc-auc",
    ),
    pytest.param(
        "LoanModel",
        {"spec.serving.pinnedVersion": "v1"},
        Rejection("spec.serving.pinnedVersion", "pattern", "does not match"),
        id="pinned-version-v1",
    ),
    pytest.param(
        "LoanModel",
        {"spec.mlflow.modelName": DELETE},
        Rejection("spec.mlflow.modelName", "required", "'modelName' is a required property"),
        id="missing-model-name",
    ),
    pytest.param(
        "LoanModel",
        {"spec.mlflow.trackingUri": "mlflow:5000"},
        Rejection("spec.mlflow.trackingUri", "pattern", "does not match"),
        id="tracking-uri-without-scheme",
    ),
    pytest.param(
        "DriftPolicy",
        {"spec.modelRef": DELETE},
        Rejection("spec.modelRef", "required", "'modelRef' is a required property"),
        id="drift-missing-model-ref",
    ),
    pytest.param(
        "DriftPolicy",
        {"spec.windowHours": 0},
        Rejection("spec.windowHours", "minimum", "less than the minimum of 0.25"),
        id="drift-window-hours-0",
    ),
    pytest.param(
        "DriftPolicy",
        {"spec.thresholds.alpha": 0},
        # Boolean exclusiveMinimum (OpenAPI 3.0) is checked by draft 4's minimum.
        Rejection("spec.thresholds.alpha", "minimum", "less than or equal to the minimum of 0"),
        id="drift-alpha-0",
    ),
    pytest.param(
        "DriftPolicy",
        {"spec.action": "Alert", "spec.maxRetrainsPerWindow": 3},
        Rejection("spec.maxRetrainsPerWindow", "cel", "only applies to action Retrain"),
        id="drift-max-retrains-with-alert",
    ),
    pytest.param(
        "DriftPolicy",
        # action is absent and defaults to Alert before the rules run.
        {"spec.maxRetrainsPerWindow": 3},
        Rejection("spec.maxRetrainsPerWindow", "cel", "only applies to action Retrain"),
        id="drift-max-retrains-with-default-action",
    ),
]


@pytest.mark.parametrize(("kind", "changes", "expected"), INVALID)
def test_invalid_manifest_is_rejected_for_its_reason(
    crds: dict[str, Any], kind: str, changes: dict[str, Any], expected: Rejection
) -> None:
    admission = admit(crds[kind], changed(kind, changes))

    # Exactly one reason, at the field that is wrong: the rest is valid.
    assert [(r.field, r.kind) for r in admission.rejections] == [(expected.field, expected.kind)], (
        admission.summary()
    )
    assert re.search(expected.message, admission.rejections[0].message), admission.summary()


ACCEPTED = [
    pytest.param(
        "LoanModel",
        {"spec.promotion": {"metric": "eval_log_loss", "minimum": 1.5}},
        id="log-loss-minimum-above-1",
    ),
    pytest.param("LoanModel", {"spec.promotion.minimum": 1}, id="integer-minimum-is-a-number"),
    pytest.param(
        "LoanModel",
        {"spec.promotion.mode": "Manual", "spec.serving.pinnedVersion": "12"},
        id="pinned-version-with-manual",
    ),
    pytest.param(
        "LoanModel",
        {"spec.data": {"uri": "s3://lending-data/a.csv", "credentialsSecret": {"name": "s3"}}},
        id="credentials-secret-with-s3-uri",
    ),
    pytest.param("DriftPolicy", {"spec.maxRetrainsPerWindow": 1}, id="drift-alert-with-one"),
    pytest.param(
        "DriftPolicy",
        {"spec.action": "Retrain", "spec.maxRetrainsPerWindow": 5},
        id="drift-retrain-with-five",
    ),
]


@pytest.mark.parametrize(("kind", "changes"), ACCEPTED)
def test_edge_case_manifest_is_accepted(
    crds: dict[str, Any], kind: str, changes: dict[str, Any]
) -> None:
    # The rules must not refuse what they do not mean to.
    admission = admit(crds[kind], changed(kind, changes))

    assert (admission.pruned, admission.rejections) == ([], []), admission.summary()


# -- CRD defaults and the pydantic models ---------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_crd_defaults_equal_pydantic_defaults(crds: dict[str, Any], kind: str) -> None:
    manifest = changed(kind, WITH_OPTIONAL_OBJECTS[kind])
    stored = admit(crds[kind], manifest).stored["spec"]
    # What the operator sees for an object that was never defaulted.
    parsed = SPECS[kind].model_validate(manifest["spec"]).model_dump(by_alias=True)
    defaults = scalar_defaults(openapi_schema(crds[kind])["properties"]["spec"])

    assert len(defaults) > 5
    for path, default in defaults.items():
        where = ".".join(path)
        assert lookup(stored, path) == default, f"{where} is not reached by defaulting"
        assert lookup(parsed, path) == default, f"spec.{where}: pydantic differs from the CRD"


def _annotation_models(annotation: Any) -> list[type[BaseModel]]:
    candidates = [annotation, *get_args(annotation)]
    return [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]


def _field_mismatches(
    model: type[BaseModel], schema: dict[str, Any], path: str = "spec"
) -> Iterator[str]:
    """Where a pydantic model and a CRD object disagree on fields or defaults."""
    properties = schema.get("properties") or {}
    aliases = set()
    for name, info in model.model_fields.items():
        alias = info.alias or name
        aliases.add(alias)
        prop = properties.get(alias)
        where = f"{path}.{alias}"
        if prop is None:
            yield f"{where}: in {model.__name__} but not in the CRD"
            continue
        default = None if info.is_required() else info.get_default(call_default_factory=True)
        if info.is_required() != (alias in schema.get("required", [])):
            yield f"{where}: required in only one of {model.__name__} and the CRD"
        elif isinstance(default, BaseModel) and "default" not in prop:
            # Without `default: {}` the stored object lacks the section whose
            # children pydantic fills in.
            yield f"{where}: {model.__name__} defaults the object, the CRD does not"
        elif default is not None and not isinstance(default, BaseModel) and "default" not in prop:
            yield f"{where}: {model.__name__} defaults it to {default!r}, the CRD has no default"
        for nested in _annotation_models(info.annotation):
            yield from _field_mismatches(nested, prop, where)
    for alias in properties.keys() - aliases:
        yield f"{path}.{alias}: in the CRD but ignored by {model.__name__}"


@pytest.mark.parametrize("kind", KINDS)
def test_pydantic_fields_and_defaults_exist_in_crd(crds: dict[str, Any], kind: str) -> None:
    spec_schema = openapi_schema(crds[kind])["properties"]["spec"]

    assert list(_field_mismatches(SPECS[kind], spec_schema)) == []


# -- printer columns ------------------------------------------------------------------------

# What `kubectl get` shows without -o wide, as DESIGN §6 lists it.
READY_PATH = '.status.conditions[?(@.type=="Ready")].status'
DEFAULT_COLUMNS = {
    "LoanModel": {
        "Champion": ".status.champion.version",
        "Score": ".status.champion.score",
        "Phase": ".status.phase",
        "Ready": READY_PATH,
        "Last-Trained": ".status.lastTraining.completionTime",
        "Age": ".metadata.creationTimestamp",
    },
    "DriftPolicy": {
        "Model": ".spec.modelRef.name",
        "Schedule": ".spec.schedule",
        "Last-Check": ".status.lastCheck.time",
        "Result": ".status.lastCheck.result",
        "Drifted": ".status.lastCheck.driftedFieldsText",
        "Age": ".metadata.creationTimestamp",
    },
}


def _columns(crd: dict[str, Any]) -> list[dict[str, Any]]:
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    columns: list[dict[str, Any]] = version["additionalPrinterColumns"]
    return columns


def _column_fits(column_type: str, node: dict[str, Any]) -> bool:
    if column_type == "date":
        return node.get("type") == "string" and node.get("format") == "date-time"
    if column_type == "number":
        return node.get("type") in ("number", "integer")
    return bool(node.get("type") == column_type)


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_read_declared_fields(crds: dict[str, Any], kind: str) -> None:
    schema = openapi_schema(crds[kind])
    for column in _columns(crds[kind]):
        node = resolve_json_path(schema, column["jsonPath"])
        assert _column_fits(column["type"], node), (column, node)


@pytest.mark.parametrize("kind", KINDS)
def test_printer_columns_show_the_designed_fields(crds: dict[str, Any], kind: str) -> None:
    shown = {c["name"]: c["jsonPath"] for c in _columns(crds[kind]) if not c.get("priority")}

    assert shown == DEFAULT_COLUMNS[kind]


def test_json_path_resolution_refuses_undeclared_fields(crds: dict[str, Any]) -> None:
    schema = openapi_schema(crds["LoanModel"])

    with pytest.raises(UndeclaredPathError, match="has no 'version'"):
        resolve_json_path(schema, ".status.lastTraining.outcome.version")
    with pytest.raises(UndeclaredPathError, match="have no 'kind'"):
        resolve_json_path(schema, '.status.conditions[?(@.kind=="Ready")].status')
    with pytest.raises(UndeclaredPathError, match="has no 'champoin'"):
        resolve_json_path(schema, ".status.champoin.version")


@pytest.mark.parametrize("kind", KINDS)
def test_ready_condition_has_the_shape_kubectl_wait_reads(crds: dict[str, Any], kind: str) -> None:
    conditions = lookup(openapi_schema(crds[kind]), ("properties", "status", "properties"))[
        "conditions"
    ]
    items = conditions["items"]

    assert conditions["type"] == "array"
    # Keyed by type, so patches and server-side apply merge by condition type.
    assert conditions["x-kubernetes-list-type"] == "map"
    assert conditions["x-kubernetes-list-map-keys"] == ["type"]
    assert {"type", "status"} <= set(items["required"])
    assert items["properties"]["type"]["type"] == "string"
    assert items["properties"]["status"]["enum"] == ["True", "False", "Unknown"]
    assert items["properties"]["lastTransitionTime"]["format"] == "date-time"


# -- status as the operator writes it -------------------------------------------------------

STAMP = "2024-10-07T03:12:09Z"


def _loanmodel_status(trained: bool) -> dict[str, Any]:
    """A status in the shape operator/loanmodels.py writes, after one pass.

    ``trained`` gives a served champion after a drift-requested retraining;
    otherwise a first training that failed. None values are what the operator
    puts in its merge patch for keys to leave out.
    """
    last = {
        "job": "loan-approval-train-3f9a1c2b7d",
        "request": "3f9a1c2b7d",
        "reason": "RetrainRequested" if trained else "Created",
        "specDigest": "a1b2c3d4e5",
        "retrainRequest": f"driftpolicy/loan-approval-hourly/{STAMP}" if trained else None,
        "scheduleSlot": None,
        "outcome": "Succeeded" if trained else "Failed",
        "startTime": STAMP,
        "message": "Job loan-approval-train-3f9a1c2b7d registered version 7.",
        "completionTime": STAMP,
    }
    if not trained:
        last["failureReason"] = "TrainingFailed"
        conditions = [
            Condition(READY, "False", "TrainingFailed", "Job failed (BackoffLimitExceeded)."),
            Condition(TRAINED, "False", "TrainingFailed", "Job failed (BackoffLimitExceeded)."),
            Condition(PROMOTED, "Unknown", "NoCandidate", "No version trained yet."),
            Condition(SERVING, "False", "NoChampion", "No version has been promoted yet."),
            Condition(DRIFTED, "Unknown", "NotChecked", "No DriftPolicy has checked it yet."),
        ]
        return {
            "lastTraining": last,
            "conditions": merge_conditions(None, conditions, generation=1, now=STAMP),
            "phase": "Failed",
            "observedGeneration": 1,
        }

    last.update(version="7", dataHash="9e107d9d372bb682")
    reason = "eval_roc_auc 0.9121 >= 0.85 and beats champion 6 (0.9050) by 0.0071"
    conditions = [
        Condition(READY, "True", "Ready", "Champion version 7 on 2/2 replicas."),
        Condition(TRAINED, "True", "TrainingSucceeded", last["message"]),
        Condition(PROMOTED, "True", "Promoted", f"Version 7: {reason}."),
        Condition(SERVING, "True", "Serving", "Champion version 7 on 2/2 replicas."),
        Condition(DRIFTED, "True", "DriftDetected", "DriftPolicy drifted: loan_grade."),
    ]
    return {
        "lastTraining": last,
        "challenger": {"version": "7", "score": 0.9121, "reason": reason, "decision": "Promoted"},
        "champion": {
            "version": "7",
            "metric": "eval_roc_auc",
            "dataHash": "9e107d9d372bb682",
            "promotedAt": STAMP,
            "score": 0.9121,
        },
        "history": [
            {"version": "7", "decision": "Promoted", "reason": reason, "time": STAMP},
            {"version": "6", "decision": "Promoted", "reason": "first version", "time": STAMP},
        ],
        "serving": {
            "version": "7",
            "modelUri": "models:/loan-approval/7",
            "pinned": False,
            "deployment": "loan-approval-server",
            "endpoint": "http://loan-approval-server.lending.svc:80",
            "replicas": 2,
            "readyReplicas": 2,
        },
        "drift": {
            "policy": "loan-approval-hourly",
            "result": "Drift",
            "checkedAt": STAMP,
            "lastRetrainRequest": STAMP,
        },
        "conditions": merge_conditions(None, conditions, generation=3, now=STAMP),
        "phase": "Ready",
        "observedGeneration": 3,
    }


def _driftpolicy_status() -> dict[str, Any]:
    """A status in the shape operator/driftpolicies.py writes after a drift."""
    conditions = [
        Condition(READY, "True", "Scheduled", "CronJob checks loan-approval on '0 * * * *'."),
        Condition(DRIFTED, "True", "DriftDetected", "loan_grade drifted."),
    ]
    return {
        "cronJob": "loan-approval-hourly-drift",
        "lastCheck": {
            "job": "loan-approval-hourly-drift-28790000",
            "time": STAMP,
            "result": "Drift",
            "samples": 1840,
            "modelVersions": ["6", "7"],
            "driftedFields": ["loan_grade"],
            "driftedFieldsText": "loan_grade",
            "scores": {"loan_grade": 0.31, "person_income": 0.02},
            "message": "1 of 11 fields drifted.",
        },
        "retrainRequests": [STAMP],
        "lastDecision": {"action": "RetrainRequested", "reason": "drift", "time": STAMP},
        "conditions": merge_conditions(None, conditions, generation=2, now=STAMP),
        "observedGeneration": 2,
    }


@pytest.mark.parametrize(
    ("kind", "status"),
    [
        pytest.param("LoanModel", _loanmodel_status(trained=True), id="loanmodel-serving"),
        pytest.param("LoanModel", _loanmodel_status(trained=False), id="loanmodel-failed"),
        pytest.param("DriftPolicy", _driftpolicy_status(), id="driftpolicy-drift"),
    ],
)
def test_operator_status_is_stored_whole(
    crds: dict[str, Any], kind: str, status: dict[str, Any]
) -> None:
    manifest = {**MINIMAL[kind], "status": merge_patch({}, status)}

    admission = admit(crds[kind], manifest)

    assert (admission.pruned, admission.rejections) == ([], []), admission.summary()


BAD_CONDITION = {"type": "Ready", "status": "Yes", "reason": "Ready", "message": "Served."}


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        pytest.param({"phase": "Done"}, "status.phase", id="unknown-phase"),
        pytest.param(
            {"conditions": [{**BAD_CONDITION, "lastTransitionTime": STAMP}]},
            "status.conditions[0].status",
            id="condition-status-yes",
        ),
        pytest.param(
            {"lastTraining": {"completionTime": "yesterday"}},
            "status.lastTraining.completionTime",
            id="time-not-rfc3339",
        ),
    ],
)
def test_status_schema_refuses_malformed_values(
    crds: dict[str, Any], changes: dict[str, Any], field: str
) -> None:
    # The valid status with one value spoilt, so the refusal is that value's.
    status = merge_patch(merge_patch({}, _loanmodel_status(trained=True)), changes)

    admission = admit(crds["LoanModel"], {**MINIMAL["LoanModel"], "status": status})

    assert [r.field for r in admission.rejections] == [field], admission.summary()


def test_history_limit_fits_the_crd(crds: dict[str, Any]) -> None:
    # The operator keeps `history_limit` decisions; the API server refuses more
    # than maxItems, which would fail every status write.
    history = child_schema(openapi_schema(crds["LoanModel"])["properties"]["status"], "history")
    info = OperatorSettings.model_fields["history_limit"]
    largest = min(m.le for m in info.metadata if getattr(m, "le", None) is not None)

    assert history is not None
    assert largest <= history["maxItems"]
