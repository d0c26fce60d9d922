"""video_thumbnail and audio_convert end to end (issue 10, items 4-5): real `mend-worker`
processes run jobs submitted over gRPC (flat RPCs and SubmitJob) and over REST with
Mend's flat bodies; outputs are decoded (the thumbnail is the frame at the timestamp,
the audio has the asked codec and the source's duration). Bad parameters are refused at
submit naming the field; bad media fails at once and the worker goes on."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import httpx
import pytest
from PIL import Image

from mend.v1 import jobs_pb2 as pb
from mend_devkit.redis_server import RedisServer
from mend_server.server import MendServer
from tests.conftest import API_KEY, AUTH
from tests.helpers import violated_fields
from tests.media import frame_number, h264_clip, probe_audio, tone
from tests.test_gateway_support import gateway_settings, start_gateway
from tests.workers import history, statuses, wait_terminal, worker_pool

BUCKET = "media"


@pytest.fixture
def root(tmp_path: Path) -> Path:
    """File storage holding a 2 s numbered clip, a 1.5 s WAV tone, an MP3 and a text file."""
    root = tmp_path / "storage"
    (root / BUCKET).mkdir(parents=True)
    for key, data in {
        "clip.mp4": h264_clip(),
        "tone.wav": tone(1.5),
        "song.mp3": tone(0.5, container="mp3", codec="libmp3lame"),
        "notes.txt": b"not audio, whatever the job says\n" * 30,
    }.items():
        (root / BUCKET / key).write_bytes(data)
    return root


@pytest.fixture
async def workers(redis_server: RedisServer, root: Path) -> AsyncIterator[object]:
    async with worker_pool(
        redis_server.url, MEND_STORAGE="file", MEND_STORAGE_ROOT=str(root)
    ) as pool:
        pool.start()
        yield pool


def where(source_key: str, dest_key: str) -> dict[str, str]:
    return dict(source_bucket=BUCKET, source_key=source_key, dest_bucket=BUCKET, dest_key=dest_key)


async def run(stub, rpc: str, request) -> pb.Job:
    response = await getattr(stub, rpc)(request, metadata=AUTH)
    return await wait_terminal(stub, response.job_id)


async def test_thumbnail_over_grpc_is_the_frame_at_the_timestamp(
    stub, workers, root: Path
) -> None:
    job = await run(
        stub,
        "SubmitVideoThumbnail",
        pb.SubmitVideoThumbnailRequest(**where("clip.mp4", "thumbs/clip.jpg"), timestamp="1.45",
                                       width=80),
    )
    assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
    img = Image.open(io.BytesIO((root / BUCKET / "thumbs/clip.jpg").read_bytes()))
    assert (img.format, img.size, frame_number(img)) == ("JPEG", (80, 48), 14)
    assert job.type == pb.JOB_TYPE_VIDEO_THUMBNAIL
    assert job.result.metadata == pb.ImageMetadata(width=80, height=48, format="jpeg")
    assert job.result.video == pb.VideoInfo(
        duration_seconds=2.0, codec="h264", width=160, height=96
    )
    assert job.parameters.video_thumbnail.timestamp == "1.45"

    # The typed SubmitJob form, a clock timestamp and an explicit format.
    response = await stub.SubmitJob(
        pb.SubmitJobRequest(
            **where("clip.mp4", "thumbs/clip-15"),
            parameters=pb.JobParameters(
                video_thumbnail=pb.VideoThumbnailParameters(
                    timestamp="00:00:01.500", format=pb.IMAGE_FORMAT_PNG
                )
            ),
        ),
        metadata=AUTH,
    )
    job = await wait_terminal(stub, response.job_id)
    assert job.status == pb.JOB_STATUS_COMPLETED, job.error
    img = Image.open(io.BytesIO((root / BUCKET / "thumbs/clip-15").read_bytes()))
    assert (img.format, img.size, frame_number(img)) == ("PNG", (160, 96), 15)


async def test_audio_convert_over_grpc(stub, workers, root: Path) -> None:
    job = await run(
        stub,
        "SubmitAudioConvert",
        pb.SubmitAudioConvertRequest(
            **where("tone.wav", "out/tone.mp3"), format=pb.AUDIO_FORMAT_MP3, bitrate="96k"
        ),
    )
    assert job.status == pb.JOB_STATUS_COMPLETED, (job.error, workers.outputs())
    data = (root / BUCKET / "out/tone.mp3").read_bytes()
    container, codec, seconds, rate, channels = probe_audio(data)
    assert (container, codec, rate, channels) == ("mp3", "mp3float", 44100, 2)
    assert seconds == pytest.approx(1.5, abs=0.05)
    assert job.type == pb.JOB_TYPE_AUDIO_CONVERT
    assert job.result.audio == pb.AudioInfo(
        duration_seconds=1.5, codec="mp3", bitrate=96000, sample_rate=44100, channels=2,
        bytes=len(data),
    )
    assert job.result.file_size == len(data) and not job.result.HasField("metadata")
    assert job.progress.percent == 100


async def test_bad_parameters_are_refused_at_submit_naming_the_field(stub) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitJob(
            pb.SubmitJobRequest(
                **where("clip.mp4", "t.jpg"),
                parameters=pb.JobParameters(
                    video_thumbnail=pb.VideoThumbnailParameters(timestamp="1:75")
                ),
            ),
            metadata=AUTH,
        )
    assert violated_fields(err.value) == ["parameters.video_thumbnail.timestamp"]
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await stub.SubmitAudioConvert(
            pb.SubmitAudioConvertRequest(**where("tone.wav", "t.mp3"), format=pb.AUDIO_FORMAT_MP3,
                                         bitrate="loud", channels=3),
            metadata=AUTH,
        )
    assert violated_fields(err.value) == ["bitrate", "channels"]


async def test_wrong_kind_of_media_fails_at_once_and_the_worker_goes_on(
    stub, workers, root: Path
) -> None:
    cases = [
        ("SubmitVideoThumbnail", pb.SubmitVideoThumbnailRequest(**where("song.mp3", "x.jpg")),
         "not a video: the source (mp3) has no video stream, only audio (mp3)"),
        ("SubmitAudioConvert",
         pb.SubmitAudioConvertRequest(**where("notes.txt", "x.mp3")),
         "not a supported audio file: unrecognised data"),
        ("SubmitVideoThumbnail",
         pb.SubmitVideoThumbnailRequest(**where("clip.mp4", "x.jpg"), timestamp="3"),
         "timestamp 3 (3 s) is past the end of the video (2.000 s)"),
    ]
    for rpc, request, message in cases:
        job = await run(stub, rpc, request)
        assert job.status == pb.JOB_STATUS_FAILED, job
        assert job.error.startswith(message), job.error
        assert job.attempt == 1  # permanent: no retry
        assert statuses(await history(stub, job.id)) == ["pending", "processing", "failed"]
        assert not (root / BUCKET / "x.jpg").exists()
    (worker,) = workers.started  # type: ignore[attr-defined]
    assert worker.alive
    job = await run(
        stub, "SubmitAudioConvert", pb.SubmitAudioConvertRequest(**where("tone.wav", "ok.flac"))
    )
    assert job.status == pb.JOB_STATUS_COMPLETED, job.error


@pytest.fixture
async def http(mend_server: MendServer, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    settings = gateway_settings(mend_server.settings, mend_server.port, tmp_path)
    gateway = await start_gateway(settings)
    async with httpx.AsyncClient(base_url=gateway.url, headers={"X-API-Key": API_KEY}) as client:
        yield client
    await gateway.stop()


async def rest_job(http: httpx.AsyncClient, route: str, body: dict) -> dict:
    response = await http.post(f"/api/v1/jobs/{route}", json=body)
    assert response.status_code == 202, response.text
    assert response.json()["status"] == "pending"
    job_id = response.json()["job_id"]
    stream = await http.get(f"/api/v1/jobs/{job_id}/stream", timeout=60)
    assert stream.status_code == 200
    return (await http.get(f"/api/v1/jobs/{job_id}")).json()


async def test_both_over_rest_with_mends_flat_bodies(
    http: httpx.AsyncClient, workers, root: Path
) -> None:
    job = await rest_job(
        http,
        "video/thumbnail",
        {**where("clip.mp4", "thumbs/rest.webp"), "timestamp": "0.7", "width": 64, "height": 64,
         "fit": "cover"},
    )
    assert job["status"] == "completed", (job, workers.outputs())
    assert job["type"] == "video_thumbnail"
    assert job["parameters"] == {"timestamp": "0.7", "width": 64, "height": 64, "fit": "cover"}
    assert job["result"]["metadata"] == {"width": 64, "height": 64, "format": "webp"}
    assert job["result"]["video"] == {
        "duration_seconds": 2.0, "codec": "h264", "width": 160, "height": 96
    }
    img = Image.open(io.BytesIO((root / BUCKET / "thumbs/rest.webp").read_bytes()))
    assert (img.format, img.size) == ("WEBP", (64, 64))

    job = await rest_job(
        http,
        "audio/convert",
        {**where("tone.wav", "out/rest.opus"), "format": "opus", "bitrate": "64k",
         "channels": 1},
    )
    assert job["status"] == "completed", (job, workers.outputs())
    assert job["parameters"] == {"format": "opus", "bitrate": "64k", "channels": 1}
    data = (root / BUCKET / "out/rest.opus").read_bytes()
    container, codec, seconds, rate, channels = probe_audio(data)
    assert (container, codec, rate, channels) == ("ogg", "opus", 48000, 1)
    assert seconds == pytest.approx(1.5, abs=0.05)
    assert job["result"]["audio"] == {
        "duration_seconds": 1.5, "codec": "opus", "bitrate": 64000, "sample_rate": 48000,
        "channels": 1, "bytes": len(data),
    }


async def test_rest_errors_name_the_field(http: httpx.AsyncClient) -> None:
    response = await http.post(
        "/api/v1/jobs/video/thumbnail", json={**where("clip.mp4", "t.jpg"), "timestamp": "soon"}
    )
    assert response.status_code == 400
    assert "timestamp" in response.json()["error"], response.json()
    response = await http.post(
        "/api/v1/jobs/audio/convert", json={**where("tone.wav", "t.x"), "format": "mp5"}
    )
    assert response.status_code == 400
    assert "format" in response.json()["error"], response.json()
    response = await http.post(
        "/api/v1/jobs/audio/convert", json={**where("tone.wav", "t.flac"), "format": "flac",
                                            "bitrate": "128k"}
    )
    assert response.status_code == 400
    assert response.json()["details"] == [
        {"field": "bitrate", "description": "does not apply to flac (lossless)"}
    ]
