"""Sends a request for any tfvae signature to a running TF Serving server and prints the result.

  # columnar REST request for reconstructions of 3 Fashion-MNIST test images
  python scripts/serving_client.py --model_name=mlp --signature=reconstruct --test_images=3
  # row format, IWAE scores, and gRPC (pip install -e .[serving])
  python scripts/serving_client.py --model_name=mlp --signature=log_likelihood --test_images=3 --format=row
  python scripts/serving_client.py --model_name=mlp --signature=sample --num_samples=4 --protocol=grpc
  # print the request instead of sending it
  python scripts/serving_client.py --signature=encode --test_images=1 --dry_run

Images come from the first --test_images Fashion-MNIST test images (Debian's
package; binarized with seed 0 as in training) or from --images_npy (float32
[batch, H, W, C] in [0, 1]); decode takes --z_npy ([batch, latent_dim]).
"""

import json
import os
import sys
import urllib.error
import urllib.request

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np
from absl import app, flags

from tfvae import cli, serving_requests

_SERVER = flags.DEFINE_string("server", "localhost:8501", "host:port of the REST API.")
_GRPC_SERVER = flags.DEFINE_string("grpc_server", "localhost:8500", "host:port of the gRPC API.")
_MODEL_NAME = flags.DEFINE_string("model_name", "vae", "The served model's name (--model_name of the server).")
_SIGNATURE = flags.DEFINE_enum("signature", "serving_default", sorted(serving_requests.INPUT_DTYPES),
                               "Signature to call.")
_PROTOCOL = flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "REST JSON or gRPC.")
_FORMAT = flags.DEFINE_enum("format", "columnar", ["columnar", "row"], 'REST body: "inputs" (columnar) or '
                            '"instances" (row).')
_TEST_IMAGES = flags.DEFINE_integer("test_images", 2, "Use the first N Fashion-MNIST test images.", lower_bound=1)
_IMAGES_NPY = flags.DEFINE_string("images_npy", None, "A .npy file of images instead of --test_images.")
_Z_NPY = flags.DEFINE_string("z_npy", None, "A .npy file of latents for decode (default: standard normal draws).")
_LATENT_DIM = flags.DEFINE_integer("latent_dim", 20, "Latent size, for decode without --z_npy.", lower_bound=1)
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 4, "sample: images to draw.", lower_bound=1)
_NUM_IMPORTANCE = flags.DEFINE_integer("num_importance_samples", 1000, "log_likelihood: k.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of encode, sample and log_likelihood.", lower_bound=0)
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "Seconds to wait for the server.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the request and exit without sending it.")


def _images():
    if _IMAGES_NPY.value:
        try:
            return np.load(_IMAGES_NPY.value).astype(np.float32)
        except (OSError, ValueError) as e:
            cli.exit_with_error(f"flag --images_npy: cannot read {_IMAGES_NPY.value} ({e})")
    from tfvae import data

    test = data.load_dataset("fashion_mnist").test_images[: _TEST_IMAGES.value]
    return data.binarize(test, seed=0)


def request_inputs(signature):
    """The inputs of one request for ``signature`` from the flags."""
    if signature == "decode":
        if _Z_NPY.value:
            return {"z": np.load(_Z_NPY.value)}
        return {"z": np.random.default_rng(_SEED.value).normal(size=(_TEST_IMAGES.value, _LATENT_DIM.value))}
    if signature == "sample":
        return {"num_samples": _NUM_SAMPLES.value, "seed": _SEED.value}
    inputs = {"images": _images()}
    if signature in ("encode", "log_likelihood"):
        inputs["seed"] = _SEED.value
    if signature == "log_likelihood":
        inputs["num_importance_samples"] = _NUM_IMPORTANCE.value
    return inputs


def send_rest(body):
    url = f"http://{_SERVER.value}/v1/models/{_MODEL_NAME.value}:predict"
    request = urllib.request.Request(url, json.dumps(body).encode(), {"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=_TIMEOUT.value) as response:
            return json.loads(response.read())
    except urllib.error.HTTPError as e:  # TF Serving puts the InvalidArgumentError text in {"error": ...}
        cli.exit_with_error(f"{url}: HTTP {e.code}: {e.read().decode(errors='replace').strip()}", code=1)
    except (urllib.error.URLError, OSError) as e:
        cli.exit_with_error(f"flag --server: cannot reach {url} ({getattr(e, 'reason', e)})", code=1)


def send_grpc(request):
    import grpc
    import tensorflow as tf
    from tensorflow_serving.apis import prediction_service_pb2_grpc

    channel = grpc.insecure_channel(_GRPC_SERVER.value)
    try:
        response = prediction_service_pb2_grpc.PredictionServiceStub(channel).Predict(request, _TIMEOUT.value)
    except grpc.RpcError as e:
        cli.exit_with_error(f"flag --grpc_server: {_GRPC_SERVER.value}: {e.code().name}: {e.details()}", code=1)
    return {name: tf.make_ndarray(proto).tolist() for name, proto in response.outputs.items()}


def main(argv):
    del argv
    signature = _SIGNATURE.value
    inputs = request_inputs(signature)
    if _PROTOCOL.value == "rest":
        body = serving_requests.rest_request(signature, inputs, row_format=_FORMAT.value == "row")
        if _DRY_RUN.value:
            print(json.dumps(body))
            return
        result = send_rest(body)
    else:
        try:
            request = serving_requests.grpc_request(_MODEL_NAME.value, signature, inputs)
        except ImportError:
            cli.exit_with_error("flag --protocol=grpc needs tensorflow-serving-api: pip install -e .[serving]")
        if _DRY_RUN.value:
            print(request)
            return
        result = send_grpc(request)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    app.run(main)
