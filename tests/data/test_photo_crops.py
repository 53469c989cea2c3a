"""Crops of scikit-image's sample photos: a train/test image folder with no test pixel seen in training."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, last_error_line, run_script

import tfvae
from tfvae.data import photo_crops

SIZE = 8


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("photos") / "crops")
    counts = photo_crops.write_photo_crops(path, size=SIZE, crops_per_image=6, seed=3)
    return path, counts


def read(path):
    return tf.io.decode_png(tf.io.read_file(path)).numpy()


def test_it_writes_train_and_test_crops_of_every_photo_and_reduction(folder):
    path, counts = folder
    per_source = len(photo_crops.PHOTOS) * len(photo_crops.REDUCTIONS)
    assert {k: counts[k] for k in ("train", "test")} == {"train": 6 * per_source, "test": 1 * per_source}
    for split in ("train", "test"):
        count = counts[split]
        names = sorted(os.listdir(os.path.join(path, split)))
        assert len(names) == count
        assert {n.split("_", 1)[1].rsplit("_", 1)[0] for n in names} == set(photo_crops.PHOTOS)
        image = read(os.path.join(path, split, names[0]))
        assert image.shape == (SIZE, SIZE, 3) and image.dtype == np.uint8


def manifest(path):
    with open(os.path.join(path, photo_crops.MANIFEST)) as f:
        header, *rows = [line.split(",") for line in f.read().splitlines()]
    assert header == ["split", "file", "photo", "reduction", "row", "column"]
    return [(split, file, name, int(factor), int(row), int(column)) for split, file, name, factor, row, column in rows]


def test_every_crop_is_where_the_manifest_says_and_test_columns_are_never_in_training_crops(folder):
    path, counts = folder
    rows = manifest(path)
    assert len(rows) == counts["train"] + counts["test"]
    for split, file, name, factor, row, column in rows:
        image = photo_crops.reduce(photo_crops.photo(name), factor)
        boundary = image.shape[1] - photo_crops.held_out_columns(image.shape[1], SIZE)
        if split == "test":
            assert boundary <= column and column + SIZE <= image.shape[1], (file, column, boundary)
        else:
            assert 0 <= column and column + SIZE <= boundary, (file, column, boundary)
        np.testing.assert_array_equal(read(os.path.join(path, split, file)), image[row:row + SIZE, column:column + SIZE])
    assert photo_crops.held_out_columns(451, 8) == 91 and photo_crops.held_out_columns(112, 32) == 32


def test_the_same_seed_gives_the_same_crops_and_another_seed_others(tmp_path, folder):
    path, _ = folder
    again = str(tmp_path / "again")
    photo_crops.write_photo_crops(again, size=SIZE, crops_per_image=6, seed=3)
    other = str(tmp_path / "other")
    photo_crops.write_photo_crops(other, size=SIZE, crops_per_image=6, seed=4)
    name = sorted(os.listdir(os.path.join(path, "train")))[0]
    np.testing.assert_array_equal(read(os.path.join(again, "train", name)), read(os.path.join(path, "train", name)))
    assert any((read(os.path.join(other, "train", n)) != read(os.path.join(path, "train", n))).any()
               for n in sorted(os.listdir(os.path.join(path, "train")))[:5])


def test_the_photo_reductions_are_block_means():
    image = photo_crops.photo("astronaut")
    reduced = photo_crops.reduce(image, 4)
    assert reduced.shape == (128, 128, 3)
    np.testing.assert_array_equal(reduced[3, 5], np.round(image[12:16, 20:24].reshape(-1, 3).mean(0)).astype(np.uint8))


def test_the_histogram_baseline_is_the_mean_entropy_of_the_training_pixels_per_channel(folder):
    path, counts = folder
    pixels = np.stack([read(os.path.join(path, "train", f)) for f in sorted(os.listdir(os.path.join(path, "train")))])
    entropies = []
    for c in range(3):
        p = np.unique(pixels[..., c], return_counts=True)[1] / pixels[..., c].size
        entropies.append(-(p * np.log2(p)).sum())
    np.testing.assert_allclose(counts["histogram_bits_per_dim"], np.mean(entropies), rtol=1e-12)
    assert photo_crops.histogram_bits_per_dim(np.array([[5, 5, 0], [1, 0, 0], [1, 1, 2]])) == pytest.approx(
        (1 + 0 + 1.5) / 3)


def test_an_existing_folder_is_never_written_into(tmp_path):
    existing = tmp_path / "photos"
    existing.mkdir()
    (existing / "mine.txt").write_text("keep")
    with pytest.raises(ValueError, match=f"out_dir {existing} exists; give a new folder"):
        photo_crops.write_photo_crops(str(existing), size=SIZE, crops_per_image=1)
    assert os.listdir(existing) == ["mine.txt"] and os.listdir(tmp_path) == ["photos"]  # no staging folder left


@pytest.mark.parametrize("kwargs, message", [({"size": 2}, "size must be an int from 4 to 256; got 2"),
                                             ({"crops_per_image": 0}, "crops_per_image must be a positive int; got 0")])
def test_bad_settings_are_named(tmp_path, kwargs, message):
    with pytest.raises(ValueError, match=message):
        photo_crops.write_photo_crops(str(tmp_path / "crops"), **kwargs)
    assert not os.path.exists(tmp_path / "crops")


def test_the_documented_commands_write_the_crops_train_rgb32_photos_on_them_and_refuse_an_existing_folder(tmp_path):
    out = str(tmp_path / "crops")
    result = run_script("make_photo_crops.py", f"--out_dir={out}", "--crops_per_image=1")
    assert result.returncode == 0, result.stderr[-2000:]
    per_source = len(photo_crops.PHOTOS) * len(photo_crops.REDUCTIONS)
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert {k: printed[k] for k in ("train", "test")} == {"train": per_source, "test": per_source}
    assert 0 < printed["histogram_bits_per_dim"] <= 8
    run = str(tmp_path / "run")
    trained = run_script("train.py", f"--flagfile={REPO}/scripts/configs/rgb32_photos.flags", f"--data_dir={out}",
                         f"--model_dir={run}", "--epochs=1", "--batch_size=8", "--hidden_units=4,8", "--latent_dim=2",
                         "--validation_examples=8", "--verbose=0")
    assert trained.returncode == 0, trained.stderr[-2000:]
    assert tfvae.load_model(run).data_shape == (32, 32, 3)
    again = run_script("make_photo_crops.py", f"--out_dir={out}", "--size=8", "--crops_per_image=1")
    assert again.returncode == 2
    assert last_error_line(again) == f"make_photo_crops.py: error: flag --out_dir {out} exists; give a new folder " \
                                     "(nothing is written into an existing one)"
