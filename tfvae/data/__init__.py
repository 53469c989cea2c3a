"""data: data sets and their formats, read into memory or streamed, for training and evaluation.

  run_data.py       a run's data from its config (prepare_data) or from Python (from_python): read, then made ready
  training_data.py  the one interface of data ready for training (TrainingData, TrainingFeed), in memory or streamed
  summary.py        what a run's data is, in a few lines (describe)
  tables.py         the column names of a CSV table
  formats.py        data as read (LoadedArrays, LoadedData), reading options, one entry of the registry (Format)
  loaders.py        the registry of formats by name (FORMATS) and the readers of IDX, npz, CSV and downloads
  sources.py        a split's files and how their records decode
  records.py        TFRecord shards;   image_folders.py  folders of image files;   tfds_data.py  TFDS
  framing.py        TFRecord framing checked in Python before TensorFlow reads a shard
  idx_files.py, npz_files.py, csv_files.py   IDX, .npz and CSV files read under the memory budget
  image_headers.py  PNG and JPEG sizes and channels from their headers, as the decoders give them
  classes.py        class labels of a conditional run, bounded by the data
  limits.py         the stated ceilings on what a file may claim, and the memory budget
  fuzzing.py        the property every parser of untrusted bytes must hold, run by tests and scripts/fuzz.py
  fuzz_inputs.py    the fuzzers' inputs: valid files of each format, changed where their parsers read them
  in_memory.py      data ready in memory (InMemoryData), its resumable index blocks, evaluation batches
  streaming.py      data whose training split streams (StreamData): resumable input in bounded memory
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
    InMemoryData,
    LoadedArrays,
    LoadedData,
    TrainingData,
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
    load_python_data,
    load_run_data,
    make_ready,
    prepare_data,
    read_csv,
    read_idx,
    scale_integers,
    to_unit_interval,
    validate_images,
)
from tfvae.data.summary import DataDescription, describe

__all__ = [
    "DATASETS",
    "DEFAULT_DATA_DIRS",
    "DataDescription",
    "DataError",
    "INPUT_MODES",
    "ImageData",
    "InMemoryData",
    "LoadedArrays",
    "LoadedData",
    "PYTHON_DATASET",
    "STREAMABLE",
    "TrainingData",
    "binarize",
    "check_dataset_name",
    "describe",
    "example_sources",
    "from_python",
    "input_mode",
    "load_csv",
    "load_dataset",
    "load_idx_directory",
    "load_image_folder",
    "load_npz",
    "load_python_data",
    "load_run_data",
    "make_ready",
    "prepare_data",
    "read_csv",
    "read_idx",
    "scale_integers",
    "to_unit_interval",
    "validate_images",
]
