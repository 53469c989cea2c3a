"""What every script does before TensorFlow starts (scripts/_startup.py): quiet start-up, help that exits 0."""

import ast
import glob
import os
import sys

import pytest
from conftest import REPO, run_script

sys.path.insert(0, os.path.join(REPO, "scripts"))
import _startup  # noqa: E402 - scripts/ is not a package

# What TensorFlow 2.21 printed on this CPU-only machine (no CUDA driver) before absl's logging started.
STARTUP = """WARNING: All log messages before absl::InitializeLog() is called are written to STDERR
I0000 00:00:1796527740.426475   15607 port.cc:153] oneDNN custom operations are on. You may see slightly different \
numerical results due to floating-point round-off errors from different computation orders.
I0000 00:00:1796527740.426781   15607 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU will not be used.
I0000 00:00:1796527740.480010   15607 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use available \
CPU instructions in performance-critical operations.
To enable the following instructions: AVX2 AVX512F FMA, in other operations, rebuild TensorFlow with the appropriate \
compiler flags.
W0000 00:00:1796527741.000000   15607 some_op.cc:1] a warning of the start
E0000 00:00:1796527744.170628   15607 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: Failed call \
to cuInit: UNKNOWN ERROR (303)
/usr/lib/python3/site.py:1: DeprecationWarning: a Python warning
"""


def test_start_up_lines_below_tf_cpp_min_log_level_are_dropped_and_the_rest_kept():
    python_warning = "/usr/lib/python3/site.py:1: DeprecationWarning: a Python warning"
    at_2 = _startup.visible_startup_lines(STARTUP, 2)
    assert at_2 == [python_warning]  # no driver: the cuInit failure only repeats it
    at_1 = _startup.visible_startup_lines(STARTUP, 1)
    assert len(at_1) == 2 and at_1[0].endswith("some_op.cc:1] a warning of the start")
    at_0 = _startup.visible_startup_lines(STARTUP, 0)
    assert len(at_0) == 6 and at_0[3].startswith("To enable the following instructions")  # a record's next line
    with_driver = STARTUP.replace("Could not find cuda drivers on your machine", "Found a driver")
    assert any("failed call to cuInit" in line for line in _startup.visible_startup_lines(with_driver, 2))


def _scripts():
    return sorted(p for p in glob.glob(os.path.join(REPO, "scripts", "*.py")) if "__main__" in open(p).read())


@pytest.mark.parametrize("path", _scripts(), ids=os.path.basename)
def test_every_script_imports_startup_before_tensorflow_and_runs_main_through_it(path):
    tree = ast.parse(open(path).read())
    imports = [node for node in tree.body if isinstance(node, (ast.Import, ast.ImportFrom))]
    modules = [node.names[0].name if isinstance(node, ast.Import) else node.module for node in imports]
    first_outside_the_standard_library = next(m for m in modules if m.split(".")[0] not in sys.stdlib_module_names)
    assert first_outside_the_standard_library == "_startup"
    assert "_startup.run(main)" in open(path).read()


def test_a_script_starts_quietly_and_its_help_exits_0():
    result = run_script("train.py", "--helpfull", env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert result.returncode == 0
    assert "--label_column" in result.stdout and "--max_value" in result.stdout
    assert result.stderr == ""  # no oneDNN, cuda driver or cuInit lines at level 2
    bad = run_script("evaluate.py", "--no_such_flag", env={"TF_CPP_MIN_LOG_LEVEL": "2"})
    assert bad.returncode == 1
    assert bad.stderr.splitlines() == ["FATAL Flags parsing error: Unknown command line flag 'no_such_flag'",
                                       "Pass --helpshort or --helpfull to see help on flags."]
