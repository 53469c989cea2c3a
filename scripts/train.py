"""Trains a VAE: python scripts/train.py --flagfile=scripts/configs/mlp_fashion_mnist.flags

Rerunning the same command in the same --model_dir resumes exactly from the
latest checkpoint. The resolved flags are written to <model_dir>/flags.txt,
so --flagfile=<model_dir>/flags.txt replays the run.
"""

import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from absl import app, flags

from tfvae import checkpoints, cli, data, training

cli.define_config_flags()
flags.adopt_module_key_flags(cli)
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard logs, flags.txt.")
_VERBOSE = flags.DEFINE_integer("verbose", 1, "0 silent, 1 progress bar, 2 one line per epoch.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    if len(argv) > 1:
        cli.exit_with_error(f"unexpected arguments {argv[1:]}; all settings are --flags")
    cli.quiet_logging()
    config = cli.config_from_flags()
    model_dir = _MODEL_DIR.value
    try:
        os.makedirs(model_dir, exist_ok=True)
        training.check_run_directory(model_dir, config)
    except OSError as e:
        cli.exit_with_error(f"flag --model_dir: cannot create {model_dir} ({e.strerror})")
    except ValueError as e:
        cli.exit_with_error(f"flag --model_dir: {e}")
    cli.write_flags_file(os.path.join(model_dir, "flags.txt"))
    try:
        results = training.train_and_evaluate(config, model_dir, verbose=_VERBOSE.value)
    except (data.DataError, checkpoints.CheckpointError, training.NonFiniteLossError) as e:
        cli.exit_with_error(str(e), code=1)
    except ValueError as e:
        cli.exit_with_error(str(e))
    print(json.dumps(results))


if __name__ == "__main__":
    app.run(main)
