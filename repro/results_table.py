"""OUT/results.csv: every number of a reproduction as one tidy line per (row, seed, table, metric), written
with pandas from the OUT/ROW/seed-K/result.json files. The report and `repro check` compute their means,
stds and verdict inputs from this table, so what they show is what `pandas.read_csv("OUT/results.csv")`
gives a researcher.

    row, kind, seed, table, direction, metric, value, config_hash, scale

kind: method (a row of the paper's tables), pretrained (the official port's generators), ceiling or floor
(repro.bounds). config_hash: the first 12 hex digits of the sha256 of the run's config (sorted JSON), so
lines from different configs never average together unseen.
"""

import hashlib
import json
from pathlib import Path

import pandas as pd

from repro.io import atomic_path
from repro.rows import CEILING, FLOORS, PRETRAINED, ROW_BY_KEY, TABLE_DIRECTION
from repro.verdicts import METRICS, load_results

COLUMNS = ["row", "kind", "seed", "table", "direction", "metric", "value", "config_hash", "scale"]
FILE = "results.csv"


def kind_of(key: str) -> str:
    if key == CEILING.key:
        return "ceiling"
    if key in {r.key for r in FLOORS}:
        return "floor"
    return "pretrained" if key == PRETRAINED.key else "method"


def config_hash(result: dict) -> str:
    """sha256 of what made the numbers: the run's config, else (nothing trained) the models or how it was made."""
    made_by = result.get("config") or result.get("models") or result.get("made_by") or {}
    return hashlib.sha256(json.dumps(made_by, sort_keys=True).encode()).hexdigest()[:12]


def tidy(results: dict[str, list[dict]], tables=None) -> pd.DataFrame:
    """One line per row, seed, table and metric of every result, in the tables the row belongs to (and, when
    given, in `tables`: those the reproduction was run for)."""
    lines = []
    for key, runs in results.items():
        row = ROW_BY_KEY.get(key)
        for result in runs:
            row_tables = row.tables if row else tuple(result.get("tables", TABLE_DIRECTION))
            for table in (t for t in row_tables if tables is None or t in tables):
                direction = TABLE_DIRECTION[table]
                metrics = result["metrics"].get(direction)
                if metrics is None:
                    continue
                lines += [{"row": key, "kind": kind_of(key), "seed": int(result["seed"]), "table": table,
                           "direction": direction, "metric": m, "value": float(metrics[m]),
                           "config_hash": config_hash(result), "scale": result.get("scale", "")}
                          for m in METRICS]
    frame = pd.DataFrame(lines, columns=COLUMNS)
    return frame.sort_values(["table", "row", "metric", "seed"], kind="stable").reset_index(drop=True)


def write(out: Path) -> Path:
    """OUT/results.csv from the result.json files in OUT (rewritten whole, atomically)."""
    path = Path(out) / FILE
    with atomic_path(path) as tmp:
        tidy(load_results(out)).to_csv(tmp, index=False)
    return path


def read(out: Path) -> pd.DataFrame:
    """OUT/results.csv as a researcher loads it (pandas.read_csv, default options)."""
    return pd.read_csv(Path(out) / FILE)


def refresh(out: Path) -> pd.DataFrame:
    """Writes OUT/results.csv from the result files found now and returns it as read back."""
    write(out)
    return read(out)

