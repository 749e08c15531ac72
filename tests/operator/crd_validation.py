"""What the Kubernetes API server does with a custom resource, for tests.

``tests/operator/test_crds.py`` checks the CRDs in ``crds/`` and the manifests
in ``examples/`` and ``argocd/models/`` without a cluster, so this module plays
the API server's part on create, in its order: unknown fields are pruned,
schema defaults are applied, the object is validated against the OpenAPI v3
schema (with ``jsonschema``'s draft-4 validator, whose boolean
``exclusiveMinimum`` is what OpenAPI 3.0 uses), ``x-kubernetes-list-type`` is
enforced, and every ``x-kubernetes-validations`` CEL rule is evaluated (with
``celpy``) where it is declared.

References: "Specifying a structural schema", "Defaulting", "Validation
rules" in the Kubernetes CustomResourceDefinition documentation
(https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import celpy
import jsonschema
from celpy import celtypes

# The API server keeps these at the root whatever the schema says.
ROOT_FIELDS = frozenset({"apiVersion", "kind", "metadata"})

# The ObjectMeta fields printer columns may read; a CRD's schema leaves
# ``metadata`` to the API server, so the types come from ObjectMeta itself.
OBJECT_META: dict[str, dict[str, Any]] = {
    "name": {"type": "string"},
    "namespace": {"type": "string"},
    "generation": {"type": "integer"},
    "creationTimestamp": {"type": "string", "format": "date-time"},
    "deletionTimestamp": {"type": "string", "format": "date-time"},
    "labels": {"type": "object", "additionalProperties": {"type": "string"}},
    "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
}

Path = tuple[str | int, ...]


class UndeclaredPathError(LookupError):
    """A path names a field the schema does not declare."""


@dataclass(frozen=True)
class Rejection:
    """One reason the API server refuses an object.

    ``kind`` is the JSON-schema keyword that failed (``enum``, ``minimum``,
    ``pattern``, ``required``, ...), ``list-type`` for a duplicate in a set or
    map list, ``cel`` for a validation rule that evaluated to false, or
    ``cel-error`` for one that could not be evaluated.
    """

    field: str
    kind: str
    message: str


@dataclass
class Admission:
    """What creating an object would give: the stored object, or why not."""

    stored: dict[str, Any]
    pruned: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)

    def summary(self) -> str:
        """What the API server would have said, one line each, for assertion messages."""
        lines = [f"pruned {p}" for p in self.pruned]
        lines += [f"{r.field}: {r.kind}: {r.message}" for r in self.rejections]
        return "\n".join(lines) or "accepted"


def format_path(path: Path) -> str:
    """``("spec", "families", 0)`` as the API server names it: ``spec.families[0]``."""
    text = ""
    for part in path:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else part)
    return text


def openapi_schema(crd: dict[str, Any]) -> dict[str, Any]:
    """The schema of the CRD's storage version."""
    (version,) = [v for v in crd["spec"]["versions"] if v.get("storage")]
    schema: dict[str, Any] = version["schema"]["openAPIV3Schema"]
    return schema


def walk_schema(schema: dict[str, Any], path: Path = ()) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every schema node with its path; ``[]`` stands for items, ``{}`` for map values."""
    yield path, schema
    for name, child in (schema.get("properties") or {}).items():
        yield from walk_schema(child, (*path, name))
    if isinstance(schema.get("items"), dict):
        yield from walk_schema(schema["items"], (*path, "[]"))
    if isinstance(schema.get("additionalProperties"), dict):
        yield from walk_schema(schema["additionalProperties"], (*path, "{}"))


def scalar_defaults(
    schema: dict[str, Any], path: tuple[str, ...] = ()
) -> dict[tuple[str, ...], Any]:
    """The default of every non-object field by path, through nested objects.

    Object defaults (``default: {}``) are left out: what they mean is the
    defaults of their children, which are listed.
    """
    found = {}
    for name, prop in (schema.get("properties") or {}).items():
        if "default" in prop and prop.get("type") != "object":
            found[(*path, name)] = prop["default"]
        found.update(scalar_defaults(prop, (*path, name)))
    return found


def child_schema(schema: dict[str, Any], key: str) -> dict[str, Any] | None:
    """The schema of ``key`` inside an object, or None if it is unknown there."""
    if key in (schema.get("properties") or {}):
        child: dict[str, Any] = schema["properties"][key]
        return child
    extra = schema.get("additionalProperties")
    return extra if isinstance(extra, dict) else None


def prune(schema: dict[str, Any], value: Any, path: Path = ()) -> tuple[Any, list[str]]:
    """``value`` without the fields the schema does not declare, and their paths.

    The API server drops such fields silently instead of refusing the object,
    so a misspelt field in a manifest or a field the operator writes that the
    CRD lacks is lost without an error; tests assert the list is empty. A
    ``null`` in a field that is not ``nullable`` is dropped too (unreported),
    so that defaulting fills it.
    """
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return value, []
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        kept, dropped = [], []
        for index, item in enumerate(value):
            item, lost = prune(schema["items"], item, (*path, index))
            kept.append(item)
            dropped += lost
        return kept, dropped
    if not isinstance(value, dict) or schema.get("type") != "object":
        return value, []

    result: dict[str, Any] = {}
    dropped = []
    for key, item in value.items():
        sub = child_schema(schema, key)
        if not path and key in ROOT_FIELDS:
            result[key] = item  # ObjectMeta is the API server's to prune, not the CRD's
        elif sub is None:
            dropped.append(format_path((*path, key)))
        elif item is None and not sub.get("nullable"):
            continue
        else:
            result[key], lost = prune(sub, item, (*path, key))
            dropped += lost
    return result, dropped


def apply_defaults(schema: dict[str, Any], value: Any) -> Any:
    """A copy of ``value`` with the schema's defaults applied as the API server does.

    A default fills an absent field of an object that is present; the filled
    value is then defaulted in turn, which is how ``default: {}`` on an object
    makes its children's defaults appear. Present fields are never replaced
    (``prune`` has already removed non-nullable nulls, which are then filled).
    """
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        return [apply_defaults(schema["items"], item) for item in value]
    if not isinstance(value, dict):
        return copy.deepcopy(value)

    result = {key: copy.deepcopy(item) for key, item in value.items()}
    for key, prop in (schema.get("properties") or {}).items():
        if key not in result and "default" in prop:
            result[key] = copy.deepcopy(prop["default"])
    for key, item in result.items():
        sub = child_schema(schema, key)
        if sub is not None:
            result[key] = apply_defaults(sub, item)
    return result


def to_jsonschema(schema: Any) -> Any:
    """The schema without ``x-kubernetes-*`` keys, which JSON Schema does not know."""
    if isinstance(schema, dict):
        return {
            key: to_jsonschema(item)
            for key, item in schema.items()
            if not key.startswith("x-kubernetes-")
        }
    if isinstance(schema, list):
        return [to_jsonschema(item) for item in schema]
    return schema


def schema_rejections(schema: dict[str, Any], value: Any) -> list[Rejection]:
    """What OpenAPI validation refuses, one entry per field."""
    validator = jsonschema.Draft4Validator(
        to_jsonschema(schema), format_checker=jsonschema.Draft4Validator.FORMAT_CHECKER
    )
    found = []
    for error in validator.iter_errors(value):
        path = tuple(error.absolute_path)
        if error.validator == "required":
            # The API server names the missing field itself ("Required value").
            missing = [n for n in error.validator_value if n not in error.instance]
            found += [
                Rejection(format_path((*path, n)), "required", error.message) for n in missing
            ]
        else:
            found.append(Rejection(format_path(path), str(error.validator), error.message))
    return sorted(set(found), key=lambda r: (r.field, r.kind))


def list_type_rejections(schema: dict[str, Any], value: Any, path: Path = ()) -> list[Rejection]:
    """Duplicates in ``x-kubernetes-list-type: set`` and ``map`` lists."""
    found: list[Rejection] = []
    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        list_type = schema.get("x-kubernetes-list-type")
        keys = schema.get("x-kubernetes-list-map-keys") or []
        identities = [
            repr(item) if list_type == "set" else repr([item.get(k) for k in keys])
            for item in value
            if list_type == "set" or isinstance(item, dict)
        ]
        if list_type in ("set", "map") and len(set(identities)) != len(identities):
            found.append(Rejection(format_path(path), "list-type", f"duplicate in {list_type}"))
        for index, item in enumerate(value):
            found += list_type_rejections(schema["items"], item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = child_schema(schema, key)
            if sub is not None:
                found += list_type_rejections(sub, item, (*path, key))
    return found


def to_cel(schema: dict[str, Any] | None, value: Any) -> Any:
    """``value`` as a CEL value typed by its schema.

    The API server types CEL values from the schema, not from the JSON: a
    ``type: number`` field written as ``1`` is the double ``1.0``, which
    matters because CEL has no int-double comparison (``1 >= 0.0`` is an
    error, not true).
    """
    kind = (schema or {}).get("type")
    if schema is None or schema.get("x-kubernetes-preserve-unknown-fields") or value is None:
        return celpy.json_to_cel(value)
    if kind == "object" and isinstance(value, dict):
        return celtypes.MapType(
            {celtypes.StringType(k): to_cel(child_schema(schema, k), v) for k, v in value.items()}
        )
    if kind == "array" and isinstance(value, list):
        return celtypes.ListType([to_cel(schema.get("items"), item) for item in value])
    if kind == "number" and isinstance(value, int | float) and not isinstance(value, bool):
        return celtypes.DoubleType(float(value))
    return celpy.json_to_cel(value)


_CEL = celpy.Environment()
_PROGRAMS: dict[str, Any] = {}


def evaluate_rule(rule: str, value: Any) -> Any:
    """The result of one CEL rule with ``self`` bound to ``value`` (compiled once)."""
    if rule not in _PROGRAMS:
        _PROGRAMS[rule] = _CEL.program(_CEL.compile(rule))
    return _PROGRAMS[rule].evaluate({"self": value})


def cel_rejections(schema: dict[str, Any], value: Any, path: Path = ()) -> list[Rejection]:
    """The validation rules that do not hold, each at the level it is declared."""
    found: list[Rejection] = []
    for rule in schema.get("x-kubernetes-validations") or []:
        # A rule's fieldPath (".serving.pinnedVersion") is relative to where
        # the rule is declared; the API server reports the error there.
        where = format_path(path) + rule.get("fieldPath", "")
        try:
            verdict = evaluate_rule(rule["rule"], to_cel(schema, value))
        except celpy.CELEvalError as error:
            found.append(Rejection(where, "cel-error", f"{rule['rule']}: {error}"))
            continue
        if verdict != celtypes.BoolType(True):
            found.append(Rejection(where, "cel", rule.get("message", rule["rule"])))

    if isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            found += cel_rejections(schema["items"], item, (*path, index))
    elif isinstance(value, dict):
        for key, item in value.items():
            sub = child_schema(schema, key)
            if sub is not None and item is not None:
                found += cel_rejections(sub, item, (*path, key))
    return found


def admit(crd: dict[str, Any], manifest: dict[str, Any]) -> Admission:
    """Create ``manifest`` as the API server would: prune, default, validate."""
    schema = openapi_schema(crd)
    pruned_object, pruned = prune(schema, manifest)
    stored = apply_defaults(schema, pruned_object)
    rejections = [
        *schema_rejections(schema, stored),
        *list_type_rejections(schema, stored),
        *cel_rejections(schema, stored),
    ]
    return Admission(stored=stored, pruned=pruned, rejections=rejections)


def merge_patch(target: Any, patch: Any) -> Any:
    """``patch`` applied to ``target`` as a JSON merge patch (RFC 7386).

    The operator writes status with merge patches, in which ``None`` removes
    a key, so what the API server stores and validates is this result.
    """
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, item in patch.items():
        if item is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), item)
    return result


_JSON_PATH_STEP = re.compile(
    r"""\.(?P<field>[A-Za-z_][A-Za-z0-9_]*)"""
    r"""|\[\?\(@\.(?P<filter>[A-Za-z_][A-Za-z0-9_]*)==(?P<quote>["'])[^"']*(?P=quote)\)\]"""
    r"""|\[(?P<index>\*|\d+)\]"""
)


def resolve_json_path(schema: dict[str, Any], json_path: str) -> dict[str, Any]:
    """The schema of the value a printer column's ``jsonPath`` reads.

    Handles the forms printer columns use: ``.a.b``, ``[0]`` / ``[*]`` and a
    filter on a list of objects, ``[?(@.type=="Ready")]``. Raises
    UndeclaredPathError naming the first step the schema does not declare.
    """
    node = schema
    position = 0
    walked = ""
    fail = UndeclaredPathError
    while position < len(json_path):
        step = _JSON_PATH_STEP.match(json_path, position)
        if step is None:
            raise fail(f"{json_path!r}: cannot parse from {json_path[position:]!r}")
        position = step.end()
        if step["field"] is not None:
            if walked == "" and step["field"] == "metadata":
                node = {"type": "object", "properties": OBJECT_META}
            else:
                found = child_schema(node, step["field"])
                if found is None:
                    raise fail(f"{json_path!r}: {walked or '.'} has no {step['field']!r}")
                node = found
        else:
            items = node.get("items")
            if node.get("type") != "array" or not isinstance(items, dict):
                raise fail(f"{json_path!r}: {walked} is not a list")
            if step["filter"] is not None and step["filter"] not in items.get("properties", {}):
                raise fail(f"{json_path!r}: items of {walked} have no {step['filter']!r}")
            node = items
        walked = json_path[:position]
    return node
