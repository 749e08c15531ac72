"""GitHub workflows for forks: valid, tested on pull requests, published with
immutable tags, and given credentials only through repository secrets.

The schema check is check-jsonschema's bundled GitHub workflow schema, which
needs no network.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from tests.deploy.conftest import ROOT, walk

WORKFLOWS = ROOT / ".github" / "workflows"


def workflow(name: str) -> dict[str, Any]:
    """A workflow file; PyYAML reads the key `on` as True, so it is renamed."""
    data = yaml.safe_load((WORKFLOWS / name).read_text())
    data["on"] = data.pop(True)
    return dict(data)


def steps(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every step of every job."""
    return [step for job in data["jobs"].values() for step in job.get("steps", [])]


def test_workflows_match_the_github_schema() -> None:
    files = sorted(str(p) for p in WORKFLOWS.glob("*.yaml"))
    assert len(files) == 2
    checker = Path(sys.executable).with_name("check-jsonschema")
    result = subprocess.run(
        [str(checker), "--builtin-schema", "vendor.github-workflows", *files],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_pull_requests_run_lint_and_tests() -> None:
    ci = workflow("ci.yaml")
    assert "pull_request" in ci["on"]
    commands = "\n".join(step.get("run", "") for step in steps(ci))
    for needed in ("ruff check", "ruff format --check", "hadolint", "check-jsonschema",
                   "pytest tests/deploy", ".ci/run", "uv sync --locked"):  # fmt: skip
        assert needed in commands, needed
    assert ci["permissions"] == {"contents": "read"}


def test_main_publishes_three_images_tagged_by_commit() -> None:
    release = workflow("release.yaml")
    assert release["on"]["push"]["branches"] == ["main"]
    images = release["jobs"]["images"]
    assert images["strategy"]["matrix"]["component"] == ["operator", "server", "trainer"]
    for component in images["strategy"]["matrix"]["component"]:
        assert (ROOT / f"Dockerfile.{component}").exists()
    (meta,) = [s for s in images["steps"] if s.get("uses", "").startswith("docker/metadata-action")]
    tags = meta["with"]["tags"].split()
    assert "type=sha,format=long,prefix=" in tags, "the full commit SHA is the immutable tag"
    assert "latest=false" in meta["with"]["flavor"]
    (build,) = [s for s in images["steps"] if s.get("uses", "").startswith("docker/build-push")]
    assert build["with"]["file"] == "Dockerfile.${{ matrix.component }}"
    assert build["with"]["push"] is True


def test_main_packages_the_chart_for_its_images() -> None:
    chart = workflow("release.yaml")["jobs"]["chart"]
    assert chart["needs"] == "images"
    script = "\n".join(step.get("run", "") for step in chart["steps"])
    assert "helm package charts/loanops" in script
    assert '--app-version "${GITHUB_SHA}"' in script, "the chart's default image tag"
    assert "helm push" in script


def test_no_moving_tags_or_unpinned_actions() -> None:
    for path in WORKFLOWS.glob("*.yaml"):
        text = path.read_text()
        assert ":latest" not in text, path
        assert "type=raw,value=latest" not in text, path
        for step in steps(workflow(path.name)):
            uses = step.get("uses")
            if uses:
                assert re.fullmatch(r"[\w.\-]+/[\w.\-]+@(v\d+(\.\d+)*|[0-9a-f]{40})", uses), uses


def test_credentials_come_only_from_repository_secrets() -> None:
    for path in WORKFLOWS.glob("*.yaml"):
        data = workflow(path.name)
        for node in walk(data):
            if isinstance(node, dict):
                for key, value in node.items():
                    if re.search(r"password|token|secret", str(key), re.IGNORECASE):
                        assert isinstance(value, str), key
                        secret = re.fullmatch(r"\$\{\{ secrets\.[A-Z_]+ \}\}", value)
                        assert secret, f"{path.name}: {key} must come from secrets"
        # Secrets never appear inside a shell script, where they could be echoed.
        for step in steps(data):
            assert "secrets." not in step.get("run", ""), path.name
