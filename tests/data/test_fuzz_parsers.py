"""Every parser of untrusted bytes, fuzzed for seconds: any input gives data or a one-line DataError, within a memory
bound (the properties: tfvae/data/fuzzing.py; scripts/fuzz.py runs them for minutes)."""

import json
import os

import numpy as np
import pytest
from conftest import last_error_line, run_script

from tfvae import data
from tfvae.data import fuzz_inputs, fuzzing

# Inputs per target: about 3 s each on a 2-core machine (the TensorFlow ones cost more per input).
EXAMPLES = {"idx": 300, "npz": 250, "csv": 100, "image_header": 200, "tfrecord": 50, "example": 10}


@pytest.mark.parametrize("name", sorted(fuzzing.TARGETS))
def test_any_input_gives_data_or_a_one_line_data_error(name):
    fuzzing.property_test(fuzzing.TARGETS[name], EXAMPLES[name], derandomize=True)()


def _target(parse):
    return fuzzing.Target("planted", fuzz_inputs.idx_files, parse)


def test_the_property_fails_on_another_exception_a_multi_line_error_or_too_much_memory():
    fuzzing.check_input(_target(lambda path, workdir: None), b"x")
    fuzzing.check_input(_target(lambda path, workdir: (_ for _ in ()).throw(data.DataError("bad"))), b"x")
    with pytest.raises(KeyError):
        fuzzing.check_input(_target(lambda path, workdir: {}["key"]), b"x")
    with pytest.raises(AssertionError, match="a DataError must be one line"):
        fuzzing.check_input(_target(lambda path, workdir: (_ for _ in ()).throw(data.DataError("a\nb"))), b"x")
    with pytest.raises(AssertionError, match="bytes traced, more than"):
        fuzzing.check_input(_target(lambda path, workdir: np.ones(fuzzing.MEMORY_BOUND + 1, np.uint8)), b"x")


def test_fuzz_writes_each_failing_input_shrunk_with_its_traceback(tmp_path, monkeypatch):
    def parse(path, workdir):  # a planted bug: files that open with two zero bytes (IDX ones) raise ZeroDivisionError
        with open(path, "rb") as f:
            return 1 / 0 if f.read(2) == b"\0\0" else None

    monkeypatch.setitem(fuzzing.TARGETS, "planted", _target(parse))
    report = fuzzing.fuzz("planted", seconds=2.0, out_dir=str(tmp_path), round_examples=100)
    assert report.inputs > 0 and report.failures, report
    failing = open(report.failures[0], "rb").read()
    assert failing[:2] == b"\0\0" and len(failing) < 64  # shrunk to a few bytes
    assert "ZeroDivisionError" in open(report.failures[0][: -len(".bin")] + ".txt").read()
    assert not os.path.exists(tmp_path / "planted.current")


def test_fuzz_script_runs_the_targets_for_the_minutes_given(tmp_path):
    result = run_script("fuzz.py", "--minutes=0.01", "--targets=idx,tfrecord", f"--out_dir={tmp_path / 'out'}")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.strip().splitlines()
    assert lines[0].startswith("idx: ") and lines[0].endswith(" s, 0 failing") and lines[1].startswith("tfrecord: ")
    summary = json.loads(lines[-1])
    assert set(summary) == {"idx", "tfrecord"} and all(v["inputs"] > 0 and v["failures"] == [] for v in
                                                        summary.values())
    assert os.listdir(tmp_path / "out") == []
    bad = run_script("fuzz.py", "--minutes=0.01", "--targets=png", f"--out_dir={tmp_path / 'out'}")
    assert bad.returncode == 2 and "targets must be among" in last_error_line(bad) and "got ['png']" in \
        last_error_line(bad)
