"""How long the one-off set-up before training will take (docs/estimates.md).

A smoke reproduction first makes the synthetic city, prepares it, trains the smoke segmenter and calibrates it
(repro.reproduce.plan.smoke_setup); a paper-scale one prepares Cityscapes when --data is not there yet and calibrates
the segmenter when no current calibration is kept beside it (with the first run's scoring). Each step that will
run (its output missing or not current, by the same rules) is timed now by running its own code on a miniature
in a temporary folder, in this process (so at the thread count the real step will use), and scaled:

- the synthetic city and the preparation: a warm-up on 2 frames, then a few frames timed, x the frames;
  preparing runs in one process here and in one per core for real, so it is divided by the cores;
- the segmenter and the calibration, whose fixed part (loading, the first iteration) matters: once cold at the
  small size (1 iteration, 1 val frame), then warm at the small and a larger size, which give the time per
  iteration or frame (extrapolate); a cold run over SLOW_SECONDS is scaled alone (sampled).
"""

import contextlib
import io
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from repro.estimate import format_duration

SAMPLE_FRAMES = 3     # val frames the calibration is timed on (with 1 for its fixed part); frames prepared
SEGMENTER_STEPS = 3   # segmenter iterations timed beyond the first (which carries the warm-up)
SLOW_SECONDS = 10.0   # a cold run longer than this is the only one: the warm ones would make the estimate long


@dataclass(frozen=True)
class Step:
    name: str
    seconds: float
    later: bool = False  # done after training has started (paper scale's calibration, by the first run's scoring)


def fit(small: tuple[int, float], large: tuple[int, float]) -> tuple[float, float]:
    """(fixed seconds, seconds per item) through two timings (items, seconds). Neither is below 0: on a busy
    machine the larger sample can be the faster one."""
    (n1, t1), (n2, t2) = small, large
    per = max(0.0, (t2 - t1) / (n2 - n1))
    return max(0.0, t1 - per * n1), per


def extrapolate(times: list[float], small: int, large: int, items: int) -> float:
    """Seconds for `items` items from three timings of the step: at `small` items cold (what the real step pays
    once: imports, first calls, loading), then at `small` and `large` items warm (the seconds per item)."""
    cold, warm_small, warm_large = times
    _, per = fit((small, warm_small), (large, warm_large))
    return cold + per * max(0, items - small)


def sampled(run: Callable[[int], float], small: int, large: int, items: int) -> float:
    """Seconds for `items` items of a step, `run(n)` timing it at n items: extrapolate from a cold run at `small`
    and warm runs at `small` and `large`; when the cold run alone took over SLOW_SECONDS (a full-width segmenter
    calibrating 2048x1024 frames on a CPU: a minute or more a frame), from it alone, its fixed part counted with
    each item (an overestimate by that part)."""
    cold = run(small)
    if cold > SLOW_SECONDS:
        return cold / small * items
    return extrapolate([cold, run(small), run(large)], small, large, items)


def before(steps: list[Step]) -> float:
    """The seconds of the steps done before training."""
    return sum(s.seconds for s in steps if not s.later)


def later(steps: list[Step]) -> float:
    """The seconds of the steps done once training has started."""
    return sum(s.seconds for s in steps if s.later)


def setup_line(steps: list[Step]) -> str | None:
    """The estimate's set-up line, None when nothing is to be set up."""
    if not steps:
        return None
    parts = ", ".join(f"{s.name} {format_duration(s.seconds)}" + (" (with the first run's scoring)" if s.later else "")
                      for s in steps)
    return (f"set-up: {parts}; {format_duration(before(steps) + later(steps))} in all (each step's own code timed "
            f"now on a few frames or iterations and scaled)")


def total_line(steps: list[Step], training: float) -> str:
    """The up-front total: the set-up and the training (translation and scoring are timed after the set-up)."""
    return (f"estimated set-up and training: {format_duration(before(steps) + later(steps) + training)} "
            f"(translation and scoring are timed once the set-up is done)")


# ------------------------------------------------------------------------------ the miniature


def timed(fn: Callable, *args, **kwargs) -> float:
    """Seconds `fn` takes. What it prints is kept off the console (the real step prints its own notes and
    warnings; a miniature's would mislead, e.g. "wrong frame count"), and the global RNGs it seeds are restored."""
    state = np.random.get_state()
    try:
        with (torch.random.fork_rng(devices=[]), contextlib.redirect_stderr(io.StringIO()),
              contextlib.redirect_stdout(io.StringIO())):
            start = time.perf_counter()
            fn(*args, **kwargs)
            return time.perf_counter() - start
    finally:
        np.random.set_state(state)


def frame_counts(city: Path) -> dict[str, int]:
    """Labelled frames per split of an extracted city (what preparing and calibrating go through)."""
    from repro.eval.segmenter import photo_frames

    return {split: len(photo_frames(city, split)) for split in ("train", "val")}


def sample_city(city: Path, out: Path, counts: dict[str, int]) -> Path:
    """OUT: the first `counts[split]` labelled frames of each split of the extracted city CITY, linked in its layout
    (every gtFine file of the frame and its photo)."""
    from repro.eval.segmenter import photo_frames

    for split, n in counts.items():
        for fid, photo, label in photo_frames(city, split)[:n]:
            for source in (photo, *sorted(label.parent.glob(f"{fid}_gtFine_*"))):
                target = out / source.relative_to(city)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(source.resolve())
    return out


def is_calibrated(segmenter: Path) -> bool:
    """Whether a current calibration of this segmenter file is kept beside it (repro.reproduce.plan.calibrate's
    rule)."""
    from repro.eval import calibration
    from repro.io import sha256_file

    return calibration.read(segmenter, sha256_file(segmenter)) is not None


def setup_steps(city: Path, data: Path, segmenter: Path, device: str, prepared_size: int,
                make_city: dict | None = None, train_segmenter: dict | None = None,
                calibration_later: bool = False) -> list[Step]:
    """The set-up steps that will run, each timed on a miniature and scaled (nothing is written outside a
    temporary folder). `make_city`: repro.data.synth_city.generate's arguments when the command makes CITY (None:
    it is given); `train_segmenter`: repro.eval.segmenter.train's arguments when the command trains a missing
    SEGMENTER (None: it must be there); `calibration_later`: the calibration is done with the first run's scoring."""
    from repro.data import cityscapes as prep
    from repro.data import synth_city
    from repro.eval import segmenter as seg

    make = make_city is not None and not synth_city.is_made(city, **make_city)
    prepare = not (data / "manifest.json").is_file()
    train = train_segmenter is not None and not segmenter.is_file()
    calibrate = train or not is_calibrated(segmenter)
    if not (make or prepare or train or calibrate):
        return []
    steps = []
    workers = 0 if torch.device(device).type == "cpu" else None  # as repro.reproduce.plan.calibrate loads images
    with tempfile.TemporaryDirectory(prefix="repro-setup-time-") as tmp:
        tmp = Path(tmp)
        names = itertools.count()
        folder = lambda name: tmp / f"{name}-{next(names)}"  # noqa: E731  a new one each call
        small = {"train": 1, "val": 1}
        large = {"train": max(SAMPLE_FRAMES, (train_segmenter or {}).get("batch_size", 1)), "val": SAMPLE_FRAMES}
        if make:  # frames of the same size and seed; the largest sample is the miniature city of the next steps
            generate = lambda counts, out: timed(synth_city.generate, out, progress=False,  # noqa: E731
                                                 **{**make_city, "n_train": counts["train"], "n_val": counts["val"]})
            sample = folder("city")
            generate(small, folder("city"))  # the warm-up
            seconds = generate(large, sample)
            counts = {"train": make_city["n_train"], "val": make_city["n_val"]}
            steps.append(Step("synthetic city", seconds / sum(large.values()) * sum(counts.values())))
        else:
            counts = frame_counts(city)
            sample = sample_city(city, folder("city"), large)
        if prepare:  # one process here; the real preparation runs one per core (repro.data.cityscapes.prepare)
            run = lambda source: timed(prep.prepare, source, source, folder("data"), size=prepared_size,  # noqa: E731
                                       workers=1, progress=False)
            run(sample_city(sample, folder("city"), small))  # the warm-up
            steps.append(Step("preparing the data", run(sample) / sum(large.values()) * sum(counts.values())
                              / (os.cpu_count() or 1)))
        if train:
            segmenter = folder("segmenter")  # the same net as the one to be trained, for the calibration's timing
            run = lambda iters: timed(seg.train, sample, segmenter, device=device, progress=False,  # noqa: E731
                                      **{**train_segmenter, "iters": iters})
            steps.append(Step("segmenter", sampled(run, 1, 1 + SEGMENTER_STEPS, train_segmenter["iters"])))
        if calibrate:
            run = lambda frames: timed(seg.calibrate, segmenter, sample_city(sample, folder("city"), {"val": frames}),
                                       device, workers=workers, progress=False)  # noqa: E731
            steps.append(Step("calibration", sampled(run, 1, SAMPLE_FRAMES, counts["val"]), later=calibration_later))
    return steps
