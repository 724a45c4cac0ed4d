"""How real pairs are captured, applied to training pairs (after BackgroundMattingV2's recipe).

A composed pair differs only inside the object's box, pixel for pixel. A pair shot with a
camera differs everywhere: sensor noise, exposure, a slight shift between the two shots,
JPEG, blur, and the shadow the object casts. Each perturbation has a probability and a
strength (params `train.perturb`). The targets stay those of the object: the model must
learn that these differences are not the object.

JPEG re-encoding runs here, in the loader, per sample, drawn from (seed, epoch, index) so
that a resumed run sees the same: each input is re-encoded at a quality drawn from
`jpeg_quality`. The others (shadow, bg jitter, misalignment, blur, noise) run on the
training device in batches, after it: fgbg.training.perturb_device.
"""

from __future__ import annotations

import numpy as np

from fgbg.core.config import PerturbConfig
from fgbg.core.imageio import decode_image, encode_image


class Perturb:
    """Callable: (bg, fg_bg, seed) -> (bg, fg_bg), each re-encoded as JPEG with probability `jpeg`; uint8 H, W, 3."""

    def __init__(self, cfg: PerturbConfig) -> None:
        self.cfg = cfg
        self.enabled = cfg.jpeg > 0

    def __call__(self, bg: np.ndarray, fg_bg: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
        rng = np.random.default_rng(seed)
        if rng.random() < self.cfg.jpeg:
            lo, hi = self.cfg.jpeg_quality
            bg, fg_bg = (decode_image(encode_image(img, "jpeg", int(rng.integers(lo, hi + 1)))) for img in (bg, fg_bg))
        return bg, fg_bg
