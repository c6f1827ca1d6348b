"""The CLI's commands against a real SQLite file, and its one-line errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import asyncpg
import pytest
from click.testing import CliRunner

from servcore.cli import _prepare, main
from tests.postgres import DSN, postgres_url, require_postgres


@pytest.fixture
def store_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cli.db'}"


def run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.output


def test_enqueue_then_list_and_get(store_url: str) -> None:
    code, output = run(
        "enqueue",
        "send_email",
        "--payload",
        '{"to": "a@example.com"}',
        "--store",
        store_url,
        "--max-attempts",
        "5",
        "--priority",
        "2",
    )
    assert code == 0, output
    job = json.loads(output)
    assert job["id"] == 1
    assert job["status"] == "queued"
    assert job["max_attempts"] == 5
    assert job["payload"] == {"task": "send_email", "to": "a@example.com"}
    run("enqueue", "later", "--run-at", "2030-01-01T00:00:00Z", "--store", store_url)

    code, output = run("jobs", "list", "--store", store_url)
    assert code == 0
    assert [json.loads(line)["id"] for line in output.splitlines()] == [2, 1]
    code, output = run("jobs", "list", "--after-id", "2", "--store", store_url)
    assert [json.loads(line)["id"] for line in output.splitlines()] == [1]
    code, output = run("jobs", "list", "--status", "scheduled", "--store", store_url)
    assert [json.loads(line)["task"] for line in output.splitlines()] == ["later"]

    code, output = run("jobs", "get", "1", "--store", store_url)
    assert code == 0
    assert json.loads(output)["priority"] == 2


def test_migrate_creates_the_schema(store_url: str) -> None:
    code, output = run("migrate", "--store", store_url)
    assert code == 0
    assert output.strip() == f"store ready: {store_url}"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["enqueue", "x", "--payload", "{bad"], "not valid JSON"),
        (["enqueue", "x", "--payload", "[1]"], "must be a JSON object"),
        (["enqueue", "x", "--run-at", "2030-01-01T00:00:00"], "no time zone"),
        (
            ["enqueue", "x", "--priority", "12"],
            "give a whole number from 0 to 9; 12 is out of range",
        ),
        (
            ["enqueue", "x", "--priority", "high"],
            "give a whole number from 0 to 9; 'high' is not one",
        ),
        (["enqueue", "x", "--timeout", "0"], "give a number of seconds more than 0 up to 604800"),
        (
            ["enqueue", "x", "--delay", "soon"],
            "give a number of seconds from 0 to 31536000; 'soon' is not a number",
        ),
        (["jobs", "list", "--status", "sleeping"], "'sleeping' is not one of"),
        (["jobs", "list", "--page", "0"], "give a whole number of at least 1; 0 is out of range"),
        (["jobs", "get", "zero"], "give a job id, a whole number such as 42; 'zero' is not one"),
        (["jobs", "get", "abc"], "give a job id, a whole number such as 42; 'abc' is not one"),
        (["jobs", "cancel", "0"], "give a job id, a whole number such as 42; 0 is out of range"),
        (["worker", "--concurrency", "many"], "give a whole number from 1 to 10000"),
        (["worker", "--lease", "0.5"], "give a number of seconds from 1 to 3600; 0.5 is out"),
        (["serve", "nocolon"], "write it as module:attribute"),
        (["serve", "no_such_module:service"], "cannot import 'no_such_module'"),
    ],
)
def test_bad_arguments_exit_2_with_a_clear_message(
    args: list[str], message: str, store_url: str
) -> None:
    code, output = run(*args, "--store", store_url) if args[0] != "serve" else run(*args)
    assert code == 2
    assert message in output
    assert "not a valid" not in output  # click's own words, which say nothing of what to type


def test_missing_job_and_unreachable_store_exit_1_with_one_line(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert run("migrate", "--store", url)[0] == 0
    code, output = run("jobs", "get", "42", "--store", url)
    assert (code, output) == (1, "Error: job 42 not found\n")
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, output = run("enqueue", "x", "--store", f"sqlite:///{blocker}/jobs.db")
    assert code == 1
    assert output.startswith("Error: cannot open SQLite database")
    assert output.count("\n") == 1
    code, output = run("jobs", "list", "--store", "redis://localhost")
    assert code == 1
    assert "unsupported store URL" in output


def test_environment_supplies_the_store(monkeypatch: pytest.MonkeyPatch, store_url: str) -> None:
    monkeypatch.setenv("SERVCORE_STORE", store_url)
    assert run("enqueue", "from_env")[0] == 0
    _code, output = run("jobs", "list", "--store", store_url)
    assert json.loads(output)["task"] == "from_env"


def test_queues_come_from_the_flag_or_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _prepare(None, queues=("video", "pdf")).config.runtime.queues == ("video", "pdf")
    monkeypatch.setenv("SERVCORE_QUEUES", "gpu, ,cpu")
    assert _prepare(None).config.runtime.queues == ("gpu", "cpu")
    code, output = run("worker", "--queues", " , ")
    assert code == 2
    assert "one or more queue names" in output


def test_cancel_and_retry_from_the_cli(store_url: str) -> None:
    code, output = run("enqueue", "later", "--delay", "3600", "--store", store_url)
    job_id = json.loads(output)["id"]
    code, output = run("jobs", "cancel", str(job_id), "--store", store_url)
    assert code == 0
    assert json.loads(output)["status"] == "cancelled"
    code, output = run("jobs", "cancel", str(job_id), "--store", store_url)
    assert code == 1
    assert "only queued, scheduled or running jobs can be cancelled" in output
    code, output = run("jobs", "retry", str(job_id), "--store", store_url)
    assert code == 0
    assert json.loads(output)["status"] == "queued"
    assert run("jobs", "retry", "999", "--store", store_url) == (1, "Error: job 999 not found\n")


def test_pause_resume_and_list_queues(store_url: str) -> None:
    assert run("enqueue", "encode", "--queue", "video", "--create", "--store", store_url)[0] == 0
    assert run("queues", "pause", "video", "--store", store_url) == (0, "queue video paused\n")
    code, output = run("queues", "list", "--store", store_url)
    assert json.loads(output)["paused"] is True
    assert run("queues", "resume", "video", "--store", store_url) == (0, "queue video resumed\n")
    code, output = run("queues", "list", "--store", store_url)
    assert json.loads(output)["paused"] is False
    code, output = run("queues", "pause", "no good", "--create", "--store", store_url)
    assert (code, output) == (
        2,
        "Error: a queue name is 1-100 letters, digits, '_', '-' or '.'\n",
    )


@pytest.mark.parametrize(
    "args",
    [
        ["jobs", "list"],
        ["jobs", "list", "--status", "failed"],
        ["jobs", "get", "1"],
        ["jobs", "cancel", "1"],
        ["jobs", "retry", "1"],
        ["queues", "list"],
        ["queues", "pause", "default"],
        ["queues", "resume", "default"],
    ],
)
def test_commands_on_stored_jobs_never_create_a_database(tmp_path: Path, args: list[str]) -> None:
    path = tmp_path / "nonexistent" / "dir" / "x.db"
    code, output = run(*args, "--store", f"sqlite:///{path}")
    assert code == 2
    assert output == (
        f"Error: no database at {path}: check --store (or SERVCORE_STORE); "
        "servcore enqueue or servcore migrate creates one\n"
    )
    assert not path.exists()
    assert not path.parent.exists()
    beside = tmp_path / "x.db"
    assert run(*args, "--store", f"sqlite:///{beside}")[0] == 2
    assert list(tmp_path.iterdir()) == []


def test_verbs_on_a_queue_that_never_existed_exit_2_unless_created(store_url: str) -> None:
    assert run("enqueue", "send", "--queue", "email", "--create", "--store", store_url)[0] == 0
    for args, verb in [
        (["queues", "pause", "emial"], "pause"),
        (["queues", "resume", "emial"], "resume"),
        (["enqueue", "send", "--queue", "emial"], "enqueue to"),
        (["jobs", "list", "--queue", "emial"], "list"),
    ]:
        code, output = run(*args, "--store", store_url)
        assert (code, output) == (
            2,
            "Error: no queue 'emial' has ever had jobs (known: default, email); "
            f"to {verb} it anyway, add --create\n",
        )
    code, output = run("queues", "list", "--store", store_url)
    assert [json.loads(line)["name"] for line in output.splitlines()] == ["email"]
    # Known queues need no --create: one with jobs, and "default" before any.
    assert run("queues", "pause", "email", "--store", store_url) == (0, "queue email paused\n")
    assert run("queues", "pause", "default", "--store", store_url)[0] == 0
    assert run("enqueue", "send", "--queue", "email", "--store", store_url)[0] == 0
    assert run("queues", "pause", "emial", "--create", "--store", store_url)[0] == 0
    assert run("queues", "resume", "emial", "--store", store_url)[0] == 0


def test_enqueue_with_the_app_refuses_a_task_it_has_no_handler_for(tmp_path: Path) -> None:
    (tmp_path / "shop.py").write_text(
        "from servcore import Service, ServiceConfig\n"
        "service = Service(config=ServiceConfig())\n"
        "@service.task('charge')\n"
        "async def charge(job): ...\n"
        "@service.task('refund', queue='money')\n"
        "async def refund(job): ...\n"
    )
    db = tmp_path / "shop.db"
    prefix = ["--app-dir", str(tmp_path), "enqueue"]
    code, output = run(*prefix, "chrage", "shop:service", "--store", f"sqlite:///{db}")
    assert (code, output) == (2, "Error: no handler for task 'chrage' (known: charge, refund)\n")
    assert not db.exists()  # refused before the store was opened
    code, output = run(*prefix, "refund", "shop:service", "--store", f"sqlite:///{db}")
    assert code == 0, output
    assert json.loads(output)["queue"] == "money"  # the task's queue: known, no --create


def test_commands_on_stored_jobs_never_create_postgres_tables() -> None:
    require_postgres()
    url = postgres_url()  # a schema of its own, dropped at the end of the run
    schema = url.rsplit("schema=", 1)[1]
    code, output = run("jobs", "list", "--store", url)
    assert (code, output) == (
        2,
        f"Error: no servcore tables in PostgreSQL schema {schema!r}: check --store (or "
        "SERVCORE_STORE); servcore enqueue or servcore migrate creates one\n",
    )

    async def tables() -> object:
        conn = await asyncpg.connect(DSN)
        try:
            return await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".servcore_jobs')
        finally:
            await conn.close()

    assert asyncio.run(tables()) is None
    assert run("migrate", "--store", url)[0] == 0
    assert run("jobs", "list", "--store", url) == (0, "")


def test_http_limits_come_from_the_file_the_environment_and_the_flags(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "servcore.toml").write_text(
        "header_timeout = 4\nbody_timeout = 20\nmax_connections = 300\nmax_header_bytes = 8192\n"
    )
    monkeypatch.setenv("SERVCORE_BODY_TIMEOUT", "12.5")
    monkeypatch.setenv("SERVCORE_KEEPALIVE_TIMEOUT", "2")
    http = _prepare(None, max_connections=50).config.http
    assert (http.header_timeout, http.body_timeout, http.keepalive_timeout) == (4, 12.5, 2)
    assert (http.max_connections, http.max_header_bytes) == (50, 8192)
    monkeypatch.setenv("SERVCORE_MAX_HEADER_BYTES", "100")
    code, output = run("serve", "--port", "1")
    assert code != 0
    assert "max_header_bytes must be >= 1024" in output
