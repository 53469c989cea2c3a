"""Sends a request for any tfvae signature to a running TF Serving server and prints the result.

The model's name, shapes, latent size and classes come from its export's
model card (``--export_dir``, by default the pretrained model this repository
ships in saved_models/fashion_mnist_mlp), so the defaults match a model the
server can load right away (saved_models/README.md):

  # columnar REST request for reconstructions of 3 Fashion-MNIST test images
  python scripts/serving_client.py --signature=reconstruct --test_images=3
  # row format, IWAE scores, and gRPC (pip install -e .[serving])
  python scripts/serving_client.py --signature=log_likelihood --test_images=3 --format=row
  python scripts/serving_client.py --signature=sample --num_samples=4 --protocol=grpc
  # another export; print the request instead of sending it
  python scripts/serving_client.py --export_dir=saved_models/mine --signature=encode --dry_run

Images come from the first --test_images Fashion-MNIST test images (Debian's
package; binarized with seed 0 as in training; for 28x28x1 models) or from
--images_npy (float32 [batch, H, W, C] in [0, 1]; a model of tabular data
takes vectors [batch, D] in [0, 1], its input named ``vectors``); decode takes --z_npy
([batch, latent_dim]) or standard normal draws. A conditional model's
``labels`` come from --labels, else the test images' labels (sample: the
classes in turn).
"""

import json
import os
import sys
import urllib.error
import urllib.request

import _startup
import numpy as np
from absl import flags

from tfvae.serving import export, requests
from tfvae.train import cli

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_EXPORT_DIR = flags.DEFINE_string(
    "export_dir", os.path.join(_REPO, "saved_models", "fashion_mnist_mlp"),
    "The served model's export (its base folder or one version folder): its model card gives the model name, "
    "shapes, latent size and classes.")
_SERVER = flags.DEFINE_string("server", "localhost:8501", "host:port of the REST API.")
_GRPC_SERVER = flags.DEFINE_string("grpc_server", "localhost:8500", "host:port of the gRPC API.")
_MODEL_NAME = flags.DEFINE_string("model_name", None, "The served model's name (default: the model card's).")
_SIGNATURE = flags.DEFINE_enum("signature", "serving_default", sorted(requests.INPUT_DTYPES),
                               "Signature to call.")
_PROTOCOL = flags.DEFINE_enum("protocol", "rest", ["rest", "grpc"], "REST JSON or gRPC.")
_FORMAT = flags.DEFINE_enum("format", "columnar", ["columnar", "row"], 'REST body: "inputs" (columnar) or '
                            '"instances" (row).')
_TEST_IMAGES = flags.DEFINE_integer("test_images", 2, "Use the first N Fashion-MNIST test images.", lower_bound=1)
_IMAGES_NPY = flags.DEFINE_string("images_npy", None, "A .npy file of images (or of a tabular model's vectors "
                                   "[batch, D]) instead of --test_images.")
_Z_NPY = flags.DEFINE_string("z_npy", None, "A .npy file of latents for decode (default: standard normal draws).")
_LABELS = flags.DEFINE_list("labels", None, "A conditional model's labels, one per example (default: the test "
                            "images' labels).")
_NUM_SAMPLES = flags.DEFINE_integer("num_samples", 4, "sample: images to draw.", lower_bound=1)
_NUM_IMPORTANCE = flags.DEFINE_integer("num_importance_samples", 1000, "log_likelihood: k.", lower_bound=1)
_SEED = flags.DEFINE_integer("seed", 0, "Seed of encode, sample and log_likelihood (any 64-bit int).")
_TIMEOUT = flags.DEFINE_float("timeout", 30.0, "Seconds to wait for the server.")
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Print the request and exit without sending it.")


_CARD_FIELDS = {"model_name": str, "data_shape": list, "latent_dim": int, "num_classes": int}


def read_model_card(export_dir):
    """The model card of ``export_dir`` (a version folder, or the newest version of a base folder: the newest
    all-digit folder name holding a card, as TF Serving picks versions)."""
    path = os.path.join(export_dir, "assets.extra", export.MODEL_CARD)
    if not os.path.exists(path):
        cards = [card for card in (os.path.join(export_dir, str(v), "assets.extra", export.MODEL_CARD)
                                   for v in export.versions(export_dir)) if os.path.exists(card)]
        if not cards:
            cli.exit_with_error(f"flag --export_dir: no tfvae export (assets.extra/{export.MODEL_CARD}) in {export_dir}")
        path = cards[-1]
    try:
        with open(path) as f:
            card = json.load(f)
    except (OSError, ValueError, RecursionError) as e:
        cli.exit_with_error(f"flag --export_dir: cannot read {path} ({str(e).splitlines()[0] if str(e) else e!r})")
    if not isinstance(card, dict):
        cli.exit_with_error(f"flag --export_dir: {path} is not a model card (a JSON object)")
    for field, kind in _CARD_FIELDS.items():
        if not isinstance(card.get(field), kind) or isinstance(card.get(field), bool):
            cli.exit_with_error(f"flag --export_dir: {path}: {field} must be a {kind.__name__}; got "
                                f"{card.get(field)!r:.60}")
    if not all(isinstance(d, int) and 0 < d for d in card["data_shape"]) or not 0 < card["latent_dim"]:
        cli.exit_with_error(f"flag --export_dir: {path}: data_shape and latent_dim must be positive ints")
    return card


def load_npy(flag, path, trailing_shape, max_batch):
    """The float32 array [batch, *trailing_shape] of the .npy file ``path`` for ``--flag``; one-line errors.

    Read without pickles (an object array is refused) and memory-mapped
    first, so its dtype and shape are checked before anything is copied.
    """
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, EOFError) as e:
        cli.exit_with_error(f"flag --{flag}: cannot read {path} as a .npy array ({str(e).splitlines()[0]})")
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "biuf":
        cli.exit_with_error(f"flag --{flag}: {path} holds {getattr(array, 'dtype', type(array).__name__)}, "
                            "not numbers")
    if array.ndim != 1 + len(trailing_shape) or list(array.shape[1:]) != list(trailing_shape):
        cli.exit_with_error(f"flag --{flag}: {path} has shape {list(array.shape)}; expected "
                            f"[batch, {', '.join(map(str, trailing_shape))}]")
    if not 1 <= len(array) <= max_batch:
        cli.exit_with_error(f"flag --{flag}: {path} holds {len(array)} examples; the model card allows 1 to "
                            f"{max_batch} per request")
    array = np.asarray(array, np.float32)
    if not np.isfinite(array).all():
        cli.exit_with_error(f"flag --{flag}: {path} holds NaN or Inf")
    return array


def _test_data(card):
    from tfvae import data

    if card["data_shape"] != [28, 28, 1]:
        cli.exit_with_error(f"flag --images_npy: the model takes {_data_name(card)} of shape {card['data_shape']}, "
                            "not Fashion-MNIST's images [28, 28, 1]; pass them as a .npy file")
    test = data.load_dataset("fashion_mnist")
    count = _TEST_IMAGES.value
    return data.binarize(test.test_images[:count], seed=0), test.test_labels[:count]


def _data_name(card):
    """What the model's examples are called in its signatures: "images", or "vectors" (tabular data)."""
    return card.get("data_name", "images")


def _images(card):
    if _IMAGES_NPY.value:
        return load_npy("images_npy", _IMAGES_NPY.value, card["data_shape"], _max_batch(card)), None
    return _test_data(card)


def _max_batch(card):
    limit = card.get("max_batch_size")
    return limit if isinstance(limit, int) and limit > 0 else 1024


def request_inputs(signature, card):
    """The inputs of one request for ``signature`` from the flags and the model card."""
    labels = None
    if signature == "decode":
        z = (load_npy("z_npy", _Z_NPY.value, [card["latent_dim"]], _max_batch(card)) if _Z_NPY.value
             else np.random.default_rng(_SEED.value).normal(size=(_TEST_IMAGES.value, card["latent_dim"])))
        inputs, batch = {"z": z}, len(z)
    elif signature == "sample":
        inputs, batch = {"num_samples": _NUM_SAMPLES.value, "seed": _SEED.value}, _NUM_SAMPLES.value
    else:
        images, labels = _images(card)
        inputs, batch = {_data_name(card): images}, len(images)
        if signature in ("encode", "log_likelihood"):
            inputs["seed"] = _SEED.value
        if signature == "log_likelihood":
            inputs["num_importance_samples"] = _NUM_IMPORTANCE.value
    if card.get("num_classes"):
        if _LABELS.value:
            if not all(v.strip().isdigit() for v in _LABELS.value):
                cli.exit_with_error(f"flag --labels: expected ints >= 0, one per example; got {','.join(_LABELS.value)}")
            labels = [int(v) for v in _LABELS.value]
        elif signature == "sample":
            labels = [i % card["num_classes"] for i in range(batch)]  # the classes in turn
        if labels is None or len(labels) != batch:
            cli.exit_with_error(f"flag --labels: the model is conditional ({card['num_classes']} classes); give one "
                                f"label per example ({batch})")
        inputs["labels"] = labels
    return inputs


def send_rest(model_name, body):
    url = f"http://{_SERVER.value}/v1/models/{model_name}:predict"
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
    card = read_model_card(_EXPORT_DIR.value)
    model_name = _MODEL_NAME.value or card["model_name"]
    signature = _SIGNATURE.value
    inputs = request_inputs(signature, card)
    if _PROTOCOL.value == "rest":
        body = requests.rest_request(signature, inputs, row_format=_FORMAT.value == "row")
        if _DRY_RUN.value:
            print(json.dumps(body))
            return
        result = send_rest(model_name, body)
    else:
        try:
            request = requests.grpc_request(model_name, signature, inputs)
        except ImportError:
            cli.exit_with_error("flag --protocol=grpc needs tensorflow-serving-api: pip install -e .[serving]")
        if _DRY_RUN.value:
            print(request)
            return
        result = send_grpc(request)
    json.dump(result, sys.stdout)
    print()


if __name__ == "__main__":
    _startup.run(main)
