"""Training jobs: progress, single flight across processes, crashes.

The trainer and the evaluator are fakes (tests/training/fakes.py) run by the real
runner process (`python -m bot nlu run-job`); the Rasa server is FakeRasa.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import yaml

from bot import launcher
from bot.settings import PROJECT_ROOT
from bot.training import jobs
from bot.training.jobs import JobOptions, parse_progress, prepare_inputs, start_job, wait_for
from tests.training.conftest import CURRENT, fake_options

WAIT = 60


def run(registry, settings, options: JobOptions, by: str = "worker:1:管理员") -> jobs.Job:
    result = start_job(registry, settings, requested_by=by, options=options)
    assert result.started
    job = wait_for(registry, result.job.id, timeout=WAIT, poll=0.1)
    result.process.wait(timeout=WAIT)
    return job


def model_files(registry) -> list[str]:
    return sorted(p.name for p in registry.models_dir.glob("*.tar.gz"))


def test_progress_lines_of_rasa_train():
    bar = "Epochs:  45%|████▌     | 45/100 [00:30<00:37,  1.46it/s, t_loss=1.2, i_acc=0.9]"
    assert parse_progress(bar) == {"epoch": 45, "epochs": 100}
    line = (
        "2026-11-27 12:00:00 INFO rasa.engine.training.hooks - "
        "Starting to train component 'DIETClassifier'."
    )
    assert parse_progress(line) == {"stage_detail": "DIETClassifier"}
    assert parse_progress("Your Rasa model is trained and saved at 'x'.")["stage_detail"]
    assert parse_progress("2026 INFO something else") == {}


def test_inputs_fingerprint_like_the_launcher(tmp_path: Path):
    inputs = prepare_inputs(JobOptions(), tmp_path)
    assert inputs.fingerprint == launcher.training_fingerprint()
    assert inputs.config == PROJECT_ROOT / "config.yml"
    assert inputs.examples > 1000
    assert inputs.epochs == 100  # config.yml's DIET epochs


def test_an_epochs_override_trains_from_a_config_copy(tmp_path: Path):
    data = tmp_path / "nlu"
    data.mkdir()
    (data / "x.yml").write_text(
        'version: "3.1"\nnlu:\n- intent: greet\n  examples: |\n    - 你好\n    - 您好\n'
    )
    inputs = prepare_inputs(JobOptions(epochs=20, data_dirs=[str(data)]), tmp_path)
    assert inputs.config == tmp_path / "config.yml"
    config = yaml.safe_load(inputs.config.read_text(encoding="utf-8"))
    diet = next(c for c in config["pipeline"] if c["name"] == "DIETClassifier")
    assert diet["epochs"] == 20 and inputs.epochs == 20
    assert inputs.examples == 2
    assert inputs.fingerprint != launcher.training_fingerprint()
    with pytest.raises(jobs.JobError, match="不存在"):
        prepare_inputs(JobOptions(data_dirs=[str(tmp_path / "missing")]), tmp_path)


def test_a_job_trains_evaluates_and_leaves_the_decision(registry, training_settings, fake_rasa):
    job = run(registry, training_settings, fake_options(0.9))
    assert (job.status, job.result, job.error) == ("done", "ready", None)
    assert job.started_at and job.finished_at and job.elapsed_seconds() > 0
    assert (job.epoch, job.epochs) == (5, 5)  # from the progress bar
    assert job.current_model == CURRENT and job.current_model_source == "rasa"
    assert job.scores["new"]["accuracy"] == 0.9 and job.scores["current"]["accuracy"] == 0.85
    assert job.guard["allowed"]
    assert fake_rasa.puts == []  # not asked to deploy

    record = registry.read_record(job.model)
    assert registry.model_path(job.model).exists()
    assert record.trained_by == "worker:1:管理员" and record.job_id == job.id
    assert record.fingerprint == launcher.training_fingerprint()
    assert record.data_hash and record.config_hash and record.examples > 1000
    assert record.scores["macro_f1"] == 0.9 and record.holdout_hash == job.holdout_hash
    assert record.compared_with["model"] == CURRENT
    # the current model's scores are kept for the next comparison
    assert registry.read_record(CURRENT).scores_on(job.holdout_hash)["accuracy"] == 0.85
    assert not (registry.jobs_dir / job.id).exists()  # work folder removed
    assert "Epochs" in (registry.jobs_dir / f"{job.id}.log").read_text(encoding="utf-8")


def test_auto_deploy_of_a_better_model(registry, training_settings, fake_rasa):
    job = run(registry, training_settings, fake_options(0.9, auto_deploy=True))
    assert job.result == "deployed"
    assert fake_rasa.serving == registry.model_path(job.model)
    assert job.deployment["previous"] == CURRENT
    assert registry.deployed()[0] == job.model


def test_auto_deploy_refuses_a_worse_model(registry, training_settings, fake_rasa):
    job = run(registry, training_settings, fake_options(0.5, auto_deploy=True))
    assert (job.status, job.result) == ("done", "refused")
    assert "宏平均F1下降" in job.error
    assert fake_rasa.puts == [] and registry.deployments() == []
    assert fake_rasa.serving.name == f"{CURRENT}.tar.gz"
    # ... unless the admin said why
    reason = "端到端测试：只训练几轮，分数低是预期的"
    options = fake_options(0.5, auto_deploy=True, override_reason=reason)
    job = run(registry, training_settings, options)
    assert job.result == "deployed"
    assert registry.read_record(job.model).override_reason == reason


def test_two_requests_at_once_get_one_training(registry, training_settings):
    options = fake_options(0.9, sleep=1.5)
    barrier = threading.Barrier(4)
    results = []

    def request(who: str) -> None:
        barrier.wait()
        results.append(start_job(registry, training_settings, requested_by=who, options=options))

    threads = [threading.Thread(target=request, args=(f"admin{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    started = [r for r in results if r.started]
    assert len(started) == 1
    assert {r.job.id for r in results} == {started[0].job.id}
    assert len(list(registry.jobs_dir.glob("*.json"))) == 1
    job = wait_for(registry, started[0].job.id, timeout=WAIT, poll=0.1)
    started[0].process.wait(timeout=WAIT)
    assert job.status == "done"
    assert len(model_files(registry)) == 2  # the current one and one new one


def test_another_process_attaches_to_the_running_job(registry, training_settings):
    first = start_job(
        registry, training_settings, requested_by="page", options=fake_options(0.9, sleep=3)
    )
    env = jobs.runner_environment(training_settings)
    cli = subprocess.run(
        [sys.executable, "-m", "bot", "nlu", "retrain", "--background"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=WAIT,
    )
    assert cli.returncode == 0, cli.stderr
    assert f"已有训练任务 {first.job.id} 在运行" in cli.stdout
    assert cli.stdout.strip().splitlines()[-1] == first.job.id
    wait_for(registry, first.job.id, timeout=WAIT, poll=0.1)
    first.process.wait(timeout=WAIT)
    assert len(list(registry.jobs_dir.glob("*.json"))) == 1


def test_a_crashing_training_leaves_the_deployed_model_serving(
    registry, training_settings, fake_rasa
):
    before = model_files(registry)
    job = run(registry, training_settings, fake_options(crash=True, auto_deploy=True))
    assert job.status == "failed" and job.result is None
    assert "训练失败" in job.error and "退出码 1" in job.error
    assert any("ResourceExhaustedError" in line for line in job.log_tail)
    assert model_files(registry) == before  # nothing half-trained left behind
    assert fake_rasa.puts == [] and registry.deployments() == []
    assert fake_rasa.serving.name == f"{CURRENT}.tar.gz"
    # the lock is free again: the next request trains
    assert run(registry, training_settings, fake_options(0.9)).status == "done"


def test_a_runner_that_dies_is_reported_as_failed(registry, training_settings):
    result = start_job(registry, training_settings, requested_by="x", options=fake_options(sleep=4))
    wait_until(lambda: jobs.read_job(registry, result.job.id).status == "training")
    assert jobs.running_job(registry).id == result.job.id
    result.process.kill()  # no chance to clean up: the OS releases the lock
    result.process.wait(timeout=WAIT)
    job = jobs.read_job(registry, result.job.id)
    assert job.status == "failed" and "意外终止" in job.error
    assert jobs.running_job(registry) is None


def test_a_stopped_job_ends_as_failed(registry, training_settings, fake_rasa):
    result = start_job(
        registry, training_settings, requested_by="x", options=fake_options(sleep=20)
    )
    wait_until(lambda: jobs.read_job(registry, result.job.id).status == "training")
    assert jobs.stop_job(registry, result.job.id)
    result.process.wait(timeout=WAIT)
    job = jobs.read_job(registry, result.job.id)
    assert job.status == "failed" and "中止" in job.error
    assert fake_rasa.puts == []


def wait_until(condition, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def test_cli_usage_errors(training_settings):
    env = jobs.runner_environment(training_settings)
    retrain = [sys.executable, "-m", "bot", "nlu", "retrain"]
    for args in (
        ["--deploy", "--override-reason", "太短"],  # no reason to speak of
        ["--override-reason", "理由足够长足够长足够长"],  # an override without --deploy
    ):
        cli = subprocess.run(
            retrain + args, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, timeout=WAIT
        )
        assert cli.returncode == 2, cli.stdout + cli.stderr
    assert not registry_jobs(training_settings)


def registry_jobs(settings) -> list[Path]:
    return list((settings.model_registry_dir / "jobs").glob("*.json"))


def test_job_ids_are_checked(registry):
    with pytest.raises(ValueError):
        jobs.job_path(registry, "../../etc/passwd")
    assert jobs.read_job(registry, "20260101-000000-abcd") is None


def test_a_wrong_rasa_token_fails_the_job_before_training(registry, training_settings, fake_rasa):
    from dataclasses import replace

    settings = replace(training_settings, rasa_auth_token="not-the-token")
    job = run(registry, settings, fake_options(0.9, sleep=30, auto_deploy=True))
    assert job.status == "failed" and "令牌" in job.error
    assert job.training_seconds is None and model_files(registry) == [f"{CURRENT}.tar.gz"]


def test_a_job_running_on_another_machine_is_found_through_the_shared_lock(
    registry, training_settings, shared_state, monkeypatch
):
    """REDIS_URL: web apps on several machines share the registry (a volume) but not
    their file locks; the shared lock `training` says a job runs elsewhere."""
    monkeypatch.setattr(jobs, "_shared_state", lambda: shared_state)
    registry.jobs_dir.mkdir(parents=True, exist_ok=True)
    elsewhere = jobs.Job(
        id=jobs.new_job_id(), requested_by="other machine", created_at="2026-12-06T00:00:00Z"
    )
    elsewhere.status = "training"
    jobs.write_job(registry, elsewhere)
    assert shared_state.claim(jobs.SHARED_LOCK, elsewhere.id, 30)

    result = start_job(registry, training_settings, requested_by="x", options=fake_options())
    assert not result.started and result.job.id == elsewhere.id
    assert jobs.running_job(registry).id == elsewhere.id
    assert jobs.read_job(registry, elsewhere.id).status == "training"  # alive elsewhere
    # that runner died: its lock expired, and the job reads as failed
    shared_state.delete(jobs.SHARED_LOCK)
    assert jobs.read_job(registry, elsewhere.id).status == "failed"
    assert jobs.running_job(registry) is None


def test_the_runner_keeps_the_shared_lock_and_frees_it(shared_state, monkeypatch):
    monkeypatch.setattr(jobs, "_shared_state", lambda: shared_state)
    monkeypatch.setattr(jobs, "SHARED_LOCK_SECONDS", 0.6)
    assert shared_state.claim(jobs.SHARED_LOCK, "job-1", 0.6)
    stop = threading.Event()
    keeper = jobs.keep_shared_lock("job-1", stop)
    time.sleep(1.5)  # renewed meanwhile, or it would have expired
    assert shared_state.get(jobs.SHARED_LOCK) == "job-1"
    stop.set()
    keeper.join(timeout=5)
    assert shared_state.get(jobs.SHARED_LOCK) is None
