"""Training jobs: one at a time, in the background, with visible progress.

Single flight across processes: whoever starts a job takes an exclusive
`flock` on `training.lock` (non-blocking) and writes the job id into it. A
second request that finds the lock taken reads that id and gets the running job
instead of starting another. The lock is handed to the job's runner process
(`python -m bot nlu run-job ID --lock-fd N`, the descriptor inherited) and so is
held exactly as long as the runner lives; when it dies, crash included, the
operating system releases it.

The runner trains (`rasa train`, output parsed for DIET's "Epochs: x/y"),
evaluates the current and the new model on the held-out set, writes the new
model's sidecar and, when asked, deploys it through the guard. Its state is
`jobs/<id>.json`, rewritten at most about once a second; the page and the CLI
poll it. A job that says it is running while nobody holds the lock died: it is
reported as failed. A failed job never touches the serving model.

With REDIS_URL (web apps on several machines, the registry on a shared volume)
the file lock only covers one machine, so the starter also claims the shared
lock `training` (bot.coordination) for the job's id, and the runner keeps it
alive while it works: a second start anywhere finds it and gets the running job.
A runner that dies stops renewing it, and it frees within SHARED_LOCK_SECONDS.
"""

from __future__ import annotations

import fcntl
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from bot.coordination import SharedState, SharedStateUnavailable, get_shared_state
from bot.settings import PROJECT_ROOT, Settings
from bot.training.evaluation import Scores, evaluate_in_subprocess, load_holdout
from bot.training.guard import check
from bot.training.registry import (
    Registry,
    read_json,
    utc_now_iso,
    write_json_atomic,
)
from bot.training.train import (
    PIPELINE_INPUTS,
    TRAINING_DATA,
    TrainingFailed,
    fingerprint,
    input_files,
    train,
)

JOB_ID_RE = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{4}$")
TERMINAL = frozenset({"done", "failed"})
STATUS_LABELS = {
    "queued": "排队中",
    "training": "训练中",
    "evaluating": "评估中",
    "deploying": "上线中",
    "done": "已完成",
    "failed": "失败",
}
RESULT_LABELS = {
    "ready": "已训练并评估，等待管理员决定是否上线",
    "deployed": "已上线",
    "refused": "未上线：新模型不如当前模型",
    "deploy_failed": "上线失败，当前模型继续使用",
}
LOG_TAIL_LINES = 40
WRITE_INTERVAL = 1.0  # seconds between progress writes
ATTACH_WAIT = 5.0  # how long a second request waits for the holder to name its job

# tqdm's bar of DIET (and TED): "Epochs:  45%|████▌     | 45/100 [00:30<00:37, ...]"
EPOCHS_RE = re.compile(r"Epochs:\s*\d+%\|[^|]*\|\s*(\d+)/(\d+)")
COMPONENT_RE = re.compile(r"Starting to train component '([^']+)'")
DATA_FILES = (".yml", ".yaml", ".md", ".json")


class JobError(Exception):
    """A step of the job failed; the message says which and why."""


class JobStopped(Exception):
    """The runner was asked to stop (SIGTERM, Ctrl-C)."""


@dataclass
class JobOptions:
    """What to train. Defaults: the project's training data and config.yml."""

    epochs: int | None = None  # DIET epochs instead of config.yml's (quick trials, tests)
    # default: settings.nlu_data_dir (where reviewed examples are exported),
    # data/rules, data/stories
    data_dirs: list[str] | None = None
    config: str | None = None  # default: config.yml
    domain: str | None = None  # default: domain.yml
    auto_deploy: bool = False  # deploy at the end, through the guard
    override_reason: str | None = None  # with auto_deploy: deploy even if worse
    # Replace the start of the trainer's / evaluator's command (tests: fakes).
    # Only code sets these, never a request.
    train_command: list[str] | None = None
    evaluate_command: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> JobOptions:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in (data or {}).items() if k in known})


@dataclass
class Job:
    id: str
    status: str = "queued"
    requested_by: str = ""
    options: dict[str, Any] = field(default_factory=dict)
    created_at: str = ""
    started_at: str | None = None
    finished_at: str | None = None
    updated_at: str = ""
    pid: int | None = None
    stage_detail: str = ""
    epoch: int | None = None
    epochs: int | None = None
    model: str | None = None
    current_model: str | None = None
    current_model_source: str | None = None
    holdout_hash: str | None = None
    scores: dict[str, Any] | None = None  # {"current": ..., "new": ...}
    guard: dict[str, Any] | None = None
    result: str | None = None
    deployment: dict[str, Any] | None = None
    error: str | None = None
    log_tail: list[str] = field(default_factory=list)
    training_seconds: float | None = None
    evaluation_seconds: float | None = None
    deploy_seconds: float | None = None

    @property
    def finished(self) -> bool:
        return self.status in TERMINAL

    @property
    def status_label(self) -> str:
        return STATUS_LABELS.get(self.status, self.status)

    @property
    def result_label(self) -> str:
        return RESULT_LABELS.get(self.result or "", "")

    def elapsed_seconds(self, now: datetime | None = None) -> float:
        start = _parse_time(self.started_at or self.created_at)
        if start is None:
            return 0.0
        end = _parse_time(self.finished_at) if self.finished else None
        end = end or now or datetime.now(timezone.utc)
        return max(0.0, (end - start).total_seconds())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def public_dict(self) -> dict[str, Any]:
        """What the page polls: no test hooks, plus labels and elapsed time."""
        data = self.to_dict()
        options = dict(data["options"])
        options.pop("train_command", None)
        options.pop("evaluate_command", None)
        data["options"] = options
        data["status_label"] = self.status_label
        data["result_label"] = self.result_label
        data["finished"] = self.finished
        data["elapsed_seconds"] = round(self.elapsed_seconds(), 1)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Job:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def new_job_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def job_path(registry: Registry, job_id: str) -> Path:
    if not JOB_ID_RE.match(job_id):
        raise ValueError(f"not a job id: {job_id!r}")
    return registry.jobs_dir / f"{job_id}.json"


def job_log_path(registry: Registry, job_id: str) -> Path:
    return job_path(registry, job_id).with_suffix(".log")


def write_job(registry: Registry, job: Job) -> None:
    job.updated_at = utc_now_iso("milliseconds")
    write_json_atomic(job_path(registry, job.id), job.to_dict())


SHARED_LOCK = "lock:training"  # holds the running job's id
SHARED_LOCK_SECONDS = 30.0


def _shared_state() -> SharedState | None:
    """The deployment's shared state when REDIS_URL is set (several machines)."""
    from bot.settings import get_settings

    return get_shared_state() if get_settings().redis_url else None


def _shared_holder() -> str | None:
    shared = _shared_state()
    if shared is None:
        return None
    try:
        return shared.get(SHARED_LOCK)
    except SharedStateUnavailable:
        return None


def _lock_is_free(registry: Registry) -> bool:
    registry.state_dir.mkdir(parents=True, exist_ok=True)
    with open(registry.training_lock_file, "a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
    # a job may run on another machine
    return _shared_holder() is None


def keep_shared_lock(job_id: str, stop: threading.Event) -> threading.Thread | None:
    """The runner: renew the shared lock until `stop`, then free it (None: no Redis)."""
    shared = _shared_state()
    if shared is None:
        return None

    def renew() -> None:
        while not stop.wait(SHARED_LOCK_SECONDS / 3):
            try:
                shared.replace(SHARED_LOCK, job_id, job_id, SHARED_LOCK_SECONDS)
            except SharedStateUnavailable:
                pass
        try:
            shared.delete(SHARED_LOCK, expected=job_id)
        except SharedStateUnavailable:
            pass

    thread = threading.Thread(target=renew, name="training-lock", daemon=True)
    thread.start()
    return thread


def read_job(registry: Registry, job_id: str, *, check_alive: bool = True) -> Job | None:
    """The job's state; a job that claims to run while nobody holds the lock died."""
    try:
        data = read_json(job_path(registry, job_id))
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    job = Job.from_dict(data)
    if check_alive and not job.finished and _lock_is_free(registry):
        # read again: it may have finished between the two looks
        data = read_json(job_path(registry, job_id))
        job = Job.from_dict(data) if isinstance(data, dict) else job
        if not job.finished:
            job.status = "failed"
            job.error = job.error or "训练进程意外终止（进程退出或服务重启），当前模型未受影响"
            job.finished_at = utc_now_iso("milliseconds")
            write_job(registry, job)
    return job


def list_jobs(registry: Registry, limit: int = 10) -> list[Job]:
    if not registry.jobs_dir.is_dir():
        return []
    ids = sorted(
        (p.stem for p in registry.jobs_dir.glob("*.json") if JOB_ID_RE.match(p.stem)),
        reverse=True,
    )
    jobs = [read_job(registry, job_id) for job_id in ids[:limit]]
    return [job for job in jobs if job is not None]


def running_job(registry: Registry) -> Job | None:
    """The job holding the training lock, if any."""
    if _lock_is_free(registry):
        return None
    job_id = _holder_id(registry)
    return read_job(registry, job_id, check_alive=False) if job_id else None


def _holder_id(registry: Registry) -> str | None:
    try:
        text = registry.training_lock_file.read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        text = ""
    if not JOB_ID_RE.match(text):
        text = _shared_holder() or ""  # a job on another machine
    return text if JOB_ID_RE.match(text) else None


# -- starting ----------------------------------------------------------------


@dataclass
class StartResult:
    job: Job
    started: bool  # False: another job was running, `job` is that one
    process: subprocess.Popen | None = None


def runner_environment(settings: Settings, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The runner reads its settings from the environment, like every process
    here: give it the starter's (the web app's may differ from os.environ)."""
    env = dict(os.environ if base is None else base)
    env.setdefault("PYTHONPATH", str(PROJECT_ROOT))
    env.update(
        {
            "RASA_URL": settings.rasa_url,
            "MODELS_DIR": str(settings.models_dir),
            "MODEL_REGISTRY_DIR": str(settings.model_registry_dir),
            "NLU_HOLDOUT_GLOB": settings.nlu_holdout_glob,
            "NLU_DATA_DIR": str(settings.nlu_data_dir),
            "RASA_TELEMETRY_ENABLED": "false",
            "TF_CPP_MIN_LOG_LEVEL": env.get("TF_CPP_MIN_LOG_LEVEL", "2"),
        }
    )
    if settings.rasa_auth_token:
        env["RASA_AUTH_TOKEN"] = settings.rasa_auth_token
    return env


def _try_lock(path: Path) -> int | None:
    """A descriptor holding an exclusive lock on `path`, or None when taken."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        return None
    return fd


def start_job(
    registry: Registry,
    settings: Settings,
    *,
    requested_by: str,
    options: JobOptions | None = None,
    env: Mapping[str, str] | None = None,
) -> StartResult:
    """Start a training job in a runner process, or return the one running."""
    registry.jobs_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + ATTACH_WAIT
    while (fd := _try_lock(registry.training_lock_file)) is None:
        holder = _holder_id(registry)
        job = read_job(registry, holder, check_alive=False) if holder else None
        if job is not None and not job.finished:
            return StartResult(job, started=False)
        # the holder has not named its job yet, or is just finishing
        if time.monotonic() > deadline:
            raise JobError("另一个训练任务正在启动或结束，请稍后再试")
        time.sleep(0.05)
    shared = _shared_state()
    claimed = False
    try:
        job = Job(
            id=new_job_id(),
            requested_by=requested_by,
            options=(options or JobOptions()).to_dict(),
            created_at=utc_now_iso("milliseconds"),
        )
        if shared is not None:
            try:
                claimed = shared.claim(SHARED_LOCK, job.id, SHARED_LOCK_SECONDS)
            except SharedStateUnavailable:
                claimed = False  # one machine's file lock is all there is now
            else:
                if not claimed:
                    holder = shared.get(SHARED_LOCK)
                    other = read_job(registry, holder, check_alive=False) if holder else None
                    if other is not None and not other.finished:
                        return StartResult(other, started=False)
                    raise JobError("另一个训练任务正在启动或结束，请稍后再试")
        os.ftruncate(fd, 0)
        os.pwrite(fd, job.id.encode("ascii"), 0)
        write_job(registry, job)
        log = open(job_log_path(registry, job.id), "ab")  # noqa: SIM115 - handed to the child
        try:
            process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bot",
                    "nlu",
                    "run-job",
                    job.id,
                    "--lock-fd",
                    str(fd),
                ],
                cwd=PROJECT_ROOT,
                env=runner_environment(settings, env),
                pass_fds=(fd,),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        finally:
            log.close()
        job.pid = process.pid
        return StartResult(job, started=True, process=process)
    except BaseException:
        # nothing started: free the lock for the next request
        os.ftruncate(fd, 0)
        if claimed and shared is not None:
            shared.delete(SHARED_LOCK, expected=job.id)
        raise
    finally:
        os.close(fd)  # the runner holds its inherited copy (and with it the lock)


def wait_for(
    registry: Registry,
    job_id: str,
    *,
    timeout: float | None = None,
    poll: float = 1.0,
    on_change: Callable[[Job], None] | None = None,
) -> Job:
    """Poll a job until it finishes (or `timeout` seconds pass)."""
    deadline = None if timeout is None else time.monotonic() + timeout
    last: tuple[Any, ...] | None = None
    while True:
        job = read_job(registry, job_id)
        if job is None:
            raise JobError(f"没有这个训练任务：{job_id}")
        seen = (job.status, job.stage_detail, job.epoch, job.result)
        if on_change is not None and seen != last:
            on_change(job)
            last = seen
        if job.finished:
            return job
        if deadline is not None and time.monotonic() > deadline:
            raise TimeoutError(f"training job {job_id} still {job.status} after {timeout} s")
        time.sleep(poll)


# -- the runner ---------------------------------------------------------------


def parse_progress(line: str) -> dict[str, Any]:
    """What a line of `rasa train` output says about progress, if anything."""
    match = EPOCHS_RE.search(line)
    if match:
        return {"epoch": int(match.group(1)), "epochs": int(match.group(2))}
    match = COMPONENT_RE.search(line)
    if match:
        return {"stage_detail": match.group(1)}
    if "Your Rasa model is trained and saved" in line:
        return {"stage_detail": "模型已打包"}
    return {}


def count_examples(data_dirs: Iterable[Path]) -> int:
    """Intent examples in the NLU files of the training data."""
    total = 0
    for file in input_files(data_dirs):
        if file.suffix not in (".yml", ".yaml"):
            continue
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8")) or {}
        except yaml.YAMLError:
            continue
        for item in data.get("nlu") or [] if isinstance(data, dict) else []:
            if isinstance(item, dict) and item.get("intent") and item.get("examples"):
                total += sum(
                    1 for line in str(item["examples"]).splitlines() if line.strip().startswith("-")
                )
    return total


def diet_epochs(config: Mapping[str, Any]) -> int | None:
    for component in config.get("pipeline") or []:
        if isinstance(component, dict) and component.get("name") == "DIETClassifier":
            return int(component.get("epochs", 300))  # Rasa's default
    return None


@dataclass
class TrainingInputs:
    config: Path
    domain: Path
    data_dirs: list[Path]
    epochs: int | None
    fingerprint: str
    data_hash: str
    config_hash: str
    examples: int


def prepare_inputs(
    options: JobOptions, workdir: Path, nlu_dir: Path | None = None
) -> TrainingInputs:
    """Resolve the options to files; an epochs override writes a config copy."""

    def resolve(path: str | Path) -> Path:
        p = Path(path)
        return p if p.is_absolute() else PROJECT_ROOT / p

    config = resolve(options.config or "config.yml")
    domain = resolve(options.domain or "domain.yml")
    defaults = [nlu_dir if nlu_dir is not None and d == "data/nlu" else d for d in TRAINING_DATA]
    data_dirs = [resolve(d) for d in (options.data_dirs or defaults)]
    for path in (config, domain, *data_dirs):
        if not path.exists():
            raise JobError(f"训练输入不存在：{path}")
    try:
        config_data = yaml.safe_load(config.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as error:
        raise JobError(f"配置文件无法读取：{config}：{error}") from None
    if options.epochs is not None:
        for component in config_data.get("pipeline") or []:
            if isinstance(component, dict) and component.get("name") == "DIETClassifier":
                component["epochs"] = int(options.epochs)
        config = workdir / "config.yml"
        config.write_text(yaml.safe_dump(config_data, allow_unicode=True), encoding="utf-8")
    # everything a model depends on, as for the launcher's models
    extras = [PROJECT_ROOT / p for p in PIPELINE_INPUTS]
    return TrainingInputs(
        config=config,
        domain=domain,
        data_dirs=data_dirs,
        epochs=diet_epochs(config_data) if isinstance(config_data, dict) else None,
        fingerprint=fingerprint([config, domain, *data_dirs, *extras]),
        data_hash=fingerprint(data_dirs),
        config_hash=fingerprint([config]),
        examples=count_examples(data_dirs),
    )


class _Runner:
    """Runs one job in this process (the runner process), writing its state."""

    def __init__(self, registry: Registry, settings: Settings, job: Job) -> None:
        self.registry = registry
        self.settings = settings
        self.job = job
        self.options = JobOptions.from_dict(job.options)
        self.tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self.child: subprocess.Popen | None = None
        self._last_write = 0.0

    def save(self, force: bool = True) -> None:
        now = time.monotonic()
        if force or now - self._last_write >= WRITE_INTERVAL:
            self.job.log_tail = list(self.tail)
            write_job(self.registry, self.job)
            self._last_write = now

    def stage(self, status: str, detail: str = "") -> None:
        self.job.status = status
        self.job.stage_detail = detail
        label = STATUS_LABELS.get(status, status)
        print(f"[{utc_now_iso('milliseconds')}] {label} {detail}", flush=True)
        self.save()

    # -- steps --

    def train(self, inputs: TrainingInputs, name: str, workdir: Path) -> Path:
        env = dict(os.environ)
        env.update(
            {
                "LOG_LEVEL": "INFO",  # Rasa hides DIET's progress bar below INFO
                "PYTHONUNBUFFERED": "1",
                "RASA_TELEMETRY_ENABLED": "false",
            }
        )
        env.setdefault("PYTHONPATH", str(PROJECT_ROOT))
        self.job.epochs = inputs.epochs

        def started(child: subprocess.Popen) -> None:
            self.child = child

        try:
            model = train(
                inputs.config,
                inputs.domain,
                inputs.data_dirs,
                workdir,
                name,
                env=env,
                command=self.options.train_command,
                on_start=started,
                on_line=self._line,
            )
        except TrainingFailed as failed:
            raise JobError(str(failed)) from None
        # (stopped meanwhile: run() kills the child it still knows)
        self.child = None
        return model

    def _line(self, line: str) -> None:
        line = line.rstrip()
        if not line:
            return
        update = parse_progress(line)
        if "epoch" in update:
            # one bar per trained model; keep the last line of a bar only
            if self.tail and EPOCHS_RE.search(self.tail[-1]):
                self.tail.pop()
        self.tail.append(line[:300])
        for key, value in update.items():
            setattr(self.job, key, value)
        self.save(force=False)

    def run(self) -> None:
        from bot.training.deploy import (
            DeployError,
            DeployRefused,
            RasaApi,
            current_model,
            deploy,
        )

        job, registry = self.job, self.registry
        workdir = registry.jobs_dir / job.id
        workdir.mkdir(parents=True, exist_ok=True)
        try:
            job.pid = os.getpid()
            job.started_at = utc_now_iso("milliseconds")
            self.stage("training", "准备训练数据")
            api = RasaApi.from_settings(self.settings)
            # a server that refuses our token fails the job now, not after training
            current_model(registry, api)
            inputs = prepare_inputs(self.options, workdir, self.settings.nlu_data_dir)
            # sorts by time; the fingerprint says what it was trained from
            name = f"model-{job.id[:15]}-{inputs.fingerprint[:8]}"
            if registry.model_path(name).exists():
                name = f"{name}-{job.id[-4:]}"
            started = time.monotonic()
            trained = self.train(inputs, name, workdir)
            job.training_seconds = round(time.monotonic() - started, 1)
            registry.models_dir.mkdir(parents=True, exist_ok=True)
            path = registry.model_path(name)
            shutil.move(str(trained), path)
            job.model = name
            record = registry.record_for(name, path)
            record.created_at = utc_now_iso("milliseconds")
            record.fingerprint = inputs.fingerprint
            record.data_hash = inputs.data_hash
            record.config_hash = inputs.config_hash
            record.examples = inputs.examples
            record.epochs = inputs.epochs
            record.data_dirs = [str(d) for d in inputs.data_dirs]
            record.config_file = self.options.config or "config.yml"
            record.trained_by = job.requested_by
            record.job_id = job.id
            record.training_seconds = job.training_seconds
            registry.write_record(record)

            self.stage("evaluating", "在评估集上比较当前模型与新模型")
            started = time.monotonic()
            holdout = load_holdout(self.settings.nlu_holdout_glob)
            current = current_model(registry, api)
            job.current_model = current.name if current else None
            job.current_model_source = current.source if current else None
            current_scores = None
            current_record = None
            to_evaluate = [path]
            if current is not None and current.path is not None:
                current_record = registry.record_for(current.name, current.path)
                cached = current_record.scores_on(holdout.hash)
                if cached is None:
                    to_evaluate.append(current.path)
                else:
                    current_scores = Scores.from_dict(cached)
            holdout_hash, scores = evaluate_in_subprocess(
                to_evaluate,
                self.settings.nlu_holdout_glob,
                command=self.options.evaluate_command,
            )
            if holdout_hash != holdout.hash:
                raise JobError("评估集在评估期间发生了变化，请重新训练")
            new_scores = scores[str(path)]
            if current is not None and current.path is not None and current_scores is None:
                current_scores = scores[str(current.path)]
                registry.update_record(
                    current.name,
                    current.path,
                    holdout_hash=holdout.hash,
                    scores=current_scores.to_dict(),
                )
            decision = check(current_scores, new_scores, has_current=current is not None)
            job.evaluation_seconds = round(time.monotonic() - started, 1)
            job.holdout_hash = holdout.hash
            job.scores = {
                "current": current_scores.to_dict() if current_scores else None,
                "new": new_scores.to_dict(),
            }
            job.guard = decision.to_dict()
            registry.update_record(
                name,
                path,
                holdout_hash=holdout.hash,
                scores=new_scores.to_dict(),
                compared_with=(
                    {
                        "model": current.name,
                        "holdout_hash": holdout.hash,
                        "scores": current_scores.to_dict() if current_scores else None,
                    }
                    if current
                    else None
                ),
                guard=decision.to_dict(),
            )
            job.result = "ready"
            if self.options.auto_deploy:
                self.stage("deploying", "热替换到正在运行的 Rasa 服务器")
                started = time.monotonic()
                try:
                    deployment = deploy(
                        registry,
                        api,
                        name,
                        by=job.requested_by,
                        override_reason=self.options.override_reason,
                    )
                except DeployRefused as refused:
                    job.result = "refused"
                    job.error = str(refused)
                except DeployError as error:
                    job.result = "deploy_failed"
                    job.error = str(error)
                else:
                    job.result = "deployed"
                    job.deployment = deployment.to_dict()
                job.deploy_seconds = round(time.monotonic() - started, 1)
            job.status = "done"
            job.stage_detail = ""
        except JobStopped:
            job.status = "failed"
            job.error = "训练被中止，当前模型未受影响"
        except Exception as error:  # noqa: BLE001 - every failure ends as a failed job
            job.status = "failed"
            job.error = str(error) or type(error).__name__
        finally:
            if self.child is not None and self.child.poll() is None:
                self.child.kill()
                self.child.wait()
            job.finished_at = utc_now_iso("milliseconds")
            self.save()
            shutil.rmtree(workdir, ignore_errors=True)
            print(
                f"[{job.finished_at}] job {job.id}: {job.status} {job.result or ''} "
                f"{job.error or ''}",
                flush=True,
            )


def run_job(registry: Registry, settings: Settings, job_id: str) -> Job:
    """Run a queued job here (the runner process, holding the training lock)."""
    job = read_job(registry, job_id, check_alive=False)
    if job is None:
        raise JobError(f"没有这个训练任务：{job_id}")
    if job.status != "queued":
        raise JobError(f"训练任务 {job_id} 已经{job.status_label}")

    def stop(signum: int, frame: Any) -> None:
        raise JobStopped()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    done = threading.Event()
    keeper = keep_shared_lock(job.id, done)
    try:
        _Runner(registry, settings, job).run()
    finally:
        done.set()
        if keeper is not None:
            keeper.join(timeout=5)
    return job


def stop_job(registry: Registry, job_id: str) -> bool:
    """Ask a running job's runner to stop (SIGTERM); False when not running."""
    job = read_job(registry, job_id)
    if job is None or job.finished or not job.pid:
        return False
    try:
        os.kill(job.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    return True
