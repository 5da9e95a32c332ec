"""The life of one stage run, written once.

Every stage that writes a numbered run folder goes through the same steps: compute a
fingerprint -> an identical earlier run makes this one a no-op -> checks and loading
that must fail before any folder exists -> the run folder (under a temporary name)
-> the stage's work writes its artifacts -> commit ``result.json`` and rename the
folder into place -> the terminal summary -> the FiftyOne mirror. A stage module
describes its run as a :class:`Job` and supplies the work; this module owns the rest::

    job = Job("eval", fp, cfg.seed, iter=iter, tag=tag, inputs=inputs, summary=_outcome, mirror=True)
    if (done := unchanged(cfg, job, force=force)) is not None:
        return done
    ...  # checks and loading: a failure here writes nothing
    return execute(cfg, job, lambda run: evaluate(run, ...))

Leaving the work by an exception or Ctrl-C removes the run folder (a resumable
training keeps it, marked, for ``--resume``); see `bddengine.runs.StageRun`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from bddengine.config import EngineConfig, config_dict
from bddengine.integrations.ultralytics import run_log
from bddengine.runs import RunRef, StageRun, find_same_run
from bddengine.stages import StageOutcome


class Summary(Protocol):
    """Turns a complete run into its terminal summary."""

    def __call__(self, ref: RunRef, *, skipped: bool) -> StageOutcome: ...


@dataclass(frozen=True)
class Job:
    """What a stage's run is, for the lifecycle.

    Attributes:
        stage: the stage's name (its run folders are ``NN_<stage>[_iterK][_<tag>]``).
        fingerprint: everything the result depends on; an earlier run with the same one
            makes this run a no-op.
        seed: the seed recorded in ``result.json``.
        summary: the terminal summary of a complete run (fresh or skipped).
        iter: the flywheel iteration, for stages that have one.
        tag: the run's tag (an arm, a seed).
        inputs: name -> path of what the run read, recorded in ``result.json``.
        mirror: mirror the committed run into FiftyOne when ``fiftyone.enabled`` (a mirror
            problem is printed in the summary, never fails the run).
        ultralytics_log: send ultralytics' own output to the run's ``ultralytics.log``.
        resumable: an interrupted run keeps its folder for ``resume_from``.
        resume_from: the interrupted folder this run continues.
    """

    stage: str
    fingerprint: str
    seed: int
    summary: Summary
    iter: int | None = None
    tag: str | None = None
    inputs: dict[str, str] = field(default_factory=dict)
    mirror: bool = False
    ultralytics_log: bool = False
    resumable: bool = False
    resume_from: Path | None = None


@dataclass(frozen=True)
class Commit:
    """What the work hands back for ``result.json``.

    Attributes:
        outputs: artifact name -> path relative to the run folder (each must exist).
        metrics: the stage's key numbers.
        extra: further top-level ``result.json`` fields.
    """

    outputs: dict[str, str]
    metrics: dict[str, Any]
    extra: dict[str, Any] | None = None


Work = Callable[[StageRun], Commit]
"""Writes the stage's artifacts into ``run.dir`` and says what to commit."""


def unchanged(cfg: EngineConfig, job: Job, *, force: bool) -> StageOutcome | None:
    """The summary of an identical earlier run (this run is a no-op), or None: run the stage.

    Args:
        cfg: the engine config (``runs_dir``).
        job: the run to look for (stage, iteration, tag and fingerprint).
        force: never a no-op.
    """
    if force:
        return None
    same = find_same_run(cfg.runs_dir, job.stage, job.fingerprint, iter=job.iter, tag=job.tag)
    return None if same is None else job.summary(same, skipped=True)


def execute(cfg: EngineConfig, job: Job, work: Work) -> StageOutcome:
    """Build the run folder, do the work in it, commit it, summarise it and mirror it.

    Args:
        cfg: the engine config (recorded whole as the run's ``config.yaml``; ``runs_dir``,
            ``fiftyone``).
        job: the run.
        work: writes the artifacts into the run being built; returns what to commit.

    Returns:
        The terminal summary of the committed run.
    """
    with StageRun(cfg.runs_dir, job.stage, config_dict(cfg), job.seed, job.fingerprint, iter=job.iter,
                  tag=job.tag, inputs=job.inputs, resumable=job.resumable, resume_from=job.resume_from) as run, \
            (run_log(run) if job.ultralytics_log else contextlib.nullcontext()):
        done = work(run)
        ref = run.commit(outputs=done.outputs, metrics=done.metrics, extra=done.extra)
    out = job.summary(ref, skipped=False)
    if job.mirror and cfg.fiftyone.enabled:  # after commit: a mirror problem never fails the run, it is printed
        from bddengine.integrations.fiftyone import try_mirror_run

        out.look_at.append(try_mirror_run(cfg, ref))
    return out
