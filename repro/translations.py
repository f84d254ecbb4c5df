"""The manifest a folder of translations carries, so an evaluator never scores one direction as the other.

`repro translate` (and `repro reproduce`) write OUT/translation.json: the direction ("labels2photo",
"photo2labels", or null when a bare generator file was given without --direction) and what made them
(`repro reproduce` adds "made_from", the key of its inputs that repro.done compares).
`repro evaluate labels2photo|photo2labels` read it and refuse a folder of the other direction; a folder
without it (written before the manifest existed, or by another tool) is scored with a warning.
"""

import sys
from pathlib import Path

from repro import ReproError
from repro.io import read_json_or_empty, write_json

MANIFEST = "translation.json"
NAMES = {"x2y": "labels2photo", "y2x": "photo2labels"}  # repro.methods' direction -> the task it feeds


def record(out: Path, direction: str | None, source: str, made_from: dict | None = None) -> Path:
    """Writes OUT/translation.json; `direction` is "labels2photo", "photo2labels" (or x2y / y2x), or None."""
    direction = NAMES.get(direction, direction)
    return write_json(Path(out) / MANIFEST, {"direction": direction, "source": source}
                      | ({"made_from": made_from} if made_from else {}))


def check(results: Path, task: str) -> None:
    """Refuses a folder whose manifest names the other direction; warns when there is no manifest to read."""
    path = Path(results) / MANIFEST
    if not Path(results).is_dir():
        return  # the evaluator names a missing folder itself
    if not path.is_file():
        print(f"warning: {results} has no {MANIFEST}, so the direction of its images cannot be checked; scoring "
              f"them as {task}. Translate with `repro translate` to record it.", file=sys.stderr)
        return
    direction = read_json_or_empty(path).get("direction")
    if direction is not None and direction != task:
        fix = f"repro evaluate {direction}" if direction in NAMES.values() else "the matching evaluator"
        raise ReproError(f"{results} holds {direction} translations ({path} says so), not {task}: score them with "
                         f"`{fix}`, or translate with --direction {task}.")
