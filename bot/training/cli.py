"""`python -m bot nlu ACTION`: retrain, evaluate, deploy, rollback, models.

Registered by the `nlu` command group of bot/cli.py (`add_actions`). Exit codes:
0 done, 1 failed, 2 bad usage, 3 the guard refused the new model.
"""

from __future__ import annotations

import argparse
import fcntl
import getpass
import json
import sys
from pathlib import Path

from bot.settings import get_settings
from bot.training.registry import ModelRecord, Registry, RegistryError

EXIT_REFUSED = 3


def add_actions(sub: argparse._SubParsersAction) -> None:
    """Add the training actions to the `nlu` command's subparsers."""
    retrain = sub.add_parser(
        "retrain",
        help="train a new model in the background, compare it with the current one, "
        "optionally deploy it",
        description="Train a model from the training data (one training at a time: if one "
        "is running, follow it), evaluate it and the current model on the held-out set, "
        "and with --deploy hot-swap it into the running Rasa server when it is not worse.",
    )
    retrain.add_argument("--deploy", action="store_true", help="deploy when the guard allows")
    retrain.add_argument(
        "--override-reason",
        metavar="TEXT",
        help="with --deploy: deploy even if the new model is worse (>= 10 characters, recorded)",
    )
    retrain.add_argument("--epochs", type=int, help="DIET epochs instead of config.yml's")
    retrain.add_argument(
        "--data",
        nargs="+",
        metavar="DIR",
        help="training data folders (default: data/nlu data/rules data/stories)",
    )
    retrain.add_argument("--config", help="pipeline config (default: config.yml)")
    retrain.add_argument("--by", help="who asks (default: cli:<user>)")
    retrain.add_argument(
        "--background", action="store_true", help="start the job, print its id and return"
    )
    retrain.set_defaults(handler=_retrain)

    evaluate = sub.add_parser(
        "evaluate", help="score models on the held-out set (accuracy, macro-F1, confusions)"
    )
    evaluate.add_argument("models", nargs="+", metavar="MODEL", help="model name or file")
    evaluate.add_argument("--holdout", help="held-out files (default: NLU_HOLDOUT_GLOB)")
    evaluate.add_argument("--json-out", type=Path, help="write the scores as JSON here")
    evaluate.set_defaults(handler=_evaluate)

    deploy = sub.add_parser("deploy", help="hot-swap a model into the running Rasa server")
    deploy.add_argument("model", help="model name (see `nlu models`)")
    deploy.add_argument("--override-reason", metavar="TEXT", help="deploy even if worse")
    deploy.add_argument("--by", help="who deploys (default: cli:<user>)")
    deploy.set_defaults(handler=_deploy)

    rollback = sub.add_parser("rollback", help="deploy the previous model again")
    rollback.add_argument("--reason", help="why (recorded)")
    rollback.add_argument("--by", help="who rolls back (default: cli:<user>)")
    rollback.set_defaults(handler=_rollback)

    models = sub.add_parser("models", help="list the models with their scores")
    models.set_defaults(handler=_models)

    run_job = sub.add_parser("run-job")  # no help: internal, not listed
    run_job.add_argument("job_id")
    run_job.add_argument("--lock-fd", type=int, required=True)
    run_job.set_defaults(handler=_run_job)


def _by(args: argparse.Namespace) -> str:
    if args.by:
        return args.by
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _registry() -> Registry:
    return Registry.from_settings(get_settings())


# -- retrain -------------------------------------------------------------------


def _clock(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes:02d}:{secs:02d}"


def _print_progress(job) -> None:  # noqa: ANN001 - a jobs.Job
    training = job.status == "training" and job.epoch and job.epochs
    epoch = f" epoch {job.epoch}/{job.epochs}" if training else ""
    detail = f" {job.stage_detail}" if job.stage_detail else ""
    print(f"  [{_clock(job.elapsed_seconds())}] {job.status_label}{detail}{epoch}", flush=True)


def print_comparison(job) -> None:  # noqa: ANN001 - a jobs.Job
    from bot.training.evaluation import Scores

    scores = job.scores or {}
    new = Scores.from_dict(scores["new"]) if scores.get("new") else None
    current = Scores.from_dict(scores["current"]) if scores.get("current") else None
    if new is None:
        return
    print(
        f"\n评估集 {job.holdout_hash}（{new.examples} 条）：当前 {job.current_model or '—'}，"
        f"新 {job.model}"
    )

    def fmt(value: float | None) -> str:
        return "—" if value is None else f"{value:.3f}"

    def delta(a: float | None, b: float | None) -> str:
        return "" if a is None or b is None else f"{b - a:+.3f}"

    print(f"  {'':<28}{'当前':>8}{'新':>8}{'变化':>8}")
    for label, attr in (("accuracy", "accuracy"), ("macro-F1", "macro_f1")):
        a = getattr(current, attr) if current else None
        b = getattr(new, attr)
        print(f"  {label:<28}{fmt(a):>8}{fmt(b):>8}{delta(a, b):>8}")
    for intent in sorted(new.per_intent):
        a = current.per_intent.get(intent) if current else None
        b = new.per_intent[intent]
        print(f"  F1 {intent:<25}{fmt(a):>8}{fmt(b):>8}{delta(a, b):>8}")
    for label, s in (("当前", current), ("新", new)):
        if s and s.confused_pairs:
            pairs = ", ".join(f"{p.a}↔{p.b} {p.total}" for p in s.confused_pairs[:5])
            print(f"  最常混淆（{label}）: {pairs}")
    guard = job.guard or {}
    verdict = "通过" if guard.get("allowed") else "不通过"
    print(f"  回归检查：{verdict}")
    for reason in guard.get("reasons") or []:
        print(f"    - {reason}")
    for note in guard.get("notes") or []:
        print(f"    · {note}")


def _retrain(args: argparse.Namespace) -> int:
    from bot.training.guard import check_override_reason
    from bot.training.jobs import JobOptions, start_job, wait_for

    if args.override_reason is not None:
        if not args.deploy:
            print("--override-reason only makes sense with --deploy", file=sys.stderr)
            return 2
        try:
            check_override_reason(args.override_reason)
        except ValueError as error:
            print(error, file=sys.stderr)
            return 2
    settings = get_settings()
    registry = Registry.from_settings(settings)
    options = JobOptions(
        epochs=args.epochs,
        data_dirs=args.data,
        config=args.config,
        auto_deploy=args.deploy,
        override_reason=args.override_reason,
    )
    result = start_job(registry, settings, requested_by=_by(args), options=options)
    job = result.job
    if result.started:
        print(f"训练任务 {job.id} 已开始（日志 {registry.jobs_dir / (job.id + '.log')}）")
    else:
        print(
            f"已有训练任务 {job.id} 在运行（{job.requested_by} 发起），不再另起一个；"
            "跟踪它的进度。",
        )
    if args.background:
        print(job.id)
        return 0
    try:
        job = wait_for(registry, job.id, on_change=_print_progress)
    finally:
        if result.process is not None:
            result.process.wait()
    print_comparison(job)
    print(f"\n{job.status_label}：{job.result_label} 用时 {_clock(job.elapsed_seconds())}")
    if job.error:
        print(job.error, file=sys.stderr)
    if job.status == "failed":
        for line in job.log_tail[-15:]:
            print(f"  | {line}", file=sys.stderr)
        return 1
    if job.result == "refused":
        return EXIT_REFUSED
    return 1 if job.result == "deploy_failed" else 0


# -- evaluate ------------------------------------------------------------------


def _model_file(registry: Registry, text: str) -> Path:
    path = Path(text)
    if path.exists():
        return path.resolve()
    try:
        resolved = registry.resolve(text)
    except RegistryError:
        resolved = None
    if resolved is None:
        raise SystemExit(f"no such model: {text}")
    return resolved


def _evaluate(args: argparse.Namespace) -> int:
    from bot.training.evaluation import evaluate_models, load_holdout

    settings = get_settings()
    registry = Registry.from_settings(settings)
    holdout = load_holdout(args.holdout or settings.nlu_holdout_glob)
    files = [_model_file(registry, m) for m in args.models]
    results = evaluate_models(files, holdout)
    if args.json_out:
        args.json_out.write_text(
            json.dumps(
                {"holdout_hash": holdout.hash, "models": results}, ensure_ascii=False, indent=1
            ),
            encoding="utf-8",
        )
    for file, scores in results.items():
        print(
            f"{file}: accuracy {scores['accuracy']:.3f}, macro-F1 {scores['macro_f1']:.3f}, "
            f"fallback {scores['fallback_rate']:.1%} "
            f"({holdout.hash}, {scores['examples']} messages)"
        )
    return 0


# -- deploy, rollback, models ----------------------------------------------------


def _deploy(args: argparse.Namespace) -> int:
    from bot.training.deploy import DeployError, DeployRefused, RasaApi, deploy

    settings = get_settings()
    registry = Registry.from_settings(settings)
    try:
        deployment = deploy(
            registry,
            RasaApi.from_settings(settings),
            args.model,
            by=_by(args),
            override_reason=args.override_reason,
        )
    except DeployRefused as refused:
        print(f"拒绝上线：{refused}（写明理由后可用 --override-reason 强制上线）", file=sys.stderr)
        return EXIT_REFUSED
    except (DeployError, RegistryError) as error:
        print(f"上线失败：{error}", file=sys.stderr)
        return 1
    print(f"已上线 {deployment.model}（替换 {deployment.previous or '—'}）")
    return 0


def _rollback(args: argparse.Namespace) -> int:
    from bot.training.deploy import DeployError, RasaApi, rollback

    settings = get_settings()
    registry = Registry.from_settings(settings)
    try:
        deployment = rollback(
            registry, RasaApi.from_settings(settings), by=_by(args), reason=args.reason
        )
    except DeployError as error:
        print(f"回滚失败：{error}", file=sys.stderr)
        return 1
    print(f"已回滚到 {deployment.model}（替换 {deployment.previous or '—'}）")
    return 0


def _models(args: argparse.Namespace) -> int:
    from bot.training.deploy import RasaApi, current_model

    settings = get_settings()
    registry = Registry.from_settings(settings)
    current = current_model(registry, RasaApi.from_settings(settings))
    records: list[ModelRecord] = registry.list_models()
    if not records:
        print(f"no models in {registry.models_dir}")
    for record in records:
        mark = "*" if current and current.name == record.name else " "
        scores = record.scores or {}
        figures = (
            f"acc {scores['accuracy']:.3f} F1 {scores['macro_f1']:.3f}" if scores else "未评估"
        )
        deployed = f" 上线 {record.deployed_at} {record.deployed_by}" if record.deployed_at else ""
        print(f"{mark} {record.name}  {record.created_at}  {figures}{deployed}")
    if current is not None:
        print(f"\n* 正在使用：{current.name}（来源 {current.source}）")
    return 0


# -- the runner ------------------------------------------------------------------


def _run_job(args: argparse.Namespace) -> int:
    from bot.training.jobs import run_job

    try:
        # the inherited descriptor already holds the lock; anything else is a bug
        fcntl.flock(args.lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        print(f"run-job: no training lock on fd {args.lock_fd}: {error}", file=sys.stderr)
        return 2
    job = run_job(_registry(), get_settings(), args.job_id)
    return 0 if job.status == "done" else 1
