"""Stage compose: data/ -> dataset/composed (shards, index, bg arrays).

Across machines: run `python stages/compose.py --data data --out dataset/composed --part i/n`
for i = 0 .. n-1 anywhere, gather every `dataset/composed.partial/` into one, then run it
once more without --part to finish the dataset.
"""

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)
import argparse
import dataclasses

from fgbg.cli import parse_part, run
from fgbg.build import compose_dataset
from fgbg.config import load_params


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
