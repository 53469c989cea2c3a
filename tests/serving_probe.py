"""Loads a tfvae export the way a server does, in a process where tfvae and TFP cannot be imported.

  python tests/serving_probe.py tf2|tf1|warmup <version_dir> <inputs.npz> <outputs.npz>

inputs.npz holds arrays named "<signature>/<input>" (or "<signature>@<tag>/<input>":
several requests of one signature, told apart by their tags); outputs.npz gets
"<signature>/<output>" (with the tag), or "<signature>/error" (the error's text)
for a request that fails. tf2 uses tf.saved_model.load and calls each signature;
tf1 imports the MetaGraph with tag "serve" into a Session (as
tensorflow_model_server's C++ loader does) and runs each signature_def by its
tensor names, feeding through the C API as the server does (no client-side
check of the fed shapes). warmup replays assets.extra/tf_serving_warmup_requests
(parsed with tensorflow-serving-api's PredictionLog) the same way; its
outputs are "<signature>/<output>" of each record.
"""

import sys

for blocked in ("tfvae", "tensorflow_probability"):
    sys.modules[blocked] = None  # any import of them raises ImportError

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402


def grouped(arrays):
    signatures = {}
    for key, value in arrays.items():
        signature, name = key.split("/")
        signatures.setdefault(signature, {})[name] = value
    return signatures


def run_tf2(path, requests):
    loaded = tf.saved_model.load(path)
    outputs = {}
    for signature, inputs in requests.items():
        results = loaded.signatures[signature.split("@")[0]](**{k: tf.constant(v) for k, v in inputs.items()})
        outputs.update({f"{signature}/{k}": v.numpy() for k, v in results.items()})
    return outputs


def run_tf1(path, requests):
    from tensorflow.python.client import pywrap_tf_session

    outputs = {}
    with tf.compat.v1.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        tensor = session.graph.get_tensor_by_name
        for signature, inputs in requests.items():
            definition = meta_graph.signature_def[signature.split("@")[0]]
            feeds = {tensor(definition.inputs[k].name)._as_tf_output(): v for k, v in inputs.items()}
            names = sorted(definition.outputs)
            fetches = [tensor(definition.outputs[n].name)._as_tf_output() for n in names]
            try:
                values = pywrap_tf_session.TF_SessionRun_wrapper(session._session, None, feeds, fetches, [], None)
            except tf.errors.OpError as e:
                outputs[f"{signature}/error"] = np.array(e.message)
                continue
            outputs.update({f"{signature}/{n}": v for n, v in zip(names, values, strict=True)})
    return outputs


def run_warmup(path, _):
    from tensorflow_serving.apis import prediction_log_pb2

    requests = {}
    for record in tf.data.TFRecordDataset(f"{path}/assets.extra/tf_serving_warmup_requests"):
        log = prediction_log_pb2.PredictionLog.FromString(record.numpy())
        request = log.predict_log.request
        requests[request.model_spec.signature_name] = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
    return run_tf1(path, requests)


def main(mode, path, inputs_path, outputs_path):
    with np.load(inputs_path) as f:
        requests = grouped(dict(f))
    outputs = {"tf2": run_tf2, "tf1": run_tf1, "warmup": run_warmup}[mode](path, requests)
    np.savez(outputs_path, **outputs)


if __name__ == "__main__":
    main(*sys.argv[1:])
