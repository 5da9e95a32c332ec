"""Headline: each arm's change on the worst slice with its CI, and the label sources compared."""

from __future__ import annotations

from bddengine.report.casestudy.regressions import regression_sentence
from bddengine.report.casestudy.summary import _worst_contrasts
from bddengine.report.costs import arm_costs
from bddengine.report.data import (
    ReportData,
    arm_commands,
    arm_source,
)
from bddengine.report.inputs import mining_of
from bddengine.report.tables import (
    contrast_markdown,
    fmt_ci,
    fmt_delta,
    fmt_int,
    fmt_map,
    fmt_pct,
    fmt_usd,
    headline_markdown,
    md_table,
)


def headline(d: ReportData) -> str:
    """What the turn did to the worst slice, arm against control, and what is missing.

    The per-arm table of the worst slice and overall is in the summary; every slice's
    rows are in the appendix.
    """
    lines = []
    if d.arms_compared:
        c = d.contrasts
        if c is not None and not c.empty:  # the worst slice's rows are in the summary, every slice's in the appendix
            lines.append("Arm against control (the difference of the two deltas; iteration 0 cancels out): on the "
                         "worst slice in the summary, on every slice in appendix E.")
        sig = d.headline[d.headline["ci_excludes_0"].astype(bool) & (d.headline["grouping"] == "slice")]
        firm = sig[~sig["fragile"].astype(bool)]
        n_tests = int(((d.headline["grouping"] == "slice") & d.headline["arm"].notna()).sum())
        # the regressions, when any, take the place of the pointer the first sentence already gives
        falls = regression_sentence(d.headline, d.contrasts)
        lines.append(f"Of all {n_tests} (slice, arm) deltas, {len(sig)} have a CI excluding 0 "
                     f"({int((sig['delta'] > 0).sum())} up, {int((sig['delta'] < 0).sum())} down; "
                     f"{len(firm)} on slices not fragile). " + (falls or "Every slice: appendix E."))
    else:
        lines.append("**No arm has an iteration-1 eval, so no delta can be computed yet.** Iteration-0 mAP@0.5 "
                     "per slice is in section 4.")
    lines += source_comparison(d)
    for arm in d.arms_empty:
        lines.append(f"\n**{arm} added nothing**: `{d.arms[arm].autolabel_run}` gave iteration 1 no labeled box, "
                     f"so the flywheel did not retrain it; it has no delta.")
    for arm, todo, _ in missing_arms(d):
        lines.append(f"\n**Arm {arm} is missing**: no {todo} run; the commands that add it: appendix F.")
    for f in d.arms.values():
        for note in f.notes:
            lines.append(f"\n- Note: {note}.")
    return "\n".join(lines).strip()


def missing_arms(d: ReportData) -> list[tuple[str, str, list[str]]]:
    """(arm, the runs it lacks, the commands that add them) for each retraining arm without a result."""
    out = []
    for arm, f in d.arms.items():
        if arm in d.arms_compared or f.mine_only or f.added_nothing:
            continue
        todo = ", ".join(f.missing) or "usable iteration-1 eval"
        cmds = arm_commands(arm, [], d.cfg.seed, d.config_source)
        done = {"mine": f.mine_run is not None, "autolabel": f.autolabel_run is not None}
        cmds = [c for c in cmds if not any(c.startswith(f"bddengine {k} ") and v for k, v in done.items())]
        out.append((arm, todo, cmds))
    return out


def missing_arm_commands(d: ReportData) -> str:
    """Appendix F: the commands that add each missing arm (empty when none is missing)."""
    return "\n\n".join(f"Arm {arm} is missing (no {todo} run). To add it:\n\n```bash\n" + "\n".join(cmds)
                       + "\n```" for arm, todo, cmds in missing_arms(d))


def source_comparison(d: ReportData) -> list[str]:
    """Human vs pyramid vs auto labels on the worst slice, and what the data supports.

    Built from the contrasts whose control is a ``human`` arm of the same mining arm
    (`config.default_contrasts`); says "X beats Y" only when the CI excludes 0.
    """
    c = _worst_contrasts(d)
    if c.empty:
        return []
    sources = {a: arm_source(f) for a, f in d.arms.items()}
    costs = arm_costs(d)
    out = []
    for _, r in c.iterrows():
        a, h = r["arm"], r["control"]
        if sources.get(h) != "human" or sources.get(a) not in ("auto", "pyramid") or mining_of(a) != mining_of(h):
            continue
        ca, ch = costs.get(a), costs.get(h)
        price = ""
        if ca and ch and ca.usd_total is not None and ch.usd_total:
            price = f" It cost {fmt_usd(ca.usd_total)}, {fmt_pct(ca.usd_total / ch.usd_total, 0)} of {h}'s."
        ci = fmt_ci(r["ci_lo"], r["ci_hi"])
        if not bool(r["ci_excludes_0"]):
            verdict = (f"the data cannot tell {sources[a]} from human labels on the worst slice "
                       f"({fmt_delta(r['diff'])}, CI {ci}; a loss of {fmt_delta(r['ci_lo'])} is not ruled out).")
        elif r["diff"] > 0:
            verdict = f"{sources[a]} labels beat human labels on the worst slice by {fmt_delta(r['diff'])} (CI {ci})."
        else:
            verdict = (f"human labels beat {sources[a]} labels on the worst slice by {fmt_delta(-r['diff'])} (CI "
                       f"{ci}): at this labeler's quality, the saving costs mAP.")
        out.append(f"\n**Label source, {a} vs {h}:** {verdict}{price}")
    return out


def headline_full(d: ReportData) -> str:
    """Every slice's headline rows and every arm-vs-control row."""
    if not d.arms_compared:
        rows = [[r["slice"] + (" (worst)" if r["worst"] else ""), fmt_int(r["n_frames"]), fmt_map(r["map50_iter0"])]
                for _, r in d.headline.iterrows()]
        return "No arm has an iteration-1 eval: iteration-0 mAP@0.5 only.\n\n" + md_table(
            ["slice", "frames", "iter 0"], rows)
    lines = [headline_markdown(d.headline, d.arms_compared, n_boot=d.n_boot, seed=d.cfg.seed,
                               fragile_min_gt=d.cfg.report.fragile_min_gt)]
    if d.contrasts is not None and not d.contrasts.empty:
        lines += ["", "Arm against control, every slice:", "", contrast_markdown(d.contrasts)]
    return "\n".join(lines)
