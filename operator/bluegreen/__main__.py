"""``python -m bluegreen``: run the operator.

All namespaces by default; ``--namespace`` (repeatable) limits it, as the namespaced
install does. Logs are one readable line per event.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import sys
import threading

import kopf

from bluegreen.kube.client import Kube
from bluegreen.kube.errors import NoCredentials
from bluegreen.runtime import endpoints, metrics, store
from bluegreen.runtime.leader import LeaderElector, LeaseSettings

# A replica that lost the lease exits with this code and is restarted as a standby.
LOST_LEASE_EXIT_CODE = 75
# Each request of a reconcile reads or writes one object and takes milliseconds. One not
# answered in this long sits on a dead connection (urllib3 then retries it on a fresh one):
# the client's 30 s default kept an app waiting half a minute after a network fault ended.
REQUEST_SECONDS = 5.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="bluegreen-operator", description="Run the BlueGreenApp operator."
    )
    parser.add_argument(
        "-n",
        "--namespace",
        action="append",
        default=[],
        help="watch only this namespace (repeatable); default: all namespaces",
    )
    parser.add_argument(
        "--liveness",
        metavar="URL",
        default=None,
        help="serve a liveness endpoint, e.g. http://0.0.0.0:8080/healthz",
    )
    parser.add_argument(
        "--readiness",
        metavar="URL",
        default=None,
        help="serve a readiness endpoint, e.g. http://0.0.0.0:8081/readyz: ready on standby, "
        "and as leader once every watch has listed",
    )
    parser.add_argument(
        "--metrics-address",
        metavar="HOST:PORT",
        default=None,
        help="serve Prometheus metrics at /metrics there, e.g. 0.0.0.0:8081; default: off",
    )
    election = parser.add_argument_group("leader election (for more than one replica)")
    election.add_argument(
        "--leader-elect",
        action="store_true",
        help="act only while holding a Lease; replicas without it wait, watching nothing",
    )
    election.add_argument("--lease-name", default="bluegreen-operator", help="the Lease's name")
    election.add_argument(
        "--lease-namespace",
        default=os.environ.get("POD_NAMESPACE", "default"),
        help="the Lease's namespace (default: $POD_NAMESPACE, else default)",
    )
    election.add_argument(
        "--identity",
        default=os.environ.get("POD_NAME") or f"{socket.gethostname()}-{os.getpid()}",
        help="this replica's name in the Lease (default: $POD_NAME, else host-pid)",
    )
    election.add_argument("--lease-duration", type=float, default=15.0, metavar="SECONDS")
    election.add_argument("--renew-deadline", type=float, default=10.0, metavar="SECONDS")
    election.add_argument("--retry-period", type=float, default=2.0, metavar="SECONDS")
    parser.add_argument(
        "--checks-via-node-port",
        metavar="HOST",
        default=os.environ.get("BLUEGREEN_CHECKS_VIA_NODE_PORT") or None,
        help="send HTTP checks to HOST:<the Service's nodePort> instead of the Service's "
        "DNS name (for an operator outside the cluster; $BLUEGREEN_CHECKS_VIA_NODE_PORT)",
    )
    parser.add_argument(
        "--notifications-namespace",
        metavar="NAMESPACE",
        default=os.environ.get("POD_NAMESPACE") or None,
        help="where the cluster-wide default ConfigMap bluegreen-notifications (and its "
        "Secret) lives, for namespaces without one (default: $POD_NAMESPACE, else none)",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


def lease_settings(args: argparse.Namespace) -> LeaseSettings:
    return LeaseSettings(
        namespace=args.lease_namespace,
        name=args.lease_name,
        identity=args.identity,
        lease_duration=args.lease_duration,
        renew_deadline=args.renew_deadline,
        retry_period=args.retry_period,
    )


def http_server(args: argparse.Namespace, readiness: endpoints.Readiness) -> endpoints.Server:
    """/metrics and readiness, on one server when they share an address. Not the liveness
    endpoint: Kopf serves that (a standby's is :func:`standby_liveness`)."""
    server = endpoints.Server()
    if args.metrics_address:
        server.route(endpoints.split_address(args.metrics_address), "/metrics", scrape)
    if args.readiness:
        server.route(*endpoints.url_address(args.readiness), readiness.answer)
    if args.liveness:
        (_, liveness_port), _ = endpoints.url_address(args.liveness)
        if liveness_port in server.ports():
            raise ValueError(f"port {liveness_port} is the liveness endpoint's (Kopf's own)")
    return server


def scrape(headers: endpoints.Headers) -> endpoints.Answer:
    body, content_type = metrics.current().exposition(headers.get("Accept") or "")
    return 200, content_type, body


def standby_liveness(url: str | None, elector: LeaderElector) -> endpoints.Server:
    """While a replica waits for the lease, Kopf does not run yet: answer its liveness
    probe meanwhile. Alive while the election loop keeps trying (a round every retry
    period, each request at most REQUEST_SECONDS); stuck for three rounds, it is not, and
    the kubelet restarts it."""
    server = endpoints.Server()
    if url is None:
        return server
    stuck_after = 3 * (elector.settings.retry_period + REQUEST_SECONDS)

    def answer(headers: endpoints.Headers) -> endpoints.Answer:
        if elector.tried_within(stuck_after):
            return endpoints.alive(headers)
        return 503, endpoints.TEXT, f"no leader election round for {stuck_after:g}s\n".encode()

    server.route(*endpoints.url_address(url), answer)
    return server


def lead(kube: Kube, args: argparse.Namespace, readiness: endpoints.Readiness) -> LeaderElector:
    """Wait for the lease, then keep it; losing it ends the process at once (its writes are
    fenced already): the replica restarts as a standby."""
    elector = LeaderElector(kube, lease_settings(args))
    metrics.current().track_leader(elector.is_leading)
    readiness.standby(f"{args.lease_namespace}/{args.lease_name}")
    # In a container the operator is PID 1, for which SIGTERM's default action does nothing:
    # a standby told to stop (a rollout, a drain) went on trying, took the lease while
    # terminating and was killed holding it, so the next leader waited the lease out.
    stopping = threading.Event()

    def on_sigterm(*_: object) -> None:
        stopping.set()
        elector.stop()

    previous = signal.signal(signal.SIGTERM, on_sigterm)
    try:
        with endpoints.serving(standby_liveness(args.liveness, elector)):
            elector.acquire()
    finally:
        signal.signal(signal.SIGTERM, previous)
    if stopping.is_set():
        elector.release()  # taken in the same instant as the signal: given back
        sys.exit(0)

    def lost() -> None:
        logging.getLogger("bluegreen").error("lost the leader lease: exiting")
        os._exit(LOST_LEASE_EXIT_CODE)

    elector.keep_renewing(on_lost=lost)
    return elector


def configure_logging(verbose: bool) -> None:
    logging.basicConfig(
        stream=sys.stderr,
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)-7s %(name)s: %(message)s",
    )
    # Kopf and the HTTP stack are chatty at INFO; our own lines say what happens.
    for noisy in ("kopf", "aiohttp", "urllib3", "kubernetes"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if verbose else logging.WARNING)


# The API server accepts JSON nested up to 10,000 levels (Go's decoder limit), and every
# watch event is parsed before any code of ours sees it: with Python's default limit of
# 1,000, one deeply nested BlueGreenApp in any namespace made the watch raise and the
# process exit, again at every restart. With room for what the API server can send, such an
# app is parsed and then refused as InvalidSpec on its own (models.MAX_TEMPLATE_DEPTH).
RECURSION_LIMIT = 30_000
THREAD_STACK_BYTES = 16 * 1024 * 1024


def make_room_for_deep_objects() -> None:
    sys.setrecursionlimit(max(sys.getrecursionlimit(), RECURSION_LIMIT))
    # Reconciles parse their reads in worker threads: give them the C stack for it too.
    threading.stack_size(THREAD_STACK_BYTES)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    make_room_for_deep_objects()
    from bluegreen.runtime import handlers  # registers the Kopf handlers

    readiness = endpoints.Readiness()
    try:
        # Workers' requests, and one long-held connection per watch.
        watches = len(store.WATCHED_KINDS) * max(1, len(args.namespace))
        pool_size = handlers.CONCURRENCY * 2 + watches
        kube = Kube.from_environment(pool_size=pool_size, timeout=REQUEST_SECONDS)
    except NoCredentials as err:
        sys.exit(f"bluegreen-operator: no cluster credentials: {err} (set KUBECONFIG)")
    try:
        server = http_server(args, readiness)
    except ValueError as err:
        sys.exit(f"bluegreen-operator: {err}")
    # Before the lease: a standby is scraped and probed too.
    with endpoints.serving(server):
        try:
            elector = lead(kube, args, readiness) if args.leader_elect else None
        except ValueError as err:
            sys.exit(f"bluegreen-operator: {err}")
        if elector is None:
            metrics.current().track_leader(lambda: True)
        readiness.leading()
        endpoints.follow_kopf_listings(readiness)
        scope = ", ".join(args.namespace) if args.namespace else "all namespaces"
        logging.getLogger("bluegreen").info(
            "bluegreen-operator watching BlueGreenApps in %s", scope
        )
        try:
            run_operator(kube.fenced(elector.is_leading) if elector else kube, args, readiness)
        finally:
            readiness.stopping()
            if elector is not None:
                elector.release()


def run_operator(kube: Kube, args: argparse.Namespace, readiness: endpoints.Readiness) -> None:
    kopf.run(
        # Kopf would name itself after getpass.getuser(), which fails for a numeric uid with
        # no passwd entry (as in the image); the identity only labels this process anyway.
        identity=f"bluegreen-operator@{socket.gethostname()}/{os.getpid()}",  # type: ignore[arg-type]
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(
            kube=kube,
            namespaces=list(args.namespace),
            readiness=readiness,
            checks_via_node_port=args.checks_via_node_port,
            notifications_namespace=args.notifications_namespace,
        ),
    )


if __name__ == "__main__":
    main()
