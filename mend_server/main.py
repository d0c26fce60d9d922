"""`mend-server`: runs the gRPC server with settings from MEND_* environment variables."""

from __future__ import annotations

import asyncio
import logging

from mend_core.settings import Settings
from mend_server.server import serve


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    asyncio.run(serve(Settings()))


if __name__ == "__main__":
    main()
