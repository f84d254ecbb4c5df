"""The diff against the paper, cell by cell, answering "bug or noise?": OUT/report.md (also printed) and
OUT/report.html (templates/report.html.j2) with, per row, its numbers, validation examples, per-class IoU
and loss curves (OUT/figures/, 150 dpi).

    repro report OUT [--tables 2 3 4 5] [--ranges FILE]

Each cell: our mean +- std over n seeds, where it lies between the best floor row and the ceiling (repro.bounds),
the reference (the paper's value at paper scale; at smoke scale the seeds measured for the smoke ranges, a
regression check, the paper's numbers following in a separate table) and one verdict symbol of
repro.verdicts (statistical verdict and fixed band; the numbers in the row's section and, in report.html,
on hover). Every number comes from OUT/results.csv (repro.results_table), written first. Cells of rows the
project does not implement at the run's scale read `not implemented`; implemented rows with no result yet
read `not run`. Neither is ever dropped. The header is computed from the results found.
"""

from dataclasses import dataclass, field
from pathlib import Path

from repro import layout, results_table
from repro.bounds import position
from repro.io import sha256_file, write_text
from repro.layout import load_plan
from repro.rows import (BOUNDS, CEILING, FLOORS, PRETRAINED, PRETRAINED_NOTE, ROWS, TABLE_DIRECTION, TABLE_ROWS, Row,
                        is_implemented)
from repro.verdicts import (METRIC_LABELS, METRICS, REGRESSION_NOTE, RULE_BAND, RULE_INTERVAL, SYMBOL_LEGEND,
                            Verdict, check_scale, judge_cell, load_expected, load_paper,
                            load_results, ranges_label, references)

TABLE_TITLES = {2: "Table 2: labels -> photo (FCN-score)", 3: "Table 3: photo -> labels (nearest palette colour)",
                4: "Table 4: ablations, labels -> photo (FCN-score)", 5: "Table 5: ablations, photo -> labels"}
N_EXAMPLES = 3
DPI = 150
POSITION_NOTE = ("[x%]: where the mean lies between the best floor row (0%: the better of the untrained generator "
                 "and the constant output) and the ground truth (100%: the ceiling), all scored the same way.")


# ------------------------------------------------------------------------------ the numbers


@dataclass
class Cell:
    """What the report shows for one (table, row, metric): a verdict, or why there is none."""

    verdict: Verdict | None  # None: not implemented
    position: float | None = None  # between the best floor (0) and the ceiling (1)

    @property
    def state(self) -> str:
        if self.verdict is None:
            return "not implemented"
        return "not run" if not self.verdict.values else ""

    def ours(self) -> str:
        if self.state:
            return self.state
        v = self.verdict
        text = f"{v.mean:.3f} +- {v.std:.3f}" if v.std is not None else f"{v.mean:.3f}"
        return text + ("" if self.position is None else f" [{100 * self.position:.0f}%]")

    def reference(self) -> str:
        return "" if self.verdict is None or self.verdict.reference is None else f"{self.verdict.reference:.3f}"

    def symbol(self) -> str:
        """The one verdict symbol of the wide tables (the state when there is no verdict)."""
        return self.state or self.verdict.symbol

    def details(self) -> str:
        """Every number behind the symbol (the HTML hover)."""
        return self.state or self.verdict.details

    @property
    def css(self) -> str:
        """HTML class of the verdict: ok, bad, weak (not judged), none."""
        if self.state:
            return "none"
        return {"pass": "ok", "fail": "bad", "open": "weak"}[self.verdict.outcome]


def table_rows(table: int, results: dict) -> list[Row]:
    """The paper's rows of a table, the official port's pretrained row right after CycleGAN when it was scored,
    then the ceiling and floor rows."""
    rows = list(TABLE_ROWS[table])
    if PRETRAINED.key in results and table in PRETRAINED.tables:
        rows.insert(next(i for i, r in enumerate(rows) if r.key == "cyclegan") + 1, PRETRAINED)
    return rows + list(BOUNDS)


def bounds_of(frame, table: int, metric: str) -> tuple[float | None, float | None]:
    """(best floor mean, ceiling mean) of a cell's table and metric, None where not scored."""
    cell = frame[(frame["table"] == table) & (frame["metric"] == metric)]
    means = cell.groupby("row")["value"].mean()
    floors = [means[r.key] for r in FLOORS if r.key in means]
    return (max(floors) if floors else None), (means[CEILING.key] if CEILING.key in means else None)


def table_cells(table: int, frame, scale: str, ranges, refs: dict, results: dict) -> dict[tuple[str, str], Cell]:
    """(row key, metric) -> Cell for every row of a table, from the tidy results table."""
    cells = {}
    for row in table_rows(table, results):
        for metric in METRICS:
            if not (row in BOUNDS or is_implemented(row, scale)):
                cells[(row.key, metric)] = Cell(None)
                continue
            verdict = judge_cell(frame, table, row.key, metric, scale, ranges, refs)
            floor, ceiling = bounds_of(frame, table, metric)
            where = (position(verdict.mean, floor, ceiling) if verdict.values and row not in BOUNDS
                     and floor is not None and ceiling is not None else None)
            cells[(row.key, metric)] = Cell(verdict, where)
    return cells


def seeds_text(results: list[dict]) -> str:
    return str(len(results)) if results else "0"


def wide_rows(table: int, cells: dict, results: dict) -> list[list]:
    """One line per method: seeds, then ours [position] | reference | verdict symbol for each metric."""
    lines = []
    for row in table_rows(table, results):
        line = [row.label, seeds_text(results.get(row.key, []))]
        for metric in METRICS:
            c = cells[(row.key, metric)]
            line += [c.ours(), c.reference(), c.symbol()]
        lines.append(line)
    return lines


def paper_rows(table: int, paper: dict) -> list[list]:
    return [[row.label, *(f"{v:.2f}" for v in paper[f"table{table}"][row.key])] for row in TABLE_ROWS[table]]


def row_metric_rows(row: Row, tables, frame, scale: str, ranges, refs: dict) -> list[dict]:
    """A row's own numbers: every metric of every table it is in, with every number behind the verdict. Tables
    that score the same direction with the same reference and band (a CycleGAN row in Tables 2 and 4) share a line."""
    lines, seen = [], {}
    for table in (t for t in row.tables if t in tables):
        for metric in METRICS:
            v = judge_cell(frame, table, row.key, metric, scale, ranges, refs)
            if not v.values:
                continue
            same = (TABLE_DIRECTION[table], metric, v)
            if same in seen:
                seen[same]["table"] += f", {table}"
                continue
            floor, ceiling = bounds_of(frame, table, metric)
            where = position(v.mean, floor, ceiling) if floor is not None and ceiling is not None else None
            line = seen[same] = {
                "table": str(table), "metric": METRIC_LABELS[metric], "mean": f"{v.mean:.4f}",
                "std": "" if v.std is None else f"{v.std:.4f}", "n": v.n, "seeds": ", ".join(f"{x:.4f}" for x in v.values),
                "reference": "" if v.ref is None else v.ref.describe(), "test": v.test_text,
                "interval": "" if v.interval is None else f"[{v.interval[0]:.4f}, {v.interval[1]:.4f}]",
                "verdict": v.verdict_text, "band": "" if v.band is None else f"[{v.band[0]:.4f}, {v.band[1]:.4f}]",
                "band_verdict": v.band_text,
                "position": "" if where is None or row in BOUNDS else f"{100 * where:.0f}%",
                "verdict_css": {"consistent": "ok", "differs": "bad"}.get(v.verdict, "weak"),
                "band_css": {"close": "ok", "far": "bad"}.get(v.band_verdict, "weak")}
            lines.append(line)
    return lines


# ------------------------------------------------------------------------------ header and calibration


@dataclass
class Facts:
    """What the results found say about the reproduction (never the plan alone)."""

    scale: str
    rows: list[str]                   # row keys with at least one result
    seeds: dict[str, list[int]]       # row key -> seeds found
    planned_seeds: int | None
    planned_rows: list[str]
    devices: list[str] = field(default_factory=list)
    commits: list[str] = field(default_factory=list)
    dirty: bool = False
    iters_per_epoch: list = field(default_factory=list)
    overridden: bool = False          # the plan overrode the configs' iterations per epoch

    def lines(self) -> list[str]:
        counts = sorted({len(s) for s in self.seeds.values()})
        if not self.rows:
            seeds = "none"
        elif len(counts) == 1:
            seeds = f"{counts[0]} per row (seeds {', '.join(map(str, sorted(next(iter(self.seeds.values())))))})"
        else:
            seeds = f"{counts[0]} to {counts[-1]} per row: " + ", ".join(f"{k} {len(s)}" for k, s in self.seeds.items())
        short = [f"{self.planned_seeds} planned" if self.planned_seeds else ""]
        fewer = [k for k, s in self.seeds.items() if self.planned_seeds and len(s) < self.planned_seeds]
        missing = [k for k in self.planned_rows if k not in self.seeds]
        lines = [f"Rows with results: {len(self.rows)} of {len(self.planned_rows)} implemented rows planned"
                 + (f" (no result yet: {', '.join(missing)})" if missing else ""),
                 f"Seeds found: {seeds}" + (f"; {short[0]}" if short[0] else "")
                 + (f"; fewer than planned: {', '.join(fewer)} (interrupted?)" if fewer else ""),
                 f"Device: {', '.join(self.devices) or 'unknown'}",
                 f"Commit: {', '.join(c[:10] for c in self.commits) or 'unknown'}"
                 + (" (with uncommitted changes)" if self.dirty else "")]
        if any(i is not None for i in self.iters_per_epoch):
            lines.append(f"Iterations per epoch: {', '.join(str(i) for i in self.iters_per_epoch)}"
                         + (" (overridden with --iters-per-epoch: a reduced run)" if self.overridden else ""))
        return lines


def facts(plan: dict, results: dict, tables) -> Facts:
    rows = [r.key for r in ROWS if r.key in results]
    planned = [r.key for r in ROWS if any(t in r.tables for t in tables) and is_implemented(r, plan["scale"])]
    everything = [res for key in rows + [r.key for r in BOUNDS if r.key in results] for res in results[key]]
    prov = [res.get("provenance", {}) for res in everything]
    return Facts(
        scale=plan["scale"], rows=rows, seeds={k: [r["seed"] for r in results[k]] for k in rows},
        planned_seeds=plan.get("seeds"), planned_rows=planned,
        devices=sorted({p["device"] for p in prov if p.get("device")}),
        commits=sorted({p["git_commit"] for p in prov if p.get("git_commit")}),
        dirty=any(p.get("git_dirty") for p in prov),
        iters_per_epoch=sorted({(res.get("config") or {}).get("iters_per_epoch") for res in everything} - {None}) or [None],
        overridden=plan.get("iters_per_epoch") is not None)


def calibration_info(plan: dict, results: dict) -> dict:
    """The segmenter's calibration against pix2pix's ground-truth row: the one recorded in the results'
    provenance, else (or when recorded before the comparability rule said why) the file next to the segmenter;
    with its band and the comparable yes/no."""
    from repro.eval import calibration

    band = calibration.load_band()
    recorded = [r["provenance"]["calibration"] for rs in results.values() for r in rs
                if r.get("provenance", {}).get("calibration", {}).get("metrics")]
    data = recorded[0] if recorded else None
    segmenter = plan.get("segmenter")
    if (data is None or not data.get("comparability")) and segmenter and Path(segmenter).is_file():
        status = calibration.status(segmenter, sha256_file(segmenter))
        data = status if status.get("metrics") else data
    lines = []
    comparable = None
    if data:
        deltas, comparable = calibration.verdict(data["metrics"], band)
    for m in METRICS:
        p, b = band["paper"][m], band["band"][m]
        if data:
            ours, d = data["metrics"][m], deltas[m]
            inside = abs(d) <= b + 1e-9
            lines.append([METRIC_LABELS[m], f"{p:.2f}", f"{ours:.3f}", f"{d:+.3f}", f"+-{b:.2f}",
                          "yes" if inside else "**no**", "ok" if inside else "bad"])
        else:
            lines.append([METRIC_LABELS[m], f"{p:.2f}", "not calibrated", "", f"+-{b:.2f}", "", "none"])
    if data and data.get("comparability"):  # the full rule (repro.eval.calibration): origin, data and band
        comparable = data.get("comparable_to_paper")
        text = ("yes: " if comparable else "**no**: ") + data["comparability"]
    else:
        text = {True: "yes: every metric lies inside its band", False: "**no**: a metric lies outside its band, so "
                "labels -> photo scores are not comparable to the paper's", None: "unknown (segmenter not calibrated)"}[comparable]
    scored = (data or {}).get("scored")
    what = (f"{scored['images']} images at {scored['size']}: {scored['source']}" if scored else
            "what was scored is not recorded (a calibration from before this was recorded)" if data else "nothing scored")
    return {"lines": lines, "comparable": comparable, "text": text, "scored": what}


# ------------------------------------------------------------------------------ report.md / report.html


def anchor(text: str) -> str:
    """The id GitHub gives a Markdown heading (lower case, punctuation dropped, spaces -> hyphens): the same
    anchors work in report.md and report.html."""
    return "".join(c for c in text.lower() if c.isalnum() or c in " -_").replace(" ", "-")


def md_table(headers: list[str], rows: list[list]) -> str:
    from tabulate import tabulate

    return tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)


def wide_headers(scale: str) -> tuple[list[str], str]:
    ref = "paper" if scale == "paper" else "smoke ref."
    headers = ["Method", "seeds"]
    for m in METRICS:
        headers += [f"{METRIC_LABELS[m]} ours", ref, "verdict"]
    return headers, ref


def table_notes(scale: str) -> list[str]:
    """The words under every wide table."""
    notes = [SYMBOL_LEGEND + ".", POSITION_NOTE]
    return ([REGRESSION_NOTE] if scale != "paper" else []) + notes


def write_report(out: Path, tables=None, ranges=None, quiet: bool = False) -> tuple[Path, Path]:
    """Writes OUT/results.csv, then OUT/report.md and OUT/report.html (+ figures) from it; prints report.md.
    Returns the two report paths. tables: default those the reproduction was run for."""
    from repro import report_figures as figs

    out = Path(out)
    plan = load_plan(out)
    scale = plan["scale"]
    tables = tuple(tables or plan.get("tables") or (2, 3, 4, 5))
    results = load_results(out)
    frame = results_table.refresh(out)  # every aggregate below comes from OUT/results.csv as pandas reads it
    paper = load_paper()
    range_set = load_expected(ranges, scale) if ranges is not None else None
    if range_set is not None:
        check_scale(range_set, scale, out)
    refs = references(scale, range_set)
    if scale == "paper":  # the port's pretrained generators are compared with the paper's CycleGAN row
        refs |= {(t, PRETRAINED.key, m): v for (t, key, m), v in list(refs.items()) if key == "cyclegan"}
    cells = {t: table_cells(t, frame, scale, range_set, refs, results) for t in tables}
    info = facts(plan, results, tables)
    calib = calibration_info(plan, results)
    headers, ref_name = wide_headers(scale)

    if scale == "paper":
        reference_text = "the paper's value (one run, printed to two decimals)"
    else:
        reference_text = ("at smoke scale, the seeds measured for the smoke ranges (`per_seed` in the ranges file): "
                          "a regression check against this project's own smoke runs, not against the paper; the "
                          "paper's numbers are not comparable to the synthetic city and follow, for reference only, "
                          "after the tables")
    ranges_text = ranges_label(ranges) if ranges is not None else "none (band verdicts read `no range`)"
    rules = [f"Statistical verdict: {RULE_INTERVAL}. Reference: {reference_text}.",
             f"Band verdict: {RULE_BAND}. Ranges: {ranges_text}.",
             "Labels -> photo cells use the pix2pix protocol (the paper's); photo -> labels cells the nearest "
             "palette colour in RGB. Std is over seeds (ddof 1). Every number is in results.csv (one line per row, "
             "seed, table and metric)."]
    notes_below = table_notes(scale)

    md = ["# Reproduction report: scale `" + scale + "`", "",
          *([f"**{REGRESSION_NOTE}**", ""] if scale != "paper" else []),
          *[f"- {line}" for line in info.lines()], f"- Segmenter: {calib['text']}", "",
          *[f"{line}" for line in rules], "", "Contents: " + " · ".join(
              [f"[{TABLE_TITLES[t]}](#{anchor(TABLE_TITLES[t])})" for t in tables]
              + ["[Calibration](#calibration-of-the-segmenter)", "per-row sections in report.html"]), ""]
    notes = {t: f"Note ({PRETRAINED.label}): {PRETRAINED_NOTE}" for t in tables if PRETRAINED in table_rows(t, results)}
    for t in tables:
        md += [f"## {TABLE_TITLES[t]}", "", md_table(headers, wide_rows(t, cells[t], results)), "",
               *[f"{line}  " for line in notes_below], ""]
        md += [notes[t], ""] if t in notes else []
    if scale != "paper":
        md += ["## The paper, for reference (not comparable at smoke scale)", ""]
        for t in tables:
            md += [f"{TABLE_TITLES[t]}", "", md_table(["Method", *(METRIC_LABELS[m] for m in METRICS)],
                                                      paper_rows(t, paper)), ""]
    md += ["## Calibration of the segmenter", "",
           f"pix2pix Table 1, ground-truth row (real Cityscapes val photos at 256x256) against what our segmenter "
           f"scored: {calib['scored']}.", "",
           md_table(["metric", "paper", "ours", "delta", "band", "inside"], [line[:-1] for line in calib["lines"]]),
           "", f"Comparable to the paper: {calib['text']}.", ""]
    md_text = "\n".join(md)

    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    sections = []
    for row in (*ROWS, PRETRAINED, *BOUNDS):
        if not any(t in row.tables for t in tables) or (row in (PRETRAINED, *BOUNDS) and row.key not in results):
            continue
        section = {"id": f"row-{row.key}", "label": row.label, "key": row.key,
                   "tables": ", ".join(str(t) for t in row.tables if t in tables), "why": "", "metrics": [],
                   "figures": [], "notes": []}
        if row.key not in results:
            section["why"] = "not implemented at this scale" if not is_implemented(row, scale) else "not run yet"
            sections.append(section)
            continue
        section["metrics"] = row_metric_rows(row, tables, frame, scale, range_set, refs)
        if row in BOUNDS:
            section["notes"].append(results[row.key][0].get("made_by", {}).get("what", ""))
            sections.append(section)
            continue
        seed0 = layout.row_folder(out, row.key, results[row.key][0]["seed"])
        made = figs.example_figures(seed0, plan.get("data"), figures, row.key, N_EXAMPLES)
        section["notes"] += made["notes"]
        section["figures"] += made["figures"]
        section["figures"].append(figs.iou_figure(results[row.key], figures / f"{row.key}_iou.png"))
        runs = [layout.run_folder(out, row.key, r["seed"]) for r in results[row.key]]
        curves, has_fid = figs.curves_figure(runs, figures / f"{row.key}_curves.png")
        if curves:
            section["figures"].append(curves)
        if row is PRETRAINED:
            section["notes"].append(PRETRAINED_NOTE)
        elif not has_fid:
            section["notes"].append("FID curve: not logged for these runs (config fid_every = 0).")
        section["figures"] = [{"src": f"figures/{f['path'].name}", "caption": f["caption"],
                               "width": figs.display_width(f["path"])} for f in section["figures"]]
        sections.append(section)

    page = render_html(
        scale=scale, facts=info.lines() + [f"Segmenter: {calib['text']}"], rules=rules,
        regression=REGRESSION_NOTE if scale != "paper" else "", tables=[
            {"id": anchor(TABLE_TITLES[t]), "title": TABLE_TITLES[t], "ref": ref_name, "note": notes.get(t, ""),
             "below": notes_below,
             "rows": [{"label": row.label, "seeds": seeds_text(results.get(row.key, [])), "bound": row in BOUNDS,
                       "cells": [cells[t][(row.key, m)] for m in METRICS]} for row in table_rows(t, results)]}
            for t in tables],
        metrics=[METRIC_LABELS[m] for m in METRICS],
        paper_tables=[] if scale == "paper" else [
            {"title": TABLE_TITLES[t], "rows": paper_rows(t, paper)} for t in tables],
        calibration=calib, sections=sections)
    md_path, html_path = out / "report.md", out / "report.html"
    write_text(md_path, md_text)
    write_text(html_path, page)
    if not quiet:
        print(md_text)
    print(f"wrote {md_path}, {html_path} and {out / results_table.FILE}")
    return md_path, html_path


def render_html(**context) -> str:
    from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

    env = Environment(loader=PackageLoader("repro", "templates"), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    return env.get_template("report.html.j2").render(**context)
