"""The container stack (docker-compose.yml, Dockerfile, .dockerignore) is wired right.

No Docker engine is needed: the files are parsed and checked against each other, and
`docker compose config` (the compose plugin, or Debian's docker-compose that scripts/test.sh
installs) must accept the compose file.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
APP_SERVICES = ("api", "projector", "scheduler", "scheduler-standby", "notify", "deliver")
WORKERS = {"projector": "project", "scheduler": "scheduler", "scheduler-standby": "scheduler", "notify": "notify",
           "deliver": "deliver"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((ROOT / "docker-compose.yml").read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


@pytest.fixture(scope="module")
def final_stage() -> dict[str, list[str]]:
    """The Dockerfile's last stage: instruction name -> argument strings, in order."""
    text = re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text())
    stage: dict[str, list[str]] = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        instruction, _, args = line.partition(" ")
        if instruction.upper() == "FROM":
            stage = {}
        stage.setdefault(instruction.upper(), []).append(args.strip())
    return stage


def as_argv(command: str | list[str]) -> list[str]:
    """A compose `command`/`test` or a Dockerfile CMD, exec (JSON) or shell form, as argv."""
    if isinstance(command, list):
        return command
    return json.loads(command) if command.startswith("[") else shlex.split(command)


def environment(service: dict) -> dict[str, str]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return env


def waits_for_healthy_postgres(service: dict) -> bool:
    depends_on = service.get("depends_on") or {}
    return isinstance(depends_on, dict) and (depends_on.get("postgres") or {}).get("condition") == "service_healthy"


def test_the_stack_has_postgres_an_api_a_projector_two_schedulers_and_the_senders(services):
    assert {"postgres", *APP_SERVICES} <= services.keys()


def test_the_api_publishes_port_8000(services):
    published = [str(port) for port in services["api"]["ports"]]
    assert "8000:8000" in published


def test_the_api_reaches_the_postgres_service_with_the_database_and_credentials_it_defines(services):
    postgres = environment(services["postgres"])
    url = urlsplit(environment(services["api"])["DATABASE_URL"])
    assert url.scheme in {"postgresql", "postgres"}
    assert url.hostname == "postgres"
    assert url.port in {None, 5432}
    assert url.username == postgres["POSTGRES_USER"]
    assert url.password == postgres["POSTGRES_PASSWORD"]
    assert url.path.lstrip("/") == postgres.get("POSTGRES_DB", postgres["POSTGRES_USER"])


def test_the_workers_share_the_apis_database(services):
    api_url = environment(services["api"])["DATABASE_URL"]
    for name in WORKERS:
        assert environment(services[name]).get("DATABASE_URL") == api_url, name


def test_the_app_services_run_the_image_with_their_own_cli_command(services):
    commands = {name: as_argv(services[name]["command"])[:2] for name in APP_SERVICES}
    assert commands == {
        "api": ["collections-es", "serve"],
        **{name: ["collections-es", role] for name, role in WORKERS.items()},
    }
    images = {(str(services[name].get("build")), services[name].get("image")) for name in APP_SERVICES}
    assert len(images) == 1


def test_every_service_has_a_healthcheck_or_waits_for_a_healthy_postgres(services):
    for name, service in services.items():
        has_healthcheck = bool(service.get("healthcheck")) and not service["healthcheck"].get("disable")
        assert has_healthcheck or waits_for_healthy_postgres(service), name


def test_the_app_services_start_only_once_postgres_is_healthy(services):
    for name in APP_SERVICES:
        assert waits_for_healthy_postgres(services[name]), name


def test_the_postgres_healthcheck_asks_pg_isready_and_its_data_lives_in_a_named_volume(compose, services):
    postgres = services["postgres"]
    assert "pg_isready" in " ".join(as_argv(postgres["healthcheck"]["test"]))
    volume = postgres["volumes"][0].split(":")[0]
    assert volume in (compose.get("volumes") or {})


def test_the_api_healthcheck_probes_readyz(services):
    assert "/readyz" in " ".join(as_argv(services["api"]["healthcheck"]["test"]))


def test_each_piece_runs_alone_the_api_only_in_several_workers_with_the_projections_external(services):
    """ADR 0062: each process one role; `serve` is the API only when the projections are external."""
    for name in APP_SERVICES:
        assert environment(services[name]).get("COLLECTIONS_PROJECTIONS") == "external", name
    api = as_argv(services["api"]["command"])
    assert "--workers" in api and int(api[api.index("--workers") + 1]) >= 2


def test_two_schedulers_run_one_leading_and_one_standing_by(services):
    schedulers = [name for name in APP_SERVICES if as_argv(services[name]["command"])[1] == "scheduler"]
    assert len(schedulers) == 2


def test_each_worker_is_checked_by_collections_es_health_of_its_own_role(services):
    """A worker serves no HTTP: its check is its heartbeat (loop alive, leading or standing by)."""
    from collections_es.cli import WORKER_ROLES

    for name, role in WORKERS.items():
        healthcheck = services[name].get("healthcheck") or {}
        assert not healthcheck.get("disable"), name
        assert as_argv(healthcheck["test"])[1:] == ["collections-es", "health", role], name
        assert role in WORKER_ROLES


def compose_command() -> list[str] | None:
    """`docker compose` (the plugin) or `docker-compose`, whichever is installed."""
    if shutil.which("docker") and subprocess.run(["docker", "compose", "version"], capture_output=True).returncode == 0:
        return ["docker", "compose"]
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    return None


def test_docker_compose_config_accepts_the_file():
    command = compose_command()
    if command is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI=true: neither `docker compose` nor `docker-compose` is installed (scripts/test.sh installs it)")
        pytest.skip("neither `docker compose` nor `docker-compose` is installed (apt-get install docker-compose)")
    checked = subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), "config", "-q"],
                             capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert checked.returncode == 0, checked.stderr


def test_the_dockerfile_exposes_port_8000(final_stage):
    exposed = " ".join(final_stage.get("EXPOSE", [])).split()
    assert "8000" in exposed or "8000/tcp" in exposed


def test_the_dockerfile_starts_the_api_with_collections_es_serve(final_stage):
    argv = as_argv(final_stage["CMD"][-1])
    assert argv[:2] == ["collections-es", "serve"]
    assert "0.0.0.0" in argv


def test_the_dockerfile_healthcheck_fetches_healthz_with_urllib(final_stage):
    healthcheck = final_stage["HEALTHCHECK"][-1]
    assert "urllib" in healthcheck and "/healthz" in healthcheck


def test_the_image_runs_as_a_non_root_user(final_stage):
    user = final_stage.get("USER", ["root"])[-1]
    assert user.split(":")[0] not in {"root", "0"}


def dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    excluded = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = re.sub(r"\\\[(.*?)\\\]", r"[\1]", regex)
        if any(re.fullmatch(regex, candidate) for candidate in candidates):
            excluded = not negated
    return excluded


def test_every_path_the_dockerfile_copies_exists_and_is_in_the_build_context():
    lines = (ROOT / ".dockerignore").read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    dockerfile = (ROOT / "Dockerfile").read_text()
    sources = [
        source
        for args in re.findall(r"^COPY\s+(?!--from)(.+)$", dockerfile, flags=re.MULTILINE)
        for source in args.split()[:-1]
    ]
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), f"{source} is copied by the Dockerfile but missing"
        files = [ROOT / source] if (ROOT / source).is_file() else (ROOT / source).rglob("*")
        for file in files:
            if file.suffix in {".py", ".toml", ".md"} and "__pycache__" not in file.parts:
                relative = file.relative_to(ROOT).as_posix()
                assert not dockerignore_excludes(relative, patterns), f"{relative} is left out by .dockerignore"


def test_the_image_installs_every_package_under_src_and_projections():
    """The image is a regular (not editable) install: a package missing from pyproject is missing there."""
    setuptools = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    package_dir = setuptools.get("package-dir", {})
    roots = {name: ROOT / path for name, path in package_dir.items() if name} | {"": ROOT / package_dir.get("", ".")}
    on_disk = set()
    for prefix, root in roots.items():
        for module in root.rglob("*.py"):
            if "__pycache__" in module.parts or (not prefix and module.parent == root):
                continue
            dotted = ".".join(module.parent.relative_to(root).parts)
            on_disk.add(".".join(part for part in (prefix, dotted) if part))
    assert on_disk <= set(setuptools["packages"]), sorted(on_disk - set(setuptools["packages"]))
