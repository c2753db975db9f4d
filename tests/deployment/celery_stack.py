"""A real Airflow deployment with the CeleryExecutor, started as local processes for tests.

:class:`CeleryStack` creates two throw-away PostgreSQL databases and migrates them. One is
the Airflow metadata DB, which is also the Celery result backend, and the other the sync-state
DB. It then starts ``airflow api-server``, ``scheduler``, ``dag-processor`` and
``celery worker`` as separate processes. They share one environment: one JWT secret, the
execution API URL of the api-server, Redis as the broker, and the ``AIRFLOW_CONN_*`` and
``AIRFLOW_VAR_*`` settings.
:meth:`CeleryStack.stop` stops every process it started and drops the databases.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.fernet import Fernet

log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
POSTGRES_HOST = "127.0.0.1"
POSTGRES_PORT = 5432
POSTGRES_USER = "postgres"
REDIS_HOST = "127.0.0.1"
REDIS_PORT = 6379
# Redis database of the Celery broker, apart from database 0 that other tools use by default.
REDIS_DB = 13


class StackError(RuntimeError):
    """A component of the deployment failed to start or a bounded wait ran out."""


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    """Return whether a TCP connection to ``host:port`` succeeds within ``timeout`` seconds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def free_port() -> int:
    """Return a loopback TCP port that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(
    condition: Callable[[], Any], *, timeout: float, interval: float = 1.0, what: str
) -> Any:
    """Poll ``condition`` until it returns a truthy value and return that value.

    :raises StackError: when ``timeout`` seconds pass first; the message names ``what``.
    """
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise StackError(f"Timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def _admin_connection() -> Any:
    import psycopg2

    connection = psycopg2.connect(
        host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname="postgres"
    )
    connection.autocommit = True
    return connection


def postgres_url(database: str, driver: str = "postgresql+psycopg2") -> str:
    return f"{driver}://{POSTGRES_USER}@{POSTGRES_HOST}:{POSTGRES_PORT}/{database}"


@dataclass
class CeleryStack:
    """Throw-away databases and Airflow processes of one CeleryExecutor deployment.

    :param work_dir: folder for ``AIRFLOW_HOME``, the shared batch storage, reports and logs.
    :param extra_env: environment on top of the stack's own (connections, Variables, DAG
        settings); every component receives it.
    """

    work_dir: Path
    extra_env: Mapping[str, str] = field(default_factory=dict)
    suffix: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    api_port: int = field(default_factory=free_port)
    # One key and one secret for every component and CLI call of the stack.
    fernet_key: str = field(default_factory=lambda: Fernet.generate_key().decode())
    jwt_secret: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)
    databases: list[str] = field(default_factory=list)

    @property
    def metadata_db(self) -> str:
        return f"airflow_celery_{self.suffix}"

    @property
    def state_db(self) -> str:
        return f"cerkl_sync_state_{self.suffix}"

    @property
    def queue(self) -> str:
        """Celery queue of this stack alone, so that stacks sharing the Redis database do not
        take each other's tasks."""
        return f"cerkl_sync_{self.suffix}"

    @property
    def home(self) -> Path:
        return self.work_dir / "airflow-home"

    @property
    def log_dir(self) -> Path:
        return self.work_dir / "process-logs"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def environment(self) -> dict[str, str]:
        """Return the environment every component runs with."""
        env = {
            name: value
            for name, value in os.environ.items()
            if not name.startswith(("AIRFLOW", "CERKL_SYNC_", "PYTEST_"))
        }
        metadata = postgres_url(self.metadata_db)
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                "PYTHONPATH": str(REPO),
                "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
                "AIRFLOW__CORE__PLUGINS_FOLDER": str(REPO / "plugins"),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__CORE__FERNET_KEY": self.fernet_key,
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata,
                "AIRFLOW__CELERY__BROKER_URL": f"redis://{REDIS_HOST}:{REDIS_PORT}/{REDIS_DB}",
                # SQLAlchemy 2.1 maps a bare postgresql:// to psycopg 3, which is not locked.
                "AIRFLOW__CELERY__RESULT_BACKEND": postgres_url(
                    self.metadata_db, "db+postgresql+psycopg2"
                ),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "4",
                "AIRFLOW__OPERATORS__DEFAULT_QUEUE": self.queue,
                "AIRFLOW__API_AUTH__JWT_SECRET": self.jwt_secret,
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.base_url}/execution/",
                "AIRFLOW__API__BASE_URL": self.base_url,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
                # Only the runs a test creates (backfills, triggers) run: the scheduler creates no
                # run from the DAG's schedule, which would touch the sandbox at the same time.
                "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "10",
                "AIRFLOW_CONN_CERKL_SYNC_STATE": json.dumps(
                    {"conn_type": "generic", "extra": {"url": postgres_url(self.state_db)}}
                ),
            }
        )
        env.update(self.extra_env)
        return env

    def airflow(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run one ``airflow`` CLI command with the stack's environment; raise when it fails."""
        return self.run([sys.executable, "-m", "airflow", *args], timeout=timeout)

    def run(self, command: list[str], *, timeout: float = 180) -> subprocess.CompletedProcess:
        """Run a command with the stack's environment in the repository folder."""
        result = subprocess.run(
            command,
            cwd=REPO,
            env=self.environment(),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if result.returncode != 0:
            raise StackError(
                f"{' '.join(command[2:] or command)} exited with {result.returncode}:\n"
                f"{result.stderr[-3000:]}"
            )
        return result

    def create_databases(self) -> None:
        """Create the metadata and sync-state databases, then migrate both."""
        connection = _admin_connection()
        try:
            with connection.cursor() as cursor:
                for name in (self.metadata_db, self.state_db):
                    cursor.execute(f'CREATE DATABASE "{name}"')
                    self.databases.append(name)
        finally:
            connection.close()
        self.home.mkdir(parents=True, exist_ok=True)
        self.airflow("db", "migrate", timeout=600)
        self.run([sys.executable, "-m", "include.cerkl_sync.state", "migrate"])
        # Creates the cerkl_api pool from deploy/pools.json, as the compose stack's init does.
        self.run([sys.executable, "deploy/bootstrap_airflow.py"])

    def start(self) -> None:
        """Start every component and wait (bounded) until the api-server responds."""
        self.log_dir.mkdir(parents=True, exist_ok=True)
        commands = {
            "api-server": ["api-server", "--host", "127.0.0.1", "--port", str(self.api_port)],
            "scheduler": ["scheduler"],
            "dag-processor": ["dag-processor"],
            # The worker's log server is off: it would take the fixed port 8793.
            "celery worker": ["celery", "worker", "--skip-serve-logs", "--queues", self.queue],
        }
        env = self.environment()
        for name, args in commands.items():
            output = (self.log_dir / f"{name.replace(' ', '-')}.log").open("wb")
            self.processes[name] = subprocess.Popen(
                [sys.executable, "-m", "airflow", *args],
                cwd=REPO,
                env=env,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            output.close()
        wait_until(
            lambda: self.check_running() and port_open("127.0.0.1", self.api_port),
            timeout=120,
            what=f"the api-server on port {self.api_port}",
        )

    def check_running(self) -> bool:
        """Return True while every component runs; raise with its log tail when one exited."""
        for name, process in self.processes.items():
            if process.poll() is not None:
                raise StackError(
                    f"airflow {name} exited with {process.returncode}:\n{self.log_tail(name)}"
                )
        return True

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.log_dir / f"{name.replace(' ', '-')}.log"
        if not path.exists():
            return "(no log)"
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def query(self, sql: str, params: tuple = ()) -> list[tuple]:
        """Run one read query on the metadata database and return its rows."""
        import psycopg2

        connection = psycopg2.connect(
            host=POSTGRES_HOST, port=POSTGRES_PORT, user=POSTGRES_USER, dbname=self.metadata_db
        )
        try:
            with connection.cursor() as cursor:
                cursor.execute(sql, params)
                return cursor.fetchall()
        finally:
            connection.close()

    def stop(self) -> None:
        """Stop every started process group, then drop the databases; safe to call twice."""
        for process in self.processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        deadline = time.monotonic() + 30
        for name, process in self.processes.items():
            try:
                process.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("airflow %s did not stop within 30 s; killing it", name)
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=10)
            # Celery's pool children and task runners share the session: end any left over.
            try:
                os.killpg(process.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.processes.clear()
        self._drop_databases()
        self._delete_queue()

    def _delete_queue(self) -> None:
        import redis

        broker = redis.Redis(host=REDIS_HOST, port=REDIS_PORT, db=REDIS_DB)
        try:
            for key in broker.scan_iter(match=f"{self.queue}*"):
                broker.delete(key)
        finally:
            broker.close()

    def _drop_databases(self) -> None:
        if not self.databases:
            return
        connection = _admin_connection()
        try:
            with connection.cursor() as cursor:
                for name in self.databases:
                    cursor.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            connection.close()
        self.databases.clear()
