"""servcore.toml and [tool.servcore]: read, checked, applied."""

from __future__ import annotations

from pathlib import Path

import pytest

from servcore import Service
from servcore.config_file import find_config_file, load_config_file
from servcore.errors import ConfigError
from servcore.retry import Backoff

FULL = """
service = "tests.pipeline_tasks:service"
store = "memory://"
port = 8080
concurrency = 3
queues = ["default", "email"]
lease = 12.5
backoff = { base = 2, max_delay = 60 }
tasks = ["tests.pipeline_tasks:tasks"]

[pipelines.email]
concurrency = 7
routes = "/email_jobs"

[pipelines.media]
handler = "tests.pipeline_tasks:transcode"
store = "memory://"
routes = "/media_jobs"

[[cron]]
expression = "0 3 * * *"
task = "send_email"
timezone = "Europe/Berlin"
queue = "email"
payload = { to = "ops@example.com" }

[[cron]]
expression = "@hourly"
task = "transcode"
queue = "media"
"""


def write(tmp_path: Path, text: str, name: str = "servcore.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_full_file_is_read_and_applied(tmp_path: Path) -> None:
    loaded = load_config_file(write(tmp_path, FULL))
    assert loaded.service == "tests.pipeline_tasks:service"
    assert loaded.settings["queues"] == ("default", "email")
    assert loaded.settings["backoff"] == Backoff(base=2, max_delay=60)
    assert [p.name for p in loaded.pipelines] == ["email", "media"]

    service = Service()
    loaded.apply(service)
    assert (
        service.config.http.port,
        service.config.runtime.concurrency,
        service.config.runtime.lease,
    ) == (
        8080,
        3,
        12.5,
    )
    assert service.registry.get("send_email") is not None
    assert service.concurrency_of("email") == 7
    assert service.concurrency_of("default") == 3
    assert service.pipeline("media") is not service
    assert service.pipeline("email") is service
    assert list(service.cron_entries) == ["send_email"]
    (media_entry,) = service.pipeline("media").cron_entries.values()
    assert media_entry.template.queue == "media"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("colour = 'blue'", "unknown key(s) colour"),
        ("port = '80'", "port must be an integer, not '80'"),
        ("queues = 'a,b'", "queues must be a list of strings"),
        ("backoff = { base = -1 }", "backoff: backoff needs base >= 0"),
        ("concurrency = 0", "concurrency must be between 1 and 10000"),
        ("[pipelines.email]\nthreads = 4", "pipelines.email: unknown key(s) threads"),
        ("[pipelines.email]\nconcurrency = 'x'", "pipelines.email.concurrency must be an integer"),
        ("[pipelines.email]\nroutes = '/jobs'", "would shadow the service's own"),
        ("[pipelines.email]\ntasks = 'tests.pipeline_tasks:not_a_registry'", "not a servcore"),
        ("[pipelines.email]\nhandler = 'nowhere.at_all:f'", "cannot import 'nowhere.at_all'"),
        ("[pipelines.'no good']\n", "a name is 1-100 letters"),
        ("[[cron]]\ntask = 'x'", "cron[0] needs 'expression'"),
        ("[[cron]]\nexpression = '61 * * * *'\ntask = 'x'", "minute 61 is out of range"),
        ("[[cron]]\nexpression = '@daily'\ntask = 'x'\nevery = 1", "cron[0]: unknown key(s)"),
        ("cron = 5", "cron must be an array of tables"),
        ("port = ", "is not valid TOML"),
        ("lease = inf", "lease must be a finite number of seconds"),
        ("backoff = { base = 'x' }", "backoff.base must be a number"),
        ("store = 'redis://x'", "store"),
        (
            "[pipelines.a]\nroutes = '/a_jobs'\n[pipelines.b]\nroutes = '/a_jobs'",
            "both want routes",
        ),
    ],
)
def test_mistakes_are_one_clear_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as caught:
        load_config_file(path).apply(Service())
    assert message in str(caught.value)
    assert str(path) in str(caught.value)


def test_the_file_is_found_in_servcore_toml_or_pyproject(tmp_path: Path) -> None:
    assert find_config_file(tmp_path) is None
    write(tmp_path, "[project]\nname = 'x'\n", "pyproject.toml")
    assert find_config_file(tmp_path) is None  # no [tool.servcore]
    pyproject = write(tmp_path, "[tool.servcore]\nconcurrency = 5\n", "pyproject.toml")
    assert find_config_file(tmp_path) == pyproject
    assert load_config_file(pyproject).settings == {"concurrency": 5}
    toml = write(tmp_path, "concurrency = 6\n")
    assert find_config_file(tmp_path) == toml  # servcore.toml comes first


def test_a_cron_entry_for_a_task_of_an_own_store_pipeline_lands_there(tmp_path: Path) -> None:
    text = """
[pipelines.media]
tasks = "tests.pipeline_tasks:media_tasks"
store = "memory://"

[[cron]]
expression = "@daily"
task = "thumbnail"
"""
    service = Service()
    load_config_file(write(tmp_path, text)).apply(service)
    assert service.cron_entries == {}
    assert list(service.pipeline("media").cron_entries) == ["thumbnail"]


def test_a_module_that_does_not_compile_is_one_line_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "servcore_broken_module.py").write_text("def broken(:\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = write(tmp_path, "[pipelines.a]\nhandler = 'servcore_broken_module:f'\n")
    with pytest.raises(ConfigError, match="cannot import 'servcore_broken_module': SyntaxError"):
        load_config_file(path).apply(Service())


def test_per_queue_concurrency_comes_from_the_file(tmp_path: Path) -> None:

    path = tmp_path / "servcore.toml"
    path.write_text("[queue_concurrency]\nemail = 8\n")
    assert load_config_file(path).settings == {"queue_concurrency": {"email": 8}}
    path.write_text('[queue_concurrency]\nemail = "eight"\n')
    with pytest.raises(ConfigError, match="queue_concurrency must be a table of integers"):
        load_config_file(path)
