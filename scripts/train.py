"""Trains a VAE: python scripts/train.py --flagfile=scripts/configs/mlp_fashion_mnist.flags --model_dir=runs/a

Rerunning the same command in the same --model_dir resumes exactly from the
latest checkpoint. The run starts by logging a summary of the data it read
and what it will do (with warnings that name the flags to change), and fits
the batch size and, for a table of real values, the likelihood to the data
when those flags are not given (docs/usage.md). Then one line per epoch
(--verbose=auto: a progress bar on a terminal).

Exit codes: 0 done; 1 a fault met while training (bad data, a checkpoint
that cannot be written or read, a diverged loss), one line on stderr; 2 a bad
flag or a --model_dir that cannot be used (another run's, or in use by
another training process); 143 (SIGTERM) or 130 (SIGINT): stopped on that
signal after writing a checkpoint at the current step -- rerun to resume. The resolved flags are written to <model_dir>/flags.txt;
--flagfile=<model_dir>/flags.txt --model_dir=<new dir> trains the same run
again from scratch (with the same --model_dir it resumes).
"""

import json

import _startup
from absl import flags

from tfvae import data
from tfvae.train import checkpoints, cli, data_defaults, preemption, rundir, training

cli.define_config_flags()
flags.adopt_module_key_flags(cli)
_MODEL_DIR = flags.DEFINE_string("model_dir", None, "Run directory: checkpoints, TensorBoard logs, flags.txt.")
_VERBOSE = flags.DEFINE_enum("verbose", "auto", ["auto", "0", "1", "2"],
                             "0 silent, 1 progress bar, 2 one line per epoch, auto: 1 on a terminal, else 2.")
flags.mark_flag_as_required("model_dir")


def main(argv):
    if len(argv) > 1:
        cli.exit_with_error(f"unexpected arguments {argv[1:]}; all settings are --flags")
    cli.quiet_logging()
    config = cli.config_from_flags()
    given = cli.settings_given()
    verbose = _VERBOSE.value if _VERBOSE.value == "auto" else int(_VERBOSE.value)
    try:  # refused early; the settings fitted to the data are checked once fitted
        rundir.RunDirectory(_MODEL_DIR.value).check_can_continue(config, unchecked=set(data_defaults.FITTED_SETTINGS) - given)
        results = training.train_and_evaluate(config, _MODEL_DIR.value, verbose=verbose,
                                              flags_text=cli.resolved_flags(), settings_given=given)
    except preemption.TrainingPreempted as e:
        cli.exit_with_error(str(e), code=e.exit_code, kind="stopped")
    except rundir.RunDirectoryError as e:
        cli.exit_with_error(f"flag --model_dir: {e}")
    except OSError as e:
        cli.exit_with_error(f"flag --model_dir: cannot write {e.filename or _MODEL_DIR.value} ({e.strerror})", code=1)
    except (data.DataError, checkpoints.CheckpointError, training.NonFiniteLossError) as e:
        cli.exit_with_error(str(e), code=1)
    except ValueError as e:  # a setting the parts refuse (factory.check_config), or the data cannot take
        cli.exit_with_error(cli.flag_error(e))
    print(json.dumps(results))


if __name__ == "__main__":
    _startup.run(main)
