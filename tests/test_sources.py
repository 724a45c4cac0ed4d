"""Source loading: size rules, modes, zip archives, and errors that name every bad file."""

import io
import zipfile

import numpy as np
import pytest
from PIL import Image

from fgbg.sources import MAX_PIXELS, SourceError, load_sources


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(buf, format="PNG")
    return buf.getvalue()


def _write(path, data: bytes):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


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
    assert src.bg_names == ["street"] and src.fg_names == ["cat"]
    with zipfile.ZipFile(tmp_path / "fg.zip", "a") as zf:
        zf.writestr("../evil.png", _png(_opaque(8, 8)))
    with pytest.raises(SourceError, match=r"fg.zip:../evil.png: entry path leaves the archive; refused"):
        load_sources(tmp_path, 8, 8)


def test_missing_data_dir_says_how_to_get_it(tmp_path):
    with pytest.raises(SourceError, match="fgbg synth data"):
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
    monkeypatch.setattr("fgbg.sources.MAX_PIXELS", 1200)
    with pytest.raises(SourceError) as e:
        load_sources(tmp_path, 8, 4)
    msg = str(e.value)
    assert "8 problem(s)" in msg, msg
    assert "the name 'ok' is used more than once" in msg
    assert "broken.jpg: cannot read" in msg
    assert "cut.png: cannot read" in msg  # truncated
    assert "huge.png: absurd size 200x8" in msg
    assert "no_alpha.png: foreground has no alpha" in msg and "fg_mask/no_alpha.png" in msg
    assert "empty_alpha.png: foreground alpha is empty" in msg
    assert "tiny.png: only 2x2 pixels" in msg
    assert "orphan.png: no bg named 'orphan'" in msg
    assert MAX_PIXELS == 40_000_000
