"""Loads a tfvae export the way a server does, in a process where tfvae and TFP cannot be imported.

  python tests/serving_probe.py tf2|tf1 <version_dir> <inputs.npz> <outputs.npz>

inputs.npz holds arrays named "<signature>/<input>"; outputs.npz gets
"<signature>/<output>". tf2 uses tf.saved_model.load and calls each
signature; tf1 imports the MetaGraph with tag "serve" into a Session (as
tensorflow_model_server's C++ loader does) and runs each signature_def by its
tensor names.
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
        results = loaded.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        outputs.update({f"{signature}/{k}": v.numpy() for k, v in results.items()})
    return outputs


def run_tf1(path, requests):
    outputs = {}
    with tf.compat.v1.Graph().as_default(), tf.compat.v1.Session() as session:
        meta_graph = tf.compat.v1.saved_model.loader.load(session, ["serve"], path)
        for signature, inputs in requests.items():
            definition = meta_graph.signature_def[signature]
            feeds = {definition.inputs[k].name: v for k, v in inputs.items()}
            names = sorted(definition.outputs)
            values = session.run([definition.outputs[n].name for n in names], feed_dict=feeds)
            outputs.update({f"{signature}/{n}": v for n, v in zip(names, values, strict=True)})
    return outputs


def main(mode, path, inputs_path, outputs_path):
    with np.load(inputs_path) as f:
        requests = grouped(dict(f))
    outputs = (run_tf2 if mode == "tf2" else run_tf1)(path, requests)
    np.savez(outputs_path, **outputs)


if __name__ == "__main__":
    main(*sys.argv[1:])
