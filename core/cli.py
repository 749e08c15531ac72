"""The ``loanops`` command line: one entry point, one subcommand per job.

Every option can also be set with a ``LOANOPS_``-prefixed environment
variable (``--tracking-uri`` is ``LOANOPS_TRACKING_URI``). This module is the
composition root: it parses options, builds each component's configuration
and calls into the component, importing it only when its command runs so
that, for instance, ``loanops serve`` never loads training libraries.

User errors (:class:`~loanops.errors.LoanopsError`) end with one line on
stderr and exit code 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from loanops.errors import ConfigurationError, LoanopsError, NotSupportedError

app = typer.Typer(
    name="loanops",
    help="Train, promote, serve and watch a loan-approval credit model.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
console = Console(stderr=True)
_state = {"debug": False}


def _env(name: str) -> str:
    return f"LOANOPS_{name}"


TrackingUri = Annotated[
    str | None,
    typer.Option(
        "--tracking-uri",
        envvar=[_env("TRACKING_URI"), "MLFLOW_TRACKING_URI"],
        help="MLflow tracking URI: http(s)://server or sqlite:///path/mlflow.db.",
    ),
]
ModelName = Annotated[
    str,
    typer.Option("--model-name", envvar=_env("MODEL_NAME"), help="Registered model name."),
]


@app.callback()
def configure(
    debug: Annotated[
        bool, typer.Option("--debug", envvar=_env("DEBUG"), help="Show tracebacks and debug logs.")
    ] = False,
) -> None:
    """Train, promote, serve and watch a loan-approval credit model."""
    _state["debug"] = debug
    # MLflow draws tqdm bars on every artifact download; they garble Job logs.
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.INFO,
        format="%(message)s",
        handlers=[RichHandler(console=console, show_path=debug, rich_tracebacks=debug)],
        force=True,
    )
    # MLflow and its HTTP stack are chatty at INFO; their warnings still show.
    for noisy in ("urllib3", "botocore", "s3fs", "alembic", "hyperopt"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if debug else logging.WARNING)
    # MLflow warns on every model log about choices loanops makes on purpose
    # (cloudpickle, integer columns in the signature); its errors still show.
    logging.getLogger("mlflow").setLevel(logging.DEBUG if debug else logging.ERROR)
    if not debug:
        warnings.filterwarnings("ignore", message="Hint: Inferred schema contains integer")


@app.command()
def train(
    data: Annotated[
        str, typer.Option("--data", envvar=_env("DATA"), help="Path, folder or s3:// URI.")
    ],
    tracking_uri: TrackingUri = None,
    model_name: ModelName = "loan-approval",
    experiment: Annotated[
        str | None,
        typer.Option(
            envvar=_env("EXPERIMENT"), help="MLflow experiment (default: the model name)."
        ),
    ] = None,
    families: Annotated[
        str, typer.Option(envvar=_env("FAMILIES"), help="Comma-separated estimator families.")
    ] = "xgboost,catboost,random_forest",
    max_evals: Annotated[
        int, typer.Option(envvar=_env("MAX_EVALS"), min=1, help="Search trials.")
    ] = 20,
    cv_folds: Annotated[
        int, typer.Option(envvar=_env("CV_FOLDS"), min=2, max=20, help="Cross-validation folds.")
    ] = 3,
    objective: Annotated[
        str, typer.Option(envvar=_env("OBJECTIVE"), help="roc_auc, pr_auc, f1 or log_loss.")
    ] = "roc_auc",
    seed: Annotated[int, typer.Option(envvar=_env("SEED"), help="Seed of the whole run.")] = 42,
    threads: Annotated[
        int | None, typer.Option(envvar=_env("THREADS"), min=1, help="Estimator threads.")
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option(envvar=_env("S3_ENDPOINT"), help="S3 endpoint URL override.")
    ] = None,
    outcome_file: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("OUTCOME_FILE"),
            help="Write the outcome JSON here (a Job's /dev/termination-log).",
        ),
    ] = None,
    skip_if_data_hash: Annotated[
        str | None,
        typer.Option(
            envvar=_env("SKIP_IF_DATA_HASH"),
            help="Stop before tuning, with a 'skipped' outcome, if the data hashes to this.",
        ),
    ] = None,
) -> None:
    """Tune, calibrate, evaluate and register a model version in MLflow."""
    from loanops.trainer.cli import run_training
    from loanops.trainer.training import TrainingSkipped

    try:
        outcome = run_training(
            data_uri=data,
            tracking_uri=tracking_uri,
            model_name=model_name,
            experiment=experiment,
            families=families,
            max_evals=max_evals,
            cv_folds=cv_folds,
            objective=objective,
            seed=seed,
            threads=threads,
            s3_endpoint=s3_endpoint,
            skip_if_data_hash=skip_if_data_hash,
            console=console,
        )
    except TrainingSkipped as skipped:
        console.print(f"Training skipped: {skipped.reason}.")
        if outcome_file is not None:
            outcome_file.write_text(skipped.to_json())
        return
    table = Table(title=f"{outcome.model_name} version {outcome.version} ({outcome.family})")
    table.add_column("metric (evaluation split, class 1 = default)")
    table.add_column("value", justify="right")
    for name, value in outcome.metrics.items():
        table.add_row(name, f"{value:.4f}")
    table.add_row("cv_best_score", f"{outcome.cv_best_score:.4f}")
    table.add_row("decision threshold on P(default)", f"{outcome.threshold:.4f}")
    Console().print(table)
    if outcome_file is not None:
        outcome_file.write_text(outcome.to_json())


@app.command()
def promote(
    tracking_uri: TrackingUri = None,
    model_name: ModelName = "loan-approval",
    version: Annotated[
        str | None,
        typer.Option(
            envvar=_env("VERSION"), help="Version to decide on (default: the challenger)."
        ),
    ] = None,
    metric: Annotated[
        str, typer.Option(envvar=_env("PROMOTION_METRIC"), help="Evaluation metric compared.")
    ] = "eval_roc_auc",
    minimum: Annotated[
        float | None,
        typer.Option(envvar=_env("PROMOTION_MINIMUM"), help="Least acceptable metric value."),
    ] = None,
    min_improvement: Annotated[
        float,
        typer.Option(
            envvar=_env("PROMOTION_MIN_IMPROVEMENT"), help="Required gain over the champion."
        ),
    ] = 0.0,
    dry_run: Annotated[
        bool, typer.Option(envvar=_env("DRY_RUN"), help="Record the decision, move no alias.")
    ] = False,
) -> None:
    """Apply the promotion policy and move the champion alias if it passes."""
    import mlflow

    from loanops.promotion import PromotionPolicy, promote_version

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    policy = PromotionPolicy(metric=metric, minimum=minimum, min_improvement=min_improvement)
    decided, decision = promote_version(
        mlflow.MlflowClient(),
        model_name=model_name,
        version=version,
        policy=policy,
        apply=not dry_run,
    )
    verdict = "promoted to champion" if decision.promote and not dry_run else "not promoted"
    if dry_run:
        verdict = f"dry run: would be {'promoted' if decision.promote else 'rejected'}"
    Console().print(f"{model_name} version {decided}: {verdict}. {decision.reason}.")


@app.command()
def serve(
    model: Annotated[
        str,
        typer.Option(
            "--model",
            envvar=_env("MODEL"),
            help="models:/NAME/VERSION, models:/NAME@ALIAS (pinned at start) or a path.",
        ),
    ],
    tracking_uri: TrackingUri = None,
    host: Annotated[str, typer.Option(envvar=_env("HOST"), help="Address to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(envvar=_env("PORT"), help="Port to bind.")] = 8000,
    prediction_log: Annotated[
        str | None,
        typer.Option(envvar=_env("PREDICTION_LOG"), help="Directory or s3:// prefix for chunks."),
    ] = None,
    spool_dir: Annotated[
        Path, typer.Option(envvar=_env("SPOOL_DIR"), help="Local spool of unshipped records.")
    ] = Path(".loanops/spool"),
    api_token_file: Annotated[
        Path | None,
        typer.Option(envvar=_env("API_TOKEN_FILE"), help="File holding the bearer token."),
    ] = None,
    api_token: Annotated[
        str | None,
        typer.Option(envvar=_env("API_TOKEN"), help="Bearer token (prefer --api-token-file)."),
    ] = None,
    max_batch_size: Annotated[
        int, typer.Option(envvar=_env("MAX_BATCH_SIZE"), min=1, help="Largest batch accepted.")
    ] = 500,
    chunk_records: Annotated[
        int, typer.Option(envvar=_env("CHUNK_RECORDS"), min=1, help="Records per log chunk.")
    ] = 1000,
    chunk_seconds: Annotated[
        float, typer.Option(envvar=_env("CHUNK_SECONDS"), min=0.1, help="Max chunk age (s).")
    ] = 60.0,
) -> None:
    """Serve one exact model version over HTTP."""
    import mlflow

    from loanops.server.cli import run_server

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    run_server(
        model_uri=model,
        host=host,
        port=port,
        prediction_log=prediction_log,
        spool_dir=spool_dir,
        api_token_file=api_token_file,
        api_token=api_token,
        max_batch_size=max_batch_size,
        chunk_records=chunk_records,
        chunk_seconds=chunk_seconds,
    )


@app.command()
def generate(
    rows: Annotated[int, typer.Option(envvar=_env("ROWS"), min=1, help="Applications.")] = 10_000,
    seed: Annotated[int, typer.Option(envvar=_env("SEED"), help="Generator seed.")] = 0,
    output: Annotated[
        str, typer.Option(envvar=_env("OUTPUT"), help="CSV or .parquet path, or s3:// URI.")
    ] = "applications.csv",
    scale: Annotated[
        list[str] | None,
        typer.Option(help="Scale a numeric field, FIELD=FACTOR (repeatable)."),
    ] = None,
    mix: Annotated[
        list[str] | None,
        typer.Option(help="Set a category mix, FIELD=CAT:SHARE[,CAT:SHARE] (repeatable)."),
    ] = None,
) -> None:
    """Write seeded synthetic loan applications in the S4E10 columns."""
    from loanops.trainer.cli import write_generated

    written = write_generated(rows=rows, seed=seed, output=output, scale=scale, mix=mix)
    Console().print(f"Wrote {rows} applications to {written}.")


@app.command()
def quickstart(
    data: Annotated[
        str | None,
        typer.Option(envvar=_env("DATA"), help="Labelled applications (default: generated ones)."),
    ] = None,
    home: Annotated[
        Path, typer.Option(envvar=_env("HOME"), help="Folder of the local MLflow store.")
    ] = Path(".loanops"),
    port: Annotated[int, typer.Option(envvar=_env("PORT"), help="Port to serve on.")] = 8000,
    seed: Annotated[int, typer.Option(envvar=_env("SEED"), help="Seed of the run.")] = 42,
    serve_model: Annotated[
        bool, typer.Option("--serve/--no-serve", help="Serve the champion afterwards.")
    ] = True,
) -> None:
    """Train, promote and serve on this machine, with a local MLflow store."""
    from loanops.trainer.quickstart import run_quickstart

    result = run_quickstart(data=data, home=home, seed=seed, console=console)
    out = Console()
    verdict = "promoted to champion" if result.decision.promote else "kept as challenger"
    out.print(
        f"Version {result.outcome.version}: eval_roc_auc "
        f"{result.outcome.metrics['eval_roc_auc']:.4f}, {verdict} ({result.decision.reason})."
    )
    out.print(
        f"MLflow store: {result.tracking_uri} (browse: uv run mlflow ui --backend-store-uri "
        f"{result.tracking_uri})",
        soft_wrap=True,
    )
    if not serve_model:
        out.print(
            f"Champion: {result.champion_uri}. Serve it with: uv run loanops serve --model "
            f"{result.champion_uri} --tracking-uri {result.tracking_uri} "
            f"--prediction-log {home / 'predictions'}",
            soft_wrap=True,
        )
        return

    from loanops.server.cli import run_server

    base = f"http://127.0.0.1:{port}"
    out.print(
        f"Serving {result.champion_uri} on {base}\n"
        f"  web form  {base}/\n  API docs  {base}/docs\n  metrics   {base}/metrics\n"
        f"  prediction log  {home / 'predictions'}\n"
        "Try:\n"
        f"  curl -s -X POST {base}/predict -H 'Content-Type: application/json' -d "
        '\'{"person_age": 37, "person_income": 35000, "person_home_ownership": "RENT", '
        '"person_emp_length": 0.0, "loan_intent": "EDUCATION", "loan_amnt": 6000, '
        '"loan_percent_income": 0.17, "cb_person_default_on_file": "N", '
        '"cb_person_cred_hist_length": 14}\'\n'
        "Press Ctrl-C to stop.",
        highlight=False,
        soft_wrap=True,
    )
    run_server(
        model_uri=result.champion_uri,
        host="127.0.0.1",
        port=port,
        prediction_log=str(home / "predictions"),
        spool_dir=home / "spool",
        api_token_file=None,
        api_token=None,
        max_batch_size=500,
        chunk_records=1000,
        chunk_seconds=10.0,
    )


@app.command()
def drift(
    predictions: Annotated[
        str,
        typer.Option(envvar=_env("PREDICTIONS"), help="Prediction-log directory or s3:// prefix."),
    ],
    model: Annotated[
        str, typer.Option("--model", envvar=_env("MODEL_NAME"), help="Registered model name.")
    ],
    version: Annotated[
        str | None,
        typer.Option(envvar=_env("VERSION"), help="Version (default: the one that served most)."),
    ] = None,
    tracking_uri: TrackingUri = None,
    since: Annotated[
        str | None, typer.Option(envvar=_env("SINCE"), help="Window start, ISO 8601.")
    ] = None,
    until: Annotated[
        str | None, typer.Option(envvar=_env("UNTIL"), help="Window end, ISO 8601 (default: now).")
    ] = None,
    hours: Annotated[
        float, typer.Option(envvar=_env("HOURS"), help="Window length without --since.")
    ] = 24.0,
    psi: Annotated[float, typer.Option(envvar=_env("PSI"), help="PSI effect threshold.")] = 0.2,
    alpha: Annotated[
        float, typer.Option(envvar=_env("ALPHA"), help="Significance before correction.")
    ] = 0.01,
    min_samples: Annotated[
        int, typer.Option(envvar=_env("MIN_SAMPLES"), help="Fewer rows: insufficient data.")
    ] = 200,
    output: Annotated[
        Path | None, typer.Option(envvar=_env("OUTPUT"), help="Write the JSON report here.")
    ] = None,
    termination_file: Annotated[
        Path | None,
        typer.Option(
            envvar=_env("TERMINATION_FILE"),
            help="Write the verdict and per-field PSI as compact JSON here (/dev/termination-log).",
        ),
    ] = None,
    s3_endpoint: Annotated[
        str | None, typer.Option(envvar=_env("S3_ENDPOINT"), help="S3 endpoint URL override.")
    ] = None,
) -> None:
    """Check a window of logged predictions for drift from the training data."""
    import mlflow

    from loanops.trainer.cli import run_drift
    from loanops.trainer.drift import DriftThresholds

    if tracking_uri:
        mlflow.set_tracking_uri(tracking_uri)
    report = run_drift(
        predictions=predictions,
        model_name=model,
        version=version,
        since=since,
        until=until,
        hours=hours,
        thresholds=DriftThresholds(psi=psi, alpha=alpha, min_samples=min_samples),
        s3_endpoint=s3_endpoint,
    )
    if output is not None:
        output.write_text(report.to_json())
    if termination_file is not None:
        termination_file.write_text(report.termination_message())
    table = Table(title=f"drift check of {report.title()}")
    for column in ("field", "test", "statistic", "p-value", "PSI", "drifted"):
        table.add_column(column)
    for result in report.fields:
        table.add_row(
            result.field,
            result.test,
            f"{result.statistic:.4f}",
            f"{result.p_value:.2e}",
            f"{result.psi:.4f}",
            "yes" if result.drifted else "",
        )
    Console().print(table)


@app.command("operator")
def run_operator(
    namespace: Annotated[
        list[str] | None,
        typer.Option(
            "--namespace",
            "-n",
            envvar=_env("OPERATOR_NAMESPACES"),
            help="Watch only this namespace (repeatable).",
        ),
    ] = None,
    all_namespaces: Annotated[
        bool,
        typer.Option(
            "--all-namespaces", "-A", help="Watch every namespace (the default without -n)."
        ),
    ] = False,
    standalone: Annotated[
        bool,
        typer.Option(
            envvar=_env("OPERATOR_STANDALONE"),
            help="Run without kopf peering (one replica only).",
        ),
    ] = False,
    liveness: Annotated[
        str | None,
        typer.Option(
            envvar=_env("OPERATOR_LIVENESS"),
            help="Serve kopf's liveness probe here, e.g. http://0.0.0.0:8081/healthz.",
        ),
    ] = None,
    metrics_port: Annotated[
        int | None,
        typer.Option(
            envvar=_env("OPERATOR_METRICS_PORT"), min=0, max=65535, help="Port of /metrics."
        ),
    ] = None,
) -> None:
    """Run the Kubernetes operator: reconcile LoanModels and DriftPolicies."""
    try:
        from loanops.operator.cli import run_operator as run
    except ImportError as error:
        raise NotSupportedError(
            f"the operator needs its dependency group ({error.name} is missing); "
            "install with `uv sync --group operator`."
        ) from error
    if all_namespaces and namespace:
        raise ConfigurationError("--all-namespaces and --namespace exclude each other.")
    run(
        namespaces=list(namespace or []),
        standalone=standalone,
        liveness=liveness,
        metrics_port=metrics_port,
    )


def main() -> None:
    """Run the command line, turning user errors into one line and exit code 2."""
    try:
        app(standalone_mode=False)
    except LoanopsError as error:
        if _state["debug"]:
            raise
        console.print(f"[bold red]error:[/bold red] {error.message}", highlight=False)
        sys.exit(error.exit_code)
    except typer.Abort:
        console.print("Aborted.")
        sys.exit(130)
    except Exception as error:
        import click

        if isinstance(error, click.ClickException):
            error.show()
            sys.exit(error.exit_code)
        if _state["debug"]:
            raise
        first = str(error).splitlines()[0] if str(error) else ""
        console.print(
            f"[bold red]error:[/bold red] unexpected {type(error).__name__}: {first} "
            "(run with --debug for the traceback)",
            highlight=False,
        )
        sys.exit(1)
