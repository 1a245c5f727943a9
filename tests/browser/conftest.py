"""Browser tests: Debian's headless Chromium driven by Playwright for Python.

Never a downloaded browser (no `playwright install`): Chromium is /usr/bin/chromium
from Debian's packages (`make browser-deps` installs it as root); without it the
tests are skipped. The flags keep Chromium from reaching out to the network.

Servers the browser talks to run in a thread with an event loop of their own, since
Playwright's sync API must not run inside an asyncio loop. Screenshots go to a
temporary folder whose path a failing test's report names.
"""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
NO_CHROMIUM = (
    "/usr/bin/chromium is missing: the browser tests use Debian's chromium "
    "(as root: make browser-deps, or apt-get install chromium chromium-driver)"
)
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}

requires_chromium = pytest.mark.skipif(not CHROMIUM.exists(), reason=NO_CHROMIUM)


class LoopThread:
    """An asyncio loop in a daemon thread, for servers the browser talks to."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()
        self._runners: list[web.AppRunner] = []

    def run(self, coroutine: Any, timeout: float = 30) -> Any:
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self.loop)
        return future.result(timeout)

    def serve(self, make_app: Callable[[], web.Application]) -> str:
        """Start `make_app()` on 127.0.0.1 (free port); its base URL."""

        async def start() -> str:
            runner = web.AppRunner(make_app())
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self._runners.append(runner)
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
            return f"http://127.0.0.1:{port}"

        return self.run(start())

    def close(self) -> None:
        async def stop() -> None:
            for runner in reversed(self._runners):
                await runner.cleanup()

        try:
            self.run(stop())
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.loop.close()


@pytest.fixture
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium (one per test module)."""
    if not CHROMIUM.exists():
        pytest.skip(NO_CHROMIUM)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


class Screenshots:
    """Screenshots of the pages a test looks at, in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.pages: dict[str, Any] = {}

    def track(self, name: str, page: Any) -> Any:
        self.pages[name] = page
        return page

    def take(self, page: Any, name: str) -> Path:
        path = self.folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    def take_all(self, prefix: str) -> None:
        for name, page in self.pages.items():
            try:
                if not page.is_closed():
                    self.take(page, f"{prefix}-{name}")
            except Exception:  # the page or browser is gone: nothing to show
                pass


@pytest.fixture
def screenshots(tmp_path_factory: pytest.TempPathFactory, request: Any) -> Iterator[Screenshots]:
    """BROWSER_SCREENSHOTS=DIR keeps them (pytest prunes its old temporary folders)."""
    keep = os.environ.get("BROWSER_SCREENSHOTS")
    if keep:
        folder = Path(keep) / request.node.name
        folder.mkdir(parents=True, exist_ok=True)
    else:
        folder = tmp_path_factory.mktemp("screenshots")
    shots = Screenshots(folder)
    request.node.screenshots = shots
    yield shots


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: Any, call: Any) -> Iterator[None]:
    outcome = yield
    report = outcome.get_result()
    shots: Screenshots | None = getattr(item, "screenshots", None)
    if shots is not None and report.when == "call" and report.failed:
        shots.take_all("failure")
        report.sections.append(("screenshots", f"screenshots in {shots.folder}"))


def log_in_as_admin(page: Any, base_url: str, password: str, then: str = "/simulator") -> None:
    """The simulator is for logged-in admins: log in, landing on `then`."""
    page.goto(f"{base_url}/login?next={then}")
    page.fill("input[name=phone]", "admin")
    page.fill("input[name=password]", password)
    page.click("form[action='/login'] button[type=submit]")
    page.wait_for_url(f"{base_url}{then}")
