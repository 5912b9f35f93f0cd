#!/usr/bin/env bash
# The project's test command (README): everything `cargo test` covers, on a fresh machine.
# Anything a test needs is installed here, never by hand.
set -euo pipefail
cd "$(dirname "$0")/.."
cargo test --workspace --locked "$@"
