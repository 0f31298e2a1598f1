"""Deployment files: docker-compose.yml, the Dockerfile, the systemd units and the runbook.

Docker cannot run here, so the files are parsed and checked; `docker compose config` runs
too when a docker CLI with compose is installed.
"""

from __future__ import annotations

import configparser
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import pytest
import yaml

from worker.cli.app import cli
from worker.errors import ConfigError
from worker.redis_client import SentinelUrl
from worker.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
SYSTEMD = ROOT / "ops" / "systemd"
RUNBOOK = ROOT / "ops" / "runbook.md"

DEFAULT_SERVICES = {"redis", "worker", "flower"}
DEV_SERVICES = {"fake-activecampaign", "worker-dev", "flask-app", "django-app"}
SENTINELS = {"sentinel-1", "sentinel-2", "sentinel-3"}
SENTINEL_SERVICES = {"redis-master", "redis-replica", "worker-sentinel"} | SENTINELS
WORKER_COMMAND = ["celery", "-A", "worker", "worker", "--concurrency", "4"]
TOKEN_FILE = "/run/secrets/activecampaign_api_token"
# Something that looks like a credential (ActiveCampaign's keys are 72 hex digits): a long
# run of letters and digits with at least one of each. Variable names have underscores.
TOKEN_LIKE = re.compile(r"(?=[A-Za-z0-9]*[0-9])(?=[A-Za-z0-9]*[A-Za-z])[A-Za-z0-9]{24,}")
SENSITIVE_NAME = re.compile(r"TOKEN|PASSWORD|SECRET|BASIC_AUTH|API_KEY", re.IGNORECASE)
# ${NAME}, ${NAME:-default}, ${NAME:?message}: a value taken from the environment.
INTERPOLATION = re.compile(r"^\$\{(?P<name>\w+)(?::?(?P<op>[-?])(?P<rest>[^}]*))?\}$")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text("utf-8"))
    return loaded


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _resolve(value: Any, environ: dict[str, str]) -> str | None:
    """A compose environment value as the container sees it, for the simple forms we use."""
    if value is None:  # `NAME:` with no value passes the shell's NAME through, if set
        return None
    text = str(value)
    match = INTERPOLATION.match(text)
    if match is None:
        return text
    if match["name"] in environ:
        return environ[match["name"]]
    return match["rest"] if match["op"] == "-" else None


def _container_env(service: dict[str, Any], environ: dict[str, str]) -> dict[str, str]:
    resolved = {name: _resolve(value, environ) for name, value in service["environment"].items()}
    return {name: value for name, value in resolved.items() if value is not None}


def _strings(node: Any) -> list[str]:
    if isinstance(node, dict):
        return [text for key, value in node.items() for text in [str(key), *_strings(value)]]
    if isinstance(node, list):
        return [text for item in node for text in _strings(item)]
    return [] if node is None else [str(node)]


def _compose_cli() -> list[str] | None:
    for command in (["docker", "compose"], ["docker-compose"]):
        if shutil.which(command[0]) is None:
            continue
        try:
            probe = subprocess.run(
                [*command, "version"], capture_output=True, timeout=30, check=False
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if probe.returncode == 0:
            return command
    return None


def test_docker_compose_accepts_the_file_with_and_without_the_dev_profile(
    tmp_path: Path,
) -> None:
    """`docker compose config -q` passes for the default and the dev profile, and fails without FLOWER_BASIC_AUTH."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip("no docker compose CLI here; the YAML checks below still run")
    token_file = tmp_path / "token"
    token_file.write_text("not-a-real-token")
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("FLOWER_", "ACTIVECAMPAIGN_", "CONTACT_SYNC_", "COMPOSE_"))
    }
    env["ACTIVECAMPAIGN_API_TOKEN_HOST_FILE"] = str(token_file)
    # An empty env file: a developer's own .env must not decide the outcome.
    empty_env_file = tmp_path / "empty.env"
    empty_env_file.write_text("")
    base = [*cli, "--project-directory", str(ROOT), "--env-file", str(empty_env_file)]
    base += ["-f", str(COMPOSE)]

    def config(*profile: str, **extra: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*base, *profile, "config", "-q"],
            env={**env, **extra},
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    for profile in ((), ("--profile", "dev"), ("--profile", "sentinel")):
        result = config(*profile, FLOWER_BASIC_AUTH="ops:secret")
        assert result.returncode == 0, result.stderr
    missing = config()
    assert missing.returncode != 0
    assert "FLOWER_BASIC_AUTH" in missing.stderr


def test_services_by_profile(services: dict[str, dict[str, Any]]) -> None:
    """Redis, worker and Flower run by default; the emulator, its worker and the examples only under the dev profile; the Sentinel deployment and its worker only under the sentinel profile."""
    default = {name for name, service in services.items() if not service.get("profiles")}
    dev = {name for name, service in services.items() if "dev" in service.get("profiles", [])}
    sentinel = {
        name for name, service in services.items() if "sentinel" in service.get("profiles", [])
    }
    assert default == DEFAULT_SERVICES
    assert dev == DEV_SERVICES
    assert sentinel == SENTINEL_SERVICES


def test_sentinel_profile_runs_a_master_a_replica_and_three_sentinels(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The master and its replica persist (AOF, noeviction, a volume each); three sentinels watch the master with a quorum of 2; the worker's one URL names those sentinels and the master they watch, and settings accept it."""
    for name in ("redis-master", "redis-replica"):
        command = " ".join(_command(services[name]))
        assert "--appendonly yes" in command
        assert "--maxmemory-policy noeviction" in command
        assert f"--replica-announce-ip {name}" in command
        (volume,) = services[name]["volumes"]
        assert volume.split(":")[0] in compose["volumes"]
        assert services[name]["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    assert "--replicaof redis-master 6379" in " ".join(_command(services["redis-replica"]))
    monitored = set()
    for name in SENTINELS:
        command = " ".join(_command(services[name]))
        assert command.endswith("redis-server /data/sentinel.conf --sentinel")
        assert "'port 26379'" in command
        assert "'sentinel resolve-hostnames yes'" in command
        (monitor,) = re.findall(r"'sentinel monitor (\S+) (\S+) (\d+) (\d+)'", command)
        monitored.add(monitor)
        assert services[name]["healthcheck"]["test"][1:] == ["redis-cli", "-p", "26379", "ping"]
    ((master_name, host, port, quorum),) = monitored
    assert (host, port, int(quorum)) == ("redis-master", "6379", len(SENTINELS) // 2 + 1)

    worker = services["worker-sentinel"]
    assert _command(worker) == WORKER_COMMAND
    assert "ports" not in worker
    assert int(str(worker["stop_grace_period"]).rstrip("s")) >= 60
    assert {name: dep["condition"] for name, dep in worker["depends_on"].items()} == {
        name: "service_healthy" for name in SENTINELS
    }
    env = _container_env(worker, {"ACTIVECAMPAIGN_URL": "https://acct.api-us1.com"})
    env["ACTIVECAMPAIGN_API_TOKEN_FILE"] = ""  # the secret exists only in a container
    url = SentinelUrl.parse(Settings.from_env(env).redis_url)
    assert set(url.sentinels) == {(name, 26379) for name in SENTINELS}
    assert url.master_name == master_name


def test_redis_is_persistent_never_evicts_and_has_a_healthcheck(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Redis runs with appendonly yes and noeviction, answers a redis-cli ping healthcheck and keeps /data in a named volume."""
    redis = services["redis"]
    assert str(redis["image"]).split(":")[0] == "redis"
    assert str(redis["image"]).split(":")[1].startswith("7")
    command = " ".join(_command(redis))
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert redis["healthcheck"]["test"][1:] == ["redis-cli", "ping"]
    (volume,) = redis["volumes"]
    name, target = volume.split(":")[:2]
    assert target == "/data"
    assert name in compose["volumes"]


def test_workers_scale_without_names_or_host_ports(services: dict[str, dict[str, Any]]) -> None:
    """No service sets container_name, and the workers publish no port, so --scale worker=N works."""
    for name, service in services.items():
        assert "container_name" not in service, name
    for name in ("worker", "worker-dev"):
        worker = services[name]
        assert "ports" not in worker, name
        assert _command(worker) == WORKER_COMMAND
        assert worker["depends_on"]["redis"]["condition"] == "service_healthy"
        assert worker["build"]["context"] == "."
        # Celery's warm shutdown needs longer than Docker's default 10 s.
        assert int(str(worker["stop_grace_period"]).rstrip("s")) >= 60


def test_worker_reads_url_from_the_environment_and_token_from_a_secret_file(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """The worker gets ACTIVECAMPAIGN_URL from the environment, the token as a compose secret file, and Redis at redis:6379."""
    worker = services["worker"]
    env = worker["environment"]
    assert env["CONTACT_SYNC_REDIS_URL"] == "redis://redis:6379/0"
    assert str(env["ACTIVECAMPAIGN_URL"]).startswith("${ACTIVECAMPAIGN_URL")
    assert "ACTIVECAMPAIGN_API_TOKEN" not in env
    assert env["ACTIVECAMPAIGN_API_TOKEN_FILE"] == TOKEN_FILE
    secret = TOKEN_FILE.rsplit("/", 1)[1]
    assert secret in worker["secrets"]
    assert set(compose["secrets"][secret]) <= {"file", "environment"}

    settings = Settings.from_env(
        {
            **_container_env(worker, {"ACTIVECAMPAIGN_URL": "https://acct.api-us1.com"}),
            "ACTIVECAMPAIGN_API_TOKEN_FILE": "",  # the secret exists only in a container
        }
    )
    assert settings.redis_url == "redis://redis:6379/0"
    assert settings.activecampaign_url == "https://acct.api-us1.com"


def test_dev_worker_is_allowed_to_reach_the_emulator_over_http(
    services: dict[str, dict[str, Any]],
) -> None:
    """The dev profile's worker points at http://fake-activecampaign:8025 with CONTACT_SYNC_ALLOW_INSECURE_URL, which settings accept."""
    worker = services["worker-dev"]
    env = _container_env(worker, {})
    assert env["ACTIVECAMPAIGN_URL"] == "http://fake-activecampaign:8025"
    assert env["ACTIVECAMPAIGN_API_TOKEN_FILE"] == TOKEN_FILE
    assert worker["depends_on"]["fake-activecampaign"]
    env["ACTIVECAMPAIGN_API_TOKEN_FILE"] = ""
    assert Settings.from_env(env).activecampaign_url == "http://fake-activecampaign:8025"
    # ...and the same URL without the flag is refused, so the flag is what makes it work.
    del env["CONTACT_SYNC_ALLOW_INSECURE_URL"]
    with pytest.raises(ConfigError, match="ACTIVECAMPAIGN_URL"):
        Settings.from_env(env)


def test_flower_requires_basic_auth_from_the_environment(
    services: dict[str, dict[str, Any]],
) -> None:
    """Flower runs `celery -A worker flower` on 5555, takes FLOWER_BASIC_AUTH from the environment (required) and never gets the token."""
    flower = services["flower"]
    command = _command(flower)
    assert command[:4] == ["celery", "-A", "worker", "flower"]
    assert "--port=5555" in command
    auth = INTERPOLATION.match(flower["environment"]["FLOWER_BASIC_AUTH"])
    assert auth is not None
    assert (auth["name"], auth["op"]) == ("FLOWER_BASIC_AUTH", "?")
    assert not any(name.startswith("ACTIVECAMPAIGN_") for name in flower["environment"])
    assert "secrets" not in flower
    assert flower["ports"] == ["127.0.0.1:${FLOWER_PORT:-5555}:5555"]


def test_dev_services_run_the_emulator_and_the_examples(
    services: dict[str, dict[str, Any]],
) -> None:
    """The dev profile runs the emulator on 0.0.0.0:8025 and the Flask and Django examples."""
    emulator = " ".join(_command(services["fake-activecampaign"]))
    assert "contact-sync fake-activecampaign --host 0.0.0.0 --port 8025" in emulator
    assert _command(services["flask-app"]) == ["python", "examples/flask_app/app.py"]
    assert _command(services["django-app"]) == [
        "python",
        "examples/django_project/manage.py",
        "runserver",
        "0.0.0.0:8000",
    ]
    for name in ("flask-app", "django-app"):
        assert services[name]["build"]["target"] == "dev"
        assert services[name]["environment"]["CONTACT_SYNC_REDIS_URL"] == "redis://redis:6379/0"


def test_compose_file_holds_no_secret(compose: dict[str, Any]) -> None:
    """No value looks like a token, and every sensitive variable comes from the environment or a secret file."""
    for text in _strings(compose):
        assert not TOKEN_LIKE.search(text), text
    for name, service in compose["services"].items():
        for variable, value in (service.get("environment") or {}).items():
            if SENSITIVE_NAME.search(variable):
                text = str(value)
                assert INTERPOLATION.match(text) or text.startswith("/run/secrets/"), (
                    f"{name}: {variable}={text}"
                )


def _dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) pairs, with continuation lines joined and comments dropped."""
    text = DOCKERFILE.read_text("utf-8")
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n\s*", " ", "\n".join(lines))
    pairs = []
    for line in joined.splitlines():
        if line.strip():
            instruction, _, arguments = line.strip().partition(" ")
            pairs.append((instruction.upper(), arguments.strip()))
    return pairs


def test_dockerfile_runs_the_worker_as_a_non_root_user_without_baked_secrets() -> None:
    """The image is python:3.11-slim, installs .[flower], ends as a non-root USER, runs the worker, and sets no token."""
    instructions = _dockerfile_instructions()
    froms = [arguments for instruction, arguments in instructions if instruction == "FROM"]
    assert froms[0].startswith("python:3.11-slim")
    assert any(
        instruction == "RUN" and 'pip install ".[flower]"' in arguments
        for instruction, arguments in instructions
    )
    users = [arguments for instruction, arguments in instructions if instruction == "USER"]
    assert users[-1].split(":")[0] not in {"root", "0"}
    (cmd,) = [arguments for instruction, arguments in instructions if instruction == "CMD"]
    assert cmd == '["celery", "-A", "worker", "worker", "--concurrency", "4"]'
    for instruction, arguments in instructions:
        if instruction in {"ENV", "ARG", "LABEL"}:
            assert not SENSITIVE_NAME.search(arguments), arguments
        assert not TOKEN_LIKE.search(arguments), arguments
        if instruction in {"COPY", "ADD"}:
            assert "secrets" not in arguments, arguments
            assert ".env" not in arguments, arguments
    ignored = (ROOT / ".dockerignore").read_text("utf-8").split()
    assert {"secrets", ".env", ".git", ".venv"} <= set(ignored)


def test_the_runtime_and_dev_stages_end_as_the_unprivileged_user() -> None:
    """The final image and the runtime and dev targets run as the contact-sync user, not root."""
    final_user: dict[str, str] = {}
    stage, user = "", "root"
    for instruction, arguments in _dockerfile_instructions():
        if instruction == "FROM":
            final_user[stage] = user
            parts = arguments.split()
            stage = parts[2] if len(parts) == 3 and parts[1].upper() == "AS" else "<last>"
            # A stage built on an earlier one inherits its user; a base image starts as root.
            user = final_user.get(parts[0], "root")
        elif instruction == "USER":
            user = arguments.split(":")[0]
    final_user[stage] = user
    for target in ("runtime", "dev", "<last>"):
        assert final_user[target] == "contact-sync", target


def _unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(SYSTEMD / name, encoding="utf-8")
    return parser


def _unit_values(name: str, key: str) -> list[str]:
    """Every value of a key that may repeat (configparser keeps only the last one)."""
    text = (SYSTEMD / name).read_text("utf-8")
    return re.findall(rf"^{re.escape(key)}=(.*)$", text, flags=re.MULTILINE)


@pytest.mark.parametrize(
    ("unit", "subcommand"),
    [("contact-sync-worker.service", "worker"), ("contact-sync-flower.service", "flower")],
)
def test_systemd_units_run_celery_hardened_and_restart_on_failure(
    unit: str, subcommand: str
) -> None:
    """Each unit runs `celery -A worker <worker|flower>` with the shared environment file, restarts on failure and is hardened."""
    service = _unit(unit)["Service"]
    assert f"/celery -A worker {subcommand}" in service["ExecStart"]
    assert "/etc/contact-sync/env" in _unit_values(unit, "EnvironmentFile")
    assert service["Restart"] == "on-failure"
    assert service["KillSignal"] == "SIGTERM"
    for option, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
    }.items():
        assert service[option] == value, option
    assert "User" in service or service.get("DynamicUser") == "yes"
    assert _unit(unit)["Install"]["WantedBy"] == "multi-user.target"


def test_worker_unit_loads_the_token_as_a_credential_and_waits_for_warm_shutdown() -> None:
    """The worker unit passes the token as a LoadCredential file and gives Celery's warm shutdown time and the main process alone."""
    unit = "contact-sync-worker.service"
    service = _unit(unit)["Service"]
    (credential,) = _unit_values(unit, "LoadCredential")
    name, source = credential.split(":", 1)
    assert source.startswith("/etc/contact-sync/")
    assert f"ACTIVECAMPAIGN_API_TOKEN_FILE=%d/{name}" in _unit_values(unit, "Environment")
    assert service["KillMode"] == "mixed"
    # Longer than Celery's hard time limit (lease 50 s + 30 s with the defaults).
    assert int(service["TimeoutStopSec"]) >= 90
    assert "--concurrency 4" in service["ExecStart"]


def test_flower_unit_listens_on_loopback_and_never_gets_the_token() -> None:
    """The Flower unit binds 127.0.0.1, reads its password from a root-only file and unsets the token variables."""
    unit = "contact-sync-flower.service"
    service = _unit(unit)["Service"]
    assert "--address=127.0.0.1" in service["ExecStart"]
    assert "/etc/contact-sync/flower.env" in _unit_values(unit, "EnvironmentFile")
    assert set(service["UnsetEnvironment"].split()) == {
        "ACTIVECAMPAIGN_API_TOKEN",
        "ACTIVECAMPAIGN_API_TOKEN_FILE",
    }
    assert "LoadCredential" not in service


@pytest.mark.parametrize("unit", sorted(path.name for path in SYSTEMD.glob("*.service")))
def test_systemd_units_hold_no_secret(unit: str) -> None:
    """No unit sets a token or password literally."""
    text = (SYSTEMD / unit).read_text("utf-8")
    assert not re.search(r"^\s*Environment=.*(TOKEN|PASSWORD|BASIC_AUTH)=(?!%d/)", text, re.M)
    assert "--basic-auth" not in text
    assert not TOKEN_LIKE.search(text)


def test_systemd_analyze_verify_accepts_the_units(tmp_path: Path) -> None:
    """`systemd-analyze verify` finds no error in either unit (ExecStart pointed at this venv's celery)."""
    analyze = shutil.which("systemd-analyze")
    celery = shutil.which("celery") or str(Path(sys.executable).parent / "celery")
    if analyze is None or not Path(celery).exists():
        pytest.skip("systemd-analyze or celery not available")
    paths = []
    for unit in sorted(SYSTEMD.glob("*.service")):
        text = unit.read_text("utf-8").replace("/opt/contact-sync/venv/bin/celery", celery)
        copy = tmp_path / unit.name
        copy.write_text(text)
        paths.append(str(copy))
    result = subprocess.run(
        [analyze, "verify", "--man=no", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def _runbook_cli_commands() -> list[str]:
    text = RUNBOOK.read_text("utf-8")
    # The command up to a backtick, a pipe, a comment or the end of the line.
    pattern = r"(?<![\w/-])contact-sync ((?:status|dead-letters|enqueue)[^`|\n#]*)"
    return [match.group(1).strip() for match in re.finditer(pattern, text)]


def _parse(argv: list[str]) -> None:
    """Parse a command line down to its command, as `contact-sync` does, without running it."""
    command: click.Command = cli
    name, parent = "contact-sync", None
    while True:
        parent = command.make_context(name, list(argv), parent=parent)
        if not isinstance(command, click.Group):
            return
        # The CLI's groups have no options of their own: all after a group's name is its command's.
        found, sub, argv = command.resolve_command(parent, argv)
        assert found is not None  # resolve_command raises for an unknown name
        assert sub is not None
        name, command = found, sub


def test_every_contact_sync_command_in_the_runbook_parses() -> None:
    """Each `contact-sync ...` command the runbook shows is accepted by the CLI's own parser."""
    commands = _runbook_cli_commands()
    assert len(commands) >= 8
    for command in commands:
        try:
            _parse(shlex.split(command))
        except click.ClickException:
            pytest.fail(f"the runbook shows a command the CLI rejects: contact-sync {command}")


def test_the_runbook_check_rejects_what_the_cli_rejects() -> None:
    """The parse-only check above fails on an unknown command, option or a missing value."""
    for command in ("nope", "status --nope", "dead-letters show", "enqueue --first-name X"):
        with pytest.raises(click.UsageError):
            _parse(shlex.split(command))


def test_runbook_covers_each_alert_and_task() -> None:
    """The runbook has a section for every alert rule name and each operator task the issue lists."""
    text = RUNBOOK.read_text("utf-8")
    for alert in (
        "ContactSyncBacklogAge",
        "ContactSyncDeadLettersGrowing",
        "ContactSyncConfigErrors",
        "ContactSyncRateLimited",
    ):
        assert f"### {alert}" in text
    for section in (
        "## Deploy",
        "## Scale",
        "## Rotate the API token",
        "## Drain before shutdown",
        "## Read the logs",
        "## Replay dead letters",
        "## Alerts",
    ):
        assert section in text
    for event in (
        "contact.synced",
        "contact.unchanged",
        "contact.sync_retry",
        "contact.dead_lettered",
        "event.invalid",
        "pump.report",
    ):
        assert f"`{event}`" in text
