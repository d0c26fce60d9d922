"""`mend-admin`: operator commands that work on Mend's Redis directly (MEND_REDIS_URL).

  mend-admin webhooks list [--limit N] [--json]   the dead letters, oldest first
  mend-admin webhooks replay ID [ID ...]           send these dead letters again
  mend-admin webhooks replay --all                 send every dead letter again

A replay is a fresh delivery with a new attempt budget and the same X-Mend-Delivery id
(it is the same event, so a receiver that did process it can tell)."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

import redis.exceptions

from mend_core.jobstate.partitions import Partitions
from mend_core.jobstate.webhook_queue import WebhookQueues
from mend_core.redis_client import connect
from mend_core.settings import Settings

COLUMNS = ("id", "failed_at", "attempts", "event", "url", "delivery_id", "error")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mend-admin",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    area = parser.add_subparsers(dest="area", required=True)
    webhooks = area.add_parser("webhooks", help="dead-lettered webhook deliveries")
    command = webhooks.add_subparsers(dest="command", required=True)
    listing = command.add_parser("list", help="list the dead letters, oldest first")
    listing.add_argument("--limit", type=int, help="at most this many")
    listing.add_argument("--json", action="store_true", help="a JSON array")
    replay = command.add_parser("replay", help="deliver dead letters again")
    replay.add_argument("ids", nargs="*", metavar="ID", help="dead-letter ids, as listed")
    replay.add_argument("--all", action="store_true", help="every dead letter")
    return parser


async def _run(args: argparse.Namespace, settings: Settings) -> int:
    client = connect(settings.redis_url, shared=False)
    queue = WebhookQueues(
        client,
        Partitions(settings.partitions),
        dead_retention_seconds=settings.retention_failed_seconds,
    )
    try:
        if args.command == "list":
            rows = [letter.to_dict() for letter in await queue.dead_letters(args.limit)]
            if args.json:
                print(json.dumps(rows, indent=2, ensure_ascii=False))
            else:
                print("\t".join(COLUMNS).upper())
                for row in rows:
                    print("\t".join(str(row[c]) for c in COLUMNS))
            return 0
        if args.all:
            print(f"replayed {await queue.replay_all()} dead letters")
            return 0
        replayed = await queue.replay(args.ids)
        for missing in sorted(set(args.ids) - set(replayed)):
            print(f"not a dead letter: {missing}", file=sys.stderr)
        print(f"replayed {len(replayed)} of {len(set(args.ids))} dead letters")
        return 0 if len(replayed) == len(set(args.ids)) else 1
    except ValueError as exc:
        print(f"mend-admin: {exc}", file=sys.stderr)
        return 2
    except redis.exceptions.ConnectionError as exc:
        print(f"mend-admin: cannot reach Redis at {settings.redis_url}: {exc}", file=sys.stderr)
        return 1
    finally:
        await client.aclose()


def main(argv: list[str] | None = None) -> None:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command == "replay" and bool(args.ids) == bool(args.all):
        parser.error("replay takes dead-letter ids or --all (one of them)")
    settings = Settings()
    sys.exit(asyncio.run(_run(args, settings)))


if __name__ == "__main__":
    main()
