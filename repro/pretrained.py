"""`repro pretrained get NAME`: the official PyTorch port's published CycleGAN generators.

The port publishes one generator per direction at
http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/NAME.pth (its scripts/download_cyclegan_model.sh;
docs/protocol.md#checkpoint-format-of-the-port). They are fetched through the project's resumable
download into DIR/NAME.pth (default pretrained/). No hashes are published, so the first download records
the file's sha256 loudly in DIR/NAME.pth.sha256 and every later download or reuse must match it. A file is
kept only if it loads strictly as the port's resnet_9blocks generator, so `repro translate --checkpoint
DIR/NAME.pth` runs it.

--url (one file) or REPRO_PRETRAINED_URL (a mirror of the folder) replaces the host.

How the port's test.py runs them (and `translate_as_port` does): inputs resized to 256x256 with PIL's
bicubic filter, to [-1, 1] by ToTensor + Normalize(0.5, 0.5), one forward pass of resnet_9blocks with
instance norm that has no affine and keeps no running statistics
(docs/protocol.md#checkpoint-format-of-the-port), so the port's default train-mode test (no --eval) and
eval mode compute the same thing; output (x + 1) / 2 * 255 truncated to uint8 (tensor2im), saved as PNG.
test.py stops after --num_test images (default 50); here every image of the folder is translated, so the
scores cover the same val set as every other row.
"""

import os
from pathlib import Path

from repro import ReproError

BASE_URL = "http://efrosgans.eecs.berkeley.edu/cyclegan/pretrained_models/"
ENV = "REPRO_PRETRAINED_URL"  # base URL of a mirror of the folder
NAMES = ("apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
         "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
         "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label", "facades_label2photo",
         "iphone2dslr_flower")  # the list in the port's scripts/download_cyclegan_model.sh
DEFAULT_DIR = Path("pretrained")
ARCH, NORM, SIZE, RESIZE_FILTER = "resnet_9blocks", "instance", 256, "bicubic"  # the port's test.py defaults
# The pretrained row of Tables 2 and 3: which published generator makes each direction.
CITYSCAPES = {"labels2photo": "cityscapes_label2photo", "photo2labels": "cityscapes_photo2label"}


def url_for(name: str, base: str | None = None) -> str:
    base = base or os.environ.get(ENV) or BASE_URL
    return f"{base.rstrip('/')}/{name}.pth"


def get(name: str, folder: Path = DEFAULT_DIR, url: str | None = None, sha256: str | None = None,
        progress: bool = True) -> Path:
    """FOLDER/NAME.pth, downloaded (resumable) unless there, its sha256 recorded or verified, and checked to
    load strictly as the port's generator."""
    from repro.data.download import DownloadFailed
    from repro.weights import download_recorded

    if name not in NAMES:
        raise ReproError(f"unknown pretrained model {name!r}; the port publishes: {', '.join(NAMES)}")
    path = Path(folder) / f"{name}.pth"
    url = url or url_for(name)

    def check(file: Path) -> None:
        try:
            load_generator(file)
        except ReproError as err:
            raise ReproError(f"it is not a {ARCH} generator in the port's format ({err})") from None

    try:
        download_recorded(url, path, what=f"the port's pretrained {name}", check=check, sha256=sha256,
                          progress=progress, folder_flag="--dir")
    except DownloadFailed as err:
        raise ReproError(
            f"could not download {url} ({err}). On a machine with internet run `repro pretrained get {name}` (or "
            f"fetch {url_for(name, BASE_URL)} by any means) and copy it to {path}; or name a mirror with --url URL "
            f"or {ENV}=BASE_URL. A partial download is kept and resumed.") from None
    return path


def load_generator(path: Path, device="cpu"):
    """The port's generator from NAME.pth, strictly, as test.py builds it (resnet_9blocks, instance norm)."""
    from repro.translate import generator_from_file

    return generator_from_file(path, ARCH, NORM, device)


def translate_as_port(path: Path, inputs: Path, out: Path, device="cpu", progress: bool = True,
                      direction: str | None = None) -> list[Path]:
    """Every image of `inputs` through the pretrained generator, as the port's test.py does (module docstring)."""
    from repro.translate import translate_folder

    return translate_folder(load_generator(path, device), inputs, out, SIZE, RESIZE_FILTER, device, progress=progress,
                            direction=direction, source=str(path))
