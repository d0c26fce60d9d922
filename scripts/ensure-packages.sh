#!/usr/bin/env bash
# Installs, from Debian's packages, each command that is not on PATH; COMMAND:PACKAGE
# names a command whose package is named otherwise.
#   scripts/ensure-packages.sh redis-server redis-cli:redis-tools jq curl
# redis-server is skipped when MEND_REDIS_URL points at a Redis that already runs.
set -euo pipefail
missing=()
commands=()
for arg in "$@"; do
  cmd="${arg%%:*}" package="${arg#*:}"
  if [ "$cmd" = redis-server ] && [ -n "${MEND_REDIS_URL:-}" ]; then continue; fi
  command -v "$cmd" >/dev/null 2>&1 || { missing+=("$package"); commands+=("$cmd"); }
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "missing: ${missing[*]}; installing Debian's packages..." >&2
if [ "$(id -u)" -eq 0 ]; then SUDO=""; elif command -v sudo >/dev/null; then SUDO="sudo"; else
  echo "error: ${missing[*]} missing and this user cannot install packages." >&2
  echo "Install them (apt-get install ${missing[*]}); for Redis you may set MEND_REDIS_URL instead." >&2
  exit 1
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "error: no apt-get here. Install ${missing[*]} yourself (Redis >= 6.2)," >&2
  echo "or set MEND_REDIS_URL to a running Redis." >&2
  exit 1
fi
$SUDO apt-get update -qq
# Debian's redis-server package also starts a system service; Mend runs its own Redis.
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
for cmd in "${commands[@]}"; do command -v "$cmd" >/dev/null; done
