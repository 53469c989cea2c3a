"""data: data sets and their formats, read into memory or streamed, for training and evaluation.

  run_data.py       a run's data from its config (prepare_data) or from Python (from_python)
  loaders.py        data sets read into memory by name: IDX, npz, CSV, image folders, shards, TFDS, downloads
  sources.py        a split's files and how their records decode
  records.py        TFRecord shards;   image_folders.py  folders of image files;   tfds_data.py  TFDS
  in_memory.py      resumable index blocks over data held in memory, evaluation batches
  streaming.py      streamed, resumable input in bounded memory
  pixels.py         pixel conversions and the fixed test binarization
  conversion.py     any data set written as shards
  photo_crops.py    crops of scikit-image's sample photos written as an image folder (real colour data to try)

``tfvae.data`` re-exports ``run_data.py``'s names (its 0.3.0 meaning). Data never imports a model.

May import: core.
"""

from tfvae.data.run_data import (
    DATASETS,
    DEFAULT_DATA_DIRS,
    INPUT_MODES,
    PYTHON_DATASET,
    STREAMABLE,
    DataError,
    ImageData,
    binarize,
    check_dataset_name,
    example_sources,
    from_python,
    input_mode,
    load_csv,
    load_dataset,
    load_idx_directory,
    load_image_folder,
    load_npz,
    prepare_data,
    read_csv,
    read_idx,
    to_unit_interval,
    validate_images,
)

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "DataError",
    "INPUT_MODES",
    "ImageData",
    "PYTHON_DATASET",
    "STREAMABLE",
    "binarize",
    "check_dataset_name",
    "example_sources",
    "from_python",
    "input_mode",
    "load_csv",
    "load_dataset",
    "load_idx_directory",
    "load_image_folder",
    "load_npz",
    "prepare_data",
    "read_csv",
    "read_idx",
    "to_unit_interval",
    "validate_images",
]
