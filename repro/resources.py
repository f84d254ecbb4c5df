"""The data files shipped inside the package (repro/expected/: the paper's numbers, the accepted ranges,
the segmenter's calibration band), found through importlib.resources so that an installed wheel reads its
own copy. In the source tree repro/expected is a link to the top-level expected/ folder."""

from importlib.resources import files
from importlib.resources.abc import Traversable


def expected_file(name: str) -> Traversable:
    """The shipped file expected/NAME (it may not exist: check .is_file())."""
    return files("repro") / "expected" / name
