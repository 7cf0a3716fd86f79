#!/usr/bin/env bash
# The README's set-up command: everything tongdai needs on a fresh Debian machine.
#   Debian packages: Java 17, Maven, clickhouse-server 18.16, python3-venv, chromium, npm
#   the web pages' browser libraries from npm (api/web/node_modules: SIP.js)
#   .venv/ with tongdai and its Python dependencies (incl. chdb, pytest)
#   the Apache Kafka broker jars, from Maven Central (var/stack/kafka-dist/)
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/../.."

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

missing=()
command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
[ -x /usr/sbin/clickhouse-server ] || command -v clickhouse-server >/dev/null 2>&1 \
  || missing+=(clickhouse-server clickhouse-client)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || missing+=(python3-venv)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)  # the end-to-end browser tests
command -v npm >/dev/null 2>&1 || missing+=(npm)  # the agent page's softphone library
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  $SUDO apt-get update -qq
  # The stack runs its own ClickHouse; don't let the package start the system one.
  $SUDO env DEBIAN_FRONTEND=noninteractive RUNLEVEL=1 apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet clickhouse-server 2>/dev/null; then
  echo "setup: the system clickhouse-server service holds ports 9000/8123; stopping and disabling it"
  $SUDO systemctl disable --now clickhouse-server
fi

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
  echo "setup: tongdai needs Python 3.11 or newer ($PY is $("$PY" --version 2>&1))" >&2
  exit 1
fi
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
echo "setup: installing Python dependencies into .venv/"
.venv/bin/python -m pip install -q -e '.[test]'
.venv/bin/tongdai stack install
echo "setup: installing the web pages' browser libraries into api/web/node_modules/"
npm ci --prefix api/web --no-audit --no-fund --loglevel=error
echo "setup: done. Next: .venv/bin/tongdai up   (tests: .venv/bin/pytest)"
