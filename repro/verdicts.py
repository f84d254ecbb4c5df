"""Is a reproduced cell a bug or noise? The one verdict `repro check` and the report both apply, and what it
reads: the results of a reproduction folder (as the tidy table of repro.results_table), the paper's numbers
and the accepted ranges (shipped in repro/expected/, read through importlib.resources).

Two verdicts per cell, folded into one symbol in the wide tables (docs/verdicts.md):
- the statistical verdict, chosen by what the reference is:
  * a reference with its own seeds (the smoke ranges store every measured seed): the two samples are
    compared by a pooled-variance t test, t = (our mean - their mean) / (s_p x sqrt(1/n + 1/m)) with
    n + m - 2 degrees of freedom. Both samples come from the same code on the same data, so one spread
    describes both, and the reference's seeds carry it when ours agree by chance (two seeds equal to three
    decimals no longer make a cell "differ"). `consistent` when |t| <= t(df, 0.975), else `differs`.
  * a one-run reference (the paper): the 95% prediction interval for one new run, mean +- t(n-1, 0.975) x s
    x sqrt(1 + 1/n) over our seeds, widened by the reference's rounding (the paper prints two decimals:
    +- 0.005); only with n >= 3 seeds (with two, t(1) = 12.7 makes the interval [0, 1]): `too few seeds`.
  The seeds' std is taken as at least STD_FLOOR: a smaller spread is float noise, not evidence, and never
  becomes a huge "sd" figure.
- the fixed band of the ranges file (expected/ranges_SCALE.toml): `close` when our mean lies in [lo, hi],
  else `far`.
"""

import json
import math
import tomllib
from dataclasses import dataclass, field
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np

from repro import ReproError
from repro.layout import result_files
from repro.resources import expected_file
from repro.rows import BOUNDS, PRETRAINED, ROWS, TABLE_DIRECTION, TABLE_ROWS

METRICS = ("pixel_acc", "class_acc", "iou")
METRIC_LABELS = {"pixel_acc": "per-pixel acc", "class_acc": "per-class acc", "iou": "class IoU"}
MIN_SEEDS_ONE_RUN = 3      # seeds needed to judge against a one-run reference
STD_FLOOR = 1e-3           # the smallest std a verdict uses: a tenth of the smallest gap the paper argues with
PAPER_RESOLUTION = 0.005   # the paper prints two decimals
RULE_INTERVAL = ("against a reference with its own seeds (smoke): pooled-variance t test of the two samples, "
                 "`consistent` when |t| <= t(n+m-2, 0.975); against a one-run reference (the paper): 95% prediction "
                 f"interval for one new run, mean +- t(n-1, 0.975) x s x sqrt(1 + 1/n) over our seeds (n >= "
                 f"{MIN_SEEDS_ONE_RUN}, else `too few seeds`), widened by the reference's rounding; `differs` otherwise, "
                 f"with the gap (and in stds when the std is above {STD_FLOOR:g})")
RULE_BAND = "fixed band of the ranges file: `close` when our mean lies in [lo, hi], else `far`"
REGRESSION_NOTE = ("Smoke scale: a regression check against this project's own measured smoke runs (the seeds of "
                   "the smoke ranges), not a comparison with the paper.")
SYMBOLS = {"pass": "✓", "fail": "✗", "open": "?"}
SYMBOL_LEGEND = ("✓ consistent with the reference and inside the band · ✗ differs or far · ? not judged (too few "
                 "seeds or no reference); the numbers are in the row's section (report.html: on hover)")


# ------------------------------------------------------------------------------ the verdict


@dataclass(frozen=True)
class Reference:
    """What a cell is compared with: one value (the paper's, known to +- resolution), or a sample of seeds."""

    value: float
    seeds: tuple[float, ...] = ()
    resolution: float = 0.0

    @property
    def sampled(self) -> bool:
        return len(self.seeds) >= 2

    @property
    def std(self) -> float | None:
        return float(np.std(self.seeds, ddof=1)) if self.sampled else None

    def describe(self) -> str:
        if self.sampled:
            return f"{self.value:.4f} +- {self.std:.4f} over {len(self.seeds)} seeds"
        return f"{self.value:.4f}" + (f" (one run, +- {self.resolution:g} rounding)" if self.resolution else " (one run)")


def as_reference(reference) -> Reference | None:
    if reference is None or isinstance(reference, Reference):
        return reference
    return Reference(float(reference))


def t_quantile(df: float) -> float:
    from scipy.stats import t  # imported here: scipy.stats takes a moment to import

    return float(t.ppf(0.975, df))


@dataclass(frozen=True)
class Verdict:
    """One cell: our seeds' values against a reference (statistical verdict) and a fixed band."""

    values: tuple[float, ...]
    ref: Reference | None = None
    band: tuple[float, float] | None = None

    @property
    def reference(self) -> float | None:
        return None if self.ref is None else self.ref.value

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
    def two_sample(self) -> bool:
        return self.ref is not None and self.ref.sampled

    @property
    def judgeable(self) -> bool:
        if self.ref is None or not self.values:
            return False
        return self.n >= 1 if self.two_sample else self.n >= MIN_SEEDS_ONE_RUN

    @property
    def spread(self) -> float | None:
        """The std the verdict uses (at least STD_FLOOR): pooled over both samples, or ours alone."""
        if not self.judgeable:
            return None
        if self.two_sample:
            m = len(self.ref.seeds)
            ours = (self.n - 1) * (self.std or 0.0) ** 2
            pooled = math.sqrt((ours + (m - 1) * self.ref.std ** 2) / (self.n + m - 2))
            return max(pooled, STD_FLOOR)
        return max(self.std, STD_FLOOR)

    @property
    def df(self) -> int | None:
        if not self.judgeable:
            return None
        return self.n + len(self.ref.seeds) - 2 if self.two_sample else self.n - 1

    @property
    def statistic(self) -> float | None:
        """t: (our mean - reference) over the standard error of that difference."""
        if not self.judgeable:
            return None
        if self.two_sample:
            se = self.spread * math.sqrt(1 / self.n + 1 / len(self.ref.seeds))
        else:
            se = self.spread * math.sqrt(1 + 1 / self.n)
        return (self.mean - self.ref.value) / se

    @property
    def interval(self) -> tuple[float, float] | None:
        """Where the verdict is `consistent`, clipped to [0, 1]: for a sampled reference, the 95% acceptance
        interval of our mean around the reference's; for a one-run reference, the 95% prediction interval
        for one new run around our mean, widened by the reference's rounding."""
        if not self.judgeable:
            return None
        crit = t_quantile(self.df)
        if self.two_sample:
            half = crit * self.spread * math.sqrt(1 / self.n + 1 / len(self.ref.seeds))
            centre = self.ref.value
        else:
            half = crit * self.spread * math.sqrt(1 + 1 / self.n) + self.ref.resolution
            centre = self.mean
        return max(0.0, centre - half), min(1.0, centre + half)  # the metrics are fractions

    @property
    def sds_away(self) -> float | None:
        """|our mean - reference| in units of the std the verdict uses (None when not judged or when that
        std is only the floor: a gap over a floor is no evidence worth a number)."""
        if not self.judgeable or self.spread <= STD_FLOOR:
            return None
        return abs(self.mean - self.ref.value) / self.spread

    @property
    def verdict(self) -> str:
        """not run | no reference | too few seeds | consistent | differs"""
        if not self.values:
            return "not run"
        if self.ref is None:
            return "no reference"
        if not self.judgeable:
            return "too few seeds"
        if self.two_sample:
            return "consistent" if abs(self.statistic) <= t_quantile(self.df) else "differs"
        lo, hi = self.interval
        return "consistent" if lo <= self.ref.value <= hi else "differs"

    @property
    def band_verdict(self) -> str | None:
        """close | far (None without a band or a result)."""
        if self.band is None or not self.values:
            return None
        return "close" if self.band[0] <= self.mean <= self.band[1] else "far"

    @property
    def verdict_text(self) -> str:
        """The verdict with its gap: `differs by -0.052 (4.1 sd)`, `consistent`, `too few seeds (2 of 3)`."""
        if self.verdict == "too few seeds":
            return f"too few seeds ({self.n} of {MIN_SEEDS_ONE_RUN})"
        if self.verdict != "differs":
            return self.verdict
        gap = self.mean - self.ref.value
        sds = self.sds_away
        return f"differs by {gap:+.3f}" + ("" if sds is None else f" ({sds:.1f} sd)")

    @property
    def band_text(self) -> str:
        if self.band_verdict is None:
            return "no range" if self.values else ""
        side = "" if self.band_verdict == "close" else (" (below)" if self.mean < self.band[0] else " (above)")
        return f"{self.band_verdict}{side}"

    @property
    def outcome(self) -> str:
        """pass | fail | open | none: what the cell's one symbol says."""
        if not self.values:
            return "none"
        if self.verdict == "differs" or self.band_verdict == "far":
            return "fail"
        return "pass" if self.verdict == "consistent" else "open"

    @property
    def symbol(self) -> str:
        return SYMBOLS.get(self.outcome, "")

    @property
    def test_text(self) -> str:
        """The test statistic in words: `pooled t = -0.31 (df 5)` or `t = 1.20 (df 2)`."""
        if self.statistic is None:
            return ""
        t = round(self.statistic, 2) + 0.0  # never "-0.00"
        return f"{'pooled ' if self.two_sample else ''}t = {t:+.2f} (df {self.df})"

    @property
    def details(self) -> str:
        """Every number behind the verdict, in one line (the HTML hover, `repro check`)."""
        if not self.values:
            return "no result"
        parts = [f"ours {self.mean:.4f}" + ("" if self.std is None else f" +- {self.std:.4f}") + f" (n {self.n})"]
        parts.append("reference " + (self.ref.describe() if self.ref else "none"))
        if self.interval:
            kind = "acceptance interval of our mean" if self.two_sample else "prediction interval"
            parts.append(f"{self.test_text}; 95% {kind} [{self.interval[0]:.4f}, {self.interval[1]:.4f}]")
        parts.append(f"verdict: {self.verdict_text}")
        if self.band is not None:
            parts.append(f"band [{self.band[0]:.4f}, {self.band[1]:.4f}]: {self.band_text}")
        return "; ".join(parts)


def judge(values, reference=None, band: tuple[float, float] | None = None) -> Verdict:
    """The verdict of a cell: our per-seed values, the reference (a Reference, or a one-run value), the band."""
    return Verdict(tuple(float(v) for v in values), as_reference(reference),
                   None if band is None else (float(band[0]), float(band[1])))


# ------------------------------------------------------------------------------ what it reads


def load_results(results_dir: Path) -> dict[str, list[dict]]:
    """row key -> its result.json contents, one per seed (sorted by seed); each one checked by check_result."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReproError(f"{results_dir} does not exist: give the --out folder of `repro reproduce`.")
    found: dict[str, list[dict]] = {}
    for path in result_files(results_dir):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro reproduce` again.") from None
        check_result(path, result)
        found.setdefault(result["row"], []).append(result)
    for results in found.values():
        results.sort(key=lambda r: r["seed"])
    return found


ROW_TABLES = {row.key: row.tables for row in (*ROWS, PRETRAINED, *BOUNDS)}


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


def cell_values(frame, table: int, row: str, metric: str) -> list[float]:
    """One value per seed (sorted by seed) of a row's metric in a table, from the tidy results table
    (repro.results_table: the same numbers as OUT/results.csv)."""
    cell = frame[(frame["table"] == table) & (frame["row"] == row) & (frame["metric"] == metric)]
    return [float(v) for v in cell.sort_values("seed")["value"]]


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
    """An accepted-ranges file: the fixed bands and, where measured (smoke), the reference means and the
    per-seed values they were measured from."""

    bands: dict[tuple[int, str, str], tuple[float, float]]
    references: dict[tuple[int, str, str], float]
    source: str
    samples: dict[tuple[int, str, str], tuple[float, ...]] = field(default_factory=dict)
    scale: str | None = None  # the scale the ranges are for: [rule] scale, else the shipped file's name; None: unknown


SCALES = ("paper", "smoke")


def load_ranges(path) -> Ranges:
    """A ranges file: `[tableN.ROW]` tables of `METRIC = [lo, hi]`, optionally `reference = {METRIC = mean}`
    (the mean over the seeds the range was measured from), `per_seed = {METRIC = [v0, v1, ...]}` (those
    seeds' values, which the statistical verdict compares our seeds with), and a `[rule]` table saying how they
    were made. An unknown table, row or metric is refused: a misspelt name would otherwise check nothing."""
    path = path if hasattr(path, "is_file") else Path(path)
    if not path.is_file():
        raise ReproError(f"ranges file {path} does not exist (the shipped ones are in expected/).")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{path} is not valid TOML: {err}") from None
    tables = [f"table{t}" for t in TABLE_ROWS]
    bands, references, samples = {}, {}, {}
    for name, rows in data.items():
        if name == "rule":
            continue
        if name not in tables or not isinstance(rows, dict):
            raise ReproError(f"{path}: unknown table [{name}]; a ranges file holds [rule] and [tableN.ROW] tables "
                             f"with N one of {', '.join(str(t) for t in TABLE_ROWS)}.")
        table = int(name[5:])
        known = [r.key for r in (*TABLE_ROWS[table], PRETRAINED, *BOUNDS) if table in r.tables]
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
                if metric == "per_seed":
                    if not isinstance(bounds, dict) or set(bounds) - set(METRICS):
                        raise ReproError(f"{where} must be {{METRIC = [v0, v1, ...]}} with METRIC one of "
                                         f"{', '.join(METRICS)}, got {bounds!r}")
                    for m, values in bounds.items():
                        if not (isinstance(values, list) and all(type(v) in (int, float) for v in values)):
                            raise ReproError(f"{where}.{m} must be a list of numbers, got {values!r}")
                        samples[(table, row, m)] = tuple(_fraction(v, f"{where}.{m}") for v in values)
                    continue
                if metric not in METRICS:
                    raise ReproError(f"{path}: unknown metric {metric!r} in [{name}.{row}]; the metrics are "
                                     f"{', '.join(METRICS)} (and reference, per_seed).")
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
        scale = next((s for s in SCALES if name.startswith((f"ranges_{s}", f"bounds_{s}"))), None)
    return Ranges(bands, references, str(path), samples, scale)


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


def bounds_file(scale: str) -> Traversable | None:
    """expected/bounds_SCALE.toml: the measured floor and ceiling rows (repro.bounds) of a scale, when shipped."""
    path = expected_file(f"bounds_{scale}.toml")
    return path if path.is_file() else None


def load_expected(path, scale: str) -> Ranges:
    """A ranges file, and for a shipped one also the shipped floor and ceiling rows of its scale (they do not
    depend on training, so on no iteration override either). A file given with --ranges is taken as it is."""
    ranges = load_ranges(path)
    extra = bounds_file(scale) if is_shipped(path) else None
    if extra is None:
        return ranges
    bounds = load_ranges(extra)
    return Ranges(bounds.bands | ranges.bands, bounds.references | ranges.references,
                  f"{ranges.source} + {extra}", bounds.samples | ranges.samples, ranges.scale)


def references(scale: str, ranges: Ranges | None) -> dict[tuple[int, str, str], Reference]:
    """What each cell is compared with. At paper scale the paper's one-run value (+- its rounding), unless the
    ranges file holds measured seeds for the cell (a multi-seed paper-scale reference); at smoke scale the
    seeds measured for the smoke ranges (a paper number is no reference for the synthetic city)."""
    refs = {}
    if scale == "paper":
        refs = {key: Reference(v, resolution=PAPER_RESOLUTION) for key, v in paper_values(load_paper()).items()}
    if ranges is None:
        return refs
    for key, value in ranges.references.items():
        seeds = ranges.samples.get(key, ())
        if len(seeds) >= 2 or scale != "paper":
            refs[key] = Reference(value, seeds if len(seeds) >= 2 else (), resolution=0.0 if seeds else 5e-5)
    return refs


def judge_cell(frame, table: int, row: str, metric: str, scale: str, ranges: Ranges | None,
               refs: dict | None = None) -> Verdict:
    """The verdict of one (table, row, metric) cell of a reproduction's tidy results table."""
    refs = references(scale, ranges) if refs is None else refs
    return judge(cell_values(frame, table, row, metric), refs.get((table, row, metric)),
                 ranges.bands.get((table, row, metric)) if ranges else None)
