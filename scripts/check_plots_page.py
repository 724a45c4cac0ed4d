"""Render `dvc plots show` in headless Chromium and check that every image and chart is there.

    python scripts/check_plots_page.py [--out plots_page]

Needs Chromium (`apt-get install chromium`) and npm. DVC's page loads Vega from a CDN,
which a machine without internet cannot reach, so the script installs vega, vega-lite
and vega-embed from the npm registry into `<out>/js/`, renders the page with a template
that loads them from there, and reads the DOM after the scripts ran. It checks:
every image plot is an <img> whose file exists and decodes, drawn once, and every Vega
plot rendered a chart. Exits non-zero, with the reason, when anything is missing.
"""

from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
from pathlib import Path

from PIL import Image

VEGA = ["vega@5", "vega-lite@5", "vega-embed@6"]
TEMPLATE = """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>fgbg plots</title>
<script src="js/node_modules/vega/build/vega.min.js"></script>
<script src="js/node_modules/vega-lite/build/vega-lite.min.js"></script>
<script src="js/node_modules/vega-embed/build/vega-embed.min.js"></script>
</head><body>
{plot_divs}
</body></html>
"""


def run(cmd: list[str], **kw) -> str:
    r = subprocess.run(cmd, capture_output=True, text=True, **kw)
    if r.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{r.stdout[-2000:]}\n{r.stderr[-2000:]}")
    return r.stdout


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="plots_page", help="folder for the page, the scripts and the screenshot")
    args = ap.parse_args()
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if not chromium:
        sys.exit("no chromium on PATH; install it with `apt-get install chromium`")
    out = Path(args.out).resolve()
    js = out / "js"
    if not (js / "node_modules" / "vega-embed").is_dir():
        js.mkdir(parents=True, exist_ok=True)
        run(["npm", "install", "--silent", "--no-audit", "--no-fund", "--prefix", str(js), *VEGA])
    (out / "template.html").write_text(TEMPLATE)
    run(["dvc", "plots", "show", "-o", str(out), "--html-template", str(out / "template.html")])
    page = out / "index.html"
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={out / 'profile'}", "--allow-file-access-from-files", "--virtual-time-budget=15000"]
    dom = run([chromium, *flags, "--dump-dom", page.as_uri()], timeout=120)
    run([chromium, *flags, "--window-size=1400,4000", f"--screenshot={out / 'page.png'}", page.as_uri()], timeout=120)
    problems, summary = page_problems(dom, page.read_text(), out)
    print(f"{page}: {summary}; screenshot {out / 'page.png'}")
    if problems:
        sys.exit("\n".join(problems))


def page_problems(dom: str, html: str, out: Path) -> tuple[list[str], str]:
    """What is missing or doubled on the page (`dom` after the scripts ran, `html` as written), and
    a summary line. Each image counts once; one drawn twice is a problem (declared twice in dvc.yaml)."""
    sources = re.findall(r'<img[^>]+src="([^"]+)"', dom)
    images = sorted(set(sources))
    vega_divs = len(re.findall(r'vegaEmbed\(', html))
    charts = len(re.findall(r'class="marks"', dom))
    problems = [f"image {src} is drawn {sources.count(src)} times; declare it once in dvc.yaml"
                for src in images if sources.count(src) > 1]
    if not images:
        problems.append("no <img> on the page")
    for src in images:
        path = (out / src).resolve() if not src.startswith("data:") else None
        if path is not None:
            try:
                Image.open(path).verify()
            except Exception as e:  # noqa: BLE001 - any failure to open is the finding
                problems.append(f"image {src} does not load ({e})")
    if vega_divs == 0:
        problems.append("no Vega plots in the page")
    if charts < vega_divs:
        problems.append(f"{vega_divs} Vega plots in the page but {charts} rendered charts in the DOM")
    return problems, f"{len(images)} images, {charts} of {vega_divs} Vega charts rendered"


if __name__ == "__main__":
    main()
