"""The real-traffic load generator and image packer: their pure logic, without a cluster."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import subprocess
import sys
import tarfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "tests" / "e2e"))

from loadgen import LoadGenerator, Result, Run, per_second  # noqa: E402


def ok(sent: float, version: str) -> Result:
    return Result(sent, sent + 0.01, 200, version, None)


@pytest.mark.parametrize("host", ["10.96.0.1", "10.250.0.2", "192.168.1.1", "8.8.8.8"])
def test_load_goes_only_to_loopback(host: str) -> None:
    with pytest.raises(ValueError, match=r"only to 127\.0\.0\.0/8"):
        LoadGenerator(host, 80)


def test_went_back_finds_old_answers_sent_after_a_new_one() -> None:
    run = Run([ok(0.0, "v1"), ok(1.0, "v2"), ok(1.005, "v1"), ok(2.0, "v1")])
    # 1.005 was sent before v2's answer arrived (1.01): in flight, not a step back
    assert run.went_back("v1", "v2") == [ok(2.0, "v1")]
    assert Run([ok(0.0, "v1"), ok(1.0, "v2")]).went_back("v1", "v2") == []


def test_per_second_counts_by_send_time() -> None:
    failed = Result(1.5, 3.5, None, None, "timeout")
    run = Run([ok(0.1, "v1"), ok(0.9, "v1"), failed, ok(1.7, "v2")])
    rows = per_second(run)
    assert [(s, n_ok, n_failed) for s, n_ok, n_failed, _ in rows] == [(0, 2, 0), (1, 1, 1)]
    assert rows[1][3] == {"v2": 1}


class _Version(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:
        body = b"v7 test\n"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.mark.parametrize("keepalive", [False, True])
def test_generator_records_every_request(keepalive: bool) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Version)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        gen = LoadGenerator(
            "127.0.0.1", server.server_port, rate=50, max_seconds=1, keepalive=keepalive
        )
        with gen:
            time.sleep(1.5)  # past max_seconds: it has stopped by itself
        run = gen.run
    finally:
        server.shutdown()
        server.server_close()
    assert 45 <= len(run.results) <= 52, len(run.results)
    assert not run.failures, run.failures[:3]
    assert run.versions() == {"v7": len(run.results)}


def test_generator_records_refused_connections() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens on it once closed
    gen = LoadGenerator("127.0.0.1", port, rate=20, max_seconds=0.5)
    with gen:
        time.sleep(1)
    assert gen.run.results and all(r.error == "ConnectionRefusedError" for r in gen.run.results)


def test_image_archive_is_reproducible_and_importable_shape(tmp_path: Path) -> None:
    binary = tmp_path / "server"
    binary.write_bytes(b"\x7fELF not really")

    def pack(out: Path) -> str:
        return subprocess.run(
            [
                sys.executable,
                str(REPO / "hack" / "image-archive.py"),
                str(out),
                "--tag",
                "bluegreen.local/x:test",
                "--file",
                f"{binary}:/bin/server",
                "--entrypoint",
                "/bin/server",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    first, second = tmp_path / "a.tar", tmp_path / "b.tar"
    assert pack(first) == pack(second)
    assert first.read_bytes() == second.read_bytes()
    with tarfile.open(first) as tar:
        manifest = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
        (entry,) = manifest
        assert entry["RepoTags"] == ["bluegreen.local/x:test"]
        config = json.loads(tar.extractfile(entry["Config"]).read())  # type: ignore[union-attr]
        layer = tar.extractfile(entry["Layers"][0]).read()  # type: ignore[union-attr]
    assert config["rootfs"]["diff_ids"] == [f"sha256:{hashlib.sha256(layer).hexdigest()}"]
    assert config["config"]["Entrypoint"] == ["/bin/server"]
    with tarfile.open(fileobj=io.BytesIO(layer)) as files:
        assert files.getnames() == ["bin", "bin/server"]
        assert files.extractfile("bin/server").read() == binary.read_bytes()  # type: ignore[union-attr]
