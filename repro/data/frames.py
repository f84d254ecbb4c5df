"""Cityscapes frame ids: how a generated image, its input and its ground truth find each other.

`repro data cityscapes` and `repro translate` keep Cityscapes names, so every file derived from a frame
carries `{city}_{seq}_{frame}` at the start of its name.
"""

import re
from pathlib import Path

_FRAME = re.compile(r"^([a-z_]+?_\d{6}_\d{6})")


def frame_id(name: str) -> str | None:
    """`frankfurt_000000_000294` from any Cityscapes-derived file name, else None."""
    match = _FRAME.match(Path(name).name)
    return match.group(1) if match else None
