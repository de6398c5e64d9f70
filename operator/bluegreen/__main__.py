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

import kopf
import kubernetes

from bluegreen.kube import Kube

# Each request of a reconcile reads or writes one object and takes milliseconds. One not
# answered in this long sits on a dead connection (urllib3 then retries it on a fresh one):
# the client's 30 s default kept an app waiting half a minute after a network fault ended.
REQUEST_SECONDS = 5.0


class OperatorKube(Kube):
    """The API facade with the operator's request timeout."""

    def __init__(self, client: kubernetes.client.ApiClient, timeout: float = REQUEST_SECONDS):
        super().__init__(client, timeout)


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


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    configure_logging(args.verbose)
    from bluegreen import handlers

    try:
        kube = OperatorKube.from_environment(pool_size=handlers.CONCURRENCY * 2)
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
