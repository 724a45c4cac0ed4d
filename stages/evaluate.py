"""Stage evaluate: models/best.pt on the val split -> metrics/eval.json, plots/samples.png."""

import argparse

from fgbg.cli import run
from fgbg.config import load_params
from fgbg.evaluate import evaluate_model


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--dataset", required=True)
    ap.add_argument("--split", required=True)
    ap.add_argument("--metrics", required=True)
    ap.add_argument("--grid", required=True, help="sample grid PNG to write")
    args = ap.parse_args(argv)
    p = load_params(args.params)
    evaluate_model(
        checkpoint=args.checkpoint, dataset_dir=args.dataset, split_path=args.split, metrics_path=args.metrics,
        grid_path=args.grid, grid_samples=p.evaluate.grid_samples, batch_size=p.batch_size, device=p.train.device,
    )


if __name__ == "__main__":
    run(main)
