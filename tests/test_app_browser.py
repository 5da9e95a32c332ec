"""The FiftyOne App on a real smoke run, loaded in headless Chromium (selenium + Debian's chromium-driver).

smoke run (tiny world -> collect -> embed -> split -> train 1 epoch at imgsz 64 -> eval) ->
`bddengine app` in a subprocess on a free loopback port -> the grid shows the dataset
and its sample count, the saved-views selector lists the slice story -> screenshots
under outputs/ -> the server is stopped.
"""

import importlib.util
import os
import queue
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from typer.testing import CliRunner

from bddengine.cli import app
from bddengine.integrations.fiftyone import dataset_name
from conftest import fiftyone_reachable

REPO = Path(__file__).resolve().parents[1]
CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
SHOTS = REPO / "outputs"


def _missing() -> str | None:
    if not CHROMIUM.is_file() or not CHROMEDRIVER.is_file():
        return f"no {CHROMIUM} / {CHROMEDRIVER}: `apt-get install chromium chromium-driver` (.ci/run does)"
    if importlib.util.find_spec("selenium") is None:
        return "selenium is not installed: `pip install -e '.[dev]'`"
    if not fiftyone_reachable():
        return "no MongoDB for FiftyOne (CI starts one)"
    return None


pytestmark = [pytest.mark.browser, pytest.mark.fiftyone, pytest.mark.skipif(_missing() is not None,
                                                                          reason=_missing() or "")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def smoke_runs(tmp_path: Path, prefix: str) -> Path:
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg["data"]["root"] = str(tmp_path / "world")
    cfg["runs_dir"] = str(tmp_path / "runs")
    cfg["fiftyone"] = {"enabled": True, "dataset_prefix": prefix}
    path = tmp_path / "smoke.yaml"
    path.write_text(yaml.safe_dump(cfg))
    runner = CliRunner()
    for args in (["synth"], ["collect"], ["embed"], ["split"], ["train", "--iter", "0"], ["eval", "--iter", "0"]):
        result = runner.invoke(app, [*args, "--config", str(path)])
        assert result.exit_code == 0, f"{args}: {result.output}"
    return path


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float) -> tuple[str, list[str]]:
    """The first stdout line starting with ``prefix`` (the server keeps running)."""
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=1).rstrip()
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if line.startswith(prefix):
            return line[len(prefix):].strip(), seen
    raise AssertionError(f"`bddengine app` printed no {prefix!r} line:\n" + "\n".join(seen[-40:]))


def chrome():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    opts = webdriver.ChromeOptions()
    opts.binary_location = str(CHROMIUM)
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                "--window-size=1400,800"):
        opts.add_argument(arg)
    return webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=opts)


def open_grid(driver, url: str, timeout: float = 90) -> None:
    """Load ``url`` and wait for the sample grid and its count; close the App's promotion popup."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get(url)
    WebDriverWait(driver, timeout).until(
        lambda d: d.find_elements(By.CSS_SELECTOR, "[data-cy=entry-counts]")
        and d.find_elements(By.CSS_SELECTOR, "[data-cy=looker]"))
    time.sleep(1)  # the popup appears just after the grid
    for button in driver.find_elements(By.XPATH, "//button[normalize-space()='Dismiss']"):
        button.click()
    WebDriverWait(driver, 10).until(lambda d: not d.find_elements(By.CSS_SELECTOR, ".MuiBackdrop-root"))


def shown_count(driver) -> int:
    from selenium.webdriver.common.by import By

    text = driver.find_element(By.CSS_SELECTOR, "[data-cy=entry-counts]").text  # "50 samples"
    return int(text.split()[0].replace(",", ""))


def test_app_shows_the_slice_story(tmp_path: Path) -> None:
    import fiftyone as fo
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    t0 = time.monotonic()
    prefix = f"bddengine-browser-{os.getpid()}"
    config = smoke_runs(tmp_path, prefix)
    runs = tmp_path / "runs"
    n_frames = len(pd.read_parquet(runs / "01_collect" / "manifest.parquet"))
    t_smoke = time.monotonic() - t0
    port = free_port()
    env = dict(os.environ, FIFTYONE_DO_NOT_TRACK="true", PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-m", "bddengine.cli", "app", "--config", str(config), "--port", str(port),
         "--address", "127.0.0.1", "--remote"],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,  # its own process group: stopping it stops FiftyOne's server too
    )
    driver = None
    try:
        url, printed = wait_for_line(proc, "FiftyOne App:", timeout=120)
        dataset = dataset_name(prefix, "smoke", "01_collect", runs)  # the project folder's own dataset
        assert url == f"http://127.0.0.1:{port}/datasets/{dataset}"
        t_server = time.monotonic() - t0 - t_smoke
        driver = chrome()
        open_grid(driver, url)
        assert driver.find_element(By.CSS_SELECTOR, "[data-cy=selector-dataset]").get_attribute("value") == dataset
        assert shown_count(driver) == n_frames
        driver.save_screenshot(str(_shot("app_screenshot.png")))
        # the saved-views selector lists the slice story
        driver.find_element(By.CSS_SELECTOR, "[data-cy=saved-views-selection] [role=combobox]").click()
        WebDriverWait(driver, 20).until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "[role=option]")) > 5)
        listed = {o.text.strip() for o in driver.find_elements(By.CSS_SELECTOR, "[role=option]")}
        ds = fo.load_dataset(dataset)
        ds.reload()  # the App's process synced it
        saved = set(ds.list_saved_views())
        assert {"worst-slice", "worst-slice-failures", "worst-slice-iter0", "eval-pool", "train-pool"} <= listed
        assert saved <= listed and any(v.startswith("slice-") for v in listed)
        driver.save_screenshot(str(_shot("app_saved_views.png")))
        driver.find_element(By.TAG_NAME, "body").send_keys(Keys.ESCAPE)
        # one click away: the worst slice, with predictions and TP/FP/FN
        open_grid(driver, f"{url}?view=worst-slice")
        worst = ds.load_saved_view("worst-slice")
        WebDriverWait(driver, 30).until(lambda d: shown_count(d) == worst.count())
        assert worst.count() >= 1
        driver.save_screenshot(str(_shot("app_worst_slice.png")))
        t_total = time.monotonic() - t0
        print(f"smoke run {t_smoke:.0f}s, App up {t_server:.0f}s later, total {t_total:.0f}s")
    finally:
        if driver is not None:
            driver.quit()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for name in fo.list_datasets():
            if name.startswith(prefix):
                fo.delete_dataset(name)
    assert server_stopped(port), f"the App server still answers on port {port}"


def server_stopped(port: int, timeout: float = 20) -> bool:
    """Nothing listens on ``port`` any more (FiftyOne's server exits with the process that started it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return True
        time.sleep(0.5)
    return False


def _shot(name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    return SHOTS / name
