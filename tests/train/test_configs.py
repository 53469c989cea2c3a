"""Every shipped flagfile is one train.py takes: known flags, valid settings, a model that builds, an honest header."""

import glob
import os
import re

import pytest
from absl import flags
from conftest import REPO

from tfvae.train import cli, factory

CONFIGS = sorted(glob.glob(os.path.join(REPO, "scripts", "configs", "*.flags")))


def _config(path, monkeypatch):
    """The TrainConfig ``train.py --flagfile=path`` would train, parsed into flags of its own."""
    monkeypatch.chdir(REPO)  # nested --flagfile= paths are relative to the repository's top, as in the headers
    flag_values = flags.FlagValues()
    cli.define_config_flags(flag_values)
    flag_values(["train.py", f"--flagfile={path}"])
    return cli.config_from_flags(flag_values)


def test_the_configs_directory_is_found():
    assert len(CONFIGS) >= 8, CONFIGS


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_a_shipped_config_parses_validates_and_builds_its_model(path, monkeypatch):
    config = _config(path, monkeypatch)
    side = 4 * 2 ** len(config.hidden_units)  # the data shape the config fixes, else one every network takes
    data_shape = (*config.image_size, config.channels or 1) if config.image_size else (side, side, 1)
    factory.check_config(config, data_shape, num_classes=2 if config.conditional else 0)  # values, rules, parts


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_a_shipped_config_header_commands_name_the_config_itself(path):
    with open(path) as f:
        header = "".join(line for line in f if line.startswith("#"))
    named = re.findall(r"--flagfile=scripts/configs/(\w+\.flags)", header)
    assert named and set(named) == {os.path.basename(path)}, named
