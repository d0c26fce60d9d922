"""The floors of the house, read from the source's imports (every `import`, `from ... import`,
relative or not, at any depth, and `importlib.import_module("literal")`):

- mend_core, shared by the server and the workers, knows no gRPC runtime, no ASGI, no
  server and no worker;
- mend_worker does not import the server;
- clients/ (the mend-client distribution) imports the standard library, its own packages
  (the library and the stubs) and what its pyproject.toml requires, nothing else of the
  project;
- the gRPC server (mend_server outside mend_server/gateway) does not import the gateway;
- none of Mend's packages imports mend_devkit (clients/ is covered by its own rule)."""

from __future__ import annotations

import ast
import importlib.metadata
import sys
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = ROOT / "clients"


def module_name(path: Path, source_root: Path) -> str:
    parts = list(path.relative_to(source_root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path, source_root: Path) -> Iterator[tuple[int, str]]:
    """(line, module) for every module the file imports; `from a import b` gives `a` and
    `a.b` (b may be a module)."""
    module = module_name(path, source_root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            yield node.lineno, target
            for alias in node.names:
                if alias.name != "*":
                    yield node.lineno, f"{target}.{alias.name}" if target else alias.name
        elif (
            isinstance(node, ast.Call)
            and ast.unparse(node.func) in ("importlib.import_module", "import_module", "__import__")
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.lineno, node.args[0].value


def under(*prefixes: str) -> Callable[[str], bool]:
    """A module test: the module is one of `prefixes` or inside one of them."""
    return lambda name: any(name == p or name.startswith(p + ".") for p in prefixes)


@dataclass(frozen=True)
class Rule:
    name: str
    source_root: Path
    packages: tuple[str, ...]  # the directories under source_root the rule reads
    forbidden: Callable[[str], bool]
    exempt: tuple[str, ...] = ()  # directories under source_root it does not read

    def files(self) -> Iterator[Path]:
        for package in self.packages:
            for path in sorted((self.source_root / package).rglob("*.py")):
                relative = path.relative_to(self.source_root).as_posix()
                if not any(relative.startswith(e + "/") for e in self.exempt):
                    yield path

    def violations(self) -> list[str]:
        return [
            f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}:{line} imports {name}"
            for path in self.files()
            for line, name in imports(path, self.source_root)
            if self.forbidden(name)
        ]


def _client_allowed_top_levels() -> set[str]:
    """The standard library, the distribution's own packages and the modules of the
    distributions its pyproject.toml requires (as installed here)."""
    project = tomllib.loads((CLIENTS / "pyproject.toml").read_text())["project"]
    required = {canonicalize_name(Requirement(r).name) for r in project["dependencies"]}
    provided = {
        module
        for module, dists in importlib.metadata.packages_distributions().items()
        if any(canonicalize_name(d) in required for d in dists)
    }
    return set(sys.stdlib_module_names) | {"__future__", "mend", "mend_client"} | provided


def _not_a_client_import(name: str) -> bool:
    return name.partition(".")[0] not in CLIENT_ALLOWED


CLIENT_ALLOWED = _client_allowed_top_levels()
GRPC_RUNTIME = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "grpc_tools")
ASGI = ("starlette", "uvicorn", "httptools")

CORE = Rule(
    "mend_core imports no gRPC runtime, ASGI, server or worker code",
    ROOT, ("mend_core",), under(*GRPC_RUNTIME, *ASGI, "mend_server", "mend_worker"),
)  # fmt: skip
WORKER = Rule("mend_worker does not import mend_server", ROOT, ("mend_worker",),
              under("mend_server"))  # fmt: skip
CLIENT = Rule(
    "clients/ imports only the stdlib, its own packages (library, stubs) and its requirements",
    CLIENTS, ("mend_client", "mend"), _not_a_client_import,
)  # fmt: skip
DEVKIT = Rule(
    "Mend's packages do not import mend_devkit (tooling for development, tests, benchmarks)",
    ROOT, ("mend_core", "mend_server", "mend_worker"), under("mend_devkit"),
)  # fmt: skip
SERVER = Rule(
    "the gRPC server does not import the REST gateway",
    ROOT, ("mend_server",), under("mend_server.gateway"), exempt=("mend_server/gateway",),
)  # fmt: skip


@pytest.mark.parametrize(
    "rule", [CORE, WORKER, CLIENT, SERVER, DEVKIT], ids=lambda r: r.name
)
def test_layering(rule: Rule) -> None:
    assert list(rule.files()), f"{rule.name}: no file read"
    assert rule.violations() == [], rule.name


def test_client_requirements_are_installed_here() -> None:
    # Else an import of grpc or google in clients/ would read as forbidden.
    assert {"grpc", "google"} <= CLIENT_ALLOWED


def test_the_checker_finds_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "mend_core" / "sub"
    package.mkdir(parents=True)
    (tmp_path / "mend_core" / "__init__.py").write_text("")
    (package / "__init__.py").write_text("from mend_server import gateway\n")
    (package / "plain.py").write_text("import os\nimport uvicorn.config\n")
    (package / "nested.py").write_text(
        "def f():\n    from mend_worker.worker import Worker\n    return Worker\n"
    )
    (package / "dynamic.py").write_text("import importlib\nimportlib.import_module('grpc.aio')\n")
    (package / "sibling.py").write_text("from .plain import os\nfrom . import nested\n")
    planted = Rule("planted", tmp_path, ("mend_core",), CORE.forbidden)
    found = sorted(v.rpartition(" imports ")[2] for v in planted.violations())
    assert found == [
        "grpc.aio", "mend_server", "mend_server.gateway", "mend_worker.worker",
        "mend_worker.worker.Worker", "uvicorn.config",
    ]  # fmt: skip
    assert [n for _, n in imports(package / "sibling.py", tmp_path)] == [
        "mend_core.sub.plain", "mend_core.sub.plain.os", "mend_core.sub", "mend_core.sub.nested",
    ]  # fmt: skip
