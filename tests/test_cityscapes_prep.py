"""`repro data cityscapes` on the synthetic city's zips and folders: exact counts and names, the
official resize / JPEG recipe, the manifest, and the errors for bad inputs."""

import hashlib
import io
import json
import shutil
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from repro import ReproError
from repro.data import cityscapes, synth_city
from repro.data.cityscapes import prepare
from tests.conftest import copy_packages

N_TRAIN, N_VAL = 6, 3


@pytest.fixture(scope="module")
def city(tmp_path_factory) -> Path:
    return synth_city.generate(tmp_path_factory.mktemp("synth") / "city", n_train=N_TRAIN, n_val=N_VAL,
                               size=(128, 64), seed=11, zips=True, progress=False)


@pytest.fixture(scope="module")
def prepared(city, tmp_path_factory) -> Path:
    """Prepared from the two zips, in parallel."""
    return prepare(city / "gtFine_trainvaltest.zip", city / "leftImg8bit_trainvaltest.zip",
                   tmp_path_factory.mktemp("prep") / "cityscapes", workers=2, progress=False)


@pytest.fixture
def copy(city, tmp_path) -> Path:
    """A writable copy of the synthetic packages' folders, to break."""
    return copy_packages(city, tmp_path / "pkg")


def frames(split: str, n: int) -> list[str]:
    return sorted(frame for _, frame in synth_city.frame_names(split, n))


def test_counts_and_names_are_exact(prepared):
    listing = {d: sorted(p.name for p in (prepared / d).iterdir()) for d in ("trainA", "trainB", "testA", "testB")}
    assert listing == {
        "trainA": [f"{f}_leftImg8bit.png" for f in frames("train", N_TRAIN)],
        "trainB": [f"{f}_gtFine_color.png" for f in frames("train", N_TRAIN)],
        "testA": [f"{f}_leftImg8bit.png" for f in frames("val", N_VAL)],
        "testB": [f"{f}_gtFine_color.png" for f in frames("val", N_VAL)],
    }
    for d in listing:
        for name in listing[d]:
            image = Image.open(prepared / d / name)
            assert (image.mode, image.size) == ("RGB", (256, 256))


def test_manifest_describes_every_file(prepared):
    manifest = json.loads((prepared / "manifest.json").read_text())
    assert manifest["counts"] == {"train": N_TRAIN, "val": N_VAL}
    assert manifest["options"]["size"] == 256 and manifest["options"]["format"] == "png"
    assert manifest["options"]["resample"] == "bicubic"
    records = {r["name"]: r for r in manifest["files"]}
    on_disk = {p.relative_to(prepared).as_posix() for p in prepared.glob("*/*")}
    assert set(records) == on_disk
    for name, r in records.items():
        assert r["sha256"] == hashlib.sha256((prepared / name).read_bytes()).hexdigest()
        assert r["source_size"] == [128, 64] and r["source_bytes"] > 0
        folder = name.split("/")[0]
        assert r["split"] == ("train" if folder.startswith("train") else "val")
        assert (r["domain"], r["content"]) == (("Y", "photo") if folder.endswith("A") else ("X", "colour label map"))
        city = r["frame"].rsplit("_", 2)[0]
        suffix = "leftImg8bit" if folder.endswith("A") else "gtFine_color"
        package = "leftImg8bit" if folder.endswith("A") else "gtFine"
        assert r["source"] == f"{package}/{r['split']}/{city}/{r['frame']}_{suffix}.png"


def test_folders_give_the_same_files_as_zips(city, prepared, tmp_path):
    out = prepare(city, city, tmp_path / "from_folders", workers=1, progress=False)
    for p in prepared.glob("*/*.png"):
        assert p.read_bytes() == (out / p.relative_to(prepared)).read_bytes()


def test_resize_is_the_official_scripts(city, prepared):
    """convert('RGB') then .resize((256, 256)) with Pillow's default filter, which is what DEFAULT_RESAMPLE names."""
    for member, out in [
        ("leftImg8bit/val/frankfurt/frankfurt_000000_000019_leftImg8bit.png", "testA/frankfurt_000000_000019_leftImg8bit.png"),
        ("gtFine/val/frankfurt/frankfurt_000000_000019_gtFine_color.png", "testB/frankfurt_000000_000019_gtFine_color.png"),
    ]:
        official = Image.open(city / member).convert("RGB").resize((256, 256))  # no filter argument, as the script
        assert np.array_equal(np.asarray(Image.open(prepared / out)), np.asarray(official))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 70, 3), dtype=np.uint8))
    assert np.array_equal(np.asarray(noise.resize((33, 33))),
                          np.asarray(noise.resize((33, 33), resample=cityscapes.DEFAULT_RESAMPLE)))


def test_jpg_format_reproduces_the_official_jpeg_files(city, tmp_path):
    out = prepare(city, city, tmp_path / "jpg", size=128, fmt="jpg", workers=1, progress=False)
    src = city / "leftImg8bit/train/bochum/bochum_000000_000019_leftImg8bit.png"
    buf = io.BytesIO()
    Image.open(src).convert("RGB").resize((128, 128)).save(buf, format="JPEG", subsampling=0, quality=100)
    assert (out / "trainA/bochum_000000_000019_leftImg8bit.jpg").read_bytes() == buf.getvalue()
    assert len(list((out / "trainB").glob("*_gtFine_color.jpg"))) == N_TRAIN


def test_rerun_returns_at_once_and_refuses_other_options(city, prepared):
    before = (prepared / "manifest.json").stat().st_mtime_ns
    again = prepare(city / "gtFine_trainvaltest.zip", city / "leftImg8bit_trainvaltest.zip", prepared, progress=False)
    assert again == prepared and (prepared / "manifest.json").stat().st_mtime_ns == before
    with pytest.raises(ReproError, match="already exists"):
        prepare(city, city, prepared, size=128, progress=False)


def assert_fails_cleanly(gtfine, leftimg, out: Path, pattern: str, workers: int = 1) -> None:
    with pytest.raises(ReproError, match=pattern) as err:
        prepare(gtfine, leftimg, out, workers=workers, progress=False)
    assert "\n" not in str(err.value)  # one paragraph
    assert not out.exists() and not list(out.parent.glob(".*.partial"))


def test_photo_without_label_names_the_photo(copy, tmp_path):
    (copy / "gtFine/train/bochum/bochum_000001_000019_gtFine_color.png").unlink()
    assert_fails_cleanly(copy, copy, tmp_path / "out",
                         r"bochum_000001_000019_leftImg8bit\.png needs gtFine/train/bochum/bochum_000001_000019_gtFine_color\.png")


def test_label_without_photo_names_the_label(copy, tmp_path):
    (copy / "leftImg8bit/val/lindau/lindau_000000_000019_leftImg8bit.png").unlink()
    assert_fails_cleanly(copy, copy, tmp_path / "out", r"lindau_000000_000019_gtFine_color\.png needs leftImg8bit/val/lindau/")


def test_extra_file_is_named(copy, tmp_path):
    (copy / "gtFine/train/aachen/notes.txt").write_text("x")
    assert_fails_cleanly(copy, copy, tmp_path / "out", r"unexpected file .*gtFine/train/aachen/notes\.txt")


def test_extra_member_in_a_zip_is_named(city, tmp_path):
    bad = tmp_path / "gtFine_trainvaltest.zip"
    shutil.copy(city / "gtFine_trainvaltest.zip", bad)
    with zipfile.ZipFile(bad, "a") as zf:
        zf.writestr("gtFine/val/munster/stray.png", b"x")
    assert_fails_cleanly(bad, city / "leftImg8bit_trainvaltest.zip", tmp_path / "out",
                         r"unexpected file .*gtFine_trainvaltest\.zip:gtFine/val/munster/stray\.png")


def test_damaged_zip_member_is_named(city, tmp_path):
    bad = tmp_path / "leftImg8bit_trainvaltest.zip"
    shutil.copy(city / "leftImg8bit_trainvaltest.zip", bad)
    with zipfile.ZipFile(bad) as zf:
        info = next(i for i in zf.infolist() if i.filename.endswith("_leftImg8bit.png"))
    data = bytearray(bad.read_bytes())
    with bad.open("rb") as f:  # the member's data starts after its local header (30 bytes + name + extra)
        f.seek(info.header_offset + 26)
        name_len, extra_len = int.from_bytes(f.read(2), "little"), int.from_bytes(f.read(2), "little")
    start = info.header_offset + 30 + name_len + extra_len
    data[start + info.compress_size // 2] ^= 0xFF
    bad.write_bytes(bytes(data))
    assert_fails_cleanly(city / "gtFine_trainvaltest.zip", bad, tmp_path / "out",
                         rf"cannot read .*leftImg8bit_trainvaltest\.zip:{info.filename}.*damaged; download "
                         rf"leftImg8bit_trainvaltest\.zip again", workers=1)


def test_frame_in_the_wrong_split_folder(copy, tmp_path):
    for package, suffix in (("gtFine", "gtFine_color"), ("leftImg8bit", "leftImg8bit")):
        src = copy / f"{package}/val/frankfurt/frankfurt_000000_000019_{suffix}.png"
        (copy / f"{package}/train/frankfurt").mkdir()
        src.rename(copy / f"{package}/train/frankfurt" / src.name)
    assert_fails_cleanly(copy, copy, tmp_path / "out", r"frankfurt belongs to the Cityscapes val split.*wrong split folder")


def test_folder_that_is_not_a_split(copy, tmp_path):
    (copy / "gtFine/train").rename(copy / "gtFine/training")
    assert_fails_cleanly(copy, copy, tmp_path / "out", r"gtFine/training/.*not a Cityscapes split")


@pytest.mark.parametrize("workers", [1, 2])  # 2: the error is raised in a worker process
def test_wrong_image_mode_names_the_file(copy, tmp_path, workers):
    photo = copy / "leftImg8bit/train/bremen/bremen_000000_000019_leftImg8bit.png"
    Image.open(photo).convert("L").save(photo)
    assert_fails_cleanly(copy, copy, tmp_path / "out", r"bremen_000000_000019_leftImg8bit\.png is a L-mode image", workers)


def test_swapped_packages_are_explained(city, tmp_path):
    assert_fails_cleanly(city / "leftImg8bit_trainvaltest.zip", city / "gtFine_trainvaltest.zip", tmp_path / "out",
                         r"contains no gtFine/ folder.*--gtfine takes the gtFine package")


def test_real_size_with_other_counts_warns(tmp_path, capsys):
    """Frames of the real 2048x1024 size but not 2975/500 of them: prepared, with a warning."""
    for split, city in (("train", "aachen"), ("val", "frankfurt")):
        frame = f"{city}_000000_000019"
        for path, image in (
            (tmp_path / f"pkg/leftImg8bit/{split}/{city}/{frame}_leftImg8bit.png", Image.new("RGB", (2048, 1024), (90, 90, 90))),
            (tmp_path / f"pkg/gtFine/{split}/{city}/{frame}_gtFine_color.png", Image.new("RGBA", (2048, 1024), (128, 64, 128, 255))),
        ):
            path.parent.mkdir(parents=True, exist_ok=True)
            image.save(path)
    out = prepare(tmp_path / "pkg", tmp_path / "pkg", tmp_path / "out", size=128, workers=1, progress=False)
    err = capsys.readouterr().err
    assert "WARNING" in err and "instead of 2975 and 500" in err
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"train": 1, "val": 1}


def test_cli_cityscapes_with_download_uses_csdownload(city, tmp_path, monkeypatch, capsys):
    """--download drives cityscapesscripts' downloader (faked here: no network) and prepares its zips."""
    from cityscapesscripts.download import downloader

    from repro.cli import build_parser

    fetched = []
    monkeypatch.setattr(downloader, "login", lambda: "session")

    def fake_download(*, session, package_names, destination_path, resume):
        for name in package_names:
            fetched.append(name)
            shutil.copy(city / name, Path(destination_path) / name)

    monkeypatch.setattr(downloader, "download_packages", fake_download)
    parser = build_parser(["data", "cityscapes"])
    argv = ["data", "cityscapes", "--download", "--packages", str(tmp_path / "zips"), "--size", "128", "--workers", "1"]
    args = parser.parse_args(argv + ["--format", "jpg", "--out", str(tmp_path / "out")])
    assert args.func(args) == 0
    assert fetched == ["gtFine_trainvaltest.zip", "leftImg8bit_trainvaltest.zip"]
    assert capsys.readouterr().out.strip() == str(tmp_path / "out")
    assert len(list((tmp_path / "out" / "testA").glob("*_leftImg8bit.jpg"))) == N_VAL
    args = parser.parse_args(argv + ["--out", str(tmp_path / "out2")])  # zips already there: no new download
    assert args.func(args) == 0 and len(fetched) == 2
