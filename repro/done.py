"""One rule for "is this step's output current?", for every step of a reproduction that keeps its output.

Each step's output records the inputs it was made from, and the step names them as a key, dotted field -> the
value it would use now; `is_current` says whether the recorded output holds every one of them:

    step                 output                           key
    a run is finished    RUN/run.json                     finished, epochs_done (= config.toml's epochs)
    a run's data         RUN/data.json                    each training folder's images (names and sizes hashed)
    translations         FOLDER/DIRECTION/translation.json  direction, the run's checkpoint sha256, the inputs
                                                          (names and sizes hashed, count)
    a score              FOLDER/DIRECTION.json            the translation record's sha256, the protocol version,
                                                          the segmenter's sha256 (labels2photo)
    a row's result       OUT/ROW/seed-K/result.json       the config (the pretrained row: its generators' sha256;
                                                          a bound: how it was made), the segmenter's and the data
                                                          manifest's sha256, the protocol versions
    a calibration        SEG.calibration.json             the segmenter's sha256 (a kept one is judged again by
                                                          today's rule, repro.eval.calibration.rejudged)
    a launcher's job     OUT/ROW/seed-K/LAUNCHER/job.json the launcher

Nothing recorded (a missing or damaged file, an older file without the field) is never current: the step is
redone, and when a file was there `is_current(..., what=PATH)` says so in one line
(docs/reproducing.md#what-is-redone). A finished run is the one output never redone on its own: repro.reproduce
refuses a run of another config or other training images rather than train over it.
"""

MISSING = object()


def recorded(record: dict, field: str):
    """record["a"]["b"] for field "a.b"; MISSING where the record has no such field."""
    value = record
    for part in field.split("."):
        if not isinstance(value, dict) or part not in value:
            return MISSING
        value = value[part]
    return value


def stale_field(record: dict | None, key: dict[str, object]) -> str | None:
    """The first field of `key` the record does not hold as given (None: every one matches)."""
    return next((field for field, value in key.items() if recorded(record or {}, field) != value), None)


def is_current(record: dict | None, key: dict[str, object], what: str | None = None) -> bool:
    """Whether a step's recorded output was made from the inputs in `key` (see the module docstring). `what`: the
    output's name, printed with the reason when a kept output is not current (it is then redone)."""
    if not record:
        return False
    field = stale_field(record, key)
    if field is not None and what is not None:
        reason = (f"records no {field} (written by an older version)" if recorded(record, field) is MISSING
                  else f"was made with another {field}")
        print(f"{what} {reason}: redoing it", flush=True)
    return field is None
