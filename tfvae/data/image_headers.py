"""Height, width and channels of PNG and JPEG files read from their headers, as TensorFlow's decoders will give them.

Bounded reads only: the 8-byte chunk or segment headers are read and the
rest skipped, so a folder of any size is checked without decoding it.
The channel count is the one ``tf.io.decode_image(contents, channels=0)``
returns:

  PNG    colour type 0 (grey) 1, 4 (grey + alpha) 2, 2 (RGB) 3, 6 (RGBA) 4,
         3 (palette) 3, or 4 when a valid tRNS chunk gives the palette
         transparency (libpng's rule: after PLTE and before IDAT, 1 to
         min(len(PLTE) / 3, 2^bit_depth) entries, CRC intact, the first
         valid one)
  JPEG   1 component 1, 3 (YCbCr) 3, 4 (CMYK or YCCK) 3: TensorFlow converts
         them to RGB

``image_shape`` returns None when the header does not say (another format,
or a PNG or JPEG too odd to read this way); the caller then decodes the file.
"""

from __future__ import annotations

import struct
import zlib

__all__ = ["image_shape", "read_image_shape"]

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_CHANNELS = {0: 1, 2: 3, 3: 3, 4: 2, 6: 4}  # colour type -> channels decode_png gives
_PNG_BIT_DEPTHS = {0: (1, 2, 4, 8, 16), 2: (8, 16), 3: (1, 2, 4, 8), 4: (8, 16), 6: (8, 16)}
_PNG_MAX_CHUNK = 2**31 - 1
_JPEG_SOF = frozenset((0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF))
_JPEG_STANDALONE = frozenset((0x01, *range(0xD0, 0xD8)))  # TEM, RST0-7: no length field
_JPEG_CHANNELS = {1: 1, 3: 3, 4: 3}
_MAX_SEGMENTS = 10_000  # markers or chunks read before giving up (then the file is decoded instead)


def _png_shape(file) -> tuple[int, int, int] | None:
    header = file.read(33)  # signature, IHDR length and type, 13 bytes of IHDR, its CRC
    if len(header) < 33 or header[:8] != _PNG_SIGNATURE or header[8:16] != b"\x00\x00\x00\x0dIHDR":
        return None
    width, height, bit_depth, colour_type, compression, filtering, interlace = struct.unpack(">IIBBBBB", header[16:29])
    if (not 0 < width <= _PNG_MAX_CHUNK or not 0 < height <= _PNG_MAX_CHUNK
            or bit_depth not in _PNG_BIT_DEPTHS.get(colour_type, ()) or compression or filtering or interlace > 1):
        return None
    if colour_type != 3:
        return height, width, _PNG_CHANNELS[colour_type]
    transparent = _png_palette_has_transparency(file, 2**bit_depth)
    return None if transparent is None else (height, width, 4 if transparent else 3)


def _png_palette_has_transparency(file, max_entries: int) -> bool | None:
    """Whether libpng takes a tRNS chunk of a palette image (module docstring), walking the chunks to IDAT.

    libpng keeps at most ``max_entries`` = 2^bit_depth palette entries (the rest are dropped silently), and a
    tRNS chunk longer than the palette kept is ignored.

    False at the end of a truncated file (the decoder will refuse it); None after too many chunks.
    """
    palette_entries = None
    for _ in range(_MAX_SEGMENTS):
        chunk = file.read(8)
        if len(chunk) < 8:
            return False
        length, kind = struct.unpack(">I", chunk[:4])[0], chunk[4:]
        if kind == b"IDAT" or kind == b"IEND" or length > _PNG_MAX_CHUNK:
            return False
        if kind == b"tRNS" and palette_entries is not None and 0 < length <= min(palette_entries, 256):
            body = file.read(length + 4)
            if len(body) < length + 4:
                return False
            if zlib.crc32(kind + body[:length]) == struct.unpack(">I", body[length:])[0]:
                return True
            continue  # a damaged tRNS is discarded (libpng warns); a later one may still count
        if kind == b"PLTE" and palette_entries is None:
            palette_entries = min(length // 3, max_entries)
        file.seek(length + 4, 1)  # any other chunk, or a tRNS out of place or of a bad length: skipped
    return None


def _jpeg_shape(file) -> tuple[int, int, int] | None:
    if file.read(2) != b"\xff\xd8":
        return None
    for _ in range(_MAX_SEGMENTS):
        byte = file.read(1)
        while byte and byte != b"\xff":  # stray bytes between segments: libjpeg skips them
            byte = file.read(1)
        while byte == b"\xff":  # fill bytes
            byte = file.read(1)
        if not byte:
            return None
        marker = byte[0]
        if marker in _JPEG_STANDALONE or marker == 0x00:
            continue
        if marker in (0xD9, 0xDA):  # EOI or SOS before any SOF
            return None
        size = file.read(2)
        if len(size) < 2:
            return None
        (length,) = struct.unpack(">H", size)
        if length < 2:
            return None
        if marker in _JPEG_SOF:
            body = file.read(6)
            if len(body) < 6:
                return None
            _, height, width, components = struct.unpack(">BHHB", body)
            if height == 0 or width == 0 or components not in _JPEG_CHANNELS:
                return None
            return height, width, _JPEG_CHANNELS[components]
        file.seek(length - 2, 1)
    return None


def image_shape(file) -> tuple[int, int, int] | None:
    """(height, width, channels) of the PNG or JPEG open in binary ``file``, as decoded; None if not told."""
    start = file.tell()
    signature = file.read(8)
    file.seek(start)
    if signature == _PNG_SIGNATURE:
        return _png_shape(file)
    if signature[:2] == b"\xff\xd8":
        return _jpeg_shape(file)
    return None


def read_image_shape(path: str) -> tuple[int, int, int] | None:
    """``image_shape`` of the file at ``path`` (OSError if it cannot be read)."""
    with open(path, "rb") as file:
        return image_shape(file)
