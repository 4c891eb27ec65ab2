#!/usr/bin/env bash
# Runs the whole test suite (every crate of the workspace, the fuzz corpora
# included) after installing the Debian packages the tests need: the build's,
# and the real servers the tests start on loopback (MIT KDC, OpenLDAP), curl.
# Needs root or sudo for the install. Extra arguments go to `cargo test`.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/dev/packages.sh test
exec cargo test --locked "$@"
