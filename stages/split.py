"""Stage split: dataset/composed index -> dataset/split.json (grouped train/val/test)."""

import argparse
import logging

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)
import pandas as pd

from fgbg.core.config import load_params
from fgbg.core.errors import run
from fgbg.core.imageio import atomic_write_json
from fgbg.dataset.split import split_index
from fgbg.dataset.store import INDEX


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", required=True, help="composed dataset folder")
    ap.add_argument("--out", required=True, help="split JSON to write")
    args = ap.parse_args(argv)
    s = load_params(args.params).split
    index = pd.read_parquet(f"{args.dataset}/{INDEX}", columns=["sample", "bg", "fg"])
    split = split_index(index, group_by=s.group_by, val_fraction=s.val_fraction, test_fraction=s.test_fraction,
                        seed=s.seed)
    logging.getLogger("split").info("split by %s: %s", s.group_by, split["sizes"])
    atomic_write_json(args.out, split)


if __name__ == "__main__":
    run(main)
