"""The web UI in headless Chromium against the real stack: Redis, the API and a worker.

The tests run in order and share one stack and one browser: sign in, create a dataset,
upload studies, create labelsets and watch them finish; the viewer's canvas; stopping and
retrying a running job from the page; a read token's pages; signing out. Each page's
screenshot is written to ``tests/artifacts/ui``.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import nibabel as nib
import numpy as np
import pytest
from PIL import Image
from selenium.common.exceptions import StaleElementReferenceException, TimeoutException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import Select, WebDriverWait

from helpers.browser import ARTIFACTS
from helpers.service import SLOW_PARAMS, wait_for_stage, write_tiny_study
from softlabel.service.embedded import EmbeddedStack

pytestmark = [pytest.mark.redis, pytest.mark.slow]

DATASET = "phantoms"
CASE = "case1"
STUDY_SHAPE = (40, 96, 96)  # voxels: big enough to look at, a second of work
STOP_SHAPE = (96, 192, 192)  # voxels: its SLIC with SLOW_PARAMS runs for seconds, long enough to stop
WAIT_S = 120  # seconds any one thing may take in the browser


def shot(driver: Any, name: str, attempts: int = 3) -> Path:
    """A screenshot of the page into the test artifacts; a capture that times out (the renderer
    busy on a loaded 2-core machine: "not attached to an active page") is tried again."""
    path = ARTIFACTS / f"{name}.png"
    for attempt in range(attempts):
        try:
            driver.save_screenshot(str(path))
            return path
        except TimeoutException:
            if attempt == attempts - 1:
                raise
            time.sleep(1)
    return path


def wait(driver: Any, condition: Callable[[Any], Any], message: str, timeout_s: float = WAIT_S) -> Any:
    return WebDriverWait(driver, timeout_s, poll_frequency=0.2).until(condition, message)


def text_of(driver: Any, css: str) -> str:
    """The element's text, or "" while it is missing or being swapped by htmx."""
    try:
        found = driver.find_elements(By.CSS_SELECTOR, css)
        return found[0].text if found else ""
    except StaleElementReferenceException:
        return ""


def fill(driver: Any, form: str, values: dict[str, str]) -> None:
    for name, value in values.items():
        field = driver.find_element(By.CSS_SELECTOR, f"{form} [name={name}]")
        if field.tag_name == "select":
            Select(field).select_by_value(value)
        else:
            field.clear()
            field.send_keys(value)


def sign_in(driver: Any, base: str, token: str) -> None:
    driver.get(f"{base}/ui/login")
    driver.find_element(By.ID, "token").send_keys(token)
    driver.find_element(By.ID, "sign-in").click()
    wait(driver, lambda d: "/ui/login" not in d.current_url, "sign-in did not leave the sign-in page")


def sign_out(driver: Any) -> None:
    driver.find_element(By.ID, "sign-out").click()
    wait(driver, lambda d: "/ui/login" in d.current_url, "sign-out did not land on the sign-in page")


def row_status(driver: Any, case: str) -> str:
    return text_of(driver, f"#row-{case} td.status")


def csp_violations(driver: Any) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser") if "Content Security Policy" in entry["message"]]


@pytest.fixture(scope="module")
def api(stack: EmbeddedStack, admin: str) -> Any:
    with httpx.Client(base_url=stack.api_url, headers={"Authorization": f"Bearer {admin}"}, timeout=60) as client:
        yield client


def test_sign_in_create_dataset_upload_and_watch_labelsets_finish(
    browser: Any, stack: EmbeddedStack, admin: str, tmp_path: Path
) -> None:
    driver, base = browser, stack.api_url
    driver.get(f"{base}/ui/datasets")
    assert "/ui/login" in driver.current_url, "a page without a session must send the browser to sign in"
    shot(driver, "01-sign-in")
    sign_in(driver, base, admin)
    assert driver.current_url.endswith("/ui/datasets")

    fill(driver, "#create-dataset", {
        "name": "Phantoms", "dataset_id": DATASET, "classes": "background, csf, cortex, white, parcel",
        "channels": "A, B", "ignore": "0",
    })  # fmt: skip
    driver.find_element(By.CSS_SELECTOR, "#create-dataset button").click()
    wait(driver, lambda d: d.current_url.endswith(f"/ui/datasets/{DATASET}"), "no dataset page after create")

    # A study whose channels disagree: the engine's error appears next to the image files.
    good = write_tiny_study(tmp_path / "good", CASE, shape=STUDY_SHAPE)
    other = write_tiny_study(tmp_path / "other", "other", shape=(40, 96, 90))
    driver.find_element(By.ID, "images").send_keys(f"{good.images[0]}\n{other.images[1]}")
    driver.find_element(By.ID, "label").send_keys(str(good.label))
    driver.find_element(By.ID, "upload-button").click()
    wait(driver, lambda d: "shape" in text_of(d, "#images-error"), "no engine error next to the images")
    assert "refused (422)" in text_of(driver, "#upload-status")
    shot(driver, "02-upload-error")

    for name in ("images", "label"):
        driver.find_element(By.ID, name).clear()
    driver.find_element(By.ID, "images").send_keys("\n".join(str(p) for p in good.images))
    driver.find_element(By.ID, "label").send_keys(str(good.label))
    driver.find_element(By.ID, "upload-button").click()
    wait(driver, lambda d: "uploaded case1" in text_of(d, "#upload-status"), "the upload did not finish")
    assert driver.find_element(By.ID, "upload-progress").get_attribute("value") == "100"
    wait(driver, lambda d: CASE in text_of(d, "#studies tbody"), "the uploaded study is not listed")
    shot(driver, "03-dataset")

    for name, method, params in (("sp", "superpixel", {"n_segments": "150"}), ("gauss", "gaussian", {"sigma": "2"})):
        driver.get(f"{base}/ui/datasets/{DATASET}")
        fill(driver, "#create-labelset", {"name": name, "method": method, **params})
        driver.find_element(By.ID, "create-labelset-button").click()
        wait(driver, lambda d: d.current_url.endswith(f"/labelsets/{name}"), f"no labelset page for {name}")
        driver.execute_script("window.softlabelMarker = 1")  # gone if the page reloads
        wait(driver, lambda d: text_of(d, "#count-finished") == "1", f"labelset {name} did not finish")
        assert driver.execute_script("return window.softlabelMarker") == 1, "counts must update without a reload"
        assert row_status(driver, CASE) == "finished"
        shot(driver, f"04-labelset-{name}")
    driver.get(f"{base}/ui/datasets")
    shot(driver, "05-datasets")
    assert "phantoms" in text_of(driver, "#datasets")
    assert csp_violations(driver) == []


def canvas_pixels(driver: Any, canvas_id: str) -> np.ndarray:
    png = driver.find_element(By.ID, canvas_id).screenshot_as_png
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"), dtype=np.int16)


def redraw(driver: Any, action: Callable[[], None]) -> None:
    """Run ``action`` on a viewer control and wait until the viewer drew the change."""
    before = driver.find_element(By.ID, "viewer").get_attribute("data-draws")
    action()
    wait(driver, lambda d: d.find_element(By.ID, "viewer").get_attribute("data-draws") != before, "no redraw", 30)


def set_range(driver: Any, element_id: str, value: int) -> None:
    driver.execute_script(
        "const e = document.getElementById(arguments[0]); e.value = arguments[1];"
        "e.dispatchEvent(new Event('input', {bubbles: true}));", element_id, value,
    )  # fmt: skip


def test_viewer_shows_the_class_overlay(browser: Any, stack: EmbeddedStack) -> None:
    driver = browser
    driver.get(f"{stack.api_url}/ui/datasets/{DATASET}/studies/{CASE}?labelset=sp&compare=gauss")
    wait(driver, lambda d: d.find_element(By.ID, "viewer").get_attribute("data-ready")
         or d.find_element(By.ID, "viewer").get_attribute("data-error"), "the viewer did not load", 60)  # fmt: skip
    assert driver.find_element(By.ID, "viewer").get_attribute("data-error") is None
    class_select = Select(driver.find_element(By.ID, "class"))
    redraw(driver, lambda: class_select.select_by_value("2"))
    cortex = canvas_pixels(driver, "canvas-0")
    redraw(driver, lambda: class_select.select_by_value("3"))
    white = canvas_pixels(driver, "canvas-0")
    assert np.abs(cortex - white).sum(axis=2).astype(bool).mean() > 0.01, "the overlay must change with the class"
    redraw(driver, lambda: set_range(driver, "opacity", 0))
    bare = canvas_pixels(driver, "canvas-0")
    assert np.abs(white - bare).sum(axis=2).astype(bool).mean() > 0.01, "opacity 0 must remove the overlay"
    redraw(driver, lambda: set_range(driver, "opacity", 80))
    redraw(driver, lambda: driver.find_element(By.ID, "boundaries").click())
    with_boundaries = canvas_pixels(driver, "canvas-0")
    assert np.abs(with_boundaries - white).sum(axis=2).astype(bool).mean() > 0.01, "boundaries must show"
    shot(driver, "06-viewer")  # the README's picture (docs/img/viewer.png)
    redraw(driver, lambda: driver.find_element(By.ID, "hard").click())
    assert np.abs(canvas_pixels(driver, "canvas-0") - with_boundaries).sum() > 0, "the hard label must show"

    canvas = driver.find_element(By.ID, "canvas-0")  # click left of the centre: the first slice's rim
    ActionChains(driver).move_to_element_with_offset(canvas, -canvas.size["width"] // 4, -canvas.size["height"] // 3).click().perform()
    wait(driver, lambda d: text_of(d, "#probability").startswith("p(class 3) = "), "no probability under the cursor", 10)
    shown = float(text_of(driver, "#probability").split("= ")[1])
    x, y, z = (int(v) for v in driver.find_element(By.ID, "probability").get_attribute("data-voxel").split(","))
    soft = nib.load(stack.data_dir / "datasets" / DATASET / "labelsets" / "sp" / f"{CASE}.nii.gz")
    assert shown == pytest.approx(float(soft.dataobj[x, y, z, 3]), abs=1e-3), f"probability at voxel {(x, y, z)}"
    shot(driver, "07-viewer-hard-label")
    assert csp_violations(driver) == []


def test_stop_a_running_job_from_the_page_then_retry_it(
    browser: Any, stack: EmbeddedStack, api: Any, tmp_path: Path
) -> None:
    driver, base = browser, stack.api_url
    big = write_tiny_study(tmp_path, "big", shape=STOP_SHAPE)
    files = [("images", (p.name, p.read_bytes())) for p in big.images] + [("label", (big.label.name, big.label.read_bytes()))]
    assert api.post(f"/v1/datasets/{DATASET}/studies", files=files).status_code == 201
    assert api.post(f"/v1/datasets/{DATASET}/labelsets", json={"name": "slow", "params": SLOW_PARAMS}).status_code == 202
    job_id = api.get(f"/v1/datasets/{DATASET}/labelsets/slow/studies").json()["data"][0]["job_id"]
    wait_for_stage(api, job_id, "superpixels", timeout_s=WAIT_S)

    driver.get(f"{base}/ui/datasets/{DATASET}/labelsets/slow")
    driver.find_element(By.ID, "stop-big").click()
    wait(driver, lambda d: row_status(d, "big") == "failed (stopped)", "the job did not end stopped")
    assert api.get(f"/v1/jobs/{job_id}").json()["status"] == "stopped"
    shot(driver, "08-labelset-stopped")

    driver.find_element(By.ID, "retry-big").click()
    wait(driver, lambda d: row_status(d, "big") == "finished", "the retried job did not finish")
    job = api.get(f"/v1/jobs/{job_id}").json()
    assert job["status"] == "finished" and job["attempts"] >= 1
    shot(driver, "09-labelset-retried")


def test_read_token_sees_no_write_buttons_and_sign_out_ends_the_session(
    browser: Any, stack: EmbeddedStack
) -> None:
    driver, base = browser, stack.api_url
    driver.get(f"{base}/ui/tokens")
    fill(driver, "#mint", {"name": "reviewer", "scope": "read"})
    driver.find_element(By.CSS_SELECTOR, "#mint button").click()
    secret = wait(driver, lambda d: text_of(d, "#minted-secret"), "no minted secret shown")
    shot(driver, "10-tokens")
    driver.get(f"{base}/ui/tokens")
    assert secret not in driver.page_source, "the secret is shown once only"
    sign_out(driver)

    sign_in(driver, base, secret)
    driver.get(f"{base}/ui/datasets/{DATASET}")
    assert driver.find_elements(By.ID, "upload-study") == [] and driver.find_elements(By.ID, "create-labelset") == []
    driver.get(f"{base}/ui/datasets/{DATASET}/labelsets/slow")
    assert row_status(driver, "big") == "finished"
    assert driver.find_elements(By.CSS_SELECTOR, "button.retry, button.stop, #retry-all-failed") == []
    shot(driver, "11-read-only-labelset")
    driver.get(f"{base}/ui/tokens")
    assert "Error 403" in driver.page_source
    cookie = driver.get_cookie("softlabel_session")["value"]
    driver.get(f"{base}/ui/datasets/{DATASET}")
    sign_out(driver)

    for page in ("/ui/datasets", f"/ui/datasets/{DATASET}", f"/ui/datasets/{DATASET}/labelsets/sp"):
        driver.get(base + page)
        assert "/ui/login" in driver.current_url, f"{page} must refuse after sign-out"
    shot(driver, "12-signed-out")
    # The old cookie is worthless: the session ended server-side, not only in this browser.
    replay = httpx.get(f"{base}/ui/datasets", cookies={"softlabel_session": cookie}, follow_redirects=False)
    assert replay.status_code == 303 and replay.headers["location"].startswith("/ui/login")
    soft = f"{base}/v1/datasets/{DATASET}/labelsets/sp/studies/{CASE}/soft"
    assert httpx.get(soft, cookies={"softlabel_session": cookie}).status_code == 401
