"""What evaluate (and validation, predict, score) spends on the network and on the connectivity error: today's
way against the way before it, in one run.

    python benchmarks/bench_evaluate.py [--images 64] [--rounds 3] [--threads 0]

- forward: `--images` whole test images of the composed dataset (dataset/composed, dataset/split.json: run
  `dvc repro split` first) through `predict_padded`, as evaluate forwards them: the model as
  `load_for_inference` gives it (channels_last) in batches of `inference_batch`, against the same weights in
  the contiguous layout in batches of params.yaml's batch_size, as before. models/best.pt when it is there,
  else fresh weights at params.yaml's size (a forward's time does not depend on what the weights learned).
- conn: the connectivity error of the same images' alphas against their alpha one pixel to the right (a
  near miss, as a good prediction is), over the box around the object (`connectivity_error`) against over
  the whole image (`_connectivity`, as before). Both give the same figure; that is checked here too.
The rounds alternate the two ways; the medians and their ratio are printed.
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import numpy as np  # noqa: E402
import torch  # noqa: E402
from timing import alternating_medians  # noqa: E402  (benchmarks/, beside this one)

from fgbg.core.checkpoint import Checkpoint, load_for_inference, save_checkpoint  # noqa: E402
from fgbg.core.config import load_params  # noqa: E402
from fgbg.core.contract import Contract, NormStats  # noqa: E402
from fgbg.core.metrics import _connectivity, connectivity_error  # noqa: E402
from fgbg.core.model import build_model  # noqa: E402
from fgbg.core.runtime import inference_batch, predict_padded  # noqa: E402
from fgbg.dataset.store import ComposedStore  # noqa: E402

STATS = NormStats((0.5,) * 3, (0.25,) * 3, (0.5,) * 3, (0.25,) * 3)


def _model(checkpoint: Path, params):
    """The LoadedModel of `checkpoint`, or of fresh weights at params.yaml's size when there is none."""
    if checkpoint.is_file():
        return load_for_inference(checkpoint, "cpu")
    torch.manual_seed(0)
    contract = Contract(params.model, STATS, tuple(params.heads))
    with tempfile.TemporaryDirectory() as tmp:
        fresh = Path(tmp) / "fresh.pt"
        save_checkpoint(fresh, Checkpoint(contract, build_model(contract).state_dict(), params.compose.bg_size, 0))
        return load_for_inference(fresh, "cpu")


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads; 0 keeps torch's default")
    ap.add_argument("--params", default=str(ROOT / "params.yaml"))
    ap.add_argument("--checkpoint", default=str(ROOT / "models" / "best.pt"))
    args = ap.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    params = load_params(args.params)
    store = ComposedStore(ROOT / "dataset" / "composed")
    ids = json.loads((ROOT / "dataset" / "split.json").read_text())["test"][: args.images]
    samples = [store.sample(i) for i in ids]

    loaded = _model(Path(args.checkpoint), params)  # channels_last, as evaluate has it
    x = torch.stack([loaded.contract.encode(s.bg, s.fg_bg) for s in samples])  # N, C, H, W
    height, side = x.shape[-2:]
    now = inference_batch(params.batch_size, torch.device("cpu"), height * side)
    before = copy.deepcopy(loaded.model).to(memory_format=torch.contiguous_format)

    def forward(net, batch):
        return lambda: [predict_padded(net, x[k : k + batch]) for k in range(0, len(x), batch)]

    print(f"forward of {len(x)} test images of {side} px, {torch.get_num_threads()} threads:")
    fwd = alternating_medians({f"before: contiguous, batch {params.batch_size}": forward(before, params.batch_size),
                               f"now: channels_last, batch {now}": forward(loaded.model, now)}, args.rounds, "  ")
    pairs = [(s.alpha.astype(np.float64), np.roll(s.alpha, 1, axis=1).astype(np.float64)) for s in samples]
    assert all(abs(connectivity_error(p, t) - _connectivity(p, t)) < 1e-9 for p, t in pairs)
    print(f"connectivity error of {len(pairs)} alphas:")
    conn = alternating_medians({"before: whole image": lambda: [_connectivity(p, t) for p, t in pairs],
                                "now: the object's box": lambda: [connectivity_error(p, t) for p, t in pairs]},
                               args.rounds, "  ")
    (fb, fn), (cb, cn) = fwd.values(), conn.values()
    print(f"forward: now is {fb / fn:.2f}x the speed of before; conn: {cb / cn:.2f}x; both: {(fb + cb) / (fn + cn):.2f}x")


if __name__ == "__main__":
    main()
