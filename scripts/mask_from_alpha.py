"""The mask head against the refined alpha at the mask threshold, on val and test, as stored and as JPEG files.

    python scripts/mask_from_alpha.py [--checkpoint models/best.pt] [--every 1]

Each pair runs through `predict`'s code (fgbg.core.runtime.final_answers: the alpha refined by the pair, and with an
alpha head the mask that alpha at the threshold), beside the network's own mask head (its logits > 0), once
as stored and once with bg and fg_bg each round-tripped through a JPEG at evaluate's `test_files` quality (PIL's
default 4:2:0 chroma, so refined as predict refines such files: fgbg.core.matting.HALF_CHROMA).
Prints the mean mask IoU of each answer: what README "The mask from the refined alpha" reports.
"""

from __future__ import annotations

import argparse
import io
import json

import numpy as np
from PIL import Image

from fgbg.core.checkpoint import load_for_inference
from fgbg.core.matting import HALF_CHROMA
from fgbg.core.runtime import final_answers, predict_padded
from fgbg.dataset.store import ComposedStore
from fgbg.evaluation.evaluate import FILE_QUALITY, stored_trust


def as_jpeg_file(image: np.ndarray) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="JPEG", quality=FILE_QUALITY)
    return np.asarray(Image.open(buf).convert("RGB"))


def iou(pred: np.ndarray, target: np.ndarray) -> float:
    union = (pred | target).sum()
    return 1.0 if union == 0 else float((pred & target).sum() / union)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", default="models/best.pt")
    ap.add_argument("--dataset", default="dataset/composed")
    ap.add_argument("--split", default="dataset/split.json")
    ap.add_argument("--every", type=int, default=1, help="take every n-th sample of each split")
    args = ap.parse_args()
    loaded = load_for_inference(args.checkpoint, "cpu")
    store = ComposedStore(args.dataset)
    split = json.loads(open(args.split).read())
    stored = stored_trust(store)  # as evaluate refines the pairs as stored: HALF_CHROMA where fg_bg was composed as JPEG
    for name in ("val", "test"):
        scores: dict[str, list[float]] = {}
        for i in split[name][:: args.every]:
            sample = store.sample(i)
            for files, (bg, fg_bg) in ((False, (sample.bg, sample.fg_bg)),
                                       (True, (as_jpeg_file(sample.bg), as_jpeg_file(sample.fg_bg)))):
                outputs = predict_padded(loaded.model, loaded.contract.encode(bg, fg_bg)[None].to(loaded.device))
                answers = final_answers(loaded.contract, outputs, bg, fg_bg, HALF_CHROMA if files else stored)
                where = " as files" if files else ""
                scores.setdefault(f"mask head{where}", []).append(iou(outputs["mask"][0, 0].cpu().numpy() > 0,
                                                                      sample.mask))
                scores.setdefault(f"refined alpha at the threshold{where}", []).append(iou(answers["mask"], sample.mask))
        print(name, ", ".join(f"{key} {np.mean(values):.4f}" for key, values in scores.items()))


if __name__ == "__main__":
    main()
