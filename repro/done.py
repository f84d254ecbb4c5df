"""One rule for "is this step's output current?", for the steps of a reproduction that keep their output.

A step's output records the inputs it was made from (a row's result.json its config and the segmenter's hash, a
score file the segmenter's hash, a calibration its segmenter's hash, the pretrained row its generators' hashes).
The step names them as a key, dotted field -> the value the step would use now, and `is_current` says whether
the recorded output holds every one of them. Nothing recorded (a missing or damaged file, an older file without
the field) is never current: the step is redone.
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


def is_current(record: dict | None, key: dict[str, object]) -> bool:
    """Whether a step's recorded output was made from the inputs in `key` (see the module docstring)."""
    return bool(record) and all(recorded(record, field) == value for field, value in key.items())
