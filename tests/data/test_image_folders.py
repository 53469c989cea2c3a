"""Image folders as Keras reads them: class folders, splits, resizing, channels, and errors naming files."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, run_script

import tfvae
from tfvae import data
from tfvae.data import image_folders, sources


def write_image(path, array):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    array = tf.constant(array, tf.uint8)
    encoded = tf.io.encode_jpeg(array, quality=100) if str(path).endswith(".jpg") else tf.io.encode_png(array)
    tf.io.write_file(str(path), encoded)


def test_class_folders_give_labels_numbered_by_sorted_name_in_both_splits(tmp_path):
    for split, count in (("train", 3), ("test", 1)):
        for name, value in (("dog", 200), ("cat", 100)):
            for i in range(count):
                write_image(tmp_path / split / name / f"{i}.png", np.full((4, 4, 1), value + i, np.uint8))
    loaded = data.load_dataset("image_folder", str(tmp_path))
    # cat = 0, dog = 1; files in class order, then by name
    np.testing.assert_array_equal(loaded.train_labels, [0, 0, 0, 1, 1, 1])
    np.testing.assert_array_equal(loaded.train_images[:, 0, 0, 0], [100, 101, 102, 200, 201, 202])
    np.testing.assert_array_equal(loaded.test_labels, [0, 1])
    with pytest.raises(data.DataError, match=r"class folders \['bird'\] are not among the training split's classes"):
        write_image(tmp_path / "test" / "bird" / "0.png", np.zeros((4, 4, 1)))
        data.load_dataset("image_folder", str(tmp_path))


def test_a_pool_is_split_by_a_seeded_validation_split(tmp_path):
    for i in range(20):
        write_image(tmp_path / f"img{i:02d}.png", np.full((2, 2, 1), i, np.uint8))
    first = image_folders.list_image_folder(str(tmp_path), validation_split=0.25, seed=1)
    again = image_folders.list_image_folder(str(tmp_path), validation_split=0.25, seed=1)
    other = image_folders.list_image_folder(str(tmp_path), validation_split=0.25, seed=2)
    assert first == again and first["test"].paths != other["test"].paths
    assert len(first["train"].paths) == 15 and len(first["test"].paths) == 5
    assert sorted(first["train"].paths + first["test"].paths) == sorted(str(p) for p in tmp_path.iterdir())
    assert first["train"].labels is None
    loaded = data.load_dataset("image_folder", str(tmp_path), validation_split=0.25, seed=1)
    values = sorted(loaded.train_images[:, 0, 0, 0].tolist() + loaded.test_images[:, 0, 0, 0].tolist())
    assert values == list(range(20))  # every image once, in one split


def test_image_size_crops_the_centre_to_the_aspect_ratio_then_resizes(tmp_path):
    # 4 x 12: three 4x4 blocks of 10, 100 and 200; a square target keeps only the middle block.
    image = np.concatenate([np.full((4, 4, 1), v, np.uint8) for v in (10, 100, 200)], axis=1)
    resized = sources.crop_and_resize(tf.constant(image), (2, 2)).numpy()
    np.testing.assert_array_equal(resized, np.full((2, 2, 1), 100, np.uint8))
    wide = sources.crop_and_resize(tf.constant(image), (2, 6)).numpy()  # same aspect ratio: nothing cropped
    np.testing.assert_array_equal(wide[0, :, 0], [10, 10, 100, 100, 200, 200])


def test_mixed_sizes_name_two_files_and_the_flag_and_image_size_fixes_them(tmp_path):
    write_image(tmp_path / "train" / "a.png", np.zeros((8, 8, 3), np.uint8))
    write_image(tmp_path / "train" / "b.jpg", np.zeros((16, 12, 3), np.uint8))
    write_image(tmp_path / "test" / "c.png", np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(data.DataError, match=r"^flag --image_size: .*b.jpg is 16x12 but .*a.png is 8x8; pass "
                                             r"--image_size=H,W"):
        data.load_dataset("image_folder", str(tmp_path))
    loaded = data.load_dataset("image_folder", str(tmp_path), image_size=(6, 6))
    assert loaded.train_images.shape == (2, 6, 6, 3) and loaded.test_images.shape == (1, 6, 6, 3)


def test_channels_convert_or_mismatched_channels_name_the_flag(tmp_path):
    write_image(tmp_path / "train" / "grey.png", np.full((4, 4, 1), 50, np.uint8))
    write_image(tmp_path / "train" / "rgb.png", np.full((4, 4, 3), 50, np.uint8))
    write_image(tmp_path / "test" / "t.png", np.full((4, 4, 1), 50, np.uint8))
    with pytest.raises(data.DataError, match=r"^flag --channels: .*rgb.png has 3 channels but .*grey.png has 1"):
        data.load_dataset("image_folder", str(tmp_path))
    loaded = data.load_dataset("image_folder", str(tmp_path), channels=3)
    assert loaded.train_images.shape == (2, 4, 4, 3)
    np.testing.assert_array_equal(loaded.train_images, 50)


def test_a_corrupt_image_is_named(tmp_path):
    write_image(tmp_path / "a.png", np.zeros((4, 4, 1), np.uint8))
    write_image(tmp_path / "b.png", np.zeros((4, 4, 1), np.uint8))
    (tmp_path / "c.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(data.DataError, match=r"c.png: cannot decode image"):
        data.load_dataset("image_folder", str(tmp_path))


def _photos(folder, count, seed=0):
    """Colour images of varied sizes (a bright disc on a dark background) in two class folders."""
    rng = np.random.default_rng(seed)
    for i in range(count):
        height, width = int(rng.integers(70, 90)), int(rng.integers(60, 100))
        rows, cols = np.mgrid[:height, :width]
        disc = (rows - height / 2) ** 2 + (cols - width / 2) ** 2 < (min(height, width) / 3) ** 2
        image = np.where(disc[..., None], rng.integers(150, 256, 3), rng.integers(0, 60, 3)).astype(np.uint8)
        write_image(folder / ("round" if i % 2 else "plain") / f"{i:03d}.jpg", image)


def test_the_rgb64_config_trains_on_an_image_folder_and_reports_bits_per_dim(tmp_path):
    _photos(tmp_path / "photos", 48)
    run = str(tmp_path / "run")
    trained = run_script("train.py", f"--flagfile={REPO}/scripts/configs/rgb64_image_folder.flags",
                         f"--data_dir={tmp_path / 'photos'}", f"--model_dir={run}", "--epochs=1", "--batch_size=8",
                         "--validation_examples=4", "--validation_split=0.1", "--verbose=0", "--hidden_units=8,8,8",
                         "--latent_dim=4", timeout=600)
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert tfvae.load_model(run).data_shape == (64, 64, 3)
    evaluated = run_script("evaluate.py", f"--model_dir={run}", "--num_importance_samples=3")
    metrics = json.loads(evaluated.stdout.strip().splitlines()[-1])
    assert metrics["num_examples"] == 5
    np.testing.assert_allclose(metrics["bits_per_dim"], -metrics["log_likelihood"] / (64 * 64 * 3 * np.log(2)),
                               rtol=1e-6)
    # 5 steps from a head that starts at black with narrow scales (docs/models.md, "Colour images"): above the
    # uniform's 8 bits/dim yet, but far below the ~19 such a head gives white pixels.
    assert 0 < metrics["bits_per_dim"] < 16
    sampled = run_script("sample.py", f"--model_dir={run}", "--num_samples=4")
    assert sampled.returncode == 0 and os.path.exists(os.path.join(run, "samples", "prior_samples.png"))
