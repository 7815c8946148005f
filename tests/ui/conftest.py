"""UI fixtures: the embedded stack (real Redis, the API under uvicorn, a real worker) and
headless Chromium driven by Selenium, with screenshots in ``tests/artifacts/ui``.

The browser is Debian's ``chromium`` with ``chromium-driver`` (``make test`` installs them when
it runs as root). WebGL2 comes from SwiftShader. When the browser cannot start, the tests
fail with the reason: they never skip.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers.browser import ARTIFACTS
from helpers.redis_server import redis_server, redis_url  # noqa: F401 (fixtures of test_forms)
from helpers.service import ADMIN
from softlabel.service.app import create_app
from softlabel.service.embedded import EmbeddedStack, admin_token
from softlabel.service.settings import Settings

with warnings.catch_warnings():  # Starlette 1.x warns that TestClient still wraps httpx
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

CHROMIUM = os.environ.get("SOFTLABEL_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("SOFTLABEL_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
CHROME_ARGS = [
    "--headless=new",
    "--no-sandbox",  # CI runs as root
    "--use-angle=swiftshader",  # WebGL2 on the CPU (NiiVue needs WebGL2)
    "--enable-unsafe-swiftshader",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",  # containers often give /dev/shm 64 MB
    "--window-size=1400,1000",
]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EmbeddedStack]:
    """Redis, the API and one CPU worker as child processes, on a fresh data folder."""
    data_dir = tmp_path_factory.mktemp("ui-stack")
    with pytest.MonkeyPatch.context() as env:
        for name in ("REDIS_URL", "SOFTLABEL_ADMIN_TOKEN", "SOFTLABEL_DATA_DIR", "SOFTLABEL_QUEUE"):
            env.delenv(name, raising=False)
        env.setenv("SOFTLABEL_JOB_RETRIES", "0")  # a stopped or failed job stays so until the page retries it
        with EmbeddedStack(data_dir=data_dir, port=0, workers=1, backend="cpu", log_dir=data_dir / "logs") as running:
            yield running


@pytest.fixture(scope="module")
def admin(stack: EmbeddedStack) -> str:
    return admin_token(stack.data_dir)


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    """Headless Chromium; a failure to start fails the test with the reason."""
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    missing = [path for path in (CHROMIUM, CHROMEDRIVER) if not shutil.which(path)]
    if missing:
        pytest.fail(f"the browser tests need {missing} (Debian: apt-get install chromium chromium-driver)", pytrace=False)
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    profile = tempfile.mkdtemp(prefix="softlabel-chromium-")
    for argument in [*CHROME_ARGS, f"--user-data-dir={profile}"]:
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as exc:
        pytest.fail(f"headless Chromium did not start: {exc.msg}", pytrace=False)
    driver.set_page_load_timeout(60)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


# --- the app in-process, for the tests without a browser --------------------------------------


@pytest.fixture
def settings(tmp_path: Path, redis_url: str) -> Settings:  # noqa: F811
    return Settings(data_dir=tmp_path / "data", admin_token=ADMIN, redis_url=redis_url, queue="softlabel-test")


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client
