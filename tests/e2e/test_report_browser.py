"""The evaluate step's HTML report, opened in headless Chromium: it renders its tables, charts and
thumbnails and summary strips without console errors (Debian's `chromium` package; `.ci/run` installs it)."""

import base64
import re
import shutil
import subprocess

import cv2
import numpy as np
import pytest

from tests.conftest import RUN_DATE

pytestmark = pytest.mark.slow

FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1200,3000"]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is not installed: `apt-get install chromium` (.ci/run does this)")
    return exe


def test_report_renders_in_headless_chromium(pipeline_run, tmp_path):
    cfg, _ = pipeline_run
    page = cfg.partition(RUN_DATE, "evaluate") / "report.html"
    assert page.exists()
    exe = _chromium()
    shot = tmp_path / "report.png"
    run = subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile'}", f"--screenshot={shot}",
         "--enable-logging=stderr", "--v=0", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    console = [line for line in run.stderr.splitlines() if "CONSOLE" in line]
    assert not [c for c in console if re.search(r"error|uncaught", c, re.I)], console
    image = cv2.imread(str(shot))
    assert image is not None and image.shape[:2] == (3000, 1200)
    assert image.std() > 20  # not a blank page

    dom = subprocess.run(
        [exe, *FLAGS, f"--user-data-dir={tmp_path / 'profile2'}", "--dump-dom", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert dom.count("<table") >= 2 and dom.count("<svg") >= 6
    assert str(cfg.source) in dom and "Example users" in dom
    thumbs = re.findall(r'src="data:image/jpeg;base64,([^"]+)"', dom)
    assert thumbs, "no video thumbnails rendered"
    # the demo's videos all have media: each example video is shown by its summary strip, whose
    # frames side by side make it wider than tall (a single thumbnail is 16:9 at most)
    strips = re.findall(r'<img class="summary" src="data:image/jpeg;base64,([^"]+)"', dom)
    assert strips, "no summary strips rendered"
    shapes = [cv2.imdecode(np.frombuffer(base64.b64decode(s), np.uint8), cv2.IMREAD_COLOR).shape for s in strips]
    assert any(w > 2 * h for h, w, _ in shapes), shapes
    for data in thumbs:
        assert cv2.imdecode(np.frombuffer(base64.b64decode(data), np.uint8), cv2.IMREAD_COLOR) is not None
