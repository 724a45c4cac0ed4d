"""`fgbg report`: the README's Results section, generated from the metric files.

The section between the two markers below is replaced; everything else in the README is
left as it is. `make repro` runs it after `dvc repro`, and a test fails when the README
does not match the committed metrics, so the figures are never typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from fgbg.core.heads import HEADS, HIGHER_IS_BETTER, KIND_METRICS
from fgbg.core.imageio import atomic_write_bytes

START = "<!-- results:start: written by `fgbg report` from metrics/; do not edit by hand -->"
END = "<!-- results:end -->"


def results_markdown(eval_path: str | Path, by_source_path: str | Path) -> str:
    ev = json.loads(Path(eval_path).read_text())
    by = json.loads(Path(by_source_path).read_text())
    lines = [
        f"{ev['split'].capitalize()} split of the default run: {ev['samples']} samples, {ev['unseen']} "
        f"(checkpoint of epoch {ev['checkpoint_epoch'] + 1}, chosen on the val split). Each figure stands beside "
        "its trivial baseline, scored on the same samples:",
        f"mask {ev['baseline']['mask_rule']}; depth: {ev['baseline']['depth_rule']}.",
        "",
        "| head | metric | model | baseline | better |",
        "|---|---|---|---|---|",
    ]
    for head in (h for h in HEADS if h in ev):  # each head the model has, in the catalogue's order
        for k in (k for k in KIND_METRICS[HEADS[head]] if k in ev[head]):
            base = ev["baseline"].get(head, {}).get(k)
            better = "higher" if k in HIGHER_IS_BETTER else "lower"
            lines.append(f"| {head} | `{k}` | {ev[head][k]:.4f} | {'–' if base is None else f'{base:.4f}'} | {better} |")
    files = ev.get("test_files")
    if files:
        lines += ["", f"The same test samples as a user's files ({files['files']}): mask IoU {files['mask']['iou']:.4f} "
                  f"(baseline {files['baseline']['mask']['iou']:.4f}), depth RMSE {files['depth']['rmse']:.4f} "
                  f"(baseline {files['baseline']['depth']['rmse']:.4f})."]
    lines += ["", "Per foreground class:", "", "| class | samples | mask IoU | depth RMSE |", "|---|---|---|---|"]
    for name, m in by["fg_class"].items():
        lines.append(f"| {name} | {m['samples']} | {m['mask']['iou']:.4f} | {m['depth']['rmse']:.4f} |")
    lines += ["", f"![{ev['split']} samples](plots/samples.png)", "",
              f"The 10 worst {ev['split']} samples, ranked by (1 - IoU) + RMSE:", "", "![worst samples](plots/worst.png)"]
    return "\n".join(lines)


def update_readme(readme: str | Path, eval_path: str | Path, by_source_path: str | Path) -> bool:
    """Rewrite the results section of `readme`; returns whether it changed."""
    readme = Path(readme)
    text = readme.read_text()
    if START not in text or END not in text:
        raise ValueError(f"{readme}: no results markers; add the lines {START!r} and {END!r} where the section goes")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    new = f"{head}{START}\n{results_markdown(eval_path, by_source_path)}\n{END}{tail}"
    if new != text:
        atomic_write_bytes(readme, new.encode())
    return new != text
