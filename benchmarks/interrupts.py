"""Interrupt stage commands at random points on the smoke fixture, re-run them, compare.

For each stage command, a fresh copy of an uninterrupted project (only the runs
before that stage) runs the command; a kill -9 or a Ctrl-C (SIGINT) lands at a
random point of its usual wall time. Checked after each signal: nothing
half-written is visible (every numbered folder is complete), a Ctrl-C exited 130,
no process of the killed command is left. Then the command is re-run (train with
``--resume`` when it left a resumable folder) and its metrics are compared with
the uninterrupted run's.

Example: python benchmarks/interrupts.py --trials 3
Prints: signals landed, re-runs completed, metrics equal (each as k / n).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from _results import record

REPO = Path(__file__).resolve().parents[1]
STAGES = [("synth", []), ("collect", []), ("embed", []), ("split", []), ("train", ["--iter", "0"]),
          ("eval", ["--iter", "0"])]
VOLATILE = ("time", "wall", "per_s", "frames/s", "device", "lr/", "reused", "encoded")


def bddengine(project: Path, stage: str, args: list[str]) -> subprocess.Popen:
    """The command in its own process group (as a terminal runs it), its output in ``<project>.log``."""
    cmd = [sys.executable, "-c", "from bddengine.cli import main; main()", stage, "-c", "smoke.yaml", *args]
    log = project.with_suffix(".log").open("w")
    return subprocess.Popen(cmd, cwd=project, stdout=log, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def log_tail(project: Path) -> str:
    return " ".join(project.with_suffix(".log").read_text().split())[-400:]


def runs_of(project: Path) -> Path:
    return project / "outputs" / "smoke" / "runs"


def stable(metrics: object) -> object:
    """The metrics without timings and other machine-dependent numbers."""
    if isinstance(metrics, dict):
        return {k: stable(v) for k, v in metrics.items()
                if not any(s in k for s in VOLATILE) and not k.endswith("_s")}
    if isinstance(metrics, float):
        return round(metrics, 6)
    return metrics


def result_of(project: Path, stage: str) -> object:
    if stage == "synth":
        meta = json.loads((project / "outputs" / "smoke" / "world" / "synth_meta.json").read_text())
        labels = (project / "outputs" / "smoke" / "world" / "labels" / "det_20" / "det_train.json").read_bytes()
        return {"counts": meta["counts"], "labels_sha256": hashlib.sha256(labels).hexdigest()}
    runs = sorted(p for p in runs_of(project).iterdir() if p.name[:2].isdigit() and p.name.split("_")[1] == stage)
    out = {"metrics": stable(json.loads((runs[-1] / "result.json").read_text())["metrics"])}
    for name in ("embeddings.npy", "preds.json", "eval_gt.json"):  # the artifacts, byte for byte
        if (runs[-1] / name).is_file():
            out[name] = hashlib.sha256((runs[-1] / name).read_bytes()).hexdigest()
    return out


def half_written(project: Path) -> list[str]:
    runs = runs_of(project)
    if not runs.is_dir():
        return []
    return [p.name for p in runs.iterdir() if p.name[:2].isdigit() and not (p / "result.json").is_file()]


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3, help="signals per stage command")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--stages", default=",".join(s for s, _ in STAGES))
    ap.add_argument("--span", default="0.2,0.95", help="where signals land, as fractions of the wall time")
    opts = ap.parse_args()
    rng = random.Random(opts.seed)
    work = Path(tempfile.mkdtemp(prefix="bddengine-interrupts-"))
    base = work / "base"
    base.mkdir()
    cfg = yaml.safe_load((REPO / "configs" / "smoke.yaml").read_text())
    cfg.setdefault("fiftyone", {})["enabled"] = False
    (base / "smoke.yaml").write_text(yaml.safe_dump(cfg))
    durations, reference = {}, {}
    for stage, args in STAGES:
        t0 = time.perf_counter()
        proc = bddengine(base, stage, args)
        proc.communicate()
        if proc.returncode != 0:
            sys.exit(f"uninterrupted {stage} failed: {log_tail(base)}")
        durations[stage] = time.perf_counter() - t0
        reference[stage] = result_of(base, stage)
    print("uninterrupted wall times (s): " + ", ".join(f"{s} {d:.1f}" for s, d in durations.items()))
    landed = completed = equal = clean = exit_ok = total = committed_after = 0
    wanted = opts.stages.split(",")
    for i, (stage, args) in enumerate(STAGES):
        if stage not in wanted:
            continue
        for trial in range(opts.trials):
            project = work / f"{stage}-{trial}"
            shutil.copytree(base, project, symlinks=True)
            if stage == "synth":
                shutil.rmtree(project / "outputs" / "smoke" / "world")
            for later, _ in STAGES[i:]:
                for run in runs_of(project).glob(f"*_{later}*"):
                    shutil.rmtree(run)
            sig = rng.choice([signal.SIGKILL, signal.SIGINT])
            at = rng.uniform(*map(float, opts.span.split(","))) * durations[stage]
            proc = bddengine(project, stage, args)
            time.sleep(at)
            total += 1
            hit = proc.poll() is None
            if hit:
                landed += 1
                # Ctrl-C goes to the whole foreground group, kill -9 to the command alone
                os.killpg(proc.pid, sig) if sig == signal.SIGINT else os.kill(proc.pid, sig)
            proc.communicate()
            deadline = time.monotonic() + 10
            while group_alive(proc.pid) and time.monotonic() < deadline:
                time.sleep(0.2)
            leftover = group_alive(proc.pid)
            if leftover:
                os.killpg(proc.pid, signal.SIGKILL)
            # Ctrl-C: 130, or killed by SIGINT itself once Python is shutting down (130 in a shell)
            expected = ({130, -signal.SIGINT} if sig == signal.SIGINT else {-signal.SIGKILL}) if hit else {0}
            exit_ok += proc.returncode in expected
            committed = any(p.name[:2].isdigit() and p.name.split("_")[1] == stage
                            for p in runs_of(project).iterdir()) if runs_of(project).is_dir() else False
            committed_after += hit and committed and stage != "synth"
            clean += not half_written(project) and not leftover
            resumable = any((p / ".resumable").is_file() and (p / "ultralytics/weights/last.pt").is_file()
                            for p in runs_of(project).glob(".tmp_*"))  # killed after an epoch was saved
            rerun = bddengine(project, stage, args + (["--resume"] if stage == "train" and resumable else []))
            rerun.communicate()
            done = rerun.returncode == 0
            completed += done
            same = done and result_of(project, stage) == reference[stage]
            equal += same
            name = signal.Signals(sig).name
            print(f"{stage:8s} #{trial} {name:7s} at {at:5.1f}s exit {proc.returncode:4d} "
                  f"{'committed' if committed and hit else '         '} "
                  f"rerun {'ok' if done else 'FAILED: ' + log_tail(project)} "
                  f"metrics {'equal' if same else 'DIFFER'}")
            shutil.rmtree(project, ignore_errors=True)
    print(f"signals landed: {landed} / {total}")
    print(f"nothing half-written, no process left: {clean} / {total}")
    print(f"exit code as expected (130 after Ctrl-C, killed after kill -9): {exit_ok} / {total}")
    print(f"signalled commands whose run was committed anyway: {committed_after} / {landed}")
    print(f"re-runs completed: {completed} / {total}")
    print(f"metrics equal to the uninterrupted run: {equal} / {total}")
    shutil.rmtree(work, ignore_errors=True)
    kept = min(clean, exit_ok, completed, equal)
    record("interrupts: interrupted runs that kept every promise / runs", kept / max(total, 1), 1.0,
           note=f"{total} signals over {len(STAGES)} stages: clean {clean}, exit code {exit_ok}, re-run {completed}, "
                f"metrics equal {equal}")


if __name__ == "__main__":
    main()
