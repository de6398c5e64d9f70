"""The command line: the parser, one ``run_*`` per command, the status watch, ``main``."""

from __future__ import annotations

import argparse
import queue
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, TextIO

from bluegreen.plugin import actions, dashboard
from bluegreen.plugin.client import PluginClient, connect
from bluegreen.plugin.view import PluginError, render_list, render_status

DEFAULT_REQUEST_TIMEOUT = 10.0


# --- Commands --------------------------------------------------------------------------------


def run_list(kube: PluginClient, args: argparse.Namespace, out: TextIO) -> int:
    namespace = None if args.all_namespaces else args.namespace
    apps = kube.list_apps(namespace)
    print(render_list(apps, datetime.now(UTC), namespace=namespace), file=out)
    return 0


def run_status(kube: PluginClient, args: argparse.Namespace, out: TextIO) -> int:
    if args.watch:
        return watch_status(kube, args.namespace, args.name, out)
    app = kube.get_app(args.namespace, args.name)
    print(render_status(app, kube.get_deployments(args.namespace, args.name)), file=out)
    return 0


def watch_status(kube: PluginClient, namespace: str, name: str, out: TextIO) -> int:
    """Print the status, then again on every change of the app or its Deployments.

    Ctrl-C is the way out, so it ends with 0.
    """
    events: queue.Queue[object] = queue.Queue()
    # Watch first, then read: a change between the two is not lost.
    kube.follow(namespace, name, events)
    printed = None
    try:
        while True:
            app = kube.get_app(namespace, name)  # gone: an error, not an empty screen
            text = render_status(app, kube.get_deployments(namespace, name))
            if text != printed:
                if printed is not None:
                    print(file=out)
                print(f"--- {datetime.now(UTC):%H:%M:%S} UTC ---\n{text}", file=out, flush=True)
                printed = text
            wait_for_change(events)
    except KeyboardInterrupt:
        return 0


def wait_for_change(events: queue.Queue[object]) -> None:
    """Block until an event arrives, then let the burst that came with it drain."""
    item = events.get()
    while True:
        if isinstance(item, PluginError):
            raise item
        try:
            item = events.get(timeout=0.2)
        except queue.Empty:
            return


def run_promote(kube: PluginClient, args: argparse.Namespace, out: TextIO) -> int:
    return report(actions.promote(kube, args.namespace, args.name, force=args.force), out)


def run_rollback(kube: PluginClient, args: argparse.Namespace, out: TextIO) -> int:
    done = actions.rollback(kube, args.namespace, args.name, force=args.force, promote=args.promote)
    return report(done, out)


def run_retry(kube: PluginClient, args: argparse.Namespace, out: TextIO) -> int:
    return report(actions.retry(kube, args.namespace, args.name, force=args.force), out)


def run_dashboard(kube: PluginClient, args: argparse.Namespace, out: TextIO) -> int:
    namespace = None if args.all_namespaces else args.namespace
    return dashboard.serve(kube, namespace, port=args.port, open_browser=args.open, out=out)


def report(done: actions.Done, out: TextIO) -> int:
    if done.warning:
        print(done.warning, file=sys.stderr)
    print(done.message, file=out)
    return 0


# --- Command line ----------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kubectl bluegreen", description="See and steer BlueGreenApps (bluegreen.dev)."
    )
    add_connection_options(parser, default=None)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    listing = commands.add_parser("list", help="list BlueGreenApps")
    listing.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    listing.set_defaults(run=run_list)

    status = commands.add_parser("status", help="colors, revisions, readiness, conditions")
    status.add_argument("name")
    status.add_argument("-w", "--watch", action="store_true", help="print again on every change")
    status.set_defaults(run=run_status)

    promote = commands.add_parser("promote", help="move prod to the new revision once ready")
    promote.add_argument("name")
    add_force_option(promote)
    promote.set_defaults(run=run_promote)

    rollback = commands.add_parser("rollback", help="put the previous revision's template back")
    rollback.add_argument("name")
    rollback.add_argument("--promote", action="store_true", help="also set promote: true")
    add_force_option(rollback)
    rollback.set_defaults(run=run_rollback)

    retry = commands.add_parser("retry", help="run the checks of the current revision again")
    retry.add_argument("name")
    add_force_option(retry)
    retry.set_defaults(run=run_retry)

    board = commands.add_parser("dashboard", help="a live web view of the apps, on 127.0.0.1")
    board.add_argument("-A", "--all-namespaces", action="store_true", help="in every namespace")
    board.add_argument(
        "--port",
        type=int,
        default=dashboard.DEFAULT_PORT,
        help=f"port on 127.0.0.1 (default: {dashboard.DEFAULT_PORT}; 0: any free one)",
    )
    board.add_argument("--open", action="store_true", help="open it in the default browser")
    board.set_defaults(run=run_dashboard)

    for command in (listing, status, promote, rollback, retry, board):
        # Also accepted after the command, as kubectl does; SUPPRESS keeps a value given
        # before the command from being reset by the subcommand's default.
        add_connection_options(command, default=argparse.SUPPRESS)
    return parser


def add_force_option(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--force",
        action="store_true",
        help="change an app that a GitOps tool (Argo CD, Flux) manages, against Git",
    )


def add_connection_options(parser: argparse.ArgumentParser, *, default: Any) -> None:
    timeout_default = DEFAULT_REQUEST_TIMEOUT if default is None else default
    parser.add_argument("-n", "--namespace", default=default, help="default: the context's")
    parser.add_argument("--context", default=default, help="kubeconfig context to use")
    parser.add_argument("--kubeconfig", default=default, help="default: $KUBECONFIG")
    parser.add_argument(
        "--request-timeout",
        type=float,
        default=timeout_default,
        help=f"seconds to wait for the API server (default: {DEFAULT_REQUEST_TIMEOUT:g})",
    )


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        kube, default_namespace = connect(args.kubeconfig, args.context, args.request_timeout)
        args.namespace = args.namespace or default_namespace
        code: int = args.run(kube, args, sys.stdout)
        return code
    except PluginError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
