"""BlueGreenApp specs the end-to-end tests deploy: the hello app, version by version."""

from __future__ import annotations

from typing import Any

Obj = dict[str, Any]


def template(version: str) -> Obj:
    return {
        "metadata": {"labels": {"app": "hello"}},
        "spec": {
            "containers": [
                {
                    "name": "hello",
                    "image": f"registry.example.com/hello:{version}",
                    "ports": [{"containerPort": 5000}],
                }
            ]
        },
    }


def hello(version: str = "v1", replicas: int = 2, **extra: Any) -> Obj:
    return {
        "replicas": replicas,
        "scaleDownDelaySeconds": 3,
        "template": template(version),
        "service": {"ports": [{"port": 80, "targetPort": 5000}]},
        **extra,
    }
