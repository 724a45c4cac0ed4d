"""Where the predicted scene depth (the bg_depth head) misses, by image row: README "Column context".

    python scripts/depth_by_row.py [--checkpoint models/best.pt] [--every 4]

Runs every n-th test pair through `predict`'s code and prints, per band of 16 rows, the share of
pixels outside delta1 (max(p/t, t/p) >= 1.25, clamped as eval.json is), then how well the ground's depth at
the bottom of each scene is known: the correlation over the scenes of the predicted and the true median
depth of the 4 bottom rows (1: it follows every scene; 0: one guess for all).
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from fgbg.core.checkpoint import load_for_inference
from fgbg.core.metrics import DEPTH_EPS
from fgbg.core.runtime import predict_pair
from fgbg.dataset.store import ComposedStore

BAND = 16


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--split", default="dataset/split.json")
    ap.add_argument("--every", type=int, default=4, help="take every n-th test sample")
    args = ap.parse_args()
    loaded = load_for_inference(args.checkpoint, "cpu")
    store = ComposedStore(args.dataset)
    missed, bottom_true, bottom_pred = [], [], []
    for i in json.loads(open(args.split).read())["test"][:: args.every]:
        sample = store.sample(i)
        pred = predict_pair(loaded.model, loaded.contract, sample.bg, sample.fg_bg, loaded.device)["bg_depth"]
        p, t = np.maximum(pred, DEPTH_EPS), np.maximum(sample.bg_depth, DEPTH_EPS)  # as eval.json clamps
        missed.append((np.maximum(p / t, t / p) >= 1.25).mean(axis=1))  # H: the share missed in each row
        bottom_true.append(np.median(sample.bg_depth[-4:]))
        bottom_pred.append(np.median(pred[-4:]))
    rows = np.mean(missed, axis=0)
    bands = [rows[top:top + BAND].mean() for top in range(0, len(rows), BAND)]
    print(f"share outside delta1 per {BAND} rows, top to bottom: " + " ".join(f"{b:.3f}" for b in bands))
    print(f"bottom rows' depth, predicted against true over {len(bottom_true)} scenes: "
          f"correlation {np.corrcoef(bottom_true, bottom_pred)[0, 1]:.2f}")


if __name__ == "__main__":
    main()
