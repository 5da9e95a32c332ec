"""The ``bddengine`` command line: one thin command per flywheel stage.

Each command parses options, calls one stage function, and turns a known error into
a clear message and a non-zero exit. No logic lives here.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from typer.core import TyperArgument, TyperCommand, TyperGroup

from bddengine.bdd.validate import LabelFileError
from bddengine.config import ConfigError, EngineConfig, load_config, strategy_names
from bddengine.diskfull import disk_full, is_disk_full
from bddengine.errors import StageInputError, path_refused
from bddengine.locks import StageBusy
from bddengine.runs import RunLookupError
from bddengine.stages import STAGE_BY_NAME, StageOutcome
from bddengine.weights_trust import trust


class _ReadableHelp:
    """Help screens that read as what to type: a flag shows no value, an argument its name.

    Typer's own screens show ``<bool>`` after every flag and ``{gt}`` for a required argument.
    """

    def get_params(self, ctx: typer.Context) -> list:
        params = super().get_params(ctx)  # type: ignore[misc]
        for p in params:
            if getattr(p, "is_flag", False) and p.metavar is None:
                p.metavar = ""
        return params

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = super().collect_usage_pieces(ctx)  # type: ignore[misc]
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument):
                braced = p._usage_display_name()
                pieces = [p.display_name_raw if x == braced and p.required else x for x in pieces]
        return pieces


class ReadableCommand(_ReadableHelp, TyperCommand):
    """A command whose help reads as what to type."""


class ReadableGroup(_ReadableHelp, TyperGroup):
    """The top-level help, read the same way (every command below uses `ReadableCommand`)."""


_debug = {"on": False}


def _debug_flag(ctx: object, param: object, value: bool) -> bool:
    """A subcommand's ``--debug`` turns tracebacks on (the top-level one may already have)."""
    if value:
        _debug["on"] = True
    return value


class _Commands(ReadableGroup):
    """Every subcommand takes ``--debug`` too: the error messages say "re-run with --debug", and
    users add it at the end of the command they ran (``bddengine collect ... --debug``)."""

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        top = next(p for p in self.params if p.name == "debug")
        for command in self.commands.values():
            if not any(p.name == "debug" for p in command.params):
                option = copy.copy(top)
                option.expose_value, option.callback = False, _debug_flag
                command.params.append(option)


app = typer.Typer(
    cls=_Commands,
    name="bddengine",
    help="A data engine for driving perception: one full turn of the BDD100K data flywheel.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="rich",
)
console = Console()

ConfigOpt = Annotated[
    Path | None,
    typer.Option("--config", "-c", metavar="FILE", help="YAML config (default: configs/default.yaml)."),
]
SetOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", metavar="KEY=VALUE",
                 help="Override a config key, e.g. --set collect.labeled_target=500. Repeatable."),
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Re-run even if an identical run exists.")]
FromOpt = Annotated[
    str | None, typer.Option("--from", metavar="RUN", help="Read this run folder instead of the newest one.")
]

TrustOpt = Annotated[
    list[Path] | None,
    typer.Option("--trust-weights", metavar="FILE", help="Load this weights file even though it needs full unpickling "
                 "(which runs any code in it): only for a file from a source you trust. Repeatable."),
]

KNOWN_ERRORS = (ConfigError, RunLookupError, StageInputError, LabelFileError, StageBusy)


@app.callback()
def _main(
    debug: Annotated[bool, typer.Option("--debug", help="Show the traceback of an error.")] = False,
) -> None:
    """A data engine for driving perception: one full turn of the BDD100K data flywheel."""
    _debug["on"] = debug


@contextlib.contextmanager
def _errors(prefix: str = "", *, what: str = "the command", folder: Path | None = None) -> Iterator[None]:
    """Known errors become one paragraph and exit 2; anything else too, unless --debug.

    A full disk is one message naming ``folder`` (or the file's own folder); Ctrl-C
    stops with exit 130 and says that nothing was committed.
    """
    try:
        yield
    except typer.Exit:
        raise
    except KeyboardInterrupt:
        _interrupted(what)
    except KNOWN_ERRORS as exc:
        if _debug["on"]:
            raise
        _fail(prefix + str(exc))
    except Exception as exc:
        if _debug["on"]:
            raise
        if isinstance(exc, OSError) and folder is not None:
            _fail_if_disk_full(exc, what, folder)
        if (refused := path_refused(exc, folder)) is not None:
            _fail(prefix + str(refused))
        _fail(f"{prefix}unexpected {type(exc).__name__}: {exc}. This is a bddengine bug, not your input: "
              "re-run with --debug for the traceback and report it with the command you ran.")


def _load(config: Path | None, overrides: list[str] | None) -> EngineConfig:
    try:
        cfg = load_config(config, overrides or [])
    except ConfigError as exc:
        _fail(str(exc))
        raise  # unreachable; keeps type checkers happy
    with _errors(what="the config check", folder=cfg.runs_dir):
        blocker = _file_in_the_way(cfg.runs_dir)
    if blocker == cfg.runs_dir:
        _fail(f"runs_dir={cfg.runs_dir} is a file, not a folder: point runs_dir at a folder "
              "(it is created if missing), or move the file away.")
    if blocker is not None:
        _fail(f"runs_dir={cfg.runs_dir} cannot be made: {blocker} is a file, not a folder. Point runs_dir "
              "at a folder (it is created if missing), or move the file away.")
    return cfg


def _file_in_the_way(folder: Path) -> Path | None:
    """The nearest existing path at or above ``folder`` when it is not a folder (None when it is)."""
    for path in (folder, *folder.parents):
        if path.exists():
            return None if path.is_dir() else path
    return None


def _fail(message: str, code: int = 2) -> None:
    console.print(f"[bold red]error:[/] {_printable(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def _printable(text: str) -> str:
    """The message with anything a terminal cannot print (a lone surrogate) escaped."""
    try:
        text.encode("utf-8")
        return text
    except UnicodeEncodeError:
        return text.encode("utf-8", "backslashreplace").decode("utf-8")


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
    kwargs.setdefault("progress", console.is_terminal)  # piped output: no progress bars
    return module.run(cfg, **kwargs)


def _invoke(name: str, config: Path | None, overrides: list[str] | None, **kwargs) -> None:
    cfg = _load(config, overrides)
    with _errors(what=name, folder=cfg.data.root if name == "synth" else cfg.runs_dir):
        out = _run_stage(name, cfg, **kwargs)
    print_outcome(out)


def _interrupted(what: str) -> None:
    """Ctrl-C: nothing was committed; exit 130 like any interrupted command."""
    console.print(f"[bold red]interrupted:[/] {what} stopped; nothing was committed (an interrupted "
                  "training keeps its folder for `--resume`)", highlight=False, soft_wrap=True)
    raise typer.Exit(130)


def _fail_if_disk_full(exc: OSError, what: str, folder: Path) -> None:
    """A full disk outside a run folder (data.root, the published report): one clear message."""
    if is_disk_full(exc):
        _fail(str(disk_full(exc, Path(exc.filename).parent if exc.filename else folder, what=what)))


@app.command(cls=ReadableCommand)
def synth(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Generate the synthetic driving world (BDD100K det_20 layout) under data.root.

    Example: bddengine synth --config configs/demo.yaml
    """
    _invoke("synth", config, set_, force=force)


@app.command(cls=ReadableCommand)
def collect(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Collect labeled + unlabeled frames, stratified by weather x timeofday.

    Example: bddengine collect --config configs/demo.yaml
    """
    _invoke("collect", config, set_, force=force)


IterOpt = Annotated[int, typer.Option("--iter", min=0, metavar="N", help="Flywheel iteration (0 = train pool only).")]
ArmOpt = Annotated[
    str | None,
    typer.Option("--arm", metavar="ARM",
                 help="Mining strategy whose auto-labels iteration N > 0 uses (e.g. prototype)."),
]

StrategyOpt = Annotated[
    str | None,
    typer.Option("--strategy", metavar="NAME", help=f"{', '.join(strategy_names())} (overrides mine.strategy)."),
]
EmbeddingOpt = Annotated[
    str | None,
    typer.Option("--embedding", metavar="NAME",
                 help="embed (curate-stage vectors) or detector (overrides mine.embedding)."),
]
SeedOpt = Annotated[
    int | None,
    typer.Option("--seed", metavar="N", help="Training seed (default: config seed); another seed gets its own run."),
]


@app.command(cls=ReadableCommand)
def embed(
    model: Annotated[
        str | None, typer.Option("--model", metavar="NAME", help="clip or dinov2 (default: the config's embed.model).")
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
) -> None:
    """Embed every collected frame with CLIP or DINOv2 (the config's embed.model and embed.clip_arch).

    Example: bddengine embed --config configs/demo.yaml --model clip
    """
    overrides = list(set_ or []) + ([f"embed.model={model}"] if model is not None else [])
    _invoke("embed", config, overrides, force=force)


@app.command(cls=ReadableCommand)
def split(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Split into train pool, slice-balanced eval pool and unlabeled mining pool.

    Example: bddengine split --config configs/demo.yaml
    """
    _invoke("split", config, set_, force=force)


@app.command(cls=ReadableCommand)
def train(
    iter_: IterOpt = 0,
    arm: ArmOpt = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted training.")] = False,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
    trust_weights: TrustOpt = None,
) -> None:
    """Train the YOLOv8 detector for one flywheel iteration.

    Example: bddengine train --iter 0 --config configs/demo.yaml
    """
    trust(trust_weights or [])
    _invoke("train", config, set_, iter=iter_, arm=arm, seed=seed, resume=resume, force=force,
            source=source)


@app.command("eval", cls=ReadableCommand)
def eval_(
    iter_: IterOpt = 0,
    arm: ArmOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
    trust_weights: TrustOpt = None,
) -> None:
    """Evaluate mAP@0.5 per weather x timeofday x scene slice.

    Example: bddengine eval --iter 0 --config configs/demo.yaml
    """
    trust(trust_weights or [])
    _invoke("eval", config, set_, iter=iter_, arm=arm, seed=seed, force=force, source=source)


@app.command(cls=ReadableCommand)
def mine(
    iter_: IterOpt = 0,
    strategy: StrategyOpt = None,
    embedding: EmbeddingOpt = None,
    arm: Annotated[str | None, typer.Option(
        "--arm", metavar="ARM", help="From --iter 1 on: the lineage's arm (e.g. prototype-pyramid); it mines with "
        "that lineage's model, leaving out the frames it labeled before.")] = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
) -> None:
    """Mine unlabeled frames like the worst slice's failures (embedding k-NN).

    Example: bddengine mine --config configs/demo.yaml --strategy prototype
    """
    overrides = list(set_ or [])
    overrides += [f"mine.strategy={strategy}"] if strategy is not None else []
    overrides += [f"mine.embedding={embedding}"] if embedding is not None else []
    _invoke("mine", config, overrides, iter=iter_, arm=arm, seed=seed, force=force, source=source)


@app.command(cls=ReadableCommand)
def autolabel(
    iter_: IterOpt = 0,
    arm: ArmOpt = None,
    seed: SeedOpt = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    source: FromOpt = None,
    trust_weights: TrustOpt = None,
) -> None:
    """Auto-label the mined frames and route boxes to accept / review / drop.

    Example: bddengine autolabel --config configs/demo.yaml --arm prototype
    """
    trust(trust_weights or [])
    _invoke("autolabel", config, set_, iter=iter_, arm=arm, seed=seed, force=force, source=source)


@app.command(cls=ReadableCommand)
def report(config: ConfigOpt = None, set_: SetOpt = None, force: ForceOpt = False) -> None:
    """Write the case study: per-slice deltas with paired bootstrap CIs.

    Example: bddengine report --config configs/demo.yaml
    """
    _invoke("report", config, set_, force=force)


@app.command(cls=ReadableCommand)
def score(
    gt: Annotated[Path, typer.Argument(metavar="GT_FILE", help="BDD-format label file (a JSON list of frames).")],
    pred: Annotated[Path, typer.Argument(metavar="PRED_FILE",
                                         help="BDD-format predictions (labels carry a score).")],
    by: Annotated[str, typer.Option(metavar="ATTR,ATTR", help="Comma list of frame attributes that define slices.")] = (
        "weather,timeofday,scene"
    ),
    min_frames: Annotated[
        int, typer.Option("--min-frames", metavar="N", help="Leave out smaller slices (1 or more).")
    ] = 1,
    n_boot: Annotated[
        int, typer.Option("--n-boot", metavar="N", help="Bootstrap resamples per slice CI (0: none).")
    ] = 1000,
    seed: Annotated[int, typer.Option(metavar="N", help="Bootstrap seed.")] = 42,
    on_duplicate: Annotated[
        str, typer.Option("--on-duplicate", metavar="MODE", help="A frame listed twice: error, last (keep the last "
                          "record, as the official evaluator does) or merge (keep every record's labels).")
    ] = "error",
    json_out: Annotated[Path | None, typer.Option("--json", metavar="FILE", help="Write the result here.")] = None,
) -> None:
    """Score any BDD-format predictions against BDD labels, overall and per slice.

    Example: bddengine score det_val.json preds.json --by weather,timeofday --json scores.json
    """
    from bddengine.bdd.validate import ON_DUPLICATE
    from bddengine.evaluation import UnknownFrameError, score_files
    from bddengine.evaluation.score import ScoreError

    attrs = [a.strip() for a in by.split(",") if a.strip()]
    if on_duplicate not in ON_DUPLICATE:
        _fail(f"--on-duplicate {on_duplicate}: use one of {', '.join(ON_DUPLICATE)}.")
    if json_out is not None and json_out.is_dir():
        _fail(f"--json {json_out} is a folder: give a file name, e.g. --json {json_out / 'scores.json'}.")
    with _errors():
        try:
            doc = score_files(gt, pred, by=attrs, min_frames=min_frames, n_boot=n_boot, seed=seed,
                              on_duplicate=on_duplicate)  # type: ignore[arg-type]
        except (ScoreError, UnknownFrameError) as exc:
            _fail(str(exc))
    print_score(doc)
    if json_out is not None:
        with _errors(f"cannot write --json {json_out}: "):
            json_out.parent.mkdir(parents=True, exist_ok=True)
            json_out.write_text(json.dumps(doc, indent=2) + "\n")
        console.print(f"wrote {json_out}")


def print_score(doc: dict) -> None:
    """The overall numbers, the slice table (worst first) and what the label checks left out."""
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
    for role, checks in doc.get("checks", {}).items():
        counts = {**checks["counts"], **checks["notes"]}
        if checks["non_detection_labels"]:
            counts["non-detection label (skipped)"] = checks["non_detection_labels"]
        what = "; ".join(f"{k}: {v}" for k, v in counts.items()) or "every record accepted"
        left = f"{checks['total']} problem(s) counted" if checks["total"] else "no problem counted"
        console.print(_printable(f"{role} checks: {left} ({what})"), highlight=False, soft_wrap=True,
                      markup=False)
    if any(c["total"] or c["notes"] for c in doc.get("checks", {}).values()) and "checks" in doc:
        console.print("  examples of each are under \"checks\" in the --json output", highlight=False)


def _pct(v: float | None) -> str:
    return "n/a" if v is None else f"{100 * v:.2f}"


@app.command(cls=ReadableCommand)
def check(config: ConfigOpt = None, set_: SetOpt = None) -> None:
    """Check that every file, weight, package and service the configured turn needs is here.

    Prints one table (found / missing / what to do) and exits 2 when something is
    missing; writes nothing and downloads nothing. `bddengine flywheel` runs the same
    check before any work.

    Example: bddengine check --config configs/default.yaml
    """
    from bddengine.preflight import turn_needs, ultralytics_settings_aside

    cfg = _load(config, set_)
    with _errors(what="check"), ultralytics_settings_aside():
        needs = turn_needs(cfg)
    missing = print_needs(needs, title=f"what the turn of {config or 'configs/default.yaml'} needs")
    if missing:
        _fail(f"{missing} of the {len(needs)} things the turn needs are missing: the table says what to do "
              "for each; nothing was written.")
    console.print(f"[bold green]ready:[/] all {len(needs)} things the turn needs are here", highlight=False)


def print_needs(needs: list, *, title: str) -> int:
    """The check's list; returns how many items are missing.

    One line per item (stage, status, item) with where it is / what to do indented
    below it: lines rather than a boxed table, so it fits 80 columns and a path or URL
    is wrapped whole, never split (a copy-paste gets all of it).
    """
    import textwrap

    width = max(60, console.width)
    stage_w = max(len("stage"), *(len(n.stage) for n in needs))
    indent = " " * 4

    def wrapped(text: str, first: str, rest: str) -> list[str]:
        lines = textwrap.wrap(text, width=width, initial_indent=first, subsequent_indent=rest,
                              break_long_words=False, break_on_hyphens=False) or [first.rstrip()]
        return [line.strip() if len(line) > width else line for line in lines]  # a long URL: whole, unindented

    console.print(f"[bold]{title}[/]", highlight=False)
    console.print(f"[bold]{'stage':<{stage_w}}  {'status':<7}  item[/]", highlight=False)
    console.print(f"[bold]{indent}where it is / what to do[/]", highlight=False)
    for n in needs:
        status = "[green]found  [/]" if n.found else "[bold red]missing[/]"
        head = wrapped(_printable(n.item), "", " " * (stage_w + 11))
        console.print(f"{n.stage:<{stage_w}}  {status}  {escape(head[0])}", highlight=False, soft_wrap=True)
        for line in head[1:] + wrapped(_printable(n.detail), indent, indent):
            console.print(line, highlight=False, soft_wrap=True, markup=False)
    return sum(1 for n in needs if not n.found)


@app.command(cls=ReadableCommand)
def flywheel(
    arms: Annotated[
        str | None,
        typer.Option("--arms", metavar="ARM,ARM", help="Comma list of retraining arms (overrides flywheel.arms)."),
    ] = None,
    seeds: Annotated[
        int | None,
        typer.Option("--seeds", min=1, metavar="N",
                     help="Trainings per arm for seed variance (overrides flywheel.seeds)."),
    ] = None,
    turns: Annotated[
        int | None,
        typer.Option("--turns", min=1, metavar="N",
                     help="Turns per (arm, seed) lineage (overrides flywheel.turns); a finished run's turns "
                     "are re-used and only the missing ones run."),
    ] = None,
    config: ConfigOpt = None,
    set_: SetOpt = None,
    force: ForceOpt = False,
    trust_weights: TrustOpt = None,
) -> None:
    """Run every stage of the flywheel's turns in order, every arm and seed, ending with the report.

    Example: bddengine flywheel --config configs/demo.yaml --arms prototype,random --seeds 2 --turns 3
    """
    import time

    from bddengine.flywheel import TurnProfile, measure_step, plan_turn, skipped_by
    from bddengine.labeling.sources import added_nothing
    from bddengine.runs import parse_run_name
    from bddengine.runs.turn_profile import profile_path

    if arms is not None and not arms.strip(" ,"):
        _fail(f"--arms {arms!r} names no arm: give a comma list such as --arms prototype,random, or leave "
              "--arms out to run flywheel.arms.")
    overrides = list(set_ or [])
    overrides += [f"flywheel.arms=[{arms}]"] if arms is not None else []
    overrides += [f"flywheel.seeds={seeds}"] if seeds is not None else []
    overrides += [f"flywheel.turns={turns}"] if turns is not None else []
    cfg = _load(config, overrides)
    trust(trust_weights or [])
    steps = plan_turn(cfg, force=force)
    _check_turn(cfg)
    profile = TurnProfile(profile_path(cfg.runs_dir), cfg.name, cfg.runs_dir, [s.title() for s in steps])
    start = time.perf_counter()
    empty: dict[str | tuple[str, int], str] = {}  # arm or (arm, seed) -> the autolabel run that added nothing
    for i, step in enumerate(steps, 1):
        console.rule(f"[bold]{i}/{len(steps)} {step.title()}")
        if (nothing := skipped_by(step, empty)) is not None:
            console.print(f"[yellow]{step.arm} added nothing[/] ({nothing} has no labeled box): "
                          f"{step.title()} skipped; the report lists the arm without a delta", highlight=False)
            with measure_step() as cost:
                pass
            profile.add(step, cost, run=None, skipped=True, note="added nothing")
            continue
        with measure_step() as cost, \
                _errors(f"flywheel stopped at {step.title()}: ", what=f"flywheel step {step.title()}",
                        folder=step.cfg.data.root if step.stage == "synth" else step.cfg.runs_dir):
            out = _run_stage(step.stage, step.cfg, **step.kwargs)
        print_outcome(out)
        profile.add(step, cost, run=Path(out.location).name if out.location else None, skipped=out.skipped)
        ref = parse_run_name(Path(out.location)) if step.stage == "autolabel" and out.location else None
        if ref is not None and step.arm and added_nothing(ref.result().get("metrics") or {}):
            empty[step.lineage or step.arm] = ref.name
    table = Table("step", "wall time", "CPU time", "peak RSS", "share", "",
                  title=f"flywheel turn: {time.perf_counter() - start:.0f} s")
    for s in profile.to_dict()["steps"]:
        table.add_row(s["step"], f"{s['wall_s']:.1f} s", f"{s['cpu_s']:.1f} s",
                      f"{s['peak_rss_mb']:.0f} MB" if s["peak_rss_mb"] is not None else "n/a",
                      f"{s['share']:.0%}" if s["share"] is not None else "", "up to date" if s["skipped"] else "")
    console.print(table)
    console.print(f"where the time went: {profile.path}")


def _check_turn(cfg: EngineConfig) -> None:
    """Stop before any work when something the turn will need is missing (`bddengine check`)."""
    from bddengine.preflight import turn_needs

    with _errors("flywheel: ", what="the flywheel check"):
        needs = turn_needs(cfg)
    missing = [n for n in needs if not n.found]
    if missing:
        print_needs(needs, title="what this turn needs")
        _fail(f"flywheel: {len(missing)} of the {len(needs)} things the turn needs are missing ("
              + ", ".join(n.item for n in missing) + "): nothing was run. The table says what to do for "
              "each; `bddengine check` (same --config) repeats the check.")


@app.command("app", cls=ReadableCommand)
def app_command(
    run: Annotated[
        str | None,
        typer.Option("--run", metavar="RUN", help="Open on this run's view: an eval run's worst slice (e.g. "
                     "05_eval_iter0), a mine run's mined frames, an autolabel run's review queue."),
    ] = None,
    port: Annotated[int, typer.Option("--port", metavar="PORT", help="Port to serve the App on.")] = 5151,
    address: Annotated[
        str, typer.Option("--address", metavar="HOST", help="Address to serve on (0.0.0.0 to share on the network).")
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
    except OSError as exc:
        if (refused := path_refused(exc, cfg.runs_dir)) is None or _debug["on"]:
            raise
        _fail(str(refused))


def main() -> None:  # pragma: no cover - console-script entry point
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
