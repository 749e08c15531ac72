"""Lint, format, types and the import layering, checked as part of the suite.

The folders ``core/``, ``trainer/``, ``server/`` and ``operator/`` are mapped
into the single ``loanops`` package by ``pyproject.toml``. mypy and
import-linter read packages from the filesystem and do not follow the
editable install's import hook, so they are pointed at a tree of symbolic
links that lays the folders out as the installed package.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
COMPONENTS = ("trainer", "server", "operator")


def tool(name: str) -> str:
    return str(Path(sys.executable).with_name(name))


@pytest.fixture(scope="module")
def package_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding ``loanops/`` as symbolic links to the source folders."""
    root = tmp_path_factory.mktemp("package-tree")
    package = root / "loanops"
    package.mkdir()
    for entry in (ROOT / "core").iterdir():
        if entry.name != "__pycache__":
            (package / entry.name).symlink_to(entry)
    for component in COMPONENTS:
        (package / component).symlink_to(ROOT / component, target_is_directory=True)
    return root


def check(command: list[str], **env: str) -> None:
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, env={**os.environ, **env}, timeout=600
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_lint_is_clean() -> None:
    check([tool("ruff"), "check", "."])


def test_ruff_format_is_clean() -> None:
    check([tool("ruff"), "format", "--check", "."])


def test_mypy_strict_is_clean(package_tree: Path) -> None:
    check([tool("mypy"), "-p", "loanops"], MYPYPATH=str(package_tree))


def test_import_layers_hold(package_tree: Path) -> None:
    check([tool("lint-imports")], PYTHONPATH=str(package_tree))


def test_no_component_is_importable_on_its_own() -> None:
    probe = (
        "import importlib.util as u; print([u.find_spec(n) is None for n in ('trainer', 'server')])"
    )
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "[True, True]"
    import operator

    assert hasattr(operator, "itemgetter"), "the standard library's operator is shadowed"
