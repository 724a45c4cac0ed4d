"""`fgbg onnx`: a checkpoint exported to ONNX (opset 17, dynamic batch), checked against PyTorch.

Input `x` (N, 6 or 7, H, W, normalised as fgbg.core.contract.Contract.encode makes it); one output
per head, in the checkpoint's order (output_names): mask_logits and depth by default.
It holds the network alone: `fgbg predict` refines an alpha head's answer by the pair afterwards
(fgbg.core.matting.refine_alpha, numpy and OpenCV), which an ONNX user runs on its outputs likewise.

The file is written only when onnxruntime's outputs on a random batch match PyTorch's within
ONNX_ATOL + ONNX_RTOL * |PyTorch| (numpy.allclose); otherwise the export is an InputError.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch

from fgbg.core.checkpoint import load_checkpoint
from fgbg.core.contract import kind_of
from fgbg.core.errors import InputError
from fgbg.core.imageio import atomic_path
from fgbg.core.runtime import unwrap

log = logging.getLogger(__name__)
ONNX_ATOL, ONNX_RTOL = 1e-4, 1e-4  # accepted: |onnxruntime - PyTorch| <= ATOL + RTOL * |PyTorch|


def export_onnx(checkpoint: str | Path, out: str | Path) -> dict:
    """Export to ONNX (opset 17, dynamic batch) and check onnxruntime against PyTorch on a
    random batch: every output within ONNX_ATOL + ONNX_RTOL * |PyTorch| (numpy.allclose)."""
    import onnxruntime as ort

    model, ckpt = load_checkpoint(checkpoint, torch.device("cpu"))
    size, contract = ckpt.input_size, ckpt.contract
    names = output_names(contract.heads)
    x = torch.randn(2, contract.input_channels, size, size, generator=torch.Generator().manual_seed(0))
    with atomic_path(out) as tmp:
        torch.onnx.export(unwrap(model), (x,), str(tmp), input_names=["x"], output_names=names,
                          dynamic_axes={name: {0: "n"} for name in ["x", *names]}, opset_version=17, dynamo=False)
        session = ort.InferenceSession(str(tmp), providers=["CPUExecutionProvider"])
        got = session.run(names, {"x": x.numpy()})
        with torch.no_grad():
            want = [out.numpy() for out in model(x).values()]
        diffs = {name: float(np.abs(g - w).max()) for name, g, w in zip(names, got, want)}
        within = all(np.allclose(g, w, rtol=ONNX_RTOL, atol=ONNX_ATOL) for g, w in zip(got, want))
        if not within:
            raise InputError(f"ONNX export of {checkpoint} differs from PyTorch by up to {max(diffs.values()):.2e}, "
                             f"beyond atol {ONNX_ATOL} + rtol {ONNX_RTOL}; not written")
    result = {**{f"max_abs_diff_{name}": diff for name, diff in diffs.items()}, "atol": ONNX_ATOL,
              "rtol": ONNX_RTOL, "input": [None, contract.input_channels, size, size], "outputs": names}
    log.info("exported %s: onnxruntime matches PyTorch (max difference %.1e)", out, max(diffs.values()))
    return result


def output_names(heads: tuple[str, ...]) -> list[str]:
    """The ONNX outputs, one per head in order: `<head>_logits` for a binary head, else the head's name
    (mask_logits and depth)."""
    return [f"{head}_logits" if kind_of(head).binary else head for head in heads]
