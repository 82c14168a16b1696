#!/usr/bin/env bash
# What the test suite needs that pip cannot install: Debian's chromium (the reviewer page is tested
# in a real browser) and PostgreSQL's server binaries (a private cluster on a loopback port).
# As root, install what is missing; as another user, stop with the one command to run.
set -euo pipefail

need=()
command -v chromium >/dev/null 2>&1 || need+=(chromium)
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && ! command -v initdb >/dev/null 2>&1; then
  need+=(postgresql)
fi
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" -ne 0 ]; then
  echo "the test suite needs ${need[*]} (Debian packages); run: sudo apt-get install -y ${need[*]}" >&2
  exit 2
fi
echo "installing ${need[*]} (Debian packages the test suite needs)"
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}"
