"""The one verdict of `repro check` and the report, on hand-computed cases: the 95% prediction interval
mean +- t(n-1, 0.975) x s x sqrt(1 + 1/n) around our seeds, and the fixed band; and the shipped smoke
references it compares with."""

import math
import re
import tomllib

import pytest

from repro.resources import expected_file
from repro.layout import stored_path
from repro.verdicts import judge, load_ranges

# t quantiles from a printed table (Student's t, two-sided 95%): df 1 -> 12.706, df 4 -> 2.776
T1, T4 = 12.7062, 2.7764


def test_one_seed_is_too_few_for_the_interval_but_has_a_band_verdict():
    v = judge([0.50], reference=0.50, band=(0.45, 0.55))
    assert v.verdict == "too few seeds" and v.interval is None and v.std is None and v.sds_away is None
    assert v.band_verdict == "close"
    assert judge([0.60], reference=0.50, band=(0.45, 0.55)).band_verdict == "far"
    assert judge([0.60], reference=0.50, band=(0.45, 0.55)).band_text == "far (above)"


def test_two_seeds_hand_computed():
    # values 0.50, 0.54: mean 0.52, s = 0.02828; half = 12.706 x 0.02828 x sqrt(1.5) = 0.4402
    s = math.sqrt(2 * 0.02 ** 2)
    half = T1 * s * math.sqrt(1.5)
    inside = judge([0.50, 0.54], reference=0.95)
    assert inside.mean == pytest.approx(0.52) and inside.std == pytest.approx(s)
    assert inside.interval == pytest.approx((0.52 - half, 0.52 + half), abs=1e-4)
    assert half == pytest.approx(0.4402, abs=1e-4)
    assert inside.verdict == "consistent"  # 0.95 < 0.9602: two seeds cannot tell much
    outside = judge([0.50, 0.54], reference=0.97)
    assert outside.verdict == "differs"
    assert outside.sds_away == pytest.approx((0.97 - 0.52) / s) and outside.verdict_text == "differs (15.9 sd)"


def test_five_seeds_hand_computed():
    values = [0.40, 0.42, 0.44, 0.46, 0.48]  # mean 0.44, s = sqrt(0.001) = 0.03162
    s = math.sqrt(0.001)
    half = T4 * s * math.sqrt(1.2)  # 0.09618
    v = judge(values, reference=0.52, band=(0.39, 0.49))
    assert v.std == pytest.approx(s) and v.interval == pytest.approx((0.44 - half, 0.44 + half), abs=1e-4)
    assert v.verdict == "consistent" and v.band_verdict == "close"  # 0.52 < 0.5362
    far = judge(values, reference=0.55, band=(0.45, 0.55))
    assert far.verdict == "differs" and far.sds_away == pytest.approx(0.11 / s) and far.verdict_text == "differs (3.5 sd)"
    assert far.band_verdict == "far" and far.band_text == "far (below)"
    below = judge(values, reference=0.30)
    assert below.verdict == "differs" and below.band_verdict is None


def test_edge_cases_are_named():
    assert judge([]).verdict == "not run" and judge([]).band_text == ""
    assert judge([0.3, 0.4]).verdict == "no reference"
    same = judge([0.3, 0.3, 0.3], reference=0.4)
    assert same.verdict == "differs" and same.verdict_text == "differs (seeds identical)"
    assert judge([0.3, 0.3], reference=0.3).verdict == "consistent"


def test_smoke_references_are_the_recorded_means_of_the_measured_seeds():
    """`reference` in ranges_smoke.toml was copied from the recorded means: each equals the mean of the
    per-seed values written next to its range, and the range is mean +- max(3 std, 0.02), clipped."""
    path = expected_file("ranges_smoke.toml")
    text, data = path.read_text(), tomllib.loads(path.read_text())
    ranges = load_ranges(path)
    checked = 0
    for table, rows in data.items():
        if not table.startswith("table"):
            continue
        for row, cells in rows.items():
            for metric, ref in cells["reference"].items():
                block = text.split(f"[{table}.{row}]\n")[1].split("\n\n")[0]
                line = re.search(rf"^{metric} = \[.*per seed ([0-9., ]+)$", block, re.M)
                seeds = [float(x) for x in line.group(1).split(",")]
                mean = sum(seeds) / len(seeds)
                assert ref == pytest.approx(mean, abs=1.01e-4), (table, row, metric)  # both sides rounded to 4 decimals
                std = math.sqrt(sum((x - mean) ** 2 for x in seeds) / (len(seeds) - 1))
                half = max(3 * std, 0.02)
                lo, hi = ranges.bands[(int(table[5:]), row, metric)]
                assert lo == pytest.approx(max(0.0, mean - half), abs=3e-4)
                assert hi == pytest.approx(min(1.0, mean + half), abs=3e-4)
                assert ranges.references[(int(table[5:]), row, metric)] == ref
                checked += 1
    assert checked == len(ranges.bands) == 66


def test_paths_are_stored_relative_to_the_reproduction_folder(tmp_path):
    out = tmp_path / "out"
    assert stored_path(out / "data", out) == "data"
    assert stored_path(tmp_path / "elsewhere" / "seg.pt", out) == str((tmp_path / "elsewhere" / "seg.pt").resolve())


def test_the_interval_is_clipped_to_the_range_of_a_fraction():
    v = judge([0.01, 0.05], reference=0.0)  # mean 0.03 - 0.4402 x sqrt(2) ... < 0
    assert v.interval[0] == 0.0 and v.interval[1] < 1.0 and v.verdict == "consistent"
