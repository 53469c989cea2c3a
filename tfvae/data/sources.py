"""Example sources: the files of one split and how their records decode into images.

A source is what the streaming input reads (``tfvae.streaming``) and what an
in-memory load decodes once: a list of files, each holding ``counts[i]``
records, and a decoder from a record to (image uint8 [H, W, C], label).

  tfrecord     TFRecord shards of tf.train.Example (``tfvae.records``)
  image_files  one image file per record (``tfvae.image_folders``)
  dataset      a user's ``tf.data.Dataset`` of decoded examples (one "file")

Images are decoded with ``channels`` (0: as stored) and, with an
``image_size``, cropped to its aspect ratio around the centre and resized
(bilinear), as Keras' ``image_dataset_from_directory`` does with
``crop_to_aspect_ratio=True``. Every decoded image must have the source's
``data_shape``; a record that does not decode to it is a bad record, found
(file, index and reason) by ``find_bad_records``.
"""

from __future__ import annotations

import dataclasses
import math
import re

import numpy as np
import tensorflow as tf

from tfvae.core import choices
from tfvae.core.errors import DataError
from tfvae.data import image_folders, records

__all__ = [
    "BadRecord",
    "ExampleSource",
    "crop_and_resize",
    "dataset_source",
    "decode_image",
    "find_bad_records",
    "image_folder_source",
    "tfrecord_source",
]

CHANNELS = choices.register("channels", (0, 1, 3, 4))
_INTERLEAVE = 16


def _key(file_id, index):
    """One int64 per record: file id * 2^32 + index."""
    return file_id * 2**32 + index


@dataclasses.dataclass(frozen=True)
class BadRecord:
    """A record that does not decode: its file, index in the file and why."""

    path: str
    index: int
    reason: str

    def __str__(self):
        return f"{self.path}: record {self.index}: {self.reason}"


@dataclasses.dataclass(frozen=True)
class ExampleSource:
    """The records of one split.

    Attributes:
      kind: "tfrecord" or "image_files".
      files: the shard paths (tfrecord) or image paths (image_files).
      counts: records in each file.
      data_shape: (height, width, channels) of every decoded image.
      has_labels: whether every record has a label.
      labels: the label of each file (image_files with class folders), else None.
      channels: channels to decode to (0: as stored).
      resize: whether images are cropped and resized to data_shape[:2].
      name: what the source is, for messages (a directory and split).
      max_label: the largest label (-1 without labels).
      dataset: the examples of kind "dataset": images [H, W, C] (or [H, W]) or (image, label).
      dtype: of the decoded images: uint8 ([0, 255]) or float32 ([0, 1], kind "dataset" only).
    """

    kind: str
    files: tuple[str, ...]
    counts: tuple[int, ...]
    data_shape: tuple[int, int, int]
    has_labels: bool
    labels: tuple[int, ...] | None = None
    channels: int = 0
    resize: bool = False
    name: str = ""
    max_label: int = -1
    dataset: tf.data.Dataset | None = None
    dtype: str = "uint8"

    @property
    def num_examples(self) -> int:
        return int(sum(self.counts))

    @property
    def decoded_bytes(self) -> int:
        """Bytes of all images decoded as uint8."""
        return self.num_examples * math.prod(self.data_shape)

    def records(self, file_ids, skipped: frozenset = frozenset(), interleave: bool = True,
                with_keys: bool = False) -> tf.data.Dataset:
        """The payloads of the records of the files ``file_ids``, in that order.

        A payload is a serialized record (tfrecord) or a file id (image_files);
        ``decode`` and ``decode_batch`` take it. ``skipped``: (file id, record
        index) pairs to leave out. ``interleave``: read 16 shards at a time,
        a record from each in turn (else one shard after the other).
        ``with_keys``: yield (file id * 2^32 + record index, payload).
        """
        file_ids = np.asarray(list(file_ids), np.int64)
        keyed = with_keys or bool(skipped)
        if self.kind == "dataset":
            dataset = self.dataset.map(self._as_payload)
            if keyed:
                dataset = dataset.enumerate().map(lambda index, payload: (_key(tf.constant(0, tf.int64), index),
                                                                          payload))
        elif self.kind == "image_files":
            dataset = tf.data.Dataset.from_tensor_slices(file_ids)
            if keyed:
                dataset = dataset.map(lambda f: (_key(f, 0), f))
        else:
            paths = tf.constant(self.files)
            compression = records.compression_type(self.files[0])

            def shard(file_id):
                records_of_file = tf.data.TFRecordDataset(tf.gather(paths, file_id), compression_type=compression)
                if not keyed:
                    return records_of_file
                return records_of_file.enumerate().map(lambda index, record: (_key(file_id, index), record))

            parallel = dict(num_parallel_calls=tf.data.AUTOTUNE, deterministic=True) if interleave else {}
            dataset = tf.data.Dataset.from_tensor_slices(file_ids).interleave(
                shard, cycle_length=max(1, min(len(file_ids), _INTERLEAVE if interleave else 1)), block_length=1,
                **parallel)
        if skipped:
            keys = tf.constant(sorted(_key(f, i) for f, i in skipped), tf.int64)
            table = tf.lookup.StaticHashTable(tf.lookup.KeyValueTensorInitializer(keys, tf.zeros_like(keys)), -1)
            dataset = dataset.filter(lambda key, payload: table.lookup(key) < 0)
            if not with_keys:
                dataset = dataset.map(lambda key, payload: payload)
        return dataset

    def record_ids(self, bad_records) -> frozenset[tuple[int, int]]:
        """(file id, record index) of those of ``bad_records`` that are in this source."""
        ids = {path: i for i, path in enumerate(self.files)}
        return frozenset((ids[r.path], r.index) for r in bad_records if r.path in ids)

    def decode(self, payload):
        """(image uint8 [H, W, C], label int32; -1 without one) of one record, in a graph.

        A record that does not decode to ``data_shape`` raises InvalidArgumentError.
        """
        images, labels = self.decode_batch(tf.nest.map_structure(lambda t: t[tf.newaxis], payload))
        return images[0], labels[0]

    def decode_batch(self, payloads):
        """``decode`` of a batch of records: (images uint8 [n, H, W, C], labels int32 [n]).

        Records are parsed together and the images decoded in one loop,
        which costs less per example than decoding records one by one.
        """
        if self.kind == "dataset":
            return payloads["image"], tf.cast(payloads["label"], tf.int32)
        if self.kind == "tfrecord":
            encoded, labels = records.parse_examples(payloads)
        else:
            encoded = tf.map_fn(tf.io.read_file, tf.gather(tf.constant(self.files), payloads))
            labels = tf.gather(tf.constant(self.labels if self.labels is not None else [-1] * len(self.files),
                                           tf.int64), payloads)
        images = tf.map_fn(self._decode_image, encoded, fn_output_signature=tf.TensorSpec(self.data_shape, tf.uint8))
        return images, tf.cast(labels, tf.int32)

    def _as_payload(self, *element):
        image, label = element if self.has_labels else (element[0], tf.constant(-1, tf.int64))
        image = tf.reshape(tf.cast(image, self.dtype), self.data_shape)
        return {"image": image, "label": tf.cast(tf.reshape(label, []), tf.int64)}

    def _decode_image(self, encoded):
        image = decode_image(encoded, self.channels)
        if self.resize:
            image = crop_and_resize(image, self.data_shape[:2])
        return tf.ensure_shape(image, self.data_shape)  # checked when run: a record of another shape fails here

    def decoded(self, skipped: frozenset = frozenset()) -> tf.data.Dataset:
        """(image, label) of every record but ``skipped``, in file order, decoded in parallel."""
        return self.records(range(len(self.files)), skipped, interleave=False).batch(256).map(
            self.decode_batch, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).unbatch()

    def to_arrays(self, skipped: frozenset = frozenset(), limit: int | None = None
                  ) -> tuple[np.ndarray, np.ndarray | None]:
        """The first ``limit`` (default all) images [n, H, W, C] uint8 and labels [n] (None without labels).

        A record that does not decode raises DataError naming its file and index.
        """
        count = self.num_examples - len(skipped)
        count = count if limit is None else min(limit, count)
        images = np.empty((count, *self.data_shape), self.dtype)
        labels = np.empty((count,), np.int32)
        start = 0
        try:
            for x, y in self.decoded(skipped).take(count).batch(1024):
                images[start : start + len(x)], labels[start : start + len(x)] = x.numpy(), y.numpy()
                start += len(x)
        except tf.errors.InvalidArgumentError:
            raise DataError(str(find_bad_records(self, limit=1)[0])) from None
        return images, labels if self.has_labels else None


def _luma(rgb: tf.Tensor) -> tf.Tensor:
    """uint8 [H, W, 1] grey of uint8 RGB: Y = 0.299 R + 0.587 G + 0.114 B, rounded (ITU-R BT.601, as libjpeg)."""
    grey = tf.tensordot(tf.cast(rgb, tf.float32), tf.constant([0.299, 0.587, 0.114]), axes=1)
    return tf.cast(tf.clip_by_value(tf.round(grey), 0.0, 255.0), tf.uint8)[..., tf.newaxis]


def decode_image(encoded: tf.Tensor, channels: int) -> tf.Tensor:
    """uint8 [H, W, C] of one encoded PNG, JPEG, BMP or GIF (first frame), with ``channels`` (0: as stored).

    TensorFlow decodes a CMYK (or YCCK) JPEG to RGB only (``channels`` 0 or
    3) and refuses 1 or 4; such a JPEG is decoded to RGB and converted: grey
    is its BT.601 luma, RGBA adds an opaque alpha, as for any RGB image.
    """
    def decode(to_channels):
        # The DecodeImage kernel tells PNG, JPEG, BMP and GIF apart itself (tf.io.decode_image builds graph
        # conditionals for that, which cost more than the decoding of a small image).
        return tf.raw_ops.DecodeImage(contents=encoded, channels=to_channels, dtype=tf.uint8, expand_animations=False)

    if channels not in (1, 4):
        return decode(channels)
    is_jpeg = tf.equal(tf.strings.substr(encoded, 0, 2), b"\xff\xd8")
    four_components = tf.cond(is_jpeg, lambda: tf.equal(tf.io.extract_jpeg_shape(encoded)[2], 4),
                              lambda: tf.constant(False))

    def from_rgb():
        rgb = decode(3)
        return _luma(rgb) if channels == 1 else tf.concat([rgb, tf.fill(tf.concat([tf.shape(rgb)[:2], [1]], 0),
                                                                        tf.constant(255, tf.uint8))], -1)

    return tf.cond(four_components, from_rgb, lambda: decode(channels))


def crop_and_resize(image: tf.Tensor, size) -> tf.Tensor:
    """The largest centred crop of ``image`` with the aspect ratio of ``size`` (H, W), resized to it, uint8."""
    height, width = tf.shape(image)[0], tf.shape(image)[1]
    target_h, target_w = int(size[0]), int(size[1])
    crop_h = tf.minimum(height, tf.cast(tf.round(tf.cast(width * target_h, tf.float32) / target_w), tf.int32))
    crop_w = tf.minimum(width, tf.cast(tf.round(tf.cast(height * target_w, tf.float32) / target_h), tf.int32))
    crop_h, crop_w = tf.maximum(crop_h, 1), tf.maximum(crop_w, 1)
    image = tf.image.crop_to_bounding_box(image, (height - crop_h) // 2, (width - crop_w) // 2, crop_h, crop_w)
    resized = tf.image.resize(image, [target_h, target_w], method="bilinear")
    return tf.cast(tf.clip_by_value(tf.round(resized), 0.0, 255.0), tf.uint8)


def find_bad_records(source: ExampleSource, limit: int | None = None) -> list[BadRecord]:
    """The records of ``source`` that do not decode to its data_shape, in file order (at most ``limit``).

    Decodes every record once (in parallel; errors ignored and found by
    their absence), then each bad one again alone for its reason.
    """
    def decoded_key(key, payload):
        image, _ = source.decode(payload)
        return key, tf.reduce_max(image)  # an output that needs the pixels, else the decoding is pruned away

    good = source.records(range(len(source.files)), interleave=False, with_keys=True).map(
        decoded_key, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True).ignore_errors().map(
        lambda key, _: key)
    seen = set(int(key) for key in good.as_numpy_iterator())
    bad = []
    for file_id, count in enumerate(source.counts):
        for index in range(count):
            if _key(file_id, index) not in seen:
                bad.append((file_id, index))
                if limit is not None and len(bad) >= limit:
                    break
        if limit is not None and len(bad) >= limit:
            break
    return [BadRecord(source.files[f], i, _reason(source, f, i)) for f, i in bad]


def _reason(source: ExampleSource, file_id: int, index: int) -> str:
    payload = next(iter(source.records([file_id]).skip(index).take(1)))
    try:
        if source.kind == "dataset":
            return "cannot be read"
        if source.kind == "tfrecord":
            encoded, _ = records.parse_example(payload)
        else:
            encoded = tf.io.read_file(source.files[file_id])
        source._decode_image(encoded)
    except tf.errors.OpError as e:
        lines = [line.strip() for line in e.message.splitlines() if line.strip()]
        text = re.sub(r"\{\{function_node [^}]*\}\}\s*|\s*\[Op:\w+\].*$", "", lines[-1] if lines else "")
        return f"cannot decode image ({text})"
    return "does not decode"


def _check_channels(channels: int) -> None:
    if channels not in CHANNELS:
        raise ValueError(f"channels must be one of {CHANNELS} (0: as stored); got {channels}")


def tfrecord_source(data_dir: str, split: str, channels: int = 0, image_size=(),
                    require_label: bool = False) -> ExampleSource:
    """The ``split`` shards of ``data_dir``: every record counted and checked, each shard's first image decoded.

    Up front (DataError naming the file and record): corrupt or truncated
    records, records without ``image`` (or ``label`` with ``require_label``),
    shards of mixed compression, and first images of another shape than the
    first shard's (without ``image_size``).
    """
    _check_channels(channels)
    paths = records.shard_paths(data_dir, split)
    kinds = {p: records.compression_type(p) for p in paths}
    if len(set(kinds.values())) > 1:
        plain = next(p for p, k in kinds.items() if not k)
        packed = next(p for p, k in kinds.items() if k)
        raise DataError(f"{data_dir}: {split} shards mix GZIP ({packed}) and uncompressed ({plain}) files")
    summaries = [records.count_records(p, require_label) for p in paths]
    counts = tuple(count for count, _, _ in summaries)
    lows = [low for count, low, _ in summaries if count]
    labelled = bool(lows) and min(lows) >= 0
    probe = ExampleSource("tfrecord", tuple(paths), counts, (1, 1, 1), labelled, channels=channels,
                          name=f"{data_dir} ({split})",
                          max_label=max((high for _, _, high in summaries), default=-1) if labelled else -1)
    shapes = {}
    for file_id, path in enumerate(paths):
        if counts[file_id] == 0:
            continue
        payload = next(iter(probe.records([file_id]).take(1)))
        try:
            encoded, _ = records.parse_example(payload)
            shapes[path] = tuple(int(d) for d in decode_image(encoded, channels).shape)
        except tf.errors.OpError as e:
            raise DataError(f"{path}: record 0: cannot decode image ({e.message.splitlines()[0]})") from None
    if not shapes:
        raise DataError(f"{data_dir}: the {split} shards hold no records")
    data_shape = _common_shape(shapes, image_size, "record 0 of ")
    return dataclasses.replace(probe, data_shape=data_shape, resize=bool(image_size))


def _common_shape(shapes: dict, image_size, what: str = "") -> tuple[int, int, int]:
    """The one (H, W, C) of ``shapes`` ({file: shape}), or (image_size, C); DataError naming two that differ."""
    first_path, first = next(iter(shapes.items()))
    for path, shape in shapes.items():
        if shape[2] != first[2]:
            raise DataError(f"flag --channels: {what}{path} has {shape[2]} channels but {what}{first_path} has "
                            f"{first[2]}; pass --channels=1, 3 or 4 to convert them all")
        if not image_size and shape[:2] != first[:2]:
            raise DataError(f"flag --image_size: {what}{path} is {shape[0]}x{shape[1]} but {what}{first_path} is "
                            f"{first[0]}x{first[1]}; pass --image_size=H,W to resize them all")
    height, width = (int(d) for d in image_size) if image_size else first[:2]
    return (height, width, int(first[2]))


def dataset_source(dataset: tf.data.Dataset, name: str) -> ExampleSource:
    """A ``tf.data.Dataset`` of unbatched examples as a source: images [H, W, C] or [H, W], or vectors
    [D], uint8 in [0, 255] or float in [0, 1], alone or as (example, int label). Its length is its cardinality, or
    counted by one pass when tf.data does not know it; it must be finite."""
    spec = dataset.element_spec
    labelled = isinstance(spec, tuple) and len(spec) == 2
    image = spec[0] if labelled else spec
    if (not isinstance(image, tf.TensorSpec) or image.shape.rank not in (1, 2, 3) or not image.shape.is_fully_defined()
            or not (image.dtype.is_integer or image.dtype.is_floating)):
        raise ValueError(f"{name} must be a tf.data.Dataset of unbatched images [H, W, C] or [H, W], or vectors "
                         f"[D] (alone or as (example, label) pairs) of a fixed shape; got elements {spec}")
    if labelled and not (isinstance(spec[1], tf.TensorSpec) and spec[1].dtype.is_integer):
        raise ValueError(f"{name}: labels must be integer scalars; got {spec[1]}")
    cardinality = int(dataset.cardinality())
    if cardinality == tf.data.INFINITE_CARDINALITY:
        raise ValueError(f"{name} is infinite (repeat()?); pass one epoch of examples")
    if cardinality < 0:
        cardinality = int(dataset.reduce(tf.constant(0, tf.int64), lambda count, *_: count + 1))
    shape = tuple(int(d) for d in image.shape) + ((1,) if image.shape.rank == 2 else ())
    max_label = int(dataset.reduce(tf.constant(-1, tf.int64), lambda high, *element: tf.maximum(
        high, tf.cast(tf.nest.flatten(element)[-1], tf.int64)))) if labelled else -1
    return ExampleSource("dataset", (name,), (cardinality,), shape, labelled, name=name, max_label=max_label,
                         dataset=dataset, dtype="uint8" if image.dtype.is_integer else "float32")


def image_folder_source(files: image_folders.ImageFiles, channels: int = 0, image_size=(),
                        name: str = "") -> ExampleSource:
    """The image files of one split; sizes and channels are read from every file's header up front."""
    _check_channels(channels)
    sizes = image_folders.image_sizes(files.paths)
    shapes = {p: (s[0], s[1], channels or s[2]) for p, s in zip(files.paths, sizes, strict=True)}
    return ExampleSource("image_files", tuple(files.paths), (1,) * len(files.paths),
                         _common_shape(shapes, image_size), files.labels is not None, files.labels, channels,
                         bool(image_size), name, max(files.labels) if files.labels else -1)
