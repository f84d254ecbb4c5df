"""repro: reproduce the CycleGAN paper's Cityscapes numbers, table cell by table cell."""

__version__ = "0.1.0"


class ReproError(Exception):
    """A problem the user can fix: the CLI prints the message (which names the file and the fix)
    without a traceback and exits with status 2."""
