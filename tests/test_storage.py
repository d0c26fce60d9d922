"""FileStorage on a temp dir and S3Storage against moto in server mode (real HTTP)."""

from __future__ import annotations

import errno
import os
import pathlib
import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from mend_core import storage as storage_mod
from mend_core.errors import (
    PermanentError,
    SourceNotFound,
    SourceTooLarge,
    TransientError,
)
from mend_core.storage import FileStorage, S3Storage, open_storage
from mend_devkit.ports import free_port
from mend_devkit.s3 import MotoS3

# ------------------------------------------------------------------------------ files


@pytest.fixture
def fs(tmp_path: pathlib.Path) -> FileStorage:
    return FileStorage(tmp_path / "root")


def test_file_round_trip(fs: FileStorage) -> None:
    url = fs.put("media", "in/deep/cat.jpg", b"meow", "image/jpeg")
    path = fs.root / "media" / "in" / "deep" / "cat.jpg"
    assert url == path.as_uri() == fs.url("media", "in/deep/cat.jpg")
    assert url.startswith("file:///")
    assert path.read_bytes() == b"meow"
    assert fs.get("media", "in/deep/cat.jpg", max_bytes=4) == b"meow"


def test_file_overwrite_leaves_no_temp_files(fs: FileStorage) -> None:
    fs.put("b", "dir/x.png", b"one", "image/png")
    fs.put("b", "dir/x.png", b"two", "image/png")
    assert os.listdir(fs.root / "b" / "dir") == ["x.png"]
    assert fs.get("b", "dir/x.png", 10) == b"two"


def test_file_failed_write_keeps_old_object_and_removes_temp(
    fs: FileStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    fs.put("b", "x.png", b"old", "image/png")

    def broken_replace(src: Any, dst: Any) -> None:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "replace", broken_replace)
    with pytest.raises(TransientError):
        fs.put("b", "x.png", b"new", "image/png")
    assert os.listdir(fs.root / "b") == ["x.png"]
    assert (fs.root / "b" / "x.png").read_bytes() == b"old"


def test_file_missing_is_source_not_found(fs: FileStorage) -> None:
    url = (fs.root / "b" / "nope.jpg").as_uri()
    with pytest.raises(SourceNotFound) as exc:
        fs.get("b", "nope.jpg", 100)
    assert str(exc.value) == f"Source file not found: {url}"
    # A directory, or a path through a file, is not an object either.
    fs.put("b", "file", b"x", "text/plain")
    (fs.root / "b" / "dir").mkdir()
    for key in ("dir", "file/below"):
        with pytest.raises(SourceNotFound):
            fs.get("b", key, 100)


def test_file_size_cap(fs: FileStorage) -> None:
    fs.put("b", "k", b"x" * 100, "application/octet-stream")
    assert fs.get("b", "k", max_bytes=100) == b"x" * 100
    with pytest.raises(SourceTooLarge) as exc:
        fs.get("b", "k", max_bytes=99)
    assert str(exc.value) == f"source exceeds 99 bytes: {fs.url('b', 'k')}"


@pytest.mark.parametrize(
    ("bucket", "key"),
    [
        ("b", "../other/x"),
        ("b", "a/../../x"),
        ("b", "/etc/passwd"),
        ("b", "a//b"),
        ("b", "./x"),
        ("b", ""),
        ("..", "x"),
        ("a/b", "x"),
        ("", "x"),
    ],
)
def test_file_rejects_traversal(fs: FileStorage, bucket: str, key: str) -> None:
    with pytest.raises(PermanentError):
        fs.get(bucket, key, 100)
    with pytest.raises(PermanentError):
        fs.put(bucket, key, b"x", "text/plain")
    with pytest.raises(PermanentError):
        fs.url(bucket, key)


def test_file_rejects_symlink_escape(fs: FileStorage, tmp_path: pathlib.Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_bytes(b"secret")
    (fs.root / "b").mkdir(parents=True)
    (fs.root / "b" / "link").symlink_to(outside)
    (fs.root / "b" / "filelink").symlink_to(outside / "secret")

    for key in ("link/secret", "filelink"):
        with pytest.raises(PermanentError, match="escapes the storage root"):
            fs.get("b", key, 100)
    with pytest.raises(PermanentError, match="escapes the storage root"):
        fs.put("b", "link/new", b"x", "text/plain")
    assert sorted(os.listdir(outside)) == ["secret"]


def test_file_symlink_inside_root_is_allowed(fs: FileStorage) -> None:
    fs.put("b", "real/x", b"data", "text/plain")
    (fs.root / "b" / "alias").symlink_to(fs.root / "b" / "real")
    assert fs.get("b", "alias/x", 10) == b"data"


def test_file_io_error_is_transient(fs: FileStorage, monkeypatch: pytest.MonkeyPatch) -> None:
    fs.put("b", "k", b"x", "text/plain")

    def eio(*args: Any, **kwargs: Any) -> int:
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "open", eio)
    with pytest.raises(TransientError):
        fs.get("b", "k", 10)


def test_file_write_over_a_file_component_is_permanent(fs: FileStorage) -> None:
    fs.put("b", "a", b"x", "text/plain")
    with pytest.raises(PermanentError) as exc:
        fs.put("b", "a/b", b"y", "text/plain")
    assert not isinstance(exc.value, TransientError)


def test_open_storage(tmp_path: pathlib.Path) -> None:
    st = open_storage("file", root=tmp_path, s3_endpoint_url=None, s3_region=None)
    assert isinstance(st, FileStorage)
    st.close()
    with pytest.raises(ValueError):
        open_storage("ftp", root=tmp_path, s3_endpoint_url=None, s3_region=None)


# --------------------------------------------------------------------------------- S3


@pytest.fixture(scope="module")
def moto_endpoint() -> Iterator[str]:
    with MotoS3() as moto:
        yield moto.endpoint


@pytest.fixture
def raw_s3(moto_endpoint: str, aws_env: None) -> Any:
    return boto3.session.Session().client("s3", endpoint_url=moto_endpoint)


@pytest.fixture
def bucket(raw_s3: Any) -> str:
    # A fresh bucket per test: the moto server is shared by the whole module.
    name = f"mend-{uuid.uuid4().hex[:12]}"
    raw_s3.create_bucket(Bucket=name)
    return name


@pytest.fixture
def s3(moto_endpoint: str, aws_env: None) -> Iterator[S3Storage]:
    st = S3Storage(moto_endpoint, "us-east-1")
    yield st
    st.close()


def test_s3_round_trip(s3: S3Storage, raw_s3: Any, bucket: str) -> None:
    url = s3.put(bucket, "out/cat.webp", b"RIFF....WEBP", "image/webp")
    assert url == f"s3://{bucket}/out/cat.webp" == s3.url(bucket, "out/cat.webp")
    head = raw_s3.head_object(Bucket=bucket, Key="out/cat.webp")
    assert head["ContentType"] == "image/webp"
    assert s3.get(bucket, "out/cat.webp", max_bytes=100) == b"RIFF....WEBP"


def test_s3_missing_key_and_bucket(s3: S3Storage, bucket: str) -> None:
    with pytest.raises(SourceNotFound) as exc:
        s3.get(bucket, "nope.jpg", 100)
    assert str(exc.value) == f"Source file not found: s3://{bucket}/nope.jpg"
    with pytest.raises(SourceNotFound) as exc:
        s3.get("no-such-bucket-mend", "a/b.jpg", 100)
    assert str(exc.value) == "Source file not found: s3://no-such-bucket-mend/a/b.jpg"


def test_s3_put_to_missing_bucket_is_permanent(s3: S3Storage) -> None:
    with pytest.raises(PermanentError, match="does not exist") as exc:
        s3.put("no-such-bucket-mend", "x.jpg", b"x", "image/jpeg")
    assert not isinstance(exc.value, SourceNotFound)


def test_s3_size_cap(s3: S3Storage, bucket: str) -> None:
    s3.put(bucket, "big", b"x" * 1000, "application/octet-stream")
    assert len(s3.get(bucket, "big", max_bytes=1000)) == 1000
    with pytest.raises(SourceTooLarge) as exc:
        s3.get(bucket, "big", max_bytes=999)
    assert str(exc.value) == f"source exceeds 999 bytes: s3://{bucket}/big"


def test_s3_unreachable_endpoint_is_transient(aws_env: None) -> None:
    port = free_port()  # nothing listens there: connection refused at once
    st = S3Storage(f"http://127.0.0.1:{port}", "us-east-1", connect_timeout=1, max_attempts=1)
    try:
        with pytest.raises(TransientError):
            st.get("b", "k", 100)
        with pytest.raises(TransientError):
            st.put("b", "k", b"x", "text/plain")
    finally:
        st.close()


def test_open_storage_s3(moto_endpoint: str, aws_env: None, tmp_path: pathlib.Path) -> None:
    st = open_storage("s3", root=tmp_path, s3_endpoint_url=moto_endpoint, s3_region="us-east-1")
    assert isinstance(st, S3Storage)
    st.close()


def _client_error(status: int, code: str) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "m"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        "GetObject",
    )


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (404, "NoSuchKey", SourceNotFound),
        (404, "NoSuchBucket", SourceNotFound),
        (403, "AccessDenied", PermanentError),
        (400, "InvalidArgument", PermanentError),
        (500, "InternalError", TransientError),
        (503, "SlowDown", TransientError),
        (400, "RequestTimeout", TransientError),
        (412, "PreconditionFailed", TransientError),
    ],
)
def test_s3_error_mapping(status: int, code: str, expected: type[Exception]) -> None:
    err = storage_mod._s3_client_error(
        _client_error(status, code), "read", "s3://b/k", reading=True
    )
    assert type(err) is expected
    if status == 403:
        assert "access denied" in str(err)
