"""One configuration everywhere (issue 12, part 1): ``Service()`` in a plain
Python process reads what the CLI reads, and the CLI imports the app from the
directory it runs in."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from servcore import Service, ServiceConfig
from servcore.errors import ConfigError
from tests.processes import ROOT, servcore_worker

APP = """
from servcore import Job, Service

service = Service()


@service.task("hello")
async def hello(job: Job) -> str:
    return f"hello {job.payload['name']}"
"""


def _isolate(monkeypatch: pytest.MonkeyPatch, directory: Path) -> None:
    monkeypatch.chdir(directory)
    for variable in ("SERVCORE_STORE", "SERVCORE_CONCURRENCY", "SERVCORE_CONFIG"):
        monkeypatch.delenv(variable, raising=False)


def test_service_reads_the_file_then_the_environment_and_explicit_arguments_win(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolate(monkeypatch, tmp_path)
    (tmp_path / "servcore.toml").write_text(
        'store = "sqlite:///from-file.db"\nconcurrency = 7\nlease = 12\n'
    )
    from_file = Service()
    assert (from_file.config.store, from_file.config.runtime.concurrency) == (
        "sqlite:///from-file.db",
        7,
    )
    assert from_file.config_file == tmp_path / "servcore.toml"

    monkeypatch.setenv("SERVCORE_CONCURRENCY", "5")
    monkeypatch.setenv("SERVCORE_STORE", "sqlite:///from-env.db")
    from_env = Service()
    assert (from_env.config.store, from_env.config.runtime.concurrency) == (
        "sqlite:///from-env.db",
        5,
    )
    assert from_env.config.runtime.lease == 12, (
        "what the environment leaves alone comes from the file"
    )

    assert Service("memory://").config.store == "memory://", "an explicit store wins"
    explicit = Service(config=ServiceConfig(concurrency=3))
    assert (explicit.config.store, explicit.config.runtime.concurrency) == (
        "sqlite:///servcore.db",
        3,
    )
    assert explicit.config_file is None, "an explicit config is the whole configuration"


def test_pyproject_and_servcore_config_are_found_as_the_cli_finds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _isolate(monkeypatch, tmp_path)
    (tmp_path / "pyproject.toml").write_text('[tool.servcore]\nstore = "sqlite:///py.db"\n')
    assert Service().config.store == "sqlite:///py.db"
    other = tmp_path / "elsewhere.toml"
    other.write_text('store = "sqlite:///other.db"\n')
    monkeypatch.setenv("SERVCORE_CONFIG", str(other))
    assert Service().config.store == "sqlite:///other.db"
    monkeypatch.setenv("SERVCORE_CONFIG", str(tmp_path / "missing.toml"))
    with pytest.raises(ConfigError, match=r"missing\.toml does not exist"):
        Service()


@pytest.mark.parametrize("found_by", ["current directory", "app dir"])
def test_an_app_and_a_worker_started_from_its_directory_agree(
    tmp_path: Path, found_by: str
) -> None:
    """The app enqueues with ``Service()`` and the environment; ``servcore
    worker myapp.jobs:service`` runs it, found from the directory it runs in
    or from ``--app-dir`` (env ``SERVCORE_APP_DIR``), not through PYTHONPATH."""
    package = tmp_path / "myapp"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "jobs.py").write_text(APP)
    env = {"SERVCORE_STORE": f"sqlite:///{tmp_path / 'app.db'}"}
    enqueue = textwrap.dedent(
        """
        import asyncio
        from myapp.jobs import service

        async def main():
            await service.start(workers=False)
            job = await service.enqueue("hello", {"name": "world"})
            print(job.id)
            await service.stop()

        asyncio.run(main())
        """
    )
    ran = subprocess.run(
        [sys.executable, "-c", enqueue],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{tmp_path}:{ROOT}", **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    job_id = int(ran.stdout.strip())
    run_in = tmp_path
    if found_by == "app dir":
        run_in = tmp_path / "somewhere-else"
        run_in.mkdir()
        env = {**env, "SERVCORE_APP_DIR": str(tmp_path)}
    with servcore_worker(run_in, "myapp.jobs:service", env=env) as worker:
        deadline = time.monotonic() + 20
        while (job := _job(tmp_path, job_id)) is None or job.status.value != "done":
            assert worker.process.poll() is None, worker.output()
            assert time.monotonic() < deadline, f"job {job_id} not done:\n{worker.output()}"
            time.sleep(0.05)
    assert job.result == "hello world"


def _job(directory: Path, job_id: int) -> object:
    service = Service(f"sqlite:///{directory / 'app.db'}", config=ServiceConfig())

    async def read() -> object:
        await service.start(workers=False)
        try:
            return await service.get_job(job_id)
        finally:
            await service.stop()

    return asyncio.run(read())
