#!/usr/bin/env bash
# The one command that checks everything, on a fresh machine too:
#   scripts/test.sh
# It installs what the tests need when missing, then runs the format check, clippy with
# warnings as errors, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Rust toolchain (cargo, rustfmt, clippy) comes with the machine. The process tests also use
# util-linux's `prlimit` and coreutils' `mkfifo` (both in every Debian install); the browser
# console's end-to-end tests use Debian's `chromium` driven by `playwright-core` from npm (with
# Node.js); the cluster tests run real `etcd` processes (Debian's `etcd-server`, with `etcdctl`
# to turn authentication on, `openssl` for TLS certificates and `curl` in the local-cluster
# script), the README's examples (run by tests/readme_examples.rs) use `curl` and `openssl`, and
# the etcd backend (cargo feature `etcd`) needs `protoc` to build, and `systemd-analyze` checks
# contrib/heterogen.service. Anything missing is installed
# here.
for tool in cargo rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null || { echo "scripts/test.sh: $tool is missing" >&2; exit 1; }
done
missing=()
command -v prlimit >/dev/null || missing+=(util-linux)
command -v mkfifo >/dev/null || missing+=(coreutils)
command -v chromium >/dev/null || missing+=(chromium)
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
command -v etcd >/dev/null || missing+=(etcd-server)
command -v etcdctl >/dev/null || missing+=(etcd-client)
command -v openssl >/dev/null || missing+=(openssl)
command -v curl >/dev/null || missing+=(curl)
command -v protoc >/dev/null || missing+=(protobuf-compiler)
command -v systemd-analyze >/dev/null || missing+=(systemd)
if [ ${#missing[@]} -gt 0 ]; then
    echo "== installing ${missing[*]}"
    apt-get update -q && apt-get install -y -q "${missing[@]}"
fi

echo "== cargo fmt --check"
cargo fmt --check
echo "== module dependencies point one way (ARCHITECTURE.md, Layers)"
scripts/module-deps.sh --check
echo "== cargo clippy --all-targets --all-features -- -D warnings"
cargo clippy --locked --all-targets --all-features -- -D warnings
echo "== the single-node binary builds without the etcd feature (no protoc needed)"
cargo check --locked --bin heterogen
echo "== cargo test --all-features"
cargo test --locked --all-features --no-fail-fast
echo "== web-console: committed vendor bundles match package-lock.json"
web-console/vendor-src/build.sh --check
echo "== web-console: end-to-end in chromium against real nodes"
(cd web-console/e2e && npm ci --no-audit --no-fund --loglevel=error)
cargo build --locked --all-features
HETEROGEN_BIN="$PWD/target/debug/heterogen" node --test --test-concurrency=1 web-console/e2e/
