"""Prediction on a large photo at native resolution: the two-stage model against the UNet, in one run.

    python benchmarks/bench_predict.py [--height 2160 --width 3840] [--rounds 3] [--threads 0]

Both models are built at params.yaml's size (width, levels, heads), with fresh weights (the
time of a forward pass does not depend on what the weights learned; the refined cells are a
fixed share of the base's); each predicts one bg / fg_bg pair of the given size through
`predict_padded`, what `fgbg predict` runs before the alpha's refinement by the pair (numpy,
the same for both). The rounds alternate the two models; the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from functools import partial
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

import torch  # noqa: E402
from timing import alternating_medians  # noqa: E402  (benchmarks/, beside this one)

from fgbg.core.config import load_params  # noqa: E402
from fgbg.core.contract import Contract, NormStats  # noqa: E402
from fgbg.core.model import build_model  # noqa: E402
from fgbg.core.runtime import predict_padded  # noqa: E402

STATS = NormStats((0.5,) * 3, (0.25,) * 3, (0.5,) * 3, (0.25,) * 3)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--height", type=int, default=2160)
    ap.add_argument("--width", type=int, default=3840)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    ap.add_argument("--params", default="params.yaml")
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    p = load_params(args.params)
    models = {}
    for name in ("unet", "two_stage"):
        torch.manual_seed(0)
        config = dataclasses.replace(p.model, name=name, context=None)  # each with its own context
        models[name] = build_model(Contract(config, STATS, tuple(p.heads))).eval()
    x = torch.randn(1, 6 + p.model.rows, args.height, args.width, generator=torch.Generator().manual_seed(0))
    median = alternating_medians({name: partial(predict_padded, model, x) for name, model in models.items()},
                                 args.rounds)
    print(f"{args.width} x {args.height}, {torch.get_num_threads()} threads, refine_share {p.model.refine_share}, "
          f"coarse_scale {p.model.coarse_scale}: two_stage is {median['unet'] / median['two_stage']:.2f}x "
          "the speed of the unet")


if __name__ == "__main__":
    main()
