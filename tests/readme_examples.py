"""The README's shell examples, read as a reader runs them: each command with
the answer its comments show.

A comment right after a command (on its lines, or on the ``#`` lines below
it) is its expected answer when it reads as one:

- ``[STATUS] JSON`` — an HTTP status (optional) and the body, JSON that may
  hold ``"…"`` (any value), ``{…}`` (any object) or end an object with
  ``, …}`` (more keys follow); prose after the JSON is ignored;
- ``exit N: TEXT`` — a command's exit status and the last line it printed;
- for a plain-text answer, the text itself.

Anything else in a comment is prose for the reader.
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

README = Path(__file__).resolve().parent.parent / "README.md"
ANY = "…"
# A time in the README that is not an input (those lie in 2030 and later)
# stands for "now": only its form is compared.
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@dataclass(frozen=True)
class Example:
    command: str  # the shell text, comments removed
    comment: str  # the comment text that follows it, lines joined
    line: int  # where it starts in the README, for messages

    def __str__(self) -> str:
        return f"README.md:{self.line}: {self.command}"


def section(heading: str, text: str | None = None) -> tuple[int, list[str]]:
    """The lines under ``heading`` up to the next heading of its level or
    above, and the README line number of the first of them."""
    lines = (README.read_text() if text is None else text).splitlines()
    level = heading.split(" ")[0]
    start = lines.index(heading) + 1
    end = start
    fenced = False  # inside a code block, '#' starts a comment, not a heading
    while end < len(lines):
        fenced ^= lines[end].startswith("```")
        marker = lines[end].split(" ")[0]
        if not fenced and set(marker) == {"#"} and len(marker) <= len(level):
            break
        end += 1
    return start + 1, lines[start:end]


def examples(heading: str, program: str, *, skip_blocks: int = 0) -> list[Example]:
    """The ``program`` commands of the bash blocks under ``heading``, in
    order, from its ``skip_blocks + 1``-th bash block on."""
    first, lines = section(heading)
    found: list[Example] = []
    in_bash = False
    blocks = 0
    index = 0
    while index < len(lines):
        line = lines[index]
        if line.startswith("```"):
            in_bash = line == "```bash" and not in_bash
            blocks += in_bash
            index += 1
            continue
        if not in_bash or blocks <= skip_blocks or not line.startswith(program + " "):
            index += 1
            continue
        start = index
        code: list[str] = []
        comments: list[str] = []
        while True:
            text, comment = _split_comment(lines[index])
            code.append(text)
            if comment:
                comments.append(comment)
            index += 1
            joined = "\n".join(code).rstrip()
            if not joined.endswith("\\") and _complete(joined):
                break
        while index < len(lines) and lines[index].lstrip().startswith("#"):
            comments.append(lines[index].lstrip()[1:].strip())
            index += 1
        found.append(Example(joined, "".join(comments), first + start))
    return found


def _split_comment(line: str) -> tuple[str, str]:
    """``(code, comment)``: the comment starts at an unquoted ``#`` after a space."""
    quote = ""
    for position, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (position == 0 or line[position - 1] == " "):
            return line[:position].rstrip(), line[position + 1 :].strip()
    return line, ""


def _complete(command: str) -> bool:
    try:
        shlex.split(command)
    except ValueError:  # a quote still open: the command goes on
        return False
    return True


@dataclass(frozen=True)
class Expected:
    status: int | None
    body: Any  # JSON, or text when ``text`` is set
    text: bool = False


_STATUS = re.compile(r"^(?:exit )?(\d{1,3})[: ]\s*")


def expectation(comment: str) -> Expected | None:
    """The answer ``comment`` shows, or None when it is prose."""
    status: int | None = None
    rest = comment
    if (match := _STATUS.match(comment)) is not None:
        status, rest = int(match.group(1)), comment[match.end() :]
    if comment.startswith("exit "):
        return Expected(status, rest, text=True)
    if rest[:1] in ("{", "["):
        source = rest.replace("{…}", '"…"').replace(", …}", ',"…":"…"}')
        try:
            body, _ = json.JSONDecoder().raw_decode(source)
        except json.JSONDecodeError:
            return None
        return Expected(status, body)
    return None


def mismatch(expected: Any, actual: Any, where: str = "") -> str | None:
    """Where ``actual`` differs from ``expected`` (see the module docstring), or None."""
    if expected == ANY:
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where or 'the answer'}: {actual!r} is not an object"
        more = expected.get(ANY) == ANY
        keys = set(expected) - {ANY}
        if not more and keys != set(actual):
            return f"{where or 'the answer'}: keys {sorted(actual)} != {sorted(keys)}"
        for key in sorted(keys):
            if key not in actual:
                return f"{where}.{key}: missing"
            problem = mismatch(expected[key], actual[key], f"{where}.{key}")
            if problem:
                return problem
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list) or len(actual) != len(expected):
            return f"{where or 'the answer'}: {actual!r} != {expected!r}"
        for index, (want, got) in enumerate(zip(expected, actual, strict=True)):
            problem = mismatch(want, got, f"{where}[{index}]")
            if problem:
                return problem
        return None
    if (
        isinstance(expected, str)
        and ISO_UTC.match(expected)
        and expected < "2030"
        and isinstance(actual, str)
        and ISO_UTC.match(actual)
    ):
        return None
    if isinstance(expected, bool) or isinstance(actual, bool):
        same = expected is actual
    else:
        same = expected == actual  # 30 and 30.0 alike: JSON has one number type
    return None if same else f"{where or 'the answer'}: {actual!r} != {expected!r}"
