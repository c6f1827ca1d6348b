from __future__ import annotations

import pytest

from servcore.config import ServiceConfig, env_overrides
from servcore.errors import ConfigError


def test_defaults_follow_the_design() -> None:
    config = ServiceConfig()
    assert (config.store, config.http.host, config.http.port) == (
        "sqlite:///servcore.db",
        "127.0.0.1",
        4000,
    )
    assert config.runtime.concurrency >= 1
    assert config.runtime.queues == ("default",)
    assert config.runtime.max_result_bytes == 1024 * 1024


def test_max_result_bytes_is_read_from_the_environment() -> None:
    config = ServiceConfig.from_env({"SERVCORE_MAX_RESULT_BYTES": "2048"})
    assert config.runtime.max_result_bytes == 2048


def test_environment_then_flags_override_defaults() -> None:
    env = {
        "SERVCORE_STORE": "memory://",
        "PORT": "8080",
        "SERVCORE_HOST": "0.0.0.0",
        "SERVCORE_NODE": "n1",
        "SERVCORE_CONCURRENCY": "7",
    }
    config = ServiceConfig.from_env(env, port=9000, node=None)
    assert config.store == "memory://"
    assert config.http.port == 9000  # the flag wins
    assert config.node == "n1"  # None means "flag not given"
    assert (config.http.host, config.runtime.concurrency) == ("0.0.0.0", 7)


def test_servcore_port_is_read_when_port_is_absent() -> None:
    assert env_overrides({"SERVCORE_PORT": "4111"}) == {"port": 4111}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be a whole number"),
        ({"PORT": "70000"}, "port must be between"),
        ({"SERVCORE_CONCURRENCY": "0"}, "concurrency must be between"),
        ({"SERVCORE_MAX_RESULT_BYTES": "0"}, "max_result_bytes must be between 1 and"),
        ({"SERVCORE_MAX_RESULT_BYTES": "1MB"}, "SERVCORE_MAX_RESULT_BYTES must be a whole number"),
    ],
)
def test_bad_environment_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServiceConfig.from_env(env)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        ServiceConfig().with_overrides(colour="blue")


def test_flat_names_land_in_their_parts() -> None:
    config = ServiceConfig("memory://", concurrency=16, port=8080, retention=60, tracing=True)
    assert (config.runtime.concurrency, config.http.port) == (16, 8080)
    assert (config.maintenance.retention, config.telemetry.tracing) == (60, True)
    changed = config.with_overrides(lease=5, port=None)
    assert (changed.runtime.lease, changed.http.port, changed.runtime.concurrency) == (5, 8080, 16)
    assert changed.settings()["lease"] == 5


def test_every_setting_is_in_one_part_and_reads_its_own_environment() -> None:
    from servcore.config import PARTS, SETTINGS

    for name, spec in SETTINGS.items():
        assert spec.part in (*PARTS, "service"), name
    assert set(ServiceConfig().settings()) == set(SETTINGS)
    assert env_overrides({"SERVCORE_QUEUE_CONCURRENCY": "email=8"}) == {
        "queue_concurrency": {"email": 8}
    }


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"lease": float("inf")}, "lease must be a finite number"),
        ({"shutdown_grace": -1}, "shutdown_grace must be >= 0"),
        ({"queue_concurrency": {"a": 0}}, "a queue's concurrency"),
        ({"metrics_port": 0}, "metrics_port must be between"),
        ({"node": ""}, "node name must not be empty"),
    ],
)
def test_each_rule_of_the_table_is_enforced(settings: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServiceConfig(**settings)  # type: ignore[arg-type]
