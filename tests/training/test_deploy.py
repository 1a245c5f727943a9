"""Deploying through the guard into a (fake) Rasa server; rollback."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.training.deploy import (
    DeployError,
    DeployRefused,
    RasaApi,
    current_model,
    deploy,
    rollback,
)
from bot.training.registry import Registry
from tests.training.conftest import CURRENT, CURRENT_QUALITY
from tests.training.fakes import FakeRasa, fake_scores, write_fake_model

HOLDOUT = "h-test"
INTENTS = ["greet", "report_noise"]


def candidate(
    registry: Registry, name: str, quality: float, *, broken: bool = False, compared: bool = True
) -> Path:
    """A trained and evaluated model, compared with the fake current model."""
    path = write_fake_model(registry.model_path(name), quality, broken=broken)
    registry.update_record(
        name,
        path,
        holdout_hash=HOLDOUT,
        scores=fake_scores(quality, INTENTS),
        compared_with={
            "model": CURRENT,
            "holdout_hash": HOLDOUT,
            "scores": fake_scores(CURRENT_QUALITY, INTENTS),
        }
        if compared
        else None,
    )
    return path


@pytest.fixture
def api(fake_rasa: FakeRasa) -> RasaApi:
    return RasaApi(fake_rasa.url, fake_rasa.token)


def test_the_current_model_is_what_rasa_serves(registry, api, fake_rasa):
    current = current_model(registry, api)
    assert (current.name, current.source) == (CURRENT, "rasa")
    assert current.path == registry.model_path(CURRENT)


def test_a_better_model_is_deployed_and_recorded(registry, api, fake_rasa):
    path = candidate(registry, "model-better", 0.9)
    deployment = deploy(registry, api, "model-better", by="worker:1:管理员")
    assert fake_rasa.puts == [str(path.resolve())]
    assert fake_rasa.serving == path.resolve()
    assert (deployment.model, deployment.previous, deployment.action) == (
        "model-better",
        CURRENT,
        "deploy",
    )
    assert deployment.guard["allowed"] and deployment.override_reason is None
    assert registry.deployments() == [deployment]
    record = registry.read_record("model-better")
    assert record.deployed_by == "worker:1:管理员" and record.deployed_at == deployment.at
    assert record.deploy_count == 1
    assert current_model(registry, api).name == "model-better"


def test_a_worse_model_is_refused_and_nothing_changes(registry, api, fake_rasa):
    candidate(registry, "model-worse", 0.5)
    with pytest.raises(DeployRefused) as refused:
        deploy(registry, api, "model-worse", by="admin")
    assert not refused.value.decision.allowed
    assert "宏平均F1下降" in str(refused.value)
    assert fake_rasa.puts == [] and registry.deployments() == []
    # a reason too short to say anything is no override
    with pytest.raises(DeployError, match="理由"):
        deploy(registry, api, "model-worse", by="admin", override_reason="试试")
    assert fake_rasa.puts == []


def test_an_admin_overrides_with_a_written_reason(registry, api, fake_rasa):
    candidate(registry, "model-worse", 0.5)
    reason = "新增的投诉类别只有这个模型认得，先上线，下周补数据"
    deployment = deploy(registry, api, "model-worse", by="admin", override_reason=reason)
    assert deployment.override_reason == reason
    assert not deployment.guard["allowed"]
    assert registry.read_record("model-worse").override_reason == reason
    assert fake_rasa.serving.name == "model-worse.tar.gz"


def test_a_model_never_compared_with_the_current_one_needs_an_override(registry, api):
    candidate(registry, "model-lonely", 0.99, compared=False)
    with pytest.raises(DeployRefused, match="无法比较"):
        deploy(registry, api, "model-lonely", by="admin")
    # once the current model has scores on the same held-out set, they are used
    registry.update_record(
        CURRENT, holdout_hash=HOLDOUT, scores=fake_scores(CURRENT_QUALITY, INTENTS)
    )
    assert deploy(registry, api, "model-lonely", by="admin").model == "model-lonely"


def test_a_model_that_fails_to_load_leaves_the_current_one_serving(registry, api, fake_rasa):
    candidate(registry, "model-broken", 0.95, broken=True)
    with pytest.raises(DeployError, match="HTTP 500"):
        deploy(registry, api, "model-broken", by="admin")
    assert fake_rasa.serving.name == f"{CURRENT}.tar.gz"
    assert registry.deployments() == []
    assert registry.read_record("model-broken").deployed_at is None


def test_the_serving_model_and_missing_files(registry, api):
    with pytest.raises(DeployError, match="已经在使用"):
        deploy(registry, api, CURRENT, by="admin")
    with pytest.raises(DeployError, match="不存在"):
        deploy(registry, api, "model-nowhere", by="admin")


def test_a_wrong_token_is_reported(registry, fake_rasa):
    candidate(registry, "model-better", 0.9)
    with pytest.raises(DeployError, match="令牌"):
        deploy(registry, RasaApi(fake_rasa.url, "wrong"), "model-better", by="admin")


def test_rollback_is_one_action(registry, api, fake_rasa):
    with pytest.raises(DeployError, match="没有可以回滚"):
        rollback(registry, api, by="admin")
    candidate(registry, "model-b", 0.9)
    deploy(registry, api, "model-b", by="admin")
    back = rollback(registry, api, by="admin", reason="居民反映答非所问")
    assert (back.action, back.model, back.previous) == ("rollback", CURRENT, "model-b")
    assert back.override_reason == "居民反映答非所问"
    assert fake_rasa.serving.name == f"{CURRENT}.tar.gz"
    assert registry.deployed()[0] == CURRENT
    assert registry.rollback_target() is None
