"""Stage compose: data/ -> dataset/composed (shards, index, bg arrays).

Across machines: run `python stages/compose.py --data data --out dataset/composed --part i/n`
for i = 0 .. n-1 anywhere, gather every `dataset/composed.partial/` into one, then run it
once more without --part to finish the dataset.
"""

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)
import argparse
import dataclasses

from fgbg.errors import run
from fgbg.build import compose_dataset
from fgbg.config import load_params


def parse_part(text: str) -> tuple[int, int]:
    """'i/n' -> (i, n) with 0 <= i < n."""
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"--part {text!r}: expected i/n, for example 0/4") from None
    if not 0 <= i < n:
        raise argparse.ArgumentTypeError(f"--part {text!r}: need 0 <= i < n")
    return i, n


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="source folder (bg/, fg/, optional bg_depth/, fg_mask/, *.zip)")
    ap.add_argument("--out", required=True, help="composed dataset folder to write")
    ap.add_argument("--part", type=parse_part, help="i/n: make only shards k with k %% n == i")
    ap.add_argument("--workers", type=int, help="processes (default: compose.workers)")
    args = ap.parse_args(argv)
    cfg = load_params(args.params).compose
    if args.workers:
        cfg = dataclasses.replace(cfg, workers=args.workers)
    compose_dataset(data_dir=args.data, out_dir=args.out, cfg=cfg, part=args.part)


if __name__ == "__main__":
    run(main)
