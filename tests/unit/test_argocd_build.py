"""The Argo CD that hack/build-argocd.sh built from the pins (`make argocd`)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINS = REPO / "hack" / "tools" / "argocd" / "pins"


def pin(name: str) -> str:
    (value,) = [
        line.split("=", 1)[1]
        for line in PINS.read_text().splitlines()
        if line.startswith(f"{name}=")
    ]
    return value


def test_argocd_version_prints_the_pin(argocd_bin: Path) -> None:
    result = subprocess.run(
        [str(argocd_bin / "argocd"), "version", "--client", "--short"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert result.stdout == f"argocd: {pin('ARGOCD_VERSION')}\n"


def test_the_files_a_local_argocd_needs_come_with_the_binary(argocd_bin: Path) -> None:
    crds = {p.name for p in (argocd_bin / "manifests" / "crds").iterdir()}
    assert {"application-crd.yaml", "appproject-crd.yaml"} <= crds
    assert (argocd_bin / "manifests" / "config" / "argocd-cm.yaml").is_file()
    wrapper = argocd_bin / "git-verify-wrapper.sh"
    assert wrapper.is_file() and wrapper.stat().st_mode & 0o111
