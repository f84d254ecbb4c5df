"""Opening an image file with an error that says what is wrong with it: damaged, or too large to decode safely.

Pillow refuses an image of more than 2 x Image.MAX_IMAGE_PIXELS pixels (~179 million) as a possible
decompression bomb. No image this project reads is near that (a Cityscapes frame has 2 million pixels), so
such a file is the wrong file or has a damaged header; the message says so instead of "re-extract".
"""

from pathlib import Path

from PIL import Image

from repro import ReproError


def too_large(where, err: Exception) -> ReproError:
    return ReproError(
        f"{where} is refused by Pillow's decompression-bomb guard ({err}). No image this project reads is that "
        f"large (a Cityscapes frame has 2 million pixels): it is not the image it should be, or its header is "
        f"damaged. Replace it with the right file (shrink it first if it really is that large)."
    )


def open_image(source, where=None, fix: str = "replace the file") -> Image.Image:
    """A fully decoded PIL image from a path or a file object; every failure is a ReproError naming `where`
    (default: the path) and, for a damaged file, `fix`."""
    where = where or source
    try:
        image = Image.open(source)
        image.load()
    except Image.DecompressionBombError as err:
        raise too_large(where, err) from None
    except FileNotFoundError:
        raise ReproError(f"{where} does not exist: {fix}.") from None
    except Exception as err:  # Pillow raises many types for broken files
        raise ReproError(f"cannot read {where}: it is not a readable image ({err}); {fix}.") from None
    return image


def image_size(path: Path, fix: str = "replace the file") -> tuple[int, int]:
    """(width, height) from the header alone."""
    try:
        with Image.open(path) as image:
            return image.size
    except Image.DecompressionBombError as err:
        raise too_large(path, err) from None
    except Exception as err:
        raise ReproError(f"cannot read {path}: it is not a readable image ({err}); {fix}.") from None
