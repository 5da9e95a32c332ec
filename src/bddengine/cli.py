"""The ``bddengine`` command line: one thin command per flywheel stage.

Each command parses options, calls one stage function, and turns a known error into
a clear message and a non-zero exit. No logic lives here.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from bddengine.config import ConfigError, EngineConfig, load_config
from bddengine.runs import RunLookupError
from bddengine.stages import STAGE_BY_NAME, StageInputError, StageOutcome

app = typer.Typer(
    name="bddengine",
    help="A data engine for driving perception: one full turn of the BDD100K data flywheel.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", help="YAML config (default: configs/default.yaml)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a config key: --set collect.labeled_target=500."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-run even if an identical run exists.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", help="Read this run folder instead of the newest one.")
]

KNOWN_ERRORS = (ConfigError, RunLookupError, StageInputError)


def _load(config: Path | None, overrides: list[str] | None) -> EngineConfig:
    try:
        return load_config(config, overrides or [])
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers happy


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def print_outcome(out: StageOutcome) -> None:
    """The short summary every stage ends with (paths are never wrapped)."""
    rows: list[tuple[str, str]] = []
    if out.skipped:
        rows.append(("status", "up to date: nothing re-computed (use --force to redo)"))
    rows += [("wrote", w) for w in (out.wrote or [str(out.location)])]
    rows += [(k, str(v)) for k, v in out.numbers.items()]
    rows += [("look at", w) for w in out.look_at]
    if out.safe_to_delete:
        rows.append(("to re-run", f"delete {out.safe_to_delete}"))
    console.rule(f"[bold]{out.stage}[/] done", align="left")
    width = max(len(k) for k, _ in rows)
    for key, value in rows:
        console.print(f"  [bold]{key:<{width}}[/]  {value}", highlight=False, soft_wrap=True)


def _run_stage(name: str, cfg: EngineConfig, **kwargs) -> StageOutcome:
    module = importlib.import_module(f"bddengine.stages.{STAGE_BY_NAME[name].name}")
    return module.run(cfg, **kwargs)


def _invoke(name: str, config: Path | None, overrides: list[str] | None, **kwargs) -> None:
    cfg = _load(config, overrides)
    try:
        out = _run_stage(name, cfg, **kwargs)
    except KNOWN_ERRORS as exc:
        _fail(str(exc))
    print_outcome(out)


@app.command()
def synth(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Generate the synthetic driving world (BDD100K det_20 layout) under data.root.

    Example: bddengine synth --config configs/demo.yaml
    """
    _invoke("synth", config, set_, force=force)


@app.command()
def collect(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Collect labeled + unlabeled frames, stratified by weather x timeofday.

    Example: bddengine collect --config configs/demo.yaml
    """
    _invoke("collect", config, set_, force=force)


IterOpt = Annotated[int, typer.Option("--iter", help="Flywheel iteration (0 = train pool only).")]
ArmOpt = Annotated[
    str | None,
    typer.Option("--arm", help="Mining strategy whose auto-labels iteration N > 0 uses (e.g. prototype)."),
]

StrategyOpt = Annotated[
    str | None,
    typer.Option("--strategy", help="prototype, random or random-slice (overrides mine.strategy)."),
]
EmbeddingOpt = Annotated[
    str | None,
    typer.Option("--embedding", help="embed (curate-stage vectors) or detector (overrides mine.embedding)."),
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", help="Training seed (default: config seed); another seed gets its own run."),
]


@app.command()
def embed(
    model: Annotated[
        str | None, typer.Option("--model", help="clip or dinov2 (overrides embed.model).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Embed every collected frame with CLIP ViT-B-32 (or DINOv2).

    Example: bddengine embed --config configs/demo.yaml --model clip
    """
    overrides = list(set_ or []) + ([f"embed.model={model}"] if model else [])
    _invoke("embed", config, overrides, force=force)


@app.command()
def split(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Split into train pool, slice-balanced eval pool and unlabeled mining pool.

    Example: bddengine split --config configs/demo.yaml
    """
    _invoke("split", config, set_, force=force)


@app.command()
def train(
    iter_: IterOpt = 0,
    arm: ArmOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted training.")] = False,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
) -> None:
    """Train the YOLOv8 detector for one flywheel iteration.

    Example: bddengine train --iter 0 --config configs/demo.yaml
    """
    _invoke("train", config, set_, iter=iter_, arm=arm, seed=seed, resume=resume, force=force,
            source=source)


@app.command("eval")
def eval_(
    iter_: IterOpt = 0,
    arm: ArmOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
) -> None:
    """Evaluate mAP@0.5 per weather x timeofday x scene slice.

    Example: bddengine eval --iter 0 --config configs/demo.yaml
    """
    _invoke("eval", config, set_, iter=iter_, arm=arm, seed=seed, force=force, source=source)


@app.command()
def mine(
    iter_: IterOpt = 0,
    strategy: StrategyOpt = None,
    embedding: EmbeddingOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
) -> None:
    """Mine unlabeled frames like the worst slice's failures (embedding k-NN).

    Example: bddengine mine --config configs/demo.yaml --strategy prototype
    """
    overrides = list(set_ or [])
    overrides += [f"mine.strategy={strategy}"] if strategy else []
    overrides += [f"mine.embedding={embedding}"] if embedding else []
    _invoke("mine", config, overrides, iter=iter_, force=force, source=source)


@app.command()
def autolabel(
    iter_: IterOpt = 0,
    arm: ArmOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
) -> None:
    """Auto-label the mined frames and route boxes to accept / review / drop.

    Example: bddengine autolabel --config configs/demo.yaml --arm prototype
    """
    _invoke("autolabel", config, set_, iter=iter_, arm=arm, force=force, source=source)


@app.command()
def report(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Write the case study: per-slice deltas with paired bootstrap CIs.

    Example: bddengine report --config configs/demo.yaml
    """
    _invoke("report", config, set_, force=force)


@app.command()
def score(
    gt: Annotated[Path, typer.Argument(help="BDD-format label file (a JSON list of frames).")],
    pred: Annotated[Path, typer.Argument(help="BDD-format predictions (labels carry a score).")],
    by: Annotated[str, typer.Option(help="Comma list of frame attributes that define slices.")] = (
        "weather,timeofday,scene"
    ),
    min_frames: Annotated[int, typer.Option("--min-frames", help="Leave out smaller slices.")] = 1,
    n_boot: Annotated[int, typer.Option("--n-boot", help="Bootstrap resamples per slice CI.")] = 1000,
    seed: Annotated[int, typer.Option(help="Bootstrap seed.")] = 42,
    json_out: Annotated[Path | None, typer.Option("--json", help="Write the result here.")] = None,
) -> None:
    """Score any BDD-format predictions against BDD labels, overall and per slice.

    Example: bddengine score det_val.json preds.json --by weather,timeofday --json scores.json
    """
    from bddengine.bdd.loader import LabelFileError
    from bddengine.evaluation import UnknownFrameError, score_files

    attrs = [a.strip() for a in by.split(",") if a.strip()]
    if not attrs:
        _fail("--by needs at least one frame attribute, e.g. --by weather")
    try:
        doc = score_files(gt, pred, by=attrs, min_frames=min_frames, n_boot=n_boot, seed=seed)
    except (LabelFileError, UnknownFrameError) as exc:
        _fail(str(exc))
    print_score(doc)
    if json_out is not None:
        json_out.parent.mkdir(parents=True, exist_ok=True)
        json_out.write_text(json.dumps(doc, indent=2) + "\n")
        console.print(f"wrote {json_out}")


def print_score(doc: dict) -> None:
    """The overall numbers and the slice table, worst first."""
    o = doc["overall"]
    console.print(f"[bold]{doc['protocol']}[/]: {o['n_frames']} frames, "
                  f"mAP@0.5 {_pct(o['map50'])}, mAP@0.5:0.95 {_pct(o['map'])}")
    per_class = Table("class", "AP50", title="per class")
    for name, ap in o["ap50_per_class"].items():
        per_class.add_row(name, _pct(ap))
    console.print(per_class)
    slices = Table("slice", "frames", "mAP@0.5", "95% CI", "mAP", title="slices, worst first")
    rows = sorted(doc["slices"], key=lambda r: (r["map50"] is None, r["map50"] or 0.0))
    for r in rows:
        ci = "-" if r["ci95"] is None else f"{_pct(r['ci95'][0])}-{_pct(r['ci95'][1])}"
        slices.add_row(" / ".join(r["key"].values()), str(r["n_frames"]), _pct(r["map50"]), ci, _pct(r["map"]))
    console.print(slices)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


@app.command()
def flywheel(
    arms: Annotated[
        str | None, typer.Option("--arms", help="Comma list of retraining arms (overrides flywheel.arms).")
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="Trainings per arm for seed variance (overrides flywheel.seeds).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Run every stage of one flywheel turn in order, every arm, ending with the report.

    Example: bddengine flywheel --config configs/demo.yaml --arms prototype,random --seeds 2
    """
    import time

    from bddengine.flywheel import TurnProfile, measure_step, plan_turn, profile_path

    overrides = list(set_ or [])
    overrides += [f"flywheel.arms=[{arms}]"] if arms else []
    overrides += [f"flywheel.seeds={seeds}"] if seeds else []
    cfg = _load(config, overrides)
    steps = plan_turn(cfg, force=force)
    profile = TurnProfile(profile_path(cfg.runs_dir), cfg.name, cfg.runs_dir, [s.title() for s in steps])
    start = time.perf_counter()
    for i, step in enumerate(steps, 1):
        console.rule(f"[bold]{i}/{len(steps)} {step.title()}")
        with measure_step() as cost:
            try:
                out = _run_stage(step.stage, step.cfg, **step.kwargs)
            except KNOWN_ERRORS as exc:
                _fail(f"flywheel stopped at {step.title()}: {exc}")
        print_outcome(out)
        profile.add(step, cost, run=Path(out.location).name if out.location else None, skipped=out.skipped)
    table = Table("step", "wall time", "CPU time", "peak RSS", "share", "",
                  title=f"flywheel turn: {time.perf_counter() - start:.0f} s")
    for s in profile.to_dict()["steps"]:
        table.add_row(s["step"], f"{s['wall_s']:.1f} s", f"{s['cpu_s']:.1f} s",
                      f"{s['peak_rss_mb']:.0f} MB" if s["peak_rss_mb"] is not None else "n/a",
                      f"{s['share']:.0%}" if s["share"] is not None else "", "up to date" if s["skipped"] else "")
    console.print(table)
    console.print(f"where the time went: {profile.path}")


@app.command("app")
def app_command(
    run: Annotated[
        str | None,
        typer.Option("--run", help="Open on this run's view: an eval run's worst slice (e.g. 05_eval_iter0), "
                     "a mine run's mined frames, an autolabel run's review queue."),
    ] = None,
    port: Annotated[int, typer.Option("--port", help="Port to serve the App on.")] = 5151,
    address: Annotated[
        str, typer.Option("--address", help="Address to serve on (0.0.0.0 to share on the network).")
    ] = "127.0.0.1",
    remote: Annotated[bool, typer.Option("--remote", help="Remote session: print the URL, open no browser.")] = False,
    sync: Annotated[
        bool, typer.Option("--sync", help="Rebuild the FiftyOne dataset from the run folders and report it all.")
    ] = False,
    config: ConfigOpt = None,
    set_: SetOpt = None,
) -> None:
    """Open the FiftyOne App on the runs: slices, worst slice, mined frames, review queues.

    Example: bddengine app --config configs/demo.yaml --run 05_eval_iter0
    """
    cfg = _load(config, set_)
    from bddengine.app import AppError, launch

    try:
        launch(cfg, run=run, port=port, address=address, remote=remote, full_sync=sync,
               echo=lambda line: console.print(line, highlight=False, soft_wrap=True, markup=False))
    except (AppError, *KNOWN_ERRORS) as exc:
        _fail(str(exc))


def main() -> None:  # pragma: no cover - console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
