"""kubectl-bluegreen: see and steer BlueGreenApps from the command line.

    kubectl bluegreen list [-A]
    kubectl bluegreen status NAME [--watch]
    kubectl bluegreen promote NAME [--force]
    kubectl bluegreen rollback NAME [--promote] [--force]
    kubectl bluegreen retry NAME [--force]
    kubectl bluegreen dashboard [-A] [--port N] [--open]

Everything that decides or renders is a pure function of plain dicts (objects exactly as the
API returns them as JSON), so it is tested without a cluster. Only :class:`PluginClient` talks
to the API, and it turns every failure into a one-line :class:`PluginError`.

    view.py       the pure decisions and rendering, and PluginError
    client.py     PluginClient and the kubeconfig: the only module that imports kubernetes
    actions.py    promote, rollback, retry: the rules, then one patch (the CLI's and the page's)
    board.py      the dashboard's page model, pure
    dashboard.py  the dashboard: the watches it follows, its web server and event stream
    static/       the dashboard's page: plain HTML, CSS and JavaScript, no build step
    cli.py        the parser, the commands, the status watch, main
"""

from bluegreen.plugin.cli import main

__all__ = ["main"]
