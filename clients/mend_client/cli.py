"""`mend`: the command line for Mend's gRPC API.

    mend submit resize my-bucket/input.jpg my-bucket/output.jpg --width 800 --height 600
    mend watch JOB_ID
    mend submit resize my-bucket/in.jpg my-bucket/out.jpg --width 800 --delay 30
    mend get JOB_ID | list | cancel JOB_ID | stats
    mend retry JOB_ID | delete JOB_ID | purge --status failed --before 2025-01-01

The address and API key come from --address/--api-key or MEND_ADDRESS/MEND_API_KEY;
--tls (with --ca FILE, and --cert FILE --key FILE for mutual TLS) connects with TLS.
--json prints one JSON object per line, each as the REST API shows it (what curl prints).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from datetime import datetime
from typing import Any, NoReturn, TextIO

from google.protobuf.descriptor import FieldDescriptor

from mend_client._connection import DEFAULT_ADDRESS, DEFAULT_TIMEOUT_SECONDS
from mend_client._errors import DeadlineExceeded, MendError
from mend_client._operations import OPERATIONS, OperationInfo, enum_names
from mend_client._requests import JobRequest
from mend_client._sync import Client
from mend_client._types import Job, JobStatus, QueueStats

# Exit codes, also shown by `mend --help`.
EXIT_OK = 0
EXIT_FAILED = 1
EXIT_CANCELLED = 2
EXIT_ERROR = 3
EXIT_TIMEOUT = 4
EXIT_USAGE = 64
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a killed writer

EXIT_CODES_HELP = f"""\
exit status:
  {EXIT_OK}    success; for watch and submit --watch: the job completed
  {EXIT_FAILED}    the job failed (watch, submit --watch)
  {EXIT_CANCELLED}    the job was cancelled (watch, submit --watch)
  {EXIT_ERROR}    the server refused or could not answer the request (message on stderr)
  {EXIT_TIMEOUT}    --max-wait passed before the job finished
  {EXIT_USAGE}   bad command line
  {EXIT_INTERRUPTED}  interrupted (Ctrl-C)
  {EXIT_BROKEN_PIPE}  the reader of the output went away (mend list | head)

environment:
  MEND_ADDRESS  gRPC address (default {DEFAULT_ADDRESS})
  MEND_API_KEY  API key (default: none)
"""

_STATUS_EXIT = {
    JobStatus.COMPLETED: EXIT_OK,
    JobStatus.FAILED: EXIT_FAILED,
    JobStatus.CANCELLED: EXIT_CANCELLED,
}


class _Parser(argparse.ArgumentParser):
    # argparse exits 2 on usage errors, which `mend watch` uses for "cancelled".
    def error(self, message: str) -> NoReturn:
        self.print_usage(sys.stderr)
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}\n")


def _object(value: str) -> tuple[str, str]:
    bucket, sep, key = value.partition("/")
    if not sep or not bucket or not key:
        raise argparse.ArgumentTypeError(f"expected BUCKET/KEY, got {value!r}")
    return bucket, key


def _seconds(value: str) -> float:
    """A deadline: a zero or negative one would fail every call with "Deadline Exceeded"."""
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds > 0):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _count(value: str) -> int:
    """A --limit: a negative one would list nothing, silently."""
    try:
        count = int(value)
    except ValueError:
        count = -1
    if count < 0:
        raise argparse.ArgumentTypeError(f"expected 0 or a positive count, got {value!r}")
    return count


def _when_arg(value: str) -> datetime:
    """An ISO 8601 time ("2025-06-01T12:00:00Z", "2025-06-01"); without an offset, in the
    local time zone, as `date` reads one."""
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 time, got {value!r}") from None
    return when if when.tzinfo is not None else when.astimezone()


def _common_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """Connection options, accepted before and after the command. On subcommands their
    defaults are suppressed so that they do not override a value given before."""

    def default(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument(
        "--address",
        default=default(os.environ.get("MEND_ADDRESS") or DEFAULT_ADDRESS),
        help=f"gRPC address, host:port (env MEND_ADDRESS, default {DEFAULT_ADDRESS})",
    )
    parser.add_argument(
        "--api-key",
        default=default(os.environ.get("MEND_API_KEY") or None),
        help="API key (env MEND_API_KEY)",
    )
    parser.add_argument(
        "--tls",
        action="store_true",
        default=default(False),
        help="connect with TLS, checking the server against public roots unless --ca is given",
    )
    tls_files = {
        "--ca": "PEM CA certificates to check the server's certificate with (implies --tls)",
        "--cert": "PEM client certificate, for servers that require one (mutual TLS; with --key)",
        "--key": "PEM private key of --cert",
    }
    for flag, text in tls_files.items():
        parser.add_argument(flag, metavar="FILE", default=default(None), help=text)
    parser.add_argument(
        "--timeout",
        type=_seconds,
        metavar="SECONDS",
        default=default(DEFAULT_TIMEOUT_SECONDS),
        help=f"deadline of each call (default {DEFAULT_TIMEOUT_SECONDS:g})",
    )
    parser.add_argument(
        "--json",
        action="store_true",
        default=default(False),
        help="print one JSON object per line",
    )


# Python types of the proto's scalar fields, for the options of `submit`.
_SCALARS = {
    FieldDescriptor.TYPE_INT32: int,
    FieldDescriptor.TYPE_INT64: int,
    FieldDescriptor.TYPE_UINT32: int,
    FieldDescriptor.TYPE_DOUBLE: float,
    FieldDescriptor.TYPE_FLOAT: float,
    FieldDescriptor.TYPE_STRING: str,
}


def _operation_parser(kinds: Any, info: OperationInfo) -> None:
    """`mend submit <command>`: one option per field of the operation's parameters
    message, as the proto declares them (enums by their short names)."""
    text = info.type.replace("_", " ")
    sub = kinds.add_parser(info.command, help=text, description=text)
    _common_options(sub, suppress=True)
    sub.add_argument("source", type=_object, metavar="SOURCE", help="BUCKET/KEY to read")
    if info.dest_optional:
        sub.add_argument(
            "dest", type=_object, metavar="DEST", nargs="?", help="BUCKET/KEY to write (optional)"
        )
    else:
        sub.add_argument("dest", type=_object, metavar="DEST", help="BUCKET/KEY to write")
    params = sub.add_argument_group("parameters")
    for f in info.params.fields:
        flag = "--" + f.name.replace("_", "-")
        if f.enum_type is not None:
            params.add_argument(flag, dest=f"param_{f.name}", choices=enum_names(f.enum_type))
        elif f.type == FieldDescriptor.TYPE_BOOL:
            params.add_argument(flag, dest=f"param_{f.name}", action="store_true", default=None)
        else:
            params.add_argument(
                flag, dest=f"param_{f.name}", type=_SCALARS.get(f.type, str), metavar="N"
                if _SCALARS.get(f.type) in (int, float) else "TEXT"
            )
    sub.add_argument("--priority", type=int, help="0-9, higher runs first (default 5)")
    sub.add_argument("--request-id", help="idempotency key: resubmitting returns the job")
    sub.add_argument("--webhook-url")
    sub.add_argument("--webhook-style", choices=("default", "discord"))
    sub.add_argument("--max-attempts", type=int)
    sub.add_argument("--timeout-seconds", type=int, help="how long the job may run on a worker")
    later = sub.add_mutually_exclusive_group()
    later.add_argument(
        "--delay", type=float, metavar="SECONDS", help="run it this many seconds from now"
    )
    later.add_argument(
        "--run-at", type=_when_arg, metavar="TIME", help="run it at this ISO 8601 time"
    )
    sub.set_defaults(job_type=info.type)
    _watch_options(sub, flag=True)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="mend",
        description="Submit, follow and manage Mend jobs over gRPC.",
        epilog=EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _common_options(parser, suppress=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def command(name: str, help: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help, description=help)
        _common_options(sub, suppress=True)
        return sub

    submit = command("submit", "queue a job")
    kinds = submit.add_subparsers(dest="kind", required=True, metavar="TYPE")
    for info in OPERATIONS.values():
        _operation_parser(kinds, info)

    get = command("get", "show a job")
    get.add_argument("id")

    watch = command("watch", "follow a job until it finishes (exit status: see mend --help)")
    watch.add_argument("id")
    _watch_options(watch, flag=False)

    ls = command("list", "list your jobs, newest first")
    ls.add_argument("--status", choices=[s.value for s in JobStatus])
    ls.add_argument("--type", choices=tuple(OPERATIONS))
    ls.add_argument(
        "--limit", type=_count, default=20, help="at most this many; 0: all (default 20)"
    )
    ls.add_argument("--page-size", type=int, help="jobs per request (1-100)")

    cancel = command("cancel", "cancel a job that has not finished")
    cancel.add_argument("id")

    retry = command("retry", "run a failed or cancelled job again (same id, fresh attempts)")
    retry.add_argument("id")
    _watch_options(retry, flag=True)

    delete = command("delete", "delete a finished job")
    delete.add_argument("id")

    purge = command("purge", "delete your finished jobs that match (all three states if unset)")
    purge.add_argument("--status", choices=[s.value for s in JobStatus if s.terminal])
    purge.add_argument("--type", choices=tuple(OPERATIONS))
    purge.add_argument(
        "--before", type=_when_arg, metavar="TIME", help="only jobs that finished before then"
    )
    purge.add_argument("--dry-run", action="store_true", help="delete nothing; list what would go")
    purge.add_argument(
        "--all-tenants", action="store_true", help="every tenant's jobs (admin keys only)"
    )
    purge.add_argument("--page-size", type=int, help="jobs looked at per request (1-1000)")

    command("stats", "queue statistics")
    return parser


def _watch_options(parser: argparse.ArgumentParser, *, flag: bool) -> None:
    if flag:
        parser.add_argument(
            "--watch", action="store_true", help="then follow the job, as `mend watch`"
        )
    parser.add_argument(
        "--max-wait",
        type=_seconds,
        metavar="SECONDS",
        help="give up (exit 4) if the job has not finished by then",
    )


class _Output:
    def __init__(self, as_json: bool, out: TextIO | None = None) -> None:
        self.json = as_json
        self.out = out or sys.stdout
        self._live = self.out.isatty() and not as_json
        self._overwrite = False  # the last line was a progress line we may replace

    def emit(self, obj: dict[str, Any], text: str) -> None:
        if self.json:
            print(json.dumps(obj, separators=(",", ":")), file=self.out, flush=True)
        else:
            print(text, file=self.out, flush=True)

    def state(self, job: Job) -> None:
        """One line per change; on a terminal, progress updates replace the line."""
        if self.json:
            self.emit(job.to_dict(), "")
            return
        line = _state_line(job)
        progress_only = job.status is JobStatus.PROCESSING and job.progress is not None
        if self._live and self._overwrite and progress_only:
            self.out.write("\r\x1b[K" + line)
        else:
            self.out.write(("\n" if self._overwrite else "") + line)
        self._overwrite = self._live and progress_only
        if not self._overwrite:
            self.out.write("\n")
        self.out.flush()

    def state_end(self) -> None:
        """Ends a progress line left open for replacing."""
        if self._overwrite:
            self.out.write("\n")
            self.out.flush()
            self._overwrite = False


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else "-"


def _bar(percent: int, width: int = 20) -> str:
    filled = max(0, min(width, round(percent * width / 100)))
    return "[" + "#" * filled + "." * (width - filled) + f"] {percent:3d}%"


def _state_line(job: Job) -> str:
    status = f"{job.status.value:<10}"
    if job.status is JobStatus.PENDING:
        detail = []
        if job.scheduled_at is not None:
            detail.append(f"scheduled for {_when(job.scheduled_at)}")
        if job.queue_position is not None:
            detail.append(f"queue position {job.queue_position}")
        if job.estimated_wait_seconds is not None:
            detail.append(f"about {job.estimated_wait_seconds:.0f}s to wait")
        if job.attempt:
            detail.append(f"retrying after attempt {job.attempt}: {job.error}")
        return f"{status}  {', '.join(detail)}".rstrip()
    if job.status is JobStatus.PROCESSING:
        progress = job.progress
        text = _bar(progress.percent) if progress else "started"
        if progress and progress.message:
            text += f" {progress.message}"
        return f"{status}  {text}  (attempt {job.attempt} of {job.max_attempts})"
    if job.status is JobStatus.COMPLETED and job.result:
        r = job.result
        made = [f"{r.width}x{r.height} {r.format}"] if r.width else []
        made += [_summary(name, value) for name, value in r.details.items()]
        made += [f"{r.file_size} bytes", f"{r.duration:.2f}s"]
        return f"{status}  {r.output_url or '(no output file)'}  {', '.join(made)}"
    return f"{status}  {job.error}".rstrip()


def _summary(name: str, value: Any) -> str:
    """One operation detail in a few words: "audio mp3 20.0s", "3 colors #8c7e63 ..."."""
    if name == "colors" and isinstance(value, list):
        return f"{len(value)} colors " + " ".join(str(c.get("hex")) for c in value)
    if isinstance(value, dict):
        shown = [str(value["codec"])] if "codec" in value else []
        if "duration_seconds" in value:
            shown.append(f"{float(value['duration_seconds']):g}s")
        return " ".join([name, *shown])
    return f"{name} {value}"


def _describe(job: Job) -> str:
    rows: list[tuple[str, str]] = [
        ("id", job.id),
        ("type", job.type),
        ("status", _state_line(job).strip()),
        ("source", f"{job.source_bucket}/{job.source_key}"),
        ("destination", f"{job.dest_bucket}/{job.dest_key}"),
        ("parameters", " ".join(f"{k}={v}" for k, v in job.parameters.items()) or "-"),
        ("priority", str(job.priority)),
        ("attempts", f"{job.attempt} of {job.max_attempts}"),
        ("created", _when(job.created_at)),
        ("updated", _when(job.updated_at)),
    ]
    if job.completed_at:
        rows.append(("finished", _when(job.completed_at)))
    if job.duration_seconds is not None:
        rows.append(("duration", f"{job.duration_seconds:.2f}s"))
    if job.error:
        rows.append(("error", job.error))
    if job.request_id:
        rows.append(("request id", job.request_id))
    if job.batch_id:
        rows.append(("batch", job.batch_id))
    return "\n".join(f"{name + ':':<13}{value}" for name, value in rows)


def _stats_text(stats: QueueStats) -> str:
    header = (
        f"{'':<14}{'pending':>9}{'processing':>11}{'completed':>10}{'failed':>8}{'cancelled':>10}"
    )
    lines = [header]
    for name, c in [("total", stats.totals), *sorted(stats.by_type.items())]:
        lines.append(
            f"{name:<14}{c.pending:>9}{c.processing:>11}{c.completed:>10}"
            f"{c.failed:>8}{c.cancelled:>10}"
        )
    lines.append(f"workers: {stats.workers}   scheduled (retries, delayed jobs): {stats.scheduled}")
    return "\n".join(lines)


def _watch(client: Client, job_id: str, out: _Output, max_wait: float | None) -> int:
    last: Job | None = None
    try:
        for job in client.watch(job_id, timeout=max_wait):
            out.state(job)
            last = job
    except DeadlineExceeded as exc:
        out.state_end()
        _report(exc, out.json)
        return EXIT_TIMEOUT
    out.state_end()
    if last is None:
        last = client.get(job_id)
    return _STATUS_EXIT.get(last.status, EXIT_ERROR)


def _run(args: argparse.Namespace, out: _Output) -> int:
    with Client(
        args.address,
        api_key=args.api_key,
        timeout=args.timeout,
        tls=args.tls,
        ca=args.ca,
        cert=args.cert,
        key=args.key,
    ) as client:
        if args.command == "submit":
            (sb, sk), (db, dk) = args.source, args.dest or ("", "")
            params = {
                name.removeprefix("param_"): value
                for name, value in vars(args).items()
                if name.startswith("param_")
            }
            request = JobRequest(
                type=args.job_type,
                source_bucket=sb,
                source_key=sk,
                dest_bucket=db,
                dest_key=dk,
                params=params,
                priority=args.priority,
                request_id=args.request_id,
                webhook_url=args.webhook_url,
                webhook_style=args.webhook_style,
                max_attempts=args.max_attempts,
                timeout_seconds=args.timeout_seconds,
                run_at=args.run_at,
                delay_seconds=args.delay,
            )
            job_id = client.submit(request)
            out.emit({"job_id": job_id}, job_id)
            if args.watch:
                return _watch(client, job_id, out, args.max_wait)
        elif args.command == "get":
            job = client.get(args.id)
            out.emit(job.to_dict(), _describe(job))
        elif args.command == "watch":
            return _watch(client, args.id, out, args.max_wait)
        elif args.command == "list":
            jobs = client.list(
                status=args.status,
                type=args.type,
                page_size=args.page_size,
                limit=args.limit or None,
            )
            for job in jobs:
                out.emit(
                    job.to_dict(),
                    f"{job.id}  {job.status.value:<10}  {job.type:<12}  {_when(job.created_at)}"
                    f"  {job.source_bucket}/{job.source_key} -> {job.dest_bucket}/{job.dest_key}",
                )
        elif args.command == "cancel":
            job = client.cancel(args.id)
            out.emit(job.to_dict(), f"{job.id}  {job.status.value}")
        elif args.command == "retry":
            job = client.retry(args.id)
            out.emit(job.to_dict(), f"{job.id}  {job.status.value}")
            if args.watch:
                return _watch(client, job.id, out, args.max_wait)
        elif args.command == "delete":
            client.delete(args.id)
            out.emit({"job_id": args.id, "deleted": True}, f"{args.id}  deleted")
        elif args.command == "purge":
            purged = client.purge(
                status=args.status,
                type=args.type,
                finished_before=args.before,
                dry_run=args.dry_run,
                all_tenants=args.all_tenants,
                page_size=args.page_size,
            )
            verb = "would delete" if args.dry_run else "deleted"
            text = "\n".join([*purged.job_ids, f"{verb} {purged.deleted} jobs"])
            out.emit({"deleted": purged.deleted, "job_ids": purged.job_ids}, text)
        elif args.command == "stats":
            stats = client.stats()
            out.emit(stats.to_dict(), _stats_text(stats))
    return EXIT_OK


def _report(error: MendError, as_json: bool) -> None:
    err = sys.stderr
    if as_json:
        body = {
            "error": error.message,
            "code": error.code.name,
            "violations": [{"field": f, "description": d} for f, d in error.violations],
        }
        if error.reason:
            body["reason"] = error.reason
        print(json.dumps(body, separators=(",", ":")), file=err)
        return
    print(f"mend: error: {error.message}", file=err)
    for field, description in error.violations:
        print(f"  {field}: {description}", file=err)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = _Output(args.json)
    try:
        return _run(args, out)
    except MendError as exc:
        out.state_end()
        _report(exc, args.json)
        return EXIT_ERROR
    except ValueError as exc:  # e.g. an unknown enum name, an unreadable certificate file
        print(f"mend: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except BrokenPipeError:
        # The reader went away (`mend list | head`): stop quietly, as Unix tools do. Point
        # stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except KeyboardInterrupt:
        out.state_end()
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
