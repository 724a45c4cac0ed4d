"""`model.name: two_stage`: a base network that sees the whole pair at low resolution, and a
refiner at full resolution on the patches the base is least sure of (the shape of
BackgroundMattingV2, Lin et al. 2021; written here from the paper's description).

- **The base** is the UNet (`width`, `levels`) on the pair shrunk `coarse_scale` times, each
  cell's mean (192 px -> 48 px at 4). At that size a whole image has the pixels of a 192 x 12
  strip, and the base sees the horizon and the object's foot together, which is what its
  depth needs. From its last level it gives each learned head at that resolution, an error
  map (how wrong it thinks its heads are there, in [0, 1]), and its features.
- **The refiner** takes the `refine_share` of the base's cells with the highest predicted
  error (the count rounded half to even, at least 1; ties go to the lower cell index). Each
  cell is a `coarse_scale` px square at full resolution; the refiner sees it with a margin
  of MARGIN px: the pair at full resolution, and the base's heads and features upsampled
  (bilinear), and gives each head's new value there, as a residual on the upsampled one.
  Everywhere else the heads are the base's, upsampled.
- Under ground contact the depth is derived from the final mask and bg_depth
  (fgbg.core.model.ground_contact), as in the UNet.

Training supervises the final heads by their losses, the base's heads by the same losses at
its resolution (targets resized by area), and the error map by the squared difference from
the base's real error (fgbg.training.trainer.Heads); `forward(x, coarse=True)` returns what
those need.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from fgbg.core.contract import kind_of
from fgbg.core.model import UNet, head_outputs, learned_heads

MARGIN = 3  # px of context around a refined cell: what three 3 x 3 convolutions without padding use up
REFINER_WIDTHS = (24, 16)  # channels of the refiner's first two convolutions
TIE_STEP = 1e-12  # the tie-break's shift per cell index: it reorders only errors closer than cells x 1e-12


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, bias=False), nn.BatchNorm2d(c_out), nn.ReLU(inplace=True))


class TwoStage(nn.Module):
    """Base UNet at 1/coarse_scale of the input, refiner on the top refine_share of its cells."""

    def __init__(self, in_channels: int = 6, width: int = 16, levels: int = 3, heads: tuple[str, ...] = ("mask", "depth"),
                 ground_contact: bool = False, coarse_scale: int = 4, refine_share: float = 0.1,
                 context: str = "none") -> None:
        super().__init__()
        self.order = heads
        self.ground_contact = ground_contact
        self.learned = learned_heads(heads, ground_contact)
        self.scale, self.share = coarse_scale, refine_share
        self.base = UNet(in_channels, width, levels, heads=(), context=context)
        self.coarse_heads = nn.Conv2d(self.base.channels, len(self.learned), 1)  # one raw output per learned head
        self.error = nn.Conv2d(self.base.channels, 1, 1)
        c_in = in_channels + len(self.learned) + self.base.channels
        first, second = REFINER_WIDTHS
        self.refiner = nn.Sequential(_conv_bn(c_in, first), _conv_bn(first, second),
                                     nn.Conv2d(second, len(self.learned), 3))  # (s + 2 MARGIN)^2 -> s^2

    @property
    def side_multiple(self) -> int:
        """What the input's sides must be a multiple of: the shrink, then the base's poolings."""
        return self.scale * self.base.side_multiple

    def forward(self, x: torch.Tensor, coarse: bool = False) -> dict[str, torch.Tensor]:
        """x: N, C, H, W with sides divisible by `side_multiple` -> {head: N, 1, H, W} in the heads' order
        (mask logits, depth in [0, 1], ...); with `coarse`, also the base's `coarse/<head>` (the same
        activations, N, 1, H/s, W/s) and `coarse/error` (in [0, 1])."""
        height, width = x.shape[-2:]
        small = F.avg_pool2d(x, self.scale)  # the mean of each s x s cell: a shrink without aliasing
        features = self.base.features(small)  # N, F, h, w
        raw = self.coarse_heads(features)  # N, K, h, w: the learned heads' raw outputs
        with torch.autocast(x.device.type, enabled=False):  # fp32 under autocast too: bf16 would tie the ranking
            error = torch.sigmoid(self.error(features.float()))  # N, 1, h, w
        upsampled = F.interpolate(raw, size=(height, width), mode="bilinear", align_corners=False)  # N, K, H, W
        final = self._refine(x, torch.cat([raw, features], dim=1), upsampled, error)
        outputs = head_outputs({head: final[:, i:i + 1] for i, head in enumerate(self.learned)}, self.order,
                               self.ground_contact)
        if coarse:
            outputs.update({f"coarse/{head}": kind_of(head).activation(raw[:, i:i + 1])
                            for i, head in enumerate(self.learned)})
            outputs["coarse/error"] = error
        return outputs

    def _refine(self, x: torch.Tensor, context: torch.Tensor, upsampled: torch.Tensor,
                error: torch.Tensor) -> torch.Tensor:
        """`upsampled` (N, K, H, W) with the cells of highest `error` (N, 1, h, w) replaced by the refiner's
        values, which it computes from x and `context` (the base's raw heads, then its features; N, K + F, h, w)."""
        n, _, h, w = error.shape
        s, side = self.scale, self.scale + 2 * MARGIN
        count = max(1, round(self.share * int(h) * int(w)))  # int(): a constant in an ONNX trace
        # the cells of highest error, chosen, not learned through; ties go to the lower index, by a float64 key
        # (torch's topk breaks ties in no set order, and ONNX's TopK exports no stable sort)
        flat = error.detach().flatten(1).double()  # N, h * w
        key = flat - torch.arange(flat.shape[1], device=flat.device, dtype=flat.dtype) * TIE_STEP
        cells = key.topk(count, dim=1).indices  # N, count
        top, left = (cells // w) * s, (cells % w) * s  # N, count: each cell's first full-resolution pixel
        span = torch.arange(side, device=x.device) - MARGIN  # the window's offsets from the cell
        rows = (top[..., None] + span).view(n, count, side, 1)  # N, count, side, 1
        cols = (left[..., None] + span).view(n, count, 1, side)
        batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
        padded = F.pad(x, (MARGIN,) * 4, mode="replicate")
        pixels = padded[batch, :, rows + MARGIN, cols + MARGIN]  # N, count, side, side, C
        # the context upsampled at exactly those pixels: bilinear sampling at their centres (what
        # F.interpolate computes, the border repeated), without upsampling every map whole
        height, width = x.shape[-2:]
        grid = torch.stack([((cols + 0.5) / width * 2 - 1).expand(n, count, side, side),
                            ((rows + 0.5) / height * 2 - 1).expand(n, count, side, side)], dim=-1)
        with torch.autocast(x.device.type, enabled=False):  # the grid in fp32: bf16 would move a pixel by px
            sampled = F.grid_sample(context.float(), grid.view(n, count * side, side, 2), mode="bilinear",
                                    padding_mode="border", align_corners=False)  # N, K + F, count * side, side
        sampled = sampled.view(n, -1, count, side, side).permute(0, 2, 1, 3, 4)  # N, count, K + F, side, side
        patches = torch.cat([pixels.permute(0, 1, 4, 2, 3).to(sampled.dtype), sampled], dim=2).flatten(0, 1)
        k = upsampled.shape[1]
        base = patches[:, x.shape[1]:x.shape[1] + k, MARGIN:MARGIN + s, MARGIN:MARGIN + s]  # the upsampled heads there
        values = (base + self.refiner(patches)).view(n, count, k, s, s).permute(0, 1, 3, 4, 2)  # N, count, s, s, K
        inner = slice(MARGIN, MARGIN + s)
        out = upsampled.permute(0, 2, 3, 1).index_put((batch, rows[:, :, inner], cols[:, :, :, inner]),
                                                      values.to(upsampled.dtype))
        return out.permute(0, 3, 1, 2)  # N, K, H, W
