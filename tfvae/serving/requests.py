"""TensorFlow Serving requests for a tfvae export: REST JSON (row and columnar) and gRPC.

REST (``POST /v1/models/<name>:predict``):

  columnar  {"signature_name": "reconstruct", "inputs": {"images": [[...]]}}
  row       {"signature_name": "reconstruct", "instances": [{"images": [[...]]}, ...]}

In the row format every instance carries every input, so request-level
parameters (``seed``, ``num_samples``, ``num_importance_samples``) repeat on
each instance, while ``images`` (``vectors`` for a model of tabular data:
``export.data_name``), ``z`` and a conditional model's ``labels``
give one row per instance; a signature without batched inputs (``sample``) sends one
instance. gRPC sends a ``tensorflow.serving.PredictRequest`` (package
``tensorflow-serving-api``, the ``serving`` extra) with one TensorProto per
input.

The ``decode_*`` functions turn a request back into the tensors the server
feeds the signature (used to test requests against the export).
"""

from __future__ import annotations

import numpy as np

__all__ = [
    "BATCHED_INPUTS",
    "INPUT_DTYPES",
    "LABELS_DTYPE",
    "decode_grpc_request",
    "decode_rest_request",
    "grpc_request",
    "input_dtypes",
    "rest_request",
]

INPUT_DTYPES = {
    "encode": {"images": np.float32, "seed": np.int64},
    "decode": {"z": np.float32},
    "reconstruct": {"images": np.float32},
    "serving_default": {"images": np.float32},
    "sample": {"num_samples": np.int32, "seed": np.int64},
    "log_likelihood": {"images": np.float32, "num_importance_samples": np.int32, "seed": np.int64},
}
LABELS_DTYPE = np.int32  # the "labels" input every signature of a conditional model adds
BATCHED_INPUTS = ("images", "vectors", "z", "labels")  # one row per example; the others are request parameters


def input_dtypes(signature: str, conditional: bool = False, data_name: str = "images") -> dict:
    """{input: numpy dtype} of ``signature`` (with ``labels`` for a conditional model's export), its examples'
    input named ``data_name`` ("images", or "vectors" for a model of tabular data)."""
    if signature not in INPUT_DTYPES:
        raise ValueError(f"signature must be one of {sorted(INPUT_DTYPES)}; got {signature!r}")
    dtypes = {data_name if name == "images" else name: dtype for name, dtype in INPUT_DTYPES[signature].items()}
    return {**dtypes, **({"labels": LABELS_DTYPE} if conditional else {})}


def _data_name(names) -> str:
    return "vectors" if "vectors" in names else "images"


def _typed_inputs(signature: str, inputs: dict) -> dict:
    expected = input_dtypes(signature, conditional="labels" in inputs, data_name=_data_name(inputs))
    if sorted(inputs) != sorted(expected):
        raise ValueError(f"signature {signature!r} takes inputs {sorted(expected)}; got {sorted(inputs)}")
    typed = {}
    for name, value in inputs.items():
        array = np.asarray(value, dtype=expected[name])
        typed[name] = array if name in BATCHED_INPUTS else array.reshape(-1)
    return typed


def rest_request(signature: str, inputs: dict, row_format: bool = False) -> dict:
    """The JSON body (a dict) of a REST predict request.

    Args:
      signature: a signature name of the export.
      inputs: {input name: array}; batched inputs with a leading batch axis,
        parameters as a scalar or a one-element vector.
      row_format: "instances" (one object per example) instead of "inputs".
    """
    typed = _typed_inputs(signature, inputs)
    if not row_format:
        return {"signature_name": signature, "inputs": {k: v.tolist() for k, v in typed.items()}}
    batched = [k for k in typed if k in BATCHED_INPUTS]
    batch = len(typed[batched[0]]) if batched else 1
    instances = []
    for i in range(batch):
        row = {}
        for name, value in typed.items():
            row[name] = value[i].tolist() if name in BATCHED_INPUTS else value[0].item()
        instances.append(row)
    return {"signature_name": signature, "instances": instances}


def decode_rest_request(body: dict) -> tuple[str, dict]:
    """(signature, {input: array}) as TF Serving reads a REST body, typed by the signature."""
    signature = body.get("signature_name", "serving_default")
    rows = body.get("instances") or [{}]
    dtypes = input_dtypes(signature, conditional=True, data_name=_data_name({*body.get("inputs", {}), *rows[0]}))
    if "inputs" in body:
        return signature, {k: np.asarray(v, dtypes[k]) for k, v in body["inputs"].items()}
    return signature, {k: np.asarray([row[k] for row in rows], dtypes[k]) for k in rows[0]}


def grpc_request(model_name: str, signature: str, inputs: dict):
    """A ``tensorflow.serving.PredictRequest`` (needs the tensorflow-serving-api package)."""
    import tensorflow as tf
    from tensorflow_serving.apis import predict_pb2

    request = predict_pb2.PredictRequest()
    request.model_spec.name = model_name
    request.model_spec.signature_name = signature
    for name, value in _typed_inputs(signature, inputs).items():
        request.inputs[name].CopyFrom(tf.make_tensor_proto(value))
    return request


def decode_grpc_request(request) -> tuple[str, dict]:
    """(signature, {input: array}) from a PredictRequest."""
    import tensorflow as tf

    return request.model_spec.signature_name, {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
