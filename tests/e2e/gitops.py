"""A Git repository on this machine and an Argo CD Application that syncs from it, for the
GitOps tests (the local Argo CD of hack/argocd.sh)."""

from __future__ import annotations

import contextlib
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NamedTuple

from kubernetes.dynamic.exceptions import NotFoundError

from driver import Driver
from kubehelpers import wait_for

Obj = dict[str, Any]

ARGOCD_NAMESPACE = "argocd"
# What a Git webhook makes Argo CD do: compare with Git now, not at the next 3-minute poll.
REFRESH_ANNOTATION = "argocd.argoproj.io/refresh"


class GitRepo:
    """A bare repository (what Argo CD reads, by file:// URL) and a clone to commit in."""

    def __init__(self, root: Path) -> None:
        self.bare = root / "repo.git"
        self.work = root / "work"
        self.url = f"file://{self.bare}"
        self._git("init", "--quiet", "--bare", "--initial-branch=main", str(self.bare))
        self._git("clone", "--quiet", self.url, str(self.work))
        self._git("-C", str(self.work), "checkout", "--quiet", "-b", "main")

    def _git(self, *args: str) -> str:
        identity = ("-c", "user.name=bluegreen tests", "-c", "user.email=tests@bluegreen.dev")
        done = subprocess.run(
            ["git", *identity, *args], capture_output=True, text=True, check=True, timeout=60
        )
        return done.stdout.strip()

    def git(self, *args: str) -> str:
        """git in the clone."""
        return self._git("-C", str(self.work), *args)

    def commit(self, message: str, files: dict[str, str | None]) -> str:
        """Write (or, for None, delete) files, commit, push; return the commit's SHA."""
        for path, text in files.items():
            target = self.work / path
            if text is None:
                self.git("rm", "--quiet", path)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(text)
                self.git("add", path)
        self.git("commit", "--quiet", "-m", message)
        return self.push()

    def push(self) -> str:
        self.git("push", "--quiet", "origin", "main")
        return self.git("rev-parse", "HEAD")


class Observed(NamedTuple):
    """One state of an Application as polled: its sync status against which revision, its
    health, and the revision its last completed sync applied."""

    sync: str | None
    health: str | None
    revision: str | None
    synced_revision: str | None
    operation: str | None

    @staticmethod
    def of(application: Obj) -> Observed:
        status = application.get("status") or {}
        operation = status.get("operationState") or {}
        return Observed(
            sync=(status.get("sync") or {}).get("status"),
            health=(status.get("health") or {}).get("status"),
            revision=(status.get("sync") or {}).get("revision"),
            synced_revision=(operation.get("syncResult") or {}).get("revision"),
            operation=operation.get("phase"),
        )


class Application:
    """An Argo CD Application in the argocd namespace, read and written as a user would."""

    def __init__(self, driver: Driver, body: Obj) -> None:
        self.name = body["metadata"]["name"]
        self.dyn = driver.dyn
        self.resource = driver.dyn.resources.get(
            api_version="argoproj.io/v1alpha1", kind="Application"
        )
        self.resource.create(body=body, namespace=ARGOCD_NAMESPACE)

    def get(self) -> Obj:
        found = self.resource.get(name=self.name, namespace=ARGOCD_NAMESPACE)
        return dict(found.to_dict())

    def changes(self, since: str, seconds: int) -> Iterator[Obj]:
        """Each version of the Application after resourceVersion ``since`` (in order, none
        left out), for at most ``seconds``; a watch event of type ERROR is raised."""
        for event in self.dyn.watch(
            self.resource,
            namespace=ARGOCD_NAMESPACE,
            name=self.name,
            resource_version=since,
            timeout=seconds,
        ):
            if event["type"] == "ERROR":
                raise RuntimeError(f"watch of Application {self.name}: {event['raw_object']}")
            yield dict(event["raw_object"])

    def observed(self) -> Observed:
        return Observed.of(self.get())

    def merge_patch(self, patch: Obj) -> None:
        self.resource.patch(
            name=self.name,
            namespace=ARGOCD_NAMESPACE,
            body=patch,
            content_type="application/merge-patch+json",
        )

    def refresh(self) -> None:
        """As a Git webhook would after a push."""
        self.merge_patch({"metadata": {"annotations": {REFRESH_ANNOTATION: "normal"}}})

    def wait(self, revision: str, sync: str, health: str, timeout: float = 120) -> Obj:
        """Wait until Argo CD has synced ``revision`` and shows this sync and health status."""

        def reached() -> Obj | None:
            application = self.get()
            now = Observed.of(application)
            done = now.synced_revision == revision and now.operation == "Succeeded"
            if done and (now.revision, now.sync, now.health) == (revision, sync, health):
                return application
            return None

        what = f"Application {self.name} at {revision[:7]} to be {sync}/{health}"
        return wait_for(reached, timeout=timeout, interval=0.5, what=what)

    def tracked(self) -> list[tuple[str, str]]:
        """(kind, name) of each resource Argo CD counts as the app's (status.resources)."""
        resources = (self.get().get("status") or {}).get("resources") or []
        return [(r["kind"], r["name"]) for r in resources]

    def delete(self) -> None:
        with contextlib.suppress(NotFoundError):
            self.resource.delete(name=self.name, namespace=ARGOCD_NAMESPACE)


class StatusHistory:
    """Watches an Application in the background and records each distinct state it shows,
    in order: how a test proves what a user watching Argo CD would have seen. A watch, not
    polling: a state shown for less than a polling interval (Synced/Suspended between a
    sync and the next push can last a tenth of a second) is recorded too."""

    WINDOW = 1  # seconds each watch request lasts, so the thread notices stop()

    def __init__(self, application: Application) -> None:
        self.application = application
        self.states: list[Observed] = []
        self.since: list[float] = []  # when each state was first seen (time.monotonic())
        self.reads = 0  # the list and each watch window that ended without an error
        self.last_read = 0.0  # when the last of them ended (time.monotonic())
        self.stopped = 0.0  # when the test stopped watching
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> StatusHistory:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stopped = time.monotonic()
        self._stop.set()
        self._thread.join(timeout=10)

    def watched_to_the_end(self) -> bool:
        """Whether the watch was still going when the test stopped: a read ended within
        a few windows of it (a watch that died early would leave the last states out)."""
        return self.reads > 0 and self.stopped - self.last_read < 3 * self.WINDOW

    def _record(self, application: Obj) -> str:
        state = Observed.of(application)
        if not self.states or self.states[-1] != state:
            self.states.append(state)
            self.since.append(time.monotonic())
        return str(application["metadata"]["resourceVersion"])

    def _run(self) -> None:
        version: str | None = None
        while not self._stop.is_set():
            try:
                if version is None:
                    version = self._record(self.application.get())
                for application in self.application.changes(version, self.WINDOW):
                    version = self._record(application)
                self.reads += 1
                self.last_read = time.monotonic()
            except Exception as exc:  # recorded, so the test shows it instead of a gap
                self.errors.append(repr(exc))
                version = None
                time.sleep(0.25)

    def drift(self) -> list[Observed]:
        """Each OutOfSync shown for a Git revision that Argo CD had already shown Synced: the
        live state moved away from Git while Git did not move (something else changed it).
        OutOfSync before a revision's first Synced is only Git being ahead of its sync."""
        synced: set[str | None] = set()
        drifted = []
        for state in self.states:
            if state.sync == "Synced":
                synced.add(state.revision)
            elif state.sync == "OutOfSync" and state.revision in synced:
                drifted.append(state)
        return drifted

    def timeline(self) -> str:
        """Each state with how long it was shown, for a test's output."""
        ends = [*self.since[1:], time.monotonic()]
        return "\n".join(
            f"  {end - start:6.2f}s {state.sync}/{state.health} at {str(state.revision)[:7]}"
            for state, start, end in zip(self.states, self.since, ends, strict=True)
        )

    def statuses(self) -> list[tuple[str | None, str | None]]:
        """(sync, health) in order, without repeats."""
        pairs: list[tuple[str | None, str | None]] = []
        for state in self.states:
            if not pairs or pairs[-1] != (state.sync, state.health):
                pairs.append((state.sync, state.health))
        return pairs
