"""Argo CD's own CLI running the shipped BlueGreenApp health check on an object, as the
application controller does (for the unit tests' samples and the live objects of e2e)."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parent.parent
CM_PATCH = REPO / "deploy" / "argocd" / "argocd-cm-patch.yaml"


def argocd_health(argocd_bin: Path, obj: dict[str, Any], workdir: Path) -> str:
    """``argocd admin settings resource-overrides health`` on ``obj`` with the shipped
    argocd-cm patch: its output, ``STATUS: ...\\nMESSAGE: ...\\n``."""
    manifest = workdir / "bluegreenapp.yaml"
    manifest.write_text(yaml.safe_dump(obj))
    result = subprocess.run(
        [
            str(argocd_bin / "argocd"),
            *("admin", "settings", "resource-overrides", "health", str(manifest)),
            *("--argocd-cm-path", str(CM_PATCH)),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, f"argocd failed:\n{result.stdout}{result.stderr}"
    return result.stdout
