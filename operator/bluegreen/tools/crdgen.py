"""Generate the BlueGreenApp CRD from the pydantic models.

``python -m bluegreen.tools.crdgen DIR`` writes ``DIR/bluegreen.dev_bluegreenapps.yaml`` and
``DIR/Kustomization``, which makes DIR a kustomization that deploy/ can include.
Pydantic's JSON schema is turned into a Kubernetes structural schema: references inlined,
titles dropped, ``X | None`` turned into ``nullable``, null defaults dropped.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from bluegreen.api import models

CRD_FILE_NAME = f"{models.GROUP}_{models.PLURAL}.yaml"
# Not kustomization.yaml: `kubectl apply -f crds/` reads every *.yaml in the directory and
# would fail on it; kustomize recognises this name too, and `kubectl apply -f` skips it.
KUSTOMIZATION_FILE_NAME = "Kustomization"
_HEADER = "# Generated from operator/bluegreen/models.py by `make crds`. Do not edit.\n"


def structural(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """Rewrite one pydantic JSON schema node into a structural OpenAPI v3 node."""
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    node = {k: v for k, v in schema.items() if k not in ("title", "$defs")}
    if node.get("x-kubernetes-int-or-string"):
        return _keep(node, "description", "x-kubernetes-int-or-string")
    if "anyOf" in node:
        node = _collapse_optional(node, defs)
    if node.get("default", 0) is None:
        del node["default"]
    if node.get("additionalProperties") is True:
        del node["additionalProperties"]
    elif isinstance(node.get("additionalProperties"), dict):
        node["additionalProperties"] = structural(node["additionalProperties"], defs)
    if "properties" in node:
        node["properties"] = {k: structural(v, defs) for k, v in node["properties"].items()}
    if isinstance(node.get("items"), dict):
        node["items"] = structural(node["items"], defs)
    if node.get("x-kubernetes-preserve-unknown-fields"):
        node.setdefault("type", "object")
    return node


def _collapse_optional(node: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    """``anyOf: [X, null]`` is not structural: it becomes X with ``nullable: true``."""
    options = [o for o in node["anyOf"] if o.get("type") != "null"]
    if len(options) != 1:
        raise ValueError(f"cannot express a union in a structural schema: {node}")
    rest = {k: v for k, v in node.items() if k != "anyOf"}
    merged = {**structural(options[0], defs), **rest}
    if len(options) < len(node["anyOf"]):
        merged["nullable"] = True
    return merged


def _keep(node: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {k: node[k] for k in keys if k in node}


def model_schema(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(mode="validation")
    return structural(schema, schema.get("$defs", {}))


def crd() -> dict[str, Any]:
    """The whole CustomResourceDefinition as plain data."""
    name_rules = [
        {
            "rule": f"self.metadata.name.size() <= {models.MAX_NAME_LENGTH}",
            "message": f"name must be at most {models.MAX_NAME_LENGTH} characters: "
            "the preview Service is named <name>-preview, a 63-character DNS label",
        },
        {
            "rule": f"self.metadata.name.matches('{models.NAME_PATTERN}')",
            "message": "name must be a DNS-1035 label (lower-case letters, digits and '-', "
            "starting with a letter): it names the app's Services",
        },
        {
            "rule": f"!self.metadata.name.endsWith('{models.RESERVED_NAME_SUFFIX}')",
            "message": f"name must not end in '{models.RESERVED_NAME_SUFFIX}': app <name> "
            f"owns Service <name>{models.RESERVED_NAME_SUFFIX}, so such a name would collide",
        },
    ]
    root = {
        "type": "object",
        "required": ["spec"],
        "x-kubernetes-validations": name_rules,
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": model_schema(models.BlueGreenAppSpec),
            "status": model_schema(models.BlueGreenAppStatus),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{models.PLURAL}.{models.GROUP}"},
        "spec": {
            "group": models.GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": models.KIND,
                "listKind": f"{models.KIND}List",
                "plural": models.PLURAL,
                "singular": models.SINGULAR,
                "shortNames": models.SHORT_NAMES,
            },
            "versions": [
                {
                    "name": models.VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {
                        "status": {},
                        # `kubectl scale bga` and a HorizontalPodAutoscaler set spec.replicas
                        # and read the live color's pods through status.selector.
                        "scale": {
                            "specReplicasPath": ".spec.replicas",
                            "statusReplicasPath": ".status.replicas",
                            "labelSelectorPath": ".status.selector",
                        },
                    },
                    "additionalPrinterColumns": _printer_columns(),
                    "schema": {"openAPIV3Schema": root},
                }
            ],
        },
    }


def _printer_columns() -> list[dict[str, str]]:
    def column(name: str, type_: str, path: str) -> dict[str, str]:
        return {"name": name, "type": type_, "jsonPath": path}

    return [
        column("Active", "string", ".status.activeColor"),
        column("Preview", "string", ".status.previewColor"),
        column("Phase", "string", ".status.phase"),
        column("Promote", "boolean", ".spec.promote"),
        column("Age", "date", ".metadata.creationTimestamp"),
    ]


def render() -> str:
    return _HEADER + yaml.safe_dump(crd(), sort_keys=False, width=100)


def render_kustomization() -> str:
    """deploy/ cannot include the CRD file itself (kustomize loads no file outside the
    kustomization's root), but it may include a directory that is a kustomization."""
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": [CRD_FILE_NAME],
    }
    header = "# Generated by `make crds` (operator/bluegreen/crdgen.py). Do not edit.\n"
    return header + yaml.safe_dump(kustomization, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    out_dir = Path(args[0] if args else "crds")
    out_dir.mkdir(parents=True, exist_ok=True)
    for file_name, text in (
        (CRD_FILE_NAME, render()),
        (KUSTOMIZATION_FILE_NAME, render_kustomization()),
    ):
        (out_dir / file_name).write_text(text)
        print(f"wrote {out_dir / file_name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
