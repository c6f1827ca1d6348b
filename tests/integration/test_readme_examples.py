"""Every curl and CLI example of the README, run as written, in order, against
a fresh server (and a fresh directory): each answer is the one the README shows."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from servcore.cli import main
from tests.processes import servcore_serve
from tests.readme_examples import Example, examples, expectation, mismatch, section

pytestmark = pytest.mark.slow

BIN = str(Path(sys.executable).parent)
# Every curl prints its body, then its status on a line of its own.
CURL = "curl() { command curl -sS -w '\\n%{http_code}' \"$@\"; }\n"


def wait_idle(url: str) -> None:
    """Until no job is ready or running: the answers then do not depend on
    how fast the workers are."""
    deadline = time.monotonic() + 30
    while True:
        stats = httpx.get(f"{url}/stats").json()
        if stats["available"] == 0 and stats["running"] == 0:
            return
        assert time.monotonic() < deadline, f"jobs still waiting or running: {stats}"
        time.sleep(0.02)


def run_curl(example: Example, url: str, cwd: Path) -> tuple[int | None, str]:
    command = example.command.replace("http://localhost:4000", url)
    done = subprocess.run(
        ["bash", "-c", CURL + command], cwd=cwd, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, f"{example}\n{done.stderr}"
    if "|" in command:  # its output went through a filter: no status line of ours
        return None, done.stdout
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


def test_the_curl_examples_answer_as_the_readme_shows(tmp_path: Path) -> None:
    found = examples("## The API, with curl", "curl")
    assert len(found) >= 25
    store = f"sqlite:///{tmp_path / 'servcore.db'}"
    with servcore_serve(tmp_path, "--store", store, "--node", "host-8000") as server:
        server.wait_ready()
        checked = 0
        for example in found:
            wait_idle(server.url)
            status, body = run_curl(example, server.url, tmp_path)
            if status is None:
                assert body.strip(), example
                continue
            expected = expectation(example.comment)
            if expected is None:
                assert status < 400, f"{example}\nanswered {status} {body}"
                if body and not body.startswith(("{", "[")) and example.comment:
                    assert body == example.comment, example  # a text answer
                    checked += 1
                continue
            if expected.status is not None:
                assert status == expected.status, f"{example}\nanswered {status} {body}"
            problem = mismatch(expected.body, json.loads(body))
            assert problem is None, f"{example}\n{problem}\nanswered {body}"
            checked += 1
    assert checked >= 20  # most examples show their answer


def run_cli(example: Example, cwd: Path) -> tuple[int, list[str]]:
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("SERVCORE_")
    }
    environment["PATH"] = f"{BIN}:{environment['PATH']}"
    done = subprocess.run(
        ["bash", "-c", example.command],
        cwd=cwd,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, (done.stdout + done.stderr).splitlines()


def test_the_cli_examples_answer_as_the_readme_shows(tmp_path: Path) -> None:
    found = examples("## CLI", "servcore", skip_blocks=1)  # the first is the synopsis
    assert len(found) >= 8
    for example in found:
        code, lines = run_cli(example, tmp_path)
        assert example.comment, f"{example}: no answer shown"
        expected = expectation(example.comment)
        if expected is None:  # a line of text
            assert (code, lines) == (0, [example.comment]), example
            continue
        if expected.text:
            assert (code, lines[-1:]) == (expected.status, [expected.body]), example
            continue
        assert code == 0, f"{example}\n{lines}"
        problem = mismatch(expected.body, json.loads(lines[0]))
        assert problem is None, f"{example}\n{problem}\nprinted {lines}"


def help_of(path: list[str]) -> str:
    result = CliRunner().invoke(main, [*path, "--help"], prog_name="servcore")
    assert result.exit_code == 0, result.output
    return result.output


def test_the_cli_synopsis_is_what_help_says() -> None:
    """Each command ``servcore --help`` lists (and those of its groups) has a
    synopsis line in the README naming exactly the arguments and options its
    own ``--help`` shows (``--help`` itself aside)."""
    _, lines = section("## CLI")
    block = "\n".join(lines).split("```bash\n", 1)[1].split("```", 1)[0]
    synopsis: dict[str, str] = {}
    current = ""
    for line in block.splitlines():
        text = line.split("  #", 1)[0]
        if text.startswith("servcore"):
            current = " ".join(re.findall(r"(?<= )[a-z]+(?= |$)", text.split("[", 1)[0]))
            synopsis[current] = text
        else:
            synopsis[current] += " " + text.strip()

    def commands(path: list[str]) -> dict[str, str]:
        shown = help_of(path)
        found = {" ".join(path): shown}
        if "Commands:" in shown:
            for name in re.findall(r"^  ([a-z]+)  ", shown.split("Commands:", 1)[1], re.M):
                found.update(commands([*path, name]))
            if path:  # a group: its commands have the synopsis lines
                del found[" ".join(path)]
        return found

    every = commands([])
    assert sorted(synopsis) == sorted(every)
    for path, shown in every.items():
        options = shown.split("Options:", 1)[1]
        listed = set(re.findall(r"^  (--[a-z-]+)(?: / (--[a-z-]+))?", options, re.M))
        flat = {opt for pair in listed for opt in pair if opt} - {"--help"}
        written = set(re.findall(r"--[a-z][a-z-]*", synopsis[path]))
        assert written == flat, (path, "differ:", sorted(written ^ flat))
        usage = shown.splitlines()[0].split("[OPTIONS]", 1)[1].split()
        for argument in usage:
            if argument not in ("COMMAND", "[ARGS]..."):
                assert argument in synopsis[path], (path, argument)
