"""Models, sidecars and the deployment history."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.training.registry import (
    Deployment,
    ModelRecord,
    Registry,
    RegistryError,
    model_name,
)
from tests.training.fakes import write_fake_model


@pytest.fixture
def reg(tmp_path: Path) -> Registry:
    return Registry(tmp_path / "models", tmp_path / "var")


def add(reg: Registry, name: str) -> Path:
    return write_fake_model(reg.model_path(name), 0.9)


def deployed(reg: Registry, model: str, previous: str | None, action: str = "deploy") -> None:
    reg.append_deployment(
        Deployment(
            model=model,
            path=str(reg.model_path(model)),
            action=action,
            at="2026-11-27T12:00:00+00:00",
            by="worker:1:管理员",
            previous=previous,
            previous_path=str(reg.model_path(previous)) if previous else None,
        )
    )


def test_names_and_paths(reg: Registry):
    assert model_name("models/model-abc.tar.gz") == "model-abc"
    assert reg.model_path("model-abc") == reg.models_dir / "model-abc.tar.gz"
    for bad in ("../etc/passwd", "a/b", "", "x.tar.gz", "-rf"):
        with pytest.raises(RegistryError):
            reg.model_path(bad)


def test_sidecars_round_trip_and_minimal_records(reg: Registry):
    path = add(reg, "model-0123456789abcdef")
    record = reg.record_for("model-0123456789abcdef")
    assert record.fingerprint == "0123456789abcdef"  # a launcher model: fingerprint in its name
    assert record.created_at and record.path == str(path)
    assert reg.read_record("model-0123456789abcdef") is None  # nothing written yet

    reg.update_record(
        "model-0123456789abcdef", scores={"accuracy": 0.9, "macro_f1": 0.8}, holdout_hash="h1"
    )
    again = reg.read_record("model-0123456789abcdef")
    assert isinstance(again, ModelRecord)
    assert again.scores_on("h1") == {"accuracy": 0.9, "macro_f1": 0.8}
    assert again.scores_on("other") is None
    assert (reg.models_dir / "model-0123456789abcdef.json").exists()


def test_records_of_models_elsewhere_are_not_written(reg: Registry, tmp_path: Path):
    outside = write_fake_model(tmp_path / "elsewhere" / "model-x.tar.gz", 0.5)
    record = reg.update_record("model-x", outside, scores={"accuracy": 1.0})
    assert record.scores == {"accuracy": 1.0}
    assert not (outside.parent / "model-x.json").exists()
    assert not reg.sidecar_path("model-x").exists()


def test_list_models_newest_first(reg: Registry):
    for name, created in (("model-a", "2026-01-01"), ("model-b", "2026-03-01")):
        add(reg, name)
        reg.update_record(name, created_at=created)
    (reg.models_dir / "notes.txt").write_text("not a model")
    assert [r.name for r in reg.list_models()] == ["model-b", "model-a"]


def test_history_stack_rollback_goes_back_not_back_and_forth(reg: Registry):
    for name in ("A", "B", "C", "D"):
        add(reg, name)
    assert reg.deployed() is None and reg.rollback_target() is None

    deployed(reg, "B", previous="A")  # A served before (the launcher's model)
    assert reg.deployed()[0] == "B"
    assert reg.rollback_target()[0] == "A"

    deployed(reg, "C", previous="B")
    deployed(reg, "D", previous="C")
    assert [name for name, _ in reg.serving_stack()] == ["A", "B", "C", "D"]

    deployed(reg, "C", previous="D", action="rollback")
    assert reg.deployed()[0] == "C"
    assert reg.rollback_target()[0] == "B"
    deployed(reg, "B", previous="C", action="rollback")
    assert reg.deployed()[0] == "B"
    assert reg.rollback_target()[0] == "A"


def test_a_model_whose_file_is_gone_is_not_deployed(reg: Registry):
    add(reg, "A")
    add(reg, "B")
    deployed(reg, "B", previous="A")
    reg.model_path("B").unlink()
    assert reg.deployed() is None
    assert reg.resolve("A") == reg.model_path("A")
    assert reg.resolve("B") is None


def test_resolve_finds_models_outside_through_the_history(reg: Registry, tmp_path: Path):
    outside = write_fake_model(tmp_path / "repo-models" / "model-launcher.tar.gz", 0.9)
    add(reg, "B")
    reg.append_deployment(
        Deployment(
            model="B",
            path=str(reg.model_path("B")),
            action="deploy",
            at="t",
            by="x",
            previous="model-launcher",
            previous_path=str(outside),
        )
    )
    assert reg.resolve("model-launcher") == outside
    assert reg.rollback_target() == ("model-launcher", outside)


def test_a_damaged_history_reads_as_empty(reg: Registry):
    reg.state_dir.mkdir(parents=True)
    reg.deployments_file.write_text("{not json")
    assert reg.deployments() == []
