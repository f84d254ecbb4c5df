"""Is a reproduced cell a bug or noise? The one verdict `repro check` and the report both apply, and what it
reads: the results of a reproduction folder, the paper's numbers and the accepted ranges (shipped in
repro/expected/, read through importlib.resources).

Two columns per cell:
- the prediction interval (the main verdict). The paper reports one run per cell; we have n seeds. The 95%
  prediction interval for one new run is mean +- t(n-1, 0.975) x s x sqrt(1 + 1/n) (s: std over seeds,
  ddof 1). `consistent` when the reference value lies inside it, otherwise `differs`, with how many of our
  seeds' standard deviations away the reference is; `too few seeds` with n < 2. The reference is the
  paper's value at paper scale and the mean measured over the seeds of the smoke ranges at smoke scale.
- the fixed band of the ranges file (expected/ranges_SCALE.toml): `close` when our mean lies in [lo, hi],
  else `far`.
"""

import json
import math
import tomllib
from dataclasses import dataclass
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np

from repro import ReproError
from repro.resources import expected_file
from repro.rows import PRETRAINED, ROWS, TABLE_DIRECTION, TABLE_ROWS

METRICS = ("pixel_acc", "class_acc", "iou")
METRIC_LABELS = {"pixel_acc": "per-pixel acc", "class_acc": "per-class acc", "iou": "class IoU"}
RULE_INTERVAL = ("95% prediction interval for one new run, mean +- t(n-1, 0.975) x s x sqrt(1 + 1/n) over our "
                 "seeds (clipped to [0, 1]): `consistent` when the reference lies inside, else `differs` (by how many "
                 "of our stds)")
RULE_BAND = "fixed band of the ranges file: `close` when our mean lies in [lo, hi], else `far`"


# ------------------------------------------------------------------------------ the verdict


@dataclass(frozen=True)
class Verdict:
    """One cell: our seeds' values against a reference value (interval rule) and a fixed band."""

    values: tuple[float, ...]
    reference: float | None = None
    band: tuple[float, float] | None = None

    @property
    def n(self) -> int:
        return len(self.values)

    @property
    def mean(self) -> float | None:
        return float(np.mean(self.values)) if self.values else None

    @property
    def std(self) -> float | None:
        return float(np.std(self.values, ddof=1)) if self.n > 1 else None

    @property
    def interval(self) -> tuple[float, float] | None:
        """The 95% prediction interval for one new run, clipped to [0, 1] (None with fewer than 2 seeds)."""
        if self.n < 2:
            return None
        from scipy.stats import t  # imported here: scipy.stats takes a moment to import

        half = float(t.ppf(0.975, self.n - 1)) * self.std * math.sqrt(1 + 1 / self.n)
        return max(0.0, self.mean - half), min(1.0, self.mean + half)  # the metrics are fractions

    @property
    def sds_away(self) -> float | None:
        """|reference - mean| in units of our std (inf when the seeds agree exactly and the reference differs)."""
        if self.reference is None or self.n < 2:
            return None
        gap = abs(self.reference - self.mean)
        return gap / self.std if self.std > 0 else (0.0 if gap == 0 else math.inf)

    @property
    def verdict(self) -> str:
        """not run | too few seeds | no reference | consistent | differs"""
        if not self.values:
            return "not run"
        if self.n < 2:
            return "too few seeds"
        if self.reference is None:
            return "no reference"
        lo, hi = self.interval
        return "consistent" if lo <= self.reference <= hi else "differs"

    @property
    def band_verdict(self) -> str | None:
        """close | far (None without a band or a result)."""
        if self.band is None or not self.values:
            return None
        return "close" if self.band[0] <= self.mean <= self.band[1] else "far"

    @property
    def verdict_text(self) -> str:
        """The verdict with its number: `differs (4.1 sd)`, `consistent`, ..."""
        if self.verdict != "differs":
            return self.verdict
        return "differs (seeds identical)" if math.isinf(self.sds_away) else f"differs ({self.sds_away:.1f} sd)"

    @property
    def band_text(self) -> str:
        if self.band_verdict is None:
            return "no range" if self.values else ""
        side = "" if self.band_verdict == "close" else (" (below)" if self.mean < self.band[0] else " (above)")
        return f"{self.band_verdict}{side}"


def judge(values, reference: float | None = None, band: tuple[float, float] | None = None) -> Verdict:
    """The verdict of a cell: our per-seed values, the reference value (paper or measured), the fixed band."""
    return Verdict(tuple(float(v) for v in values), None if reference is None else float(reference),
                   None if band is None else (float(band[0]), float(band[1])))


# ------------------------------------------------------------------------------ what it reads


def load_plan(out: Path) -> dict:
    """OUT/reproduce.json with its paths (stored relative to OUT) resolved against OUT."""
    path = Path(out) / "reproduce.json"
    if not path.is_file():
        raise ReproError(f"{path} does not exist: {out} is not the --out folder of `repro reproduce`.")
    try:
        plan = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ReproError(f"{path} is not valid JSON ({err}); run `repro reproduce` again with this --out.") from None
    for key in ("data", "cityscapes", "segmenter"):
        if plan.get(key):
            path = Path(out) / plan[key]  # an absolute stored path stays itself
            if not path.exists() and Path(plan[key]).exists():
                path = Path(plan[key])  # a reproduce.json written before paths were stored relative to OUT
            plan[key] = path
    return plan


def stored_path(path: Path, out: Path) -> str:
    """How reproduce.json records a path: relative to OUT when inside it, else absolute."""
    path, out = Path(path).resolve(), Path(out).resolve()
    return str(path.relative_to(out)) if path.is_relative_to(out) else str(path)


def load_results(results_dir: Path) -> dict[str, list[dict]]:
    """row key -> its result.json contents, one per seed (sorted by seed); each one checked by check_result."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReproError(f"{results_dir} does not exist: give the --out folder of `repro reproduce`.")
    found: dict[str, list[dict]] = {}
    for path in sorted(results_dir.glob("*/seed-*/result.json")):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro reproduce` again.") from None
        check_result(path, result)
        found.setdefault(result["row"], []).append(result)
    for results in found.values():
        results.sort(key=lambda r: r["seed"])
    return found


ROW_TABLES = {row.key: row.tables for row in (*ROWS, PRETRAINED)}


def check_result(path: Path, result) -> None:
    """A result.json as `repro reproduce` writes it to OUT/ROW/seed-S/: an object whose row and seed are its
    folder's, and whose metrics (per direction: per-pixel acc, per-class acc, IoU) are numbers in [0, 1]. Anything
    else is refused naming the file and the field, never averaged into a cell."""
    redo = "delete it and run `repro reproduce` again"
    if not isinstance(result, dict):
        raise ReproError(f"{path} holds a JSON {type(result).__name__}, not a result object; {redo}.")
    row, folder_row, folder_seed = result.get("row"), path.parent.parent.name, path.parent.name.removeprefix("seed-")
    if row not in ROW_TABLES:
        raise ReproError(f"{path}: row = {row!r} is not a row of Tables 2-5 ({', '.join(ROW_TABLES)}); {redo}.")
    if row != folder_row:
        raise ReproError(f"{path}: row = {row!r}, but the file lies in the folder of row {folder_row!r} (copied from "
                         f"another row?). A result counts only in its own row's folder: move it to {row}/, or {redo}.")
    seed = result.get("seed")
    if type(seed) is not int or str(seed) != folder_seed:
        raise ReproError(f"{path}: seed = {seed!r}, but the file lies in folder seed-{folder_seed} (copied from "
                         f"another seed?). Move it to seed-{seed}/, or {redo}.")
    metrics = result.get("metrics")
    if not isinstance(metrics, dict):
        raise ReproError(f"{path}: metrics is {type(metrics).__name__}, not an object of directions; {redo}.")
    needed = {TABLE_DIRECTION[t] for t in ROW_TABLES[row]}
    for direction in sorted(needed | set(metrics)):
        values = metrics.get(direction)
        if not isinstance(values, dict):
            raise ReproError(f"{path}: metrics.{direction} is {'missing' if values is None else type(values).__name__}"
                             f", not an object of {', '.join(METRICS)}; {redo}.")
        for metric in METRICS:
            value = values.get(metric)
            ok = type(value) in (int, float) and math.isfinite(value) and 0 <= value <= 1
            if not ok:
                raise ReproError(f"{path}: metrics.{direction}.{metric} = {json.dumps(value)} is not a number in "
                                 f"[0, 1] (an accuracy or IoU is a fraction); {redo}.")


def cell_values(results: list[dict], table: int, metric: str) -> list[float]:
    """One value per seed of a row's metric in a table."""
    return [r["metrics"][TABLE_DIRECTION[table]][metric] for r in results]


def load_paper() -> dict:
    """expected/paper.toml (shipped): the paper's Tables 2-5 and the calibration row."""
    return tomllib.loads(expected_file("paper.toml").read_text())


def paper_values(paper: dict) -> dict[tuple[int, str, str], float]:
    """(table, row, metric) -> the paper's value."""
    return {(int(name[5:]), row, metric): float(value)
            for name, table in paper.items() if name.startswith("table") and name[5:].isdigit()
            for row, values in table.items() if isinstance(values, list)
            for metric, value in zip(METRICS, values)}


def default_ranges(scale: str, iters_per_epoch: int | None = None) -> Traversable | None:
    """The shipped ranges of a setting: ranges_paper.toml, ranges_smoke.toml, or those measured for a reduced
    smoke setting (ranges_smoke_iters{N}.toml); None when none were measured for it."""
    if scale == "paper":
        name = "ranges_paper.toml"
    else:
        name = "ranges_smoke.toml" if iters_per_epoch is None else f"ranges_smoke_iters{iters_per_epoch}.toml"
    path = expected_file(name)
    return path if path.is_file() else None


def is_shipped(path) -> bool:
    shipped = expected_file(Path(str(path)).name)
    return shipped.is_file() and Path(str(shipped)).resolve() == Path(str(path)).resolve()


def ranges_label(path) -> str:
    """How the report names a ranges file: never an absolute machine path."""
    name = Path(str(path)).name
    return f"expected/{name} (shipped with repro)" if is_shipped(path) else f"{name} (given with --ranges)"


@dataclass
class Ranges:
    """An accepted-ranges file: the fixed bands and, where measured (smoke), the reference means."""

    bands: dict[tuple[int, str, str], tuple[float, float]]
    references: dict[tuple[int, str, str], float]
    source: str
    scale: str | None = None  # the scale the ranges are for: [rule] scale, else the shipped file's name; None: unknown


SCALES = ("paper", "smoke")


def load_ranges(path) -> Ranges:
    """A ranges file: `[tableN.ROW]` tables of `METRIC = [lo, hi]`, optionally `reference = {METRIC = mean}`
    (the mean over the seeds the range was measured from), and a `[rule]` table saying how they were made.
    An unknown table, row or metric is refused: a misspelt name would otherwise check nothing."""
    path = path if hasattr(path, "is_file") else Path(path)
    if not path.is_file():
        raise ReproError(f"ranges file {path} does not exist (the shipped ones are in expected/).")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{path} is not valid TOML: {err}") from None
    tables = [f"table{t}" for t in TABLE_ROWS]
    bands, references = {}, {}
    for name, rows in data.items():
        if name == "rule":
            continue
        if name not in tables or not isinstance(rows, dict):
            raise ReproError(f"{path}: unknown table [{name}]; a ranges file holds [rule] and [tableN.ROW] tables "
                             f"with N one of {', '.join(str(t) for t in TABLE_ROWS)}.")
        table = int(name[5:])
        known = [r.key for r in TABLE_ROWS[table]] + ([PRETRAINED.key] if table in PRETRAINED.tables else [])
        for row, metrics in rows.items():
            if row not in known or not isinstance(metrics, dict):
                raise ReproError(f"{path}: unknown row [{name}.{row}]; the rows of Table {table} are {', '.join(known)}.")
            for metric, bounds in metrics.items():
                where = f"{path}: [{name}.{row}] {metric}"
                if metric == "reference":
                    if not isinstance(bounds, dict) or set(bounds) - set(METRICS):
                        raise ReproError(f"{where} must be {{METRIC = mean}} with METRIC one of {', '.join(METRICS)}, "
                                         f"got {bounds!r}")
                    references |= {(table, row, m): _fraction(v, f"{where}.{m}") for m, v in bounds.items()}
                    continue
                if metric not in METRICS:
                    raise ReproError(f"{path}: unknown metric {metric!r} in [{name}.{row}]; the metrics are "
                                     f"{', '.join(METRICS)} (and reference).")
                if not (isinstance(bounds, list) and len(bounds) == 2):
                    raise ReproError(f"{where} must be [lo, hi] with lo <= hi, got {bounds!r}")
                lo, hi = (_fraction(b, where) for b in bounds)
                if lo > hi:
                    raise ReproError(f"{where} must be [lo, hi] with lo <= hi, got {bounds!r}")
                bands[(table, row, metric)] = (lo, hi)
    if not bands:
        raise ReproError(f"{path} holds no [tableN.ROW] ranges (METRIC = [lo, hi]).")
    rule = data.get("rule") if isinstance(data.get("rule"), dict) else {}
    scale = rule.get("scale")
    if scale is not None and scale not in SCALES:
        raise ReproError(f"{path}: [rule] scale = {scale!r}; choose one of {', '.join(SCALES)}.")
    if scale is None:
        name = Path(str(path)).name
        scale = next((s for s in SCALES if name.startswith(f"ranges_{s}")), None)
    return Ranges(bands, references, str(path), scale)


def _fraction(value, where: str) -> float:
    if type(value) not in (int, float) or not math.isfinite(value) or not 0 <= value <= 1:
        raise ReproError(f"{where}: {value!r} is not a number in [0, 1]")
    return float(value)


def check_scale(ranges: Ranges, scale: str, results_dir: Path) -> None:
    """Refuses ranges made for one scale applied to results of the other: a paper band says nothing about the
    synthetic city's numbers, nor a smoke band about Cityscapes'."""
    if ranges.scale is not None and ranges.scale != scale:
        raise ReproError(f"{ranges.source} holds ranges for {ranges.scale} scale, but {results_dir} is a {scale}-scale "
                         f"reproduction: its numbers cannot be judged by them. Leave out --ranges to use the shipped "
                         f"ranges of {scale} scale, or give ranges measured at {scale} scale.")


def references(scale: str, ranges: Ranges | None) -> dict[tuple[int, str, str], float]:
    """The values the interval rule compares with: the paper's at paper scale, the measured smoke means at
    smoke scale (a paper number is no reference for the synthetic city)."""
    if scale == "paper":
        return paper_values(load_paper())
    return ranges.references if ranges else {}


def judge_cell(results: dict[str, list[dict]], table: int, row: str, metric: str, scale: str,
               ranges: Ranges | None, refs: dict | None = None) -> Verdict:
    """The verdict of one (table, row, metric) cell of a reproduction."""
    refs = references(scale, ranges) if refs is None else refs
    return judge(cell_values(results.get(row, []), table, metric), refs.get((table, row, metric)),
                 ranges.bands.get((table, row, metric)) if ranges else None)
