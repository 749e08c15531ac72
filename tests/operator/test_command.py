"""``loanops operator`` refuses, in one line, what it cannot run with."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path


def run_operator(command: list[str], *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "KUBERNETES_SERVICE_HOST"}
    return subprocess.run(
        [*command, "operator", *args],
        capture_output=True,
        text=True,
        timeout=120,
        env={**environment, "COLUMNS": "200", **env},
    )


def test_no_cluster_is_named_in_one_line(loanops_command: list[str], tmp_path: Path) -> None:
    missing = tmp_path / "absent-kubeconfig"
    result = run_operator(loanops_command, "--standalone", KUBECONFIG=str(missing))
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "no Kubernetes API to talk to" in result.stderr
    assert str(missing) in result.stderr


def test_namespace_options_exclude_each_other(loanops_command: list[str]) -> None:
    result = run_operator(loanops_command, "--all-namespaces", "--namespace", "credit")
    assert result.returncode == 2
    assert "--all-namespaces and --namespace exclude each other" in result.stderr
