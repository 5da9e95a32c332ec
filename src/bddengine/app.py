"""``bddengine app``: the FiftyOne App on the mirrored runs, offline.

check the App's static files -> check MongoDB answers (seconds, with what to do when
it does not) -> sync the run folders into the dataset (light, or full with
``--sync``) -> pick the view to open on (``--run``) -> serve the App on loopback and
wait. Tracking is turned off before FiftyOne is imported; the App's files come with
the installed ``fiftyone`` package, so nothing is fetched from the network.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

from bddengine.integrations.fiftyone import INFO_KEY, SyncReport, sync_runs, view_for_run
from bddengine.runs import parse_run_name

DEFAULT_PORT = 5151
MONGO_HELP = (
    "Start one: `eval \"$(tools/local-mongod.sh start)\"` (from the repository root; no internet "
    "needed), or run any MongoDB >= 6 and `export FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:27017`. "
    "See README, 'Explore in the FiftyOne App'."
)


class AppError(RuntimeError):
    """The App cannot start; the message says what to do."""


@dataclass
class Launched:
    """A running App."""

    session: Any
    url: str
    view: str | None
    report: SyncReport


def offline_environment() -> None:
    """No usage tracking: set before FiftyOne is imported (its config reads it then)."""
    os.environ["FIFTYONE_DO_NOT_TRACK"] = "true"


def app_static_dir() -> Path:
    """The App's built files inside the installed fiftyone package.

    Raises:
        AppError: the package has no App build (a source checkout without the
            front end): reinstall fiftyone from the package index.
    """
    spec = importlib.util.find_spec("fiftyone")
    if spec is None or not spec.submodule_search_locations:
        raise AppError("fiftyone is not installed: `pip install -e '.[dev]'`")
    static = Path(list(spec.submodule_search_locations)[0]) / "server" / "static"
    if not (static / "index.html").is_file() or not (static / "assets").is_dir():
        raise AppError(f"{static} has no App build (index.html, assets/): reinstall fiftyone "
                       "from the package index (`pip install --force-reinstall fiftyone`)")
    return static


def check_database(uri: str | None, *, timeout_ms: int = 3000) -> None:
    """Fail in seconds when FiftyOne's MongoDB does not answer.

    Args:
        uri: ``FIFTYONE_DATABASE_URI``; None means FiftyOne starts its own mongod,
            which is checked by listing datasets.

    Raises:
        AppError: no answer; the message names the URI and how to start one.
    """
    try:
        if uri:
            import pymongo

            pymongo.MongoClient(uri, serverSelectionTimeoutMS=timeout_ms).admin.command("ping")
        else:
            import fiftyone as fo

            fo.list_datasets()
    except Exception as exc:  # noqa: BLE001 - pymongo and fiftyone raise many kinds
        where = f"at {uri}" if uri else "(FiftyOne's own mongod, FIFTYONE_DATABASE_URI unset)"
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise AppError(f"FiftyOne's MongoDB {where} is unreachable ({first[:200]}). {MONGO_HELP}") from exc


def address_warning(address: str) -> str | None:
    """The warning to print when the App would be served beyond this machine (None on loopback)."""
    import ipaddress

    host = address.strip("[]")
    if host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:
        pass  # a host name: it may resolve to any interface
    return (f"warning: serving the FiftyOne App on {address}, beyond this machine. The App has no "
            "authentication: anyone who can reach this port can browse every dataset in this MongoDB "
            "(and the images they point to). Use the default 127.0.0.1 with an SSH tunnel "
            "(ssh -L 5151:127.0.0.1:5151 host) unless this network is trusted.")


def dataset_url(base: str, dataset: str, view: str | None = None) -> str:
    """The App's address of a dataset, opened on a saved view."""
    url = f"{base.rstrip('/')}/datasets/{quote(dataset, safe='')}"
    return url + (f"?view={quote(view, safe='')}" if view else "")


def pick_view(run: str | None, saved: list[str]) -> str | None:
    """The saved view ``--run`` asks for (None: the whole dataset).

    Args:
        run: a run folder name or path (eval: its worst slice; mine: its mined
            frames; autolabel: its review queue; split: the eval pool), or a saved
            view's name.
        saved: the dataset's saved views.

    Raises:
        AppError: not a run with a view, or its view does not exist (not mirrored).
    """
    if run is None:
        return None
    if run in saved:
        return run
    ref = parse_run_name(Path(run.rstrip("/")))
    view = view_for_run(ref) if ref else None
    if view is None:
        raise AppError(f"--run {run}: expected an eval, mine, autolabel or split run folder "
                       f"(e.g. 05_eval_iter0) or a saved view ({', '.join(saved[:6])}, ...)")
    if view not in saved:
        raise AppError(f"--run {run}: the dataset has no view {view!r}: is the run under runs_dir "
                       "and complete? `bddengine app --sync` mirrors every run folder")
    return view


def launch(
    cfg,
    *,
    run: str | None = None,
    port: int = DEFAULT_PORT,
    address: str = "127.0.0.1",
    remote: bool = False,
    full_sync: bool = False,
    wait: bool = True,
    echo: Callable[[str], None] = print,
) -> Launched:
    """Sync the runs into FiftyOne and serve the App on them.

    Args:
        cfg: the engine config (``runs_dir``, ``name``, ``fiftyone``).
        run: open on this run's view (`pick_view`).
        port: the App's port.
        address: the address to serve on (loopback by default; 0.0.0.0 to share).
        remote: a remote session: do not try to open a browser here.
        full_sync: rebuild the dataset from the run folders and print every step.
        wait: block until the App's tab is closed (or Ctrl-C with ``remote``).
        echo: where to print.

    Raises:
        AppError: no App build, MongoDB unreachable, or an unknown ``run``.
        StageInputError: no collect run to show.
    """
    warning = address_warning(address)
    if warning:
        echo(warning)
    offline_environment()
    app_static_dir()
    check_database(os.environ.get("FIFTYONE_DATABASE_URI"))
    import fiftyone as fo

    report = sync_runs(cfg, full=full_sync, progress=True)
    for line in report.lines(verbose=full_sync):
        echo(line)
    ds = fo.load_dataset(report.dataset)
    view_name = pick_view(run, ds.list_saved_views())
    view = ds.load_saved_view(view_name) if view_name else None
    session = fo.launch_app(ds, view=view, port=port, address=address, remote=remote, auto=False)
    url = dataset_url(session.url, ds.name, view_name)
    echo(f"FiftyOne App: {url}")
    views = ds.info.get(INFO_KEY, {}).get("views", [])
    if view_name is None and "worst-slice" in views:
        echo(f"worst slice: {dataset_url(session.url, ds.name, 'worst-slice')} "
             "(or pick a saved view in the App's view selector)")
    if wait:
        echo("serving until the App's tab is closed (Ctrl-C stops it)")
        session.wait(-1 if remote else 3)
    return Launched(session=session, url=url, view=view_name, report=report)
