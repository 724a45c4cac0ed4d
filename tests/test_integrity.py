"""Damage to a composed dataset is caught before it reaches a metric: on opening (files
recorded in meta.json) or on reading (each record's CRC32), with the file, the sample
and the fix, never a traceback from cv2, pyarrow or numpy."""

import json
import shutil
import subprocess
import sys

import numpy as np
import pytest

from fgbg.core.errors import InputError
from fgbg.dataset.store import BG, INDEX, META, SHARDS, ComposedStore, shard_name
from tests.conftest import ROOT

FIX = "dvc checkout dataset/composed"


@pytest.fixture
def copy(tiny_dataset, tmp_path):
    out = tmp_path / "composed"
    shutil.copytree(tiny_dataset, out)
    return out


def _flip_byte(path, offset):
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_flipped_byte_in_a_records_alpha_stops_the_read(copy):
    ds = ComposedStore(copy)
    row = ds.index.iloc[13]
    before = ds.read(12)  # a neighbour stays readable
    _flip_byte(copy / SHARDS / shard_name(int(row.shard)), int(row.offset + row.patch_len))  # first alpha byte
    ds = ComposedStore(copy)
    with pytest.raises(InputError) as e:
        ds.read(13)
    assert f"{shard_name(int(row.shard))}: the record of sample 13 is damaged" in str(e.value) and FIX in str(e.value)
    assert all((a == b).all() for a, b in zip(before, ds.read(12)))


def test_a_dataset_of_an_older_format_is_refused_with_the_fix(copy):
    """Format 3 stored mask bits where format 4 stores the alpha: read as alpha they would be garbage."""
    meta = json.loads((copy / META).read_text())
    (copy / META).write_text(json.dumps({**meta, "format_version": 3}))
    with pytest.raises(InputError, match=r"dataset format 3, this fgbg reads 5; compose it again with `dvc repro compose`"):
        ComposedStore(copy)


def test_a_flipped_patch_byte_keeps_the_shard_size_so_the_crc_finds_it_on_reading(copy):
    """A flipped byte changes no size: meta.json's shard sizes still agree and the dataset opens;
    the read of that one sample stops, naming the shard, the sample and the fix."""
    ds = ComposedStore(copy)
    row = ds.index.iloc[11]
    shard = copy / SHARDS / shard_name(int(row.shard))
    _flip_byte(shard, int(row.offset) + int(row.patch_len) // 2)  # a byte inside the record's PNG patch
    assert shard.stat().st_size == json.loads((copy / META).read_text())["files"]["shard_bytes"][int(row.shard)]
    ds = ComposedStore(copy)  # opens: the size check cannot see it
    with pytest.raises(InputError) as e:
        ds.read(11)
    assert f"{shard}: the record of sample 11 is damaged" in str(e.value) and FIX in str(e.value)


@pytest.mark.parametrize("damage, message", [
    ("bg", "bg.npy: its checksum differs from meta.json's"),
    ("truncated shard", "00002.bin: shard is"),
    ("missing shard", "00002.bin: shard missing"),
    ("index", "index.parquet: its checksum differs"),
    ("meta", "meta.json: missing or damaged"),
])
def test_damage_is_found_when_the_dataset_is_opened(copy, damage, message):
    if damage == "bg":
        _flip_byte(copy / BG, 200)  # a pixel of the first bg
    elif damage == "truncated shard":
        shard = copy / SHARDS / shard_name(2)
        shard.write_bytes(shard.read_bytes()[: shard.stat().st_size // 2])
    elif damage == "missing shard":
        (copy / SHARDS / shard_name(2)).unlink()
    elif damage == "index":
        _flip_byte(copy / INDEX, 100)
    else:
        (copy / META).unlink()
    with pytest.raises(InputError) as e:
        ComposedStore(copy)
    assert message in str(e.value) and FIX in str(e.value)


def test_a_stale_split_is_refused_before_the_first_step(copy, tmp_path):
    split = {"train": [0, 1, 2], "val": [3, 999], "test": [4]}
    (tmp_path / "split.json").write_text(json.dumps(split))
    (tmp_path / "stats.json").write_text(json.dumps({}))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "stats.py"), "--dataset", str(copy),
                        "--split", str(tmp_path / "split.json"), "--out", str(tmp_path / "s.json")],
                       capture_output=True, text=True)
    assert r.returncode == 0  # the train ids exist
    ds = ComposedStore(copy)
    with pytest.raises(InputError, match=r"split.json: lists sample 999 \(1 beyond the dataset's 48\).*dvc repro split"):
        ds.check_ids(split["train"] + split["val"], str(tmp_path / "split.json"))


def test_a_damaged_dataset_stops_a_stage_with_one_error_line(copy, tmp_path):
    _flip_byte(copy / BG, 200)
    (tmp_path / "split.json").write_text(json.dumps({"train": [0]}))
    r = subprocess.run([sys.executable, str(ROOT / "stages" / "stats.py"), "--dataset", str(copy),
                        "--split", str(tmp_path / "split.json"), "--out", str(tmp_path / "s.json")],
                       capture_output=True, text=True)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("error: ") and FIX in r.stderr


def test_the_crc_is_of_the_stored_record(copy):
    import zlib

    ds = ComposedStore(copy)
    row = ds.index.iloc[5]
    data = (copy / SHARDS / shard_name(int(row.shard))).read_bytes()
    record = data[int(row.offset) : int(row.offset + row.patch_len + row.alpha_len + row.depth_len)]
    assert zlib.crc32(record) == int(row.crc32)
    assert np.issubdtype(ds.index["crc32"].dtype, np.integer)
