#!/usr/bin/env bash
# Installs redis-server from Debian's packages when it is not on PATH (or MEND_REDIS_URL
# points at a Redis that is already running).
set -euo pipefail
if [ -n "${MEND_REDIS_URL:-}" ] || command -v redis-server >/dev/null 2>&1; then
  exit 0
fi
echo "redis-server is not installed: installing Debian's redis-server package..." >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: redis-server is missing and this user cannot install packages." >&2
  echo "Install it (apt-get install redis-server), or set MEND_REDIS_URL to a running Redis." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here. Install redis-server (>= 6.2) yourself, or set MEND_REDIS_URL." >&2
  exit 1
fi
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends redis-server >/dev/null
# Debian's package starts a system service; Mend runs its own Redis, so leave that one alone.
command -v redis-server >/dev/null
