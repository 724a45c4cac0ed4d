"""Stage evaluate: models/best.pt on the test split -> metrics/eval*.json, plots/ (grids, per-source tables)."""

import argparse

import _src  # noqa: F401  (this checkout's src/ first; see stages/_src.py)

from fgbg.core.config import load_params
from fgbg.core.errors import run
from fgbg.evaluation.evaluate import evaluate_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--metrics", required=True, help="averaged metrics JSON")
    ap.add_argument("--by-source", required=True, help="per fg / bg / class metrics and worst samples JSON")
    ap.add_argument("--plots", required=True, help="folder for samples.png, worst.png, per_fg.csv, per_bg.csv")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    evaluate_model(
        checkpoint=args.checkpoint, dataset_dir=args.dataset, split_path=args.split, metrics_path=args.metrics,
        plots_dir=args.plots, by_source_path=args.by_source, params=p,
    )


if __name__ == "__main__":
    run(main)
