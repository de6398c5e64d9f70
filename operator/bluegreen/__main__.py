"""``python -m bluegreen``: run the operator.

All namespaces by default; ``--namespace`` (repeatable) limits it, as the namespaced
install does. Logs are one readable line per event.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import sys
import threading

import kopf
import kubernetes


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
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    return parser.parse_args(argv)


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
    from bluegreen import handlers
    from bluegreen.kube import Kube

    try:
        kube = Kube.from_environment(pool_size=handlers.CONCURRENCY * 2)
    except kubernetes.config.ConfigException as err:
        sys.exit(f"bluegreen-operator: no cluster credentials: {err} (set KUBECONFIG)")

    scope = ", ".join(args.namespace) if args.namespace else "all namespaces"
    logging.getLogger("bluegreen").info("bluegreen-operator watching BlueGreenApps in %s", scope)

    kopf.run(
        # Kopf would name itself after getpass.getuser(), which fails for a numeric uid with
        # no passwd entry (as in the image); the identity only labels this process anyway.
        identity=f"bluegreen-operator@{socket.gethostname()}/{os.getpid()}",  # type: ignore[arg-type]
        standalone=True,
        clusterwide=not args.namespace,
        namespaces=args.namespace,
        liveness_endpoint=args.liveness,
        memo=kopf.Memo(kube=kube),
    )


if __name__ == "__main__":
    main()
