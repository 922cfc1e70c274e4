#!/bin/sh
# Builds @ID@.wasm: componentize-js from npm (installed on the first run),
# without wasi:http, which Stepwise does not provide.
set -eu
cd "$(dirname "$0")"
[ -d node_modules ] || npm install --no-audit --no-fund
npm run build
