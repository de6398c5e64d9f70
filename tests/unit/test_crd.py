"""The CRD in crds/ is generated from the models and must not go stale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from bluegreen.tools import crdgen

CRDS = Path(__file__).resolve().parents[2] / "crds"
CRD_PATH = CRDS / crdgen.CRD_FILE_NAME


def test_crd_file_is_generated_from_the_models() -> None:
    assert CRD_PATH.read_text() == crdgen.render(), "crds/ is stale: run `make crds`"


def test_crds_is_a_kustomization_of_the_crd_alone() -> None:
    text = (CRDS / crdgen.KUSTOMIZATION_FILE_NAME).read_text()
    assert text == crdgen.render_kustomization(), "crds/ is stale: run `make crds`"
    assert yaml.safe_load(text)["resources"] == [crdgen.CRD_FILE_NAME]
    # `kubectl apply -f crds/` applies every *.yaml, *.yml and *.json file it finds there.
    assert sorted(p.name for p in CRDS.iterdir() if p.suffix in (".yaml", ".yml", ".json")) == [
        crdgen.CRD_FILE_NAME
    ]


def _walk(node: Any, path: str = "") -> list[tuple[str, dict[str, Any]]]:
    found: list[tuple[str, dict[str, Any]]] = []
    if isinstance(node, dict):
        found.append((path, node))
        for key, value in node.items():
            found += _walk(value, f"{path}.{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            found += _walk(value, f"{path}[{i}]")
    return found


def test_schema_is_structural() -> None:
    schema = crdgen.crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    for path, node in _walk(schema):
        assert "$ref" not in node, path
        assert "anyOf" not in node or all("type" not in o for o in node["anyOf"]), path
        assert "title" not in node or path.endswith(".properties"), path
        assert node.get("additionalProperties") is not True, path


def test_api_names_are_the_published_ones() -> None:
    crd = yaml.safe_load(CRD_PATH.read_text())
    names = crd["spec"]["names"]
    assert crd["metadata"]["name"] == "bluegreenapps.bluegreen.dev"
    assert (names["kind"], names["plural"], names["shortNames"]) == (
        "BlueGreenApp",
        "bluegreenapps",
        ["bga"],
    )
    version = crd["spec"]["versions"][0]
    assert version["name"] == "v1alpha1"
    assert version["subresources"] == {
        "status": {},
        "scale": {
            "specReplicasPath": ".spec.replicas",
            "statusReplicasPath": ".status.replicas",
            "labelSelectorPath": ".status.selector",
        },
    }
    columns = [c["name"] for c in version["additionalPrinterColumns"]]
    assert columns == ["Active", "Preview", "Phase", "Promote", "Age"]
