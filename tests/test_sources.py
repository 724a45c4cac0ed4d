"""Source loading: size rules, modes, zip archives, and errors that name every bad file."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import fgbg.composing.source_files
from fgbg.composing.sources import MAX_PIXELS, SourceError, load_sources


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _warnings(caplog) -> list[str]:
    """The warnings logged, sorted."""
    return sorted(r.getMessage() for r in caplog.records if r.levelname == "WARNING")


def _opaque(h, w):
    a = np.zeros((h, w, 4), np.uint8)
    a[..., 3] = 255
    return a


def test_size_rules(tmp_path):
    _write(tmp_path / "bg" / "wide.png", _png(np.zeros((20, 40, 3), np.uint8)))
    _write(tmp_path / "fg" / "tall.png", _png(_opaque(30, 10)))
    src = load_sources(tmp_path, bg_size=10, fg_size=6)
    assert src.bg.shape == (1, 10, 10, 3)  # shorter side to 10, centre crop
    assert src.fg[0].shape == (6, 2, 4)  # longer side to 6, aspect kept
    assert src.bg_depth == [None]


def test_modes_are_converted_and_fg_mask_replaces_alpha(tmp_path):
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    _write(tmp_path / "bg" / "sixteen.png", _png(grey16))
    cmyk = io.BytesIO()
    Image.new("CMYK", (8, 8), (0, 255, 0, 0)).save(cmyk, format="JPEG")
    _write(tmp_path / "bg" / "print.jpg", cmyk.getvalue())
    pal = Image.new("P", (8, 8), 1)
    pal.putpalette([0, 0, 0, 255, 0, 0] + [0] * 762)
    pal.info["transparency"] = 0
    buf = io.BytesIO()
    pal.save(buf, format="PNG", transparency=0)
    _write(tmp_path / "fg" / "palette.png", buf.getvalue())
    _write(tmp_path / "fg" / "plain.png", _png(np.full((8, 8, 3), 200, np.uint8)))
    mask = np.zeros((8, 8), np.uint8)
    mask[2:6, 2:6] = 255
    _write(tmp_path / "fg_mask" / "plain.png", _png(mask))
    src = load_sources(tmp_path, bg_size=8, fg_size=8)
    assert src.bg_names == ["print", "sixteen"]
    assert src.bg[1][7, 7, 0] == round(63000 / 257)  # 16-bit scaled to 8-bit
    assert src.bg[0][0, 0, 1] < 60  # CMYK magenta -> little green in RGB
    assert src.fg[0][0, 0].tolist() == [255, 0, 0, 255]  # palette -> RGBA
    assert (src.fg[1][..., 3] == mask).all()  # fg_mask replaced the (missing) alpha


def test_sources_from_zip_archives_and_zip_slip_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bg.zip", "w") as zf:
        zf.writestr("scenes/street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    with zipfile.ZipFile(tmp_path / "fg.zip", "w") as zf:
        zf.writestr("cat.png", _png(_opaque(8, 8)))
    src = load_sources(tmp_path, 8, 8)
    assert src.bg_names == ["scenes/street"] and src.fg_names == ["cat"]  # named by the path in the archive
    with zipfile.ZipFile(tmp_path / "fg.zip", "a") as zf:
        zf.writestr("../evil.png", _png(_opaque(8, 8)))
    with pytest.raises(SourceError, match=r"fg.zip:../evil.png: entry path leaves the archive; refused"):
        load_sources(tmp_path, 8, 8)


def test_missing_data_dir_says_how_to_get_it_and_dvc_pull_only_with_a_remote(tmp_path):
    with pytest.raises(SourceError, match="make data") as e:
        load_sources(tmp_path / "data", 16, 8)
    assert "dvc pull" not in str(e.value)
    (tmp_path / ".dvc").mkdir()
    (tmp_path / ".dvc" / "config").write_text("[core]\n    remote = store\n['remote \"store\"']\n    url = /tmp/store\n")
    with pytest.raises(SourceError, match="pull them with `dvc pull data.dvc`"):
        load_sources(tmp_path / "data", 16, 8)


def test_every_problem_is_reported_at_once(tmp_path, monkeypatch):
    _write(tmp_path / "bg" / "ok.png", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(tmp_path / "bg" / "ok.jpg", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(tmp_path / "bg" / "broken.jpg", b"not an image")
    _write(tmp_path / "bg" / "huge.png", _png(np.zeros((8, 200, 3), np.uint8)))
    noise = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    _write(tmp_path / "bg" / "cut.png", _png(noise)[:1500])
    _write(tmp_path / "fg" / "no_alpha.png", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(tmp_path / "fg" / "empty_alpha.png", _png(np.zeros((8, 8, 4), np.uint8)))
    _write(tmp_path / "fg" / "tiny.png", _png(_opaque(2, 2)))
    _write(tmp_path / "bg_depth" / "orphan.png", _png(np.zeros((8, 8), np.uint16)))
    monkeypatch.setattr("fgbg.composing.sources.MAX_PIXELS", 1200)
    with pytest.raises(SourceError) as e:
        load_sources(tmp_path, 8, 4)
    msg = str(e.value)
    assert "8 problem(s)" in msg, msg
    assert "the name 'ok' is used more than once" in msg
    assert "broken.jpg: not an image, or a format that is not supported" in msg and "BytesIO" not in msg
    assert "cut.png: cannot read" in msg  # truncated
    assert "huge.png: absurd size 200x8" in msg
    assert "no_alpha.png: foreground has no alpha" in msg and "fg_mask/no_alpha.png" in msg
    assert "empty_alpha.png: foreground alpha is empty" in msg
    assert "tiny.png: only 2x2 pixels" in msg
    assert "orphan.png: no bg named 'orphan'" in msg
    assert MAX_PIXELS == 40_000_000


def test_every_image_at_any_depth_and_every_archive_is_read_and_counted(tmp_path, caplog):
    """The original shipped its foregrounds as three archives; subfolders are common too."""
    _write(tmp_path / "bg" / "street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(tmp_path / "fg" / "set1" / "cat.png", _png(_opaque(8, 8)))
    _write(tmp_path / "fg" / "set2" / "cat.png", _png(_opaque(8, 8)))  # same file name, other folder
    for name, count in (("fg2.zip", 2), ("deep/fg3.zip", 1)):
        (tmp_path / "fg" / name).parent.mkdir(parents=True, exist_ok=True)
        with zipfile.ZipFile(tmp_path / "fg" / name, "w") as zf:
            for k in range(count):
                zf.writestr(f"dogs/dog{k}.png", _png(_opaque(8, 8)))
    with zipfile.ZipFile(tmp_path / "fg.zip", "w") as zf:
        zf.writestr("person.png", _png(_opaque(8, 8)))
    _write(tmp_path / "fg_mask" / "set2" / "cat.png", _png(np.full((8, 8), 255, np.uint8)))
    with caplog.at_level("INFO"):
        src = load_sources(tmp_path, 8, 8)
    assert src.fg_names == ["deep/fg3/dogs/dog0", "fg2/dogs/dog0", "fg2/dogs/dog1", "person", "set1/cat", "set2/cat"]
    assert f"{tmp_path / 'fg' / 'fg2.zip'}: 2 image(s)" in caplog.text
    assert f"{tmp_path / 'fg'}/: 2 image(s)" in caplog.text and f"{tmp_path / 'fg.zip'}: 1 image(s)" in caplog.text


def test_whatever_is_not_read_gets_a_warning_saying_where_it_goes(tmp_path, caplog):
    _write(tmp_path / "bg" / "street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(tmp_path / "bg" / "notes.txt", b"shot in March")
    with zipfile.ZipFile(tmp_path / "fg.zip", "w") as zf:
        zf.writestr("cat.png", _png(_opaque(8, 8)))
    with zipfile.ZipFile(tmp_path / "fg2.zip", "w") as zf:  # beside fg.zip: not a source
        zf.writestr("dog.png", _png(_opaque(8, 8)))
    _write(tmp_path / "photos" / "x.png", _png(np.zeros((8, 8, 3), np.uint8)))
    with caplog.at_level("WARNING"):
        src = load_sources(tmp_path, 8, 8)
    assert src.fg_names == ["cat"]
    warnings = _warnings(caplog)
    assert any("fg2.zip: not read; move it into data/fg/" in w for w in warnings), warnings
    assert any("photos: not read; sources go in data/bg/" in w for w in warnings), warnings
    assert any("notes.txt: not read" in w for w in warnings), warnings
    assert len(warnings) == 3


def test_a_zip_bomb_is_refused_from_its_header_before_it_is_read(tmp_path, monkeypatch):
    with zipfile.ZipFile(tmp_path / "bg.zip", "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("street.png", _png(np.zeros((8, 8, 3), np.uint8)))
        zf.writestr("bomb.png", b"\0" * 5000)  # compresses to a few bytes
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    monkeypatch.setattr("fgbg.composing.source_files.MAX_ENTRY_BYTES", 4000)
    read = []
    real_read = fgbg.composing.source_files.read_entry
    monkeypatch.setattr(fgbg.composing.source_files, "read_entry", lambda archive, info: read.append(info.filename) or real_read(archive, info))
    with pytest.raises(SourceError, match=r"bg.zip:bomb.png: 5,000 bytes uncompressed, more than an image"):
        load_sources(tmp_path, 8, 8)
    assert read == ["street.png"]  # the bomb was never decompressed


def _lying_zip(path, method: int, payload: bytes, declared: int) -> None:
    """A zip whose one entry, bomb.png, holds `payload` but whose headers (local and central) declare
    `declared` bytes uncompressed: what a hostile archive does to pass a header check."""
    with zipfile.ZipFile(path, "w", method) as zf:
        zf.writestr("bomb.png", payload)
    raw = bytearray(path.read_bytes())
    for signature, size_at in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):  # uncompressed size field
        at = raw.index(signature)
        raw[at + size_at : at + size_at + 4] = declared.to_bytes(4, "little")
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
                         ids=["stored", "deflate", "bzip2", "lzma"])
def test_a_zip_whose_header_lies_is_refused_without_decompressing_it(tmp_path, method):
    import tracemalloc

    _lying_zip(tmp_path / "bg.zip", method, b"\0" * (16 * 2**20), declared=1000)  # 16 MiB behind a 1,000-byte header
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    tracemalloc.start()
    try:
        with pytest.raises(SourceError, match=r"bg.zip:bomb.png: holds more than the 1,000 bytes its header declares; "
                                              r"refused \(a zip bomb, or a damaged archive\)"):
            load_sources(tmp_path, 8, 8)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 2 * 2**20, f"{peak:,} bytes allocated: the entry was decompressed past its declared size"


def test_a_zip_entry_with_a_wrong_checksum_is_refused(tmp_path):
    with zipfile.ZipFile(tmp_path / "bg.zip", "w", zipfile.ZIP_STORED) as zf:
        zf.writestr("street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    raw = bytearray((tmp_path / "bg.zip").read_bytes())
    raw[raw.index(b"IDAT") + 6] ^= 0xFF  # a flipped byte inside the stored image
    (tmp_path / "bg.zip").write_bytes(bytes(raw))
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    with pytest.raises(SourceError, match=r"bg.zip:street.png: damaged \(its CRC-32 does not match the archive's\); "
                                          r"re-create the archive"):
        load_sources(tmp_path, 8, 8)


def test_sources_over_the_memory_budget_are_refused_an_archive_whole_from_its_headers(tmp_path, monkeypatch):
    png = _png(np.zeros((8, 8, 3), np.uint8))
    with zipfile.ZipFile(tmp_path / "bg.zip", "w") as zf:
        for i in range(3):
            zf.writestr(f"street{i}.png", png)
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    fg_bytes = (tmp_path / "fg" / "cat.png").stat().st_size
    monkeypatch.setattr("fgbg.composing.source_files.MAX_SOURCE_BYTES", 3 * len(png) - 1)  # the zip is one byte short
    opened = []
    monkeypatch.setattr("fgbg.composing.archive.open", lambda *a, **k: opened.append(a) or open(*a, **k), raising=False)
    with pytest.raises(SourceError) as e:
        load_sources(tmp_path, 8, 8)
    assert str(e.value).splitlines()[1:] == [  # one line: no "no images" beside it
        f"{tmp_path / 'bg.zip'}: {3 * len(png):,} bytes of images, past the {3 * len(png) - 1:,} bytes of "
        f"sources fgbg holds in memory at once ({3 * len(png) - 1:,} left); downscale the images or use fewer"]
    assert opened == []  # refused from the headers alone
    monkeypatch.setattr("fgbg.composing.source_files.MAX_SOURCE_BYTES", 3 * len(png) + fg_bytes - 1)  # the fg is one byte short
    with pytest.raises(SourceError, match=rf"fg/cat.png: {fg_bytes:,} bytes of images, past the"):
        load_sources(tmp_path, 8, 8)
    monkeypatch.setattr("fgbg.composing.source_files.MAX_SOURCE_BYTES", 3 * len(png) + fg_bytes)
    assert load_sources(tmp_path, 8, 8).bg_names == ["street0", "street1", "street2"]


def test_a_folder_file_larger_than_any_image_is_refused_before_it_is_read(tmp_path, monkeypatch):
    _write(tmp_path / "bg" / "street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    with open(tmp_path / "bg" / "huge.png", "wb") as f:
        f.truncate(5000)  # sparse: nothing is written, nothing must be read
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    monkeypatch.setattr("fgbg.composing.source_files.MAX_ENTRY_BYTES", 4000)
    monkeypatch.setattr(Path, "read_bytes", lambda self: pytest.fail(f"read {self}") if self.name == "huge.png" else b"")
    with pytest.raises(SourceError, match=r"bg/huge.png: 5,000 bytes uncompressed, more than an image of"):
        load_sources(tmp_path, 8, 8)


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA],
                         ids=["stored", "deflate", "bzip2", "lzma"])
def test_honest_entries_of_every_method_read_back_exactly_with_an_extra_field(tmp_path, method):
    png = _png(np.arange(192, dtype=np.uint8).reshape(8, 8, 3))
    with zipfile.ZipFile(tmp_path / "bg.zip", "w", method) as zf:
        info = zipfile.ZipInfo("street.png")
        info.compress_type = method
        info.extra = b"UT\x05\x00\x01\x00\x00\x00\x00"  # an extended-timestamp field, as Info-ZIP writes
        zf.writestr(info, png)
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    src = load_sources(tmp_path, 8, 8)
    assert src.bg[0].tolist() == np.arange(192, dtype=np.uint8).reshape(8, 8, 3).tolist()


def _patched(path, offset_from_name_end: int, value: int) -> None:
    """One byte of the first entry's data, counted from the end of its local header's name."""
    raw = bytearray(path.read_bytes())
    name_len, extra_len = int.from_bytes(raw[26:28], "little"), int.from_bytes(raw[28:30], "little")
    raw[30 + name_len + extra_len + offset_from_name_end] = value
    path.write_bytes(bytes(raw))


@pytest.mark.parametrize("damage", ["lzma properties", "deflate stream", "encrypted", "method", "bad utf-8 name",
                                    "central directory offset"])
def test_a_damaged_archive_is_one_problem_line_never_a_traceback(tmp_path, damage):
    method = zipfile.ZIP_LZMA if damage == "lzma properties" else zipfile.ZIP_DEFLATED
    with zipfile.ZipFile(tmp_path / "bg.zip", "w", method) as zf:
        zf.writestr("street.png", _png(np.arange(192, dtype=np.uint8).reshape(8, 8, 3)))
    path, raw = tmp_path / "bg.zip", bytearray((tmp_path / "bg.zip").read_bytes())
    central, end = raw.index(b"PK\x01\x02"), raw.index(b"PK\x05\x06")
    if damage == "lzma properties":
        _patched(path, 4, 0xFF)  # the lc/lp/pb byte: out of range
    elif damage == "deflate stream":
        _patched(path, 0, 0xFF)  # a reserved block type
    else:
        if damage == "encrypted":
            raw[central + 8] |= 0x1
        elif damage == "method":
            raw[central + 10] = 99
        elif damage == "bad utf-8 name":
            raw[central + 9] |= 0x08  # flag bit 11: the name is UTF-8
            raw[central + 46] = 0xFF
        else:
            offset = int.from_bytes(raw[end + 16 : end + 20], "little")
            raw[end + 16 : end + 20] = (offset + 100).to_bytes(4, "little")
        path.write_bytes(bytes(raw))
    _write(tmp_path / "fg" / "cat.png", _png(_opaque(8, 8)))
    with pytest.raises(SourceError) as e:
        load_sources(tmp_path, 8, 8)
    lines = str(e.value).splitlines()
    assert len(lines) == 2 and lines[1].startswith(str(path)) and "re-create" in lines[1], lines


def test_symlinks_are_taken_as_dvc_add_takes_them_and_each_is_named(tmp_path, caplog):
    """`dvc add data` records a file link's target bytes and nothing under a folder link; fgbg reads
    the same, and names every link it does not simply read."""
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    _write(data / "bg" / "street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(data / "fg" / "cat.png", _png(_opaque(8, 8)))
    _write(outside / "dog.png", _png(_opaque(8, 8)))
    (data / "fg" / "dog.png").symlink_to(outside / "dog.png")  # a file link that leaves data/: read, named
    (data / "fg" / "again.png").symlink_to(data / "fg" / "cat.png")  # a file link inside data/: read
    (data / "fg" / "more").symlink_to(outside, target_is_directory=True)  # a folder link: not followed, named
    (data / "fg" / "gone.png").symlink_to(outside / "gone.png")  # broken: named
    with caplog.at_level("WARNING"):
        src = load_sources(data, 8, 8)
    assert src.fg_names == ["again", "cat", "dog"]
    warnings = _warnings(caplog)
    fg = data / "fg"
    assert warnings == [
        f"{fg / 'dog.png'}: a symbolic link to {outside / 'dog.png'}, outside {data}/; read as that file, which "
        "`dvc add data` records in its place",
        f"{fg / 'gone.png'}: a broken symbolic link (to {outside / 'gone.png'}); not read. Fix or delete it",
        f"{fg / 'more'}: a symbolic link to the folder {outside}; not read, as `dvc add data` does not record what "
        f"is under it. Move or copy the folder itself into {fg}/",
    ]


def test_a_linked_kind_folder_is_not_followed_and_a_linked_kind_archive_is_named(tmp_path, caplog):
    data, outside = tmp_path / "data", tmp_path / "elsewhere"
    _write(outside / "fg" / "cat.png", _png(_opaque(8, 8)))
    with zipfile.ZipFile(outside / "bg.zip", "w") as zf:
        zf.writestr("street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    data.mkdir()
    (data / "fg").symlink_to(outside / "fg", target_is_directory=True)
    (data / "bg.zip").symlink_to(outside / "bg.zip")
    with caplog.at_level("WARNING"), pytest.raises(SourceError, match=r"data/fg/ \(or fg.zip\): no images"):
        load_sources(data, 8, 8)
    warnings = _warnings(caplog)
    assert warnings == [
        f"{data / 'bg.zip'}: a symbolic link to {outside / 'bg.zip'}, outside {data}/; read as that file, which "
        "`dvc add data` records in its place",
        f"{data / 'fg'}: a symbolic link to the folder {outside / 'fg'}; not read, as `dvc add data` does not record "
        f"what is under it. Move or copy the folder itself into {data}/",
    ]


def test_hidden_files_and_entries_that_are_not_images_are_named(tmp_path, caplog):
    _write(tmp_path / "bg" / "street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    _write(tmp_path / "bg" / ".DS_Store", b"finder")
    _write(tmp_path / "bg" / ".cache" / "x.png", b"")
    with zipfile.ZipFile(tmp_path / "fg.zip", "w") as zf:
        zf.writestr("cat.png", _png(_opaque(8, 8)))
        zf.writestr("dog.jpg", b"jpeg")
        zf.writestr("__MACOSX/._cat.png", b"resource fork")
    with caplog.at_level("WARNING"):
        load_sources(tmp_path, 8, 8)
    warnings = _warnings(caplog)
    assert warnings == [
        f"{tmp_path / 'bg'}/: 2 hidden file(s) or folder(s) not read (names starting with '.', such as .DS_Store or "
        "__MACOSX/._cat.png)",
        f"{tmp_path / 'fg.zip'}: 1 hidden entry not read (names starting with '.', such as .DS_Store or "
        "__MACOSX/._cat.png)",
        f"{tmp_path / 'fg.zip'}:dog.jpg: not read: takes .png files; convert or remove it",
    ]


def test_sources_are_turned_upright_by_their_exif_orientation(tmp_path):
    _write(tmp_path / "bg" / "street.png", _png(np.zeros((8, 8, 3), np.uint8)))
    exif = Image.Exif()
    exif[0x0112] = 6  # stored landscape, shown rotated 90 degrees clockwise
    buf = io.BytesIO()
    Image.fromarray(_opaque(10, 30)).save(buf, format="PNG", exif=exif)  # stored 30 wide, 10 tall
    _write(tmp_path / "fg" / "cat.png", buf.getvalue())
    src = load_sources(tmp_path, 8, 6)
    assert src.fg[0].shape == (6, 2, 4)  # shown 10 wide, 30 tall: longer side 6
