"""The operator's image as `make image` builds it (hack/build-image.sh: buildah, from the
Dockerfile): where its archive is, its config, and its layers unpacked into a directory."""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

REPO = Path(__file__).resolve().parents[2]
BUILD_IMAGE_SH = REPO / "hack" / "build-image.sh"


@dataclass(frozen=True)
class Image:
    """The built image: its `docker save` archive, tag and config."""

    archive: Path
    tag: str
    config: dict[str, Any]
    layers: list[str]

    @property
    def entrypoint(self) -> list[str]:
        return list(self.config["Entrypoint"])

    @property
    def cmd(self) -> list[str]:
        return list(self.config["Cmd"])

    @property
    def env(self) -> dict[str, str]:
        return dict(e.split("=", 1) for e in self.config["Env"])

    @property
    def uid_gid(self) -> tuple[int, int]:
        uid, _, gid = str(self.config["User"]).partition(":")
        return int(uid), int(gid or uid)


def unbuildable_reason() -> str | None:
    """Why `make image` cannot build here, or None."""
    if os.geteuid() != 0:
        return "building the image needs root (buildah's chroot isolation, mmdebstrap)"
    return None


def built() -> Image:
    """The image of the current sources, built when missing (the cache makes this instant
    once `make image` ran)."""
    result = subprocess.run(
        [str(BUILD_IMAGE_SH)], cwd=REPO, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RuntimeError(f"hack/build-image.sh failed:\n{result.stderr}")
    directory = Path(result.stdout.strip().splitlines()[-1])
    (line,) = (directory / "IMAGES").read_text().splitlines()
    name, tag = line.split()
    archive = directory / name
    with tarfile.open(archive) as tar:
        (manifest,) = json.loads(_read(tar, "manifest.json"))
        config = json.loads(_read(tar, manifest["Config"]))
    return Image(archive=archive, tag=tag, config=config["config"], layers=manifest["Layers"])


def _read(tar: tarfile.TarFile, name: str) -> bytes:
    member = tar.extractfile(name)
    assert member is not None, name
    return member.read()


def unpack(image: Image, root: Path) -> None:
    """The image's filesystem at ``root``: each layer in order, whiteouts applied, owners and
    modes kept (as root)."""
    with tarfile.open(image.archive) as outer:
        for layer_name in image.layers:
            layer_file = outer.extractfile(layer_name)
            assert layer_file is not None
            with tarfile.open(fileobj=layer_file) as layer:
                members = []
                for member in layer.getmembers():
                    path = PurePosixPath(member.name)
                    if path.name.startswith(".wh."):
                        target = root / path.parent / path.name.removeprefix(".wh.")
                        subprocess.run(["rm", "-rf", str(target)], check=True)
                        continue
                    members.append(member)
                # The layer is this project's own build: "fully_trusted" keeps the owners,
                # modes and the absolute symlinks an image holds (/var/run -> /run).
                layer.extractall(root, members=members, filter="fully_trusted")
