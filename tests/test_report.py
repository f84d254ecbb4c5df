"""The report of a real (tiny, interrupted) reproduction: the header from the results found, the same report
from any working directory, and the page opened in headless Chromium (every image loads, every table has
its rows, no link leaves the report folder, a full-page screenshot next to the report)."""

import argparse
import json
import shutil
import subprocess
from pathlib import Path

import pytest
import torch

from repro import reproduce as R
from repro.reproduce import plan as P
from repro.cli import main
from repro.data.synth_city import generate
from repro.eval.fcn import fcn8s, save_segmenter
from repro.rows import ROWS

ROW = {r.key: r for r in ROWS}
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def reproduction(tmp_path_factory):
    """Table 4 with CycleGAN and GAN alone at 2 seeds, made with a relative --out, interrupted before GAN
    alone's seed 1 (4 iterations per run on a 6-frame synthetic city)."""
    root = tmp_path_factory.mktemp("report")
    city = generate(root / "cs", n_train=4, n_val=2, size=(64, 32), progress=False)
    seg = root / "seg.pt"
    torch.manual_seed(0)
    save_segmenter(fcn8s(width=1 / 32).eval(), seg, source="test")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    patch = pytest.MonkeyPatch()
    try:
        patch.chdir(root)
        patch.setattr(P, "rows_for", lambda target: [ROW["cyclegan"], ROW["gan_alone"]])
        setup = R.smoke_setup(argparse.Namespace(out=Path("out"), cityscapes=city, data=None, segmenter=seg,
                                                 device="cpu"), progress=False)
        real_run_row = R.run_row

        def run_row(row, seed, *args, **kwargs):
            if (row.key, seed) == ("gan_alone", 1):
                raise KeyboardInterrupt  # Ctrl-C before the last run
            return real_run_row(row, seed, *args, **kwargs)

        patch.setattr(R, "run_row", run_row)
        with pytest.raises(KeyboardInterrupt):
            R.reproduce("table4", setup, seeds=2, iters_per_epoch=1, progress=False)
    finally:
        patch.undo()
        torch.set_num_threads(threads)
    return root / "out"


def test_reproduce_json_paths_are_relative_to_the_folder(reproduction):
    plan = json.loads((reproduction / "reproduce.json").read_text())
    assert plan["data"] == "data"  # inside OUT
    assert plan["segmenter"] == str((reproduction.parent / "seg.pt").resolve())  # outside: absolute


def test_header_of_an_interrupted_reproduction(reproduction, capsys):
    assert main(["report", str(reproduction)]) == 0
    text = (reproduction / "report.md").read_text()
    assert "- Rows with results: 2 of 5 implemented rows planned" in text
    assert "- Seeds found: 1 to 2 per row: cyclegan 2, gan_alone 1; 2 planned; fewer than planned: gan_alone" in text
    assert "- Device: cpu" in text and "- Iterations per epoch: 1 (overridden with --iters-per-epoch: a reduced run)" in text
    assert "band verdicts read `no range`" in text  # no ranges were measured for 1 iteration per epoch


def test_same_report_from_any_working_directory(reproduction, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(reproduction.parent)
    assert main(["report", "out"]) == 0
    first = (reproduction / "report.md").read_text()
    first_html = (reproduction / "report.html").read_text()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    assert main(["report", str(reproduction)]) == 0
    assert (reproduction / "report.md").read_text() == first
    assert (reproduction / "report.html").read_text() == first_html
    for key in ("cyclegan", "gan_alone"):  # the example grids are found from anywhere
        for direction in ("labels2photo", "photo2labels"):
            assert f'src="figures/{key}_{direction}.png"' in first_html
            assert (reproduction / "figures" / f"{key}_{direction}.png").is_file()
    assert "Comparable to the paper:" in first and "not calibrated" not in first
    assert str(reproduction.parent) not in first and str(reproduction.parent) not in first_html


CHECK_SCRIPT = """
<script>
window.addEventListener("load", () => {
  const folder = location.href.slice(0, location.href.lastIndexOf("/") + 1);
  const out = {
    images: [...document.images].map(i => ({src: i.getAttribute("src"), width: i.naturalWidth, complete: i.complete})),
    tables: [...document.querySelectorAll("table")].map(t => t.tBodies.length ? t.tBodies[0].rows.length : 0),
    links: [...document.querySelectorAll("a[href], img[src]")].map(e => e.href || e.src),
    ids: [...document.querySelectorAll("[id]")].map(e => e.id),
    height: document.documentElement.scrollHeight,
    folder: folder,
  };
  const pre = document.createElement("pre");
  pre.id = "browser-check";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
});
</script>
"""


def chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def headless(browser: str, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars",
                           "--allow-file-access-from-files", *args], capture_output=True, text=True, timeout=120)


def test_report_in_a_real_browser(reproduction, capsys):
    browser = chromium()
    if browser is None:
        pytest.skip("no Chromium on this machine: install Debian's `chromium` (apt-get install -y chromium; "
                    ".ci/run does) to run the browser test")
    assert main(["report", str(reproduction)]) == 0
    page = reproduction / "report.html"
    probe = reproduction / ".browser-check.html"  # the report plus a script that reports what the browser saw
    probe.write_text(page.read_text().replace("</body>", CHECK_SCRIPT + "</body>"))
    done = headless(browser, "--virtual-time-budget=10000", "--dump-dom", probe.as_uri())
    probe.unlink()
    dom = done.stdout
    assert 'id="browser-check"' in dom, done.stderr[-2000:]
    import html as htmllib

    seen = json.loads(htmllib.unescape(dom.split('<pre id="browser-check">')[1].split("</pre>")[0]))
    assert len(seen["images"]) >= 8  # 2 rows x (2 example grids + IoU + losses)
    for image in seen["images"]:
        assert image["complete"] and image["width"] > 0, image
    assert len(seen["tables"]) >= 5 and all(n > 0 for n in seen["tables"]), seen["tables"]
    for link in seen["links"]:
        assert link.startswith(seen["folder"]), f"{link} points outside the report folder"
        if "#" in link:
            assert link.split("#", 1)[1] in seen["ids"], f"{link}: no such anchor"
    shot = reproduction / "report.png"
    done = headless(browser, f"--window-size=1400,{min(seen['height'] + 20, 16000)}", f"--screenshot={shot}",
                    page.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000, done.stderr[-2000:]
    from PIL import Image

    with Image.open(shot) as image:
        assert image.size[0] == 1400 and image.size[1] > 2000
