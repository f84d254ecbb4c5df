"""`repro data get NAME`: download (or import) one registry archive, verify it, extract it safely.

The order of operations is what makes this safe to interrupt at any point:
  1. the archive streams into ROOT/.downloads/ARCHIVE.part, its source (URL, size, ETag, Last-Modified) in
     ARCHIVE.part.json; a rerun resumes it with an HTTP Range request only from the same source, else starts over;
  2. only a complete file is renamed to ROOT/.downloads/ARCHIVE;
  3. its size and sha256 are checked against the registry before anything is extracted
     (a mismatched file is renamed aside, never extracted);
  4. every member path is checked (no absolute paths, no `..`, no links leaving the folder);
  5. extraction goes into a hidden temporary folder that is renamed to ROOT/NAME only when complete,
     with a small .repro-download.json (source, sha256, file count) that later calls check.
So ROOT/NAME either does not exist or is a complete dataset, and a second call returns at once.
"""

import errno
import json
import os
import re
import shutil
import socket
import stat
import sys
import tarfile
import time
import zipfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse

import requests
from tqdm import tqdm

from repro import ReproError, __version__
from repro.data.registry import Entry, lookup
from repro.io import partial_folder, sha256_file, write_json

DEFAULT_ROOT = Path("datasets")
MARKER = ".repro-download.json"
CHUNK = 1 << 16
TIMEOUT = (10.0, 60.0)  # seconds: (connect, read between bytes)
RETRY_SECONDS = 1800.0  # give up when attempts have kept failing for this long, whatever bytes they gained


def get(
    name: str,
    root: str | Path = DEFAULT_ROOT,
    url: str | None = None,
    from_file: str | Path | None = None,
    *,
    sha256: str | None = None,
    registry: dict[str, Entry] | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    keep_archive: bool = False,
    progress: bool = True,
) -> Path:
    """Make ROOT/NAME hold the extracted dataset and return that folder.

    url replaces the registry's hosts (a mirror, or a local server in tests); from_file imports an
    archive obtained elsewhere instead of downloading; sha256 replaces the registry's published hash.
    """
    entry = lookup(name, registry)
    expected = _Expected(sha256.lower(), None) if sha256 else _Expected(entry.sha256, entry.size_bytes)
    root = Path(root)
    target = root / entry.name
    if target.exists():
        return _check_existing(target, entry, expected)
    root.mkdir(parents=True, exist_ok=True)

    if from_file is not None:
        archive = Path(from_file)
        if not archive.is_file():
            raise ReproError(f"--from {archive}: no such file. Give the path of the downloaded {entry.archive}.")
        digest = _verify(archive, entry, expected, keep_aside=False, progress=progress)
        source = str(archive.resolve())
    else:
        urls = [url] if url else entry.urls
        if not urls:
            raise ReproError(_retired_message(entry))
        archive = root / ".downloads" / entry.archive
        if not archive.exists():
            _download(urls, archive, entry, retries=retries, backoff=backoff, progress=progress)
        digest = _verify(archive, entry, expected, keep_aside=True, progress=progress)
        source = urls[0]

    marker = {
        "name": entry.name,
        "kind": entry.kind,
        "archive": entry.archive,
        "source": source,
        "sha256": digest,
        "verified": expected.sha256 is not None,
        "expected_sha256": expected.sha256,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "repro": __version__,
    }
    _extract(archive, target, marker, progress=progress)
    if from_file is None and not keep_archive:
        archive.unlink()
    return target


@dataclass(frozen=True)
class _Expected:
    sha256: str | None
    size_bytes: int | None


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _retired_message(entry: Entry) -> str:
    if entry.name == "cityscapes":  # pix2pix_cityscapes is side-by-side pairs, which `repro data cityscapes` does not build
        return (
            f"{entry.archive} ({entry.name}) is no longer served by Berkeley: the Cityscapes licence forbids "
            f"redistributing it. If you already hold a copy, import and verify it with "
            f"`repro data get {entry.name} --from PATH/{entry.archive}`. Otherwise download gtFine_trainvaltest.zip "
            f"and leftImg8bit_trainvaltest.zip from https://www.cityscapes-dataset.com (free account; "
            f"`repro data cityscapes --download` fetches them for you) and build the same layout, with the "
            f"Cityscapes names kept, by `repro data cityscapes --gtfine GTFINE --leftimg LEFTIMG --out DIR`."
        )
    return (
        f"{entry.name} is no longer served by any known host. Import a copy you hold with "
        f"`repro data get {entry.name} --from FILE`, or give a mirror with --url."
    )


# ---------------------------------------------------------------- download with resume and retries


class DownloadFailed(Exception):
    """One host failed for good (404, refused, retries exhausted); the next mirror may still work."""

    def __init__(self, message: str, not_found: bool = False, mid_file: bool = False):
        super().__init__(message)
        self.not_found, self.mid_file = not_found, mid_file  # mid_file: the host sent part of the file, then failed


class _Retry(Exception):
    """A transient failure: connection cut, short body, server error. Resume after a pause."""

    def __init__(self, message: str, mid_file: bool = False):
        super().__init__(message)
        self.mid_file = mid_file


def _download(urls: list[str], archive: Path, entry: Entry, *, retries: int, backoff: float, progress: bool) -> None:
    archive.parent.mkdir(parents=True, exist_ok=True)
    part = archive.with_name(archive.name + ".part")
    failures = []
    for url in urls:
        try:
            _download_one(url, part, retries=retries, backoff=backoff, progress=progress)
            part.replace(archive)
            return
        except DownloadFailed as err:
            failures.append((url, err))
            if len(urls) > 1:
                _say(f"{url} failed ({err}); trying the next host.")
    missing = [f for f in failures if f[1].not_found]
    why = []  # one clause per kind of failure seen
    if missing:
        why.append("a 404 means the host no longer serves this file under that name")
    if any(f[1].mid_file for f in failures):
        why.append("a host that stopped sending or cut the connection in the middle of the file is overloaded or "
                   "throttling: the download is incomplete")
    if any(not f[1].not_found and not f[1].mid_file for f in failures):
        why.append("a connection error means this machine is offline, behind a proxy (set HTTPS_PROXY), or the host is down")
    kept = (
        f" The {part.stat().st_size:,} bytes already received are kept in {part}; the next run resumes from them."
        if part.exists() and part.stat().st_size
        else ""
    )
    raise ReproError(
        f"could not download {entry.archive}: {'; '.join(f'{u}: {e}' for u, e in failures)}. "
        f"{'; '.join(why)[:1].upper()}{'; '.join(why)[1:]}. Retry later, give a working mirror with --url URL, or fetch {entry.archive} "
        f"by other means and import it with `repro data get {entry.name} --from FILE`.{kept}"
    )


def download_file(url: str, dest: Path, *, retries: int = 4, backoff: float = 1.0, progress: bool = True,
                  folder_flag: str = "folder") -> Path:
    """One file from one URL (no registry, no hash): resumable through DEST.part, with retries and the
    disk-space check (whose message names `folder_flag`, the caller's way to choose another folder); raises
    DownloadFailed when the host fails for good (404, offline, retries spent)."""
    dest = Path(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    _download_one(url, part, retries=retries, backoff=backoff, progress=progress, folder_flag=folder_flag)
    part.replace(dest)
    return dest


def _download_one(url: str, part: Path, *, retries: int, backoff: float, progress: bool,
                  folder_flag: str = "--root") -> None:
    """Stream url into part, resuming what part already holds (when it came from url); returns when part is
    complete. A failure that gained bytes does not count against `retries`, unless the host stalled (sent
    nothing for TIMEOUT's read seconds); RETRY_SECONDS caps the time spent failing."""
    attempt, first_failure = 0, None
    while True:
        have = _resumable(url, part)
        try:
            _fetch(url, part, have, progress, folder_flag)
            source_file(part).unlink(missing_ok=True)
            return
        except (requests.exceptions.InvalidURL, requests.exceptions.MissingSchema, requests.exceptions.InvalidSchema) as err:
            raise ReproError(f"{url} is not a usable URL ({err}); give a full http(s):// address.") from err
        except (_Retry, requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as err:
            if unresolvable(err):  # no DNS answer: offline or a wrong host name; waiting does not change that
                raise DownloadFailed(_reason(err)) from err
            gained = (part.stat().st_size if part.exists() else 0) > have
            attempt = 1 if gained and not _stalled(err) else attempt + 1  # count failures that made no progress, and stalls
            first_failure = first_failure or time.monotonic()
            failing = time.monotonic() - first_failure
            if attempt > retries or failing > RETRY_SECONDS:
                spent = f" (failing for {failing:.0f} s, {RETRY_SECONDS:.0f} s allowed)" if failing > RETRY_SECONDS else ""
                mid_file = (_stalled(err) or isinstance(err, requests.exceptions.ChunkedEncodingError)
                            or getattr(err, "mid_file", False) or part.exists() and part.stat().st_size > 0)
                raise DownloadFailed(_reason(err) + spent, mid_file=mid_file) from err
            pause = backoff * 2 ** (attempt - 1)
            _say(f"download failed ({_reason(err)}); trying again in {pause:.0f} s (retry {attempt} of {retries}).")
            time.sleep(pause)


def unresolvable(err: BaseException) -> bool:
    """Whether a connection error is a failed host-name lookup (socket.gaierror somewhere in its chain)."""
    seen = set()
    todo = [err]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, socket.gaierror) or type(e).__name__ == "NameResolutionError":
            return True
        todo += [e.__cause__, e.__context__, getattr(e, "reason", None)]
        todo += [a for a in getattr(e, "args", ()) if isinstance(a, BaseException)]
    return False


def source_file(part: Path) -> Path:
    """Where a partial download records its source: PART.json (URL, total size, ETag, Last-Modified)."""
    return part.with_name(part.name + ".json")


def _resumable(url: str, part: Path) -> int:
    """The bytes of `part` a Range request may continue: none when part came from another URL or its source was
    not recorded (resuming would splice two files); such a partial is discarded, saying so."""
    if not part.exists():
        source_file(part).unlink(missing_ok=True)
        return 0
    have = part.stat().st_size
    source = _read_source(part)
    if have and source.get("url") != url:
        came = f"from {source['url']}" if source.get("url") else "from an unrecorded source"
        _say(f"discarding {part} ({have:,} bytes {came}, not {url}); starting over.")
        part.unlink()
        source_file(part).unlink(missing_ok=True)
        return 0
    return have


def _read_source(part: Path) -> dict:
    try:
        source = json.loads(source_file(part).read_text())
    except (OSError, ValueError):
        return {}
    return source if isinstance(source, dict) else {}


def _stalled(err: Exception) -> bool:
    """requests reports a read timeout in the middle of a streamed body as a ConnectionError."""
    import urllib3

    return isinstance(err, requests.ConnectionError) and any(
        isinstance(a, urllib3.exceptions.ReadTimeoutError) for a in err.args)


def _reason(err: Exception) -> str:
    if isinstance(err, requests.ConnectionError) and unresolvable(err):
        host = urlparse(err.request.url).netloc if err.request is not None else "the host"
        return (f"could not resolve the host name {host} (no DNS answer: this machine looks offline, or the "
                f"name is wrong); not retried")
    if isinstance(err, requests.exceptions.ChunkedEncodingError):
        return "the connection broke in the middle of the file"
    if _stalled(err):
        return f"the host stopped sending: nothing arrived for {TIMEOUT[1]:g} s in the middle of the file"
    if isinstance(err, requests.Timeout):
        return "the host stopped answering (timeout)"
    if isinstance(err, requests.ConnectionError):
        host = urlparse(err.request.url).netloc if err.request is not None else "the host"
        return f"could not connect to {host}"
    return str(err) or type(err).__name__


def _fetch(url: str, part: Path, have: int, progress: bool, folder_flag: str = "--root") -> None:
    source = _read_source(part) if have else {}
    headers = {"Range": f"bytes={have}-"} if have else {}
    if have and (source.get("etag") or source.get("last_modified")):  # a changed file comes back whole (200)
        headers["If-Range"] = source.get("etag") or source["last_modified"]
    with requests.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
        status = response.status_code
        if status == 416 and have:  # we already hold at least the whole file
            total = _content_range_total(response.headers.get("Content-Range", ""))
            if total == have:
                return
            part.unlink()
            raise _Retry("the partial file is longer than the file on the server; starting over")
        if status >= 500:
            raise _Retry(f"HTTP {status} {response.reason}")
        if status >= 400:
            raise DownloadFailed(f"HTTP {status} {response.reason}", not_found=status in (404, 410))
        etag, modified = response.headers.get("ETag"), response.headers.get("Last-Modified")
        if status == 206:
            start = _content_range_start(response.headers.get("Content-Range", ""))
            if start != have:
                part.unlink()
                raise _Retry("the server resumed at the wrong offset; starting over")
            total = _content_range_total(response.headers.get("Content-Range", ""))
            changed = [what for what, now, then in (("size", total, source.get("total")), ("ETag", etag, source.get("etag")),
                                                    ("Last-Modified", modified, source.get("last_modified")))
                       if now is not None and then is not None and now != then]
            if changed:  # another file now: never splice it onto the partial
                part.unlink()
                raise _Retry(f"the file on the server changed since the partial download ({', '.join(changed)}); "
                             f"starting over")
        else:  # 200: the server ignored Range (or there was none, or the file changed): start from zero
            start = 0
            length = response.headers.get("Content-Length")
            total = int(length) if length is not None else None
            write_json(source_file(part), {"url": url, "total": total, "etag": etag, "last_modified": modified})
        if total is not None:
            _check_space(part.parent, total - start, f"downloading {part.name}", folder_flag)
        with open(part, "ab" if start else "wb") as f, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress, file=sys.stderr,
        ) as bar:
            for chunk in response.iter_content(CHUNK):
                _write(f, chunk, part, folder_flag)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise _Retry(f"connection closed after {size:,} of {total:,} bytes", mid_file=True)


def _content_range_start(value: str) -> int | None:
    match = re.match(r"bytes (\d+)-\d+/(\d+|\*)", value)
    return int(match.group(1)) if match else None


def _content_range_total(value: str) -> int | None:
    match = re.search(r"/(\d+)$", value)
    return int(match.group(1)) if match else None


def _write(f, chunk: bytes, path: Path, folder_flag: str = "--root") -> None:
    try:
        f.write(chunk)
    except OSError as err:
        if err.errno == errno.ENOSPC:
            raise ReproError(_disk_full_message(path.parent, f"writing {path}", folder_flag=folder_flag)) from err
        raise


def _check_space(folder: Path, needed: int, doing: str, folder_flag: str = "--root") -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise ReproError(_disk_full_message(folder, doing, needed=needed, free=free, folder_flag=folder_flag))


def _disk_full_message(folder: Path, doing: str, needed: int | None = None, free: int | None = None,
                       folder_flag: str = "--root") -> str:
    amounts = f" {needed / 2**20:,.0f} MiB are needed and {free / 2**20:,.0f} MiB are free." if needed else ""
    return (
        f"the disk holding {folder} is full ({doing}).{amounts} Free some space there or choose another {folder_flag}, "
        f"then run the same command again: a partial download is kept and resumed, and nothing half-extracted "
        f"is left behind."
    )


# ---------------------------------------------------------------- verification


def _verify(archive: Path, entry: Entry, expected: _Expected, *, keep_aside: bool, progress: bool) -> str:
    """The archive's sha256, after checking it against the published size and hash (if any)."""
    size = archive.stat().st_size
    if expected.size_bytes is not None and size != expected.size_bytes:  # no need to hash a file of the wrong size
        _mismatch(archive, entry, keep_aside,
                  f"is {size:,} bytes, but the published file is {expected.size_bytes:,} bytes (a truncated or different file)")
    digest = sha256_file(archive, progress)
    if expected.sha256 is None:
        _say(
            f"NOTE: no sha256 has been published for {entry.name}, so {archive} CANNOT BE VERIFIED. "
            f"Its sha256 is {digest}; it is recorded in {entry.name}/{MARKER} so later runs notice a change."
        )
    elif digest != expected.sha256:
        _mismatch(archive, entry, keep_aside, f"has sha256 {digest}, but the published sha256 is {expected.sha256}")
    return digest


def _mismatch(archive: Path, entry: Entry, keep_aside: bool, what: str):
    """Refuse an archive that is not the published one; a downloaded one is renamed aside, never extracted."""
    if keep_aside:
        aside = archive.with_name(archive.name + ".sha256-mismatch")
        archive.replace(aside)
        raise ReproError(
            f"the downloaded {entry.archive} {what}. It was NOT extracted and is kept aside as {aside} for inspection. "
            f"Delete it and run the same command to download again; if the mismatch persists the host now serves a "
            f"different file: pass --sha256 HASH only if you trust that file, or import a verified copy with --from FILE."
        )
    raise ReproError(
        f"{archive} {what}. It was NOT extracted. It is not the published {entry.archive}: download it again or "
        f"import the right file; pass --sha256 HASH only if you trust this one."
    )


# ---------------------------------------------------------------- safe extraction


@dataclass(frozen=True)
class _Member:
    name: str
    size: int
    link: str | None  # where a symbolic/hard link points, else None
    hard: bool = False  # a hard link's target is relative to the archive root, a symlink's to its folder


def _members(archive: Path) -> tuple[str, list[_Member]]:
    """('zip' | 'tar', members), or an error for a file that is no (complete) archive."""
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zf:
                members = []
                for info in zf.infolist():
                    is_link = stat.S_ISLNK(info.external_attr >> 16)
                    link = zf.read(info).decode("utf-8", "replace") if is_link else None
                    members.append(_Member(info.filename, info.file_size, link))
                return "zip", members
        if tarfile.is_tarfile(archive):
            with tarfile.open(archive) as tf:
                members = []
                for m in tf.getmembers():
                    if not (m.isfile() or m.isdir() or m.issym() or m.islnk()):
                        _refuse(archive, m.name, "is a device or other special file")
                    members.append(_Member(m.name, m.size, m.linkname if (m.issym() or m.islnk()) else None, m.islnk()))
                return "tar", members
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as err:
        raise ReproError(_damaged_message(archive, err)) from err
    raise ReproError(_damaged_message(archive, "neither a zip nor a tar archive"))


def _damaged_message(archive: Path, err) -> str:
    return (
        f"{archive} cannot be read as an archive ({err}); it is probably truncated or damaged, and nothing was "
        f"extracted. Delete it and run the command again to download a fresh copy."
    )


def _refuse(archive: Path, member: str, why: str):
    raise ReproError(
        f"{archive} contains the member {member!r}, which {why}. Nothing was extracted: a genuine dataset archive "
        f"never does this, so the file has been tampered with or is not what it claims. Delete it and download "
        f"it again from the registry's host."
    )


def _parts(name: str) -> list[str]:
    return [p for p in re.split(r"[\\/]+", name) if p not in ("", ".")]


def _check_members(archive: Path, members: list[_Member]) -> None:
    """Refuse absolute paths, `..`, and links pointing outside the extraction folder."""
    for m in members:
        if m.name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", m.name):
            _refuse(archive, m.name, "has an absolute path")
        if ".." in _parts(m.name):
            _refuse(archive, m.name, "climbs out of the dataset folder with '..'")
        if m.link is not None:
            if m.link.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", m.link):
                _refuse(archive, m.name, f"is a link to the absolute path {m.link!r}")
            resolved = []
            start = [] if m.hard else _parts(str(PurePosixPath(m.name).parent))
            for p in start + _parts(m.link):
                if p == "..":
                    if not resolved:
                        _refuse(archive, m.name, f"is a link to {m.link!r}, outside the dataset folder")
                    resolved.pop()
                else:
                    resolved.append(p)


def _extract(archive: Path, target: Path, marker: dict, progress: bool) -> None:
    kind, members = _members(archive)
    _check_members(archive, members)
    _check_space(target.parent, sum(m.size for m in members), f"extracting {archive.name}")
    with partial_folder(target) as tmp:
        bar = tqdm(total=len(members), unit="file", desc=f"extract {archive.name}", disable=not progress, file=sys.stderr)
        with bar:
            try:
                if kind == "zip":
                    with zipfile.ZipFile(archive) as zf:
                        for info in zf.infolist():
                            zf.extract(info, tmp)
                            bar.update()
                else:
                    with tarfile.open(archive) as tf:
                        for member in tf:
                            tf.extract(member, tmp, filter="data")
                            bar.update()
            except OSError as err:
                if err.errno == errno.ENOSPC:
                    raise ReproError(_disk_full_message(target.parent, f"extracting {archive.name}")) from err
                raise ReproError(_damaged_message(archive, err)) from err
            except (zipfile.BadZipFile, tarfile.TarError, EOFError) as err:
                raise ReproError(_damaged_message(archive, err)) from err
        top = [p for p in tmp.iterdir()]
        dataset = top[0] if len(top) == 1 and top[0].is_dir() else tmp  # archives hold one NAME/ folder
        files, size = _count(dataset)
        marker = {**marker, "files": files, "bytes": size}
        (dataset / MARKER).write_text(json.dumps(marker, indent=2) + "\n")
        os.replace(dataset, target)
    _say(f"{target}: {files} files ({'sha256 verified' if marker['verified'] else 'UNVERIFIED: no published hash'}).")


def _count(folder: Path) -> tuple[int, int]:
    """(number of files, total bytes) under folder, not counting the marker."""
    files = size = 0
    for dirpath, _, names in os.walk(folder):
        for n in names:
            if n != MARKER or Path(dirpath) != folder:
                files += 1
                size += os.lstat(os.path.join(dirpath, n)).st_size
    return files, size


def _check_existing(target: Path, entry: Entry, expected: _Expected) -> Path:
    """A second call: make sure ROOT/NAME is the complete dataset this registry entry describes."""
    marker_path = target / MARKER
    if not marker_path.is_file():
        raise ReproError(
            f"{target} exists but has no {MARKER}, so it was not made by `repro data get` and may be incomplete. "
            f"If it is a complete copy you made yourself, use it as it is; otherwise delete or move it and run "
            f"the command again."
        )
    try:
        marker = json.loads(marker_path.read_text())
    except ValueError:
        raise ReproError(f"{marker_path} is damaged, so {target} cannot be verified. Delete {target} and run the "
                         f"command again.") from None
    if expected.sha256 is not None and marker.get("sha256") != expected.sha256:
        raise ReproError(
            f"{target} was extracted from an archive with sha256 {marker.get('sha256')}, not the expected "
            f"{expected.sha256}. Delete {target} and run the command again."
        )
    files, size = _count(target)
    if (files, size) != (marker.get("files"), marker.get("bytes")):
        raise ReproError(
            f"{target} is incomplete or was modified: {files} files / {size:,} bytes now, "
            f"{marker.get('files')} files / {marker.get('bytes')} bytes when extracted. "
            f"Delete {target} and run the command again."
        )
    _say(f"{target} is already complete ({files} files, sha256 {str(marker.get('sha256'))[:12]}...); nothing to do.")
    return target
