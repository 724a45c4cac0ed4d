"""Reading zip entries with hard byte limits, whatever their headers say.

A zip header declares each entry's uncompressed size, and zipfile trusts it only after
decompressing: bzip2 and lzma entries are inflated a whole input chunk at a time, with no
bound, so a few hundred bytes can become gigabytes before a CRC error says the header lied.
Here every entry is streamed from the archive in small chunks and decompressed with an
output bound of its declared size + 1 byte: an entry that holds more is refused the moment
it overflows, at a cost of at most one chunk of memory. The archive as a whole is bounded
too, by fgbg.composing.source_files, from the sizes its headers declare, before anything is read.

The formats are zipfile's: stored, deflate, bzip2 and lzma (a 4-byte version and
properties-size prefix, then LZMA1 properties and a raw stream); encrypted entries and other
methods are refused with the fix.
"""

from __future__ import annotations

import bz2
import lzma
import struct
import zipfile
import zlib
from pathlib import Path

CHUNK = 2**16  # compressed bytes read at a time
_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")  # the 30 fixed bytes before an entry's name, extra field and data
_LOCAL_SIGNATURE = 0x04034B50


class EntryError(Exception):
    """An entry that cannot be read: the message says what is wrong and the fix."""


class _Inflate:
    """Raw deflate (zlib) behind the interface of bz2's and lzma's decompressors: decompress(data,
    max_length) keeps the input it did not get to, eof and needs_input say where it stands."""

    def __init__(self) -> None:
        self._zlib = zlib.decompressobj(-zlib.MAX_WBITS)
        self._tail = b""

    def decompress(self, data: bytes, max_length: int) -> bytes:
        out = self._zlib.decompress(self._tail + data, max_length)
        self._tail = self._zlib.unconsumed_tail
        return out

    @property
    def eof(self) -> bool:
        return self._zlib.eof

    @property
    def needs_input(self) -> bool:
        return not self._tail


class _Stored:
    """A stored entry: its bytes as they are."""

    eof = False
    needs_input = True

    def decompress(self, data: bytes, max_length: int) -> bytes:
        return data[:max_length]


def _lzma_decompressor(prefix: bytes, limit: int):
    """zipfile's lzma entries start with 2 version bytes, a 2-byte properties size and the LZMA1
    properties: one byte (pb * 5 + lp) * 9 + lc, then the dictionary size. The dictionary is
    allocated up front, so it is cut to `limit`: no match of a stream of `limit` bytes reaches
    further back (4 KiB is liblzma's least)."""
    (size,) = struct.unpack("<H", prefix[2:4])
    props = prefix[4 : 4 + size]
    if len(prefix) < 4 or size != 5 or len(props) != 5:
        raise EntryError("its lzma header is damaged; re-create the archive")
    bits, dict_size = props[0], min(int.from_bytes(props[1:5], "little"), max(limit, 4096))
    lc, lp, pb = bits % 9, bits // 9 % 5, bits // 45
    return lzma.LZMADecompressor(lzma.FORMAT_RAW, filters=[
        {"id": lzma.FILTER_LZMA1, "dict_size": dict_size, "lc": lc, "lp": lp, "pb": pb}])


def _chunks(file, size: int):
    """`size` bytes of `file` from where it stands, CHUNK at a time."""
    while size > 0:
        chunk = file.read(min(CHUNK, size))
        if not chunk:
            return
        size -= len(chunk)
        yield chunk


def read_entry(archive: Path, info: zipfile.ZipInfo) -> bytes:
    """The bytes of `info`, never more than the size its header declares; EntryError when the entry
    holds more, is damaged, encrypted, or compressed by a method zipfile does not write."""
    if info.flag_bits & 0x1:
        raise EntryError("encrypted; re-create the archive without a password, or unpack it into data/")
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2, zipfile.ZIP_LZMA):
        raise EntryError(f"compressed by method {info.compress_type}, which fgbg does not read; "
                         "re-create the archive with deflate")
    try:
        with open(archive, "rb") as file:
            out = _decompress(file, info)
    except (zlib.error, OSError, lzma.LZMAError, EOFError, struct.error, ValueError) as e:
        raise EntryError(f"damaged ({e}); re-create the archive") from None
    if len(out) != info.file_size or zlib.crc32(out) != info.CRC:
        raise EntryError("damaged (its CRC-32 does not match the archive's); re-create the archive")
    return out


def _decompress(file, info: zipfile.ZipInfo) -> bytes:
    """The entry's bytes from the open archive `file`, decompressed chunk by chunk with an output
    bound of its declared size + 1 byte (EntryError past it)."""
    limit = info.file_size
    file.seek(info.header_offset)
    header = file.read(_LOCAL_HEADER.size)
    fields = _LOCAL_HEADER.unpack(header) if len(header) == _LOCAL_HEADER.size else None
    if not fields or fields[0] != _LOCAL_SIGNATURE:
        raise EntryError("its local header is damaged; re-create the archive")
    file.seek(fields[9] + fields[10], 1)  # past the name and the extra field
    prefix = b""
    if info.compress_type == zipfile.ZIP_STORED:
        decompressor = _Stored()
    elif info.compress_type == zipfile.ZIP_DEFLATED:
        decompressor = _Inflate()
    elif info.compress_type == zipfile.ZIP_BZIP2:
        decompressor = bz2.BZ2Decompressor()
    else:
        prefix = file.read(9)
        decompressor = _lzma_decompressor(prefix, limit)
    out = bytearray()
    for chunk in _chunks(file, info.compress_size - len(prefix)):
        data = chunk
        while True:
            out += decompressor.decompress(data, limit + 1 - len(out))  # never more than one byte too many
            if len(out) > limit:
                raise EntryError(f"holds more than the {limit:,} bytes its header declares; refused "
                                 "(a zip bomb, or a damaged archive)")
            data = b""
            if decompressor.eof or decompressor.needs_input:
                break
        if decompressor.eof:
            break
    return bytes(out)
