"""`repro weights get vgg16|inception|fcn8s-caffe`: the published weight files the protocol needs, fetched
from their publishers into the places the field's own tools use.

    vgg16        torchvision's ImageNet VGG16 (VGG16_Weights.IMAGENET1K_V1): Feature loss + GAN, and the
                 trunk `repro segmenter train` starts from
    inception    pytorch-fid's FID Inception (FID_WEIGHTS_URL): `repro evaluate fid`, training-time FID
    fcn8s-caffe  the pix2pix authors' fcn-8s-cityscapes.caffemodel, imported by `repro segmenter get`

vgg16 and inception land where torchvision and pytorch-fid put them themselves, the torch hub cache
(torch.hub.get_dir()/checkpoints/, moved by TORCH_HOME), checked as torch hub's check_hash=True checks them:
the file name carries the first hex digits of the file's sha256 (torch hub's convention), a download that
does not match them is refused and deleted, and nothing lands in the cache. They come through the project's
resumable download (a cut connection resumes; a stalled host is named). The commands
that need a file fetch it on demand the same way. --url or an environment variable (REPRO_VGG16_URL,
REPRO_INCEPTION_URL, REPRO_FCN8S_URL) replaces the publisher's URL (a mirror); the expected hash stays the
publisher's.

Files nobody publishes a hash for (the caffemodel, the port's pretrained generators) go through the
project's resumable download and are trusted on first use: the first download's sha256 is recorded loudly
in FILE.sha256 (sha256sum format) and every later download or reuse must match it.
"""

import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

from repro import ReproError


@dataclass(frozen=True)
class HubFile:
    """A published weights file kept in the torch hub cache under its publisher's name."""

    kind: str
    url: str        # the publisher's URL; its last part is the cached file's name
    env: str        # environment variable that replaces the URL
    needed_by: str  # for messages

    @property
    def file_name(self) -> str:
        return self.url.rsplit("/", 1)[-1]

    @property
    def hash_prefix(self) -> str:
        """The sha256 prefix in the name, as torch.hub.HASH_REGEX reads it."""
        match = re.search(r"-([a-f0-9]*)\.", self.file_name)
        if not match or not match.group(1):
            raise ValueError(f"{self.file_name} carries no sha256 prefix")
        return match.group(1)

    def path(self) -> Path:
        import torch

        return Path(torch.hub.get_dir()) / "checkpoints" / self.file_name


# Their URLs are torchvision's and pytorch-fid's own constants (tests/test_weights.py checks they still are);
# written out here so that `repro --help` does not import torchvision.
VGG16 = HubFile("vgg16", "https://download.pytorch.org/models/vgg16-397923af.pth", "REPRO_VGG16_URL",
                "Feature loss + GAN (VGG16 relu4_2 features) and the FCN-8s trunk of `repro segmenter train`")
INCEPTION = HubFile("inception",
                    "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/"
                    "pt_inception-2015-12-05-6726825d.pth", "REPRO_INCEPTION_URL", "FID/KID (pytorch-fid's Inception)")
# The pix2pix authors' FCN-8s caffemodel (no hash published: trusted on first use, below), and where it is imported
FCN8S_URL = "http://efrosgans.eecs.berkeley.edu/pix2pix_extra/fcn-8s-cityscapes.caffemodel"
FCN8S_DEAD_URL = "http://people.eecs.berkeley.edu/~tinghuiz/projects/pix2pix/fcn-8s-cityscapes/fcn-8s-cityscapes.caffemodel"
FCN8S_ENV = "REPRO_FCN8S_URL"
FCN8S_OUT = Path("segmenters/fcn8s-cityscapes.pt")  # the segmenter .pt `repro segmenter get` writes by default
KINDS = ("vgg16", "inception", "fcn8s-caffe")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def fetch_hub(spec: HubFile, url: str | None = None, progress: bool = True) -> Path:
    """spec's file in the torch hub cache, when missing downloaded through the project's resumable download (a
    hidden .NAME.download beside it; a cut connection resumes), then hash-prefix checked and loaded by torch
    before it takes its published name, as torch hub's check_hash does."""
    from repro.data.download import DownloadFailed, download_file
    from repro.io import load_torch_file, sha256_file

    path = spec.path()
    if path.is_file():
        return path
    url = url or os.environ.get(spec.env) or spec.url
    if progress:
        _say(f"downloading {spec.file_name} ({spec.needed_by}) from {url} into {path.parent}")
    partial = path.with_name(f".{spec.file_name}.download")
    try:
        download_file(url, partial, progress=progress, folder_flag="TORCH_HOME (the torch hub cache)")
    except DownloadFailed as err:
        raise ReproError(offline_message(spec, url, err)) from None
    digest = sha256_file(partial)
    if not digest.startswith(spec.hash_prefix):
        partial.unlink()
        raise ReproError(
            f"refused the file downloaded from {url}: its sha256 {digest[:16]}... does not start with "
            f"{spec.hash_prefix}, the prefix of the published {spec.file_name}. Nothing was written to {path.parent}. "
            f"The host serves another file: use the publisher's URL {spec.url}, or a mirror of that exact file.")
    try:
        load_torch_file(partial, spec.file_name, "")
    except ReproError as err:  # the right hash, but torch cannot read it: never keep it
        partial.unlink()
        raise ReproError(f"{url} served a file with the right hash that torch cannot load ({err}); nothing was "
                         f"kept. Fetch {spec.url} again.") from None
    os.replace(partial, path)
    _say(f"{path}: sha256 prefix {spec.hash_prefix} verified.")
    return path


def offline_message(spec: HubFile, url: str, err: Exception) -> str:
    if getattr(err, "mid_file", False):
        return (f"the download of {spec.file_name} from {url} is incomplete: {err}. What arrived is kept and the next "
                f"`repro weights get {spec.kind}` resumes it; or fetch {spec.url} by any means and copy it to "
                f"{spec.path()}.")
    return (f"could not download {spec.file_name} from {url} ({getattr(err, 'reason', None) or err}). "
            f"{spec.needed_by} needs it at {spec.path()}. On a machine with internet run `repro weights get "
            f"{spec.kind}` (or fetch {spec.url} by any means) and copy the file there (TORCH_HOME moves the folder); "
            f"or name a mirror with --url URL or {spec.env}=URL.")


def is_published(spec: HubFile, path: Path) -> bool:
    """Whether `path`'s sha256 starts with the published file's prefix."""
    from repro.io import sha256_file

    return sha256_file(path).startswith(spec.hash_prefix)


def vgg16(url: str | None = None, progress: bool = True) -> Path:
    """torchvision's VGG16_Weights.IMAGENET1K_V1 file (vgg16-397923af.pth) in the torch hub cache."""
    return fetch_hub(VGG16, url, progress)


def inception(url: str | None = None, progress: bool = True) -> Path:
    """pytorch-fid's pt_inception-2015-12-05-6726825d.pth in the torch hub cache."""
    return fetch_hub(INCEPTION, url, progress)


# ------------------------------------------------------------------------------ trust on first use


def hash_file(path: Path) -> Path:
    return Path(str(path) + ".sha256")


def recorded_sha256(path: Path) -> str | None:
    record = hash_file(path)
    if not record.is_file():
        return None
    text = record.read_text().split()
    if not text or not re.fullmatch(r"[0-9a-f]{64}", text[0]):
        raise ReproError(f"{record} is not a sha256sum line; delete it (the next download records the hash anew).")
    return text[0]


def download_recorded(url: str, dest: Path, *, what: str, check, sha256: str | None = None, retries: int = 4,
                      progress: bool = True, folder_flag: str = "folder") -> str:
    """DEST from url through the resumable download, checked against `sha256` or the hash recorded in
    DEST.sha256 by the first download (recorded now, loudly, if there is none). `check(path)` first parses
    the file (raising ReproError when it is not what `what` names): a file that does not parse (an HTML page, a
    cut file) never has its hash recorded or trusted, and is moved aside as DEST.unusable. A file that does not
    match the hash is moved aside as DEST.sha256-mismatch. Neither takes DEST's place. Returns DEST's sha256; a
    host that fails for good raises repro.data.download.DownloadFailed (the caller names the way out)."""
    from repro.data.download import download_file
    from repro.io import sha256_file, write_text

    dest = Path(dest)
    expected = sha256.lower() if sha256 else recorded_sha256(dest)
    if dest.is_file():
        candidate, source = dest, str(dest)
    else:
        candidate = dest.with_name(dest.name + ".download")  # its .part is resumed by a rerun
        download_file(url, candidate, retries=retries, progress=progress, folder_flag=folder_flag)  # DownloadFailed
        source = url
    try:
        check(candidate)
    except ReproError as err:
        trusted = expected is not None and not sha256 and sha256_file(candidate) == expected
        if trusted:  # recorded by an earlier version that did not parse first: never trust it
            hash_file(dest).unlink()
        aside = candidate.with_name(dest.name + ".unusable")
        candidate.replace(aside)
        raise ReproError(
            f"{what}: {source} is not a usable file: {err} It was moved aside to {aside} and its hash "
            f"{'recorded in ' + str(hash_file(dest)) + ' was removed' if trusted else 'was not recorded'}. Check the "
            f"URL (a host that answers with an HTML page serves no file), then run the command again; the next "
            f"download starts afresh.") from None
    digest = sha256_file(candidate, progress)
    if expected is not None and digest != expected:
        aside = candidate.with_name(dest.name + ".sha256-mismatch")
        candidate.replace(aside)
        raise ReproError(
            f"{what}: {source} has sha256 {digest}, but {'--sha256' if sha256 else hash_file(dest)} says {expected}. "
            f"It was refused and moved aside to {aside}. If the host now serves a different file on purpose, delete "
            f"{hash_file(dest)} to trust it; otherwise fetch it again from the original host.")
    if candidate != dest:
        os.replace(candidate, dest)
    if expected is None:
        write_text(hash_file(dest), f"{digest}  {dest.name}\n")
        bar = "!" * 78
        _say(f"\n{bar}\nNOTE: no sha256 is published for {what}, so {dest} CANNOT BE VERIFIED against its publisher.\n"
             f"It parses as {what}. Its sha256 is {digest}; recorded in {hash_file(dest)}, which every later download "
             f"and use must match.\n{bar}\n")
    return digest
