"""Service commands: ``softlabel api``, ``up`` and the client commands a labeling team
uses (``datasets``, ``studies``, ``labelsets``, ``jobs``, ``tokens``).

Client commands find the API in ``--api``, ``SOFTLABEL_API_URL`` or the embedded stack running
on ``--data-dir``; the token in ``--token``, ``SOFTLABEL_TOKEN``, ``SOFTLABEL_ADMIN_TOKEN`` or
the embedded stack's ``admin-token`` file.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Optional, TypeVar

import httpx
import typer
from rich.console import Console
from rich.table import Table

from .client import ApiError, ChecksumError, SoftlabelClient
from .embedded import TOKEN_FILE, EmbeddedStack, running_stack

app = typer.Typer(add_completion=False)
datasets_app = typer.Typer(help="Create, list, import and delete datasets.", no_args_is_help=True)
studies_app = typer.Typer(help="Upload, list and delete studies.", no_args_is_help=True)
labelsets_app = typer.Typer(help="Create labelsets, watch their progress, download results.", no_args_is_help=True)
jobs_app = typer.Typer(help="Inspect, retry and cancel jobs.", no_args_is_help=True)
tokens_app = typer.Typer(help="Mint, list and revoke API tokens (admin).", no_args_is_help=True)
app.add_typer(datasets_app, name="datasets")
app.add_typer(studies_app, name="studies")
app.add_typer(labelsets_app, name="labelsets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(tokens_app, name="tokens")

console = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DEFAULT_DATA_DIR = Path("softlabel-data")

ApiOpt = Annotated[Optional[str], typer.Option("--api", envvar="SOFTLABEL_API_URL", help="API root URL")]
TokenOpt = Annotated[Optional[str], typer.Option("--token", envvar="SOFTLABEL_TOKEN", help="bearer token")]
DataDirOpt = Annotated[
    Path, typer.Option("--data-dir", envvar="SOFTLABEL_DATA_DIR", help="data directory of the embedded stack")
]


def reports_errors(func: F) -> F:
    """Turn API and connection errors into a one-line message and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except ApiError as exc:
            console.print(f"[red]error:[/red] {exc.status}: {exc.detail}", highlight=False, soft_wrap=True)
        except (ChecksumError, TimeoutError, ValueError, RuntimeError) as exc:
            console.print(f"[red]error:[/red] {exc}", highlight=False, soft_wrap=True)
        except httpx.TransportError as exc:
            console.print(
                f"[red]error:[/red] cannot reach the API ({exc}); start one with `softlabel up` or pass --api",
                highlight=False, soft_wrap=True,
            )  # fmt: skip
        raise typer.Exit(1)

    return wrapper  # type: ignore[return-value]


def resolve_token(token: str | None, data_dir: Path) -> str | None:
    """--token / SOFTLABEL_TOKEN, else SOFTLABEL_ADMIN_TOKEN, else the embedded stack's token file."""
    if token:
        return token
    if os.environ.get("SOFTLABEL_ADMIN_TOKEN"):
        return os.environ["SOFTLABEL_ADMIN_TOKEN"]
    path = data_dir / TOKEN_FILE
    return path.read_text().strip() if path.exists() else None


def make_client(api: str | None, token: str | None, data_dir: Path = DEFAULT_DATA_DIR) -> SoftlabelClient:
    """A client for --api, or for the embedded stack running on ``data_dir``."""
    if api is None:
        stack = running_stack(data_dir.resolve())
        if stack is None:
            raise ValueError("no API given: pass --api or SOFTLABEL_API_URL, or start one with `softlabel up`")
        api = stack.api_url
    return SoftlabelClient(api, resolve_token(token, data_dir))


def print_json(payload: Any) -> None:
    typer.echo(json.dumps(payload, indent=2))


# --- running the service ----------------------------------------------------------------------


@app.command("api")
def api_command(
    host: Annotated[str, typer.Option("--host", help="interface to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port")] = 8000,
    data_dir: Annotated[Optional[Path], typer.Option("--data-dir", help="overrides SOFTLABEL_DATA_DIR")] = None,
) -> None:
    """Run the REST API (uvicorn); Redis and workers run elsewhere."""
    import uvicorn

    if data_dir is not None:
        os.environ["SOFTLABEL_DATA_DIR"] = str(data_dir)
    uvicorn.run("softlabel.service.app:create_app", factory=True, host=host, port=port)


@app.command("up")
def up_command(
    host: Annotated[str, typer.Option("--host", help="interface the API listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="API port")] = 8000,
    data_dir: DataDirOpt = DEFAULT_DATA_DIR,
    workers: Annotated[int, typer.Option("--workers", min=0, help="worker processes")] = 1,
    backend: Annotated[str, typer.Option("--backend", help="workers' backend: auto | cpu | gpu")] = "auto",
) -> None:
    """Run everything on this machine: embedded Redis (unless REDIS_URL), the API and workers.

    Ctrl-C stops it cleanly: running jobs finish first (Ctrl-C again abandons them; they are
    requeued at the next start). A worker that exits on its own (a job crashed it) is restarted,
    and its job requeued once its lease expires; after 5 restarts of one worker within 10
    minutes, or when the API or Redis exits, everything stops.
    """
    if running_stack(data_dir.resolve()):
        console.print(f"[red]error:[/red] a stack already serves {data_dir}; stop it first")
        raise typer.Exit(1)
    signal.signal(signal.SIGTERM, signal.default_int_handler)  # `kill` stops it like Ctrl-C
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even where a background launch ignored SIGINT
    stack = EmbeddedStack(data_dir=data_dir, host=host, port=port, workers=workers, backend=backend)
    try:
        stack.start()
    except RuntimeError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(1) from None
    table = Table(show_header=False, box=None)
    table.add_row("API", stack.api_url)
    table.add_row("UI", f"{stack.api_url}/ui/ (sign in with the admin token below, or any API token)")
    table.add_row("docs", f"{stack.api_url}/docs")
    table.add_row("data", str(stack.data_dir))
    table.add_row("Redis", stack.redis.url if stack.redis else "REDIS_URL")
    table.add_row("admin token", "SOFTLABEL_ADMIN_TOKEN" if os.environ.get("SOFTLABEL_ADMIN_TOKEN") else str(stack.data_dir / TOKEN_FILE))
    table.add_row("workers", f"{workers} ({backend})")
    console.print(table)
    console.print("running; Ctrl-C to stop")
    try:
        while (gone := stack.supervise(on_restart=lambda line: console.print(f"[yellow]{line}[/yellow]"))) is None:
            time.sleep(0.5)
        console.print(f"[red]{gone} stopped; stopping the rest[/red]")
    except KeyboardInterrupt:
        console.print("stopping: workers finish their current job first (Ctrl-C again to abandon it)")
    try:
        stack.stop()
    except KeyboardInterrupt:
        stack.stop_workers()  # a second SIGTERM is RQ's cold shutdown
        stack.stop()
    console.print("stopped")


# --- datasets -----------------------------------------------------------------------------------


def _pairs(text: str) -> dict[str, int]:
    """``background=0,CSF=1`` -> {"background": 0, "CSF": 1}."""
    out = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        name, sep, value = item.partition("=")
        if not sep or not value.strip().lstrip("-").isdigit():
            raise ValueError(f"--labels: expected name=id pairs like background=0,CSF=1, got {item!r}")
        out[name.strip()] = int(value)
    return out


@datasets_app.command("create")
@reports_errors
def datasets_create(
    name: Annotated[str, typer.Argument(help="display name")],
    labels: Annotated[str, typer.Option("--labels", help="classes: background=0,CSF=1,GM=2")],
    channels: Annotated[str, typer.Option("--channels", help="channel names in order: T1,FLAIR")],
    ignore: Annotated[Optional[list[int]], typer.Option("--ignore", help="class id left out of evaluation")] = None,
    dataset_id: Annotated[Optional[str], typer.Option("--id", help="dataset id (default: generated)")] = None,
    api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:  # fmt: skip
    """Create an empty dataset."""
    channel_names = {str(i): c.strip() for i, c in enumerate(channels.split(",")) if c.strip()}
    with make_client(api, token, data_dir) as client:
        print_json(client.create_dataset(name=name, labels=_pairs(labels), channel_names=channel_names,
                                         ignore_classes=ignore or [], dataset_id=dataset_id))  # fmt: skip


@datasets_app.command("list")
@reports_errors
def datasets_list(api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Datasets with their study counts and labelsets."""
    with make_client(api, token, data_dir) as client:
        table = Table("id", "name", "K", "channels", "studies", "labelsets")
        for d in client.list_datasets():
            channels = ",".join(d["channel_names"].values())
            table.add_row(d["id"], d["name"], str(d["num_classes"]), channels, str(d["num_studies"]), ",".join(d["labelsets"]))
        Console().print(table)


@datasets_app.command("import")
@reports_errors
def datasets_import(
    source: Annotated[Path, typer.Argument(help="nnU-Net raw dataset: a .zip or a folder (zipped on the fly)")],
    dataset_id: Annotated[Optional[str], typer.Option("--id", help="dataset id (default: from its name)")] = None,
    name: Annotated[Optional[str], typer.Option("--name", help="display name")] = None,
    api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:  # fmt: skip
    """Import an nnU-Net raw dataset (dataset.json, imagesTr, labelsTr); all cases are validated."""
    with make_client(api, token, data_dir) as client, tempfile.TemporaryDirectory() as tmp:
        archive = source
        if source.is_dir():
            archive = Path(shutil.make_archive(str(Path(tmp) / source.name), "zip", source.parent, source.name))
        print_json(client.import_dataset(archive, dataset_id=dataset_id, name=name))


@datasets_app.command("delete")
@reports_errors
def datasets_delete(
    dataset_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR
) -> None:
    """Delete a dataset with its studies and results."""
    with make_client(api, token, data_dir) as client:
        client.delete_dataset(dataset_id)
    console.print(f"deleted {dataset_id}")


# --- studies ------------------------------------------------------------------------------------


@studies_app.command("upload")
@reports_errors
def studies_upload(
    dataset_id: Annotated[str, typer.Argument(help="dataset id")],
    image: Annotated[Optional[list[Path]], typer.Option("--image", help="one file per channel in order, or one 4D file")] = None,
    label: Annotated[Optional[Path], typer.Option("--label", help="label map")] = None,
    case_id: Annotated[Optional[str], typer.Option("--case", help="case id (default: the label file's name)")] = None,
    folder: Annotated[Optional[Path], typer.Option("--folder", help="upload every case of an imagesTr/labelsTr folder")] = None,
    api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:  # fmt: skip
    """Upload one study (--image ... --label ...) or a folder's new cases (--folder)."""
    with make_client(api, token, data_dir) as client:
        if folder is not None:
            done = client.upload_folder(dataset_id, folder, on_study=lambda case: console.print(f"uploaded {case}"))
            console.print(f"{len(done)} new studies in {dataset_id}")
        elif image and label:
            print_json(client.upload_study(dataset_id, images=image, label=label, case_id=case_id))
        else:
            raise ValueError("expected --image and --label, or --folder")


@studies_app.command("list")
@reports_errors
def studies_list(dataset_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Every study of a dataset."""
    with make_client(api, token, data_dir) as client:
        table = Table("case", "shape", "spacing (mm)", "channels", "uploaded")
        for s in client.iter_studies(dataset_id):
            spacing = "x".join(f"{v:g}" for v in s["spacing_mm"])
            table.add_row(s["case_id"], "x".join(map(str, s["shape"])), spacing, str(len(s["images"])), s["uploaded_at"])
        Console().print(table)


@studies_app.command("delete")
@reports_errors
def studies_delete(
    dataset_id: str, case_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR
) -> None:
    """Delete a study and its results."""
    with make_client(api, token, data_dir) as client:
        client.delete_study(dataset_id, case_id)
    console.print(f"deleted {dataset_id}/{case_id}")


# --- labelsets ----------------------------------------------------------------------------------


def _param(item: str) -> tuple[str, Any]:
    name, sep, value = item.partition("=")
    if not sep:
        raise ValueError(f"--param: expected name=value, got {item!r}")
    try:
        return name.strip(), json.loads(value)
    except json.JSONDecodeError:
        return name.strip(), value


def print_counts(state: dict[str, Any]) -> None:
    c = state["counts"]
    console.print(
        f"{state['name']}: {c['finished']}/{c['total']} finished, {c['queued']} queued, {c['running']} running, "
        f"{c['failed']} failed, {c['canceled']} canceled, {c['missing']} missing", highlight=False,
    )  # fmt: skip


def _watch(client: SoftlabelClient, dataset_id: str, name: str) -> dict[str, Any]:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as bar:
        task = bar.add_task(name, total=None)

        def update(state: dict[str, Any]) -> None:
            c = state["counts"]
            description = f"{name}: {c['running']} running, {c['queued']} queued, {c['failed']} failed"
            bar.update(task, total=c["total"], completed=c["finished"], description=description)

        return client.watch(dataset_id, name, on_update=update)


@labelsets_app.command("create")
@reports_errors
def labelsets_create(
    dataset_id: Annotated[str, typer.Argument(help="dataset id")],
    name: Annotated[str, typer.Argument(help="labelset name")],
    method: Annotated[str, typer.Option("--method", help="superpixel | gaussian | smoothing | hard")] = "superpixel",
    param: Annotated[Optional[list[str]], typer.Option("--param", help="n_segments=2000, sigma=2, dtype=float32...")] = None,
    watch: Annotated[bool, typer.Option("--watch", help="follow progress until every study is done")] = False,
    api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:  # fmt: skip
    """Queue one job per study with this configuration (finished results are reused)."""
    params = dict(_param(p) for p in param or [])
    with make_client(api, token, data_dir) as client:
        state = client.create_labelset(dataset_id, name, method=method, params=params)
        console.print(f"queued {state['enqueued']} job(s), reused {state['reused']} result(s)")
        print_counts(_watch(client, dataset_id, name) if watch else state)


@labelsets_app.command("status")
@reports_errors
def labelsets_status(
    dataset_id: str, name: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR
) -> None:
    """Counts of queued, running, finished and failed studies, and each failure's message."""
    with make_client(api, token, data_dir) as client:
        print_counts(client.labelset(dataset_id, name))
        for study in client.labelset_studies(dataset_id, name):
            if study["status"] in ("failed", "missing", "canceled"):
                console.print(f"  {study['case_id']}: {study['status']} {study['error'] or ''} (job {study['job_id']})")


@labelsets_app.command("watch")
@reports_errors
def labelsets_watch(
    dataset_id: str, name: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR
) -> None:
    """Follow a labelset until no study is queued or running."""
    with make_client(api, token, data_dir) as client:
        print_counts(_watch(client, dataset_id, name))


@labelsets_app.command("download")
@reports_errors
def labelsets_download(
    dataset_id: str,
    name: str,
    out: Annotated[Path, typer.Option("--out", help="output folder")],
    superpixels: Annotated[bool, typer.Option("--superpixels", help="also the superpixel maps")] = False,
    preview: Annotated[bool, typer.Option("--preview", help="also the preview pictures")] = False,
    api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:  # fmt: skip
    """Download finished soft labels (sha256-checked, resumable) and the manifest."""
    what = ["soft"] + (["superpixels"] if superpixels else []) + (["preview.png"] if preview else [])
    with make_client(api, token, data_dir) as client:
        paths = client.download_labelset(dataset_id, name, out, what=what)
        (out / "manifest.json").write_text(json.dumps(client.manifest(dataset_id, name), indent=2))
    console.print(f"{len(paths)} file(s) and manifest.json in {out}")


# --- jobs and tokens ----------------------------------------------------------------------------


@jobs_app.command("show")
@reports_errors
def jobs_show(job_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """A job's status, progress and error."""
    with make_client(api, token, data_dir) as client:
        print_json(client.job(job_id))


@jobs_app.command("retry")
@reports_errors
def jobs_retry(job_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Queue a failed, stopped or canceled job again."""
    with make_client(api, token, data_dir) as client:
        print_json(client.retry_job(job_id))


@jobs_app.command("cancel")
@reports_errors
def jobs_cancel(job_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Cancel a queued job, or stop a running one."""
    with make_client(api, token, data_dir) as client:
        print_json(client.cancel_job(job_id))


@tokens_app.command("create")
@reports_errors
def tokens_create(
    name: str,
    scope: Annotated[list[str], typer.Option("--scope", help="read | write | admin (repeatable)")],
    api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR,
) -> None:  # fmt: skip
    """Mint a token; its secret is printed once."""
    with make_client(api, token, data_dir) as client:
        print_json(client.create_token(name, scope))


@tokens_app.command("list")
@reports_errors
def tokens_list(api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Minted tokens (never their secrets)."""
    with make_client(api, token, data_dir) as client:
        print_json(client.list_tokens())


@tokens_app.command("revoke")
@reports_errors
def tokens_revoke(token_id: str, api: ApiOpt = None, token: TokenOpt = None, data_dir: DataDirOpt = DEFAULT_DATA_DIR) -> None:
    """Revoke a token: it gets 401 from now on."""
    with make_client(api, token, data_dir) as client:
        print_json(client.revoke_token(token_id))
