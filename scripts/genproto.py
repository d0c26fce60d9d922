"""Generate the Python stubs of protos/ into a package directory (default clients/mend/v1)."""

import pathlib
import shutil
import sys
import tempfile

import grpc_tools
from grpc_tools import protoc

ROOT = pathlib.Path(__file__).resolve().parent.parent
PROTOS = ROOT / "protos"


def _include_dirs() -> list[str]:
    # google/api and google/rpc are vendored in protos/google; google/protobuf/*.proto ship
    # with grpc_tools (as with protoc, grpcurl and protobuf.js).
    return [str(PROTOS), str(pathlib.Path(grpc_tools.__file__).parent / "_proto")]


def generate(out_package: pathlib.Path) -> None:
    # Mend's own protos only: the vendored google ones have their stubs in
    # googleapis-common-protos.
    sources = sorted(str(p.relative_to(PROTOS)) for p in (PROTOS / "mend").rglob("*.proto"))
    with tempfile.TemporaryDirectory() as tmp:
        args = ["protoc", *(f"-I{d}" for d in _include_dirs())]
        args += [f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *sources]
        if protoc.main(args) != 0:
            sys.exit("protoc failed")
        generated = pathlib.Path(tmp) / "mend" / "v1"
        out_package.mkdir(parents=True, exist_ok=True)
        for old in out_package.glob("*_pb2*.py*"):
            old.unlink()
        for new in generated.iterdir():
            shutil.copy(new, out_package / new.name)
    for package in (out_package, out_package.parent):
        (package / "__init__.py").touch()


if __name__ == "__main__":
    generate(pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "clients/mend/v1"))
