#!/usr/bin/env bash
# Installs the OpenTelemetry SDKs the end-to-end tests drive: a Python venv in
# tests/sdk/.venv (requirements.txt) and the Node.js packages in
# tests/sdk/node/node_modules (package-lock.json). Idempotent and quiet when
# everything is already there.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
exec 9>"$here/.setup.lock"
flock 9

req="$here/python/requirements.txt"
venv="$here/.venv"
stamp="$venv/.installed-$(sha256sum "$req" | cut -c1-16)"
if [ ! -f "$stamp" ]; then
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check -r "$req"
  touch "$stamp"
fi

lock="$here/node/package-lock.json"
nstamp="$here/node/node_modules/.installed-$(sha256sum "$lock" | cut -c1-16)"
if [ ! -f "$nstamp" ]; then
  (cd "$here/node" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  touch "$nstamp"
fi
