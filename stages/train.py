"""Stage train: dataset + stats + split -> models/{best,last}.pt, dvclive/, metrics/train.json."""

import argparse

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)

from fgbg.core.config import load_params
from fgbg.core.errors import run
from fgbg.training.train import train_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--stats", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--models", required=True, help="folder for best.pt and last.pt")
    ap.add_argument("--live", required=True, help="DVCLive folder")
    ap.add_argument("--metrics", required=True, help="final training metrics JSON")
    ap.add_argument("--timing", default=None, help="DVCLive folder for epoch times and samples/s (not versioned)")
    args = ap.parse_args(argv)
    train_model(
        params=load_params(args.params), dataset_dir=args.dataset, stats_path=args.stats, split_path=args.split,
        model_dir=args.models, live_dir=args.live, metrics_path=args.metrics, timing_dir=args.timing,
    )


if __name__ == "__main__":
    run(main)
