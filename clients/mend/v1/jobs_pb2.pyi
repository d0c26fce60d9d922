import datetime

from google.api import annotations_pb2 as _annotations_pb2
from google.api import field_behavior_pb2 as _field_behavior_pb2
from google.protobuf import empty_pb2 as _empty_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class JobStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_STATUS_UNSPECIFIED: _ClassVar[JobStatus]
    JOB_STATUS_PENDING: _ClassVar[JobStatus]
    JOB_STATUS_PROCESSING: _ClassVar[JobStatus]
    JOB_STATUS_COMPLETED: _ClassVar[JobStatus]
    JOB_STATUS_FAILED: _ClassVar[JobStatus]
    JOB_STATUS_CANCELLED: _ClassVar[JobStatus]

class JobType(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    JOB_TYPE_UNSPECIFIED: _ClassVar[JobType]
    JOB_TYPE_IMAGE_RESIZE: _ClassVar[JobType]
    JOB_TYPE_IMAGE_OPTIMIZE: _ClassVar[JobType]
    JOB_TYPE_IMAGE_WATERMARK: _ClassVar[JobType]
    JOB_TYPE_IMAGE_COLORS: _ClassVar[JobType]
    JOB_TYPE_VIDEO_THUMBNAIL: _ClassVar[JobType]
    JOB_TYPE_AUDIO_CONVERT: _ClassVar[JobType]

class FitMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIT_MODE_UNSPECIFIED: _ClassVar[FitMode]
    FIT_MODE_INSIDE: _ClassVar[FitMode]
    FIT_MODE_COVER: _ClassVar[FitMode]
    FIT_MODE_FILL: _ClassVar[FitMode]

class ImageFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    IMAGE_FORMAT_UNSPECIFIED: _ClassVar[ImageFormat]
    IMAGE_FORMAT_JPEG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_PNG: _ClassVar[ImageFormat]
    IMAGE_FORMAT_WEBP: _ClassVar[ImageFormat]
    IMAGE_FORMAT_AVIF: _ClassVar[ImageFormat]

class AudioFormat(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    AUDIO_FORMAT_UNSPECIFIED: _ClassVar[AudioFormat]
    AUDIO_FORMAT_MP3: _ClassVar[AudioFormat]
    AUDIO_FORMAT_AAC: _ClassVar[AudioFormat]
    AUDIO_FORMAT_OPUS: _ClassVar[AudioFormat]
    AUDIO_FORMAT_OGG: _ClassVar[AudioFormat]
    AUDIO_FORMAT_FLAC: _ClassVar[AudioFormat]
    AUDIO_FORMAT_WAV: _ClassVar[AudioFormat]
    AUDIO_FORMAT_M4A: _ClassVar[AudioFormat]

class WebhookStyle(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WEBHOOK_STYLE_UNSPECIFIED: _ClassVar[WebhookStyle]
    WEBHOOK_STYLE_DEFAULT: _ClassVar[WebhookStyle]
    WEBHOOK_STYLE_DISCORD: _ClassVar[WebhookStyle]

class WatermarkPosition(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WATERMARK_POSITION_UNSPECIFIED: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_CENTER: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_NORTH: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_NORTH_EAST: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_EAST: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_SOUTH_EAST: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_SOUTH: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_SOUTH_WEST: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_WEST: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_NORTH_WEST: _ClassVar[WatermarkPosition]
    WATERMARK_POSITION_TILE: _ClassVar[WatermarkPosition]
JOB_STATUS_UNSPECIFIED: JobStatus
JOB_STATUS_PENDING: JobStatus
JOB_STATUS_PROCESSING: JobStatus
JOB_STATUS_COMPLETED: JobStatus
JOB_STATUS_FAILED: JobStatus
JOB_STATUS_CANCELLED: JobStatus
JOB_TYPE_UNSPECIFIED: JobType
JOB_TYPE_IMAGE_RESIZE: JobType
JOB_TYPE_IMAGE_OPTIMIZE: JobType
JOB_TYPE_IMAGE_WATERMARK: JobType
JOB_TYPE_IMAGE_COLORS: JobType
JOB_TYPE_VIDEO_THUMBNAIL: JobType
JOB_TYPE_AUDIO_CONVERT: JobType
FIT_MODE_UNSPECIFIED: FitMode
FIT_MODE_INSIDE: FitMode
FIT_MODE_COVER: FitMode
FIT_MODE_FILL: FitMode
IMAGE_FORMAT_UNSPECIFIED: ImageFormat
IMAGE_FORMAT_JPEG: ImageFormat
IMAGE_FORMAT_PNG: ImageFormat
IMAGE_FORMAT_WEBP: ImageFormat
IMAGE_FORMAT_AVIF: ImageFormat
AUDIO_FORMAT_UNSPECIFIED: AudioFormat
AUDIO_FORMAT_MP3: AudioFormat
AUDIO_FORMAT_AAC: AudioFormat
AUDIO_FORMAT_OPUS: AudioFormat
AUDIO_FORMAT_OGG: AudioFormat
AUDIO_FORMAT_FLAC: AudioFormat
AUDIO_FORMAT_WAV: AudioFormat
AUDIO_FORMAT_M4A: AudioFormat
WEBHOOK_STYLE_UNSPECIFIED: WebhookStyle
WEBHOOK_STYLE_DEFAULT: WebhookStyle
WEBHOOK_STYLE_DISCORD: WebhookStyle
WATERMARK_POSITION_UNSPECIFIED: WatermarkPosition
WATERMARK_POSITION_CENTER: WatermarkPosition
WATERMARK_POSITION_NORTH: WatermarkPosition
WATERMARK_POSITION_NORTH_EAST: WatermarkPosition
WATERMARK_POSITION_EAST: WatermarkPosition
WATERMARK_POSITION_SOUTH_EAST: WatermarkPosition
WATERMARK_POSITION_SOUTH: WatermarkPosition
WATERMARK_POSITION_SOUTH_WEST: WatermarkPosition
WATERMARK_POSITION_WEST: WatermarkPosition
WATERMARK_POSITION_NORTH_WEST: WatermarkPosition
WATERMARK_POSITION_TILE: WatermarkPosition

class ImageResizeParameters(_message.Message):
    __slots__ = ("width", "height", "quality", "fit", "format")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    quality: int
    fit: FitMode
    format: ImageFormat
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., quality: _Optional[int] = ..., fit: _Optional[_Union[FitMode, str]] = ..., format: _Optional[_Union[ImageFormat, str]] = ...) -> None: ...

class ImageOptimizeParameters(_message.Message):
    __slots__ = ("format", "quality", "lossless", "max_width", "max_height")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    LOSSLESS_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    format: ImageFormat
    quality: int
    lossless: bool
    max_width: int
    max_height: int
    def __init__(self, format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., lossless: _Optional[bool] = ..., max_width: _Optional[int] = ..., max_height: _Optional[int] = ...) -> None: ...

class ImageWatermarkParameters(_message.Message):
    __slots__ = ("text", "watermark_bucket", "watermark_key", "position", "opacity", "scale", "margin", "font_size", "color")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_BUCKET_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_KEY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    FONT_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    text: str
    watermark_bucket: str
    watermark_key: str
    position: WatermarkPosition
    opacity: float
    scale: float
    margin: int
    font_size: int
    color: str
    def __init__(self, text: _Optional[str] = ..., watermark_bucket: _Optional[str] = ..., watermark_key: _Optional[str] = ..., position: _Optional[_Union[WatermarkPosition, str]] = ..., opacity: _Optional[float] = ..., scale: _Optional[float] = ..., margin: _Optional[int] = ..., font_size: _Optional[int] = ..., color: _Optional[str] = ...) -> None: ...

class ImageColorsParameters(_message.Message):
    __slots__ = ("count",)
    COUNT_FIELD_NUMBER: _ClassVar[int]
    count: int
    def __init__(self, count: _Optional[int] = ...) -> None: ...

class VideoThumbnailParameters(_message.Message):
    __slots__ = ("timestamp", "width", "height", "fit", "format", "quality")
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    timestamp: str
    width: int
    height: int
    fit: FitMode
    format: ImageFormat
    quality: int
    def __init__(self, timestamp: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fit: _Optional[_Union[FitMode, str]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ...) -> None: ...

class AudioConvertParameters(_message.Message):
    __slots__ = ("format", "bitrate", "sample_rate", "channels")
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BITRATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    format: AudioFormat
    bitrate: str
    sample_rate: int
    channels: int
    def __init__(self, format: _Optional[_Union[AudioFormat, str]] = ..., bitrate: _Optional[str] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ...) -> None: ...

class JobParameters(_message.Message):
    __slots__ = ("image_resize", "image_optimize", "image_watermark", "image_colors", "video_thumbnail", "audio_convert")
    IMAGE_RESIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_OPTIMIZE_FIELD_NUMBER: _ClassVar[int]
    IMAGE_WATERMARK_FIELD_NUMBER: _ClassVar[int]
    IMAGE_COLORS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_THUMBNAIL_FIELD_NUMBER: _ClassVar[int]
    AUDIO_CONVERT_FIELD_NUMBER: _ClassVar[int]
    image_resize: ImageResizeParameters
    image_optimize: ImageOptimizeParameters
    image_watermark: ImageWatermarkParameters
    image_colors: ImageColorsParameters
    video_thumbnail: VideoThumbnailParameters
    audio_convert: AudioConvertParameters
    def __init__(self, image_resize: _Optional[_Union[ImageResizeParameters, _Mapping]] = ..., image_optimize: _Optional[_Union[ImageOptimizeParameters, _Mapping]] = ..., image_watermark: _Optional[_Union[ImageWatermarkParameters, _Mapping]] = ..., image_colors: _Optional[_Union[ImageColorsParameters, _Mapping]] = ..., video_thumbnail: _Optional[_Union[VideoThumbnailParameters, _Mapping]] = ..., audio_convert: _Optional[_Union[AudioConvertParameters, _Mapping]] = ...) -> None: ...

class ImageMetadata(_message.Message):
    __slots__ = ("width", "height", "format")
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    width: int
    height: int
    format: str
    def __init__(self, width: _Optional[int] = ..., height: _Optional[int] = ..., format: _Optional[str] = ...) -> None: ...

class ImageOptimization(_message.Message):
    __slots__ = ("input_bytes", "output_bytes", "saving_percent", "kept_source")
    INPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_BYTES_FIELD_NUMBER: _ClassVar[int]
    SAVING_PERCENT_FIELD_NUMBER: _ClassVar[int]
    KEPT_SOURCE_FIELD_NUMBER: _ClassVar[int]
    input_bytes: int
    output_bytes: int
    saving_percent: float
    kept_source: bool
    def __init__(self, input_bytes: _Optional[int] = ..., output_bytes: _Optional[int] = ..., saving_percent: _Optional[float] = ..., kept_source: _Optional[bool] = ...) -> None: ...

class Color(_message.Message):
    __slots__ = ("hex", "red", "green", "blue", "percent")
    HEX_FIELD_NUMBER: _ClassVar[int]
    RED_FIELD_NUMBER: _ClassVar[int]
    GREEN_FIELD_NUMBER: _ClassVar[int]
    BLUE_FIELD_NUMBER: _ClassVar[int]
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    hex: str
    red: int
    green: int
    blue: int
    percent: float
    def __init__(self, hex: _Optional[str] = ..., red: _Optional[int] = ..., green: _Optional[int] = ..., blue: _Optional[int] = ..., percent: _Optional[float] = ...) -> None: ...

class JobResult(_message.Message):
    __slots__ = ("output_url", "file_size", "duration", "metadata", "optimization", "colors", "video", "audio")
    OUTPUT_URL_FIELD_NUMBER: _ClassVar[int]
    FILE_SIZE_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    OPTIMIZATION_FIELD_NUMBER: _ClassVar[int]
    COLORS_FIELD_NUMBER: _ClassVar[int]
    VIDEO_FIELD_NUMBER: _ClassVar[int]
    AUDIO_FIELD_NUMBER: _ClassVar[int]
    output_url: str
    file_size: int
    duration: float
    metadata: ImageMetadata
    optimization: ImageOptimization
    colors: _containers.RepeatedCompositeFieldContainer[Color]
    video: VideoInfo
    audio: AudioInfo
    def __init__(self, output_url: _Optional[str] = ..., file_size: _Optional[int] = ..., duration: _Optional[float] = ..., metadata: _Optional[_Union[ImageMetadata, _Mapping]] = ..., optimization: _Optional[_Union[ImageOptimization, _Mapping]] = ..., colors: _Optional[_Iterable[_Union[Color, _Mapping]]] = ..., video: _Optional[_Union[VideoInfo, _Mapping]] = ..., audio: _Optional[_Union[AudioInfo, _Mapping]] = ...) -> None: ...

class VideoInfo(_message.Message):
    __slots__ = ("duration_seconds", "codec", "width", "height")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    codec: str
    width: int
    height: int
    def __init__(self, duration_seconds: _Optional[float] = ..., codec: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ...) -> None: ...

class AudioInfo(_message.Message):
    __slots__ = ("duration_seconds", "codec", "bitrate", "sample_rate", "channels", "bytes")
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    CODEC_FIELD_NUMBER: _ClassVar[int]
    BITRATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    duration_seconds: float
    codec: str
    bitrate: int
    sample_rate: int
    channels: int
    bytes: int
    def __init__(self, duration_seconds: _Optional[float] = ..., codec: _Optional[str] = ..., bitrate: _Optional[int] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., bytes: _Optional[int] = ...) -> None: ...

class Progress(_message.Message):
    __slots__ = ("percent", "message")
    PERCENT_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    percent: int
    message: str
    def __init__(self, percent: _Optional[int] = ..., message: _Optional[str] = ...) -> None: ...

class Job(_message.Message):
    __slots__ = ("id", "type", "status", "source_bucket", "source_key", "dest_bucket", "dest_key", "parameters", "result", "error", "created_at", "updated_at", "started_at", "completed_at", "duration_seconds", "priority", "attempt", "max_attempts", "version", "queue_position", "estimated_wait_seconds", "progress", "request_id", "batch_id", "timeout_seconds", "webhook_url", "webhook_style", "scheduled_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    UPDATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_AT_FIELD_NUMBER: _ClassVar[int]
    DURATION_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    ATTEMPT_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    VERSION_FIELD_NUMBER: _ClassVar[int]
    QUEUE_POSITION_FIELD_NUMBER: _ClassVar[int]
    ESTIMATED_WAIT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    type: JobType
    status: JobStatus
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    parameters: JobParameters
    result: JobResult
    error: str
    created_at: _timestamp_pb2.Timestamp
    updated_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    completed_at: _timestamp_pb2.Timestamp
    duration_seconds: float
    priority: int
    attempt: int
    max_attempts: int
    version: int
    queue_position: int
    estimated_wait_seconds: float
    progress: Progress
    request_id: str
    batch_id: str
    timeout_seconds: int
    webhook_url: str
    webhook_style: WebhookStyle
    scheduled_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., type: _Optional[_Union[JobType, str]] = ..., status: _Optional[_Union[JobStatus, str]] = ..., source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., parameters: _Optional[_Union[JobParameters, _Mapping]] = ..., result: _Optional[_Union[JobResult, _Mapping]] = ..., error: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., updated_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., duration_seconds: _Optional[float] = ..., priority: _Optional[int] = ..., attempt: _Optional[int] = ..., max_attempts: _Optional[int] = ..., version: _Optional[int] = ..., queue_position: _Optional[int] = ..., estimated_wait_seconds: _Optional[float] = ..., progress: _Optional[_Union[Progress, _Mapping]] = ..., request_id: _Optional[str] = ..., batch_id: _Optional[str] = ..., timeout_seconds: _Optional[int] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., scheduled_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class SubmitOptions(_message.Message):
    __slots__ = ("priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "run_at", "delay_seconds")
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitJobRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "parameters", "options", "validate_only")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    parameters: JobParameters
    options: SubmitOptions
    validate_only: bool
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., parameters: _Optional[_Union[JobParameters, _Mapping]] = ..., options: _Optional[_Union[SubmitOptions, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class SubmitImageResizeRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "width", "height", "quality", "fit", "format", "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "validate_only", "run_at", "delay_seconds")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    width: int
    height: int
    quality: int
    fit: FitMode
    format: ImageFormat
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    validate_only: bool
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., quality: _Optional[int] = ..., fit: _Optional[_Union[FitMode, str]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., validate_only: _Optional[bool] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitImageOptimizeRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "format", "quality", "lossless", "max_width", "max_height", "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "validate_only", "run_at", "delay_seconds")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    LOSSLESS_FIELD_NUMBER: _ClassVar[int]
    MAX_WIDTH_FIELD_NUMBER: _ClassVar[int]
    MAX_HEIGHT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    format: ImageFormat
    quality: int
    lossless: bool
    max_width: int
    max_height: int
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    validate_only: bool
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., lossless: _Optional[bool] = ..., max_width: _Optional[int] = ..., max_height: _Optional[int] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., validate_only: _Optional[bool] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitImageWatermarkRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "text", "watermark_bucket", "watermark_key", "position", "opacity", "scale", "margin", "font_size", "color", "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "validate_only", "run_at", "delay_seconds")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_BUCKET_FIELD_NUMBER: _ClassVar[int]
    WATERMARK_KEY_FIELD_NUMBER: _ClassVar[int]
    POSITION_FIELD_NUMBER: _ClassVar[int]
    OPACITY_FIELD_NUMBER: _ClassVar[int]
    SCALE_FIELD_NUMBER: _ClassVar[int]
    MARGIN_FIELD_NUMBER: _ClassVar[int]
    FONT_SIZE_FIELD_NUMBER: _ClassVar[int]
    COLOR_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    text: str
    watermark_bucket: str
    watermark_key: str
    position: WatermarkPosition
    opacity: float
    scale: float
    margin: int
    font_size: int
    color: str
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    validate_only: bool
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., text: _Optional[str] = ..., watermark_bucket: _Optional[str] = ..., watermark_key: _Optional[str] = ..., position: _Optional[_Union[WatermarkPosition, str]] = ..., opacity: _Optional[float] = ..., scale: _Optional[float] = ..., margin: _Optional[int] = ..., font_size: _Optional[int] = ..., color: _Optional[str] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., validate_only: _Optional[bool] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitImageColorsRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "count", "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "validate_only", "run_at", "delay_seconds")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    count: int
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    validate_only: bool
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., count: _Optional[int] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., validate_only: _Optional[bool] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitVideoThumbnailRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "timestamp", "width", "height", "fit", "format", "quality", "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "validate_only", "run_at", "delay_seconds")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    TIMESTAMP_FIELD_NUMBER: _ClassVar[int]
    WIDTH_FIELD_NUMBER: _ClassVar[int]
    HEIGHT_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    QUALITY_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    timestamp: str
    width: int
    height: int
    fit: FitMode
    format: ImageFormat
    quality: int
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    validate_only: bool
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., timestamp: _Optional[str] = ..., width: _Optional[int] = ..., height: _Optional[int] = ..., fit: _Optional[_Union[FitMode, str]] = ..., format: _Optional[_Union[ImageFormat, str]] = ..., quality: _Optional[int] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., validate_only: _Optional[bool] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitAudioConvertRequest(_message.Message):
    __slots__ = ("source_bucket", "source_key", "dest_bucket", "dest_key", "format", "bitrate", "sample_rate", "channels", "priority", "request_id", "webhook_url", "webhook_style", "max_attempts", "timeout_seconds", "validate_only", "run_at", "delay_seconds")
    SOURCE_BUCKET_FIELD_NUMBER: _ClassVar[int]
    SOURCE_KEY_FIELD_NUMBER: _ClassVar[int]
    DEST_BUCKET_FIELD_NUMBER: _ClassVar[int]
    DEST_KEY_FIELD_NUMBER: _ClassVar[int]
    FORMAT_FIELD_NUMBER: _ClassVar[int]
    BITRATE_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_RATE_FIELD_NUMBER: _ClassVar[int]
    CHANNELS_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    MAX_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TIMEOUT_SECONDS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    RUN_AT_FIELD_NUMBER: _ClassVar[int]
    DELAY_SECONDS_FIELD_NUMBER: _ClassVar[int]
    source_bucket: str
    source_key: str
    dest_bucket: str
    dest_key: str
    format: AudioFormat
    bitrate: str
    sample_rate: int
    channels: int
    priority: int
    request_id: str
    webhook_url: str
    webhook_style: WebhookStyle
    max_attempts: int
    timeout_seconds: int
    validate_only: bool
    run_at: _timestamp_pb2.Timestamp
    delay_seconds: float
    def __init__(self, source_bucket: _Optional[str] = ..., source_key: _Optional[str] = ..., dest_bucket: _Optional[str] = ..., dest_key: _Optional[str] = ..., format: _Optional[_Union[AudioFormat, str]] = ..., bitrate: _Optional[str] = ..., sample_rate: _Optional[int] = ..., channels: _Optional[int] = ..., priority: _Optional[int] = ..., request_id: _Optional[str] = ..., webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., max_attempts: _Optional[int] = ..., timeout_seconds: _Optional[int] = ..., validate_only: _Optional[bool] = ..., run_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., delay_seconds: _Optional[float] = ...) -> None: ...

class SubmitJobResponse(_message.Message):
    __slots__ = ("job_id", "status", "message")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    status: JobStatus
    message: str
    def __init__(self, job_id: _Optional[str] = ..., status: _Optional[_Union[JobStatus, str]] = ..., message: _Optional[str] = ...) -> None: ...

class BatchOptions(_message.Message):
    __slots__ = ("webhook_url", "webhook_style", "fail_fast")
    WEBHOOK_URL_FIELD_NUMBER: _ClassVar[int]
    WEBHOOK_STYLE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FAST_FIELD_NUMBER: _ClassVar[int]
    webhook_url: str
    webhook_style: WebhookStyle
    fail_fast: bool
    def __init__(self, webhook_url: _Optional[str] = ..., webhook_style: _Optional[_Union[WebhookStyle, str]] = ..., fail_fast: _Optional[bool] = ...) -> None: ...

class SubmitBatchRequest(_message.Message):
    __slots__ = ("batch_id", "jobs", "options", "validate_only")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    JOBS_FIELD_NUMBER: _ClassVar[int]
    OPTIONS_FIELD_NUMBER: _ClassVar[int]
    VALIDATE_ONLY_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    jobs: _containers.RepeatedCompositeFieldContainer[SubmitJobRequest]
    options: BatchOptions
    validate_only: bool
    def __init__(self, batch_id: _Optional[str] = ..., jobs: _Optional[_Iterable[_Union[SubmitJobRequest, _Mapping]]] = ..., options: _Optional[_Union[BatchOptions, _Mapping]] = ..., validate_only: _Optional[bool] = ...) -> None: ...

class SubmitBatchResponse(_message.Message):
    __slots__ = ("batch_id", "total_jobs", "job_ids", "status")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TOTAL_JOBS_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    STATUS_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    total_jobs: int
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    status: str
    def __init__(self, batch_id: _Optional[str] = ..., total_jobs: _Optional[int] = ..., job_ids: _Optional[_Iterable[str]] = ..., status: _Optional[str] = ...) -> None: ...

class GetJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class BatchGetJobsRequest(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class BatchGetJobsResponse(_message.Message):
    __slots__ = ("jobs",)
    JOBS_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ...) -> None: ...

class WatchJobRequest(_message.Message):
    __slots__ = ("id", "from_version")
    ID_FIELD_NUMBER: _ClassVar[int]
    FROM_VERSION_FIELD_NUMBER: _ClassVar[int]
    id: str
    from_version: int
    def __init__(self, id: _Optional[str] = ..., from_version: _Optional[int] = ...) -> None: ...

class WatchJobResponse(_message.Message):
    __slots__ = ("job", "heartbeat")
    JOB_FIELD_NUMBER: _ClassVar[int]
    HEARTBEAT_FIELD_NUMBER: _ClassVar[int]
    job: Job
    heartbeat: _empty_pb2.Empty
    def __init__(self, job: _Optional[_Union[Job, _Mapping]] = ..., heartbeat: _Optional[_Union[_empty_pb2.Empty, _Mapping]] = ...) -> None: ...

class CreateStreamTokenRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class StreamToken(_message.Message):
    __slots__ = ("token", "expires_at")
    TOKEN_FIELD_NUMBER: _ClassVar[int]
    EXPIRES_AT_FIELD_NUMBER: _ClassVar[int]
    token: str
    expires_at: _timestamp_pb2.Timestamp
    def __init__(self, token: _Optional[str] = ..., expires_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ListJobsRequest(_message.Message):
    __slots__ = ("status", "type", "page_size", "page_token", "all_tenants")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALL_TENANTS_FIELD_NUMBER: _ClassVar[int]
    status: JobStatus
    type: JobType
    page_size: int
    page_token: str
    all_tenants: bool
    def __init__(self, status: _Optional[_Union[JobStatus, str]] = ..., type: _Optional[_Union[JobType, str]] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., all_tenants: _Optional[bool] = ...) -> None: ...

class ListJobsResponse(_message.Message):
    __slots__ = ("jobs", "next_page_token")
    JOBS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    jobs: _containers.RepeatedCompositeFieldContainer[Job]
    next_page_token: str
    def __init__(self, jobs: _Optional[_Iterable[_Union[Job, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class RetryJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class DeleteJobRequest(_message.Message):
    __slots__ = ("id",)
    ID_FIELD_NUMBER: _ClassVar[int]
    id: str
    def __init__(self, id: _Optional[str] = ...) -> None: ...

class PurgeJobsRequest(_message.Message):
    __slots__ = ("status", "type", "finished_before", "dry_run", "page_size", "page_token", "all_tenants")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    FINISHED_BEFORE_FIELD_NUMBER: _ClassVar[int]
    DRY_RUN_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    ALL_TENANTS_FIELD_NUMBER: _ClassVar[int]
    status: JobStatus
    type: JobType
    finished_before: _timestamp_pb2.Timestamp
    dry_run: bool
    page_size: int
    page_token: str
    all_tenants: bool
    def __init__(self, status: _Optional[_Union[JobStatus, str]] = ..., type: _Optional[_Union[JobType, str]] = ..., finished_before: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., dry_run: _Optional[bool] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ..., all_tenants: _Optional[bool] = ...) -> None: ...

class PurgeJobsResponse(_message.Message):
    __slots__ = ("deleted", "next_page_token", "job_ids")
    DELETED_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    JOB_IDS_FIELD_NUMBER: _ClassVar[int]
    deleted: int
    next_page_token: str
    job_ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, deleted: _Optional[int] = ..., next_page_token: _Optional[str] = ..., job_ids: _Optional[_Iterable[str]] = ...) -> None: ...

class GetQueueStatsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class JobCounts(_message.Message):
    __slots__ = ("pending", "processing", "completed", "failed", "cancelled")
    PENDING_FIELD_NUMBER: _ClassVar[int]
    PROCESSING_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    pending: int
    processing: int
    completed: int
    failed: int
    cancelled: int
    def __init__(self, pending: _Optional[int] = ..., processing: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class QueueStats(_message.Message):
    __slots__ = ("totals", "by_type", "workers", "scheduled", "by_tenant", "workers_detail", "throughput")
    class ByTypeEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: JobCounts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[JobCounts, _Mapping]] = ...) -> None: ...
    class ByTenantEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: JobCounts
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[JobCounts, _Mapping]] = ...) -> None: ...
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    BY_TYPE_FIELD_NUMBER: _ClassVar[int]
    WORKERS_FIELD_NUMBER: _ClassVar[int]
    SCHEDULED_FIELD_NUMBER: _ClassVar[int]
    BY_TENANT_FIELD_NUMBER: _ClassVar[int]
    WORKERS_DETAIL_FIELD_NUMBER: _ClassVar[int]
    THROUGHPUT_FIELD_NUMBER: _ClassVar[int]
    totals: JobCounts
    by_type: _containers.MessageMap[str, JobCounts]
    workers: int
    scheduled: int
    by_tenant: _containers.MessageMap[str, JobCounts]
    workers_detail: _containers.RepeatedCompositeFieldContainer[WorkerInfo]
    throughput: _containers.RepeatedCompositeFieldContainer[ThroughputBucket]
    def __init__(self, totals: _Optional[_Union[JobCounts, _Mapping]] = ..., by_type: _Optional[_Mapping[str, JobCounts]] = ..., workers: _Optional[int] = ..., scheduled: _Optional[int] = ..., by_tenant: _Optional[_Mapping[str, JobCounts]] = ..., workers_detail: _Optional[_Iterable[_Union[WorkerInfo, _Mapping]]] = ..., throughput: _Optional[_Iterable[_Union[ThroughputBucket, _Mapping]]] = ...) -> None: ...

class WorkerInfo(_message.Message):
    __slots__ = ("worker_id", "job_id", "job_type", "started_at")
    WORKER_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    JOB_TYPE_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    worker_id: str
    job_id: str
    job_type: JobType
    started_at: _timestamp_pb2.Timestamp
    def __init__(self, worker_id: _Optional[str] = ..., job_id: _Optional[str] = ..., job_type: _Optional[_Union[JobType, str]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class ThroughputBucket(_message.Message):
    __slots__ = ("start", "completed", "failed")
    START_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    start: _timestamp_pb2.Timestamp
    completed: int
    failed: int
    def __init__(self, start: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ...) -> None: ...
