"""The heads a model may have, by name, and the kind of each: the names and rules that params.yaml
is checked against (no torch here; how a kind computes is fgbg.core.contract's).

- `binary`: logits of a 0/1 map (the mask); a pixel is set where logits > 0; scored by
  IoU and its kin; saved as a 0/255 PNG;
- `unit`: a value in [0, 1] per pixel (depth), a sigmoid's output; scored by RMSE and its
  kin; saved as a 16-bit PNG (value / 65535);
- `matte`: an alpha matte in [0, 1], a sigmoid's output; scored by the matting metrics SAD,
  MSE, Grad and Conn (fgbg.core.metrics); saved as an 8-bit PNG.

A new head registers its kind in `HEADS`, a target in fgbg.dataset.data.TARGETS, and is
listed in params.yaml's `heads:` with its losses and metrics. Losses, metrics, plots,
evaluation, prediction and ONNX export iterate over the heads and need nothing else.
"""

from __future__ import annotations

HEADS: dict[str, str] = {  # head name -> kind
    "mask": "binary",  # the object's mask
    "depth": "unit",  # depth of the scene with the object in it: 0 nearest, 1 farthest
    "bg_depth": "unit",  # depth of the scene without the object (model.depth: ground_contact derives depth from it)
    "alpha": "matte",  # the object's soft alpha (its opacity), of which the mask is alpha >= mask_threshold
}

KIND_METRICS = {  # what fgbg.core.metrics computes per kind (its module doc defines each)
    "binary": ("iou", "dice", "pixel_acc", "precision", "recall"),
    "unit": ("rmse", "mae", "abs_rel", "sq_rel", "delta1", "delta2", "delta3", "ssim"),
    "matte": ("sad", "mse", "grad", "conn"),
}
HEADLINE = {"binary": "iou", "unit": "rmse", "matte": "sad"}  # the metric that ranks samples and sources, per kind
HEADLINE_NAMES = {"iou": "IoU", "rmse": "RMSE", "sad": "SAD"}  # how reports write each headline metric
HIGHER_IS_BETTER = {"iou", "dice", "pixel_acc", "precision", "recall", "delta1", "delta2", "delta3", "ssim"}
LOGIT_LOSSES = ("bce",)  # take logits, so they suit binary heads only
# the losses a unit head may take on measured depth only (fgbg.training.losses.on_measured is exact for them:
# each averages over samples an error that is 0 where pred equals target; dice's is not 0 on a depth map)
MEASURABLE = ("l1", "log_l1", "rmse", "ssim", "grad", "sobel")


def metric_keys(metrics: dict[str, tuple[str, ...]]) -> dict[tuple[str, str], str]:
    """(head, metric) -> the flat key it is logged under (train.json's val, DVCLive, per-image tables),
    for heads in order with their metrics.

    The first head of each kind keeps bare names (iou for the mask, rmse for depth: the keys every
    run has logged); a later head of the same kind is `<head>/<metric>` (DVCLive draws it in a folder
    of its own). The kinds' metric names differ, and loss terms are `<head>_<loss>`, so keys never
    clash, and adding a head renames nothing."""
    firsts = {}
    for head in metrics:
        firsts.setdefault(HEADS[head], head)
    return {(head, name): name if firsts[HEADS[head]] == head else f"{head}/{name}"
            for head, names in metrics.items() for name in names}


def all_metric_keys(heads: tuple[str, ...]) -> dict[tuple[str, str], str]:
    """metric_keys of every metric of each head's kind: what per-image tables hold."""
    return metric_keys({head: KIND_METRICS[HEADS[head]] for head in heads})
