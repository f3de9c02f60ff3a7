"""The client end of the control socket (``server/control.py`` describes the protocol)."""
from __future__ import annotations

import json
import os
import socket

from ..settings import control_socket_path, default_data_dir


class Unreachable(OSError):
    """No broker answers on the control socket: one line saying where and why."""


def socket_path(data_dir: str | None, explicit: str | None) -> str:
    """``--socket``, else ``<data dir>/ctl.sock`` with the data directory found as ``leveret
    serve`` finds it: ``--data-dir``, ``LEVERET_DATA_DIR``, the per-user default."""
    if explicit:
        return explicit
    return control_socket_path(data_dir or os.environ.get("LEVERET_DATA_DIR") or default_data_dir())


class ControlClient:
    def __init__(self, path: str, timeout: float | None = None):
        self.path = path
        self.timeout = timeout
        self.sock: socket.socket | None = None
        self.file = None

    def connect(self) -> None:
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.settimeout(self.timeout)
        try:
            s.connect(self.path)
        except OSError as e:
            s.close()
            reason = e.strerror or str(e)
            hint = " (is the broker running?)" if isinstance(e, (FileNotFoundError, ConnectionRefusedError)) else ""
            raise Unreachable(f"Error: unable to reach the Leveret broker at {self.path}: {reason}{hint}") from None
        self.sock = s
        self.file = s.makefile("rwb")

    def call(self, command: str, args: dict) -> tuple[bool, object]:
        """(True, result) or (False, {"kind": ..., "message": ..., details})."""
        if self.sock is None:
            self.connect()
        try:
            self.file.write(json.dumps({"command": command, "args": args}).encode() + b"\n")
            self.file.flush()
            line = self.file.readline()
        except socket.timeout:
            raise
        except OSError as e:
            raise Unreachable(f"Error: lost the connection to the Leveret broker at {self.path}: {e}") from None
        if not line:
            raise Unreachable(f"Error: the Leveret broker at {self.path} closed the control connection")
        response = json.loads(line)
        if response.get("ok"):
            return True, response.get("result")
        return False, response.get("error") or {}

    def close(self) -> None:
        if self.sock is not None:
            self.file.close()
            self.sock.close()
            self.sock = None
