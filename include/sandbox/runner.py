"""Start the Salesforce and Cerkl sandbox servers as child processes and stop them again.

Each server runs in its own Python process under uvicorn (no access log, log level warning),
with its output in ``<data_dir>/logs/<server>.log``. The child binds its socket itself and
writes the bound port to a file, so port 0 picks a free port without a race.

Run as ``python -m include.sandbox.runner --server cerkl --data-dir D`` to serve one app in
the foreground; :func:`start_sandbox` does that for both servers.
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import logging
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import requests

logger = logging.getLogger(__name__)

SERVER_NAMES = ("salesforce", "cerkl")
REPOSITORY_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STARTUP_TIMEOUT = 30.0
DEFAULT_STOP_TIMEOUT = 10.0


class SandboxStartError(RuntimeError):
    """A sandbox server did not come up; the message names the port and the log file."""


@dataclass
class ServerProcess:
    """One running sandbox server child process."""

    name: str
    process: subprocess.Popen[bytes]
    host: str
    port: int
    log_path: Path
    log_file: IO[bytes] = field(repr=False)

    @property
    def root_url(self) -> str:
        """``http://<host>:<port>``, with a wildcard host replaced by loopback."""
        return f"http://{_connect_host(self.host)}:{self.port}"

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> None:
        """Terminate the process (SIGTERM), and kill it when it is still alive after ``timeout``."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                logger.warning(
                    "Sandbox server %s (pid %d) did not stop in %.0f s; killing it",
                    self.name,
                    self.process.pid,
                    timeout,
                )
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.log_file.close()


@dataclass
class RunningSandbox:
    """Both sandbox servers; ``stop()`` or leaving the ``with`` block ends them."""

    data_dir: Path
    host: str
    servers: dict[str, ServerProcess]

    @property
    def salesforce_url(self) -> str | None:
        """Root URL of the Salesforce server (``http://127.0.0.1:<port>``), or None."""
        server = self.servers.get("salesforce")
        return server.root_url if server else None

    @property
    def cerkl_url(self) -> str | None:
        """Cerkl API base URL (``http://127.0.0.1:<port>/v3``), or None."""
        server = self.servers.get("cerkl")
        return f"{server.root_url}/v3" if server else None

    @property
    def cerkl_root_url(self) -> str | None:
        """Root URL of the Cerkl server, where ``/__sandbox__/`` lives, or None."""
        server = self.servers.get("cerkl")
        return server.root_url if server else None

    def stop(self) -> None:
        """Stop every server; safe to call more than once."""
        for server in self.servers.values():
            server.stop()
        atexit.unregister(self.stop)

    def __enter__(self) -> RunningSandbox:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def start_sandbox(
    data_dir: Path,
    *,
    salesforce_port: int = 0,
    cerkl_port: int = 0,
    host: str = "127.0.0.1",
    servers: Sequence[str] = SERVER_NAMES,
    startup_timeout: float = DEFAULT_STARTUP_TIMEOUT,
) -> RunningSandbox:
    """Start the sandbox servers as child processes and wait until each responds to HTTP.

    :param data_dir: data folder shared by both servers; created if missing.
    :param salesforce_port: port of the Salesforce server; 0 picks a free one.
    :param cerkl_port: port of the Cerkl server; 0 picks a free one.
    :param host: address to listen on; keep the loopback default unless a container must
        publish the ports (``0.0.0.0``).
    :param servers: which servers to start, a subset of ``("salesforce", "cerkl")``.
    :param startup_timeout: seconds to wait for each server before giving up.
    :return: the running sandbox; stop it with ``.stop()`` or a ``with`` block.
    :raises SandboxStartError: when a server exits or does not answer in time; servers
        already started are stopped first.
    :raises ValueError: for an unknown server name.
    """
    unknown = [name for name in servers if name not in SERVER_NAMES]
    if unknown:
        raise ValueError(f"unknown sandbox servers {unknown}: use {', '.join(SERVER_NAMES)}")
    data_dir = Path(data_dir).resolve()
    (data_dir / "logs").mkdir(parents=True, exist_ok=True)
    ports = {"salesforce": salesforce_port, "cerkl": cerkl_port}

    started: dict[str, ServerProcess] = {}
    sandbox = RunningSandbox(data_dir=data_dir, host=host, servers=started)
    atexit.register(sandbox.stop)
    spawned: dict[str, tuple[subprocess.Popen[bytes], Path, Path, IO[bytes]]] = {}
    try:
        for name in servers:
            spawned[name] = _spawn(name, data_dir, host, ports[name])
        for name, (process, port_file, log_path, log_file) in spawned.items():
            port = _wait_for_port(name, process, ports[name], port_file, log_path, startup_timeout)
            server = ServerProcess(name, process, host, port, log_path, log_file)
            started[name] = server
            _wait_until_answering(server, startup_timeout)
            logger.info("Sandbox server %s is up on port %d (pid %d)", name, port, process.pid)
    except BaseException:
        for name, (process, _port_file, log_path, log_file) in spawned.items():
            if name not in started:
                ServerProcess(name, process, host, 0, log_path, log_file).stop()
        sandbox.stop()
        raise
    return sandbox


def _spawn(
    name: str, data_dir: Path, host: str, port: int
) -> tuple[subprocess.Popen[bytes], Path, Path, IO[bytes]]:
    port_file = data_dir / "logs" / f"{name}.port"
    port_file.unlink(missing_ok=True)
    log_path = data_dir / "logs" / f"{name}.log"
    log_file = open(log_path, "ab")  # noqa: SIM115 - closed by ServerProcess.stop
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPOSITORY_ROOT), *filter(None, [env.get("PYTHONPATH")])]
    )
    command = [
        sys.executable,
        "-m",
        "include.sandbox.runner",
        "--server",
        name,
        "--data-dir",
        str(data_dir),
        "--host",
        host,
        "--port",
        str(port),
        "--port-file",
        str(port_file),
        "--exit-with-parent",
    ]
    process = subprocess.Popen(
        command,
        cwd=REPOSITORY_ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=log_file,
        stderr=subprocess.STDOUT,
    )
    return process, port_file, log_path, log_file


def _wait_for_port(
    name: str,
    process: subprocess.Popen[bytes],
    requested_port: int,
    port_file: Path,
    log_path: Path,
    timeout: float,
) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            text = port_file.read_text(encoding="utf-8").strip()
            if text.isdigit():
                return int(text)
        if process.poll() is not None:
            raise SandboxStartError(
                f"The {name} sandbox server exited with code {process.returncode} before"
                f" listening on {_describe_port(requested_port)}; see {log_path}:\n"
                f"{_log_tail(log_path)}"
            )
        time.sleep(0.05)
    raise SandboxStartError(
        f"The {name} sandbox server did not listen on {_describe_port(requested_port)}"
        f" within {timeout:.0f} s;"
        f" see {log_path}:\n{_log_tail(log_path)}"
    )


def _wait_until_answering(server: ServerProcess, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    url = f"{server.root_url}/__sandbox__/clock"
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            break
        try:
            requests.get(url, timeout=2)
        except requests.RequestException:
            time.sleep(0.05)
            continue
        return
    raise SandboxStartError(
        f"The {server.name} sandbox server did not respond on port {server.port} within"
        f" {timeout:.0f} s; see {server.log_path}:\n{_log_tail(server.log_path)}"
    )


def _describe_port(port: int) -> str:
    return f"port {port}" if port else "a free port"


def _log_tail(path: Path, lines: int = 20) -> str:
    try:
        return "\n".join(path.read_text(encoding="utf-8", errors="replace").splitlines()[-lines:])
    except OSError:
        return "(log file unreadable)"


def _connect_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def build_app(name: str, data_dir: Path) -> Any:
    """Import and create one sandbox app; the Salesforce module is imported only when asked.

    :raises ValueError: for an unknown server name.
    """
    if name == "cerkl":
        from include.sandbox.cerkl.app import create_app as create_cerkl_app

        return create_cerkl_app(data_dir)
    if name == "salesforce":
        from include.sandbox.salesforce.app import create_app as create_salesforce_app

        return create_salesforce_app(data_dir)
    raise ValueError(f"unknown sandbox server {name!r}: use {', '.join(SERVER_NAMES)}")


def _exit_when_parent_dies(parent_pid: int) -> None:
    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(0)
            time.sleep(1.0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def serve_one(
    name: str, data_dir: Path, *, host: str, port: int, port_file: Path | None = None
) -> None:
    """Serve one sandbox app in the foreground until SIGTERM or SIGINT.

    :param port_file: when given, the bound port is written there once listening.
    """
    import uvicorn

    logging.basicConfig(
        level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    app = build_app(name, data_dir)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise SystemExit(f"cannot listen on {host}:{port} for the {name} sandbox: {exc}") from exc
    sock.set_inheritable(True)
    if port_file is not None:
        temporary = port_file.with_suffix(".tmp")
        temporary.write_text(str(sock.getsockname()[1]), encoding="utf-8")
        os.replace(temporary, port_file)
    config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=2,
        lifespan="off",
    )
    with contextlib.closing(sock):
        uvicorn.Server(config).run(sockets=[sock])


def main(argv: Sequence[str] | None = None) -> None:
    """Serve one sandbox server; the entry point of the child processes."""
    parser = argparse.ArgumentParser(description="Serve one sandbox server in the foreground.")
    parser.add_argument("--server", choices=SERVER_NAMES, required=True)
    parser.add_argument("--data-dir", type=Path, required=True, help="sandbox data folder")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=0, help="port to listen on; 0 picks one")
    parser.add_argument("--port-file", type=Path, help="file to write the bound port to")
    parser.add_argument(
        "--exit-with-parent", action="store_true", help="exit when the parent process ends"
    )
    args = parser.parse_args(argv)
    if args.exit_with_parent:
        _exit_when_parent_dies(os.getppid())
    serve_one(args.server, args.data_dir, host=args.host, port=args.port, port_file=args.port_file)


if __name__ == "__main__":
    main()
