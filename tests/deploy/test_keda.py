"""KEDA ScaledObjects against KEDA's own CRD schema (fixtures/keda.sh_scaledobjects.yaml).

The API server prunes or, with strict field validation, rejects fields a CRD schema does not
declare; jsonschema alone would accept them, so every object schema that lists its
properties is closed here (``additionalProperties: false``) unless it says otherwise.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

from helpers.deploy import OVERLAYS, find, one

CRD_FILE = Path(__file__).parent / "fixtures" / "keda.sh_scaledobjects.yaml"
INT32 = (-(2**31), 2**31 - 1)


def close_objects(schema: dict[str, Any]) -> dict[str, Any]:
    """A copy of an OpenAPI v3 schema where objects with listed properties allow no others."""
    schema = copy.deepcopy(schema)

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            if (
                "properties" in node
                and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")
            ):
                node["additionalProperties"] = False
            if node.get("format") == "int32":
                node["minimum"], node["maximum"] = INT32
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(schema)
    return schema


def crd_validators() -> dict[tuple[str, str], jsonschema.Draft7Validator]:
    """{(apiVersion, kind): validator} for every served version of the CRD."""
    (crd,) = [doc for doc in yaml.safe_load_all(CRD_FILE.read_text()) if doc]
    assert crd["kind"] == "CustomResourceDefinition" and crd["apiVersion"] == "apiextensions.k8s.io/v1"
    group, kind = crd["spec"]["group"], crd["spec"]["names"]["kind"]
    return {
        (f"{group}/{version['name']}", kind): jsonschema.Draft7Validator(close_objects(version["schema"]["openAPIV3Schema"]))
        for version in crd["spec"]["versions"]
        if version["served"]
    }


def errors(doc: dict[str, Any]) -> list[str]:
    validators = crd_validators()
    key = (doc["apiVersion"], doc["kind"])
    if key not in validators:
        return [f"{doc['apiVersion']} {doc['kind']}: not served by the CRD (served: {sorted(validators)})"]
    return [f"{'.'.join(map(str, e.path))}: {e.message}" for e in validators[key].iter_errors(doc)]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_scaled_objects_match_kedas_crd(rendered: dict, overlay: str) -> None:
    keda = [d for d in rendered[overlay] if d["apiVersion"].startswith("keda.sh/")]
    assert [d["kind"] for d in keda] == ["ScaledObject"]
    for doc in keda:
        assert not errors(doc), errors(doc)


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (lambda s: s["triggers"][0]["metadata"].__setitem__("listLength", 2), "is not of type 'string'"),
        (lambda s: s.__setitem__("minReplicas", 0), "minReplicas"),
        (lambda s: s.__setitem__("maxReplicaCount", "4"), "is not of type 'integer'"),
        (lambda s: s.pop("scaleTargetRef"), "'scaleTargetRef' is a required property"),
        (lambda s: s["triggers"][0].pop("type"), "'type' is a required property"),
        (lambda s: s.__setitem__("pollingInterval", 2**31), "is greater than the maximum"),
    ],
    ids=["metadata-not-string", "unknown-field", "count-as-string", "no-target", "trigger-without-type", "int32"],
)
def test_the_schema_check_rejects_broken_scaled_objects(rendered: dict, mutate: Any, expected: str) -> None:
    doc = copy.deepcopy(one(rendered["cluster"], "ScaledObject", "worker-gpu"))
    mutate(doc["spec"])
    assert any(expected in e for e in errors(doc)), errors(doc)


def test_an_unserved_version_is_rejected(rendered: dict) -> None:
    doc = copy.deepcopy(find(rendered["cluster"], "ScaledObject")[0])
    doc["apiVersion"] = "keda.sh/v1beta9"
    assert "not served" in errors(doc)[0]
