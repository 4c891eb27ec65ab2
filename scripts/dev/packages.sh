#!/usr/bin/env bash
# Installs the Debian packages socialgate needs, by purpose, when they are
# missing: `build` (compile and run the gateway with Kerberos sign-in), `test`
# (the test suite's real servers and clients), `ci` (everything .ci/run checks:
# the browser end-to-end test, promtool). Used by scripts/dev/run.sh,
# scripts/dev/test.sh and .ci/run, so the three lists cannot drift apart.
#
#   scripts/dev/packages.sh build|test|ci
#
# Needs root or sudo (apt-get); prints what it installs and nothing otherwise.
set -euo pipefail

# gcc and libc6-dev: the linker Rust needs (and the C builds of ring and
# mimalloc); a machine with rustup alone may lack them. MIT Kerberos' GSSAPI
# headers and libclang (bindgen) build the `kerberos` feature, on by default;
# libgssapi-krb5-2 is what the binary loads at run time.
build=(ca-certificates gcc libc6-dev pkg-config libkrb5-dev libclang-dev libgssapi-krb5-2)
# curl is a real client in the tests; the Kerberos and LDAP tests start their own
# MIT KDC and OpenLDAP server on loopback, the audit.syslog test its own
# rsyslogd, the parent-proxy test a real Squid (its htpasswd made with openssl), the replicas test a real HAProxy;
# python3 runs the module-cycle check; iproute2 and nftables make the network
# namespaces and redirect rules of the transparent-mode test.
test=("${build[@]}" curl krb5-kdc krb5-admin-server krb5-user slapd ldap-utils rsyslog python3 squid openssl haproxy iproute2 nftables)
# Headless Chromium with its driver and NSS tools for the browser tests (fonts for
# faithful screenshots); npm fetches axe-core for the pages' accessibility check
# (Debian's npm only where no npm is on the machine: a Node.js from elsewhere
# brings its own, and Debian's package would conflict with it);
# promtool (Debian prometheus) checks deploy/prometheus.
ci=("${test[@]}" chromium chromium-driver libnss3-tools fonts-liberation prometheus)
command -v npm >/dev/null 2>&1 || ci+=(npm)

case "${1:-}" in
  build) wanted=("${build[@]}") ;;
  test) wanted=("${test[@]}") ;;
  ci) wanted=("${ci[@]}") ;;
  *) echo "usage: $0 build|test|ci" >&2; exit 2 ;;
esac

missing=()
for p in "${wanted[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -eq 0 ]; then
  sudo=()
elif command -v sudo >/dev/null 2>&1; then
  sudo=(sudo)
else
  echo "socialgate needs these Debian packages: ${missing[*]}" >&2
  echo "Run this script as root, or install them with: apt-get install ${missing[*]}" >&2
  exit 1
fi
echo "==> installing Debian packages: ${missing[*]}" >&2
"${sudo[@]}" apt-get update -qq
# slapd asks questions on install; the tests configure their own server.
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >&2
