"""``cadp-med evaluate``: measured utility, linkage privacy and fidelity of CADP releases.

torch, FrEIA, Opacus and matplotlib are imported inside the command body.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import typer

from cadp_med.cli._output import configure_logging, print_json, print_table, usage_errors
from cadp_med.errors import ConfigError


def _parse_eps(text: str) -> tuple[float, ...]:
    values = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            value = math.inf if part.lower() in ("inf", "infinity") else float(part)
        except ValueError as exc:
            raise ConfigError("--eps must be comma-separated numbers or 'inf'") from exc
        if not value > 0:
            raise ConfigError("every --eps value must be > 0")
        values.append(value)
    if not values:
        raise ConfigError("--eps needs at least one value")
    return tuple(values)


@contextlib.contextmanager
def _progress(total: int, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A Rich progress bar on stderr, advanced once per finished evaluation step."""
    if not enabled:
        yield lambda _msg: None
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TimeElapsedColumn

    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
    ) as bar:
        task = bar.add_task("evaluate", total=total)

        def step(message: str) -> None:
            bar.update(task, advance=1, description=message)

        yield step


def _model_and_data(
    model_path: Path | None,
    data_spec: str,
    *,
    target: str | None,
    train_epochs: int,
    seed: int,
    device: str,
    progress: bool,
    prior: str = "standard",
) -> tuple[Any, dict[str, Any], Any]:
    """Load (or, for digits / Fashion-MNIST without a model file, train) the cINN."""
    from cadp_med.evaluation import load_eval_data, train_eval_model
    from cadp_med.model import load_model, read_model_card
    from cadp_med.model.conditions import ConditionSchema

    if model_path is not None and model_path.exists():
        card = read_model_card(model_path)
        schema = ConditionSchema.from_dict(card["conditions"])
        size = int(card["architecture"]["size"])
        data = load_eval_data(data_spec, size=size, schema=schema, target=target, seed=seed)
        if data_spec.endswith(".npz") or data.schema.to_dict() == schema.to_dict():
            model, card = load_model(model_path, device=device)
            return model, card, data
        raise ConfigError("the model's condition schema does not match the data's labels")
    if data_spec.endswith(".npz"):
        raise ConfigError("--model must name an existing model for a slice set")
    if model_path is None:
        raise ConfigError("--model is required (a missing file is trained and written there)")
    data = load_eval_data(data_spec, seed=seed)
    train_eval_model(
        data,
        model_path,
        epochs=train_epochs,
        seed=seed,
        device=device,
        progress=progress,
        prior=prior,
    )
    model, card = load_model(model_path, device=device)
    return model, card, data


def evaluate(
    model: Path | None = typer.Option(
        None,
        "--model",
        "-m",
        help="cINN (.safetensors); for digits/fashion-mnist a missing "
        "file is trained first and written there.",
    ),
    data: str = typer.Option(
        "digits", "--data", "-d", help="digits, fashion-mnist[:DIR] or a slice set .npz."
    ),
    eps: str = typer.Option("0.5,1,2,3,6,inf", "--eps", help="Per-image epsilons; inf = no noise."),
    mechanism: str = typer.Option("laplace", "--mechanism", help="laplace or gaussian."),
    release: str = typer.Option(
        "default", "--release", help="default (model card's coarsest block) or all."
    ),
    postprocess: str = typer.Option("posterior-sample", "--postprocess"),
    temperature: float | None = typer.Option(
        None,
        "--temperature",
        min=0.0,
        max=1.0,
        help="Scale of the prior draws outside the released block (default: the model "
        "card's measured temperature).",
    ),
    delta: float | None = typer.Option(
        None, "--delta", help="Gaussian mechanism and DP-SGD delta (default 1/N)."
    ),
    output: Path = typer.Option(Path("report"), "--output", "-o", help="Report folder."),
    target: str | None = typer.Option(
        None, "--target", help="Slice sets: the condition field to predict (default plane)."
    ),
    candidates: int = typer.Option(20, "--candidates", help="Linkage candidates per query."),
    queries: int = typer.Option(300, "--queries", help="Privatized images attacked."),
    limit_train: int | None = typer.Option(None, "--limit-train"),
    limit_test: int | None = typer.Option(None, "--limit-test"),
    classifier_epochs: int = typer.Option(15, "--classifier-epochs"),
    batch_size: int = typer.Option(128, "--batch-size"),
    train_epochs: int = typer.Option(20, "--train-epochs", help="cINN epochs when training."),
    prior: str = typer.Option(
        "standard",
        "--prior",
        help="Prior of a cINN trained here: standard (N(0, I)) or conditional (N(mu(c), "
        "sigma(c)^2)).",
    ),
    dpsgd: bool = typer.Option(True, "--dpsgd/--no-dpsgd", help="Run the DP-SGD baseline."),
    categorical: bool = typer.Option(
        False, "--categorical", help="Run the paper's tabular experiment (diabetes) instead."
    ),
    seed: int = typer.Option(0, "--seed"),
    device: str = typer.Option("auto", "--device", help="auto, cpu or cuda."),
    json_output: bool = typer.Option(False, "--json", help="Print the report as JSON."),
) -> None:
    """Measure utility (p/o vs o/o vs DP-SGD), linkage privacy and fidelity per epsilon.

    Writes OUTPUT/report.json, OUTPUT/report.md and PNG plots.  The privatizer is seeded
    for this audit; never release data made with a known seed.
    """
    configure_logging()
    with usage_errors():
        from cadp_med.training import resolve_device

        epsilons = _parse_eps(eps)
        if mechanism not in ("laplace", "gaussian"):
            raise ConfigError("--mechanism must be laplace or gaussian")
        if candidates < 2 or queries < 1:
            raise ConfigError("--candidates must be >= 2 and --queries >= 1")
        if prior not in ("standard", "conditional"):
            raise ConfigError("--prior must be standard or conditional")
        device = resolve_device(device)
        if categorical:
            from cadp_med.evaluation._categorical import run_categorical

            with _progress(1 + len(epsilons), not json_output) as step:
                report = run_categorical(
                    output, epsilons=epsilons, mechanism=mechanism, seed=seed, progress=step
                )
            _finish(report, json_output, output, categorical=True)
            return

        from cadp_med.evaluation import (
            EvalSettings,
            TrainSpec,
            run_evaluation,
            steps,
            write_report,
        )

        settings = EvalSettings(
            epsilons=epsilons,
            mechanism=mechanism,
            release=release,
            postprocess=postprocess,
            temperature=temperature,
            delta=delta,
            candidates=candidates,
            queries=queries,
            limit_train=limit_train,
            limit_test=limit_test,
            seed=seed,
            device=device,
            classifier=TrainSpec(epochs=classifier_epochs, batch_size=batch_size, device=device),
            dpsgd=dpsgd,
        )
        net, card, dataset = _model_and_data(
            model,
            data,
            target=target,
            train_epochs=train_epochs,
            seed=seed,
            device=device,
            progress=not json_output,
            prior=prior,
        )
        with _progress(steps(settings), not json_output) as step:
            report = run_evaluation(net, card, dataset, settings, progress=step)
        write_report(report, output)
    _finish(report, json_output, output, categorical=False)


def _finish(report: dict[str, Any], json_output: bool, output: Path, *, categorical: bool) -> None:
    from cadp_med.evaluation._report import _json_safe, markdown_table

    body = {k: v for k, v in report.items() if not k.startswith("_")}
    if json_output:
        print_json(_json_safe(body))
        return
    if categorical:
        rows = [("ridge R^2 o/o", f"{report['ridge_r2_oo']:.3f}")]
        rows += [
            (f"ridge R^2 p/o eps={r['epsilon']}", f"{r['ridge_r2_po']:.3f}")
            for r in body["results"]
        ]
        print_table("cadp-med evaluate --categorical", [*rows, ("report", output)])
        return
    typer.echo(markdown_table(body))
    turn = body["turning_point"]
    where = ", ".join(f"{turn[a] or 'never'} ({a})" for a in turn)
    typer.echo(f"linkage top-1 > 50% from eps = {where}; report in {output}")
