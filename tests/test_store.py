"""The composed dataset: reads rebuild what was composed; composing is deterministic,
independent of the number of workers and of the Dask cluster, resumable after a kill, and exportable."""

import dataclasses
import zlib
from pathlib import Path

import numpy as np
import pytest

from fgbg.composing.build import compose_dataset, make_shard
from fgbg.composing.compose import ground_plane_prior, placed_fg
from fgbg.composing.sources import load_sources
from fgbg.composing.storage import Folder
from fgbg.dataset.export import export_dataset
from fgbg.dataset.store import SHARDS, ComposedStore
from tests.conftest import TINY_COMPOSE, compose_sample


def _same_files(a, b):
    files = sorted(p.relative_to(a) for p in a.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(b) for p in b.rglob("*") if p.is_file())
    for f in files:
        assert (a / f).read_bytes() == (b / f).read_bytes(), f


def test_read_returns_the_composed_sample(tiny_data, tiny_dataset):
    ds = ComposedStore(tiny_dataset)
    assert len(ds) == 3 * 4 * 2 * 2
    src = load_sources(tiny_data, 16, 8)
    for i in (0, 5, len(ds) - 1):  # first, middle, last (last shard)
        row = ds.index.iloc[i]
        fg = placed_fg(src.fg[row.fg_idx], row.flip, row.h, row.w)
        depth_src = src.bg_depth[row.bg_idx] if src.bg_depth[row.bg_idx] is not None else ground_plane_prior(16, 0.4)
        fg_bg, mask, depth = compose_sample(src.bg[row.bg_idx], depth_src, fg, row.x, row.y)
        bg, r_fg_bg, r_mask, r_depth = ds.read(i)
        assert (bg == src.bg[row.bg_idx]).all()
        assert (r_fg_bg == fg_bg).all() and (r_mask == mask).all() and (r_depth == depth).all()
    assert ds.index["shard"].nunique() == 5  # 48 samples at 10 per shard
    assert len(list((tiny_dataset / SHARDS).iterdir())) == 5


def test_the_store_keeps_the_fg_alpha_and_the_mask_is_its_threshold(tiny_data, tiny_dataset):
    """The 8-bit alpha of the placed fg, exactly, inside its box; 0 outside; the mask is alpha >= mask_threshold."""
    ds = ComposedStore(tiny_dataset)
    src = load_sources(tiny_data, 16, 8)
    soft = 0
    for i in range(len(ds)):
        row = ds.index.iloc[i]
        fg = placed_fg(src.fg[row.fg_idx], row.flip, row.h, row.w)
        sample = ds.sample(i)
        want = np.zeros((16, 16), np.float32)
        want[row.y : row.y + row.h, row.x : row.x + row.w] = fg[..., 3] / 255
        assert sample.alpha.dtype == np.float32 and np.array_equal(sample.alpha, want), i
        assert np.array_equal(sample.mask, np.round(sample.alpha * 255) >= 128), i
        soft += int(((want > 0) & (want < 1)).sum())
    assert soft > 0  # the tiny fgs have soft edges: the alpha is more than the mask


def test_the_mask_is_the_alpha_at_the_composed_threshold_inclusive(tiny_data, tiny_dataset, tmp_path):
    """Composed with another mask_threshold, one that some soft pixels hold exactly: those are in the mask."""
    soft = np.concatenate([np.round(ComposedStore(tiny_dataset).sample(i).alpha * 255).ravel() for i in range(8)])
    level = int(np.median(soft[(soft > 0) & (soft < 255)]))
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "c", cfg=dataclasses.replace(TINY_COMPOSE, mask_threshold=level))
    ds = ComposedStore(tmp_path / "c")
    at_level = 0
    for i in range(len(ds)):
        sample = ds.sample(i)
        alpha = np.round(sample.alpha * 255)
        assert np.array_equal(sample.mask, alpha >= level), i
        at_level += int((alpha == level).sum())
    assert level != 128 and at_level > 0


def test_composing_again_in_parallel_gives_identical_bytes(tiny_data, tiny_dataset, tmp_path):
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=dataclasses.replace(TINY_COMPOSE, workers=2))
    _same_files(tiny_dataset, tmp_path / "composed")


def test_a_killed_run_leaves_no_broken_shard_and_a_rerun_finishes_it(tiny_data, tiny_dataset, tmp_path, monkeypatch):
    import fgbg.composing.build as build

    out = tmp_path / "composed"
    calls = []

    def dies_on_third(k, job):
        calls.append(k)
        if len(calls) == 3:
            raise KeyboardInterrupt  # as if killed mid-run
        return make_shard(k, job)

    monkeypatch.setattr(build, "make_shard", dies_on_third)
    with pytest.raises(KeyboardInterrupt):
        compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
    work = tmp_path / "composed.partial"
    assert not out.exists() and len(list((work / SHARDS).glob("*.bin"))) == 2
    assert not list(work.rglob("*.tmp"))
    monkeypatch.setattr(build, "make_shard", make_shard)
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
    _same_files(tiny_dataset, out)
    assert not work.exists()


@pytest.mark.parametrize("killed_at", ["shards/00002.bin", "rows/00002.parquet"])
def test_a_kill_between_a_shard_and_its_rows_makes_that_shard_again(tiny_data, tiny_dataset, tmp_path, monkeypatch,
                                                                   killed_at):
    """A shard's file is written before its rows, and only the rows mark it done: killed while writing either,
    the rerun makes shard 2 and the rest again, and the bytes are those of an unbroken run."""
    import fgbg.composing.build as build

    real_write = Folder.write

    def write(self, rel, data):
        if rel == killed_at:
            raise KeyboardInterrupt
        return real_write(self, rel, data)

    monkeypatch.setattr(Folder, "write", write)
    with pytest.raises(KeyboardInterrupt):
        compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=TINY_COMPOSE)
    monkeypatch.setattr(Folder, "write", real_write)
    remade = []
    monkeypatch.setattr(build, "make_shard", lambda k, job: remade.append(k) or make_shard(k, job))
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=TINY_COMPOSE)
    assert remade == [2, 3, 4]
    _same_files(tiny_dataset, tmp_path / "composed")


def test_a_composed_folder_holds_the_dataset_and_nothing_else(tiny_dataset):
    """No bookkeeping (plan.json, rows/) and no temporary file is left in a finished dataset."""
    files = sorted(str(p.relative_to(tiny_dataset)) for p in tiny_dataset.rglob("*") if p.is_file())
    assert files == ["bg.npy", "bg_depth.npy", "index.parquet", "meta.json",
                     *(f"shards/{k:05d}.bin" for k in range(5))]


def _interrupt(*args, **kwargs):
    raise KeyboardInterrupt  # as if killed here


def test_another_plan_s_partial_and_out_are_replaced(tiny_data, tiny_dataset, tmp_path, monkeypatch):
    """`<out>` from another plan (shard_size 2: 24 shards), and beside it another plan's `<out>.partial`, killed
    once mid-run and once just before its rename: composing this plan gives its bytes and no stale file."""
    import fgbg.composing.build as build

    other = dataclasses.replace(TINY_COMPOSE, shard_size=2)
    out = tmp_path / "composed"
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=other)
    for kill in ("mid-run", "before the rename"):
        with monkeypatch.context() as m:
            if kill == "mid-run":
                m.setattr(build, "make_shard", lambda k, job: _interrupt() if k == 3 else make_shard(k, job))
            else:
                m.setattr(Folder, "move_to", _interrupt)
            with pytest.raises(KeyboardInterrupt):
                compose_dataset(data_dir=tiny_data, out_dir=out, cfg=other)
        assert (tmp_path / "composed.partial").is_dir()
        compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
        _same_files(tiny_dataset, out)
        assert not (tmp_path / "composed.partial").exists()
        compose_dataset(data_dir=tiny_data, out_dir=out, cfg=other)  # back to the other plan for the next kill


def test_out_with_a_trailing_slash_composes_beside_it(tiny_data, tiny_dataset, tmp_path):
    compose_dataset(data_dir=tiny_data, out_dir=f"{tmp_path / 'composed'}/", cfg=TINY_COMPOSE)
    _same_files(tiny_dataset, tmp_path / "composed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["composed"]


@pytest.mark.parametrize("killed_at", ["rename", "meta.json", "index.parquet"])
def test_a_kill_while_completing_keeps_every_shard(tiny_data, tiny_dataset, tmp_path, monkeypatch, killed_at):
    """Killed just before `<out>.partial` is renamed to `<out>`, or while meta.json or the index (written
    before meta.json) is written: the rerun composes nothing again and gives the same bytes."""
    import fgbg.composing.build as build

    out = tmp_path / "composed"
    real_move, real_write = Folder.move_to, Folder.write

    def move_to(self, other):
        if killed_at == "rename" and Path(other.root) == out:
            raise KeyboardInterrupt
        return real_move(self, other)

    def write(self, rel, data):
        if rel == killed_at:
            raise KeyboardInterrupt
        return real_write(self, rel, data)

    monkeypatch.setattr(Folder, "move_to", move_to)
    monkeypatch.setattr(Folder, "write", write)
    with pytest.raises(KeyboardInterrupt):
        compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
    monkeypatch.setattr(Folder, "move_to", real_move)
    monkeypatch.setattr(Folder, "write", real_write)
    composed = []
    monkeypatch.setattr(build, "make_shard", lambda k, job: composed.append(k) or make_shard(k, job))
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=TINY_COMPOSE)
    assert composed == []  # nothing composed again
    _same_files(tiny_dataset, out)
    assert not (tmp_path / "composed.partial").exists()


def test_jpeg_fg_bg_is_smaller_and_close(tiny_data, tiny_dataset, tmp_path):
    out = tmp_path / "jpeg"
    compose_dataset(data_dir=tiny_data, out_dir=out, cfg=dataclasses.replace(TINY_COMPOSE, fg_bg_format="jpeg", jpeg_quality=90))
    png, jpg = ComposedStore(tiny_dataset), ComposedStore(out)
    for i in (0, 7):
        a, b = png.read(i), jpg.read(i)
        assert (a[2] == b[2]).all() and (a[3] == b[3]).all()  # mask and depth are lossless
        assert np.abs(a[1].astype(int) - b[1].astype(int)).mean() < 8


def test_export_writes_named_plain_files(tiny_dataset, tmp_path):
    from PIL import Image

    assert export_dataset(tiny_dataset, tmp_path / "export") == 48
    ds = ComposedStore(tiny_dataset)
    row = ds.index.iloc[0]
    name = f"000000_{row.fg}_{row.bg}_x{row.x}_y{row.y}"
    depth = np.asarray(Image.open(tmp_path / "export" / "depth" / f"{name}.png"))
    assert depth.dtype == np.uint16
    assert np.abs(depth / 65535 - ds.read(0)[3]).max() <= 1 / 65535
    mask = np.asarray(Image.open(tmp_path / "export" / "mask" / f"{name}.png"))
    assert set(np.unique(mask)) <= {0, 255} and ((mask > 0) == ds.read(0)[2]).all()
    assert len(list((tmp_path / "export" / "fg_bg").iterdir())) == 48


def test_export_limit_draws_samples_spread_over_the_sources(tiny_dataset, tmp_path):
    ds = ComposedStore(tiny_dataset)
    assert ds.index.head(6)["fg"].nunique() == 1  # the first 6 samples are all one fg
    export_dataset(tiny_dataset, tmp_path / "a", limit=6, seed=1)
    names = sorted(p.stem for p in (tmp_path / "a" / "mask").iterdir())
    assert len(names) == 6 and len({"_".join(n.split("_")[1:3]) for n in names}) >= 3  # several fgs
    export_dataset(tiny_dataset, tmp_path / "b", limit=6, seed=1)
    assert names == sorted(p.stem for p in (tmp_path / "b" / "mask").iterdir())  # seeded


def test_an_export_that_fails_midway_leaves_nothing_behind(tiny_dataset, tmp_path, monkeypatch):
    from fgbg.core.errors import InputError

    real_read = ComposedStore.read

    def damaged(self, i):
        if i == 3:
            raise InputError("corrupt image record")
        return real_read(self, i)

    monkeypatch.setattr(ComposedStore, "read", damaged)
    with pytest.raises(InputError):
        export_dataset(tiny_dataset, tmp_path / "export", limit=10)
    assert list(tmp_path.iterdir()) == []  # no export/, no export.partial/
    monkeypatch.setattr(ComposedStore, "read", real_read)
    assert export_dataset(tiny_dataset, tmp_path / "export", limit=4) == 4
    assert export_dataset(tiny_dataset, tmp_path / "export", limit=2) == 2  # a previous export is replaced
    assert len(list((tmp_path / "export" / "mask").iterdir())) == 2
    (tmp_path / "export" / "notes.txt").write_text("mine")
    with pytest.raises(InputError, match="holds more than an export"):
        export_dataset(tiny_dataset, tmp_path / "export", limit=2)


def test_a_failed_compose_leaves_nothing_behind(tmp_path):
    (tmp_path / "data" / "bg").mkdir(parents=True)
    with pytest.raises(ValueError):
        compose_dataset(data_dir=tmp_path / "data", out_dir=tmp_path / "out", cfg=TINY_COMPOSE)
    assert list(tmp_path.iterdir()) == [tmp_path / "data"]


def full_on_shard_3(k, job):
    """A shard maker whose disk fills at shard 3 (module level: Dask workers import it by name)."""
    import errno

    if k == 3:
        raise OSError(errno.ENOSPC, "No space left on device")
    return make_shard(k, job)


@pytest.mark.parametrize("workers", [1, 2])
def test_a_full_disk_is_one_clear_error_and_the_rerun_resumes(tiny_data, tiny_dataset, tmp_path, monkeypatch, workers):
    """With 2 workers the error comes back through Dask (the patch reaches the client's make_shard only,
    hence write="client")."""
    import fgbg.composing.build as build
    from fgbg.core.errors import InputError

    monkeypatch.setattr(build, "make_shard", full_on_shard_3)
    cfg = dataclasses.replace(TINY_COMPOSE, workers=workers)
    with pytest.raises(InputError, match=r"composed.partial: the disk is full .* finished shard\(s\) of 5 are kept"):
        compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg, write="client")
    monkeypatch.setattr(build, "make_shard", make_shard)
    compose_dataset(data_dir=tiny_data, out_dir=tmp_path / "composed", cfg=cfg)
    _same_files(tiny_dataset, tmp_path / "composed")


def test_png_patches_are_stored_without_row_filters(tiny_dataset):
    """Every scanline of a stored PNG patch has filter type 0 (none): about 12% more bytes, and 2/3 of the
    decoding time of an adaptively filtered one (imageio.encode_image), and it is read every epoch."""
    import struct

    ds = ComposedStore(tiny_dataset)
    assert ds.meta["compose"]["fg_bg_format"] == "png"
    for i in range(len(ds)):
        offset, n_patch = (int(v) for v in ds.index.loc[i, ["offset", "patch_len"]])
        with open(tiny_dataset / SHARDS / f"{int(ds.index.shard[i]):05d}.bin", "rb") as f:
            f.seek(offset)
            png = f.read(n_patch)
        pos, idat, width = 8, b"", 0
        while pos < len(png):  # chunks: length, type, data, CRC
            length, kind = struct.unpack(">I4s", png[pos : pos + 8])
            data = png[pos + 8 : pos + 8 + length]
            if kind == b"IHDR":
                width = struct.unpack(">I", data[:4])[0]
            idat += data if kind == b"IDAT" else b""
            pos += 12 + length
        rows = zlib.decompress(idat)
        stride = 1 + 3 * width  # a filter byte, then RGB
        assert len(rows) % stride == 0 and set(rows[::stride]) == {0}, i


def test_encode_image_takes_grey_rgb_and_rgba_and_refuses_other_channel_counts():
    from fgbg.core.imageio import decode_image, encode_image

    grey = np.arange(12, dtype=np.uint8).reshape(3, 4, 1)
    assert np.array_equal(decode_image(encode_image(grey)), grey[..., 0])
    with pytest.raises(ValueError, match="2 channels; use 1"):
        encode_image(np.zeros((3, 4, 2), np.uint8))
