"""The two controllers the side-by-side benchmark (bench/peer.py) runs, one at a time,
and the identity they both run as, so the API server counts their requests apart from
everyone else's.

bluegreen-operator runs as users run it (``python -m bluegreen``); Argo Rollouts'
``rollouts-controller`` is the one hack/build-argo-rollouts.sh builds from its Go module.
The equivalent of a BlueGreenApp is a Rollout with a blueGreen strategy whose active and
preview Services (created beforehand, as its users must) have the BlueGreenApp's
Service names, ``<name>`` and ``<name>-preview``.
"""

from __future__ import annotations

import json
import os
import subprocess
import urllib.request
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any

from harness import REPO, kubectl, wait_established

from driver import Driver
from kubehelpers import wait_for
from operator_process import OperatorProcess, free_port
from specs import hello, template

Obj = dict[str, Any]

IDENTITY_NAMESPACE = "bench-identity"
IDENTITY = "bench-controller"
FLOW_SCHEMA_PREFIX = f"{IDENTITY}-"
# One FlowSchema per kind of request, matched in this order (Event writes before the other
# writes), each counting in the API server's
# apiserver_flowcontrol_dispatched_requests_total{flow_schema=...}. They only label the
# requests: all use the exempt priority level, as the admin identity would.
REQUEST_KINDS: list[tuple[str, list[str], list[str]]] = [
    ("events", ["create", "update", "patch"], ["events"]),
    ("get", ["get"], ["*"]),
    ("list", ["list"], ["*"]),
    ("watch", ["watch"], ["*"]),
    ("create", ["create"], ["*"]),
    ("update", ["update"], ["*"]),
    ("patch", ["patch"], ["*"]),
    ("delete", ["delete", "deletecollection"], ["*"]),
]
OTHER = "other"  # anything else, e.g. discovery (/api, /apis)


def flow_schema(name: str, precedence: int, rule: Obj) -> Obj:
    return {
        "apiVersion": "flowcontrol.apiserver.k8s.io/v1",
        "kind": "FlowSchema",
        "metadata": {"name": f"{FLOW_SCHEMA_PREFIX}{name}"},
        "spec": {
            "matchingPrecedence": precedence,
            "priorityLevelConfiguration": {"name": "exempt"},
            "rules": [
                {
                    "subjects": [
                        {
                            "kind": "ServiceAccount",
                            "serviceAccount": {"name": IDENTITY, "namespace": IDENTITY_NAMESPACE},
                        }
                    ],
                    **rule,
                }
            ],
        },
    }


def flow_schemas() -> list[Obj]:
    schemas = [
        flow_schema(
            name,
            50 + i,
            {
                "resourceRules": [
                    {
                        "verbs": verbs,
                        "apiGroups": ["*"],
                        "resources": resources,
                        "namespaces": ["*"],
                        "clusterScope": True,
                    }
                ]
            },
        )
        for i, (name, verbs, resources) in enumerate(REQUEST_KINDS)
    ]
    anything = {
        "resourceRules": [
            {
                "verbs": ["*"],
                "apiGroups": ["*"],
                "resources": ["*"],
                "namespaces": ["*"],
                "clusterScope": True,
            }
        ],
        "nonResourceRules": [{"verbs": ["*"], "nonResourceURLs": ["*"]}],
    }
    return [*schemas, flow_schema(OTHER, 50 + len(REQUEST_KINDS), anything)]


def controller_kubeconfig(directory: Path) -> Path:
    """A kubeconfig for a ServiceAccount bound to cluster-admin (so it can do all an admin
    can) that, unlike the admin, no other client of the cluster uses; and the FlowSchemas
    that count its requests by kind."""
    manifests = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": IDENTITY_NAMESPACE}},
        {
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": {"name": IDENTITY, "namespace": IDENTITY_NAMESPACE},
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "ClusterRoleBinding",
            "metadata": {"name": IDENTITY},
            "roleRef": {
                "apiGroup": "rbac.authorization.k8s.io",
                "kind": "ClusterRole",
                "name": "cluster-admin",
            },
            "subjects": [
                {"kind": "ServiceAccount", "name": IDENTITY, "namespace": IDENTITY_NAMESPACE}
            ],
        },
        *flow_schemas(),
    ]
    manifest = {"apiVersion": "v1", "kind": "List", "items": manifests}
    kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=json.dumps(manifest))
    token = kubectl(
        "create", "token", IDENTITY, "--namespace", IDENTITY_NAMESPACE, "--duration", "24h"
    ).strip()
    server = kubectl("config", "view", "--minify", "-o", "jsonpath={.clusters[0].cluster.server}")
    ca = kubectl(
        "config",
        "view",
        "--minify",
        "--raw",
        "-o",
        "jsonpath={.clusters[0].cluster.certificate-authority-data}",
    )
    path = directory / "controller.kubeconfig"
    path.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {
                        "name": "local",
                        "cluster": {"server": server, "certificate-authority-data": ca},
                    }
                ],
                "users": [{"name": IDENTITY, "user": {"token": token}}],
                "contexts": [{"name": "local", "context": {"cluster": "local", "user": IDENTITY}}],
                "current-context": "local",
            }
        )
    )
    path.chmod(0o600)
    return path


def app_template(name: str, version: str) -> Obj:
    """The pod template of the e2e tests' hello app, labelled with the app's own name (a
    Rollout's selector must select its pods only)."""
    pods = template(version)
    pods["metadata"]["labels"] = {"app": name}
    return pods


class Controller(ABC):
    """One controller under test: its process, and how its users write an app."""

    key: str  # short, for names and JSON
    title: str  # for the table
    app_kind: str

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        self.kubeconfig, self.log_dir = kubeconfig, log_dir

    @property
    @abstractmethod
    def pid(self) -> int: ...

    @abstractmethod
    def start(self, namespace: str, resync_seconds: int | None = None) -> None:
        """Start it, watching only ``namespace``; its own default resync unless given."""

    @abstractmethod
    def stop(self) -> None: ...

    def prepare(self, driver: Driver, namespace: str, name: str) -> None:  # noqa: B027
        """What the user creates before the app itself (not timed); nothing by default."""

    @abstractmethod
    def create(
        self, driver: Driver, namespace: str, name: str, replicas: int, version: str
    ) -> None: ...

    @abstractmethod
    def change_template(self, driver: Driver, namespace: str, name: str, version: str) -> None:
        """Release a new version (promotion automatic)."""

    @abstractmethod
    def healthy(self, app: Obj) -> bool:
        """The app reports it serves its latest spec with every replica ready."""

    def switch_stages(self) -> dict[str, float] | None:
        """Where its switching passes spent their time so far, mean ms by stage; None when
        it does not say."""
        return None


class BlueGreenOperator(Controller):
    key, title, app_kind = "ours", "bluegreen-operator", "BlueGreenApp"

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        super().__init__(kubeconfig, log_dir)
        self._process: OperatorProcess | None = None

    @property
    def pid(self) -> int:
        assert self._process is not None and self._process.proc is not None
        return self._process.proc.pid

    def start(self, namespace: str, resync_seconds: int | None = None) -> None:
        log = self.log_dir / f"{self.key}-{namespace}.log"
        self._process = OperatorProcess(
            namespace, log, env={"KUBECONFIG": str(self.kubeconfig)}, endpoints=True
        )
        # OperatorProcess sets the tests' short resync: the operator's default unless given.
        self._process.env.pop("BLUEGREEN_RESYNC_SECONDS")
        if resync_seconds is not None:
            self._process.env["BLUEGREEN_RESYNC_SECONDS"] = str(resync_seconds)
        self._process.start()

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None

    def create(
        self, driver: Driver, namespace: str, name: str, replicas: int, version: str
    ) -> None:
        spec = hello(replicas=replicas, promote=True, template=app_template(name, version))
        driver.create_app(namespace, name, spec)

    def change_template(self, driver: Driver, namespace: str, name: str, version: str) -> None:
        driver.patch_spec(namespace, name, {"template": app_template(name, version)})

    def healthy(self, app: Obj) -> bool:
        status = app.get("status") or {}
        return bool(
            status.get("phase") == "Healthy"
            and status.get("observedGeneration") == app["metadata"]["generation"]
        )

    def switch_stages(self) -> dict[str, float] | None:
        """From its ``bluegreen_switch_stage_seconds``: queued, planned, written."""
        assert self._process is not None
        found = self._process.scrape()
        stages = {}
        for stage in ("queued", "planned", "written"):
            labels = f'{{stage="{stage}"}}'
            count = found.get(f"bluegreen_switch_stage_seconds_count{labels}", 0.0)
            if count:
                total = found[f"bluegreen_switch_stage_seconds_sum{labels}"]
                stages[stage] = round(total / count * 1000, 2)
        return stages or None


class ArgoRollouts(Controller):
    key, title, app_kind = "argo", "Argo Rollouts", "Rollout"
    BUILD = REPO / "hack" / "build-argo-rollouts.sh"

    def __init__(self, kubeconfig: Path, log_dir: Path) -> None:
        super().__init__(kubeconfig, log_dir)
        self.bin_dir = Path(
            subprocess.run(
                [str(self.BUILD)], check=True, capture_output=True, text=True
            ).stdout.splitlines()[-1]
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def install_crds(self) -> None:
        kubectl("apply", "--server-side", "-k", str(self.bin_dir / "manifests" / "crds"))
        wait_established("rollouts.argoproj.io")

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def start(self, namespace: str, resync_seconds: int | None = None) -> None:
        healthz, metrics = free_port(), free_port()
        args = [
            str(self.bin_dir / "rollouts-controller"),
            f"--kubeconfig={self.kubeconfig}",
            "--namespaced",
            f"--namespace={namespace}",
            # Like the operator's default (one replica, no Lease writes).
            "--leader-elect=false",
            f"--healthzPort={healthz}",
            f"--metricsPort={metrics}",
        ]
        if resync_seconds is not None:
            args.append(f"--rollout-resync={resync_seconds}")
        log = (self.log_dir / f"{self.key}-{namespace}.log").open("ab")
        # POD_NAMESPACE: where it looks for its notification settings (none here).
        env = {**os.environ, "POD_NAMESPACE": namespace}
        self._proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        log.close()
        url = f"http://127.0.0.1:{healthz}/healthz"
        wait_for(lambda: self._healthy(url), timeout=60, what="rollouts-controller's /healthz")

    def _healthy(self, url: str) -> bool:
        assert self._proc is not None and self._proc.poll() is None, "rollouts-controller exited"
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        self._proc = None

    def prepare(self, driver: Driver, namespace: str, name: str) -> None:
        ports = hello()["service"]["ports"]
        for service in (name, f"{name}-preview"):
            driver.create(
                namespace,
                {
                    "apiVersion": "v1",
                    "kind": "Service",
                    "metadata": {"name": service},
                    "spec": {"selector": {"app": name}, "ports": ports},
                },
            )

    def create(
        self, driver: Driver, namespace: str, name: str, replicas: int, version: str
    ) -> None:
        driver.create(
            namespace,
            {
                "apiVersion": "argoproj.io/v1alpha1",
                "kind": "Rollout",
                "metadata": {"name": name},
                "spec": {
                    "replicas": replicas,
                    "selector": {"matchLabels": {"app": name}},
                    "template": app_template(name, version),
                    "strategy": {
                        "blueGreen": {
                            "activeService": name,
                            "previewService": f"{name}-preview",
                            "autoPromotionEnabled": True,
                            "scaleDownDelaySeconds": hello()["scaleDownDelaySeconds"],
                        }
                    },
                },
            },
        )

    def change_template(self, driver: Driver, namespace: str, name: str, version: str) -> None:
        driver.merge_patch(
            "Rollout", namespace, name, {"spec": {"template": app_template(name, version)}}
        )

    def healthy(self, app: Obj) -> bool:
        status = app.get("status") or {}
        return bool(
            status.get("phase") == "Healthy"
            and str(status.get("observedGeneration")) == str(app["metadata"]["generation"])
        )
