"""The documentation: every relative link and anchor resolves, the code's pointers into docs/ exist, and no
tracked file points outside the repository (a user's clone has nothing beside it)."""

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", ROOT / "CONTRIBUTING.md", *sorted((ROOT / "docs").glob("*.md"))]
# Pages other branches add; a link to one is checked when the page exists and allowed while it does not.
EXPECTED_PAGES = {"docs/gpu_check.md", "docs/estimates.md", "docs/fid.md", "docs/verdicts.md"}
# Spelled in pieces so that this file does not match itself.
OUTSIDE = ("PAPER" + ".md", "../" + "shared", "shared/" + "reference")

LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
CODE_POINTER = re.compile(r"\b(docs/[\w-]+\.md|CONTRIBUTING\.md)(#[\w-]+)?")


def tracked_files() -> list[Path]:
    """Files git tracks or would track (untracked but not ignored), so a new file is checked before its commit."""
    try:
        out = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"], cwd=ROOT,
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout: the tracked files cannot be listed")
    return [ROOT / name for name in out.split("\0") if name and (ROOT / name).is_file()]


def text_of(path: Path) -> str | None:
    data = path.read_bytes()
    if b"\0" in data[:8192]:
        return None  # binary (the report picture, zips)
    return data.decode("utf-8", errors="replace")


def without_code(markdown: str) -> str:
    """The page without fenced code blocks and inline code, where link syntax is only an example."""
    markdown = re.sub(r"^```.*?^```", "", markdown, flags=re.S | re.M)
    return re.sub(r"`[^`\n]*`", "", markdown)


def slug(heading: str) -> str:
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces to hyphens."""
    heading = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    heading = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return heading.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    found, seen = set(), {}
    for line in re.sub(r"^```.*?^```", "", page.read_text(), flags=re.S | re.M).splitlines():
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if match:
            base = slug(match.group(1))
            n = seen.get(base, 0)
            seen[base] = n + 1
            found.add(base if n == 0 else f"{base}-{n}")
    return found


def broken(target_file: Path, anchor: str | None, root: Path = ROOT) -> str | None:
    """Why a link to `target_file#anchor` does not resolve, or None when it does."""
    name = target_file.resolve().relative_to(root.resolve()).as_posix() if target_file.resolve().is_relative_to(
        root.resolve()) else None
    if name is None:
        return "points outside the repository"
    if not target_file.exists():
        return None if name in EXPECTED_PAGES else "no such file"
    if anchor and target_file.suffix == ".md" and anchor not in anchors(target_file):
        return f"no heading with anchor #{anchor} in {name}"
    return None


def broken_links(page: Path, root: Path = ROOT) -> list[str]:
    problems = []
    for target in LINK.findall(without_code(page.read_text())):
        if re.match(r"[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, anchor = target.partition("#")
        why = broken(page.parent / path if path else page, anchor or None, root)
        if why:
            problems.append(f"{page.relative_to(root)}: ({target}) {why}")
    return problems


def test_the_pages_exist():
    names = {p.relative_to(ROOT).as_posix() for p in PAGES}
    assert {"README.md", "CONTRIBUTING.md", "docs/protocol.md", "docs/fidelity.md", "docs/evaluation.md",
            "docs/baselines.md", "docs/speed.md", "docs/cluster.md"} <= names


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_and_anchor_resolves(page):
    assert broken_links(page) == []


def test_the_link_checker_sees_a_broken_link_and_anchor(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "a.md").write_text("# Title\n\n## Photo -> labels\n\n## Photo -> labels\n")
    page = tmp_path / "README.md"
    page.write_text("[ok](docs/a.md#photo---labels) [ok](docs/a.md#photo---labels-1) ![ok](docs/a.md) "
                    "[gone](docs/missing.md) [bad anchor](docs/a.md#nowhere) [self](#title) "
                    "[web](https://example.org/x#y) `[code](docs/not-checked.md)`\n# Title\n")
    assert broken_links(page, tmp_path) == [
        "README.md: (docs/missing.md) no such file",
        "README.md: (docs/a.md#nowhere) no heading with anchor #nowhere in docs/a.md",
    ]


def test_pointers_into_the_docs_from_code_and_results_resolve():
    problems = []
    for path in tracked_files():
        if path.suffix == ".md" or path.is_relative_to(ROOT / "docs") or path == Path(__file__).resolve():
            continue  # the pages: checked as links above; this file: its examples are meant to be broken
        text = text_of(path)
        if text is None:
            continue
        for name, anchor in set(CODE_POINTER.findall(text)):
            why = broken(ROOT / name, anchor.lstrip("#") or None)
            if why:
                problems.append(f"{path.relative_to(ROOT)}: {name}{anchor} {why}")
    assert problems == []


def test_no_tracked_file_points_outside_the_repository():
    hits = []
    for path in tracked_files():
        text = text_of(path)
        if text is None:
            continue
        for number, line in enumerate(text.splitlines(), 1):
            if any(s in line for s in OUTSIDE):
                hits.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()[:120]}")
    assert hits == []


def test_ci_runs_exactly_the_test_command_readme_gives():
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Tests\n", 1)[1].split("\n## ", 1)[0]
    command = re.search(r"The test command is `([^`]+)`", section).group(1)
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ci[-1] == command == "make test"


def test_readme_is_a_front_page():
    assert (ROOT / "README.md").stat().st_size < 12_000
    picture = ROOT / "docs" / "report.png"
    assert picture.stat().st_size < 300_000 and picture.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
