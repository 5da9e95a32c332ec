import os
import re
from pathlib import Path

import pytest
import yaml
from typer.testing import CliRunner

from bddengine.app import AppError, app_static_dir, dataset_url, pick_view
from bddengine.cli import app
from conftest import fiftyone_reachable
from test_fiftyone_mirror import make_runs

runner = CliRunner()


def test_app_help() -> None:
    result = runner.invoke(app, ["app", "--help"])
    assert result.exit_code == 0, result.output
    assert "Example:" in result.output and "bddengine app" in result.output
    for option in ("--run", "--port", "--address", "--remote", "--sync", "--config", "--set"):
        assert option in result.output, option


def test_app_files_ship_with_fiftyone_and_load_nothing_remote() -> None:
    static = app_static_dir()
    index = (static / "index.html").read_text()
    scripts = re.findall(r'<script[^>]*src="([^"]+)"', index)
    modules = re.findall(r'<link[^>]*rel="(?:modulepreload|stylesheet)"[^>]*href="([^"]+)"', index)
    assert scripts and modules
    for ref in scripts + modules:  # the App itself comes from the package; only a web font is remote
        assert not ref.startswith(("http:", "https:", "//")), ref
        assert (static / ref).is_file(), ref


def test_pick_view_and_url() -> None:
    saved = ["worst-slice", "worst-slice-iter0", "mined-prototype", "eval-pool"]
    assert pick_view(None, saved) is None
    assert pick_view("05_eval_iter0", saved) == "worst-slice-iter0"
    assert pick_view("outputs/runs/05_eval_iter0/", saved) == "worst-slice-iter0"
    assert pick_view("08_mine_iter0_prototype", saved) == "mined-prototype"
    assert pick_view("eval-pool", saved) == "eval-pool"
    with pytest.raises(AppError, match="no view 'worst-slice-iter1-random'"):
        pick_view("09_eval_iter1_random", saved)
    with pytest.raises(AppError, match="expected an eval, mine, autolabel or split run"):
        pick_view("04_train_iter0", saved)
    assert dataset_url("http://127.0.0.1:5151/", "bdd-x-01_collect", "worst-slice") == \
        "http://127.0.0.1:5151/datasets/bdd-x-01_collect?view=worst-slice"


def _config(tmp_path: Path, runs: Path) -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"name": "t", "runs_dir": str(runs), "fiftyone": {
        "enabled": True, "dataset_prefix": f"bddengine-test-{os.getpid()}-{tmp_path.name}"}}))
    return path


def test_unreachable_mongodb_says_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:9")  # nothing listens on port 9
    result = runner.invoke(app, ["app", "--config", str(_config(tmp_path, tmp_path / "runs"))])
    assert result.exit_code == 2, result.output
    out = " ".join(result.output.split())
    assert "MongoDB at mongodb://127.0.0.1:9 is unreachable" in out
    assert "tools/local-mongod.sh start" in out and "FIFTYONE_DATABASE_URI" in out
    assert os.environ["FIFTYONE_DO_NOT_TRACK"] == "true"


@pytest.mark.parametrize("address", ["0.0.0.0", "192.168.1.20", "::", "myhost.example"])
def test_app_on_a_network_address_warns_that_it_has_no_authentication(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, address: str) -> None:
    """Issue 15, finding 9."""
    monkeypatch.setenv("FIFTYONE_DATABASE_URI", "mongodb://127.0.0.1:9")  # stops right after the warning
    result = runner.invoke(app, ["app", "--address", address, "--config", str(_config(tmp_path, tmp_path / "runs"))])
    out = " ".join(result.output.split())
    assert result.exit_code == 2 and "no authentication" in out and address in out, out


@pytest.mark.parametrize("address", ["127.0.0.1", "localhost", "::1", "127.0.0.2"])
def test_app_on_loopback_has_no_warning(address: str) -> None:
    from bddengine.app import address_warning

    assert address_warning(address) is None


class FakeSession:
    def __init__(self, **kwargs) -> None:
        self.kwargs = kwargs
        self.url = f"http://{kwargs['address']}:{kwargs['port']}/"
        self.waited: list[float] = []

    def wait(self, wait: float = 3) -> None:
        self.waited.append(wait)


@pytest.mark.fiftyone
@pytest.mark.skipif(not fiftyone_reachable(), reason="no MongoDB for FiftyOne (CI starts one)")
def test_launch_syncs_and_opens_the_runs_view(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import fiftyone as fo

    sessions: list[FakeSession] = []

    def fake_launch(dataset, **kwargs):
        sessions.append(FakeSession(dataset=dataset, **kwargs))
        return sessions[-1]

    monkeypatch.setattr(fo, "launch_app", fake_launch)
    cfg = _config(tmp_path, make_runs(tmp_path / "runs"))
    try:
        result = runner.invoke(app, ["app", "--config", str(cfg), "--run", "04_eval_iter0", "--port", "5999",
                                     "--remote"])
        assert result.exit_code == 0, result.output
        (session,) = sessions
        name = session.kwargs["dataset"].name
        assert session.kwargs["port"] == 5999 and session.kwargs["address"] == "127.0.0.1"
        assert session.kwargs["remote"] is True and session.kwargs["auto"] is False
        assert session.kwargs["view"].name == "worst-slice-iter0" and session.kwargs["view"].count() == 2
        assert session.waited == [-1]  # remote: serve until Ctrl-C
        assert f"http://127.0.0.1:5999/datasets/{name}?view=worst-slice-iter0" in result.output
        assert "5 run(s) mirrored" in result.output
        # a light sync leaves mirrored runs alone; --sync rebuilds and reports every run
        again = runner.invoke(app, ["app", "--config", str(cfg)])
        assert again.exit_code == 0 and "0 run(s) mirrored, 5 unchanged" in again.output
        assert sessions[-1].kwargs["view"] is None and sessions[-1].waited == [3]
        assert "?view=worst-slice " in again.output  # the worst slice is one click away
        full = runner.invoke(app, ["app", "--config", str(cfg), "--sync"])
        assert full.exit_code == 0, full.output
        assert "full re-sync requested" in full.output and "mirrored: 04_eval_iter0" in full.output
        bad = runner.invoke(app, ["app", "--config", str(cfg), "--run", "09_eval_iter3"])
        assert bad.exit_code == 2 and "no view 'worst-slice-iter3'" in bad.output
    finally:
        for ds_name in fo.list_datasets():
            if ds_name.startswith(f"bddengine-test-{os.getpid()}-{tmp_path.name}"):
                fo.delete_dataset(ds_name)
