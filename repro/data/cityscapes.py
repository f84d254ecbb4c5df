"""`repro data cityscapes`: the CycleGAN Cityscapes layout, built from the official packages.

What the official script (pytorch-CycleGAN-and-pix2pix datasets/prepare_cityscapes_dataset.py) does,
and what this module keeps from it (docs/protocol.md#datasets):
  - photos leftImg8bit/{split}/{city}/*_leftImg8bit.png and colour label maps gtFine/{split}/{city}/
    *_gtFine_color.png, each opened, converted to RGB (the labels' alpha is dropped), then resized to a
    square with Pillow's default Image.resize filter, which is BICUBIC for RGB images (Pillow >= 7);
  - train -> trainA (photos, domain Y) / trainB (labels, domain X); val -> testA / testB;
  - JPEG quality 100 with 4:4:4 chroma (subsampling=0): `--format jpg`.
What it changes, each a named option or a documented addition:
  - the default format is PNG (lossless; JPEG artefacts lower the FCN scores,
    docs/protocol.md#pitfalls-of-the-originals);
  - the Cityscapes frame names are kept ({city}_{seq}_{frame}_leftImg8bit.png / _gtFine_color.png)
    instead of sorted indices, because the evaluator matches outputs to ground truth by name;
  - it reads the official zips directly (or their extracted folders), works in parallel, checks
    counts, pairing and image modes with errors that name the file, and writes manifest.json
    (per output file: split, domain, source members, source size, sha256; plus the options, with the
    packages' resolved paths, so a rerun naming them another way is the same job);
  - files an OS drops into folders (.DS_Store, ._NAME, Thumbs.db, any hidden file) are ignored; colour maps
    with colours outside the Cityscapes palette are prepared as they are, with one warning (count, first file)
    and an `off_palette` entry in the manifest;
  - a full disk is one error with the space needed (estimated from the images written) and free.
The output appears only when complete: it is written to a hidden temporary folder, then renamed.
"""

import hashlib
import io
import json
import os
import re
import sys
import threading
import time
import zipfile
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from cityscapesscripts.helpers.labels import labels as CITYSCAPES_LABELS
from PIL import Image
from tqdm import tqdm

from repro import ReproError, __version__
from repro.data.images import open_image
from repro.data.loaders import FILTERS
from repro.io import DiskFull, free_space, is_disk_full, partial_folder, process_alive, read_json_or_empty

SPLITS = ("train", "val", "test")
OUTPUT_FOLDERS = {"train": ("trainA", "trainB"), "val": ("testA", "testB")}  # (photos Y, labels X)
OFFICIAL_COUNTS = {"train": 2975, "val": 500}
OFFICIAL_FRAME_SIZE = (2048, 1024)
PACKAGES = {"gtFine": "gtFine_trainvaltest.zip", "leftImg8bit": "leftImg8bit_trainvaltest.zip"}

# Cities of each split in the official packages: a file under another split's folder is misplaced.
CITY_SPLIT = {
    **dict.fromkeys(
        ["aachen", "bochum", "bremen", "cologne", "darmstadt", "dusseldorf", "erfurt", "hamburg", "hanover",
         "jena", "krefeld", "monchengladbach", "strasbourg", "stuttgart", "tubingen", "ulm", "weimar", "zurich"],
        "train",
    ),
    **dict.fromkeys(["frankfurt", "lindau", "munster"], "val"),
    **dict.fromkeys(["berlin", "bielefeld", "bonn", "leverkusen", "mainz", "munich"], "test"),
}

RESAMPLE = FILTERS
# The official script calls .resize((256, 256)) with no filter: Pillow's default, BICUBIC for RGB images
# since Pillow 7.0 (tests/test_cityscapes_prep.py checks this against the installed Pillow).
DEFAULT_RESAMPLE = Image.Resampling.BICUBIC
JPEG_OPTIONS = {"quality": 100, "subsampling": 0}  # the official files

# Files an operating system drops into folders (Finder, Explorer, file managers): ignored, as the training loader
# ignores hidden files. Anything else unexpected is still an error naming it.
OS_JUNK = {"Thumbs.db", "ehthumbs.db", "desktop.ini", "Desktop.ini", "Icon\r"}


def is_os_junk(member: str) -> bool:
    """A hidden file or folder (.DS_Store, ._NAME AppleDouble files, .directory) or a known OS file."""
    parts = member.split("/")
    return parts[-1] in OS_JUNK or any(part.startswith(".") for part in parts)


_FILE = re.compile(
    r"^(?P<frame>(?P<city>[a-z_]+)_\d{6}_\d{6})_"
    r"(?P<kind>leftImg8bit\.png|gtFine_(?:color|labelIds|instanceIds|labelTrainIds)\.png|gtFine_polygons\.json)$"
)


def resample_filter(name: str) -> Image.Resampling:
    try:
        return RESAMPLE[name.lower()]
    except KeyError:
        raise ReproError(f"--resample {name!r}: choose one of {', '.join(RESAMPLE)}.") from None


# ---------------------------------------------------------------- reading a package (zip or folder)


@dataclass(frozen=True)
class Package:
    """One official package, as zip-style member names `gtFine/train/aachen/...`, read from its zip or
    from its extracted folder (the folder holding gtFine/, or gtFine/ itself)."""

    path: Path
    name: str  # "gtFine" or "leftImg8bit"

    @property
    def is_zip(self) -> bool:
        return self.path.is_file()

    def folder(self) -> Path:
        """The folder holding the split folders (for an extracted package)."""
        if (self.path / self.name).is_dir():
            return self.path / self.name
        if any((self.path / s).is_dir() for s in SPLITS):
            return self.path
        raise ReproError(
            f"{self.path} holds neither {self.name}/ nor train/ val/ folders. Give {PACKAGES[self.name]} itself, "
            f"or the folder it was extracted into."
        )

    def members(self) -> list[str]:
        if not self.path.exists():
            raise ReproError(f"{self.path} does not exist. Give {PACKAGES[self.name]} or the folder it was extracted into.")
        if self.is_zip:
            try:
                with zipfile.ZipFile(self.path) as zf:
                    names = [n for n in zf.namelist() if not n.endswith("/")]
            except zipfile.BadZipFile as err:
                raise ReproError(f"{self.path} is not a readable zip ({err}): download {PACKAGES[self.name]} again.") from err
            for n in names:  # the zip is read in place, never extracted, but such a member means it is not the package
                parts = re.split(r"[\\/]+", n)
                if n.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", n) or ".." in parts:
                    raise ReproError(
                        f"{self.path} contains the member {n!r}, which "
                        f"{'climbs out of the package with ..' if '..' in parts else 'has an absolute path'}. A genuine "
                        f"{PACKAGES[self.name]} never does: the file was tampered with or is not the package. Download "
                        f"{PACKAGES[self.name]} again from https://www.cityscapes-dataset.com.")
            members = [n for n in names if n.startswith(self.name + "/") and not is_os_junk(n)]
            if not members:
                found = sorted({n.split("/")[0] for n in names if "/" in n})
                raise ReproError(
                    f"{self.path} contains no {self.name}/ folder (it holds {found or 'no folders'}). "
                    f"Is it {PACKAGES[self.name]}? --gtfine takes the gtFine package, --leftimg the leftImg8bit one."
                )
            return sorted(members)
        folder = self.folder()
        members = (f"{self.name}/{p.relative_to(folder).as_posix()}" for p in folder.rglob("*") if p.is_file())
        return sorted(m for m in members if not is_os_junk(m))

    def opener(self):
        """A function member -> bytes. Each worker process makes its own (zip handles are not shareable).
        A member that cannot be read (bad CRC, cut-short zip, unreadable file) is an error naming it."""
        if self.is_zip:
            zf = zipfile.ZipFile(self.path)
            raw = zf.read
        else:
            folder = self.folder()
            raw = lambda member: (folder / member.split("/", 1)[1]).read_bytes()  # noqa: E731

        def read(member: str) -> bytes:
            try:
                return raw(member)
            except (zipfile.BadZipFile, zlib.error, EOFError, OSError) as err:
                raise ReproError(f"cannot read {_where(self, member)} ({err}): the package is damaged; "
                                 f"download {PACKAGES[self.name]} again (or re-extract it).") from err
        return read


def _where(package: Package, member: str) -> str:
    return f"{package.path}:{member}" if package.is_zip else str(package.folder() / member.split("/", 1)[1])


def index(package: Package) -> dict[str, dict[str, dict[str, str]]]:
    """split -> frame -> kind -> member, after checking every member's place and name."""
    found = {s: {} for s in SPLITS}
    for member in package.members():
        parts = member.split("/")
        if len(parts) != 4:
            raise ReproError(
                f"unexpected file {_where(package, member)}: the official package only holds "
                f"{package.name}/SPLIT/CITY/FILE. Remove it, or use the untouched {PACKAGES[package.name]}."
            )
        _, split, city, name = parts
        if split not in SPLITS:
            raise ReproError(
                f"{_where(package, member)} is in a folder {split!r} that is not a Cityscapes split "
                f"(train, val, test). Move it into the right split folder or remove it."
            )
        match = _FILE.match(name)
        wanted = "leftImg8bit.png" if package.name == "leftImg8bit" else "gtFine_"
        if not match or match["city"] != city or not match["kind"].startswith(wanted):
            raise ReproError(
                f"unexpected file {_where(package, member)}: {package.name}/{split}/{city}/ should only hold files named "
                f"{city}_SSSSSS_FFFFFF_{'leftImg8bit.png' if package.name == 'leftImg8bit' else 'gtFine_*.png'}. "
                f"Remove it, or use the untouched {PACKAGES[package.name]}."
            )
        home = CITY_SPLIT.get(city)
        if home is not None and home != split:
            raise ReproError(
                f"{_where(package, member)} is in the {split} folder, but {city} belongs to the Cityscapes {home} split. "
                f"The file is in the wrong split folder: move it back to {package.name}/{home}/{city}/."
            )
        found[split].setdefault(match["frame"], {})[match["kind"].split(".")[0].removeprefix("gtFine_")] = member
    return found


# ---------------------------------------------------------------- one frame (runs in a worker)

_worker = {}


def palette_table() -> np.ndarray:
    """2**24 booleans: which RGB colours (r << 16 | g << 8 | b) the Cityscapes colour maps use (every label's
    colour in cityscapesscripts' table, void ones included)."""
    table = np.zeros(1 << 24, dtype=bool)
    for label in CITYSCAPES_LABELS:
        r, g, b = label.color
        table[r << 16 | g << 8 | b] = True
    return table


def off_palette_pixels(rgb: np.ndarray, table: np.ndarray) -> int:
    rgb = rgb.astype(np.int32)
    return int((~table[rgb[..., 0] << 16 | rgb[..., 1] << 8 | rgb[..., 2]]).sum())


def _init_pool_worker(parent: int, *init) -> None:
    _exit_with_parent(parent)
    _init_worker(*init)


def _exit_with_parent(parent: int) -> None:
    """A pool worker dies with the command that started it (a SIGKILLed parent runs no clean-up, and its workers would
    go on writing frames nobody collects): on Linux the kernel kills it (PR_SET_PDEATHSIG); elsewhere, and in case the
    parent died before that was set, a thread checks every second that the parent (its pid) is still there."""
    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL), 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass

    def watch() -> None:
        while process_alive(parent):
            time.sleep(1.0)
        os._exit(1)

    if not process_alive(parent):
        os._exit(1)
    threading.Thread(target=watch, daemon=True, name="exit-with-parent").start()


def _init_worker(gtfine: Package, leftimg: Package, out: Path, size: int, fmt: str, resample: int) -> None:
    _worker.update(read_label=gtfine.opener(), read_photo=leftimg.opener(), gtfine=gtfine, leftimg=leftimg,
                   out=out, size=size, fmt=fmt, resample=resample, palette=palette_table())


def _load(data: bytes, where: str, modes: tuple[str, ...], what: str) -> Image.Image:
    image = open_image(io.BytesIO(data), where, fix="the package is damaged; download it again")
    if image.mode not in modes:
        raise ReproError(
            f"{where} is a {image.mode}-mode image, but a Cityscapes {what} is {' or '.join(modes)}. "
            f"Is this the right file (photos: *_leftImg8bit.png, labels: *_gtFine_color.png)?"
        )
    return image


def _encode(image: Image.Image, fmt: str) -> bytes:
    buf = io.BytesIO()
    if fmt == "jpg":
        image.save(buf, format="JPEG", **JPEG_OPTIONS)
    else:
        image.save(buf, format="PNG")
    return buf.getvalue()


def prepare_frame(task: tuple[str, str, str, str]) -> list[dict]:
    """Resize and write one photo / label pair; return their manifest records."""
    split, frame, photo_member, label_member = task
    w = _worker
    photo_data, label_data = w["read_photo"](photo_member), w["read_label"](label_member)
    photo = _load(photo_data, _where(w["leftimg"], photo_member), ("RGB",), "photo")
    label = _load(label_data, _where(w["gtfine"], label_member), ("RGBA", "RGB"), "colour label map")
    if photo.size != label.size:
        raise ReproError(
            f"{_where(w['leftimg'], photo_member)} is {photo.size[0]}x{photo.size[1]} but its label "
            f"{_where(w['gtfine'], label_member)} is {label.size[0]}x{label.size[1]}: they are not a pair."
        )
    photo_dir, label_dir = OUTPUT_FOLDERS[split]
    records = []
    for image, data, member, folder, suffix, domain, content in (
        (photo, photo_data, photo_member, photo_dir, "leftImg8bit", "Y", "photo"),
        (label, label_data, label_member, label_dir, "gtFine_color", "X", "colour label map"),
    ):
        # the official order: convert to RGB first (drops the labels' alpha), then resize
        rgb = image.convert("RGB")
        resized = rgb.resize((w["size"], w["size"]), resample=w["resample"])
        encoded = _encode(resized, w["fmt"])
        name = f"{folder}/{frame}_{suffix}.{w['fmt']}"
        try:
            (w["out"] / name).write_bytes(encoded)
        except OSError as err:
            if is_disk_full(err):  # the main process adds the whole job's estimate
                raise DiskFull(w["out"], f"writing {name}", len(encoded)) from None
            raise
        records.append({
            "name": name, "frame": frame, "split": split, "domain": domain, "content": content,
            "source": member, "source_bytes": len(data), "source_size": list(image.size),
            "sha256": hashlib.sha256(encoded).hexdigest(),
        })
        if domain == "X":
            off = off_palette_pixels(np.asarray(rgb), w["palette"])
            if off:
                records[-1]["off_palette_pixels"] = off
    return records


# ---------------------------------------------------------------- the whole preparation


def _city(frame: str) -> str:
    return frame.rsplit("_", 2)[0]


def pairs(gtfine: Package, leftimg: Package) -> dict[str, list[tuple[str, str, str, str]]]:
    """split -> [(split, frame, photo member, colour label member)], after checking the pairing."""
    labels, photos = index(gtfine), index(leftimg)
    result = {}
    for split in OUTPUT_FOLDERS:
        photo_frames = {f: k["leftImg8bit"] for f, k in photos[split].items()}
        label_frames = {f: k["color"] for f, k in labels[split].items() if "color" in k}
        if not photo_frames:
            raise ReproError(f"no {split} photos (leftImg8bit/{split}/CITY/*_leftImg8bit.png) in {leftimg.path}.")
        no_label = sorted(set(photo_frames) - set(label_frames))
        if no_label:
            f = no_label[0]
            raise ReproError(
                f"{len(no_label)} {split} photo(s) have no colour label map, e.g. {_where(leftimg, photo_frames[f])} "
                f"needs gtFine/{split}/{_city(f)}/{f}_gtFine_color.png in {gtfine.path}. Use the complete "
                f"gtFine package of the same release, or remove the extra photos."
            )
        no_photo = sorted(set(label_frames) - set(photo_frames))
        if no_photo:
            f = no_photo[0]
            raise ReproError(
                f"{len(no_photo)} {split} label map(s) have no photo, e.g. {_where(gtfine, label_frames[f])} "
                f"needs leftImg8bit/{split}/{_city(f)}/{f}_leftImg8bit.png in {leftimg.path}. Use the complete "
                f"leftImg8bit package of the same release, or remove the extra labels."
            )
        result[split] = [(split, f, photo_frames[f], label_frames[f]) for f in sorted(photo_frames)]
    return result


def _same_options(recorded: dict | None, options: dict) -> bool:
    """The same packages (compared as resolved paths, however they were written) and the same options."""
    if not isinstance(recorded, dict):
        return False
    resolved = {k: str(Path(v).resolve()) for k, v in recorded.items() if k in ("gtfine", "leftimg") and isinstance(v, str)}
    return recorded | resolved == options


def _warn_off_palette(records: list[dict], gtfine: Package) -> dict | None:
    """A colour map with colours outside the Cityscapes palette (a damaged or edited file) is prepared as it is,
    with one warning naming the first such file; the manifest records the counts."""
    off = [r for r in records if r.get("off_palette_pixels")]
    if not off:
        return None
    first = min(off, key=lambda r: r["source"])
    summary = {"maps": len(off), "pixels": sum(r["off_palette_pixels"] for r in off), "first": first["source"]}
    print(
        f"WARNING: {summary['maps']} colour label map(s) hold colours outside the Cityscapes palette "
        f"({summary['pixels']} pixels in all; first: {_where(gtfine, first['source'])}, {first['off_palette_pixels']} "
        f"pixels). They were prepared as they are: a model trained on them learns those colours, and photo -> labels "
        f"scoring maps each to the nearest palette colour. The official gtFine package has none; check that file.",
        file=sys.stderr,
    )
    return summary


def _disk_full(err: BaseException, tmp: Path, out: Path, n_files: int) -> DiskFull:
    """The whole job's estimate: the mean size of the images written so far times the number of images."""
    sizes = [p.stat().st_size for p in tmp.rglob("*") if p.is_file()]
    if isinstance(err, DiskFull) and err.needed:
        sizes.append(err.needed)
    needed = int(sum(sizes) / len(sizes) * n_files) if sizes else None
    return DiskFull(out.parent, f"preparing {out} ({len(sizes)} of {n_files} images written)", needed,
                    fix="Free some space there, or choose an --out on another disk, and run the command again.")


def prepare(
    gtfine: str | Path,
    leftimg: str | Path,
    out: str | Path,
    size: int = 256,
    fmt: str = "png",
    workers: int | None = None,
    resample: int = DEFAULT_RESAMPLE,
    progress: bool = True,
) -> Path:
    """Build OUT/trainA, trainB, testA, testB and OUT/manifest.json from the two official packages."""
    if fmt not in ("png", "jpg"):
        raise ReproError(f"--format {fmt!r}: choose png or jpg.")
    gtfine, leftimg, out = Package(Path(gtfine), "gtFine"), Package(Path(leftimg), "leftImg8bit"), Path(out)
    resample_name = next(n for n, f in RESAMPLE.items() if f == resample)
    options = {"gtfine": str(gtfine.path.resolve()), "leftimg": str(leftimg.path.resolve()), "size": size,
               "format": fmt, "resample": resample_name, **({"jpeg": JPEG_OPTIONS} if fmt == "jpg" else {})}
    for package, flag in ((gtfine, "--gtfine"), (leftimg, "--leftimg")):
        if package.path.is_dir() and out.resolve().is_relative_to(package.folder().resolve()):
            raise ReproError(f"--out {out} lies inside the package folder {package.folder()} ({flag}): the prepared "
                             f"images would be written into the Cityscapes package, whose next reading would refuse "
                             f"them as unexpected files. Choose an --out outside {package.folder()}.")
    if out.exists() and any(out.iterdir()):
        manifest = out / "manifest.json"
        if manifest.is_file() and _same_options(read_json_or_empty(manifest).get("options"), options):
            return out  # already prepared with the same options
        raise ReproError(f"{out} already exists and is not empty. Choose another --out, or delete {out} first.")

    tasks = pairs(gtfine, leftimg)
    counts = {split: len(t) for split, t in tasks.items()}
    jobs = tasks["train"] + tasks["val"]
    try:
        with partial_folder(out) as tmp:
            try:
                _build(tmp, out, jobs, counts, options, gtfine, leftimg, size, fmt, resample, workers, progress)
            except Exception as err:
                if not is_disk_full(err):
                    raise
                raise _disk_full(err, tmp, out, 2 * len(jobs)) from None
    except DiskFull as err:
        err.free = free_space(out.parent)  # measured once the partial folder is gone
        raise
    return out


def _build(tmp: Path, out: Path, jobs: list, counts: dict, options: dict, gtfine: Package, leftimg: Package,
           size: int, fmt: str, resample: int, workers: int | None, progress: bool) -> None:
    """Writes every pair and the manifest into the partial folder TMP, then renames it to OUT."""
    for folder in ("trainA", "trainB", "testA", "testB"):
        (tmp / folder).mkdir()
    init = (gtfine, leftimg, tmp, size, fmt, resample)
    bar = dict(total=len(jobs), desc="cityscapes", unit="pair", disable=not progress, file=sys.stderr)
    workers = (os.cpu_count() or 1) if workers is None else workers
    if workers <= 1:
        _init_worker(*init)
        records = [r for job in tqdm(jobs, **bar) for r in prepare_frame(job)]
    else:
        pool = ProcessPoolExecutor(workers, initializer=_init_pool_worker, initargs=(os.getpid(), *init))
        try:
            results = pool.map(prepare_frame, jobs, chunksize=max(1, min(32, len(jobs) // (4 * workers))))
            records = [r for rs in tqdm(results, **bar) for r in rs]
        finally:
            pool.shutdown(cancel_futures=True)  # on an error, do not finish the queued frames first
    first = records[0]["source_size"]
    if tuple(first) == OFFICIAL_FRAME_SIZE and counts != OFFICIAL_COUNTS:
        print(
            f"WARNING: these look like the real Cityscapes packages ({first[0]}x{first[1]} frames), but they give "
            f"{counts['train']} train and {counts['val']} val pairs instead of 2975 and 500. The paper's numbers "
            f"assume the complete packages.",
            file=sys.stderr,
        )
    off_palette = _warn_off_palette(records, gtfine)
    manifest = {"options": options, "counts": counts, "repro": __version__,
                **({"off_palette": off_palette} if off_palette else {}), "files": records}
    (tmp / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    if out.exists():
        out.rmdir()  # an empty folder left for us
    os.replace(tmp, out)


def download_packages(destination: str | Path) -> tuple[Path, Path]:
    """Fetch the two official zips with cityscapesscripts' csDownload (asks for the Cityscapes login)."""
    from cityscapesscripts.download import downloader

    destination = Path(destination)
    destination.mkdir(parents=True, exist_ok=True)
    paths = [destination / name for name in PACKAGES.values()]
    missing = [p for p in paths if not (p.is_file() and p.with_name(p.name + ".complete").is_file())]
    if missing:
        try:
            session = downloader.login()  # asks for the username and password unless stored
            for path in missing:
                downloader.download_packages(session=session, package_names=[path.name],
                                             destination_path=str(destination), resume=path.exists())
                path.with_name(path.name + ".complete").write_text("downloaded and md5-checked by cityscapesscripts\n")
        except Exception as err:  # the downloader raises plain Exceptions (bad login, md5 mismatch, offline)
            raise ReproError(
                f"the Cityscapes download failed ({err}). It needs a free account from "
                f"https://www.cityscapes-dataset.com/register/ and network access to that site. Run the command again "
                f"to resume, or download {' and '.join(PACKAGES.values())} in a browser and pass them with "
                f"--gtfine and --leftimg."
            ) from err
    return paths[0], paths[1]
