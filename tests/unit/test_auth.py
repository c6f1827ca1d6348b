"""Tokens: from the environment and the file, hashed, compared, and the open-bind rule."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from servcore.auth import ApiToken, find_token, grants, tokens_from_env
from servcore.config import ServiceConfig, env_overrides
from servcore.config_file import load_config_file
from servcore.errors import ConfigError
from servcore.process_main import ServeError, _check_exposure

SECRET = "a-long-enough-secret-token"


def test_tokens_from_the_environment_clear_or_hashed() -> None:
    digest = hashlib.sha256(b"another-long-secret-token").hexdigest()
    tokens = tokens_from_env(f"read:{SECRET}, admin:sha256:{digest}")
    assert [(t.name, t.scope) for t in tokens] == [
        ("SERVCORE_TOKENS[1]", "read"),
        ("SERVCORE_TOKENS[2]", "admin"),
    ]
    assert find_token(tokens, SECRET) is tokens[0]
    assert find_token(tokens, "another-long-secret-token") is tokens[1]
    assert find_token(tokens, "nope") is None
    assert env_overrides({"SERVCORE_TOKENS": f"write:{SECRET}"})["tokens"][0].scope == "write"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (SECRET, "has no scope"),
        (f"root:{SECRET}", "scope must be one of read, write, admin"),
        (f"=read:{SECRET}", "item 1: an empty name before '='"),
        (f"grafana=reader:{SECRET}", "token 'grafana': scope must be one of"),
        ("read:short", "at least 16 characters"),
        ("read:sha256:abc", "64 hexadecimal digits"),
    ],
)
def test_bad_tokens_are_one_clear_error(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        tokens_from_env(text)


def test_tokens_from_the_environment_may_be_named() -> None:
    digest = hashlib.sha256(b"another-long-secret-token").hexdigest()
    tokens = tokens_from_env(f"grafana=read:{SECRET}, write:x={SECRET}, ci=admin:sha256:{digest}")
    assert [(t.name, t.scope) for t in tokens] == [
        ("grafana", "read"),
        ("SERVCORE_TOKENS[2]", "write"),  # '=' inside the token itself names nothing
        ("ci", "admin"),
    ]
    assert find_token(tokens, f"x={SECRET}") is tokens[1]


def test_scopes_nest() -> None:
    assert grants("admin", "write")
    assert grants("write", "read")
    assert not grants("read", "write")
    assert not grants("write", "admin")


def test_tokens_in_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "servcore.toml"
    path.write_text(
        f'[[tokens]]\nname = "ci"\nscope = "write"\ntoken = "{SECRET}"\n'
        f'[[tokens]]\nscope = "read"\nsha256 = "{hashlib.sha256(b"x" * 20).hexdigest()}"\n'
    )
    (ci, anonymous) = load_config_file(path).settings["tokens"]
    assert (ci.name, ci.scope) == ("ci", "write")
    assert anonymous.name == "tokens[1]"
    path.write_text('[[tokens]]\nscope = "write"\n')
    with pytest.raises(ConfigError, match="give either the token or its sha256"):
        load_config_file(path)


def test_no_tokens_means_loopback_only_unless_opened() -> None:
    _check_exposure(ServiceConfig(host="127.0.0.1"))
    _check_exposure(ServiceConfig(host="::1"))
    with pytest.raises(ServeError, match=r"refusing to serve on 0\.0\.0\.0 with no API tokens"):
        _check_exposure(ServiceConfig(host="0.0.0.0"))
    _check_exposure(ServiceConfig(host="0.0.0.0", allow_open=True))
    token = ApiToken.make("t", "admin", token=SECRET)
    _check_exposure(ServiceConfig(host="0.0.0.0", tokens=(token,)))
