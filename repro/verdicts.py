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
from repro.resources import expected_file

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
    """row key -> its result.json contents, one per seed (sorted by seed)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReproError(f"{results_dir} does not exist: give the --out folder of `repro reproduce`.")
    found: dict[str, list[dict]] = {}
    for path in sorted(results_dir.glob("*/seed-*/result.json")):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro reproduce` again.") from None
        found.setdefault(result["row"], []).append(result)
    for results in found.values():
        results.sort(key=lambda r: r["seed"])
    return found


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


def load_ranges(path) -> Ranges:
    """A ranges file: `[tableN.ROW]` tables of `METRIC = [lo, hi]`, optionally `reference = {METRIC = mean}`
    (the mean over the seeds the range was measured from) and `per_seed = {METRIC = [v0, v1, ...]}` (those
    seeds' values, which the statistical verdict compares our seeds with)."""
    path = path if hasattr(path, "is_file") else Path(path)
    if not path.is_file():
        raise ReproError(f"ranges file {path} does not exist (the shipped ones are in expected/).")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{path} is not valid TOML: {err}") from None
    bands, references, samples = {}, {}, {}
    for name, rows in data.items():
        if not (name.startswith("table") and name[5:].isdigit()):
            continue
        for row, metrics in rows.items():
            if not isinstance(metrics, dict):
                continue
            for metric, bounds in metrics.items():
                if metric == "reference":
                    references |= {(int(name[5:]), row, m): float(v) for m, v in bounds.items() if m in METRICS}
                if metric == "per_seed":
                    for m, values in bounds.items():
                        if m in METRICS and not (isinstance(values, list) and all(isinstance(v, (int, float)) for v in values)):
                            raise ReproError(f"{path}: [{name}.{row}] per_seed.{m} must be a list of numbers, got {values!r}")
                    samples |= {(int(name[5:]), row, m): tuple(float(v) for v in values)
                                for m, values in bounds.items() if m in METRICS}
                if metric not in METRICS:
                    continue
                if not (isinstance(bounds, list) and len(bounds) == 2 and bounds[0] <= bounds[1]):
                    raise ReproError(f"{path}: [{name}.{row}] {metric} must be [lo, hi] with lo <= hi, got {bounds!r}")
                bands[(int(name[5:]), row, metric)] = (float(bounds[0]), float(bounds[1]))
    if not bands:
        raise ReproError(f"{path} holds no [tableN.ROW] ranges (METRIC = [lo, hi]).")
    return Ranges(bands, references, str(path), samples)


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
                  f"{ranges.source} + {extra}", bounds.samples | ranges.samples)


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
