"""The README's and docs' commands and Python examples are the ones that work."""

import glob
import os
import re

from conftest import REPO

README = os.path.join(REPO, "README.md")
DOCS = sorted(glob.glob(os.path.join(REPO, "docs", "*.md")))


def _read(path):
    with open(path) as f:
        return f.read()


def _readme():
    return _read(README)


def _python_blocks():
    """(page name, block) of every python block in the README and docs, in page order; the README's "First
    hour" blocks are run on small data of their kind by tests/test_first_hour.py."""
    readme = re.sub(r"^## First hour.*?(?=^## )", "", _readme(), flags=re.S | re.M)
    return [(os.path.relpath(path, REPO), block) for path, text in [(README, readme)] + [(p, _read(p)) for p in DOCS]
            for block in re.findall(r"```python\n(.*?)```", text, re.S)]


def test_readme_links_every_docs_page():
    linked = set(re.findall(r"\(docs/(\w+\.md)\)", _readme()))
    assert linked == {os.path.basename(path) for path in DOCS}


def test_python_api_example_runs_and_its_assertions_hold():
    blocks = re.findall(r"```python\n(.*?)```", _read(os.path.join(REPO, "docs", "python_api.md")), re.S)
    assert blocks, "docs/python_api.md has no python example"
    namespace = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)  # noqa: S102 - the example is ours
    assert namespace["iwae_16"].shape == (4,)
    assert namespace["rate"].shape == (4,)
    assert namespace["aggregate"].event_shape == (8,)
    assert namespace["images"].shape == (9, 28, 28, 1)


def test_every_other_python_block_of_the_readme_and_docs_runs_and_its_assertions_hold():
    blocks = [(page, block) for page, block in _python_blocks()
              if not (page == os.path.join("docs", "python_api.md") and block == _python_blocks_of(page)[0])]
    assert {"docs/models.md", "docs/composing_with_tfp.md"} <= {page for page, _ in blocks}, \
        "the docs lost their model-family or TFP-composition example"
    import keras

    for i, (page, block) in enumerate(blocks):
        keras.utils.set_random_seed(i)  # the untrained models' weights, whatever ran before in this process
        exec(compile(block, f"{page} python block {i}", "exec"), {})  # noqa: S102 - the examples are ours


def _python_blocks_of(page):
    return [block for name, block in _python_blocks() if name == page]


def test_ci_runs_the_readme_test_command():
    commands = re.findall(r"^# 2\..*\n(.+)$", _readme(), re.M)
    assert len(commands) == 1
    with open(os.path.join(REPO, ".ci", "run")) as f:
        assert commands[0].strip() in f.read().splitlines()


def test_flagfiles_named_in_the_readme_and_docs_exist():
    for path in [README, *DOCS]:
        for name in set(re.findall(r"scripts/configs/(\w+\.flags)", _read(path))):
            assert os.path.exists(os.path.join(REPO, "scripts", "configs", name)), (path, name)
