"""flags.txt: every value it holds replays exactly; a value it could not replay is refused naming its flag."""

import os

import pytest
from absl import flags
from conftest import last_error_line, run_script

from tfvae.train import cli


def _flag_values(*argv):
    """A fresh FlagValues with train.py's flags, parsed from ``argv``."""
    values = flags.FlagValues()
    cli.define_config_flags(values)
    flags.DEFINE_string("model_dir", None, "run directory", flag_values=values)
    values(["train.py", *argv])
    return values


def _flag_list(values):
    return [values[name] for name in values if name != "flagfile"]


ODD_BUT_FINE = ["--data_dir=/data/a b/c=d#e,'f\"", "--model_dir=runs/#1 = x", "--hidden_units=7,300",
                "--learning_rate=0.00012345678901234", "--devices=/cpu:0", "--seed=-3", "--noconditional",
                "--image_feature=--epochs=5", "--label_feature= leading", "--likelihood=gaussian"]


def test_flags_txt_replays_every_value_exactly(tmp_path):
    original = _flag_values(*ODD_BUT_FINE)
    path = tmp_path / "flags.txt"
    path.write_text(cli.serialize_flags(_flag_list(original)))
    replayed = _flag_values(f"--flagfile={path}")
    for name in original:
        if name != "flagfile":
            assert replayed[name].value == original[name].value, name
    assert replayed["data_dir"].value == "/data/a b/c=d#e,'f\"" and replayed["epochs"].value == 10


@pytest.mark.parametrize("value", ["x\n--epochs=99", "x\r--epochs=99", "x\r\n--epochs=99", "trailing\t", " "])
def test_a_value_flags_txt_could_not_replay_is_refused_naming_the_flag(value):
    values = _flag_values(f"--data_dir={value}")
    with pytest.raises(ValueError) as error:
        cli.serialize_flags(_flag_list(values))
    message = str(error.value)
    assert message.startswith(f"flag --data_dir: {value!r} cannot be written to flags.txt (one flag per line) and "
                              "replayed as it is") and "\n" not in message


def test_train_py_refuses_a_newline_in_a_flag_before_writing_anything(tmp_path, tiny_idx_dir):
    model_dir = tmp_path / "runs" / "a"
    result = run_script("train.py", "--dataset=idx", f"--data_dir={tiny_idx_dir}", f"--model_dir={model_dir}",
                        "--image_feature=x\n--epochs=99", "--epochs=1", "--verbose=0")
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_error_line(result) == ("train.py: error: flag --image_feature: 'x\\n--epochs=99' cannot be written to "
                                       "flags.txt (one flag per line) and replayed as it is: pass a value without "
                                       "line breaks or trailing white space")
    assert not os.path.exists(tmp_path / "runs")
