"""Running pg_dump or pg_restore with data streamed through Python (to encrypt or decrypt it).

They run with --verbose: their stderr, read in a thread so that neither side ever blocks on
a full pipe, tells how many tables are done (the progress bar) and, on failure, why.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import threading
from typing import IO

from agent_platform.ops.backups.binaries import ClientTool
from agent_platform.ops.backups.model import BackupFailedError


class ClientProcess:
    def __init__(
        self,
        tool: ClientTool,
        arguments: list[str],
        *,
        env: dict[str, str],
        table_marker: str,
        feeds_stdin: bool,
    ) -> None:
        self.name = tool.path.name
        self.tables_done = 0
        self._marker = table_marker
        self._errors: list[str] = []
        self._last_line = ""
        self._process = subprocess.Popen(  # noqa: S603 - a PostgreSQL client, no shell
            [str(tool.path), "--verbose", "--no-password", *arguments],
            stdin=subprocess.PIPE if feeds_stdin else subprocess.DEVNULL,
            stdout=subprocess.DEVNULL if feeds_stdin else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=os.environ | env,
        )
        self._reader = threading.Thread(target=self._read_stderr, name=f"{self.name}-stderr")
        self._reader.start()

    @property
    def stdin(self) -> IO[bytes]:
        assert self._process.stdin is not None
        return self._process.stdin

    @property
    def stdout(self) -> IO[bytes]:
        assert self._process.stdout is not None
        return self._process.stdout

    def finish(self) -> None:
        """Wait for the end; BackupFailedError with the tool's first error when it failed."""
        if self._process.stdin is not None:
            # The end of the input. BrokenPipeError: it stopped reading; its status says why.
            with contextlib.suppress(BrokenPipeError):
                self._process.stdin.close()
        status = self._process.wait()
        self._reader.join()
        self._close_pipes()
        if status != 0:
            reason = self._errors[0] if self._errors else self._last_line or f"exit status {status}"
            raise BackupFailedError(f"{self.name} failed: {reason}")

    def kill(self) -> None:
        self._process.kill()
        self._process.wait()
        self._reader.join()
        self._close_pipes()

    def _close_pipes(self) -> None:
        for pipe in (self._process.stdout, self._process.stderr, self._process.stdin):
            if pipe is not None:
                with contextlib.suppress(BrokenPipeError):
                    pipe.close()

    def _read_stderr(self) -> None:
        assert self._process.stderr is not None
        for raw in self._process.stderr:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            self._last_line = line
            if self._marker in line:
                self.tables_done += 1
            elif "error:" in line:
                # "pg_restore: error: could not execute query: ERROR: …": what follows "error:".
                self._errors.append(line.split("error:", 1)[1].strip())
