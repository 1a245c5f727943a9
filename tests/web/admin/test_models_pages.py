"""The model pages: admins only; start (one) training, follow it, compare,
deploy through the guard, roll back. Trainer, evaluator and Rasa are fakes."""

from __future__ import annotations

import asyncio
import re
import time
from dataclasses import replace
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy.engine import Engine

from bot.settings import Settings
from bot.training import jobs
from bot.training.registry import Registry
from bot.web.app import create_app
from bot.web.views.models import TRAINING_OPTIONS
from tests.training.conftest import CURRENT, fake_options
from tests.training.fakes import FakeRasa, trainer_command
from tests.web.conftest import ADMIN_PASSWORD, NOWHERE, SECRET, WebClient

JOB_ID = "20260101-000000-abcd"
# Every route of bot/web/views/models.py (method, path).
MODEL_ROUTES = [
    ("GET", "/admin/models"),
    ("POST", "/admin/models/train"),
    ("POST", "/admin/models/rollback"),
    ("GET", "/admin/models/jobs/{job_id}.json"),
    ("GET", "/admin/models/jobs/{job_id}"),
    ("GET", "/admin/models/{name}"),
    ("POST", "/admin/models/{name}/deploy"),
]
REASON = "只多了一条重新标注的例句，分数差异在噪声范围内"


# The app's registry, models and Rasa server are the temporary and fake ones.
@pytest.fixture
def web_settings(
    web_db_url: str,
    tmp_path: Path,
    training_settings: Settings,
) -> Settings:
    return replace(
        training_settings,
        database_url=web_db_url,
        tracker_database_url=f"sqlite:///{tmp_path / 'conversations.db'}",
        web_secret_key=SECRET,
        admin_password=ADMIN_PASSWORD,
        web_cookie_secure=False,
        wecom_api_base=NOWHERE,
        wechat_api_base=NOWHERE,
    )


@pytest.fixture
def web_app(web_settings: Settings, web_engine: Engine) -> web.Application:
    """The app with fake trainer and evaluator behind "start training"."""
    app = create_app(web_settings, engine=web_engine)
    app[TRAINING_OPTIONS] = fake_options(0.9, sleep=1.0)
    return app


def concrete(path: str) -> str:
    return path.replace("{job_id}", JOB_ID).replace("{name}", CURRENT)


def test_the_list_covers_every_model_route(web_app: web.Application) -> None:
    registered = {
        (route.method, re.sub(r"\{(\w+):[^}]+\}", r"{\1}", route.resource.canonical))
        for route in web_app.router.routes()
        if route.method != "HEAD" and route.handler.__module__ == "bot.web.views.models"
    }
    assert registered == set(MODEL_ROUTES)


@pytest.mark.parametrize("who", ["worker", "staff"])
async def test_non_admins_get_403_everywhere(client_factory, who, registry: Registry, fake_rasa):
    client: WebClient = await client_factory(who)
    for method, path in MODEL_ROUTES:
        if method == "GET":
            response = await client.get(concrete(path), allow_redirects=False)
        else:
            response = await client.post_form(concrete(path), {"override_reason": REASON})
        assert response.status == 403, (who, method, path, response.status)
    # and nothing happened
    assert jobs.list_jobs(registry) == [] and registry.deployments() == []
    assert fake_rasa.puts == []


async def test_the_logged_out_go_to_login(anon_client: WebClient, registry: Registry):
    for method, path in MODEL_ROUTES:
        response = await anon_client.request(method, concrete(path), allow_redirects=False)
        assert response.status == 302, (method, path)
        assert response.headers["Location"].startswith("/login")
    assert jobs.list_jobs(registry) == []


async def test_posts_need_the_csrf_token(admin_client: WebClient, registry: Registry):
    response = await admin_client.post_form("/admin/models/train", csrf=False)
    assert response.status == 403
    assert jobs.list_jobs(registry) == []


async def wait_finished(client: WebClient, job_id: str, timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        response = await client.get(f"/admin/models/jobs/{job_id}.json")
        assert response.status == 200
        data = await response.json()
        if data["finished"]:
            return data
        assert time.monotonic() < deadline
        await asyncio.sleep(0.2)


def job_id_of(response) -> str:
    assert response.status == 303, response.status
    match = re.match(r"/admin/models/jobs/([0-9a-f-]+)", response.headers["Location"])
    assert match, response.headers["Location"]
    return match.group(1)


async def test_train_follow_compare_and_deploy(admin_client: WebClient, registry, fake_rasa):
    page = await admin_client.get("/admin/models")
    html = await page.text()
    assert page.status == 200 and CURRENT in html and "开始训练" in html
    assert "PUT /model" in html and "models:" in html  # the note on several servers

    job_id = job_id_of(await admin_client.post_form("/admin/models/train"))
    running = await admin_client.get(f"/admin/models/jobs/{job_id}")
    html = await running.text()
    assert running.status == 200 and "已用时" in html and "admin-models.js" in html
    data = await wait_finished(admin_client, job_id)
    assert (data["status"], data["result"]) == ("done", "ready")
    assert data["elapsed_seconds"] > 0 and data["requested_by"].endswith("管理员")
    assert "train_command" not in data["options"]  # test hooks stay private

    html = await (await admin_client.get(f"/admin/models/jobs/{job_id}")).text()
    assert "评估对比" in html and "回归检查通过" in html and "宏平均F1" in html
    assert "report_noise ↔ dispute_neighbour" in html or "dispute_neighbour" in html
    model = data["model"]
    deployed = await admin_client.post_form(f"/admin/models/{model}/deploy")
    assert deployed.status == 303 and "done=deployed" in deployed.headers["Location"]
    assert fake_rasa.serving == registry.model_path(model)
    [deployment] = registry.deployments()
    assert deployment.by.endswith("管理员") and deployment.previous == CURRENT

    html = await (await admin_client.get("/admin/models?done=deployed")).text()
    assert "新模型已上线" in html and f"回滚到 {CURRENT}" in html
    rolled = await admin_client.post_form("/admin/models/rollback", {"reason": "试一下回滚"})
    assert rolled.status == 303
    assert fake_rasa.serving.name == f"{CURRENT}.tar.gz"
    assert registry.deployments()[-1].action == "rollback"


async def test_two_admins_starting_at_once_get_one_training(client_factory, registry: Registry):
    first, second = await client_factory("admin"), await client_factory("admin")
    responses = await asyncio.gather(
        first.post_form("/admin/models/train"), second.post_form("/admin/models/train")
    )
    ids = {job_id_of(r) for r in responses}
    assert len(ids) == 1
    assert sum("attached=1" in r.headers["Location"] for r in responses) == 1
    assert len(jobs.list_jobs(registry)) == 1
    [job_id] = ids
    attached = await second.get(f"/admin/models/jobs/{job_id}?attached=1")
    assert "没有另起一个" in await attached.text()
    # while it runs, the overview says so instead of offering another start
    overview = await (await first.get("/admin/models")).text()
    if not (await (await first.get(f"/admin/models/jobs/{job_id}.json")).json())["finished"]:
        assert "正在进行" in overview
    await wait_finished(first, job_id)


async def test_a_worse_model_needs_a_written_reason(
    web_app: web.Application, admin_client: WebClient, registry, fake_rasa: FakeRasa
):
    web_app[TRAINING_OPTIONS].train_command = trainer_command(0.5)
    job_id = job_id_of(await admin_client.post_form("/admin/models/train"))
    data = await wait_finished(admin_client, job_id)
    model = data["model"]
    assert not data["guard"]["allowed"]
    html = await (await admin_client.get(f"/admin/models/jobs/{job_id}")).text()
    assert "回归检查不通过" in html and 'name="override_reason"' in html

    refused = await admin_client.post_form(f"/admin/models/{model}/deploy")
    assert refused.status == 409
    assert "拒绝上线" in await refused.text()
    short = await admin_client.post_form(f"/admin/models/{model}/deploy", {"override_reason": "急"})
    assert short.status == 409 and "理由" in await short.text()
    assert fake_rasa.puts == [] and registry.deployments() == []

    forced = await admin_client.post_form(
        f"/admin/models/{model}/deploy", {"override_reason": REASON}
    )
    assert forced.status == 303
    assert registry.deployments()[-1].override_reason == REASON
    html = await (await admin_client.get(f"/admin/models/{model}")).text()
    assert REASON in html and "使用中" in html


async def test_a_failed_training_shows_its_error(
    web_app: web.Application, admin_client: WebClient, registry, fake_rasa
):
    web_app[TRAINING_OPTIONS].train_command = trainer_command(crash=True)
    job_id = job_id_of(await admin_client.post_form("/admin/models/train", {"auto_deploy": "1"}))
    data = await wait_finished(admin_client, job_id)
    assert data["status"] == "failed"
    html = await (await admin_client.get(f"/admin/models/jobs/{job_id}")).text()
    assert "训练失败" in html and "ResourceExhaustedError" in html
    assert fake_rasa.puts == []


async def test_unknown_models_and_jobs(admin_client: WebClient):
    for path in ("/admin/models/model-nowhere", f"/admin/models/jobs/{JOB_ID}"):
        assert (await admin_client.get(path)).status == 404
    assert (await admin_client.get(f"/admin/models/jobs/{JOB_ID}.json")).status == 404
    assert (await admin_client.get("/admin/models/..%2Fetc")).status == 404
    assert (await admin_client.get("/static/admin-models.js")).status == 200
