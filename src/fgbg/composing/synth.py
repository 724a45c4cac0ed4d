"""Deterministic default sources: outdoor scenes with exact depth, and cat/dog/person sprites.

`write_default_data` writes `data/bg/*.png`, `data/bg_depth/*.png` (16-bit, 0 = nearest,
65535 = farthest) and `data/fg/*.png` (RGBA). Everything is drawn with numpy from a seeded
generator and supersampled for anti-aliased edges, so the same arguments give the same
bytes on every machine with the pinned Pillow (the committed `data.dvc` checks that).

Scene depth is exact by construction: a flat ground seen from a camera at height h has
depth proportional to 1 / (row - horizon); the sky is at depth 1; each hill range is a
vertical wall at a fixed depth.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from fgbg.core.imageio import atomic_save_image, depth_to_uint16

log = logging.getLogger(__name__)

FG_CLASSES = ("cat", "dog", "person")
SS = 4  # supersampling factor for anti-aliasing


def _downsample(a: np.ndarray, f: int) -> np.ndarray:
    """Box-filter an H*f x W*f (x C) array down by `f`."""
    h, w = a.shape[0] // f, a.shape[1] // f
    return a.reshape(h, f, w, f, *a.shape[2:]).mean(axis=(1, 3))


def _smooth_noise(rng: np.random.Generator, h: int, w: int, cell: int) -> np.ndarray:
    """Value noise in [0, 1]: a coarse random grid, bilinearly upsampled."""
    gh, gw = h // cell + 2, w // cell + 2
    grid = rng.random((gh, gw))
    ys = np.arange(h) / cell
    xs = np.arange(w) / cell
    y0, x0 = ys.astype(int), xs.astype(int)
    fy, fx = (ys - y0)[:, None], (xs - x0)[None, :]
    g = grid
    top = g[y0][:, x0] * (1 - fx) + g[y0][:, x0 + 1] * fx
    bot = g[y0 + 1][:, x0] * (1 - fx) + g[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bot * fy


def render_scene(rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One outdoor scene: (rgb uint8 H, W, 3; depth float64 H, W in [0, 1])."""
    s = size * 2  # 2x supersampling is enough for the smooth scene edges
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64)
    horizon = rng.uniform(0.30, 0.48) * s
    rgb = np.zeros((s, s, 3))
    # sky: a vertical gradient from a zenith colour to a lighter horizon colour
    day = rng.random() < 0.75
    zenith = np.array([0.25, 0.45, 0.85]) if day else np.array([0.35, 0.25, 0.55])
    zenith = np.clip(zenith + rng.normal(0, 0.05, 3), 0, 1)
    haze = np.array([0.85, 0.9, 0.95]) if day else np.array([0.95, 0.6, 0.45])
    t = np.clip(yy / horizon, 0, 1)[..., None]
    rgb[:] = zenith * (1 - t) + haze * t
    if rng.random() < 0.7:  # soft clouds
        clouds = _smooth_noise(rng, s, s, s // 6)
        c = np.clip((clouds - 0.55) * 3, 0, 1)[..., None] * 0.8
        rgb = rgb * (1 - c) + c
    depth = np.ones((s, s))
    # ground: depth = cam_h / (row - horizon), scaled so the bottom row has depth `near`
    near = rng.uniform(0.04, 0.10)
    below = yy > horizon
    ground_depth = np.clip(near * (s - horizon) / np.maximum(yy - horizon, 1e-6), 0, 1)
    ground_col = rng.choice(
        [[0.30, 0.55, 0.20], [0.45, 0.60, 0.25], [0.55, 0.45, 0.30], [0.35, 0.45, 0.25]]
    )
    ground_col = np.clip(np.array(ground_col) + rng.normal(0, 0.04, 3), 0, 1)
    texture = _smooth_noise(rng, s, s, max(s // 24, 2))[..., None]
    shade = (0.75 + 0.35 * np.clip(1 - ground_depth, 0, 1))[..., None]  # nearer = brighter
    ground_rgb = ground_col * shade * (0.85 + 0.3 * texture)
    rgb = np.where(below[..., None], ground_rgb, rgb)
    depth = np.where(below, ground_depth, depth)
    # a river or a road running from the horizon towards the camera
    kind = rng.choice(["river", "road", "none"], p=[0.4, 0.4, 0.2])
    if kind != "none":
        vx = rng.uniform(0.3, 0.7) * s
        dx = rng.uniform(-0.5, 0.5) * s  # where its centre meets the bottom row, offset
        half_w = rng.uniform(0.12, 0.25) * s  # its half-width at the bottom row
        f = np.clip((yy - horizon) / (s - horizon), 0, 1)
        wobble = np.sin(f * rng.uniform(4, 9) + rng.uniform(0, 6)) * 0.08 * s * f if kind == "river" else 0
        centre = vx + dx * f + wobble
        on = below & (np.abs(xx - centre) < half_w * f + 0.5)
        if kind == "river":
            water = np.array([0.20, 0.40, 0.65]) + rng.normal(0, 0.03, 3)
            band = water[None, None] * (0.85 + 0.25 * texture)
        else:
            asphalt = np.array([0.35, 0.35, 0.37]) + rng.normal(0, 0.03)
            band = np.broadcast_to(asphalt, (s, s, 3)).copy()
            dash = (np.abs(xx - centre) < 0.015 * s * f + 0.3) & (np.sin(1 / np.maximum(f, 1e-3) * 3) > 0)
            band[dash] = [0.9, 0.9, 0.8]
        rgb = np.where(on[..., None], np.clip(band, 0, 1), rgb)
    # hill ranges: far ones first, each a wall at a fixed depth rising above the horizon
    for far, k in ((rng.uniform(0.80, 0.92), 0), (rng.uniform(0.62, 0.76), 1)):
        if k == 1 and rng.random() < 0.4:
            break
        height = rng.uniform(0.06, 0.18) * s
        phase = rng.uniform(0, 2 * np.pi, 3)
        freqs = rng.uniform(1, 5, 3) / s * 2 * np.pi
        base = horizon + near * (s - horizon) / far  # the ground row at depth `far`
        ridge = horizon - height * (0.6 + 0.4 * sum(np.sin(xx[0] * f + p) for f, p in zip(freqs, phase)) / 3)
        on = (yy > ridge[None, :]) & (yy <= base)
        tone = np.array([0.35, 0.45, 0.40]) if k == 0 else np.array([0.25, 0.40, 0.22])
        tone = (tone + rng.normal(0, 0.04, 3)) * (1.0 - 0.2 * texture)
        mix = 0.45 * far  # farther hills fade into the haze
        rgb = np.where(on[..., None], tone * (1 - mix) + haze * mix, rgb)
        depth = np.where(on, far, depth)
    rgb8 = np.clip(_downsample(rgb, 2) * 255 + 0.5, 0, 255).astype(np.uint8)
    return rgb8, _downsample(depth, 2)


def _ellipse(yy, xx, cy, cx, ry, rx, angle=0.0):
    c, s_ = np.cos(angle), np.sin(angle)
    u = ((xx - cx) * c + (yy - cy) * s_) / rx
    v = (-(xx - cx) * s_ + (yy - cy) * c) / ry
    return u * u + v * v <= 1


def _capsule(yy, xx, p0, p1, r):
    """Points within r of the segment p0-p1 (each (y, x))."""
    (y0, x0), (y1, x1) = p0, p1
    dy, dx = y1 - y0, x1 - x0
    t = np.clip(((yy - y0) * dy + (xx - x0) * dx) / max(dy * dy + dx * dx, 1e-9), 0, 1)
    return (yy - (y0 + t * dy)) ** 2 + (xx - (x0 + t * dx)) ** 2 <= r * r


def _triangle(yy, xx, a, b, c):
    def side(p, q):
        return (xx - p[1]) * (q[0] - p[0]) - (yy - p[0]) * (q[1] - p[1])

    d1, d2, d3 = side(a, b), side(b, c), side(c, a)
    neg = (d1 < 0) | (d2 < 0) | (d3 < 0)
    pos = (d1 > 0) | (d2 > 0) | (d3 > 0)
    return ~(neg & pos)


def _animal_parts(rng, kind: str, yy, xx, s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """Cat or dog in side view: (shape, colour) pairs in drawing order; s = canvas size."""
    fur = rng.choice(
        [[0.85, 0.55, 0.25], [0.45, 0.45, 0.47], [0.12, 0.12, 0.12], [0.92, 0.9, 0.85], [0.55, 0.35, 0.2]]
    )
    fur = np.clip(np.array(fur) + rng.normal(0, 0.03, 3), 0, 1)
    dark = fur * 0.6
    dog = kind == "dog"
    bw = s * rng.uniform(0.24, 0.30) * (1.15 if dog else 1.0)  # body half-length
    bh = bw * rng.uniform(0.38, 0.48)
    leg_len = bh * rng.uniform(1.3, 1.8) * (1.2 if dog else 1.0)
    cy, cx = s * 0.52, s * 0.5
    ground = cy + bh + leg_len
    shift = ground - s * 0.9  # stand on a line near the canvas bottom
    cy -= shift
    legr = bh * (0.28 if dog else 0.2)
    parts = []
    stride = rng.uniform(-0.25, 0.25)
    for lx in (-0.7, -0.45, 0.5, 0.75):
        top = (cy + bh * 0.3, cx + lx * bw)
        foot = (cy + bh + leg_len - legr, cx + lx * bw + stride * leg_len * np.sign(lx))
        parts.append((_capsule(yy, xx, top, foot, legr), dark if lx in (-0.45, 0.5) else fur))
    # tail: cats long and raised, dogs short
    tail_end = (cy - bh * (1.8 if not dog else 0.9), cx - bw * (1.35 if not dog else 1.25))
    parts.append((_capsule(yy, xx, (cy - bh * 0.2, cx - bw * 0.9), tail_end, legr * (0.8 if not dog else 1.0)), fur))
    parts.append((_ellipse(yy, xx, cy, cx, bh, bw), fur))
    hr = bh * (0.95 if not dog else 1.05)
    hy, hx = cy - bh * 1.0, cx + bw * 0.95
    if dog:  # snout and floppy ears
        parts.append((_ellipse(yy, xx, hy + hr * 0.3, hx + hr * 0.9, hr * 0.45, hr * 0.7), fur))
        parts.append((_ellipse(yy, xx, hy, hx, hr, hr), fur))
        parts.append((_ellipse(yy, xx, hy + hr * 0.5, hx - hr * 0.35, hr * 0.75, hr * 0.32, 0.3), dark))
        parts.append((_ellipse(yy, xx, hy + hr * 0.25, hx + hr * 1.55, hr * 0.18, hr * 0.18), dark * 0.3))
    else:  # pointed ears
        for ex in (-0.55, 0.45):
            a = (hy - hr * 1.75, hx + ex * hr)
            parts.append((_triangle(yy, xx, a, (hy - hr * 0.4, hx + (ex - 0.45) * hr), (hy - hr * 0.4, hx + (ex + 0.45) * hr)), fur))
        parts.append((_ellipse(yy, xx, hy, hx, hr, hr * 1.05), fur))
    parts.append((_ellipse(yy, xx, hy - hr * 0.2, hx + hr * 0.45, hr * 0.13, hr * 0.13), np.array([0.05, 0.05, 0.05])))
    return parts


def _person_parts(rng, yy, xx, s: float) -> list[tuple[np.ndarray, np.ndarray]]:
    """A standing person, front view: (shape, colour) pairs in drawing order."""
    skin = np.array(rng.choice([[0.96, 0.80, 0.69], [0.78, 0.57, 0.44], [0.55, 0.37, 0.26], [0.36, 0.24, 0.17]]))
    shirt = rng.random(3) * 0.8 + 0.1
    trousers = np.array(rng.choice([[0.15, 0.2, 0.4], [0.2, 0.2, 0.2], [0.45, 0.35, 0.25], [0.3, 0.4, 0.3]]))
    hair = np.array(rng.choice([[0.1, 0.07, 0.05], [0.45, 0.3, 0.15], [0.85, 0.7, 0.4], [0.5, 0.5, 0.5]]))
    height = s * rng.uniform(0.78, 0.9)
    top = s * 0.95 - height
    cx = s * 0.5
    head_r = height * 0.075
    neck = top + 2 * head_r
    hip = neck + height * 0.36
    foot = top + height
    sh_w = height * rng.uniform(0.10, 0.13)
    limb = height * 0.038
    parts = []
    spread = rng.uniform(0.02, 0.12) * height
    for side in (-1, 1):
        parts.append((_capsule(yy, xx, (hip, cx + side * sh_w * 0.45), (foot - limb, cx + side * (sh_w * 0.45 + spread)), limb * 1.25), trousers))
        angle = rng.uniform(0.1, 1.2)  # arm raised from the body by this angle
        hand = (neck + height * 0.05 + np.cos(angle) * height * 0.32, cx + side * (sh_w + np.sin(angle) * height * 0.32))
        parts.append((_capsule(yy, xx, (neck + height * 0.05, cx + side * sh_w), hand, limb), shirt * 0.85))
        parts.append((_ellipse(yy, xx, hand[0], hand[1], limb * 1.3, limb * 1.3), skin))
    parts.append((_capsule(yy, xx, (neck + height * 0.06, cx), (hip, cx), sh_w), shirt))
    parts.append((_ellipse(yy, xx, top + head_r, cx, head_r * 1.15, head_r), skin))
    parts.append((_ellipse(yy, xx, top + head_r * 0.55, cx, head_r * 0.75, head_r * 1.05), hair))
    return parts


def render_sprite(rng: np.random.Generator, kind: str, size: int) -> np.ndarray:
    """One RGBA sprite (uint8 h, w, 4), cropped to its opaque pixels."""
    s = size * SS
    yy, xx = np.mgrid[0:s, 0:s].astype(np.float64) + 0.5
    parts = _person_parts(rng, yy, xx, s) if kind == "person" else _animal_parts(rng, kind, yy, xx, s)
    if rng.random() < 0.5:  # face left or right
        parts = [(m[:, ::-1], c) for m, c in parts]
    rgb = np.zeros((s, s, 3))
    alpha = np.zeros((s, s))
    shading = 0.8 + 0.2 * (1 - yy / s)  # light from above
    for mask, colour in parts:
        rgb[mask] = colour * shading[mask][:, None]
        alpha[mask] = 1.0
    premul = _downsample(rgb * alpha[..., None], SS)
    a = _downsample(alpha, SS)
    colour = np.where(a[..., None] > 0, premul / np.maximum(a[..., None], 1e-9), 0)
    rgba = np.concatenate([colour, a[..., None]], axis=-1)
    rgba8 = np.clip(rgba * 255 + 0.5, 0, 255).astype(np.uint8)
    ys, xs = np.nonzero(rgba8[..., 3])
    return rgba8[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1]


def write_default_data(
    out: str | Path, n_bg: int = 20, n_fg: int = 20, bg_size: int = 192, fg_size: int = 96, seed: int = 0
) -> None:
    """Write the built-in sources into `out` (bg/, bg_depth/, fg/); same arguments, same bytes."""
    out = Path(out)
    for sub in ("bg", "bg_depth", "fg"):
        (out / sub).mkdir(parents=True, exist_ok=True)
    for i in range(n_bg):
        rgb, depth = render_scene(np.random.default_rng([seed, 0, i]), bg_size)
        atomic_save_image(out / "bg" / f"scene_{i:03d}.png", rgb)
        atomic_save_image(out / "bg_depth" / f"scene_{i:03d}.png", depth_to_uint16(depth))
    for i in range(n_fg):
        kind = FG_CLASSES[i % len(FG_CLASSES)]
        rgba = render_sprite(np.random.default_rng([seed, 1, i]), kind, fg_size)
        atomic_save_image(out / "fg" / f"{kind}_{i:03d}.png", rgba)
    log.info("wrote %d bg and %d fg into %s", n_bg, n_fg, out)
