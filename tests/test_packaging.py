"""The client distribution (clients/, `mend-client`) as a user gets it: `pip install` into an
empty virtualenv brings the library, the `mend` CLI and the stubs with grpcio, protobuf and
googleapis-common-protos only, and what it installed talks to a real server. And the declared
dependency floors hold what the generated stubs demand."""

from __future__ import annotations

import asyncio
import json
import os
import re
import shutil
import subprocess
import tomllib
import venv
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

from mend_server.server import MendServer
from tests.conftest import API_KEY

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"
STUBS = CLIENTS / "mend" / "v1"

# What `pip install ./clients` may bring besides itself: the three named by the design, their
# own requirements (grpcio needs typing-extensions) and grpcio-status (gRPC's own decoder of
# error details, which requires only those three). pip and setuptools come with venv.
ALLOWED = {"grpcio", "grpcio-status", "protobuf", "googleapis-common-protos", "typing-extensions"}
FROM_VENV = {"pip", "setuptools", "wheel"}
# pip's words when it cannot reach the package index: then the test cannot tell anything.
OFFLINE = re.compile(
    r"NewConnectionError|Temporary failure in name resolution|Network is unreachable"
)


def requirements(pyproject: Path) -> dict[str, Requirement]:
    project = tomllib.loads(pyproject.read_text())["project"]
    return {canonicalize_name(r.name): r for r in map(Requirement, project["dependencies"])}


def version_of(pyproject: Path) -> str:
    return str(tomllib.loads(pyproject.read_text())["project"]["version"])


def floor(requirement: Requirement) -> Version:
    [lowest] = [Version(s.version) for s in requirement.specifier if s.operator == ">="]
    return lowest


def generated_versions() -> tuple[Version, Version]:
    """The protobuf and grpcio versions that generated the committed stubs, as their
    runtime checks state them."""
    pb2 = (STUBS / "jobs_pb2.py").read_text()
    found = re.search(r"Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", pb2)
    assert found, "jobs_pb2.py has no ValidateProtobufRuntimeVersion call"
    grpc_py = (STUBS / "jobs_pb2_grpc.py").read_text()
    grpc = re.search(r"GRPC_GENERATED_VERSION = '([^']+)'", grpc_py)
    assert grpc, "jobs_pb2_grpc.py has no GRPC_GENERATED_VERSION"
    return Version(".".join(found.groups())), Version(grpc.group(1))


@pytest.mark.parametrize("pyproject", [CLIENTS / "pyproject.toml", ROOT / "pyproject.toml"])
def test_declared_floors_admit_only_runtimes_the_stubs_accept(pyproject: Path) -> None:
    protobuf_made, grpcio_made = generated_versions()
    declared = requirements(pyproject)
    protobuf, grpcio = declared["protobuf"], declared["grpcio"]
    assert floor(protobuf) >= protobuf_made, f"{protobuf}: the stubs need {protobuf_made}"
    # protobuf rejects gencode of a newer major, and warns on an older one.
    assert not protobuf.specifier.contains(f"{protobuf_made.major + 1}.0.0"), protobuf
    assert floor(grpcio) >= grpcio_made, f"{grpcio}: the stubs need {grpcio_made}"
    # A floor, not a pin: a user's newer grpcio 1.x must do.
    assert grpcio.specifier.contains(f"{grpcio_made.major}.{grpcio_made.minor + 5}.0"), grpcio


def test_the_server_requires_the_client_distribution_it_ships_with() -> None:
    client = tomllib.loads((CLIENTS / "pyproject.toml").read_text())["project"]
    server = requirements(ROOT / "pyproject.toml")
    assert server[canonicalize_name(client["name"])].specifier.contains(client["version"])


def installed(python: Path) -> set[str]:
    out = subprocess.run(
        [str(python), "-m", "pip", "list", "--format=json"],
        check=True, capture_output=True, text=True, timeout=60, env=clean_env(),
    ).stdout
    return {canonicalize_name(p["name"]) for p in json.loads(out)}


@pytest.fixture(scope="module")
def client_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty virtualenv with `pip install ./clients` done, as a user would (build
    isolation and all). It installs from a copy, so that the build leaves nothing in the
    worktree. Returns its bin directory."""
    base = tmp_path_factory.mktemp("client-venv")
    source = base / "clients"
    skip = shutil.ignore_patterns("__pycache__", "build", "*.egg-info")
    shutil.copytree(CLIENTS, source, ignore=skip)
    venv.create(base / "venv", with_pip=True)
    bin_dir = base / "venv" / "bin"
    # Nothing of the worktree or of the test's virtualenv may leak into it.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(
        [str(bin_dir / "python"), "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True, text=True, timeout=240, env=env,
    )
    if done.returncode != 0 and OFFLINE.search(done.stderr):
        pytest.skip(f"the package index is unreachable: {done.stderr.strip()[-300:]}")
    assert done.returncode == 0, f"pip install ./clients failed:\n{done.stderr}"
    return bin_dir


def test_pip_install_clients_pulls_only_grpc_and_protobuf(client_venv: Path) -> None:
    packages = installed(client_venv / "python") - FROM_VENV
    assert "mend-client" in packages
    assert packages - {"mend-client"} <= ALLOWED, f"unexpected: {packages - ALLOWED}"
    assert {"grpcio", "protobuf", "googleapis-common-protos"} <= packages


def clean_env(**extra: str) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("MEND_")
    }
    return {**env, **extra}


def test_installed_package_imports_its_stubs_and_is_typed(client_venv: Path) -> None:
    code = (
        "import importlib.resources as r, mend_client, mend.v1.jobs_pb2_grpc as g;"
        "print(g.__file__);"
        "print(r.files('mend_client').joinpath('py.typed').is_file(),"
        " r.files('mend').joinpath('py.typed').is_file(),"
        " r.files('mend.v1').joinpath('jobs_pb2.pyi').is_file())"
    )
    done = subprocess.run(
        [str(client_venv / "python"), "-c", code],
        capture_output=True, text=True, timeout=60, env=clean_env(), cwd=client_venv,
    )
    assert done.returncode == 0, done.stderr
    where, typed = done.stdout.splitlines()
    assert Path(where).is_relative_to(client_venv.parent), f"imported from {where}"
    assert typed == "True True True"


def test_installed_cli_prints_help(client_venv: Path) -> None:
    done = subprocess.run(
        [str(client_venv / "mend"), "--help"],
        capture_output=True, text=True, timeout=60, env=clean_env(), cwd=client_venv,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("usage: mend")
    assert "submit" in done.stdout and "watch" in done.stdout


async def test_installed_cli_talks_to_a_real_server(
    client_venv: Path, mend_server: MendServer
) -> None:
    env = clean_env(MEND_ADDRESS=f"127.0.0.1:{mend_server.port}", MEND_API_KEY=API_KEY)
    # Not blocking: the server under test runs in this event loop.
    process = await asyncio.create_subprocess_exec(
        str(client_venv / "mend"), "--json", "stats", env=env, cwd=client_venv,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    assert "totals" in json.loads(out)
