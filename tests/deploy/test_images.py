"""The three Dockerfiles, checked without a Docker engine.

Each is parsed into instructions: the bases are pinned, every COPY source
exists and survives .dockerignore, the final user is numeric and not root,
the entrypoint is the installed ``loanops`` console script in exec form and
its command a real subcommand. The dependency groups each image installs are
resolved from uv.lock by ``uv export`` with the very flags of its ``uv sync``,
and hadolint lints the files.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
import typer

from loanops.cli import app
from tests.deploy.conftest import ROOT

IMAGES = ("operator", "server", "trainer")
# Packages each image must (or must not) carry, from pyproject's groups.
EXPECTED = {
    "server": ({"fastapi", "uvicorn", "mlflow", "xgboost-cpu", "catboost"}, set()),
    "trainer": ({"hyperopt", "mlflow"}, {"kopf", "kubernetes"}),
    "operator": ({"kopf", "kubernetes"}, {"hyperopt"}),
}
NEVER = {"hyperopt", "kopf", "kubernetes", "pytest", "ruff", "mypy", "moto", "playwright"}
SUBCOMMAND = {"operator": "operator", "server": "serve", "trainer": "train"}


@dataclass(frozen=True)
class Instruction:
    """One Dockerfile instruction with its arguments, continuations joined."""

    keyword: str
    arguments: str
    stage: int


def parse_dockerfile(path: Path) -> list[Instruction]:
    """The instructions of a Dockerfile, each tagged with its stage's index."""
    instructions = []
    stage = -1
    pending = ""
    for line in path.read_text().splitlines():
        if not pending and (not line.strip() or line.lstrip().startswith("#")):
            continue
        if line.rstrip().endswith("\\"):
            pending += line.rstrip()[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).strip().partition(" ")
        pending = ""
        if keyword.upper() == "FROM":
            stage += 1
        instructions.append(Instruction(keyword.upper(), arguments.strip(), stage))
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last stage, the image that is shipped."""
    last = instructions[-1].stage
    return [i for i in instructions if i.stage == last]


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Whether .dockerignore keeps ``path`` out of the build context.

    Docker's rules: the last matching pattern wins, ``!`` re-includes, and a
    pattern that matches a parent folder matches everything below it.
    """
    excluded = False
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw.removeprefix("!").rstrip("/")
        prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
        if pattern.startswith("**/"):
            hit = any(fnmatch.fnmatch(part, pattern[3:]) for part in parts)
        else:
            hit = any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes)
        if hit:
            excluded = not negate
    return excluded


def dockerignore_patterns() -> list[str]:
    """The patterns of .dockerignore, comments dropped."""
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def uv_sync_flags(instructions: list[Instruction]) -> list[list[str]]:
    """The options of every ``uv sync`` the Dockerfile runs."""
    flags = []
    for instruction in instructions:
        if instruction.keyword == "RUN" and "uv sync" in instruction.arguments:
            words = shlex.split(instruction.arguments)
            flags.append(words[words.index("sync") + 1 :])
    return flags


def locked_packages(flags: list[str]) -> set[str]:
    """Packages uv.lock installs for ``uv sync`` flags (markers not evaluated)."""
    uv = os.environ.get("UV") or shutil.which("uv")
    assert uv, "uv is needed to resolve the lock (it runs this suite: uv run)"
    groups = [f for f in flags if f in {"--no-default-groups", "--no-dev"}]
    for index, flag in enumerate(flags):
        if flag == "--group":
            groups += ["--group", flags[index + 1]]
    result = subprocess.run(
        [uv, "export", "--frozen", "--no-hashes", "--no-emit-project", "--no-header",
         "--no-annotate", *groups],
        cwd=ROOT, capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    return {line.split("==")[0] for line in result.stdout.splitlines() if "==" in line}


@pytest.fixture(params=IMAGES)
def image(request: pytest.FixtureRequest) -> str:
    """Each image's component name in turn."""
    return str(request.param)


def test_bases_are_pinned_by_version(image: str) -> None:
    bases = [i.arguments.split()[0] for i in parse_dockerfile(ROOT / f"Dockerfile.{image}")
             if i.keyword == "FROM"]  # fmt: skip
    assert len(bases) >= 2, "multi-stage: a build stage and a runtime stage"
    for base in bases:
        if base in {"uv", "build"}:
            continue
        tag = base.partition(":")[2]
        assert re.match(r"^\d+\.\d+\.\d+", tag), f"{base} is not pinned to a version"
    assert "ghcr.io/astral-sh/uv:0.13.9" in bases
    assert bases[-1] == "python:3.13.7-slim-bookworm"


def test_final_user_is_numeric_and_not_root(image: str) -> None:
    users = [i.arguments for i in final_stage(parse_dockerfile(ROOT / f"Dockerfile.{image}"))
             if i.keyword == "USER"]  # fmt: skip
    assert users, "the image would run as root"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit(), users[-1]
    assert int(uid) > 0, "uid 0 is root"
    assert not gid or gid.isdigit(), users[-1]


def test_copy_sources_exist_and_reach_the_build(image: str) -> None:
    patterns = dockerignore_patterns()
    copies = [i for i in parse_dockerfile(ROOT / f"Dockerfile.{image}") if i.keyword == "COPY"]
    assert copies
    for copy in copies:
        words = copy.arguments.split()
        if any(word.startswith("--from=") for word in words):
            continue
        sources = [w for w in words if not w.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: no such file"
            assert not dockerignore_excludes(source, patterns), f"{source} is in .dockerignore"


def test_dockerignore_matcher_follows_docker_rules() -> None:
    patterns = ["*", "!core", "**/__pycache__"]
    assert dockerignore_excludes(".venv", patterns)
    assert not dockerignore_excludes("core", patterns)
    assert not dockerignore_excludes("core/cli.py", patterns)
    assert dockerignore_excludes("core/__pycache__/cli.pyc", patterns)


def test_entrypoint_is_the_installed_console_script(image: str) -> None:
    instructions = parse_dockerfile(ROOT / f"Dockerfile.{image}")
    runtime = final_stage(instructions)
    (entrypoint,) = [json.loads(i.arguments) for i in runtime if i.keyword == "ENTRYPOINT"]
    (command,) = [json.loads(i.arguments) for i in runtime if i.keyword == "CMD"]
    environment = next(
        i.arguments
        for i in instructions
        if i.keyword == "ENV" and "UV_PROJECT_ENVIRONMENT" in i.arguments
    )
    venv = re.search(r"UV_PROJECT_ENVIRONMENT=(\S+)", environment).group(1)  # type: ignore[union-attr]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    script = Path(entrypoint[-1])
    assert script.parent == Path(venv) / "bin"
    assert script.name in scripts
    if image == "trainer":
        # tini forwards SIGTERM to loanops, which installs no handler of its own.
        assert entrypoint[:2] == ["/usr/bin/tini", "--"]
    else:
        assert entrypoint == [str(script)], "exec form, PID 1 receives SIGTERM"
    subcommands = set(typer.main.get_command(app).commands)  # type: ignore[attr-defined]
    assert command[0] == SUBCOMMAND[image]
    assert command[0] in subcommands


def test_each_image_installs_only_its_groups(image: str) -> None:
    flags = uv_sync_flags(parse_dockerfile(ROOT / f"Dockerfile.{image}"))
    assert len(flags) == 2, "dependencies first, then the project"
    dependency_layer, project_layer = flags
    for options in flags:
        assert {"--locked", "--no-default-groups", "--no-dev", "--no-editable"} <= set(options)
    assert "--no-install-project" in dependency_layer
    assert [f for f in dependency_layer if f != "--no-install-project"] == project_layer
    packages = locked_packages(project_layer)
    required, forbidden = EXPECTED[image]
    assert required <= packages, required - packages
    allowed_extra = {"server": set(), "trainer": {"hyperopt"}, "operator": {"kopf", "kubernetes"}}
    assert not (forbidden | NEVER - allowed_extra[image]) & packages


def test_hadolint_finds_nothing() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    files = [str(ROOT / f"Dockerfile.{image}") for image in IMAGES]
    result = subprocess.run(
        [str(hadolint), "--no-color", *files], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
