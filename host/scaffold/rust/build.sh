#!/bin/sh
# Builds @ID@.wasm: the crate for wasm32-wasip2 (the target is added with
# rustup when missing), copied here.
set -eu
cd "$(dirname "$0")"
rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2 || rustup target add wasm32-wasip2
cargo build --release --target wasm32-wasip2
cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/release/@CRATE@.wasm" @ID@.wasm
