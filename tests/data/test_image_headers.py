"""PNG and JPEG headers read as TensorFlow's decoders will decode them: tRNS palettes, CMYK JPEGs, bombs refused."""

import io
import struct

import numpy as np
import pytest
import tensorflow as tf

from tfvae import data
from tfvae.data import fuzz_inputs, image_folders, image_headers, limits, records, sources


def _decoded_shape(contents: bytes, channels: int = 0) -> tuple[int, int, int]:
    return tuple(int(d) for d in tf.io.decode_image(contents, channels=channels, expand_animations=False).shape)


def test_header_shapes_agree_with_tensorflows_decoder_for_every_kind_of_image():
    for name, contents in fuzz_inputs.seed_images().items():
        assert image_headers.image_shape(io.BytesIO(contents)) == _decoded_shape(contents), name
    expected = {"png_palette_trns.png": 4, "png_3_8.png": 3, "png_grey_trns.png": 1, "png_rgb_trns.png": 3,
                "jpeg_cmyk.jpg": 3, "png_4_8.png": 2}
    for name, channels in expected.items():
        assert image_headers.image_shape(io.BytesIO(fuzz_inputs.seed_images()[name]))[2] == channels, name


@pytest.mark.parametrize("layout, bad_crc, channels", [
    ("standard", b"", 4), ("before_palette", b"", 3), ("after_data", b"", 3), ("twice", b"", 4),
    ("standard", b"tRNS", 3),
])
def test_a_palette_tRNS_counts_only_where_libpng_takes_it(layout, bad_crc, channels):
    contents = fuzz_inputs.png_bytes(3, 5, 3, 8, 4, b"\x00\x40", layout, bad_crc)
    assert image_headers.image_shape(io.BytesIO(contents)) == (3, 5, channels)
    assert _decoded_shape(contents) == (3, 5, channels)
    too_long = fuzz_inputs.png_bytes(3, 5, 3, 8, 4, b"\x00" * 5)  # more entries than the palette has: ignored
    assert image_headers.image_shape(io.BytesIO(too_long)) == _decoded_shape(too_long) == (3, 5, 3)
    # A palette of 5 entries at 2 bits per pixel keeps 4 (libpng drops the rest): a tRNS of 5 entries is ignored
    # (a 10-minute fuzzing run found it).
    beyond_depth = fuzz_inputs.png_bytes(1, 1, 3, 2, 5, bytes(5))
    assert image_headers.image_shape(io.BytesIO(beyond_depth)) == _decoded_shape(beyond_depth) == (1, 1, 3)


def _folder(tmp_path, contents: bytes, suffix: str):
    for split in ("train", "test"):
        (tmp_path / split).mkdir(parents=True, exist_ok=True)
        for i in range(2):
            (tmp_path / split / f"{i}{suffix}").write_bytes(contents)
    return str(tmp_path)


@pytest.mark.parametrize("name, stored", [("png_palette_trns.png", 4), ("jpeg_cmyk.jpg", 3)])
def test_palette_pngs_with_transparency_and_cmyk_jpegs_load_with_any_channels(tmp_path, name, stored):
    # Before: "cannot decode image (Shape [8,8,4] ...)": the header said 3 channels for the PNG, 4 for the JPEG.
    contents = fuzz_inputs.seed_images()[name]
    directory = _folder(tmp_path / "folder", contents, name[name.rindex("."):])
    reference = tf.io.decode_image(contents, channels=3, expand_animations=False).numpy()
    for channels in (0, 1, 3, 4):
        loaded = data.load_dataset("image_folder", directory, channels=channels)
        assert loaded.train_images.shape[1:] == (*reference.shape[:2], channels or stored)
        if channels in (3, 0) and stored == 3:
            np.testing.assert_array_equal(loaded.train_images[0], reference)
    cmyk_grey = data.load_dataset("image_folder", directory, channels=1).train_images[0, ..., 0]
    if name == "jpeg_cmyk.jpg":  # grey: the BT.601 luma of the RGB decoding, rounded
        luma = np.round(reference.astype(np.float64) @ [0.299, 0.587, 0.114])
        np.testing.assert_allclose(cmyk_grey, luma, atol=1)
        rgba = data.load_dataset("image_folder", directory, channels=4).train_images[0]
        np.testing.assert_array_equal(rgba[..., :3], reference)
        assert (rgba[..., 3] == 255).all()


def test_a_cmyk_jpeg_in_tfrecords_decodes_to_the_requested_channels(tmp_path):
    contents = fuzz_inputs.CMYK_JPEG
    splits = {split: (iter([(contents, 0), (contents, 1)]), 2, 1) for split in ("train", "test")}
    records.write_splits(str(tmp_path), splits)
    for channels, shape in ((0, (8, 8, 3)), (1, (8, 8, 1)), (4, (8, 8, 4))):
        source = sources.tfrecord_source(str(tmp_path), "train", channels=channels)
        assert source.data_shape == shape
        images, _ = source.to_arrays()
        assert images.shape == (2, *shape)


def test_an_image_whose_header_claims_too_many_pixels_is_refused_unread(tmp_path):
    bomb = fuzz_inputs.png_bytes(60000, 60000, 0, 8)  # 3.6 G pixels claimed by a file of a few kB
    assert len(bomb) < 100_000
    directory = _folder(tmp_path / "bomb", bomb, ".png")
    with pytest.raises(data.DataError, match=rf"0.png: its header claims 60000x60000 pixels, more than the "
                                             rf"{limits.MAX_IMAGE_PIXELS:,} of one image"):
        data.load_dataset("image_folder", directory, image_size=(8, 8))


def test_odd_or_broken_headers_fall_back_to_the_decoder(tmp_path):
    fine = fuzz_inputs.seed_images()["png_0_8.png"]
    broken_ihdr = fine[:16] + struct.pack(">I", 0) + fine[20:]  # width 0: not read, the decoder refuses it
    assert image_headers.image_shape(io.BytesIO(broken_ihdr)) is None
    (tmp_path / "a.png").write_bytes(broken_ihdr)
    with pytest.raises(data.DataError, match=r"a.png: cannot decode image"):
        image_folders.image_sizes([str(tmp_path / "a.png")])
    assert image_headers.image_shape(io.BytesIO(b"GIF89a")) is None
    assert image_headers.image_shape(io.BytesIO(b"\xff\xd8\xff\xd9")) is None  # a JPEG that ends before its SOF
