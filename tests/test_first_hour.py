"""The README's "First hour" commands, run as written on small generated data of each kind.

Each command of the section is taken from the README; only the data paths, the run directories and the epochs
(1) change, so a command that stops working, or a kind of data that loses its example, fails here.
"""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from builders import factor_table, png, write_table
from conftest import REPO

SECTION = re.search(r"^## First hour.*?(?=^## )", open(os.path.join(REPO, "README.md")).read(), re.S | re.M).group(0)
COMMANDS = [line for block in re.findall(r"```sh\n(.*?)```", SECTION, re.S) for line in block.splitlines()
            if line.startswith(".venv/bin/python scripts/")]
PYTHON = re.findall(r"```python\n(.*?)```", SECTION, re.S)


def _greyscale_folder(folder):
    rng = np.random.default_rng(0)
    for i in range(60):
        image = np.zeros((8, 8, 1), np.uint8)
        image[:, i % 3 * 3: i % 3 * 3 + 2] = rng.integers(150, 256)  # a bar per class
        os.makedirs(folder / str(i % 3), exist_ok=True)
        (folder / str(i % 3) / f"{i}.png").write_bytes(png(image))


def _colour_folder(folder):
    rng = np.random.default_rng(1)
    os.makedirs(folder)
    for i in range(80):
        size = int(rng.integers(40, 90))
        image = np.clip(rng.normal(rng.integers(0, 256, 3), 30, (size, size + 7, 3)), 0, 255).astype(np.uint8)
        (folder / f"{i}.jpg").write_bytes(tf.io.encode_jpeg(tf.constant(image)).numpy())


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A directory with every kind of data the section's commands name, under the names they use."""
    root = tmp_path_factory.mktemp("first_hour")
    _greyscale_folder(root / "digits_png")
    _colour_folder(root / "photos")
    values, labels = factor_table(60)
    write_table(root / "breast_cancer.csv", values, labels, label_name="target")
    rng = np.random.default_rng(2)
    np.savez(root / "digits.npz", x=rng.integers(0, 17, (60, 8, 8)).astype(np.uint8), y=np.arange(60) % 10)
    return root


def test_the_section_has_a_command_for_each_kind_of_data():
    trainings = [c for c in COMMANDS if "scripts/train.py" in c]
    assert any("--data_dir=digits_png" in c for c in trainings) and any("--channels=3" in c for c in trainings)
    assert any("--dataset=csv" in c for c in trainings) and len(PYTHON) == 1 and "train_data=" in PYTHON[0]
    for command in trainings:
        model_dir = re.search(r"--model_dir=(\S+)", command).group(1)
        assert any(f"scripts/sample.py --model_dir={model_dir}" in c for c in COMMANDS), command


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c.split()[1:3])[8:60])
def test_each_command_runs_as_written_on_small_data(workdir, command):
    if "scripts/train.py" not in command:  # sample and evaluate need the run: train it first
        model_dir = re.search(r"--model_dir=(\S+)", command).group(1)
        training = next(c for c in COMMANDS if "scripts/train.py" in c and f"--model_dir={model_dir}" in c)
        if not (workdir / model_dir / "checkpoints").exists():
            _run(training, workdir)
    result = _run(command, workdir)
    if "scripts/train.py" in command:
        assert "run summary" in result.stderr and "training: batch" in result.stderr
        assert "step" in json.loads(result.stdout.strip().splitlines()[-1])
    elif "scripts/sample.py" in command:
        assert os.listdir(workdir / re.search(r"--model_dir=(\S+)", command).group(1) / "samples")
        assert all(line.startswith("runs/") for line in result.stdout.splitlines())
    else:
        assert json.loads(result.stdout.strip().splitlines()[-1])["num_examples"] > 0


def _run(command, workdir):
    argv = re.sub(r"--epochs=\d+", "--epochs=1", command).split()
    argv = [sys.executable if arg == ".venv/bin/python" else arg for arg in argv]
    argv = [os.path.join(REPO, arg) if arg.startswith("scripts/") else arg for arg in argv]
    result = subprocess.run(argv, cwd=workdir, capture_output=True, text=True, timeout=900,
                            env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 0, (command, result.stderr[-3000:])
    return result


def test_the_python_example_runs_as_written_on_small_arrays(workdir, monkeypatch):
    monkeypatch.chdir(workdir)
    code = re.sub(r"epochs=\d+", "epochs=1", PYTHON[0])
    namespace = {}
    exec(compile(code, "README.md first hour", "exec"), namespace)  # noqa: S102 - the example is ours
    assert namespace["results"]["step"] == 1 and namespace["model"].num_classes == 10
    assert (workdir / "runs" / "digits_arrays" / "config.json").exists()
