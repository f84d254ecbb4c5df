"""The diff against the paper: for every cell, paper value, our mean +- std over seeds, delta and a verdict
against the accepted range; written as OUT/report.md (also printed) and OUT/report.html with, per row,
validation examples, per-class IoU bars and loss / FID curves (OUT/figures/*.png).

    repro report OUT [--tables 2 3 4 5] [--ranges expected/ranges_smoke.toml]

Cells of rows the project does not implement at the run's scale read `not implemented`; implemented rows
with no result yet read `not run`. Neither is ever dropped.
"""

import argparse
import html
import json
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from cityscapesscripts.helpers.labels import trainId2label  # noqa: E402
from PIL import Image  # noqa: E402

from repro import ReproError  # noqa: E402
from repro.io import write_text  # noqa: E402
from repro.check import METRIC_LABELS, METRICS, Cell, cell_values, load_ranges, load_results  # noqa: E402
from repro.data.frames import frame_id  # noqa: E402
from repro.eval.groundtruth import CLASS_NAMES  # noqa: E402
from repro.eval.labels2photo import calibration_file  # noqa: E402
from repro.rows import ROWS, TABLE_ROWS, is_implemented  # noqa: E402

EXPECTED = Path(__file__).resolve().parents[1] / "expected"
TABLE_TITLES = {2: "Table 2: labels -> photo (FCN-score)", 3: "Table 3: photo -> labels (nearest palette colour)",
                4: "Table 4: ablations, labels -> photo (FCN-score)", 5: "Table 5: ablations, photo -> labels"}
N_EXAMPLES = 3


def default_ranges(scale: str, iters_per_epoch: int | None = None) -> Path | None:
    """expected/ranges_paper.toml, expected/ranges_smoke.toml, or the ranges measured for a reduced smoke
    setting (expected/ranges_smoke_iters{N}.toml); None when no ranges were measured for the setting."""
    if scale == "paper":
        name = "ranges_paper.toml"
    else:
        name = "ranges_smoke.toml" if iters_per_epoch is None else f"ranges_smoke_iters{iters_per_epoch}.toml"
    path = EXPECTED / name
    return path if path.is_file() else None


def load_paper(path: Path = EXPECTED / "paper.toml") -> dict:
    with open(path, "rb") as f:
        return tomllib.load(f)


# ------------------------------------------------------------------------------ the diff


def table_frame(table: int, results: dict, scale: str, paper: dict, ranges: dict | None) -> pd.DataFrame:
    """One line per (row, metric): paper, ours mean +- std (n), delta, verdict."""
    lines = []
    for row in TABLE_ROWS[table]:
        for metric, paper_value in zip(METRICS, paper[f"table{table}"][row.key]):
            line = {"method": row.label, "metric": METRIC_LABELS[metric], "paper": f"{paper_value:.2f}"}
            values = cell_values(results.get(row.key, []), table, metric)
            if not is_implemented(row, scale):
                line |= {"ours (mean +- std, n seeds)": "not implemented", "delta": "", "verdict": "not implemented"}
            elif not values:
                line |= {"ours (mean +- std, n seeds)": "not run", "delta": "", "verdict": "not run"}
            else:
                mean, std = float(np.mean(values)), float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
                bounds = (ranges or {}).get((table, row.key, metric))
                if bounds is None:
                    verdict = "no range"
                else:
                    verdict = Cell(table, row.key, metric, *bounds, values).verdict  # the rule `repro check` applies
                    verdict += f" [{bounds[0]:.3f}, {bounds[1]:.3f}]"
                ours = f"{mean:.3f} +- {std:.3f} (n={len(values)})" if len(values) > 1 else f"{mean:.3f} (n=1)"
                line |= {"ours (mean +- std, n seeds)": ours,
                         "delta": f"{mean - paper_value:+.3f}", "verdict": verdict}
            lines.append(line)
    return pd.DataFrame(lines)


def calibration_frame(plan: dict, paper: dict) -> pd.DataFrame:
    """The paper's ground-truth row next to our segmenter's score of the real val photos at 256."""
    gt = paper["calibration"]["ground_truth"]
    path = calibration_file(Path(plan.get("segmenter", "")))
    ours = json.loads(path.read_text())["metrics"] if path.is_file() else None
    return pd.DataFrame([{
        "row": "ground truth (real val photos at 256x256)", "metric": METRIC_LABELS[m], "paper": f"{p:.2f}",
        "ours": f"{ours[m]:.3f}" if ours else "not calibrated", "delta": f"{ours[m] - p:+.3f}" if ours else "",
    } for m, p in zip(METRICS, gt)])


# ------------------------------------------------------------------------------ figures


def colourise(train_ids: np.ndarray) -> np.ndarray:
    """trainId map (19 = void) -> RGB with the Cityscapes colours; void is black."""
    table = np.zeros((256, 3), np.uint8)
    for tid in range(len(CLASS_NAMES)):
        table[tid] = trainId2label[tid].color
    return table[train_ids]


def by_frame(folder: Path) -> dict[str, Path]:
    return {frame_id(p.name): p for p in sorted(Path(folder).glob("*.png")) if frame_id(p.name)}


def examples_figure(folder: Path, data: Path, out: Path, n: int = N_EXAMPLES) -> Path | None:
    """Grid of n val frames: label map, generated photo, real photo | photo, generated label map, its nearest
    palette class map, ground truth."""
    from repro.eval import palette

    labels, photos = by_frame(data / "testB"), by_frame(data / "testA")
    fakes_photo, fakes_label = by_frame(folder / "labels2photo"), by_frame(folder / "photo2labels")
    frames = [f for f in sorted(labels) if f in photos and f in fakes_photo and f in fakes_label][:n]
    if not frames:
        return None
    titles = ["label map", "generated photo", "real photo", "photo", "generated label map",
              "nearest-palette classes", "ground truth"]
    fig, axes = plt.subplots(len(frames), len(titles), figsize=(2 * len(titles), 2.1 * len(frames)), squeeze=False)
    for i, f in enumerate(frames):
        generated_label = np.asarray(Image.open(fakes_label[f]).convert("RGB"))
        images = [labels[f], fakes_photo[f], photos[f], photos[f], fakes_label[f],
                  colourise(palette.classify(generated_label)), labels[f]]
        for ax, image, title in zip(axes[i], images, titles):
            ax.imshow(image if isinstance(image, np.ndarray) else Image.open(image).convert("RGB"))
            ax.set_xticks([]), ax.set_yticks([])
            if i == 0:
                ax.set_title(title, fontsize=8)
        axes[i][0].set_ylabel(f, fontsize=6)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def iou_figure(results: list[dict], out: Path) -> Path:
    """Per-class IoU (mean over seeds) of both directions."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 3.6), sharey=True)
    for ax, direction in zip(axes, ("labels2photo", "photo2labels")):
        iou = np.mean([[c["iou"] for c in r["per_class"][direction]] for r in results], axis=0)
        ax.bar(range(len(CLASS_NAMES)), iou, color=[np.array(trainId2label[i].color) / 255 for i in range(len(iou))],
               edgecolor="black", linewidth=0.4)
        ax.set_xticks(range(len(CLASS_NAMES)), CLASS_NAMES, rotation=70, fontsize=7)
        ax.set_title(f"{direction}: per-class IoU (mean over {len(results)} seed(s))", fontsize=9)
        ax.set_ylim(0, 1)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.is_file() else []


def curves_figure(runs: list[Path], out: Path) -> tuple[Path | None, bool]:
    """Loss terms against step (seed 0 solid; other seeds faint), and FID when the runs logged it.
    Returns (figure, whether FID was plotted)."""
    logs = [read_jsonl(run / "losses.jsonl") for run in runs]
    fids = [read_jsonl(run / "fid.jsonl") for run in runs]
    if not any(logs):
        return None, False
    has_fid = any(fids)
    fig, axes = plt.subplots(1, 2 if has_fid else 1, figsize=(12 if has_fid else 7, 3.6), squeeze=False)
    ax = axes[0][0]
    keys = [k for k in logs[0][0] if k not in ("step", "epoch", "lr")] if logs[0] else []
    for k_i, key in enumerate(keys):
        colour = f"C{k_i % 10}"
        for s_i, log in enumerate(logs):
            steps = [e["step"] for e in log if key in e]
            ax.plot(steps, [e[key] for e in log if key in e], color=colour, alpha=1.0 if s_i == 0 else 0.25,
                    linewidth=1.0, label=key if s_i == 0 else None)
    ax.set_xlabel("iteration"), ax.set_ylabel("loss"), ax.set_title("training losses (seed 0 solid)", fontsize=9)
    ax.legend(fontsize=6, ncol=2)
    if has_fid:
        ax = axes[0][1]
        for s_i, log in enumerate(fids):
            ax.plot([e["step"] for e in log], [e["fid"] for e in log], marker="o", label=f"seed {s_i}")
        ax.set_xlabel("iteration"), ax.set_ylabel("FID"), ax.set_title("FID of G on the val subset", fontsize=9)
        ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)
    return out, has_fid


# ------------------------------------------------------------------------------ report.md / report.html


def markdown(df: pd.DataFrame) -> str:
    return df.to_markdown(index=False, disable_numparse=True)


def write_report(out: Path, tables=(2, 3, 4, 5), ranges: Path | None = None, quiet: bool = False) -> tuple[Path, Path]:
    """Writes OUT/report.md and OUT/report.html (+ figures); prints the tables. Returns both paths."""
    out = Path(out)
    plan_path = out / "reproduce.json"
    if not plan_path.is_file():
        raise ReproError(f"{plan_path} does not exist: {out} is not the --out folder of `repro reproduce`.")
    plan = json.loads(plan_path.read_text())
    scale = plan["scale"]
    results = load_results(out)
    paper = load_paper()
    range_map = load_ranges(ranges) if ranges else None
    frames = {t: table_frame(t, results, scale, paper, range_map) for t in tables}
    calibration = calibration_frame(plan, paper)

    figures = out / "figures"
    figures.mkdir(exist_ok=True)
    row_sections = []
    for row in ROWS:
        if not any(t in row.tables for t in tables):
            continue
        if row.key not in results:
            why = "not implemented" if not is_implemented(row, scale) else "not run"
            row_sections.append((row, why, [], False))
            continue
        folder0 = out / row.key / f"seed-{results[row.key][0]['seed']}"
        figs = [examples_figure(folder0, Path(plan["data"]), figures / f"{row.key}_examples.png"),
                iou_figure(results[row.key], figures / f"{row.key}_iou.png")]
        curves, has_fid = curves_figure([out / row.key / f"seed-{r['seed']}" / "run" for r in results[row.key]],
                                        figures / f"{row.key}_curves.png")
        row_sections.append((row, "", [f for f in figs + [curves] if f is not None], has_fid))

    ranges_text = f"`{ranges}`" if ranges else "none (verdicts read `no range`)"
    head = (f"# Reproduction report: scale `{scale}`\n\n"
            f"Rows trained at seeds 0..{plan['seeds'] - 1} ({plan['seeds']} per row"
            f"{', iterations per epoch overridden to ' + str(plan['iters_per_epoch']) if plan.get('iters_per_epoch') else ''}); "
            f"ranges for the verdicts: {ranges_text}. Labels -> photo cells use the pix2pix protocol "
            f"(the paper's); photo -> labels cells the nearest palette colour in RGB. Std is over seeds (ddof 1).\n")
    if scale == "smoke":
        head += ("\nSmoke scale: synthetic city, 32x32 models, a small FCN-8s trained on the synthetic city. The "
                 "`paper` and `delta` columns are shown for the layout only: smoke numbers are not comparable to "
                 "the paper; the verdicts compare with the smoke ranges measured over seeds.\n")
    md = [head]
    for t, df in frames.items():
        md += [f"\n## {TABLE_TITLES[t]}\n", markdown(df), ""]
    md += ["\n## Calibration of the segmenter (pix2pix Table 1, ground-truth row)\n", markdown(calibration), ""]
    md_path = out / "report.md"
    write_text(md_path, "\n".join(md) + "\n")
    if not quiet:
        for t, df in frames.items():
            print(f"\n{TABLE_TITLES[t]}\n{df.to_markdown(index=False, tablefmt='simple', disable_numparse=True)}")
        print(f"\nCalibration\n{calibration.to_markdown(index=False, tablefmt='simple', disable_numparse=True)}")

    body = [f"<h1>Reproduction report: scale {html.escape(scale)}</h1>",
            f"<p>{html.escape(head.split(chr(10), 2)[2].strip())}</p>"]
    for t, df in frames.items():
        body += [f"<h2>{html.escape(TABLE_TITLES[t])}</h2>", df.to_html(index=False, border=1)]
    body += ["<h2>Calibration of the segmenter</h2>", calibration.to_html(index=False, border=1)]
    for row, why, figs, has_fid in row_sections:
        body.append(f"<h2>{html.escape(row.label)} <small>({row.key}, tables {', '.join(map(str, row.tables))})</small></h2>")
        if why:
            body.append(f"<p><b>{why}</b></p>")
            continue
        body += [f'<p><img src="figures/{f.name}" alt="{f.stem}"></p>' for f in figs]
        if not has_fid:
            body.append("<p>FID curve: not logged for these runs (config fid_every = 0).</p>")
    html_path = out / "report.html"
    write_text(html_path, "<!doctype html>\n<html><head><meta charset='utf-8'><title>repro report</title>"
                   "<style>body{font-family:sans-serif;max-width:1300px;margin:auto} table{border-collapse:collapse;"
                   "font-size:13px} td,th{padding:2px 8px} img{max-width:100%}</style></head><body>\n"
                   + "\n".join(body) + "\n</body></html>\n")
    print(f"\nwrote {md_path} and {html_path}")
    return md_path, html_path


def run_report(args: argparse.Namespace) -> int:
    plan_path = Path(args.out) / "reproduce.json"
    scale = json.loads(plan_path.read_text())["scale"] if plan_path.is_file() else "smoke"
    iters = json.loads(plan_path.read_text()).get("iters_per_epoch") if plan_path.is_file() else None
    write_report(args.out, tuple(args.tables), args.ranges or default_ranges(scale, iters))
    return 0


def add_commands(commands) -> None:
    p = commands.add("report", help="write OUT/report.md and report.html from a `repro reproduce` folder",
                     description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("out", type=Path, help="the --out folder of `repro reproduce`")
    p.add_argument("--tables", type=int, nargs="+", choices=(2, 3, 4, 5), default=[2, 3, 4, 5])
    p.add_argument("--ranges", type=Path, help="accepted ranges (default: expected/ranges_SCALE.toml)")
    p.set_defaults(func=run_report)
