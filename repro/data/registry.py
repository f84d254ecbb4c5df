"""The table of downloadable datasets (registry.tsv beside this file), read into plain dataclasses.

The registry is data, not code: adding a dataset is one line in the TSV. Names are unique; the
pix2pix archives are prefixed `pix2pix_` because facades, maps and cityscapes exist in both kinds.
"""

import csv
import difflib
from dataclasses import dataclass
from pathlib import Path

from repro import ReproError

REGISTRY_TSV = Path(__file__).with_name("registry.tsv")


@dataclass(frozen=True)
class Entry:
    name: str  # what the user types, and the dataset folder's name under --root
    kind: str  # "cyclegan" (zip, trainA/trainB/testA/testB) or "pix2pix" (tar.gz, side-by-side pairs)
    archive: str  # file name on the server, e.g. facades.zip
    url: str  # current host ("" when no longer served)
    legacy_url: str  # older host, tried when the current one fails ("" if none)
    size_bytes: int | None  # published size, None if never published
    sha256: str | None  # published hash, None if never published
    served: bool  # False: retired (licence), only importable with --from

    @property
    def urls(self) -> list[str]:
        return [u for u in (self.url, self.legacy_url) if u]


def load(path: Path = REGISTRY_TSV) -> dict[str, Entry]:
    """name -> Entry, from a registry TSV (comment lines start with #)."""
    with open(path, newline="") as f:
        rows = csv.DictReader((line for line in f if not line.startswith("#")), delimiter="\t")
        entries = {}
        for row in rows:
            entry = Entry(
                name=row["name"],
                kind=row["kind"],
                archive=row["archive"],
                url=row["url"],
                legacy_url=row["legacy_url"],
                size_bytes=int(row["size_bytes"]) if row["size_bytes"] else None,
                sha256=row["sha256"].lower() or None,
                served=row["served"] == "yes",
            )
            if entry.name in entries:
                raise ValueError(f"{path}: dataset {entry.name} is listed twice")
            entries[entry.name] = entry
    return entries


def lookup(name: str, registry: dict[str, Entry] | None = None) -> Entry:
    """The entry called `name`, or an error that lists the close matches."""
    registry = load() if registry is None else registry
    if name in registry:
        return registry[name]
    close = difflib.get_close_matches(name, registry, n=3)
    hint = f" Did you mean {', '.join(close)}?" if close else ""
    raise ReproError(
        f"unknown dataset {name!r}.{hint} Known datasets: {', '.join(sorted(registry))} "
        f"(`repro data get --list` shows their sizes and hosts)."
    )
