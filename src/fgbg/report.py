"""`fgbg report`: the README's Results section, generated from the metric files.

The section between the two markers below is replaced; everything else in the README is
left as it is. `make repro` runs it after `dvc repro`, and a test fails when the README
does not match the committed metrics, so the figures are never typed by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

from fgbg.core.heads import HEADLINE, HEADLINE_NAMES, HEADS, HIGHER_IS_BETTER, KIND_METRICS
from fgbg.core.imageio import atomic_write_bytes

START = "<!-- results:start: written by `fgbg report` from metrics/; do not edit by hand -->"
END = "<!-- results:end -->"


def _headlines(ev: dict) -> list[tuple[str, str]]:
    """(head, its headline metric) for each head in eval.json that reports it, in the catalogue's order."""
    return [(head, HEADLINE[HEADS[head]]) for head in HEADS if HEADLINE[HEADS[head]] in ev.get(head, {})]


def _figure(block: dict, base: dict, head: str, metric: str) -> str:
    """'mask IoU 0.9646 (baseline 0.9198)', the baseline where there is one."""
    text = f"{head} {HEADLINE_NAMES[metric]} {block[head][metric]:.4f}"
    return text + (f" (baseline {base[head][metric]:.4f})" if metric in base.get(head, {}) else "")


def results_markdown(eval_path: str | Path, by_source_path: str | Path) -> str:
    ev = json.loads(Path(eval_path).read_text())
    by = json.loads(Path(by_source_path).read_text())
    heads = [head for head in HEADS if head in ev]
    headlines = _headlines(ev)
    base = ev["baseline"]
    rules = "; ".join(f"{head}{':' if head != 'mask' else ''} {base[f'{head}_rule']}" for head in heads
                      if f"{head}_rule" in base)
    lines = [
        f"{ev['split'].capitalize()} split of the default run: {ev['samples']} samples, {ev['unseen']} "
        f"(checkpoint of epoch {ev['checkpoint_epoch'] + 1}, chosen on the val split). Each figure stands beside "
        "its trivial baseline, scored on the same samples:",
        f"{rules}.",
        "",
        "| head | metric | model | baseline | better |",
        "|---|---|---|---|---|",
    ]
    for head in heads:
        for k in (k for k in KIND_METRICS[HEADS[head]] if k in ev[head]):
            value = base.get(head, {}).get(k)
            better = "higher" if k in HIGHER_IS_BETTER else "lower"
            lines.append(f"| {head} | `{k}` | {ev[head][k]:.4f} | {'–' if value is None else f'{value:.4f}'} | {better} |")
    files = ev.get("test_files")
    if files:
        figures = ", ".join(_figure(files, files["baseline"], head, metric) for head, metric in headlines)
        lines += ["", f"The same test samples as a user's files ({files['files']}): {figures}."]
    lines += _crossed_lines(ev)
    names = " | ".join(f"{head} {HEADLINE_NAMES[metric]}" for head, metric in headlines)
    lines += ["", "Per foreground class:", "", f"| class | samples | {names} |", "|---" * (2 + len(headlines)) + "|"]
    for name, m in by["fg_class"].items():
        lines.append(f"| {name} | {m['samples']} | " + " | ".join(f"{m[head][metric]:.4f}" for head, metric in headlines)
                     + " |")
    errors = " + ".join(f"(1 - {head} {HEADLINE_NAMES[metric]})" if metric in HIGHER_IS_BETTER
                        else f"{head} {HEADLINE_NAMES[metric]}" for head, metric in headlines)
    lines += ["", f"![{ev['split']} samples](plots/samples.png)", "",
              f"The 10 worst {ev['split']} samples, ranked by {errors}:", "", "![worst samples](plots/worst.png)"]
    return "\n".join(lines)


def _crossed_lines(ev: dict) -> list[str]:
    """With a mask and an alpha head: the alpha against the mask used as an alpha (eval.json's mask_as_alpha), and
    the network's own answers before the pair refined them (mask_network, alpha_network)."""
    if "mask_as_alpha" not in ev:
        return []
    alpha, as_alpha, head_mask = ev["alpha"], ev["mask_as_alpha"], ev["mask_network"]
    ratios = ", ".join(f"{name} {alpha[k]:.4f} against {as_alpha[k]:.4f} ({alpha[k] / as_alpha[k]:.2f}x)"
                       for k, name in (("sad", "SAD"), ("grad", "Grad")) if as_alpha[k] > 0)
    network = ev.get("alpha_network")
    before = (f" Before the pair refines it on its soft edge, the network's own alpha scores SAD {network['sad']:.4f} "
              f"and Grad {network['grad']:.4f}." if network else "")
    return ["", f"The alpha against the mask used as an alpha (0 or 1): {ratios}. The mask is the refined alpha at "
                f"the mask threshold: IoU {ev['mask']['iou']:.4f}, where the mask head's own answer scores "
                f"{head_mask['iou']:.4f}.{before}"]


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
