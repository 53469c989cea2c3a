"""Writes a data set as TFRecord shards that --dataset=tfrecord reads (and streams).

  python scripts/make_tfrecords.py --dataset=fashion_mnist --output_dir=data/fmnist_tfrecord --num_shards=8
  python scripts/make_tfrecords.py --dataset=image_folder --data_dir=photos --image_size=64,64 \
      --output_dir=data/photos64 --num_shards=64

Layout: <output_dir>/train-00000-of-00008.tfrecord ... test-00000-of-00001.tfrecord;
each record a tf.train.Example with `image` (PNG bytes) and, where the data
has labels, `label` (int64). Shards are written under temporary names and
renamed when all are complete; existing shards are never overwritten. Prints
one JSON object: {split: number of shards}.
"""

import json

import _startup
from absl import flags

from tfvae import data
from tfvae.data import conversion, limits
from tfvae.train import cli

_DATASET = cli.define_dataset_flag("fashion_mnist", "Data set to convert")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "Where the data set is (as for train.py).")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "Directory to write the shards into (new or empty of shards).")
_NUM_SHARDS = flags.DEFINE_integer("num_shards", 8, "Shards of the training split.", lower_bound=1)
_NUM_TEST_SHARDS = flags.DEFINE_integer("num_test_shards", 1, "Shards of the test split.", lower_bound=1)
_COMPRESS = flags.DEFINE_bool("compress", False, "GZIP-compress the shards (.tfrecord.gz).")
_CHANNELS = flags.DEFINE_enum("channels", "0", ["0", "1", "3", "4"], "image_folder/tfrecord: channels to decode to (0: as stored).")
_IMAGE_SIZE = flags.DEFINE_list("image_size", [], "image_folder/tfrecord: resize to H,W (centred crop first).")
_VALIDATION_SPLIT = flags.DEFINE_float("validation_split", 0.1, "image_folder without train/ and test/: test fraction.")
_SEED = flags.DEFINE_integer("seed", 0, "image_folder without train/ and test/: seed of the split.")
_MEMORY_BUDGET_MB = flags.DEFINE_integer("memory_budget_mb", limits.DEFAULT_MEMORY_BUDGET_MB, "idx, npz, csv (read into memory first): the most "
                                         "their headers may claim, in MiB.", lower_bound=1)


flags.mark_flag_as_required("output_dir")


def main(argv):
    if len(argv) > 1:
        cli.exit_with_error(f"unexpected arguments {argv[1:]}; all settings are --flags")
    cli.quiet_logging()
    try:
        image_size = tuple(int(v) for v in _IMAGE_SIZE.value)
    except ValueError:
        cli.exit_with_error(f"flag --image_size: expected two positive ints H,W; got {','.join(_IMAGE_SIZE.value)}")
    try:
        written = conversion.write_tfrecords(
            _DATASET.value, _DATA_DIR.value, _OUTPUT_DIR.value, _NUM_SHARDS.value, _NUM_TEST_SHARDS.value,
            _COMPRESS.value, int(_CHANNELS.value), image_size, _VALIDATION_SPLIT.value, _SEED.value,
            _MEMORY_BUDGET_MB.value)
    except data.DataError as e:
        cli.exit_with_error(str(e), code=1)
    except ValueError as e:
        cli.exit_with_error(str(e))
    print(json.dumps({split: len(paths) for split, paths in written.items()}))


if __name__ == "__main__":
    _startup.run(main)
