"""Worker processes that are always stopped, whatever happens to the harness.

Each worker starts in a session of its own (so its process group holds it
and anything it forks); leaving the ``with`` block — normally, on an
exception, or on SIGTERM to the harness (see ``run.py``) — sends the
library's graceful-stop signal, waits, then SIGKILLs the group.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

STOP_GRACE_S = 20.0


class WorkerGroup:
    def __init__(
        self,
        command: Sequence[str],
        count: int,
        *,
        env: dict[str, str],
        cwd: Path,
        stop_signal: signal.Signals,
    ) -> None:
        self._command = list(command)
        self._count = count
        self._env = env
        self._cwd = cwd
        self._stop_signal = stop_signal
        self.logs = [cwd / f"worker{index}.log" for index in range(count)]
        self._processes: list[subprocess.Popen[bytes]] = []

    def __enter__(self) -> WorkerGroup:
        try:
            for log in self.logs:
                with log.open("ab") as output:
                    self._processes.append(
                        subprocess.Popen(
                            self._command,
                            env=self._env,
                            cwd=self._cwd,
                            stdin=subprocess.DEVNULL,
                            stdout=output,
                            stderr=subprocess.STDOUT,
                            start_new_session=True,
                        )
                    )
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def exited(self) -> str | None:
        """Why the group is broken: a worker that has exited, or None."""
        for index, process in enumerate(self._processes):
            code = process.poll()
            if code is not None:
                return f"worker {index} exited with {code}: {self.tail(index)}"
        return None

    def tail(self, index: int, lines: int = 15) -> str:
        try:
            text = self.logs[index].read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    @property
    def exit_codes(self) -> list[int | None]:
        return [process.returncode for process in self._processes]

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """Ask every worker to stop, wait up to ``grace`` s, then kill what is left."""
        for process in self._processes:
            if process.poll() is None:
                process.send_signal(self._stop_signal)
        deadline = time.monotonic() + grace
        for process in self._processes:
            try:
                process.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _kill_group(process.pid)
                process.wait()
            # Anything the worker started and left behind.
            _kill_group(process.pid)


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
