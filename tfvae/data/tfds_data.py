"""TensorFlow Datasets as a source: ``--dataset=tfds:NAME`` (the optional ``tensorflow-datasets`` package).

The builder's image feature (``image_feature``, else the first ``Image``
feature) and label feature (``label_feature``, else the first
``ClassLabel``, if any) become a ``sources.ExampleSource`` of kind "dataset",
so a TFDS data set is held in memory or streamed like any other
(``data.prepare_data``). Splits: "train", and "test" (else "validation").
``data_dir`` is the TFDS data directory (default: TFDS's own); a data set not
prepared there is downloaded and prepared by TFDS first.
"""

from __future__ import annotations

import tensorflow as tf

from tfvae.core.errors import DataError
from tfvae.data import sources

__all__ = ["PREFIX", "is_tfds", "tfds_sources"]

PREFIX = "tfds:"


def is_tfds(dataset: str) -> bool:
    """Whether a dataset name is ``tfds:NAME``."""
    return dataset.startswith(PREFIX)


def _import_tfds():
    try:
        import tensorflow_datasets as tfds
    except ImportError:
        raise DataError("datasets tfds:NAME need the tensorflow-datasets package: pip install 'tfvae[tfds]' "
                        "(or pip install tensorflow-datasets)") from None
    return tfds


def _feature_names(features, kind, named: str, what: str, dataset: str) -> str | None:
    if named:
        if named not in features:
            raise DataError(f"flag --{what}_feature: {dataset} has no feature {named!r}; it has {sorted(features)}")
        return named
    return next((key for key, feature in features.items() if isinstance(feature, kind)), None)


def tfds_sources(dataset: str, data_dir: str | None = None, image_feature: str = "", label_feature: str = "",
                 require_label: bool = False) -> dict[str, sources.ExampleSource]:
    """{"train", "test"}: the splits of ``tfds:NAME`` as example sources of (image, label) or images."""
    tfds = _import_tfds()
    name = dataset[len(PREFIX):]
    try:
        builder = tfds.builder(name, data_dir=data_dir)
    except Exception as e:  # noqa: BLE001 - TFDS raises several kinds; reported with the name, one line
        raise DataError(f"flag --dataset: {dataset}: {str(e).splitlines()[0]}") from None
    features = builder.info.features
    image_key = _feature_names(features, tfds.features.Image, image_feature, "image", dataset)
    if image_key is None:
        raise DataError(f"flag --image_feature: {dataset} has no Image feature; name one of {sorted(features)}")
    label_key = _feature_names(features, tfds.features.ClassLabel, label_feature, "label", dataset)
    if require_label and label_key is None:
        raise DataError(f"flag --label_feature: {dataset} has no ClassLabel feature for --conditional; name one of "
                        f"{sorted(features)}")
    known = set(builder.info.splits.keys())
    test_split = "test" if "test" in known or not known else "validation"
    found = {}
    for split, tfds_split in (("train", "train"), ("test", test_split)):
        try:
            examples = tfds.load(name, split=tfds_split, data_dir=data_dir, shuffle_files=False)
        except Exception as e:  # noqa: BLE001 - a download or preparation that failed, one line
            raise DataError(f"flag --dataset: {dataset} (split {tfds_split}): cannot load "
                            f"({str(e).strip().splitlines()[0]}); prepare it in --data_dir with `tfds build {name}`"
                            ) from None
        pairs = examples.map(lambda e: (e[image_key], tf.cast(e[label_key], tf.int64)) if label_key else e[image_key])
        found[split] = sources.dataset_source(pairs, f"{dataset} ({tfds_split})")
    return found
