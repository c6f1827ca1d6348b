from __future__ import annotations

import pytest

from servcore.config import ServiceConfig, env_overrides
from servcore.errors import ConfigError


def test_defaults_follow_the_design() -> None:
    config = ServiceConfig()
    assert (config.store, config.host, config.port) == ("sqlite:///servcore.db", "127.0.0.1", 4000)
    assert config.concurrency >= 1
    assert config.queues == ("default",)


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
    assert config.port == 9000  # the flag wins
    assert config.node == "n1"  # None means "flag not given"
    assert (config.host, config.concurrency) == ("0.0.0.0", 7)


def test_servcore_port_is_read_when_port_is_absent() -> None:
    assert env_overrides({"SERVCORE_PORT": "4111"}) == {"port": 4111}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"PORT": "http"}, "PORT must be a whole number"),
        ({"PORT": "70000"}, "port must be between"),
        ({"SERVCORE_CONCURRENCY": "0"}, "concurrency must be between"),
    ],
)
def test_bad_environment_values_name_the_setting(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ServiceConfig.from_env(env)


def test_unknown_override_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown setting"):
        ServiceConfig().with_overrides(colour="blue")
