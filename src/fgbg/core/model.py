"""The network: a UNet with 6 input channels (bg, fg_bg) and named heads (mask logits, depth, ...).

Each head is a 1x1 convolution on the last decoder level, through its kind's activation
(fgbg.core.contract.HeadKind); the model returns {head: N, 1, H, W}, in the order of `heads`.

With `rows`, a 7th input channel gives each pixel's row in the whole image, -1 at the top to
1 at the bottom. A pasted object's depth is the ground's depth at its foot, which depends on
where the foot is in the scene; a crop alone cannot tell, the row channel can.

With `context: columns`, each column of the bottleneck also gets the mean of that column over
the whole height (`ColumnContext`). The scene's depth at a pixel depends on things far above
it: the ground's depth at the bottom row is read from where the horizon and the hills' feet
are, 100 to 135 px higher, beyond the receptive field of 3 levels. Full-height strips hold the whole
column, so training on strips and predicting on whole images see the same context.

Models are built by name through `MODELS`, at the size that ModelConfig resolved: for `unet`
the `width` and `levels` given (16 and 3 by default, small enough for a CPU); the
`unet_original` preset is always width 64, levels 4, half-size output: the original
64-to-1024-channel UNet (30,895,874 parameters, outputs at 96 px for 192 px inputs);
`two_stage` is that UNet at low resolution with a refiner at full resolution
(fgbg.core.two_stage). Every model has `side_multiple`, what its inputs' sides must divide by.
"""

from __future__ import annotations

import torch
from torch import nn

from fgbg.core.contract import Contract, kind_of
from fgbg.core.registry import Registry

MODELS: Registry = Registry("model")


def _double_conv(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
        nn.Conv2d(c_out, c_out, 3, padding=1, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU(inplace=True),
    )


class ColumnContext(nn.Module):
    """x + relu(conv1x1(the mean of x over its column)): every pixel of a column learns what the
    whole column holds. Any height; a column's context does not depend on the others."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.mix = nn.Conv2d(channels, channels, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.relu(self.mix(x.mean(dim=2, keepdim=True)))  # N, C, 1, W, broadcast over the height


class UNet(nn.Module):
    """Encoder-decoder with skip connections; `levels` poolings, channels double per level."""

    def __init__(self, in_channels: int = 6, width: int = 16, levels: int = 3, half_output: bool = False,
                 heads: tuple[str, ...] = ("mask", "depth"), ground_contact: bool = False,
                 context: str = "none") -> None:
        super().__init__()
        chans = [width * 2**i for i in range(levels + 1)]
        self.levels = levels
        self.encoders = nn.ModuleList()
        c_prev = in_channels
        for c in chans[:-1]:
            self.encoders.append(_double_conv(c_prev, c))
            c_prev = c
        self.pool = nn.MaxPool2d(2)
        self.bottleneck = _double_conv(chans[-2], chans[-1])
        if context == "columns":
            self.bottleneck.append(ColumnContext(chans[-1]))
        self.ups = nn.ModuleList()
        self.decoders = nn.ModuleList()
        ups = list(zip(reversed(chans[1:]), reversed(chans[:-1])))
        if half_output:  # stop one level short: outputs at half the input size, as the original
            ups = ups[:-1]
        for c_hi, c_lo in ups:
            self.ups.append(nn.ConvTranspose2d(c_hi, c_lo, 2, stride=2))
            self.decoders.append(_double_conv(2 * c_lo, c_lo))
        c_out = ups[-1][1] if ups else chans[-1]
        self.channels = c_out  # of `features`
        self.order = heads
        self.ground_contact = ground_contact  # depth derived from mask and bg_depth, not a conv of its own
        self.heads = nn.ModuleDict({head: nn.Conv2d(c_out, 1, 1) for head in learned_heads(heads, ground_contact)})

    @property
    def side_multiple(self) -> int:
        """What the input's sides must be a multiple of: each pooling halves them."""
        return 2 ** self.levels

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """x: N, C, H, W with H and W divisible by 2**levels -> the last decoder level, N, width, H, W
        (H/2, W/2 with half_output): what the heads read."""
        skips = []
        for enc in self.encoders:
            x = enc(x)  # N, C, H', W'
            skips.append(x)
            x = self.pool(x)
        x = self.bottleneck(x)
        for up, dec, skip in zip(self.ups, self.decoders, reversed(skips)):
            x = dec(torch.cat([up(x), skip], dim=1))  # N, C, H', W'
        return x

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """x: N, 6, H, W with H and W divisible by 2**levels.

        Returns {head: output}, each N, 1, H, W (H/2, W/2 with half_output): mask logits, depth in [0, 1].
        """
        x = self.features(x)
        return head_outputs({head: conv(x) for head, conv in self.heads.items()}, self.order, self.ground_contact)


def learned_heads(heads: tuple[str, ...], derive_depth: bool) -> tuple[str, ...]:
    """The heads with an output of their own, in order: all but the depth when it is derived by ground
    contact (which needs the mask and bg_depth heads)."""
    if derive_depth and not {"mask", "bg_depth", "depth"} <= set(heads):
        raise ValueError(f"ground contact derives depth from the mask and bg_depth heads; got the heads {heads}")
    return tuple(head for head in heads if not (derive_depth and head == "depth"))


def head_outputs(raw: dict[str, torch.Tensor], order: tuple[str, ...], derive_depth: bool) -> dict[str, torch.Tensor]:
    """The learned heads' raw outputs through their kinds' activations, the depth derived by ground contact
    when `derive_depth`, in the heads' `order`: what a model returns. N, 1, H, W each."""
    outputs = {head: kind_of(head).activation(out) for head, out in raw.items()}
    if derive_depth:
        outputs["depth"] = ground_contact(outputs["mask"], outputs["bg_depth"])
    return {head: outputs[head] for head in order}


def ground_contact(mask_logits: torch.Tensor, bg_depth: torch.Tensor) -> torch.Tensor:
    """The depth of the scene with the object, by the rule that made the geometry labels
    (fgbg.composing.compose): the bg depth, except under the mask (logits > 0), where the object
    stands on the ground at its lowest row and takes the median bg depth of that row's mask pixels
    (the mean of the two middle values for an even count, as numpy's median). N, 1, H, W each.

    Gradients reach the bg depth everywhere the result takes it from, the foot pixels included."""
    mask = mask_logits > 0  # N, 1, H, W
    n, _, h, w = mask.shape
    rows = torch.arange(h, device=mask.device).view(1, 1, h)
    bottom = torch.where(mask.any(dim=3), rows, -1).amax(dim=2)  # N, 1: the lowest mask row, -1 for none
    at_bottom = bottom.clamp(min=0).view(n, 1, 1, 1).expand(n, 1, 1, w)
    foot = mask.gather(2, at_bottom)  # N, 1, 1, W: the mask pixels of that row
    values = torch.where(foot, bg_depth.gather(2, at_bottom), torch.inf).sort(dim=3).values  # foot depths first
    count = foot.sum(dim=3, keepdim=True)  # N, 1, 1, 1
    low, high = values.gather(3, (count - 1).clamp(min=0) // 2), values.gather(3, count // 2)  # the middle two
    median = torch.where(count > 0, (low + high) / 2, 0.0)  # N, 1, 1, 1
    return torch.where(mask, median, bg_depth)


@MODELS.register("unet")
@MODELS.register("unet_original")  # the same network at the one size its config resolves to
def _unet(contract: Contract) -> nn.Module:
    cfg = contract.config
    return UNet(in_channels=contract.input_channels, width=cfg.width, levels=cfg.levels, half_output=cfg.half_output,
                heads=contract.heads, ground_contact=cfg.depth == "ground_contact", context=cfg.context)


@MODELS.register("two_stage")
def _two_stage(contract: Contract) -> nn.Module:
    from fgbg.core.two_stage import TwoStage  # it builds on the UNet above

    cfg = contract.config
    return TwoStage(in_channels=contract.input_channels, width=cfg.width, levels=cfg.levels, heads=contract.heads,
                    ground_contact=cfg.depth == "ground_contact", coarse_scale=cfg.coarse_scale,
                    refine_share=cfg.refine_share, context=cfg.context)


def build_model(contract: Contract) -> nn.Module:
    """The model named by the contract's config, sized by it, with its heads."""
    return MODELS.get(contract.config.name, "model.name")(contract)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
