"""The README's commands and Python example are the ones that work."""

import os
import re

README = os.path.join(os.path.dirname(__file__), os.pardir, "README.md")


def _readme():
    with open(README) as f:
        return f.read()


def test_readme_python_example_runs_and_its_assertions_hold():
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)
    assert blocks, "README has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - the example is ours
    assert namespace["iwae_16"].shape == (4,)
    assert namespace["rate"].shape == (4,)
    assert namespace["aggregate"].event_shape == (8,)
    assert namespace["images"].shape == (9, 28, 28, 1)


def test_every_other_readme_python_block_runs_and_its_assertions_hold():
    blocks = re.findall(r"```python\n(.*?)```", _readme(), re.S)[1:]
    assert len(blocks) >= 2, "README lost its model-family or TFP-composition example"
    for i, block in enumerate(blocks, start=2):
        exec(compile(block, f"README.md python block {i}", "exec"), {})  # noqa: S102 - the examples are ours


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^# 2\..*\n(.+)$", _readme(), re.M)
    assert len(commands) == 1
    with open(os.path.join(os.path.dirname(README), ".ci", "run")) as f:
        assert commands[0].strip() in f.read().splitlines()


def test_readme_flagfiles_exist():
    for name in set(re.findall(r"scripts/configs/(\w+\.flags)", _readme())):
        assert os.path.exists(os.path.join(os.path.dirname(README), "scripts", "configs", name)), name
