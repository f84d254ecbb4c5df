"""The FID/KID table of a `repro reproduce horse2zebra|fid` folder: OUT/report.md and OUT/fid-table.json.

One table per direction. Rows: ours (mean +- std over seeds, per-seed values in fid-table.json), the official
port's pretrained generators when scored, and every published figure for the dataset
(expected/fid_published.toml) as a reference row with its protocol and source. Columns: FID under each
protocol of repro.eval.fid_protocols, and KID.

Verdicts, as in the Cityscapes tables (repro.verdicts): against a published figure, the 95% prediction
interval for one new run, mean +- t(n-1, 0.975) x s x sqrt(1 + 1/n) over our seeds (not clipped: FIDs are not
fractions), `consistent` when the figure lies inside; and against the fixed band of
expected/ranges_fid_SCALE.toml, `close` or `far`. A band measured with particular Inception weights (the smoke
ranges: random weights, see that file) applies only to a reproduction scored with the same weights.
Published figures are for the real dataset: at smoke scale (synthetic data) they are listed, never judged.
"""

import json
import math
import tomllib
from pathlib import Path

import numpy as np

from repro import ReproError
from repro.io import write_json
from repro.resources import expected_file

COLUMNS = {"fid_pytorch_fid": "FID pytorch-fid", "fid_clean": "FID clean resize", "kid": "KID x 1000"}
OPTIONAL_COLUMNS = {"fid_clean_fid": "FID clean-fid"}  # with --clean-fid-network only
PROTOCOL_OF = {"fid_pytorch_fid": "pytorch_fid", "fid_clean": "clean", "fid_clean_fid": "clean_fid"}
DIRECTIONS = ("A2B", "B2A")


def direction_label(dataset: str, key: str) -> str:
    """'horse -> zebra' for horse2zebra's A2B; 'A -> B' when the name does not say."""
    a, sep, b = dataset.partition("2")
    if not sep:
        return key.replace("2", " -> ")
    return f"{a} -> {b}" if key == "A2B" else f"{b} -> {a}"


def published(dataset: str) -> list[dict]:
    """The published reference figures for `dataset` (expected/fid_published.toml)."""
    with expected_file("fid_published.toml").open("rb") as f:
        return [r for r in tomllib.load(f)["reference"] if r["dataset"] == dataset]


def load_ranges(scale: str, path: Path | None = None) -> dict:
    """expected/ranges_fid_SCALE.toml (or `path`); {} when there is none."""
    source = Path(path) if path else expected_file(f"ranges_fid_{scale}.toml")
    if not source.is_file():
        if path:
            raise ReproError(f"--ranges {path}: no such file.")
        return {}
    try:
        with source.open("rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{source} is not valid TOML: {err}") from None


def prediction_interval(values: list[float]) -> tuple[float, float] | None:
    if len(values) < 2:
        return None
    from scipy.stats import t

    mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
    half = float(t.ppf(0.975, len(values) - 1)) * std * math.sqrt(1 + 1 / len(values))
    return mean - half, mean + half


def verdict(values: list[float], reference: float) -> str:
    """consistent | differs (k sd) | too few seeds, for one published figure against our seeds."""
    interval = prediction_interval(values)
    if interval is None:
        return "too few seeds"
    if interval[0] <= reference <= interval[1]:
        return "consistent"
    std = float(np.std(values, ddof=1))
    return f"differs ({abs(reference - np.mean(values)) / std:.1f} sd)" if std > 0 else "differs (seeds identical)"


def collect(out: Path) -> dict:
    """The plan, our seeds' results and the pretrained row's, read from OUT."""
    out = Path(out)
    plan_path = out / "fid-reproduce.json"
    if not plan_path.is_file():
        raise ReproError(f"{plan_path} does not exist: {out} is not the --out folder of `repro reproduce horse2zebra|fid`.")
    plan = json.loads(plan_path.read_text())
    seeds = [json.loads(p.read_text()) for p in sorted(out.glob("seed-*/result.json"),
                                                       key=lambda p: int(p.parent.name.split("-")[1]))]
    pretrained = out / "port_pretrained" / "result.json"
    return {"plan": plan, "seeds": seeds, "pretrained": json.loads(pretrained.read_text()) if pretrained.is_file() else None}


def columns(found: dict) -> dict:
    """COLUMNS, with clean-fid's own column when the reproduction computed it."""
    rows = found["seeds"] + ([found["pretrained"]] if found["pretrained"] else [])
    extra = {k: v for k, v in OPTIONAL_COLUMNS.items()
             if rows and all(k in r["directions"][d]["metrics"] for r in rows for d in DIRECTIONS)}
    return dict(list(COLUMNS.items())[:2]) | extra | {"kid": COLUMNS["kid"]}


def band_cells(found: dict, ranges: dict) -> list[dict]:
    """Every (direction, metric) of our mean against the ranges' band: close | far | no range."""
    plan, seeds = found["plan"], found["seeds"]
    rule = ranges.get("rule", {})
    same_weights = rule.get("weights_sha256") in (None, plan["weights"]["sha256"])
    same_data = rule.get("dataset") in (None, plan["dataset"])
    cells = []
    for d in DIRECTIONS:
        for metric in columns(found):
            values = [s["directions"][d]["metrics"][metric] for s in seeds]
            band = ranges.get(d, {}).get(metric)
            if not values:
                status = "not run"
            elif band is None or not same_data:
                status = "no range"
            elif not same_weights:
                status = "no range (other Inception weights)"
            else:
                status = "close" if band[0] <= float(np.mean(values)) <= band[1] else "far"
            cells.append({"direction": d, "metric": metric, "values": values, "band": band, "band_verdict": status})
    return cells


def _fmt(metric: str, value: float) -> str:
    return f"{value * 1000:.2f}" if metric == "kid" else f"{value:.2f}"


def _mean_std(metric: str, values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return _fmt(metric, values[0])
    return f"{_fmt(metric, float(np.mean(values)))} +- {_fmt(metric, float(np.std(values, ddof=1)))}"


def write_report(out: Path, ranges: Path | None = None) -> Path:
    """OUT/report.md (the tables) and OUT/fid-table.json (every value behind them)."""
    out = Path(out)
    found = collect(out)
    plan, seeds = found["plan"], found["seeds"]
    ranges_data = load_ranges(plan["scale"], ranges)
    cells = band_cells(found, ranges_data)
    refs = published(plan["dataset"])
    judged = plan["scale"] == "paper"
    cols = columns(found)

    lines = [f"# {plan['dataset']}: FID and KID ({plan['scale']} scale)", "",
             f"Ours: {len(seeds)} seed(s) of the shipped {'horse2zebra' if plan['scale'] == 'paper' else 'smoke/horse2zebra'} "
             f"config; every test image translated and scored against all real test images of the target domain. "
             f"Inception weights sha256 {plan['weights']['sha256'][:12]}... (pytorch-fid's file at paper scale).", ""]
    if plan["scale"] != "paper":
        lines += ["Smoke scale runs on the synthetic horse2zebra (repro.data.synth_pairs): its numbers check the "
                  "pipeline, they are not horse2zebra's. Published figures are listed for reference only.", ""]
    table = {"plan": plan, "directions": {}}
    for d in DIRECTIONS:
        per_metric = {m: [s["directions"][d]["metrics"][m] for s in seeds] for m in cols}
        header = "| row | " + " | ".join(cols.values()) + " | verdict | source / protocol |"
        lines += [f"## {direction_label(plan['dataset'], d)} ({d})", "", header,
                  "|" + "---|" * (len(cols) + 3)]
        bands = {c["metric"]: c for c in cells if c["direction"] == d}
        band_text = "; ".join(f"{cols[m]}: {c['band_verdict']}" for m, c in bands.items() if c["band"] is not None)
        lines.append(f"| ours (n={len(seeds)}) | " + " | ".join(_mean_std(m, v) for m, v in per_metric.items()) +
                     f" | {band_text or 'no range'} | this reproduction |")
        pre = found["pretrained"]
        if pre is not None:
            m = pre["directions"][d]["metrics"]
            lines.append(f"| port pretrained {pre['models'][d]['name']} | " + " | ".join(_fmt(k, m[k]) for k in cols) +
                         " | - | the port's published generator, scored by the same code |")
        rows = []
        for ref in (r for r in refs if r["direction"] == d):
            exact_column = f"fid_{ref.get('exact_column')}" in cols  # the publisher's own protocol was computed
            column, exact = (ref["exact_column"], True) if exact_column else (ref["column"], ref["exact"])
            entries = [_fmt("fid", ref["value"]) if column == PROTOCOL_OF.get(k) else "" for k in cols]
            if not judged or ref.get("verdict") is False:
                v = "-"
            else:
                v = verdict(per_metric[f"fid_{column}"], ref["value"])
                if not exact:
                    v += " (protocol not matched exactly)"
            rows.append({**ref, "compared_in": column, "verdict_text": v})
            lines.append(f"| {ref['label']} | " + " | ".join(entries) + f" | {v} | {ref['source']}. {ref['note']} |")
        lines.append("")
        table["directions"][d] = {"ours": per_metric, "bands": list(bands.values()), "references": rows,
                                  "pretrained": pre["directions"][d]["metrics"] if pre else None}
    lines += ["Columns: FID pytorch-fid = pytorch-fid's preprocessing and network (CUT's protocol); FID clean "
              "resize = clean-fid's clean resizer with pytorch-fid's network (clean-fid itself uses NVIDIA's "
              "TorchScript Inception, so its clean-FIDs are close to this column, not equal); FID clean-fid (with "
              "--clean-fid-network) = clean-fid's clean mode itself; KID x 1000 = unbiased "
              "MMD^2 with the cubic kernel on the pytorch-fid features, subset size and seed in fid-table.json. "
              "Verdict: against a published figure, the 95% prediction interval of our seeds; for ours, the band of "
              "the ranges file. docs/fid.md explains every protocol and why our numbers may differ.", ""]
    if seeds:
        table["kid"] = seeds[0]["directions"]["A2B"]["kid"]
    write_json(out / "fid-table.json", table)
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path


def measure_ranges(out: Path, path: Path, command: str, k_std: float = 3.0, rel_floor: float = 0.05) -> Path:
    """Writes a ranges file from the seeds of OUT: mean +- max(k_std x std, rel_floor x |mean|) per cell, with
    the per-seed values, the command, the dataset and the Inception weights' sha256 recorded."""
    found = collect(out)
    plan, seeds = found["plan"], found["seeds"]
    if len(seeds) < 2:
        raise ReproError(f"{out} holds {len(seeds)} seed(s); measuring ranges needs at least 2.")
    lines = [f"# Accepted ranges of `repro reproduce {plan['target']}` at {plan['scale']} scale, measured (never edited",
             "# by hand) by repro.fidtable.measure_ranges over the seeds below.",
             f"# Rule: mean +- max({k_std:g} x std, {rel_floor:g} x |mean|) over the seeds (std with ddof 1).", "",
             "[rule]", f"k_std = {k_std}", f"rel_floor = {rel_floor}", f"command = {json.dumps(command)}",
             f"seeds = {[s['seed'] for s in seeds]}", f"dataset = \"{plan['dataset']}\"",
             f"weights_sha256 = \"{plan['weights']['sha256']}\"", ""]
    for d in DIRECTIONS:
        lines.append(f"[{d}]")
        for metric in COLUMNS:
            values = [s["directions"][d]["metrics"][metric] for s in seeds]
            mean, std = float(np.mean(values)), float(np.std(values, ddof=1))
            half = max(k_std * std, rel_floor * abs(mean))
            lines.append(f"{metric} = [{mean - half:.6g}, {mean + half:.6g}]  # mean {mean:.6g}, per seed "
                         + ", ".join(f"{v:.6g}" for v in values))
        lines.append("")
    Path(path).write_text("\n".join(lines))
    return Path(path)
