"""Latency and memory of ``loanops operator`` with many LoanModels, on the test API server.

Everything runs on loopback and is started and stopped here:

- a real MLflow tracking server (SQLite store), because the operator verifies a
  training outcome against the registry, evaluates the promotion policy and moves
  the ``champion`` alias there;
- kmock's Kubernetes emulator in this process's event loop, with the resources
  declared as ``tests/operator/conftest.py`` declares them;
- the operator as a separate process (``loanops operator --standalone``), so that
  its resident memory is its own and not this script's or the emulator's.

The bench registers synthetic versions (a run with ``eval_*`` metrics and a
``loanops.data_hash`` tag, a tiny artifact, a model version) instead of training
them: it measures the operator, not the trainer. The termination message written
on each training Pod is the JSON ``TrainingOutcome.to_json()`` would produce.

Per repetition (fresh emulator, fresh operator process, fresh registered models),
it creates N LoanModels one after another as fast as the API takes them, then:

1. LoanModel created (POST returned) -> its training Job exists;
2. Job succeeded (status patch returned) -> Deployment ``NAME-server`` serves
   ``models:/MODEL/1`` (all Jobs are finished one after another, a burst);
3. rollout completed -> ``Ready=True`` on the LoanModel;

and reads the operator's VmRSS / VmHWM from ``/proc/PID/status`` at start, with
all N Ready, and after one idle resync pass over all of them. Times come from
``time.monotonic`` by polling the emulator's store in memory every ``--poll``
seconds, which is the resolution of every latency printed.

Usage::

    uv run --locked python bench/operator.py [--count 50] [--repetitions 1] [--resync 30]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import kmock
import kubernetes
import yaml
from mlflow.entities import Metric
from mlflow.tracking import MlflowClient
from rich.console import Console
from rich.table import Table

from loanops.operator.conditions import now_iso
from loanops.operator.kube import DEPLOYMENT, JOB, Kube, load_configuration
from loanops.operator.resources import API_VERSION, LOANMODEL_LABEL

NAMESPACE = "lending"
# As tests/operator/conftest.py declares them: kopf discovers before it watches.
RESOURCES = {
    "v1/namespaces": ("Namespace", False, []),
    "apiextensions.k8s.io/v1/customresourcedefinitions": ("CustomResourceDefinition", False, []),
    "v1/events": ("Event", True, []),
    "events.k8s.io/v1/events": ("Event", True, []),
    "loanops.io/v1alpha1/loanmodels": ("LoanModel", True, ["status"]),
    "loanops.io/v1alpha1/driftpolicies": ("DriftPolicy", True, ["status"]),
    "batch/v1/jobs": ("Job", True, ["status"]),
    "batch/v1/cronjobs": ("CronJob", True, ["status"]),
    "apps/v1/deployments": ("Deployment", True, ["status"]),
    "v1/services": ("Service", True, ["status"]),
    "v1/pods": ("Pod", True, ["status"]),
}
VERBS = ["list", "watch", "get", "create", "patch", "update", "delete"]
JOBS = kmock.resource("batch/v1/jobs")
DEPLOYMENTS = kmock.resource("apps/v1/deployments")
LOANMODELS = kmock.resource("loanops.io/v1alpha1/loanmodels")
METRICS = {
    "eval_roc_auc": 0.93,
    "eval_pr_auc": 0.81,
    "eval_log_loss": 0.21,
    "eval_brier": 0.06,
    "eval_f1": 0.74,
}
BIN = Path(sys.executable).parent
# Pause between phases, so a phase does not start inside the last one's tail.
SETTLE = 1.0
console = Console(width=150)  # the tables stay readable when piped to a file


class BenchError(Exception):
    """Something did not happen as it should; the bench exits non-zero."""


# -- processes ------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM, then SIGKILL if the process lingers."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


async def stop_operator(process: subprocess.Popen[bytes] | None) -> None:
    """Like :func:`stop_process`, but waiting without blocking the emulator's loop.

    kopf talks to the API while it shuts down; a blocking wait here would starve it.
    """
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 15
    while process.poll() is None and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    if process.poll() is None:
        console.print("[yellow]the operator ignored SIGTERM for 15 s; killing it[/yellow]")
        process.kill()
        process.wait(timeout=5)


def start_mlflow(root: Path, workers: int) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (root / "mlflow.log").open("wb")
    process = subprocess.Popen(
        [
            str(BIN / "mlflow"),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            str(workers),
            "--backend-store-uri",
            f"sqlite:///{root / 'mlflow.db'}",
            "--artifacts-destination",
            str(root / "artifacts"),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    uri = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"mlflow server exited with {process.returncode}; see {log.name}")
        try:
            with urllib.request.urlopen(f"{uri}/health", timeout=2) as response:
                if response.status == 200:
                    return process, uri
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.3)
    stop_process(process)
    raise BenchError("mlflow server did not answer /health within 120 s")


def memory(pid: int) -> tuple[float, float]:
    """VmRSS and VmHWM (peak resident set) of ``pid`` in MiB."""
    values: dict[str, float] = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            values[key] = int(rest.split()[0]) / 1024  # kB
    return values["VmRSS"], values["VmHWM"]


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# -- MLflow: synthetic versions -------------------------------------------------------------


def register_versions(tracking_uri: str, models: Iterable[str]) -> dict[str, str]:
    """Register version 1 of every model; returns each one's outcome JSON."""
    client = MlflowClient(tracking_uri=tracking_uri)
    experiment = client.create_experiment(f"bench-operator-{uuid.uuid4().hex[:8]}")
    outcomes = {}
    for model in models:
        data_hash = uuid.uuid4().hex
        now_ms = int(time.time() * 1000)
        run = client.create_run(experiment, tags={"loanops.data_hash": data_hash})
        run_id = run.info.run_id
        client.log_batch(run_id, metrics=[Metric(k, v, now_ms, 0) for k, v in METRICS.items()])
        # The operator never loads the model; any artifact gives the version a source.
        client.log_text(run_id, "synthetic version registered by bench/operator.py", "model/README")
        client.set_terminated(run_id)
        client.create_registered_model(model)
        version = client.create_model_version(
            model, source=f"{run.info.artifact_uri}/model", run_id=run_id
        )
        outcomes[model] = json.dumps(
            {
                "run_id": run_id,
                "model_name": model,
                "version": str(version.version),
                "family": "xgboost",
                "threshold": 0.5,
                "metrics": METRICS,
                "cv_best_score": 0.92,
                "data_hash": data_hash,
                "rows": 1000,
                "dropped": {},
                "params": {"max_depth": 4},
                "seconds": 1.0,
            },
            separators=(",", ":"),
        )
    return outcomes


# -- the cluster's side ---------------------------------------------------------------------


def declare(emulator: Any) -> None:
    for resource, (kind, namespaced, subresources) in RESOURCES.items():
        emulator.resources[resource] = kmock.ResourceInfo(
            kind=kind, namespaced=namespaced, verbs=VERBS, subresources=subresources
        )


def write_kubeconfig(path: Path, url: str) -> None:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "kmock", "cluster": {"server": url}}],
        "users": [{"name": "bench", "user": {"token": "bench-token"}}],
        "contexts": [{"name": "kmock", "context": {"cluster": "kmock", "user": "bench"}}],
        "current-context": "kmock",
    }
    path.write_text(yaml.safe_dump(config))
    os.environ["KUBECONFIG"] = str(path)
    # The client reads $KUBECONFIG once, at import; load_kube_config() asks this later.
    kubernetes.config.kube_config.KUBE_CONFIG_DEFAULT_LOCATION = str(path)


def loanmodel(name: str, model: str, tracking_uri: str) -> dict[str, Any]:
    return {
        "apiVersion": API_VERSION,
        "kind": "LoanModel",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            # What the API server would stamp on creation.
            "uid": str(uuid.uuid4()),
            "generation": 1,
            "creationTimestamp": now_iso(),
            "resourceVersion": "1",
        },
        "spec": {
            "data": {"uri": "s3://lending-data/applications/"},
            "mlflow": {"trackingUri": tracking_uri, "modelName": model},
            "training": {"families": ["xgboost"], "maxEvals": 5},
            "serving": {"replicas": 2},
        },
    }


async def create_loanmodel(kube: Kube, name: str, model: str, tracking_uri: str) -> None:
    await kube.create(loanmodel(name, model, tracking_uri))


async def finish_job(kube: Kube, job: dict[str, Any], message: str) -> None:
    """Report a Job's success the way the Job controller and kubelet do."""
    name = job["metadata"]["name"]
    stamp = now_iso()
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": f"{name}-{uuid.uuid4().hex[:5]}",
            "namespace": NAMESPACE,
            "labels": {"job-name": name, "batch.kubernetes.io/job-name": name},
        },
        "spec": job["spec"]["template"]["spec"],
        "status": {
            "phase": "Succeeded",
            "containerStatuses": [
                {
                    "name": "trainer",
                    "ready": False,
                    "restartCount": 0,
                    "state": {
                        "terminated": {
                            "exitCode": 0,
                            "reason": "Completed",
                            "message": message,
                            "finishedAt": stamp,
                        }
                    },
                }
            ],
        },
    }
    await kube.create(pod)
    status = {
        "succeeded": 1,
        "startTime": job["metadata"].get("creationTimestamp") or stamp,
        "completionTime": stamp,
        "conditions": [
            {"type": "SuccessCriteriaMet", "status": "True", "lastTransitionTime": stamp},
            {"type": "Complete", "status": "True", "lastTransitionTime": stamp},
        ],
    }
    await kube.patch(JOB, NAMESPACE, name, {"status": status}, subresource="status")


async def complete_rollout(kube: Kube, name: str) -> None:
    """Every replica updated and available, as the Deployment controller reports."""
    deployment = await kube.get(DEPLOYMENT, NAMESPACE, name)
    if deployment is None:
        raise BenchError(f"Deployment {name} vanished")
    generation = int(deployment["metadata"].get("generation") or 1) + 1
    replicas = int(deployment["spec"]["replicas"])
    await kube.patch(DEPLOYMENT, NAMESPACE, name, {"metadata": {"generation": generation}})
    status = {
        "observedGeneration": generation,
        "replicas": replicas,
        "updatedReplicas": replicas,
        "readyReplicas": replicas,
        "availableReplicas": replicas,
    }
    await kube.patch(DEPLOYMENT, NAMESPACE, name, {"status": status}, subresource="status")


# -- observing the emulator's store ---------------------------------------------------------


# The probes below run every --poll seconds in the loop that also serves the
# operator's API calls, on a 2-core machine: they look up only the objects still
# awaited, by key, instead of copying the store (which keeps every version of
# every object and every Event), so that the bench does not slow the operator.


def stored(emulator: Any, resource: Any, name: str) -> Any:
    """The emulator's live view of one object in the namespace, or None."""
    try:
        return emulator.objects[resource, NAMESPACE, name]
    except KeyError:
        return None


def owners_with_job(emulator: Any, pending: Iterable[str]) -> set[str]:
    """LoanModels among ``pending`` that have a training Job (named NAME-train-DIGEST)."""
    wanted = set(pending)
    found = set()
    for resource, namespace, name in list(emulator.objects.keys()):
        owner, marker, _ = name.partition("-train-")
        if marker and owner in wanted and namespace == NAMESPACE and resource == JOBS:
            found.add(owner)
    return found


def served_model(body: dict[str, Any]) -> str | None:
    args = body["spec"]["template"]["spec"]["containers"][0].get("args") or []
    return str(args[args.index("--model") + 1]) if "--model" in args else None


def has_condition(body: dict[str, Any], kind: str, status: str, reason: str | None = None) -> bool:
    conditions = (body.get("status") or {}).get("conditions") or []
    return any(
        c.get("type") == kind
        and c.get("status") == status
        and (reason is None or c.get("reason") == reason)
        for c in conditions
    )


@dataclass
class Poller:
    """Records when each name first satisfies a probe of the emulator's store."""

    probe: Callable[[], set[str]]
    names: set[str]
    interval: float
    seen: dict[str, float] = field(default_factory=dict)

    async def run(self, timeout: float, operator: subprocess.Popen[bytes]) -> None:
        deadline = time.monotonic() + timeout
        while True:
            now = time.monotonic()
            for name in self.probe() & (self.names - self.seen.keys()):
                self.seen[name] = now
            if len(self.seen) == len(self.names):
                return
            if operator.poll() is not None:
                raise BenchError(f"the operator exited with {operator.returncode}")
            if now > deadline:
                missing = sorted(self.names - self.seen.keys())
                raise BenchError(f"timed out after {timeout:.0f} s; still waiting for {missing}")
            await asyncio.sleep(self.interval)


async def measure(
    pollers: list[Poller],
    stimuli: dict[str, Callable[[], Awaitable[Any]]],
    timeout: float,
    operator: subprocess.Popen[bytes],
) -> list[list[float]]:
    """Apply each stimulus in turn; per poller, seconds from its return to the effect.

    The pollers run from before the first stimulus, so an effect that comes while
    later stimuli are still being sent is seen when it comes.
    """
    watching = [asyncio.create_task(poller.run(timeout, operator)) for poller in pollers]
    try:
        sent = {}
        for name, stimulus in stimuli.items():
            await stimulus()
            sent[name] = time.monotonic()
        await asyncio.gather(*watching)
    finally:
        for task in watching:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return [[poller.seen[name] - sent[name] for name in sorted(stimuli)] for poller in pollers]


def request_log(emulator: Any) -> list[Any]:
    """Every request the emulator has served, oldest first, without a copy.

    Iterating the emulator copies the whole (ever-growing) log; the bench reads it
    every poll, so it slices kmock's own list instead.
    """
    requests: list[Any] = emulator._requests
    return requests


def is_watch(request: Any) -> bool:
    return str(request.params.get("watch", "")).lower() in ("true", "1")


# -- one repetition -------------------------------------------------------------------------


@dataclass
class Repetition:
    created_to_job: list[float] = field(default_factory=list)
    created_to_status: list[float] = field(default_factory=list)
    succeeded_to_deployment: list[float] = field(default_factory=list)
    rolled_to_ready: list[float] = field(default_factory=list)
    rss: dict[str, float] = field(default_factory=dict)
    peak: float = 0.0
    resync_pass: float = 0.0
    resync_cpu: float = 0.0
    resync_requests: dict[str, int] = field(default_factory=dict)
    resync_mlflow: int = 0
    warnings: list[str] = field(default_factory=list)
    # phase -> (wall s, operator CPU s, this process's CPU s: emulator, pollers, client)
    phases: dict[str, tuple[float, float, float]] = field(default_factory=dict)

    @contextlib.contextmanager
    def phase(self, name: str, pid: int) -> Iterator[None]:
        """Account a phase's wall and CPU time: on 2 cores, who used them matters."""
        wall, mine, theirs = time.monotonic(), time.process_time(), cpu_seconds(pid)
        yield
        self.phases[name] = (
            time.monotonic() - wall,
            cpu_seconds(pid) - theirs,
            time.process_time() - mine,
        )


async def quiet(emulator: Any, seconds: float, timeout: float) -> bool:
    """Wait until no new API request at all has arrived for ``seconds`` (or ``timeout``)."""
    deadline = time.monotonic() + timeout
    count = len(request_log(emulator))
    since = time.monotonic()
    while time.monotonic() - since < seconds:
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.2)
        now = len(request_log(emulator))
        if now != count:
            count, since = now, time.monotonic()
    return True


async def repetition(
    index: int,
    arguments: argparse.Namespace,
    outcomes: dict[str, str],
    tracking_uri: str,
    root: Path,
) -> Repetition:
    result = Repetition()
    names = {f"lm-{i:03d}": f"bench-r{index}-lm-{i:03d}" for i in range(arguments.count)}
    log_path = root / f"operator-{index}.log"
    operator: subprocess.Popen[bytes] | None = None
    async with kmock.KubernetesEmulator() as emulator, kmock.Server(emulator) as server:
        declare(emulator)
        write_kubeconfig(root / "kubeconfig", str(server.url).rstrip("/"))
        load_configuration()
        kube = Kube()
        try:
            env = {
                **os.environ,
                "LOANOPS_OPERATOR_RESYNC_SECONDS": str(arguments.resync),
                "LOANOPS_OPERATOR_SERVER_IMAGE": "registry.example/loanops-server:bench",
                "LOANOPS_OPERATOR_TRAINER_IMAGE": "registry.example/loanops-trainer:bench",
            }
            # Not inside a pod: the operator must take the kubeconfig.
            env.pop("KUBERNETES_SERVICE_HOST", None)
            with log_path.open("wb") as log:
                operator = subprocess.Popen(
                    [str(BIN / "loanops"), "operator", "--standalone", "--metrics-port", "0"],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )

            # Timings start once kopf watches what it reacts to; before that a
            # latency would be the operator's start-up, not its reaction.
            wanted = {"loanmodels", "jobs", "deployments"}
            deadline = time.monotonic() + 120
            served = request_log(emulator)
            while wanted - {r.resource.plural for r in served if r.resource and is_watch(r)}:
                if operator.poll() is not None:
                    raise BenchError(f"the operator exited with {operator.returncode}")
                if time.monotonic() > deadline:
                    raise BenchError("kopf did not start watching within 120 s")
                await asyncio.sleep(0.1)
            await quiet(emulator, 1.0, 60)
            result.rss["at start, 0 LoanModels"] = memory(operator.pid)[0]

            # 1. created -> training Job, and -> the first pass's status write
            def with_job() -> set[str]:
                return owners_with_job(emulator, names)

            def awaiting(kind: str, status: str, reason: str | None = None) -> set[str]:
                found = set()
                for name in names:
                    body = stored(emulator, LOANMODELS, name)
                    if body is not None and has_condition(body, kind, status, reason):
                        found.add(name)
                return found

            with result.phase("1 create", operator.pid):
                result.created_to_job, result.created_to_status = await measure(
                    [
                        Poller(with_job, set(names), arguments.poll),
                        # The first pass is over when it writes Trained=False TrainingRunning;
                        # phase 2 starts after that, so it measures a warm operator.
                        Poller(
                            partial(awaiting, "Trained", "False", "TrainingRunning"),
                            set(names),
                            arguments.poll,
                        ),
                    ],
                    {
                        name: partial(create_loanmodel, kube, name, model, tracking_uri)
                        for name, model in names.items()
                    },
                    arguments.timeout,
                    operator,
                )

            # 2. Job succeeded -> Deployment serving models:/MODEL/1
            def deployed() -> set[str]:
                found = set()
                for name, model in names.items():
                    body = stored(emulator, DEPLOYMENTS, f"{name}-server")
                    if body is not None and served_model(body) == f"models:/{model}/1":
                        found.add(name)
                return found

            # The store's bodies are views; the API gives plain JSON to copy from.
            jobs = {
                job["metadata"]["labels"][LOANMODEL_LABEL]: job
                for job in await kube.list(JOB, NAMESPACE)
            }
            await asyncio.sleep(SETTLE)
            with result.phase("2 finish Jobs", operator.pid):
                [result.succeeded_to_deployment] = await measure(
                    [Poller(deployed, set(names), arguments.poll)],
                    {
                        name: partial(finish_job, kube, jobs[name], outcomes[model])
                        for name, model in names.items()
                    },
                    arguments.timeout,
                    operator,
                )

            # 3. rollout complete -> Ready=True
            await asyncio.sleep(SETTLE)
            with result.phase("3 complete rollouts", operator.pid):
                [result.rolled_to_ready] = await measure(
                    [Poller(partial(awaiting, "Ready", "True"), set(names), arguments.poll)],
                    {name: partial(complete_rollout, kube, f"{name}-server") for name in names},
                    arguments.timeout,
                    operator,
                )
            # The passes the last status writes set off end, then the resync sleeps.
            await quiet(emulator, 2.0, arguments.resync + 5)
            result.rss[f"{arguments.count} Ready"] = memory(operator.pid)[0]

            # 4. The next resync pass, with nothing to do: it walks the LoanModels in
            # name order, so it starts with the first GET of the first name and ends
            # when every one has been read since.
            served = request_log(emulator)
            cursor = len(served)
            mlflow_log = root / "mlflow.log"
            mlflow_mark = mlflow_log.stat().st_size
            cpu_before = cpu_seconds(operator.pid)
            deadline = time.monotonic() + 2 * arguments.resync + arguments.timeout
            first_name = min(names)
            pass_start: int | None = None
            began = 0.0
            read: set[str] = set()
            while True:
                new, cursor = served[cursor:], len(served)
                now = time.monotonic()
                for offset, request in enumerate(new):
                    if request.resource != LOANMODELS or request.method != kmock.method.GET:
                        continue
                    if pass_start is None and request.name == first_name:
                        pass_start, began = cursor - len(new) + offset, now
                    if pass_start is not None and request.name:
                        read.add(request.name)
                if names.keys() <= read:
                    result.resync_pass = now - began
                    break
                if operator.poll() is not None:
                    raise BenchError(f"the operator exited with {operator.returncode}")
                if now > deadline:
                    raise BenchError("no complete resync pass came")
                await asyncio.sleep(arguments.poll)
            await quiet(emulator, 2.0, arguments.resync)
            assert pass_start is not None
            traffic = [r for r in served[pass_start:] if not is_watch(r)]
            result.resync_cpu = cpu_seconds(operator.pid) - cpu_before
            # The server logs one line per request; the operator is its only client now
            # (the window also holds the quiet tail of the previous passes: none).
            with mlflow_log.open("rb") as lines:
                lines.seek(mlflow_mark)
                result.resync_mlflow = sum(b'HTTP/1.1"' in line for line in lines)
            for request in traffic:
                plural = request.resource.plural if request.resource else str(request.url.path)
                sub = f"/{request.subresource}" if request.subresource else ""
                key = f"{request.method.name} {plural}{sub}"
                result.resync_requests[key] = result.resync_requests.get(key, 0) + 1
            result.rss["after idle resync"], result.peak = memory(operator.pid)
        finally:
            await stop_operator(operator)
            kube.api.close()
    text = log_path.read_text(errors="replace")
    result.warnings = [line for line in text.splitlines() if "WARNING" in line or "ERROR" in line]
    if arguments.keep:
        console.print(f"operator log: {log_path}")
    return result


# -- figures --------------------------------------------------------------------------------


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


def report(arguments: argparse.Namespace, runs: list[Repetition], workers: int) -> None:
    table = Table(
        title=(
            f"loanops operator, {arguments.count} LoanModels x {len(runs)} repetition(s), "
            f"resync {arguments.resync:g} s, poll resolution {arguments.poll * 1000:.0f} ms, "
            f"MLflow --workers {workers}"
        )
    )
    for column in ("latency", "count", "median ms", "p90 ms", "max ms"):
        table.add_column(column, justify="left" if column == "latency" else "right")
    rows = {
        "LoanModel created -> Job exists": [v for r in runs for v in r.created_to_job],
        "LoanModel created -> status Training written": [
            v for r in runs for v in r.created_to_status
        ],
        "Job succeeded -> Deployment at models:/M/1": [
            v for r in runs for v in r.succeeded_to_deployment
        ],
        "rollout complete -> Ready=True": [v for r in runs for v in r.rolled_to_ready],
    }
    for label, values in rows.items():
        table.add_row(
            label,
            str(len(values)),
            f"{statistics.median(values) * 1000:.0f}",
            f"{quantile(values, 0.9) * 1000:.0f}",
            f"{max(values) * 1000:.0f}",
        )
    console.print(table)

    memory_table = Table(title="operator process memory (MiB, /proc/PID/status)")
    memory_table.add_column("repetition", justify="right")
    for label in runs[0].rss:
        memory_table.add_column(f"VmRSS {label}", justify="right")
    memory_table.add_column("VmHWM (peak)", justify="right")
    memory_table.add_column("idle resync pass s", justify="right")
    memory_table.add_column("its CPU s", justify="right")
    for index, run in enumerate(runs, 1):
        memory_table.add_row(
            str(index),
            *(f"{value:.1f}" for value in run.rss.values()),
            f"{run.peak:.1f}",
            f"{run.resync_pass:.1f}",
            f"{run.resync_cpu:.2f}",
        )
    console.print(memory_table)
    cpu_table = Table(title="who used the 2 CPUs, per phase (seconds)")
    for column in ("repetition", "phase", "wall", "operator CPU", "bench+emulator CPU"):
        cpu_table.add_column(column, justify="right")
    for index, run in enumerate(runs, 1):
        for name, (wall, theirs, mine) in run.phases.items():
            cpu_table.add_row(str(index), name, f"{wall:.1f}", f"{theirs:.1f}", f"{mine:.1f}")
    console.print(cpu_table)
    for index, run in enumerate(runs, 1):
        calls = ", ".join(f"{k} {v}" for k, v in sorted(run.resync_requests.items()))
        console.print(
            f"repetition {index}: requests in the idle resync window: Kubernetes API: {calls}; "
            f"MLflow: {run.resync_mlflow}"
        )
        if run.warnings:
            console.print(f"repetition {index}: {len(run.warnings)} WARNING/ERROR log lines, e.g.:")
            for line in run.warnings[:5]:
                console.print(f"  {line[:300]}", markup=False)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=50, help="LoanModels per repetition")
    parser.add_argument("--repetitions", type=int, default=1)
    parser.add_argument("--resync", type=float, default=30.0, help="operator resync seconds")
    parser.add_argument("--poll", type=float, default=0.02, help="poll interval, seconds")
    parser.add_argument("--timeout", type=float, default=900.0, help="per phase, seconds")
    parser.add_argument("--mlflow-workers", type=int, default=1, help="as the tests run it")
    parser.add_argument("--keep", action="store_true", help="keep logs and the MLflow store")
    arguments = parser.parse_args()

    root = Path(tempfile.mkdtemp(prefix="bench-operator-"))
    os.environ["MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT"] = "true"
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    load = os.getloadavg()[0]
    mlflow: subprocess.Popen[bytes] | None = None
    try:
        started = time.monotonic()
        mlflow, tracking_uri = start_mlflow(root, arguments.mlflow_workers)
        models = [
            f"bench-r{rep}-lm-{i:03d}"
            for rep in range(arguments.repetitions)
            for i in range(arguments.count)
        ]
        outcomes = register_versions(tracking_uri, models)
        console.print(
            f"MLflow up and {len(models)} synthetic versions registered "
            f"in {time.monotonic() - started:.1f} s"
        )
        runs = []
        for index in range(arguments.repetitions):
            runs.append(asyncio.run(repetition(index, arguments, outcomes, tracking_uri, root)))
        report(arguments, runs, arguments.mlflow_workers)
        # Shared 2-core machine: the load says how much else competed for the CPUs.
        console.print(
            f"1-minute load average: {load:.1f} at start, {os.getloadavg()[0]:.1f} at the end "
            f"({os.cpu_count()} CPUs); total {time.monotonic() - started:.0f} s"
        )
    except Exception as error:  # any failure: say what, show the operator's last words
        console.print(f"[red]bench failed:[/red] {type(error).__name__}: {error}")
        for log in sorted(root.glob("operator-*.log")):
            console.print(f"--- last lines of {log.name}")
            console.print(
                "\n".join(log.read_text(errors="replace").splitlines()[-30:]), markup=False
            )
        return 1
    finally:
        stop_process(mlflow)
        if arguments.keep:
            console.print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
