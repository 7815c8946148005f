"""``softlabel demo``: the main job through the REST API, on the MNI152 brain.

Creates (or reuses) dataset ``mni152-demo``, uploads the study, creates labelset ``demo`` with
the default superpixel configuration, follows the job's progress and downloads the soft
labels, the superpixels and the preview. Running it again reuses the finished result.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

from softlabel.service.cli import DEFAULT_DATA_DIR, ApiOpt, DataDirOpt, TokenOpt, console, make_client, reports_errors
from softlabel.service.client import ApiError, SoftlabelClient
from softlabel.service.embedded import EmbeddedStack, running_stack
from softlabel.worker.engine.demo_data import MNI152_CLASSES, mni152_study, write_study

DATASET_ID = "mni152-demo"
CASE_ID = "mni152_001"
LABELSET = "demo"
POLL_S = 0.5  # seconds between progress polls

app = typer.Typer(add_completion=False)


def _ensure_dataset(client: SoftlabelClient, console: Console) -> None:
    try:
        client.get_dataset(DATASET_ID)
    except ApiError as exc:
        if exc.status != 404:
            raise
        client.create_dataset(
            dataset_id=DATASET_ID, name="MNI152 2009a demo", labels=MNI152_CLASSES, channel_names={"0": "T1"},
            ignore_classes=[0],
        )  # fmt: skip
        console.print(f"created dataset {DATASET_ID}")


def _ensure_study(client: SoftlabelClient, console: Console) -> None:
    try:
        client.get_study(DATASET_ID, CASE_ID)
        return
    except ApiError as exc:
        if exc.status != 404:
            raise
    with console.status("writing the MNI152 study (nilearn's template and tissue maps)"):
        study = mni152_study()
    with tempfile.TemporaryDirectory() as tmp:
        images, label = write_study(study, tmp, CASE_ID)
        with console.status(f"uploading {CASE_ID} ({', '.join(p.name for p in images)}, {label.name})"):
            client.upload_study(DATASET_ID, images=images, label=label, case_id=CASE_ID)
    console.print(f"uploaded study {CASE_ID} (197 x 233 x 189, 4 classes)")


def _follow(client: SoftlabelClient, console: Console) -> str:
    """Show the job's stage and fraction until it ends; returns the study's final status."""
    columns = (TextColumn("{task.description:<28}"), BarColumn(), TaskProgressColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("queued", total=1.0)
        while True:
            (study,) = [s for s in client.labelset_studies(DATASET_ID, LABELSET) if s["case_id"] == CASE_ID]
            if study["status"] not in ("queued", "running"):
                bar.update(task, completed=1.0 if study["status"] == "finished" else 0, description=study["status"])
                return study["status"] if not study["error"] else f"{study['status']}: {study['error']}"
            job = client.job(study["job_id"])
            progress = job["progress"]
            bar.update(task, completed=progress["fraction"], description=f"{job['status']}: {progress['stage'] or ''}")
            time.sleep(POLL_S)


def run_demo(client: SoftlabelClient, out_dir: Path, console: Console) -> list[Path]:
    """Run the demo against ``client``'s API; returns the downloaded files."""
    _ensure_dataset(client, console)
    _ensure_study(client, console)
    state = client.create_labelset(DATASET_ID, LABELSET)
    verb = "reused" if state["counts"]["finished"] == state["counts"]["total"] else "queued"
    console.print(f"labelset {LABELSET}: superpixel soft labels, {verb} ({state['params']})", highlight=False)
    status = _follow(client, console)
    if status != "finished":
        raise ValueError(f"{DATASET_ID}/{LABELSET}/{CASE_ID}: expected the job to finish, got {status}")
    paths = client.download_labelset(DATASET_ID, LABELSET, out_dir, what=("soft", "superpixels", "preview.png"))
    console.print(f"done: results in {out_dir.resolve()}", highlight=False, soft_wrap=True)
    for description, path in zip(("soft labels (X, Y, Z, K)", "superpixels", "preview"), paths):
        console.print(f"  {description:<26}{path.resolve()}", highlight=False, soft_wrap=True)
    console.print(f"viewer: {viewer_url(str(client.http.base_url))}", highlight=False, soft_wrap=True)
    return paths


def viewer_url(api_url: str) -> str:
    """The demo study in the web UI's viewer (sign in there with an API token)."""
    return f"{api_url.rstrip('/')}/ui/datasets/{DATASET_ID}/studies/{CASE_ID}?labelset={LABELSET}"


@app.command("demo")
@reports_errors
def demo_command(
    api: ApiOpt = None,
    token: TokenOpt = None,
    out: Annotated[Path, typer.Option("--out", help="folder for the downloaded results")] = Path("softlabel-demo"),
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:
    """The main job through the REST API: upload the MNI152 demo study, create a labelset,
    follow its progress, download the soft labels and the preview.

    Uses --api (or the stack `softlabel up` runs on --data-dir); otherwise starts its own.
    """
    stack = None
    if api is None and running_stack(data_dir.resolve()) is None:
        console.print(f"starting an embedded stack (data in {data_dir.resolve()}, logs in {data_dir / 'logs'})")
        stack = EmbeddedStack(data_dir=data_dir, port=0, workers=1, log_dir=data_dir / "logs").start()
        api = stack.api_url
    try:
        with make_client(api, token, data_dir) as client:
            run_demo(client, out, console)
    finally:
        if stack is not None:
            stack.stop()
            console.print("(the demo's own stack has stopped: run `softlabel up`, then `softlabel demo` again, to open the viewer)")
