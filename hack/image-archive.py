#!/usr/bin/env python3
"""Pack files into a single-layer image archive (the `docker save` format) without a
container engine or a registry, for `ctr images import`.

    hack/image-archive.py OUT.tar --tag NAME:TAG --file SRC:DEST [--file ...]
        [--entrypoint /path] [--user 65532]

The archive is reproducible: same inputs, same bytes (fixed times and owners), so the
image ID only changes when a file does.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import tarfile
from pathlib import Path, PurePosixPath


def _layer(files: list[tuple[Path, str]]) -> bytes:
    """A tar of the files at their destinations, parent directories included."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        seen: set[str] = set()
        for src, dest in sorted(files, key=lambda f: f[1]):
            parts = PurePosixPath(dest.lstrip("/")).parts
            for i in range(1, len(parts)):
                d = "/".join(parts[:i])
                if d not in seen:
                    seen.add(d)
                    info = tarfile.TarInfo(d)
                    info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, 0
                    tar.addfile(info)
            info = tarfile.TarInfo("/".join(parts))
            data = src.read_bytes()
            info.size, info.mode, info.mtime = len(data), 0o755, 0
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = len(data), 0o644, 0
    tar.addfile(info, io.BytesIO(data))


def build(out: Path, tag: str, files: list[tuple[Path, str]], entrypoint: str, user: str) -> str:
    """Write the archive; return the image config digest (the image ID)."""
    layer = _layer(files)
    layer_id = hashlib.sha256(layer).hexdigest()
    config = json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "1970-01-01T00:00:00Z",
            "config": {"Entrypoint": [entrypoint], "User": user, "Env": ["PATH=/"]},
            "rootfs": {"type": "layers", "diff_ids": [f"sha256:{layer_id}"]},
            "history": [{"created": "1970-01-01T00:00:00Z", "created_by": "hack/image-archive.py"}],
        },
        sort_keys=True,
    ).encode()
    config_id = hashlib.sha256(config).hexdigest()
    manifest = json.dumps(
        [{"Config": f"{config_id}.json", "RepoTags": [tag], "Layers": [f"{layer_id}/layer.tar"]}]
    ).encode()
    tmp = out.with_suffix(".partial")
    with tarfile.open(tmp, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        _add(tar, f"{layer_id}/layer.tar", layer)
        _add(tar, f"{config_id}.json", config)
        _add(tar, "manifest.json", manifest)
    tmp.replace(out)
    return config_id


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--tag", required=True)
    ap.add_argument("--file", action="append", required=True, help="SRC:DEST")
    ap.add_argument("--entrypoint", required=True)
    ap.add_argument("--user", default="0")
    args = ap.parse_args()
    files = [(Path(s), d) for s, _, d in (f.partition(":") for f in args.file)]
    print(build(args.out, args.tag, files, args.entrypoint, args.user))


if __name__ == "__main__":
    main()
