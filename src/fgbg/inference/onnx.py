"""`fgbg onnx`: a checkpoint exported to ONNX (opset 17, dynamic batch), checked against PyTorch.

The file is written only when onnxruntime's outputs on a random batch match PyTorch's within
ONNX_ATOL + ONNX_RTOL * |PyTorch| (numpy.allclose); otherwise the export is an InputError.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from fgbg.core.checkpoint import load_checkpoint, model_config_from_record
from fgbg.core.errors import InputError
from fgbg.core.imageio import atomic_path
from fgbg.core.model import input_channels
from fgbg.core.runtime import unwrap

log = logging.getLogger(__name__)
ONNX_ATOL, ONNX_RTOL = 1e-4, 1e-4  # accepted: |onnxruntime - PyTorch| <= ATOL + RTOL * |PyTorch|


def export_onnx(checkpoint: str | Path, out: str | Path) -> dict:
    """Export to ONNX (opset 17, dynamic batch) and check onnxruntime against PyTorch on a
    random batch: every output within ONNX_ATOL + ONNX_RTOL * |PyTorch| (numpy.allclose)."""
    import onnxruntime as ort

    model, ckpt = load_checkpoint(checkpoint, torch.device("cpu"))
    size = ckpt["input_size"]
    channels = input_channels(model_config_from_record(ckpt["model_config"]))
    x = torch.randn(2, channels, size, size, generator=torch.Generator().manual_seed(0))
    with atomic_path(out) as tmp:
        torch.onnx.export(unwrap(model), (x,), str(tmp), input_names=["x"], output_names=["mask_logits", "depth"],
                          dynamic_axes={"x": {0: "n"}, "mask_logits": {0: "n"}, "depth": {0: "n"}},
                          opset_version=17, dynamo=False)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(None, {"x": x.numpy()})
        with torch.no_grad():
            want = [out.numpy() for out in model(x)]
        diffs = [float(np.abs(g - w).max()) for g, w in zip(got, want)]
        within = all(np.allclose(g, w, rtol=ONNX_RTOL, atol=ONNX_ATOL) for g, w in zip(got, want))
        if not within:
            raise InputError(f"ONNX export of {checkpoint} differs from PyTorch by up to {max(diffs):.2e}, beyond "
                             f"atol {ONNX_ATOL} + rtol {ONNX_RTOL}; not written")
    result = {"max_abs_diff_mask_logits": diffs[0], "max_abs_diff_depth": diffs[1], "atol": ONNX_ATOL,
              "rtol": ONNX_RTOL, "input": [None, channels, size, size]}
    log.info("exported %s: onnxruntime matches PyTorch (max difference %.1e)", out, max(diffs))
    return result
