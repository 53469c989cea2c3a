"""Writes a folder of square crops of scikit-image's sample photos (real colour images, no download).

  python scripts/make_photo_crops.py --out_dir=photos32      # photos32/train/*.png, photos32/test/*.png
  python scripts/train.py --flagfile=scripts/configs/rgb32_photos.flags --data_dir=photos32 --model_dir=runs/rgb32

Needs scikit-image (``pip install scikit-image``; in the ``test`` extra). See
``tfvae.data.photo_crops`` for the photos, reductions and the train/test split.
"""

import json

import _startup
from absl import flags

from tfvae.data import photo_crops
from tfvae.train import cli

_OUT_DIR = flags.DEFINE_string("out_dir", None, "New folder to write train/ and test/ crops into (must not exist).")
_SIZE = flags.DEFINE_integer("size", 32, "Crop side in pixels.", lower_bound=4, upper_bound=256)
_CROPS = flags.DEFINE_integer("crops_per_image", 300, "Training crops per photo and reduction (test: a fifth).",
                              lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the crop positions.")
flags.mark_flag_as_required("out_dir")


def main(argv):
    if len(argv) > 1:
        cli.exit_with_error(f"unexpected arguments {argv[1:]}; all settings are --flags")
    try:
        counts = photo_crops.write_photo_crops(_OUT_DIR.value, _SIZE.value, _CROPS.value, _SEED.value)
    except ImportError as e:
        cli.exit_with_error(str(e), code=1)
    except ValueError as e:
        cli.exit_with_error(f"flag --{e}")
    except OSError as e:
        cli.exit_with_error(f"flag --out_dir: cannot write {e.filename or _OUT_DIR.value} ({e.strerror})", code=1)
    print(json.dumps(counts))


if __name__ == "__main__":
    _startup.run(main)
