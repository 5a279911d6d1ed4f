#!/usr/bin/env bash
# The one command that checks everything, on a fresh machine too:
#   scripts/test.sh
# It installs what the tests need when missing, then runs the format check, clippy with
# warnings as errors, and every test.
set -euo pipefail
cd "$(dirname "$0")/.."

# The Rust toolchain (cargo, rustfmt, clippy) comes with the machine; nothing else is needed
# by the tests yet. Debian packages for later suites are installed here with apt-get.
for tool in cargo rustfmt cargo-clippy; do
    command -v "$tool" >/dev/null || { echo "scripts/test.sh: $tool is missing" >&2; exit 1; }
done

echo "== cargo fmt --check"
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings"
cargo clippy --locked --all-targets -- -D warnings
echo "== cargo test"
cargo test --locked --no-fail-fast
