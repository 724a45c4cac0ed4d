"""Teacher depth: a user-supplied ONNX depth network run in batches over fg_bg images.

The rule that maps its output to fgbg depth (0 = nearest, 1 = farthest), per image:
  1. the input is fg_bg / 255, resized to `input_size` (bilinear, antialiased; 0 keeps the
     size) and normalised by `mean` / `std` per channel, as N, 3, H, W float32;
  2. the output (N, H', W' or N, 1, H', W') is resized back to the bg size (bilinear);
  3. it is min-max normalised to [0, 1] over the image (a constant output gives 0.5);
  4. for `output: inverse_depth` (MiDaS-style disparity, large = near) depth = 1 - that;
     for `output: depth` (DenseDepth-style, large = far) depth = that.
The result is relative depth: each image spans [0, 1] on its own.

The process that plans a run reads the model file (`read_model`) and the workers make their
sessions from its bytes, so that they need no shared filesystem. A model whose weights sit
in external data files beside it must be saved as one file first (onnx.save with
save_as_external_data=False; up to protobuf's 2 GB).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fgbg.core.config import TeacherConfig


def read_model(cfg: TeacherConfig) -> bytes:
    """The bytes of the ONNX file that `cfg.model` names."""
    path = Path(cfg.model)
    if not path.is_file():
        raise FileNotFoundError(f"params: compose.teacher.model = {cfg.model!r}: no such file; give the path "
                                "of an ONNX depth model (a MiDaS or DenseDepth export), and add it to the "
                                "compose stage's deps in dvc.yaml")
    return path.read_bytes()


class Teacher:
    """An onnxruntime session for one process, made from the model's bytes; `predict` maps
    fg_bg batches to depth."""

    def __init__(self, cfg: TeacherConfig, model: bytes, threads: int = 1) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = [p for p in ("CUDAExecutionProvider", "CPUExecutionProvider") if p in ort.get_available_providers()]
        self.session = ort.InferenceSession(model, opts, providers=providers)
        self.input_name = self.session.get_inputs()[0].name
        self.cfg = cfg

    def predict(self, fg_bg: np.ndarray) -> np.ndarray:
        """fg_bg: N, S, S, 3 uint8 -> depth N, S, S float32 in [0, 1] by the rule above."""
        n, h, w, _ = fg_bg.shape
        x = torch.from_numpy(fg_bg).permute(0, 3, 1, 2).float() / 255.0  # N, 3, S, S
        if self.cfg.input_size:
            x = F.interpolate(x, size=(self.cfg.input_size,) * 2, mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(self.cfg.mean)[None, :, None, None]
        std = torch.tensor(self.cfg.std)[None, :, None, None]
        x = ((x - mean) / std).numpy().astype(np.float32)
        out = torch.from_numpy(np.asarray(self.session.run(None, {self.input_name: x})[0], np.float32))
        if out.ndim == 3:
            out = out[:, None]  # N, 1, H', W'
        out = F.interpolate(out, size=(h, w), mode="bilinear", align_corners=False)[:, 0]  # N, S, S
        lo = out.amin(dim=(1, 2), keepdim=True)
        hi = out.amax(dim=(1, 2), keepdim=True)
        span = hi - lo
        v = torch.where(span > 0, (out - lo) / span.clamp(min=1e-12), torch.full_like(out, 0.5))
        depth = 1 - v if self.cfg.output == "inverse_depth" else v
        return depth.numpy().astype(np.float32)
