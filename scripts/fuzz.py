"""Fuzzes the parsers of untrusted bytes (tfvae/data/fuzzing.py) for --minutes each, keeping every failing input.

  python scripts/fuzz.py --minutes=10 --out_dir=/tmp/fuzz                         # every parser, 10 minutes each
  python scripts/fuzz.py --minutes=2 --targets=idx,tfrecord --out_dir=/tmp/fuzz   # some of them

The property (the suite runs it for seconds in tests/data/test_fuzz_parsers.py): any input gives data or a one-line
DataError, never another exception, a crash or more than fuzzing.MEMORY_BOUND bytes of Python/NumPy allocations.
Each failing input is written, shrunk, to <out_dir>/<target>-<sha1>.bin with its traceback in a .txt beside it; the
input being run is kept in <out_dir>/<target>.current, so a crash by a signal leaves it behind. Prints a line per
target, then one JSON object {target: {inputs, seconds, failures}}; exits 1 if an input failed.
"""

import json
import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # the decoders' own error lines for hostile bytes

import _startup
from absl import flags

from tfvae.data import fuzzing
from tfvae.train import cli

_MINUTES = flags.DEFINE_float("minutes", 1.0, "Minutes of fuzzing per target.", lower_bound=0.0)
_OUT_DIR = flags.DEFINE_string("out_dir", None, "Folder for the failing inputs (created if missing).")
_TARGETS = flags.DEFINE_list("targets", [], f"Targets to fuzz, of {sorted(fuzzing.TARGETS)} (empty: all).")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the first round of inputs (each round adds one).")

flags.mark_flag_as_required("out_dir")


def main(argv):
    if len(argv) > 1:
        cli.exit_with_error(f"unexpected arguments {argv[1:]}; all settings are --flags")
    cli.quiet_logging()
    try:
        reports = fuzzing.fuzz_targets(_TARGETS.value, _MINUTES.value, _OUT_DIR.value, _SEED.value)
    except ValueError as e:
        cli.exit_with_error(str(e))
    for report in reports:
        print(f"{report.target}: {report.inputs} inputs in {report.seconds:.0f} s, {len(report.failures)} failing")
    print(json.dumps({r.target: {"inputs": r.inputs, "seconds": round(r.seconds, 1), "failures": r.failures}
                      for r in reports}))
    sys.exit(1 if any(r.failures for r in reports) else 0)


if __name__ == "__main__":
    _startup.run(main)
