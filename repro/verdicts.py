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
from repro.layout import result_files
from repro.resources import expected_file
from repro.rows import TABLE_DIRECTION

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


def load_results(results_dir: Path) -> dict[str, list[dict]]:
    """row key -> its result.json contents, one per seed (sorted by seed)."""
    results_dir = Path(results_dir)
    if not results_dir.is_dir():
        raise ReproError(f"{results_dir} does not exist: give the --out folder of `repro reproduce`.")
    found: dict[str, list[dict]] = {}
    for path in result_files(results_dir):
        try:
            result = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ReproError(f"{path} is not valid JSON ({err}); delete it and run `repro reproduce` again.") from None
        found.setdefault(result["row"], []).append(result)
    for results in found.values():
        results.sort(key=lambda r: r["seed"])
    return found


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


def load_ranges(path) -> Ranges:
    """A ranges file: `[tableN.ROW]` tables of `METRIC = [lo, hi]`, optionally `reference = {METRIC = mean}`
    (the mean over the seeds the range was measured from)."""
    path = path if hasattr(path, "is_file") else Path(path)
    if not path.is_file():
        raise ReproError(f"ranges file {path} does not exist (the shipped ones are in expected/).")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise ReproError(f"{path} is not valid TOML: {err}") from None
    bands, references = {}, {}
    for name, rows in data.items():
        if not (name.startswith("table") and name[5:].isdigit()):
            continue
        for row, metrics in rows.items():
            if not isinstance(metrics, dict):
                continue
            for metric, bounds in metrics.items():
                if metric == "reference":
                    references |= {(int(name[5:]), row, m): float(v) for m, v in bounds.items() if m in METRICS}
                if metric not in METRICS:
                    continue
                if not (isinstance(bounds, list) and len(bounds) == 2 and bounds[0] <= bounds[1]):
                    raise ReproError(f"{path}: [{name}.{row}] {metric} must be [lo, hi] with lo <= hi, got {bounds!r}")
                bands[(int(name[5:]), row, metric)] = (float(bounds[0]), float(bounds[1]))
    if not bands:
        raise ReproError(f"{path} holds no [tableN.ROW] ranges (METRIC = [lo, hi]).")
    return Ranges(bands, references, str(path))


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
