"""Tests of the packaging: dependency locks, the Dockerfile, the deployment validation script
and the Airflow bootstrap that airflow-init runs."""

from __future__ import annotations

import importlib.machinery
import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from packaging.markers import Marker
from packaging.utils import canonicalize_name

REPOSITORY = Path(__file__).resolve().parent.parent
VALIDATE_SCRIPT = REPOSITORY / ".ci" / "validate-deployment"
PIN_PATTERN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)\s*(?:;\s*([^#]+))?")

# Files and folders the validation script reads. Tests copy them and break one at a time.
VALIDATED_FILES = (
    "Dockerfile",
    ".dockerignore",
    "docker-compose.yaml",
    "docker-compose.sandbox.yaml",
    ".env.example",
    "requirements.txt",
    "requirements.lock",
)
VALIDATED_FOLDERS = ("dags", "plugins", "include", "deploy")


def read_pins(path: Path) -> dict[str, tuple[str, str | None]]:
    """Map each canonical package name in a requirements file to (version, marker)."""
    pins: dict[str, tuple[str, str | None]] = {}
    for line in path.read_text().splitlines():
        match = PIN_PATTERN.match(line.strip())
        if match:
            name, version, marker = match.groups()
            pins[canonicalize_name(name)] = (version, marker.strip() if marker else None)
    return pins


def load_validation_module() -> ModuleType:
    """Import .ci/validate-deployment, which has no .py suffix, as a module."""
    loader = importlib.machinery.SourceFileLoader("validate_deployment", str(VALIDATE_SCRIPT))
    spec = importlib.util.spec_from_loader("validate_deployment", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def run_validation(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(VALIDATE_SCRIPT), "--root", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def repository_copy(tmp_path: Path) -> Path:
    """Copy the validated files, with empty stand-ins for the code folders."""
    root = tmp_path / "repository"
    root.mkdir()
    for name in VALIDATED_FILES:
        shutil.copy2(REPOSITORY / name, root / name)
    for name in VALIDATED_FOLDERS:
        (root / name).mkdir()
    (root / "deploy" / "postgres-init").mkdir()
    return root


def test_lock_pins_requirements_at_same_version():
    requirements = read_pins(REPOSITORY / "requirements.txt")
    lock = read_pins(REPOSITORY / "requirements.lock")
    dev_requirements = read_pins(REPOSITORY / "requirements-dev.txt")
    dev_lock = read_pins(REPOSITORY / "requirements-dev.lock")

    assert requirements, "requirements.txt has no exact pins"
    for name, (version, _) in requirements.items():
        assert name in lock, f"{name} is in requirements.txt but not in requirements.lock"
        assert lock[name][0] == version, f"{name}: requirements.txt {version}, lock {lock[name]}"
    for name, (version, _) in dev_requirements.items():
        assert name in dev_lock, f"{name} is in requirements-dev.txt but not in its lock"
        assert dev_lock[name][0] == version, f"{name}: {version} vs lock {dev_lock[name]}"


def test_installed_distributions_match_lock():
    pins = read_pins(REPOSITORY / "requirements.lock") | read_pins(
        REPOSITORY / "requirements-dev.lock"
    )
    mismatches = []
    for name, (version, marker) in sorted(pins.items()):
        if marker and not Marker(marker).evaluate():
            continue
        try:
            installed = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            mismatches.append(f"{name}: locked {version}, not installed")
            continue
        if installed != version:
            mismatches.append(f"{name}: locked {version}, installed {installed}")

    assert mismatches == [], "reinstall with `make venv`: " + "; ".join(mismatches)


def test_dockerfile_airflow_tag_matches_pin():
    airflow_pin = read_pins(REPOSITORY / "requirements.txt")["apache-airflow"][0]
    dockerfile = (REPOSITORY / "Dockerfile").read_text()

    from_lines = re.findall(r"^FROM\s+(\S+)", dockerfile, re.MULTILINE)
    assert from_lines == [f"apache/airflow:{airflow_pin}-python3.11"]
    install_pins = re.findall(r"apache-airflow==([0-9][^\s\"']*)", dockerfile)
    assert install_pins == [airflow_pin]
    assert "-r /opt/airflow/requirements.lock" in dockerfile
    assert "--constraint" not in dockerfile


def test_dockerfile_ends_as_airflow_user():
    dockerfile = (REPOSITORY / "Dockerfile").read_text()
    users = re.findall(r"^USER\s+(\S+)", dockerfile, re.MULTILINE)

    # 50000 is the uid of the airflow user in the apache/airflow image.
    assert users[-1] == "50000"


def test_dockerignore_excludes_secrets_and_data():
    validation = load_validation_module()
    patterns = validation.read_dockerignore(REPOSITORY)

    for path in (".env", ".venv", ".sandbox-data", "reports", "logs", "tests", "tests/data"):
        assert validation.is_ignored(path, patterns), f"{path} would be in the build context"
    for path in ("include/.env", "include/sandbox/__pycache__", "dags/logs"):
        assert validation.is_ignored(path, patterns), f"{path} would be in the build context"
    for path in ("requirements.lock", "dags", "plugins", "include", "deploy"):
        assert not validation.is_ignored(path, patterns), f"{path} would be left out"


def test_env_example_holds_no_secret_values():
    validation = load_validation_module()
    values = validation.read_env_example(REPOSITORY / ".env.example")

    assert values["AIRFLOW_FERNET_KEY"] == ""
    assert values["AIRFLOW_JWT_SECRET"] == ""
    for key in ("AIRFLOW_CONN_SALESFORCE_DEFAULT", "AIRFLOW_CONN_CERKL_DEFAULT"):
        connection = json.loads(values[key])
        assert connection["password"].startswith("<"), f"{key} holds a real password"
    assert json.loads(values["AIRFLOW_CONN_CERKL_DEFAULT"])["conn_type"] == "http"


def test_merge_compose_follows_compose_rules():
    validation = load_validation_module()
    base = {
        "services": {
            "worker": {
                "command": ["celery", "worker"],
                "environment": {"A": "1", "B": "2"},
                "volumes": ["./dags:/opt/airflow/dags", "logs:/opt/airflow/logs"],
                "ports": ["8080:8080"],
            }
        }
    }
    override = {
        "services": {
            "worker": {
                "command": ["bash"],
                "environment": ["B=3", "C=4"],
                "volumes": ["./other:/opt/airflow/dags"],
                "ports": ["8701:8701"],
            },
            "sandbox": {"image": "sandbox"},
        }
    }

    merged = validation.merge_compose(base, override)
    worker = merged["services"]["worker"]

    assert worker["command"] == ["bash"]
    assert worker["environment"] == {"A": "1", "B": "3", "C": "4"}
    assert worker["volumes"] == ["./other:/opt/airflow/dags", "logs:/opt/airflow/logs"]
    assert worker["ports"] == ["8080:8080", "8701:8701"]
    assert merged["services"]["sandbox"] == {"image": "sandbox"}


def test_interpolate_applies_defaults():
    validation = load_validation_module()
    env = {"SET": "value", "EMPTY": ""}

    assert validation.interpolate("${SET:-x}/${EMPTY:-default}", env) == "value/default"
    assert validation.interpolate("${EMPTY-kept}${MISSING-used}", env) == "used"
    assert validation.interpolate("$$HOSTNAME ${SET:+alt}", env) == "$HOSTNAME alt"


def test_validate_deployment_passes_on_repository():
    completed = run_validation(REPOSITORY)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Deployment validation passed" in completed.stdout


BROKEN_COPIES = {
    "missing host path": (
        "docker-compose.yaml",
        "./dags:/opt/airflow/dags",
        "./missing-dags:/opt/airflow/dags",
        "FAIL host paths: docker-compose.yaml mounts or builds from './missing-dags'",
    ),
    "undefined variable": (
        "docker-compose.yaml",
        'AIRFLOW__CORE__LOAD_EXAMPLES: "false"',
        "AIRFLOW__CORE__LOAD_EXAMPLES: ${CERKL_UNDEFINED_SETTING}",
        "FAIL variables: docker-compose.yaml uses ${CERKL_UNDEFINED_SETTING}",
    ),
    "hadolint finding": (
        "Dockerfile",
        "ENV PYTHONPATH=/opt/airflow",
        "ENV PYTHONPATH=/opt/airflow\nRUN cd /opt/airflow && ls",
        "DL3003",
    ),
    "schema violation in override": (
        "docker-compose.sandbox.yaml",
        "    restart: always",
        "    restart: always\n    unknown_service_key: true",
        "FAIL compose schema",
    ),
    "missing copy source": (
        "Dockerfile",
        "COPY deploy/ /opt/airflow/deploy/",
        "COPY deploy/ /opt/airflow/deploy/\nCOPY missing.txt /opt/airflow/",
        "FAIL dockerfile sources: Dockerfile copies 'missing.txt'",
    ),
    "copy source excluded by dockerignore": (
        "Dockerfile",
        "COPY deploy/ /opt/airflow/deploy/",
        "COPY deploy/ /opt/airflow/deploy/\nCOPY .env.example /opt/airflow/",
        "which .dockerignore excludes",
    ),
    "airflow tag differs from pin": (
        "Dockerfile",
        "FROM apache/airflow:3.3.2-python3.11",
        "FROM apache/airflow:3.3.1-python3.11",
        "uses Airflow 3.3.1 but requirements.txt pins 3.3.2",
    ),
}


@pytest.mark.parametrize("case", sorted(BROKEN_COPIES))
def test_validate_deployment_reports_broken_copy(repository_copy: Path, case: str):
    file_name, old, new, expected = BROKEN_COPIES[case]
    path = repository_copy / file_name
    original = path.read_text()
    assert old in original, f"test setup: {old!r} not found in {file_name}"
    path.write_text(original.replace(old, new, 1))

    completed = run_validation(repository_copy)

    assert completed.returncode == 1, completed.stdout + completed.stderr
    assert expected in completed.stdout
    assert "Deployment validation failed" in completed.stdout


def test_validate_deployment_passes_on_clean_copy(repository_copy: Path):
    completed = run_validation(repository_copy)

    assert completed.returncode == 0, completed.stdout + completed.stderr


@pytest.mark.slow
def test_airflow_init_creates_missing_and_keeps_edits(tmp_path: Path):
    state_db_url = f"sqlite:///{tmp_path / 'state.db'}"
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env |= {
        "AIRFLOW_HOME": str(tmp_path),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW_CONN_CERKL_SYNC_STATE": json.dumps(
            {"conn_type": "generic", "extra": {"url": state_db_url}}
        ),
        "PYTHONPATH": str(REPOSITORY),
        # The script calls `airflow` and `python` as the image's PATH provides them.
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    bootstrap = REPOSITORY / "deploy" / "bootstrap_airflow.py"

    def run(*command: str) -> subprocess.CompletedProcess[str]:
        completed = subprocess.run(
            command, cwd=REPOSITORY, env=env, capture_output=True, text=True, timeout=180
        )
        assert completed.returncode == 0, completed.stdout + completed.stderr
        return completed

    first = run("bash", str(REPOSITORY / "deploy" / "airflow-init.sh"))
    first_output = first.stdout + first.stderr

    assert "State DB at" in first_output
    assert "Pool cerkl_api created" in first_output
    assert "Variable cerkl_organization_id created" in first_output
    assert "Variable cerkl_sync_config created" in first_output
    assert "Bootstrap finished" in first_output
    assert (tmp_path / "state.db").exists()

    # Reads the defaults, edits them as an operator would, runs the bootstrap again in the same
    # process and prints what the metadata database contains afterwards.
    edit_and_rerun = f"""
import json, runpy, sys
from airflow.models.pool import Pool
from airflow.models.variable import Variable
created = {{
    "slots": Pool.get_pool("cerkl_api").slots,
    "organization_id": Variable.get("cerkl_organization_id"),
    "sync_config": Variable.get("cerkl_sync_config"),
}}
Pool.create_or_update_pool("cerkl_api", 9, "edited", False)
Variable.set("cerkl_organization_id", "001EDITED")
sys.argv = ["bootstrap_airflow.py"]
try:
    runpy.run_path({str(bootstrap)!r}, run_name="__main__")
except SystemExit:
    pass
after_rerun = {{
    "slots": Pool.get_pool("cerkl_api").slots,
    "organization_id": Variable.get("cerkl_organization_id"),
}}
print("RESULT " + json.dumps({{"created": created, "after_rerun": after_rerun}}))
"""
    second = run(sys.executable, "-c", edit_and_rerun)
    second_output = second.stdout + second.stderr
    result_line = next(line for line in second_output.splitlines() if line.startswith("RESULT "))
    result = json.loads(result_line.removeprefix("RESULT "))
    defaults = run(sys.executable, "-m", "include.cerkl_sync.config", "--print-defaults").stdout

    assert result["created"]["slots"] == 4
    assert result["created"]["organization_id"] == "001C000001aTtMa"
    assert json.loads(result["created"]["sync_config"]) == json.loads(defaults)
    assert "Pool cerkl_api exists, left unchanged" in second_output
    assert "Variable cerkl_organization_id exists, left unchanged" in second_output
    assert result["after_rerun"] == {"slots": 9, "organization_id": "001EDITED"}


def compose_services() -> dict[str, dict]:
    """Return the services of docker-compose.yaml merged with the sandbox override."""
    validation = load_validation_module()
    merged: dict = {}
    for name in validation.COMPOSE_FILES:
        merged = validation.merge_compose(merged, validation.load_yaml(REPOSITORY / name))
    return merged["services"]


@pytest.mark.slow
def test_compose_airflow_settings_exist_in_airflow(tmp_path: Path):
    settings = sorted(
        {
            key
            for service in compose_services().values()
            for key in (service.get("environment") or {})
            if key.startswith("AIRFLOW__")
        }
    )
    environment = compose_services()["airflow-scheduler"]["environment"]
    class_paths = [
        environment["AIRFLOW__CORE__XCOM_BACKEND"],
        environment["AIRFLOW__CORE__AUTH_MANAGER"],
        "airflow.providers.celery.executors.celery_executor.app",
    ]
    # Lists the settings unknown to the installed Airflow and providers, and the class paths
    # that do not import, in a fresh AIRFLOW_HOME so no airflow.cfg is written elsewhere.
    script = f"""
import importlib, json
from airflow.configuration import conf
known = {{
    "AIRFLOW__" + section.replace(".", "_").upper() + "__" + option.upper()
    for section, description in conf.configuration_description.items()
    for option in description.get("options", {{}})
}}
unknown = [name for name in {settings!r} if name not in known]
unimportable = []
for path in {class_paths!r}:
    module_name, _, attribute = path.rpartition(".")
    try:
        getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError):
        unimportable.append(path)
print("RESULT " + json.dumps({{"unknown": unknown, "unimportable": unimportable}}))
"""
    env = {key: value for key, value in os.environ.items() if not key.startswith("AIRFLOW")}
    env["AIRFLOW_HOME"] = str(tmp_path)
    completed = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=120
    )
    assert completed.returncode == 0, completed.stdout + completed.stderr
    result_line = next(line for line in completed.stdout.splitlines() if line.startswith("RESULT "))
    result = json.loads(result_line.removeprefix("RESULT "))

    assert len(settings) > 10
    assert result["unknown"] == []
    assert result["unimportable"] == []


def test_sandbox_command_parses_with_sandbox_cli():
    from include.sandbox.__main__ import build_parser

    command = compose_services()["sandbox"]["command"]
    assert command[:3] == ["python", "-m", "include.sandbox"]

    arguments = build_parser().parse_args(command[3:])

    assert arguments.command == "serve"
    assert arguments.host == "0.0.0.0"
    assert str(arguments.data_dir) == "/data"
    assert arguments.salesforce_port == 8701
    assert arguments.cerkl_port == 8702
    assert arguments.seed_if_empty is True


def test_init_command_is_in_mounted_deploy():
    services = compose_services()
    init_script = services["airflow-init"]["command"][0]
    deploy_mounts = [
        volume for volume in services["airflow-init"]["volumes"] if volume.startswith("./deploy:")
    ]

    assert init_script == "/opt/airflow/deploy/airflow-init.sh"
    assert deploy_mounts == ["./deploy:/opt/airflow/deploy:ro"]
    assert (REPOSITORY / "deploy" / "airflow-init.sh").is_file()
