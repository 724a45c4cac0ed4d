"""Stage compose: data/ -> dataset/composed (shards, index, bg)."""

import argparse

from fgbg.cli import run
from fgbg.compose import compose_dataset
from fgbg.config import load_params


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--data", required=True, help="source folder (bg/, fg/, optional bg_depth/)")
    ap.add_argument("--out", required=True, help="composed dataset folder to write")
    args = ap.parse_args(argv)
    c = load_params(args.params).compose
    compose_dataset(
        data_dir=args.data, out_dir=args.out, bg_size=c.bg_size, fg_size=c.fg_size, positions=c.positions,
        seed=c.seed, mask_threshold=c.mask_threshold, shard_size=c.shard_size,
    )


if __name__ == "__main__":
    run(main)
