"""The one verdict of `repro check` and the report, on hand-computed cases: against a one-run reference the
95% prediction interval mean +- t(n-1, 0.975) x s x sqrt(1 + 1/n) (n >= 3), against a reference with its own
seeds a pooled-variance t test; the fixed band; and the shipped smoke references it compares with."""

import math
import re
import tomllib

import pandas as pd
import pytest

from repro.resources import expected_file
from repro.layout import stored_path
from repro.verdicts import MIN_SEEDS_ONE_RUN, STD_FLOOR, Reference, judge, judge_cell, load_ranges, references

# t quantiles from a printed table (Student's t, two-sided 95%): df 2 -> 4.303, df 4 -> 2.776, df 5 -> 2.571
T2, T4, T5 = 4.3027, 2.7764, 2.5706


def test_one_seed_is_too_few_for_the_interval_but_has_a_band_verdict():
    v = judge([0.50], reference=0.50, band=(0.45, 0.55))
    assert v.verdict == "too few seeds" and v.interval is None and v.std is None and v.sds_away is None
    assert v.band_verdict == "close" and v.symbol == "?"
    assert judge([0.60], reference=0.50, band=(0.45, 0.55)).band_verdict == "far"
    assert judge([0.60], reference=0.50, band=(0.45, 0.55)).band_text == "far (above)"
    assert judge([0.60], reference=0.50, band=(0.45, 0.55)).symbol == "✗"


def test_two_seeds_are_too_few_against_a_one_run_reference():
    """t(1) = 12.7 made every two-seed interval [0, 1]: with a one-run reference, 3 seeds are needed."""
    assert MIN_SEEDS_ONE_RUN == 3
    v = judge([0.50, 0.54], reference=0.97)
    assert v.verdict == "too few seeds" and v.verdict_text == "too few seeds (2 of 3)" and v.interval is None
    assert v.std == pytest.approx(math.sqrt(2 * 0.02 ** 2)) and v.symbol == "?"


def test_three_seeds_hand_computed_with_the_references_rounding():
    # values 0.50, 0.52, 0.54: mean 0.52, s = 0.02; half = 4.3027 x 0.02 x sqrt(4/3) = 0.09937, + 0.005 rounding
    half = T2 * 0.02 * math.sqrt(4 / 3)
    v = judge([0.50, 0.52, 0.54], reference=Reference(0.62, resolution=0.005))
    assert v.interval == pytest.approx((0.52 - half - 0.005, 0.52 + half + 0.005), abs=1e-4)
    assert v.verdict == "consistent" and v.symbol == "✓"  # 0.62 < 0.52 + 0.1044
    out = judge([0.50, 0.52, 0.54], reference=Reference(0.63, resolution=0.005))
    assert out.verdict == "differs" and out.sds_away == pytest.approx(0.11 / 0.02)
    assert out.verdict_text == "differs by -0.110 (5.5 sd)" and out.statistic == pytest.approx(-0.11 / (0.02 * math.sqrt(4 / 3)))


def test_five_seeds_hand_computed():
    values = [0.40, 0.42, 0.44, 0.46, 0.48]  # mean 0.44, s = sqrt(0.001) = 0.03162
    s = math.sqrt(0.001)
    half = T4 * s * math.sqrt(1.2)  # 0.09618
    v = judge(values, reference=0.52, band=(0.39, 0.49))
    assert v.std == pytest.approx(s) and v.interval == pytest.approx((0.44 - half, 0.44 + half), abs=1e-4)
    assert v.verdict == "consistent" and v.band_verdict == "close"  # 0.52 < 0.5362
    far = judge(values, reference=0.55, band=(0.45, 0.55))
    assert far.verdict == "differs" and far.sds_away == pytest.approx(0.11 / s) and far.verdict_text == "differs by -0.110 (3.5 sd)"
    assert far.band_verdict == "far" and far.band_text == "far (below)"
    below = judge(values, reference=0.30)
    assert below.verdict == "differs" and below.band_verdict is None


def test_seeds_that_agree_exactly_give_no_sd_figure():
    """Identical seeds have std 0: the std used is the floor, and a gap over a floor gets no "sd" number."""
    same = judge([0.3, 0.3, 0.3], reference=0.4)
    assert same.spread == STD_FLOOR and same.sds_away is None
    assert same.verdict == "differs" and same.verdict_text == "differs by -0.100"
    assert judge([0.3, 0.3, 0.3], reference=0.3).verdict == "consistent"


def test_two_seeds_agreeing_exactly_are_judged_with_the_references_spread():
    """The issue's cells: pix2pix per-class 0.2256/0.2260 and CoGAN 0.1082/0.1079 "differed by 20.1 / 64.1 sd"
    because two seeds agreed to three decimals; against the reference's own seeds they are consistent."""
    pix2pix = Reference(0.2202, (0.2256, 0.2260, 0.2287, 0.2089, 0.2119))
    for ours in ([0.2256, 0.2260], [0.2258, 0.2258]):  # the second: exactly equal, std 0
        v = judge(ours, reference=pix2pix)
        assert v.two_sample and v.verdict == "consistent" and v.symbol == "✓"
        assert v.spread >= pix2pix.std * math.sqrt(4 / 5) - 1e-12  # pooled: the reference's spread carries it
    cogan = judge([0.1082, 0.1082], reference=Reference(0.0973, (0.1082, 0.1079, 0.1078, 0.1013, 0.0616)))
    assert cogan.verdict == "consistent" and abs(cogan.statistic) < 1


def test_pooled_t_test_hand_computed():
    # ours 0.50, 0.54 (s^2 = 0.0008); theirs 0.40, 0.42, 0.44, 0.46, 0.48 (s^2 = 0.001), mean 0.44
    # s_p^2 = (1 x 0.0008 + 4 x 0.001) / 5 = 0.00096; se = sqrt(0.00096 x (1/2 + 1/5)) = 0.025923; t = 0.08 / se = 3.086
    v = judge([0.50, 0.54], reference=Reference(0.44, (0.40, 0.42, 0.44, 0.46, 0.48)))
    se = math.sqrt(0.00096 * 0.7)
    assert v.df == 5 and v.spread == pytest.approx(math.sqrt(0.00096))
    assert v.statistic == pytest.approx(0.08 / se) and v.test_text == "pooled t = +3.09 (df 5)"
    assert v.interval == pytest.approx((0.44 - T5 * se, 0.44 + T5 * se), abs=1e-4)
    assert v.verdict == "differs" and v.verdict_text == f"differs by +0.080 ({0.08 / math.sqrt(0.00096):.1f} sd)"
    assert judge([0.46, 0.48], reference=Reference(0.44, (0.40, 0.42, 0.44, 0.46, 0.48))).verdict == "consistent"
    same = judge([0.40, 0.48], reference=Reference(0.44, (0.40, 0.42, 0.44, 0.46, 0.48)))
    assert same.test_text == "pooled t = +0.00 (df 5)"  # a zero is printed as one, never "-0.00"
    one = judge([0.45], reference=Reference(0.44, (0.40, 0.42, 0.44, 0.46, 0.48)))  # one seed is enough here
    assert one.df == 4 and one.verdict == "consistent"


def test_edge_cases_are_named():
    assert judge([]).verdict == "not run" and judge([]).band_text == "" and judge([]).symbol == ""
    assert judge([0.3, 0.4]).verdict == "no reference" and judge([0.3, 0.4]).symbol == "?"


def test_a_smoke_cell_is_judged_against_the_reference_seeds(tmp_path):
    """With the shipped smoke ranges, the reference of a cell is the 5 seeds it was measured from."""
    ranges = load_ranges(expected_file("ranges_smoke.toml"))
    refs = references("smoke", ranges)
    ref = refs[(3, "cogan", "class_acc")]
    assert ref.seeds == (0.1082, 0.1079, 0.1078, 0.1013, 0.0616) and ref.value == 0.0973
    frame = pd.DataFrame([{"row": "cogan", "seed": s, "table": 3, "metric": "class_acc", "value": v}
                          for s, v in enumerate((0.1082, 0.1079))])
    v = judge_cell(frame, 3, "cogan", "class_acc", "smoke", ranges, refs)
    assert v.two_sample and v.n == 2 and v.df == 5 and v.verdict == "consistent" and v.band_verdict == "close"
    # at paper scale the same file's seeds would be a multi-seed reference too; without them the paper's one run
    assert references("paper", None)[(3, "cogan", "class_acc")] == Reference(0.11, resolution=0.005)
    assert references("paper", ranges)[(3, "cogan", "class_acc")].seeds == ref.seeds
    bad = tmp_path / "r.toml"
    bad.write_text("[table3.cogan]\nclass_acc = [0.1, 0.2]\nper_seed = {class_acc = [0.1, \"x\"]}\n")
    with pytest.raises(Exception, match="per_seed.class_acc must be a list of numbers"):
        load_ranges(bad)


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
                assert ranges.samples[(int(table[5:]), row, metric)] == tuple(seeds)  # per_seed == the comments
                checked += 1
    assert checked == len(ranges.bands) == 66


def test_paths_are_stored_relative_to_the_reproduction_folder(tmp_path):
    out = tmp_path / "out"
    assert stored_path(out / "data", out) == "data"
    assert stored_path(tmp_path / "elsewhere" / "seg.pt", out) == str((tmp_path / "elsewhere" / "seg.pt").resolve())


def test_the_interval_is_clipped_to_the_range_of_a_fraction():
    v = judge([0.01, 0.05, 0.09], reference=0.0)  # mean 0.05 - 4.3 x 0.04 x 1.15 < 0
    assert v.interval[0] == 0.0 and v.interval[1] < 1.0 and v.verdict == "consistent"


def test_shipped_floor_and_ceiling_values_cover_every_table_and_bracket_nothing_backwards(tmp_path):
    """expected/bounds_smoke.toml: the three bound rows in Tables 2-5, references the means of the recorded
    seeds, the ceiling above both floors; the report and `repro check` add them to the shipped ranges only."""
    from repro.verdicts import bounds_file, load_expected

    bounds = load_ranges(bounds_file("smoke"))
    for table in (2, 3, 4, 5):
        for metric in ("pixel_acc", "class_acc", "iou"):
            for row in ("ground_truth", "untrained", "constant"):
                seeds = bounds.samples[(table, row, metric)]
                assert len(seeds) == (5 if row == "untrained" else 1)
                assert bounds.references[(table, row, metric)] == pytest.approx(sum(seeds) / len(seeds), abs=1e-4)
            ceiling = bounds.references[(table, "ground_truth", metric)]
            assert ceiling > bounds.references[(table, "untrained", metric)]
            assert ceiling > bounds.references[(table, "constant", metric)]
    shipped = load_expected(expected_file("ranges_smoke.toml"), "smoke")
    assert len(shipped.bands) == 66 + 36 and shipped.bands[(3, "constant", "iou")] == bounds.bands[(3, "constant", "iou")]
    given = tmp_path / "r.toml"
    given.write_text(expected_file("ranges_smoke.toml").read_text())
    assert len(load_expected(given, "smoke").bands) == 66  # a file given with --ranges is taken as it is
    assert bounds_file("paper") is None  # not measured at paper scale (needs Cityscapes and the real segmenter)
