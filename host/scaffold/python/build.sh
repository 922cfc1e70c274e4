#!/bin/sh
# Builds @ID@.wasm: componentize-py from PyPI in a virtual environment of
# its own (made on the first run), then the component.
set -eu
cd "$(dirname "$0")"
if [ ! -x .venv/bin/componentize-py ]; then
  python3 -m venv .venv
  .venv/bin/pip install --quiet --disable-pip-version-check -r requirements.txt
fi
.venv/bin/componentize-py --wit-path wit --world @WORLD@ componentize app --output @ID@.wasm
