"""GET /model-server/model.tar.gz: what every Rasa server of a scaled set-up pulls."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from sqlalchemy.engine import Engine

from bot.settings import Settings
from bot.training.registry import Deployment, Registry
from bot.web.app import create_app

TOKEN = "model-server-token"


@pytest.fixture
async def model_server(
    web_settings: Settings, web_engine: Engine, tmp_path: Path
) -> tuple[str, Registry]:
    settings = replace(
        web_settings,
        rasa_auth_token=TOKEN,
        models_dir=tmp_path / "models",
        model_registry_dir=tmp_path / "registry",
    )
    server = TestServer(create_app(settings, engine=web_engine))
    await server.start_server()
    yield str(server.make_url("/model-server/model.tar.gz")), Registry.from_settings(settings)
    await server.close()


def deploy(registry: Registry, name: str, content: bytes) -> None:
    registry.models_dir.mkdir(parents=True, exist_ok=True)
    path = registry.model_path(name)
    path.write_bytes(content)
    registry.append_deployment(
        Deployment(
            model=name, path=str(path), action="deploy", at="2026-12-06T00:00:00+00:00", by="t"
        )
    )


async def test_model_is_served_with_etag_and_304_until_the_next_deploy(model_server) -> None:
    url, registry = model_server
    async with aiohttp.ClientSession() as http:
        async with http.get(url, params={"token": TOKEN}) as response:
            assert response.status == 404  # nothing trained or deployed yet
        deploy(registry, "model-20261206-000001", b"first model")
        async with http.get(url, params={"token": TOKEN}) as response:
            assert response.status == 200 and await response.read() == b"first model"
            etag = response.headers["ETag"]
            assert response.headers["filename"] == "model-20261206-000001.tar.gz"
        headers = {"If-None-Match": etag}
        async with http.get(url, params={"token": TOKEN}, headers=headers) as response:
            assert response.status == 304
        deploy(registry, "model-20261206-000002", b"second model")
        async with http.get(url, params={"token": TOKEN}, headers=headers) as response:
            assert response.status == 200 and await response.read() == b"second model"
            assert response.headers["ETag"] != etag


async def test_model_server_wants_the_token(model_server) -> None:
    url, _ = model_server
    async with aiohttp.ClientSession() as http:
        for params in ({}, {"token": "wrong"}):
            async with http.get(url, params=params) as response:
                assert response.status == 403
