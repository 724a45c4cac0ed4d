"""Stage stats: dataset/composed + the train side of dataset/split.json -> dataset/stats.json (per-channel mean/std)."""

import argparse
import json
from pathlib import Path

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)

from fgbg.core.errors import run
from fgbg.core.imageio import atomic_write_json
from fgbg.dataset.stats import dataset_stats
from fgbg.dataset.store import ComposedStore


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--dataset", required=True, help="composed dataset folder")
    ap.add_argument("--split", required=True, help="split JSON; only its train samples count")
    ap.add_argument("--out", required=True, help="stats JSON to write")
    args = ap.parse_args(argv)
    train_ids = json.loads(Path(args.split).read_text())["train"]
    store = ComposedStore(args.dataset)
    store.check_ids(train_ids, args.split)
    atomic_write_json(args.out, dataset_stats(store, train_ids))


if __name__ == "__main__":
    run(main)
