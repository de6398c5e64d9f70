"""The example app answers with its version and has the readiness endpoint its manifests
probe."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

APP_FILE = Path(__file__).resolve().parents[2] / "examples" / "hello" / "app.py"


def load_app(monkeypatch: pytest.MonkeyPatch, version: str) -> ModuleType:
    monkeypatch.setenv("VERSION", version)
    spec = importlib.util.spec_from_file_location(f"hello_app_{version}", APP_FILE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("version", ["1.0.0", "2.0.0"])
def test_hello_answers_with_its_version(monkeypatch: pytest.MonkeyPatch, version: str) -> None:
    client = load_app(monkeypatch, version).app.test_client()
    answer = client.get("/")
    assert answer.status_code == 200
    assert f"Hello from version {version}" in answer.get_data(as_text=True)


def test_hello_is_ready_when_it_serves(monkeypatch: pytest.MonkeyPatch) -> None:
    client = load_app(monkeypatch, "1.0.0").app.test_client()
    answer = client.get("/healthz")
    assert (answer.status_code, answer.get_data(as_text=True)) == (200, "ok\n")
