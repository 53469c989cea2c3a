"""The package's architecture: every module sits in a folder of tfvae/layout.py and imports only what its row allows."""

import ast
import pathlib

import pytest
from conftest import REPO

from tfvae import layout, moved_modules

PACKAGE = pathlib.Path(REPO, "tfvae")
TOP_LEVEL = {"__init__.py", "layout.py", "moved_modules.py", "version.py"}


def _imported_folders(path: pathlib.Path) -> set[str]:
    """The tfvae folders (or, wrongly, flat names) that a module imports from."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").split(".")[0] == "tfvae":
            parts = node.module.split(".")
            found |= {parts[1]} if len(parts) > 1 else {a.name for a in node.names}
        elif isinstance(node, ast.Import):
            found |= {a.name.split(".")[1] for a in node.names if a.name.startswith("tfvae.")}
        elif isinstance(node, ast.ImportFrom) and node.level:
            found.add("<relative import>")
    return found


def test_every_module_lives_in_a_folder_of_the_table():
    flat = {p.name for p in PACKAGE.glob("*.py")} - TOP_LEVEL
    assert not flat, f"modules outside the folders: {sorted(flat)}"
    folders = {p.name for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"}
    assert folders == set(layout.FOLDERS)


@pytest.mark.parametrize("folder", sorted(layout.FOLDERS))
def test_a_folder_imports_only_itself_and_the_folders_below_it(folder):
    allowed = {folder, *layout.FOLDERS[folder].may_import, *layout.ANYWHERE}
    offences = {}
    for path in sorted((PACKAGE / folder).glob("*.py")):
        wrong = _imported_folders(path) - allowed
        if wrong:
            offences[path.name] = sorted(wrong)
    assert not offences, f"{folder}/ may import {sorted(allowed)}; these import more: {offences}"


@pytest.mark.parametrize("folder", sorted(layout.FOLDERS))
def test_a_folders_docstring_states_its_row_of_the_table(folder):
    docstring = ast.get_docstring(ast.parse((PACKAGE / folder / "__init__.py").read_text()))
    may_import = layout.FOLDERS[folder].may_import
    expected = f"May import: {', '.join(may_import) if may_import else 'nothing else in tfvae'}."
    assert expected in docstring
    for module in (PACKAGE / folder).glob("*.py"):
        if module.name != "__init__.py":
            assert module.name in docstring, f"{folder}/__init__.py does not describe {module.name}"


def test_the_table_has_no_cycle():
    order = []
    remaining = dict(layout.FOLDERS)
    while remaining:
        ready = [name for name, row in remaining.items() if set(row.may_import) <= set(order)]
        assert ready, f"a cycle among {sorted(remaining)}"
        order += ready
        for name in ready:
            del remaining[name]


def test_every_0_3_0_module_path_names_an_existing_module_in_its_folder():
    for old, new in moved_modules.MOVED.items():
        assert (PACKAGE / (new.removeprefix("tfvae.").replace(".", "/") + ".py")).exists(), (old, new)


def test_no_module_or_script_uses_another_modules_private_names():
    modules = {p.stem for p in PACKAGE.rglob("*.py")}
    offences = []
    for path in [*PACKAGE.rglob("*.py"), *pathlib.Path(REPO, "scripts").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("tfvae"):
                offences += [f"{path.name} imports {a.name}" for a in node.names if a.name.startswith("_")
                             and not a.name.startswith("__")]
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and isinstance(node.value, ast.Name) and node.value.id in modules and node.value.id != path.stem):
                offences.append(f"{path.name} uses {node.value.id}.{node.attr}")
    assert not offences, offences
