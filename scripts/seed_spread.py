"""The run-to-run noise of the default run: train and evaluate it under several seeds.

    python scripts/seed_spread.py --seeds 0 1 2 [--set KEY=VALUE ...] [--out logs/seed_spread] [--score-only]

Each seed trains with params.yaml (and the `--set` keys, written as `dvc exp run -S` takes them,
e.g. `--set model.context=none`) but `train.seed` (weights init, shuffling, augmentation)
on the committed dataset, stats and split (`dvc repro split stats` first), then is scored
on the test split as `evaluate` does. It prints the test metrics per seed and their mean
and standard deviation (n - 1), and writes them to <out>/spread.json. A change in
`dvc metrics diff` smaller than about two standard deviations is within this noise.
`--score-only` trains nothing: it scores each seed's <out>/seed_<n>/models/best.pt again, after a change to how
answers are made or scored.
"""

import argparse
import dataclasses
import logging
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from compare_recipes import recipe_params  # noqa: E402  (scripts/, beside this one)

from fgbg.core.errors import ConfigError, run  # noqa: E402
from fgbg.core.imageio import atomic_write_json  # noqa: E402
from fgbg.core.typed_yaml import read_yaml  # noqa: E402
from fgbg.evaluation.evaluate import evaluate_model  # noqa: E402
from fgbg.training.train import train_model  # noqa: E402

KEYS = (("mask", "iou"), ("mask", "dice"), ("depth", "rmse"), ("depth", "mae"), ("depth", "delta1"),
        ("test_files", "mask", "iou"), ("alpha", "sad"), ("mask_as_alpha", "sad"), ("alpha", "grad"),
        ("mask_as_alpha", "grad"))  # paths into eval.json


def _at(ev: dict, path: tuple[str, ...]):
    for key in path:
        ev = ev[key]
    return ev


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="params changed, as dvc exp run -S")
    ap.add_argument("--out", default="logs/seed_spread")
    ap.add_argument("--score-only", action="store_true", help="score each seed's best.pt again, train nothing")
    args = ap.parse_args(argv)
    base, which = recipe_params(read_yaml(args.params), args.set)
    if which:
        raise ConfigError(f"--set data={which}: that data is compare_recipes.py's; this script trains on dataset/")
    out = Path(args.out)
    per_seed = {}
    for seed in args.seeds:
        p = dataclasses.replace(base, train=dataclasses.replace(base.train, seed=seed))
        run_dir = out / f"seed_{seed}"
        if args.score_only and not (run_dir / "models" / "best.pt").is_file():
            raise ConfigError(f"--score-only: {run_dir / 'models' / 'best.pt'} does not exist; train seed {seed} first "
                              "(leave out --score-only)")
        if not args.score_only:
            train_model(params=p, dataset_dir="dataset/composed", stats_path="dataset/stats.json",
                        split_path="dataset/split.json", model_dir=run_dir / "models", live_dir=run_dir / "dvclive",
                        metrics_path=run_dir / "train.json")
        ev = evaluate_model(checkpoint=run_dir / "models" / "best.pt", dataset_dir="dataset/composed",
                            split_path="dataset/split.json", metrics_path=run_dir / "eval.json",
                            plots_dir=run_dir / "plots", by_source_path=run_dir / "eval_by_source.json",
                            params=p)
        per_seed[seed] = {".".join(path): _at(ev, path) for path in KEYS if path[0] in ev}
        logging.getLogger("seed_spread").info("seed %d: %s", seed, per_seed[seed])
    spread = {}
    for name in per_seed[args.seeds[0]]:
        values = [m[name] for m in per_seed.values()]
        spread[name] = {"mean": statistics.mean(values), "std": statistics.stdev(values) if len(values) > 1 else 0.0}
        print(f"{name}: {spread[name]['mean']:.4f} ± {spread[name]['std']:.4f}  (seeds {args.seeds})")
    atomic_write_json(out / "spread.json", {"seeds": per_seed, "spread": spread})


if __name__ == "__main__":
    run(main)
