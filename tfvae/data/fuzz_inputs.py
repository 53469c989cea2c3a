"""Inputs of the fuzz targets (``fuzzing``): valid files of each format, changed where their parsers read them.

Each ``*_files`` (or ``*_records``) function returns a hypothesis strategy
of file contents. It builds a file of the format from drawn fields (tiny,
seeded), lets the fields take values a parser must survive (sizes of 0,
2^31, 2^32 - 1, 2^40, 2^64 - 1, negative ones, wrong dtypes, lengths that
disagree with the data, chunks and records out of order, CRCs broken or
kept valid), optionally wraps it in GZIP, and then changes bytes anywhere
(``mutated``: truncation, flipped, inserted and deleted bytes, integers
written over the contents). ``seed_images`` are the valid PNG and JPEG
files the image inputs start from. hypothesis is imported when a strategy
is built, TensorFlow when an image or Example strategy is.
"""

from __future__ import annotations

import base64
import gzip
import io
import math
import struct
import warnings
import zipfile
import zlib

import numpy as np

__all__ = [
    "CMYK_JPEG",
    "SIZES",
    "csv_files",
    "example_records",
    "idx_files",
    "image_files",
    "mutated",
    "npz_files",
    "png_bytes",
    "regressions",
    "seed_images",
    "tfrecord_files",
]

SIZES = (0, 1, 2, 255, 256, 2**15, 2**16 - 1, 2**31 - 1, 2**31, 2**32 - 1, 2**32, 2**40, 2**62, 2**63 - 1, 2**64 - 1)
# An 8x8 CMYK JPEG (Adobe marker), 206 bytes, as Pillow writes it; TensorFlow decodes it to RGB.
CMYK_JPEG = base64.b64decode(
    "/9j/7gAOQWRvYmUAZAAAAAAA/9sAQwADAgIDAgIDAwMDBAMDBAUIBQUEBAUKBwcGCAwKDAwLCgsLDQ4SEA0OEQ4LCxAWEBETFBUVFQwPFxgW"
    "FBgSFBUU/8AAFAgACAAIBEMRAE0RAFkRAEsRAP/EABYAAQEBAAAAAAAAAAAAAAAAAAkHCP/EACAQAAEACwEAAAAAAAAAAAAAAAAHGBlFZmeD"
    "pabD4+T/2gAOBEMATQBZAEsAAD8ApDJWauO+o1mu1Bl04iBptc1bWIGf/9k=")
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_PNG_SAMPLES = {0: 1, 2: 3, 3: 1, 4: 2, 6: 4}  # colour type -> samples per pixel as stored
_PNG_KINDS = ((0, 8), (0, 16), (0, 1), (2, 8), (2, 16), (3, 8), (3, 2), (4, 8), (6, 8))


def _strategies():
    from hypothesis import strategies

    return strategies


def _one_of_list(st, values: list):
    """One of ``values``, drawn by index (so that a failing input's report shows an index, not the value)."""
    return st.integers(0, len(values) - 1).map(values.__getitem__)


def _sizes(st, bits: int = 64):
    """Sizes a parser must survive: the edge values, any value of ``bits`` bits, and small ones (most often)."""
    return st.one_of(st.integers(0, 8), st.sampled_from([s for s in SIZES if s < 2**bits]), st.integers(0, 2**bits - 1))


def _apply(contents: bytes, operations) -> bytes:
    data = bytearray(contents)
    for kind, where, argument in operations:
        at = where % (len(data) + 1)
        if kind == "truncate":
            del data[at:]
        elif kind == "flip" and at < len(data):
            data[at] ^= argument
        elif kind == "insert":
            data[at:at] = argument
        elif kind == "delete":
            del data[at : at + argument]
        elif kind == "integer":
            fmt, value = argument
            packed = struct.pack(fmt, value % 2 ** (8 * struct.calcsize(fmt)))
            data[at : at + len(packed)] = packed
    return bytes(data)


def mutated(contents, max_changes: int = 3):
    """``contents`` (a strategy of bytes), then up to ``max_changes`` byte-level changes anywhere."""
    st = _strategies()
    where = st.integers(0, 2**20)
    operation = st.one_of(
        st.tuples(st.just("truncate"), where, st.none()),
        st.tuples(st.just("flip"), where, st.integers(1, 255)),
        st.tuples(st.just("insert"), where, st.binary(min_size=1, max_size=32)),
        st.tuples(st.just("delete"), where, st.integers(1, 32)),
        st.tuples(st.just("integer"), where, st.tuples(st.sampled_from(["<I", ">I", "<Q", ">Q", ">H"]), _sizes(st))),
    )
    changes = st.one_of(st.just([]), st.lists(operation, min_size=1, max_size=max_changes))  # half untouched
    return st.tuples(contents, changes).map(lambda drawn: _apply(*drawn))


def _gzipped_or_not(contents):
    st = _strategies()
    return st.tuples(contents, st.booleans()).map(lambda d: gzip.compress(d[0], mtime=0) if d[1] else d[0])


def _payload(claimed: int, mode: str, seed: int) -> bytes:
    """Data for a header claiming ``claimed`` bytes: exact (if small), short, long, or zeros that GZIP packs well."""
    rng = np.random.default_rng(seed)
    if mode == "zeros":
        return bytes(min(claimed, 2**21))
    exact = min(claimed, 4096)
    size = {"exact": exact, "short": max(exact - 1 - seed % 8, 0), "long": exact + 1 + seed % 8}[mode]
    return rng.integers(0, 256, size, dtype=np.uint8).tobytes()


# ----------------------------------------------------------------------------------------------------------- IDX


def _idx(code: int, dims, ndim_override, mode: str, seed: int) -> bytes:
    ndim = len(dims) if ndim_override is None else ndim_override
    header = bytes([0, 0, code, ndim % 256]) + b"".join(struct.pack(">I", d % 2**32) for d in dims)
    itemsize = {0x08: 1, 0x09: 1, 0x0B: 2, 0x0C: 4, 0x0D: 4, 0x0E: 8}.get(code, 1)
    return header + _payload(math.prod(dims) * itemsize, mode, seed)


def idx_files():
    """IDX files (module docstring), gzipped or not, with drawn dtype codes, dimensions and data lengths."""
    st = _strategies()
    code = st.one_of(st.just(0x08), st.sampled_from([0x08, 0x09, 0x0B, 0x0C, 0x0D, 0x0E]), st.integers(0, 255))
    dims = st.one_of(st.lists(st.integers(1, 6), min_size=1, max_size=4), st.lists(st.integers(1, 6), min_size=1,
                                                                                    max_size=4),
                     st.lists(_sizes(st, 32), max_size=5))
    ndim = st.one_of(st.none(), st.none(), st.none(), st.integers(0, 255))
    mode = st.sampled_from(["exact", "exact", "exact", "short", "long", "zeros"])
    raw = st.builds(_idx, code, dims, ndim, mode, st.integers(0, 2**16))
    return mutated(_gzipped_or_not(mutated(raw, 2)), 2)


# ----------------------------------------------------------------------------------------------------------- npz


def _npy(descr, fortran: bool, shape, version, mode: str, seed: int, header_text) -> bytes:
    text = header_text if header_text is not None else (
        f"{{'descr': {descr!r}, 'fortran_order': {fortran!r}, 'shape': {tuple(shape)!r}, }}")
    text += " " * ((-(len(text) + 11)) % 64) + "\n"
    encoded = text.encode("latin1", "replace")
    size = struct.pack("<H", len(encoded) % 2**16) if version[0] == 1 else struct.pack("<I", len(encoded))
    try:
        itemsize = np.dtype(descr).itemsize
    except (TypeError, ValueError):
        itemsize = 1
    claimed = math.prod(shape) * itemsize if all(d >= 0 for d in shape) else 0
    return b"\x93NUMPY" + bytes(version) + size + encoded + _payload(claimed, mode, seed)


def _zip(members, compression: int, forged_size) -> bytes:
    buffer = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buffer, "w", compression) as archive:
        warnings.simplefilter("ignore", UserWarning)  # a duplicate name: a case the reader must survive
        for name, contents in members:
            archive.writestr(zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0)), contents, compression)
    data = bytearray(buffer.getvalue())
    if forged_size is not None:  # the uncompressed size claimed in every local and central header
        for signature, offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
            at = data.find(signature)
            while at >= 0:
                data[at + offset : at + offset + 4] = struct.pack("<I", forged_size % 2**32)
                at = data.find(signature, at + 4)
    return bytes(data)


def npz_files():
    """.npz archives: x_train and x_test (and y_*) as np.savez writes them, some members replaced by drawn ones
    (dtypes of numbers, objects, strings, nothing; any shapes; other versions, header texts and data lengths),
    stored or deflated, with the sizes in the zip headers kept or forged."""
    st = _strategies()
    descr = st.one_of(st.sampled_from(["|u1", "|u1", "<i8", "<f4", ">f8", "|b1", "|O", "<U3", "<c8", "|V0", "<m8",
                                       ">u8"]), st.text(max_size=6))
    shape = st.one_of(st.lists(st.integers(1, 5), min_size=1, max_size=4),
                      st.lists(st.one_of(_sizes(st, 63), st.integers(-3, 3)), max_size=4))
    version = st.one_of(st.just((1, 0)), st.sampled_from([(1, 0), (2, 0)]),
                        st.tuples(st.integers(0, 255), st.integers(0, 255)))
    odd = st.builds(_npy, descr, st.booleans(), shape, version, st.sampled_from(["exact", "exact", "short", "long"]),
                    st.integers(0, 2**16), st.one_of(st.none(), st.none(), st.text(max_size=40)))
    count = st.integers(1, 6)
    images = st.builds(lambda n, h, w, seed: ("|u1", False, (n, h, w), seed), count, count, count, st.integers(0, 99))
    labels = st.builds(lambda n, wide, seed: ("<i8", False, (n,), seed), count, st.booleans(), st.integers(0, 99))
    regular = {name: st.builds(lambda spec: _npy(spec[0], spec[1], spec[2], (1, 0), "exact", spec[3], None), spec)
               for name, spec in (("x_train", images), ("x_test", images), ("y_train", labels), ("y_test", labels))}
    member = {name: st.one_of(valid, valid, valid, odd) for name, valid in regular.items()}
    optional = {name: st.one_of(st.none(), member[name]) for name in ("y_train", "y_test")}
    members = st.builds(lambda x_train, x_test, y_train, y_test, junk: [
        (name, value) for name, value in (("x_train", x_train), ("x_test", x_test), ("y_train", y_train),
                                          ("y_test", y_test), *junk) if value is not None],
        member["x_train"], member["x_test"], optional["y_train"], optional["y_test"],
        st.lists(st.tuples(st.sampled_from(["junk", "x_train", "x_test"]), odd), max_size=1))
    archive = st.builds(_zip, members, st.sampled_from([zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED]),
                        st.one_of(st.none(), st.none(), st.none(), _sizes(st, 32)))
    return mutated(archive, 2)


# ----------------------------------------------------------------------------------------------------------- CSV


def _csv(header, rows, newline: str, encoding: str) -> bytes:
    lines = ([header] if header is not None else []) + [",".join(row) for row in rows]
    return newline.join(lines).encode(encoding, "replace")


def _table(width: int, rows, named: bool, label_at) -> tuple[str | None, list]:
    names = [f"x{i}" for i in range(width)]
    if label_at is not None:
        names.insert(label_at % (width + 1), "label")
        rows = [row[: label_at % (width + 1)] + [str(label_at % 5)] + row[label_at % (width + 1):] for row in rows]
    return (",".join(names) if named else None), rows


def csv_files():
    """CSV files: regular tables of numbers (with or without a header and a label column) and ragged rows of any
    tokens (huge, negative, non-finite, text), in several newlines and encodings."""
    st = _strategies()
    unit = st.one_of(st.sampled_from(["0", "0.5", "1", "0.25"]), st.floats(0, 1).map(repr))
    number = st.one_of(unit, st.sampled_from(["255", "256", "-1", "1.5", "nan", "inf", "1e400", str(2**40), str(2**63),
                                              "2e9", "-0", " 1 "]), st.integers(0, 255).map(str), st.floats().map(repr))
    token = st.one_of(number, st.text(max_size=5), st.sampled_from(["", "label", "#", '"1"', "1;2"]))
    regular = st.integers(1, 4).flatmap(lambda width: st.builds(
        _table, st.just(width), st.lists(st.lists(st.one_of(unit, unit, number), min_size=width, max_size=width),
                                         min_size=2, max_size=8),
        st.booleans(), st.one_of(st.none(), st.integers(0, 99))))
    ragged = st.tuples(st.one_of(st.none(), st.text(max_size=12)), st.lists(st.lists(token, min_size=1, max_size=5),
                                                                           max_size=8))
    table = st.builds(lambda table, newline, encoding: _csv(*table, newline, encoding),
                      st.one_of(regular, regular, ragged), st.sampled_from(["\n", "\n", "\r\n", "\r", "\n\n"]),
                      st.sampled_from(["utf-8", "utf-8", "utf-8", "latin-1", "utf-16"]))
    return mutated(table, 2)


# ------------------------------------------------------------------------------------------------------ PNG, JPEG


def _chunk(kind: bytes, body: bytes, crc_ok: bool = True) -> bytes:
    crc = zlib.crc32(kind + body) ^ (0 if crc_ok else 1)
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_bytes(height: int, width: int, colour_type: int, bit_depth: int = 8, palette_entries: int | None = None,
              transparency: bytes | None = None, layout: str = "standard", bad_crc: bytes = b"", seed: int = 0
              ) -> bytes:
    """A PNG of any colour type and bit depth (pixels random, palette indices 0); ``layout`` places a tRNS chunk
    (standard: after PLTE; before_palette; after_data; twice). Only images of <= 4096 pixels get all their data."""
    samples = _PNG_SAMPLES.get(colour_type, 1)
    row_bytes = (min(width, 4096) * samples * bit_depth + 7) // 8
    rows = min(height, max(1, 4096 // max(width, 1)))
    rng = np.random.default_rng(seed)
    pixels = np.zeros((rows, row_bytes), np.uint8) if colour_type == 3 else rng.integers(0, 256, (rows, row_bytes),
                                                                                          dtype=np.uint8)
    data = zlib.compress(b"".join(b"\x00" + row.tobytes() for row in pixels))
    header = struct.pack(">IIBBBBB", width % 2**32, height % 2**32, bit_depth % 256, colour_type % 256, 0, 0, 0)
    entries = palette_entries if palette_entries is not None else (2**bit_depth if colour_type == 3 else None)
    palette = [_chunk(b"PLTE", rng.integers(0, 256, 3 * entries, dtype=np.uint8).tobytes(), b"PLTE" != bad_crc)
               ] if entries is not None else []
    alpha = [_chunk(b"tRNS", transparency, b"tRNS" != bad_crc)] if transparency is not None else []
    chunks = {"standard": [*palette, *alpha, b"IDAT"], "before_palette": [*alpha, *palette, b"IDAT"],
              "after_data": [*palette, b"IDAT", *alpha], "twice": [*palette, *alpha, *alpha, b"IDAT"]}[layout]
    body = b"".join(_chunk(b"IDAT", data, b"IDAT" != bad_crc) if c == b"IDAT" else c for c in chunks)
    return _PNG_SIGNATURE + _chunk(b"IHDR", header, b"IHDR" != bad_crc) + body + _chunk(b"IEND", b"")


def seed_images() -> dict[str, bytes]:
    """Valid images of every channel rule in ``image_headers``: PNG of each colour type (palette with and without
    transparency, grey and RGB with a tRNS chunk) and JPEG with 1, 3 and 4 (CMYK) components."""
    import tensorflow as tf

    rng = np.random.default_rng(0)
    found = {f"png_{colour}_{depth}.png": png_bytes(5, 7, colour, depth) for colour, depth in _PNG_KINDS}
    found["png_palette_trns.png"] = png_bytes(5, 7, 3, 8, 4, b"\x00\x80")
    found["png_grey_trns.png"] = png_bytes(5, 7, 0, 8, transparency=b"\x00\x05")
    found["png_rgb_trns.png"] = png_bytes(5, 7, 2, 8, transparency=b"\x00\x01\x00\x02\x00\x03")
    for channels in (1, 3):
        pixels = rng.integers(0, 256, (6, 9, channels), dtype=np.uint8)
        found[f"jpeg_{channels}.jpg"] = tf.io.encode_jpeg(pixels, quality=90).numpy()
    found["jpeg_cmyk.jpg"] = CMYK_JPEG
    return found


def _jpeg_changed(seed: bytes, sof_field: int | None, value: int, garbage: bytes) -> bytes:
    """``seed`` with one field of its SOF segment (0 precision, 1 height, 3 width, 5 components) set to ``value``
    and ``garbage`` put between its first two segments."""
    data = bytearray(seed)
    sof = next((i for i in range(2, len(data) - 10) if data[i] == 0xFF and data[i + 1] in (0xC0, 0xC1, 0xC2)), None)
    if sof is not None and sof_field is not None:
        at = sof + 4 + sof_field
        width = 2 if sof_field in (1, 3) else 1
        data[at : at + width] = (value % 2 ** (8 * width)).to_bytes(width, "big")
    first_length = int.from_bytes(data[4:6], "big")
    data[4 + first_length : 4 + first_length] = garbage
    return bytes(data)


def image_files():
    """PNG files of drawn colour types, bit depths, sizes, palettes, tRNS chunks (valid, too long, misplaced,
    twice, CRC broken) and the JPEG seeds with their SOF fields and segment gaps changed; then bytes anywhere."""
    st = _strategies()
    kind = st.one_of(st.sampled_from(_PNG_KINDS), st.tuples(st.integers(0, 7), st.sampled_from([1, 2, 3, 4, 8, 16])))
    side = st.one_of(st.integers(1, 9), _sizes(st, 32))
    png = st.builds(lambda kind, h, w, entries, alpha, layout, bad, seed: png_bytes(h, w, kind[0], kind[1], entries,
                                                                                    alpha, layout, bad, seed),
                    kind, side, side, st.one_of(st.none(), st.integers(0, 300)),
                    st.one_of(st.none(), st.binary(max_size=8), st.integers(0, 300).map(lambda n: b"\x80" * n)),
                    st.sampled_from(["standard", "standard", "before_palette", "after_data", "twice"]),
                    st.sampled_from([b"", b"", b"tRNS", b"PLTE", b"IHDR", b"IDAT"]), st.integers(0, 2**16))
    jpegs = _one_of_list(st, [v for k, v in seed_images().items() if k.endswith(".jpg")])
    jpeg = st.builds(_jpeg_changed, jpegs, st.one_of(st.none(), st.sampled_from([0, 1, 3, 5])),
                     _sizes(st, 16), st.one_of(st.just(b""), st.binary(max_size=6)))
    return mutated(st.one_of(png, jpeg), 2)


# ------------------------------------------------------------------------------------------- TFRecord, Example


def _masked_crc(data: bytes) -> int:
    from tfvae.data import framing

    return framing.masked_crc32c(data)


def _framed(records, gzipped: bool) -> bytes:
    out = []
    for data, length, length_crc_ok, data_crc_ok in records:
        field = struct.pack("<Q", (len(data) if length is None else length) % 2**64)
        out.append(field + struct.pack("<I", _masked_crc(field) ^ (0 if length_crc_ok else 1)) + data
                   + struct.pack("<I", _masked_crc(data) ^ (0 if data_crc_ok else 1)))
    contents = b"".join(out)
    return gzip.compress(contents, mtime=0) if gzipped else contents


def tfrecord_files():
    """TFRecord shards of up to 5 records whose length fields are kept, forged (any size, with a valid CRC) or off
    by a few, with CRCs kept or broken, gzipped or not; then bytes anywhere."""
    st = _strategies()
    length = st.one_of(st.none(), st.none(), _sizes(st))
    intact = st.sampled_from([True] * 7 + [False])  # a CRC kept valid 7 times in 8
    record = st.tuples(st.binary(max_size=48), length, intact, intact)
    return mutated(st.builds(_framed, st.lists(record, max_size=5), st.booleans()), 2)


def _example(features) -> bytes:
    import tensorflow as tf

    built = {}
    for name, kind, values in features:
        if kind == "bytes":
            built[name] = tf.train.Feature(bytes_list=tf.train.BytesList(value=values))
        elif kind == "int64":
            built[name] = tf.train.Feature(int64_list=tf.train.Int64List(value=values))
        else:
            built[name] = tf.train.Feature(float_list=tf.train.FloatList(value=values))
    return tf.train.Example(features=tf.train.Features(feature=built)).SerializeToString()


def example_records():
    """Shards of 1 to 3 tf.train.Example records (image: seed images or bytes; label: any int64, several, or
    floats; other features), each record mutated or not, framed with valid lengths and CRCs, gzipped or not."""
    st = _strategies()
    images = _one_of_list(st, list(seed_images().values()))
    image_values = st.lists(st.one_of(images, st.binary(max_size=16)), min_size=0, max_size=2)
    label = st.one_of(st.sampled_from([0, 1, 2, -1, 2**31 - 1, 2**31, 2**40, 2**63 - 1, -2**63]),
                      st.integers(-2**63, 2**63 - 1))
    feature = st.one_of(
        st.tuples(st.just("image"), st.just("bytes"), image_values),
        st.tuples(st.just("label"), st.just("int64"), st.lists(label, max_size=2)),
        st.tuples(st.sampled_from(["image", "label", "other"]), st.sampled_from(["bytes", "int64", "float"]),
                  st.just([])),
        st.tuples(st.just("label"), st.just("float"), st.lists(st.floats(width=32), max_size=2)),
    )
    typical = st.tuples(st.tuples(st.just("image"), st.just("bytes"), st.lists(images, min_size=1, max_size=1)),
                        st.tuples(st.just("label"), st.just("int64"), st.lists(label, min_size=1, max_size=1)))
    example = st.one_of(typical, typical, st.lists(feature, max_size=3)).map(_example)
    record = st.one_of(example, mutated(example, 2))
    framed = st.lists(st.tuples(record, st.none(), st.just(True), st.just(True)), min_size=1, max_size=3)
    return st.builds(_framed, framed, st.booleans())


def regressions() -> dict[str, list[bytes]]:
    """Inputs that once broke a target (found by fuzzing or in the issue), run first by every property test."""
    from tfvae.data import framing

    huge_idx = bytes([0, 0, 0x0E, 40]) + struct.pack(">I", 2**32 - 1) * 40  # a claim past a float's range
    forged = struct.pack("<Q", 2**40)
    return {
        "idx": [b"\x00\x00\x08\x03" + bytes(4) + b"\xff" * 8, gzip.compress(huge_idx, mtime=0),
                bytes.fromhex("00000c04 00000000 0000ffff 7fffffff 00004001")],  # 0 x 65535 x (2^31 - 1) x 16385 int32
        "npz": [_zip([("x_train", _npy("|u1", False, (1,), (1, 0), "exact", 0, ")"))], zipfile.ZIP_STORED, None)],
        "csv": [b",label"],
        "image_header": [seed_images()["png_palette_trns.png"], CMYK_JPEG,
                         png_bytes(1, 1, 3, 2, 5, bytes(5)), png_bytes(1, 1, 3, 1, 3, bytes(3))],  # tRNS > 2^depth
        "tfrecord": [framing.frame_record(b"x") + forged + struct.pack("<I", framing.masked_crc32c(forged))],
        "example": [framing.frame_record(b"\n\x8b")],
    }
