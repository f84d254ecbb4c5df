"""`repro data get`: downloads from a real HTTP server on 127.0.0.1 serving archives built here."""

import hashlib
import io
import json
import os
import tarfile
import zipfile
from pathlib import Path

import pytest

from http_fixtures import ArchiveServer, closed_port_url
from repro import ReproError
from repro.data import download, registry
from repro.data.download import MARKER, get

TOY_FILES = {f"toy/trainA/{i}.jpg": os.urandom(3000 + i) for i in range(6)} | {"toy/testB/0.jpg": b"label"}


def make_zip(members: dict[str, bytes], symlinks: dict[str, str] = {}) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in symlinks.items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)  # S_IFLNK: a symbolic link
            zf.writestr(info, target)
    return buf.getvalue()


def make_tar_gz(members: dict[str, bytes], symlinks: dict[str, str] = {}, hardlinks: dict[str, str] = {}) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in symlinks.items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
        for name, target in hardlinks.items():  # target relative to the archive root
            info = tarfile.TarInfo(name)
            info.type = tarfile.LNKTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def toy_registry(tmp_path: Path, rows: list[tuple], url: str = "", legacy_url: str = "") -> dict[str, registry.Entry]:
    """A registry TSV of test entries: (name, kind, archive, size, sha256, served)."""
    lines = ["# test registry", "name\tkind\tarchive\turl\tlegacy_url\tsize_bytes\tsha256\tserved"]
    for name, kind, archive, size, sha, served in rows:
        lines.append(f"{name}\t{kind}\t{archive}\t{url}\t{legacy_url}\t{size or ''}\t{sha or ''}\t{served}")
    path = tmp_path / "registry.tsv"
    path.write_text("\n".join(lines) + "\n")
    return registry.load(path)


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def server():
    with ArchiveServer() as s:
        yield s


@pytest.fixture
def toy(tmp_path, server):
    """The toy archive served at /toy.zip and a registry entry publishing its size and hash."""
    body = make_zip(TOY_FILES)
    server.files["/toy.zip"] = body
    reg = toy_registry(tmp_path, [("toy", "cyclegan", "toy.zip", len(body), sha(body), "yes")])
    return body, reg


def assert_extracted(folder: Path) -> None:
    for name, data in TOY_FILES.items():
        assert (folder / name.removeprefix("toy/")).read_bytes() == data


def no_leftovers(root: Path) -> list[str]:
    """Hidden partial folders, or archives still in .downloads, under root."""
    partial = [p.name for p in root.iterdir() if p.name.endswith(".partial")]
    downloads = [p.name for p in (root / ".downloads").glob("*")]
    return partial + downloads


def test_full_download_verifies_extracts_and_records(tmp_path, server, toy):
    body, reg = toy
    root = tmp_path / "datasets"
    folder = get("toy", root, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert folder == root / "toy"
    assert_extracted(folder)
    marker = json.loads((folder / MARKER).read_text())
    assert marker["sha256"] == sha(body) and marker["verified"] is True
    assert marker["files"] == len(TOY_FILES)
    assert no_leftovers(root) == []  # archive removed after extraction, no temporary folders


def test_resume_after_connection_cut_mid_file(tmp_path, server, toy, monkeypatch):
    body, reg = toy
    monkeypatch.setattr(download, "CHUNK", 1024)  # the bytes of an unfinished chunk are lost with the connection
    server.cuts["/toy.zip"] = 2  # the first two responses stop halfway
    folder = get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, backoff=0, progress=False)
    assert_extracted(folder)
    ranges = [r for p, r in server.requests]
    assert len(ranges) == 3 and ranges[0] is None
    first, second = (int(r.removeprefix("bytes=").removesuffix("-")) for r in ranges[1:])
    assert len(body) // 2 - 1024 < first <= len(body) // 2  # resumed where the cut left it, not from zero
    assert first < second < len(body)


def write_partial(tmp_path: Path, data: bytes, source: dict | None) -> Path:
    """An earlier run's ROOT/.downloads/toy.zip.part and, unless None, the source it recorded."""
    (tmp_path / ".downloads").mkdir()
    part = tmp_path / ".downloads" / "toy.zip.part"
    part.write_bytes(data)
    if source is not None:
        download.source_file(part).write_text(json.dumps(source))
    return part


def test_partial_file_of_an_earlier_run_is_resumed(tmp_path, server, toy):
    body, reg = toy
    write_partial(tmp_path, body[:1000], {"url": server.url("/toy.zip"), "total": len(body)})
    folder = get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert_extracted(folder)
    assert server.requests == [("/toy.zip", "bytes=1000-")]
    assert no_leftovers(tmp_path) == []  # the source record went with the partial


@pytest.mark.parametrize("source", [None, {"url": "http://127.0.0.1:9/other.zip", "total": 5000}],
                         ids=["unrecorded", "another-url"])
def test_a_stale_partial_of_another_file_is_discarded_not_spliced(tmp_path, server, toy, source, capsys):
    body, reg = toy
    write_partial(tmp_path, os.urandom(1000), source)
    folder = get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert_extracted(folder)  # the whole file, from byte 0: no spliced archive, no blame on a good URL
    assert server.requests == [("/toy.zip", None)]
    assert "discarding" in capsys.readouterr().err


def test_a_partial_whose_file_changed_on_the_server_starts_over(tmp_path, server, toy):
    body, reg = toy
    url = server.url("/toy.zip")
    write_partial(tmp_path, os.urandom(1000), {"url": url, "total": len(body), "etag": '"an-older-file"'})
    folder = get("toy", tmp_path, url=url, registry=reg, progress=False)
    assert_extracted(folder)  # If-Range with the old ETag: the server sent the whole new file
    assert server.requests == [("/toy.zip", "bytes=1000-")]


def test_a_host_that_stops_sending_is_named_and_retries_are_capped(tmp_path, server, toy, monkeypatch):
    body, reg = toy
    monkeypatch.setattr(download, "TIMEOUT", (5.0, 0.3))
    monkeypatch.setattr(download, "CHUNK", 1024)
    server.stalls["/toy.zip"] = 10  # every response stalls halfway (each gains bytes)
    with pytest.raises(ReproError) as err:
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, retries=2, backoff=0, progress=False)
    message = str(err.value)
    assert "the host stopped sending" in message and "could not connect" not in message
    assert "incomplete" in message and "offline" not in message
    assert len(server.requests) == 3  # stalls count as failures even though each gained bytes
    assert (tmp_path / ".downloads" / "toy.zip.part").stat().st_size > 0  # kept for the next run


def test_total_retry_time_is_capped(tmp_path, server, toy, monkeypatch):
    body, reg = toy
    monkeypatch.setattr(download, "CHUNK", 1024)
    monkeypatch.setattr(download, "RETRY_SECONDS", 0.0)
    server.cuts["/toy.zip"] = 100  # each response gains bytes, so the retry count alone would never stop
    with pytest.raises(ReproError, match=r"failing for \d+ s, 0 s allowed"):
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, retries=2, backoff=0, progress=False)
    assert len(server.requests) == 1


def test_second_call_is_a_noop_and_detects_tampering(tmp_path, server, toy):
    _, reg = toy
    first = get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    n_requests = len(server.requests)
    assert get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False) == first
    assert len(server.requests) == n_requests  # nothing downloaded again
    (first / "trainA" / "0.jpg").unlink()
    with pytest.raises(ReproError, match="incomplete or was modified"):
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)


def test_damaged_marker_says_what_to_do(tmp_path, server, toy):
    from repro.data.download import MARKER
    _, reg = toy
    first = get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    (first / MARKER).write_text('{"sha256": "ab')  # cut short
    with pytest.raises(ReproError, match=rf"{MARKER} is damaged.*Delete .*toy and run the command again"):
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)


def test_404_says_what_to_do(tmp_path, server, toy):
    _, reg = toy
    with pytest.raises(ReproError, match=r"HTTP 404.*--from FILE"):
        get("toy", tmp_path, url=server.url("/gone.zip"), registry=reg, progress=False)
    assert not (tmp_path / "toy").exists()


def test_legacy_mirror_is_tried_when_the_current_host_fails(tmp_path, server):
    body = make_zip(TOY_FILES)
    server.files["/legacy/toy.zip"] = body
    reg = toy_registry(tmp_path, [("toy", "cyclegan", "toy.zip", len(body), sha(body), "yes")],
                       url=server.url("/current/toy.zip"), legacy_url=server.url("/legacy/toy.zip"))
    folder = get("toy", tmp_path, registry=reg, progress=False)  # no --url: the registry's hosts, in order
    assert_extracted(folder)
    assert [p for p, _ in server.requests] == ["/current/toy.zip", "/legacy/toy.zip"]


def test_offline_gives_one_paragraph_error(tmp_path, toy):
    _, reg = toy
    with pytest.raises(ReproError, match=r"could not connect to 127\.0\.0\.1.*offline") as err:
        get("toy", tmp_path, url=closed_port_url("/toy.zip"), registry=reg, retries=1, backoff=0, progress=False)
    assert "\n" not in str(err.value)


def test_a_host_name_that_does_not_resolve_fails_at_once_with_the_offline_message(tmp_path, toy, monkeypatch):
    """No DNS answer (offline, or a wrong name) is not transient: no retries, no pauses, the clear message.
    (.invalid never resolves, RFC 2606; a machine without DNS fails the lookup the same way.)"""
    _, reg = toy
    pauses = []
    monkeypatch.setattr(download.time, "sleep", pauses.append)
    with pytest.raises(ReproError, match=r"could not resolve the host name no-such-host\.invalid.*not retried.*offline"):
        get("toy", tmp_path, url="http://no-such-host.invalid/toy.zip", registry=reg, retries=8, backoff=30,
            progress=False)
    assert pauses == []
    # a refused connection may be a host restarting: still retried
    with pytest.raises(ReproError, match="could not connect"):
        get("toy", tmp_path, url=closed_port_url("/toy.zip"), registry=reg, retries=2, backoff=0, progress=False)
    assert len(pauses) == 2


def test_wrong_hash_is_kept_aside_and_never_extracted(tmp_path, server):
    body = make_zip(TOY_FILES)
    server.files["/toy.zip"] = body
    reg = toy_registry(tmp_path, [("toy", "cyclegan", "toy.zip", len(body), "0" * 64, "yes")])
    with pytest.raises(ReproError, match=f"has sha256 {sha(body)}.*NOT extracted"):
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert (tmp_path / ".downloads" / "toy.zip.sha256-mismatch").read_bytes() == body
    assert not (tmp_path / "toy").exists()
    assert not list(tmp_path.glob(".toy*"))


def test_truncated_archive_with_published_size(tmp_path, server):
    body = make_zip(TOY_FILES)
    server.files["/toy.zip"] = body[: len(body) - 500]  # the host serves a short file, completely
    reg = toy_registry(tmp_path, [("toy", "cyclegan", "toy.zip", len(body), sha(body), "yes")])
    with pytest.raises(ReproError, match="truncated"):
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert not (tmp_path / "toy").exists()


def test_truncated_archive_without_published_hash(tmp_path, server):
    body = make_tar_gz({"toy/train/1.jpg": os.urandom(20000)})
    server.files["/toy.tar.gz"] = body[: len(body) // 2]
    reg = toy_registry(tmp_path, [("toy", "pix2pix", "toy.tar.gz", None, None, "yes")])
    with pytest.raises(ReproError, match="truncated or damaged"):
        get("toy", tmp_path, url=server.url("/toy.tar.gz"), registry=reg, progress=False)
    assert not (tmp_path / "toy").exists()
    assert not list(tmp_path.glob(".toy*"))


@pytest.mark.parametrize(
    "kind, body, why",
    [
        ("zip", make_zip({"toy/a.jpg": b"a", "toy/../../evil.txt": b"x"}), "'..'"),
        ("zip", make_zip({"/tmp/evil.txt": b"x"}), "absolute path"),
        ("zip", make_zip({"toy/a.jpg": b"a"}, symlinks={"toy/link": "../../evil"}), "outside the dataset folder"),
        ("tar.gz", make_tar_gz({"toy/a.jpg": b"a"}, symlinks={"toy/link": "/etc/passwd"}), "absolute path"),
        ("tar.gz", make_tar_gz({"toy/../evil.txt": b"x"}), "'..'"),
        ("tar.gz", make_tar_gz({"toy/sub/a.jpg": b"a"}, hardlinks={"toy/sub/h": "../evil"}), "outside the dataset folder"),
    ],
)
def test_path_traversal_members_are_refused(tmp_path, server, kind, body, why):
    server.files[f"/toy.{kind}"] = body
    reg = toy_registry(tmp_path, [("toy", "cyclegan", f"toy.{kind}", len(body), sha(body), "yes")])
    root = tmp_path / "root" / "datasets"
    with pytest.raises(ReproError, match=f"which .*{why}.*Nothing was extracted"):
        get("toy", root, url=server.url(f"/toy.{kind}"), registry=reg, progress=False)
    assert sorted(p.name for p in root.iterdir()) == [".downloads"]  # no dataset folder, no temporary one
    assert not list(tmp_path.rglob("evil*"))


def test_links_inside_the_dataset_are_allowed(tmp_path, server):
    body = make_tar_gz({"toy/train/1.jpg": b"one"}, symlinks={"toy/latest.jpg": "train/1.jpg"})
    server.files["/toy.tar.gz"] = body
    reg = toy_registry(tmp_path, [("toy", "pix2pix", "toy.tar.gz", None, sha(body), "yes")])
    folder = get("toy", tmp_path, url=server.url("/toy.tar.gz"), registry=reg, progress=False)
    assert (folder / "latest.jpg").read_bytes() == b"one"


def test_pix2pix_tar_gz_is_renamed_to_the_registry_name(tmp_path, server):
    body = make_tar_gz({"facades/train/1.jpg": b"one", "facades/val/2.jpg": b"two"})
    server.files["/facades.tar.gz"] = body
    reg = toy_registry(tmp_path, [("pix2pix_facades", "pix2pix", "facades.tar.gz", len(body), sha(body), "yes")])
    folder = get("pix2pix_facades", tmp_path, url=server.url("/facades.tar.gz"), registry=reg, progress=False)
    assert folder == tmp_path / "pix2pix_facades"
    assert (folder / "val" / "2.jpg").read_bytes() == b"two"


def test_unverifiable_download_is_loud_and_recorded(tmp_path, server, capsys):
    body = make_zip(TOY_FILES)
    server.files["/toy.zip"] = body
    reg = toy_registry(tmp_path, [("toy", "cyclegan", "toy.zip", None, None, "yes")])
    folder = get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert "CANNOT BE VERIFIED" in capsys.readouterr().err
    marker = json.loads((folder / MARKER).read_text())
    assert marker["verified"] is False and marker["sha256"] == sha(body)


def test_from_file_imports_and_verifies(tmp_path, toy):
    body, reg = toy
    archive = tmp_path / "elsewhere.zip"
    archive.write_bytes(body)
    folder = get("toy", tmp_path / "d", from_file=archive, registry=reg, progress=False)
    assert_extracted(folder)
    assert archive.read_bytes() == body  # the user's file is left alone
    bad = tmp_path / "bad.zip"
    bad.write_bytes(body[:-1] + b"!")
    with pytest.raises(ReproError, match="NOT extracted"):
        get("toy", tmp_path / "e", from_file=bad, registry=reg, progress=False)
    assert bad.exists() and not (tmp_path / "e" / "toy").exists()


def test_retired_cityscapes_explains_the_alternative(tmp_path):
    with pytest.raises(ReproError, match=r"no longer served.*--from.*repro data cityscapes"):
        get("cityscapes", tmp_path, progress=False)


def test_disk_full_before_download(tmp_path, server, toy, monkeypatch):
    _, reg = toy
    monkeypatch.setattr(download.shutil, "disk_usage", lambda path: _Usage(free=10))
    with pytest.raises(ReproError, match="disk holding .* is full.*run the same command again"):
        get("toy", tmp_path, url=server.url("/toy.zip"), registry=reg, progress=False)
    assert not (tmp_path / "toy").exists()


class _Usage:
    def __init__(self, free):
        self.free = free


def test_unknown_name_suggests_close_match():
    with pytest.raises(ReproError, match="Did you mean horse2zebra"):
        registry.lookup("horse2zebr")


def test_registry_lists_every_berkeley_archive():
    reg = registry.load()
    cyclegan = ["apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
                "ukiyoe2photo", "vangogh2photo", "maps", "cityscapes", "facades", "iphone2dslr_flower",
                "ae_photos", "mini", "mini_pix2pix", "mini_colorization"]
    pix2pix = ["facades", "maps", "edges2shoes", "edges2handbags", "night2day", "cityscapes"]
    assert set(reg) == set(cyclegan) | {f"pix2pix_{n}" for n in pix2pix}
    for n in cyclegan:
        e = reg[n]
        assert e.kind == "cyclegan" and e.archive == f"{n}.zip"
        if e.served:
            assert e.url == f"http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{n}.zip"
            assert e.legacy_url == f"https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{n}.zip"
    for n in pix2pix:
        e = reg[f"pix2pix_{n}"]
        assert e.kind == "pix2pix" and e.archive == f"{n}.tar.gz"
        assert e.served == (n != "cityscapes")
    assert not reg["cityscapes"].served and reg["cityscapes"].sha256 is not None
    hashed = {n for n, e in reg.items() if e.sha256}
    assert hashed == set(cyclegan) - {"ae_photos", "mini", "mini_pix2pix", "mini_colorization"}
    assert all(len(reg[n].sha256) == 64 and reg[n].size_bytes > 0 for n in hashed)


def test_registry_matches_the_published_hash_table():
    # tests/data/cyclegan_datasets.tsv: the sizes and sha256 published for the Berkeley archives
    # (docs/protocol.md#datasets), kept apart from repro/data/registry.py so a typo in either shows.
    table = Path(__file__).parent / "data" / "cyclegan_datasets.tsv"
    reg = registry.load()
    rows = [l.split("\t") for l in table.read_text().splitlines() if l and not l.startswith(("#", "name"))]
    assert rows
    for name, size, digest in rows:
        assert (reg[name].size_bytes, reg[name].sha256) == (int(size), digest)


def test_cli_get_downloads_and_prints_the_folder(tmp_path, server, capsys):
    from repro.cli import build_parser

    server.files["/mini.zip"] = make_zip({"mini/trainA/0.jpg": b"x"})
    parser = build_parser(["data", "get"])
    args = parser.parse_args(["data", "get", "mini", "--root", str(tmp_path), "--url", server.url("/mini.zip")])
    assert args.func(args) in (None, 0)
    assert capsys.readouterr().out.strip() == str(tmp_path / "mini")
    assert (tmp_path / "mini" / "trainA" / "0.jpg").read_bytes() == b"x"
