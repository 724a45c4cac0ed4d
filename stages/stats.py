"""Stage stats: dataset/composed -> dataset/stats.json (per-channel mean/std)."""

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)
import argparse

from fgbg.cli import run
from fgbg.imageio import atomic_write_json
from fgbg.stats import dataset_stats
from fgbg.store import Dataset


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, help="composed dataset folder")
    ap.add_argument("--out", required=True, help="stats JSON to write")
    args = ap.parse_args(argv)
    atomic_write_json(args.out, dataset_stats(Dataset(args.dataset)))


if __name__ == "__main__":
    run(main)
