"""TF Serving warm-up records: ``assets.extra/tf_serving_warmup_requests``.

When TensorFlow Serving loads a version it replays the ``PredictionLog``
records of this TFRecord file before it marks the version available, so the
first real requests do not pay for graph optimisation and kernel set-up.
There is one ``PredictLog`` per signature, with the smallest valid inputs
(one example, label 0, seed 0, k = 1).

The records are protocol-buffer messages written with the wire format by
hand, so exporting does not need the ``tensorflow-serving-api`` package:

  PredictionLog { predict_log (6): PredictLog { request (1): PredictRequest {
      model_spec (1): ModelSpec { signature_name (3) },
      inputs (2): map<string, TensorProto> } } }

References: TensorFlow Serving, "SavedModel Warmup"
(tensorflow_serving/g3doc/saved_model_warmup.md); prediction_log.proto.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tfvae.core import files

__all__ = ["WARMUP_FILE", "warmup_inputs", "write_warmup_records"]

WARMUP_FILE = "tf_serving_warmup_requests"


def warmup_inputs(signature_inputs: dict) -> dict:
    """{signature: {input: array}}: one small valid request per signature.

    Args:
      signature_inputs: {signature: {input: {"dtype", "shape"}}}, as
        ``export.ServingModule.signature_inputs`` describes them.
    """
    requests = {}
    for signature, inputs in signature_inputs.items():
        arrays = {}
        for name, spec in inputs.items():
            shape = [1 if d == -1 else d for d in spec["shape"]]
            value = 1 if name in ("num_samples", "num_importance_samples") else 0
            arrays[name] = np.full(shape, value, dtype=spec["dtype"])
        requests[signature] = arrays
    return requests


def write_warmup_records(path: str, requests: dict) -> None:
    """Writes one PredictionLog record per ``{signature: {input: array}}`` entry to ``path`` (through a unique
    temporary, ``files.replacing``)."""
    with files.replacing(path) as temporary, tf.io.TFRecordWriter(temporary) as writer:
        for signature, inputs in requests.items():
            writer.write(_prediction_log(signature, inputs))


def _prediction_log(signature: str, inputs: dict) -> bytes:
    model_spec = _field(3, signature.encode())
    request = _field(1, model_spec)
    for name, value in sorted(inputs.items()):
        entry = _field(1, name.encode()) + _field(2, tf.make_tensor_proto(value).SerializeToString())
        request += _field(2, entry)
    return _field(6, _field(1, request))


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited protobuf field: tag, length, payload."""
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        out.append(low | 0x80 if value else low)
        if not value:
            return bytes(out)
