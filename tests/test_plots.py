"""What `dvc plots show` draws from dvc.yaml: each image once, and an lr axis that reads its values.

A tiny DVC project holds the project's dvc.yaml and templates (.dvc/plots/) beside a few plot
files, and `dvc plots show` renders it as a user's would be.
"""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from tests.conftest import ROOT, load_script

check_plots_page = load_script("check_plots_page")


def dvc(cwd: Path, *args: str) -> str:
    r = subprocess.run([str(Path(sys.executable).parent / "dvc"), *args], cwd=cwd, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    return r.stdout


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    repo = tmp_path_factory.mktemp("plots")
    dvc(repo, "init", "--no-scm", "-q")
    shutil.copy(ROOT / "dvc.yaml", repo)
    shutil.copytree(ROOT / ".dvc" / "plots", repo / ".dvc" / "plots")
    (repo / "plots").mkdir()
    for name in ("samples.png", "worst.png"):
        Image.new("RGB", (4, 4)).save(repo / "plots" / name)
    (repo / "dvclive" / "plots" / "metrics").mkdir(parents=True)
    (repo / "dvclive" / "plots" / "metrics" / "lr.tsv").write_text("step\tlr\n0\t0.003\n1\t0.003\n")
    return repo


def test_each_image_is_drawn_once(project):
    out = project / "page"
    dvc(project, "plots", "show", "-o", str(out))
    html = (out / "index.html").read_text()  # <img> tags are in the page as written, before any script runs
    problems, summary = check_plots_page.page_problems(html, html, out)
    assert [p for p in problems if p.startswith("image")] == [] and summary.startswith("2 images")


def test_the_page_check_refuses_an_image_drawn_twice(tmp_path):
    Image.new("RGB", (4, 4)).save(tmp_path / "a.png")
    dom = '<img src="a.png"><img src="a.png"><div class="marks"></div>'
    problems, summary = check_plots_page.page_problems(dom, "vegaEmbed(", tmp_path)
    assert problems == ["image a.png is drawn 2 times; declare it once in dvc.yaml"] and summary.startswith("1 images")


def test_the_lr_axis_labels_keep_small_values(project):
    """Vega's default format labels a constant lr of 0.003 "0" (its precision comes from the domain's
    zero width). With ~g, rendered by vega 5 by hand: "0.003"; for 0.003 halved twice,
    "0.0005" ... "0.003"."""
    shown = json.loads(dvc(project, "plots", "show", "--json", "-o", str(project / "json")))["data"]["lr"][0]
    y = shown["content"]["encoding"]["y"]
    assert (y["field"], y["axis"]["format"]) == ("lr", "~g")
    assert [row["lr"] for row in shown["content"]["data"]["values"]] == ["0.003", "0.003"]
