#!/usr/bin/env bash
# Runs the gateway on its built-in defaults (proxy 127.0.0.1:3128, admin
# 127.0.0.1:9128, the built-in policy, a CA created in certs/ on first start),
# after installing the Debian packages the build needs (as root or with sudo).
# Extra arguments go to `socialgate run`, e.g. `--config socialgate.yaml`.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/dev/packages.sh build
exec cargo run --release --locked -- run "$@"
