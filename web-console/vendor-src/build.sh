#!/usr/bin/env bash
# Bundles the pinned third-party modules (package-lock.json) into web-console/app/vendor/.
#   web-console/vendor-src/build.sh           rebuild the bundles
#   web-console/vendor-src/build.sh --check   rebuild into a temporary folder and fail if the
#                                             committed bundles differ (run by scripts/test.sh)
set -euo pipefail
cd "$(dirname "$0")"
out=../app/vendor
if [ "${1:-}" = "--check" ]; then out=$(mktemp -d); fi
[ -d node_modules/esbuild ] || npm ci --no-audit --no-fund --ignore-scripts=false >/dev/null
node node_modules/esbuild/install.js >/dev/null 2>&1 || true
for entry in codemirror crypto; do
    node_modules/.bin/esbuild "$entry.js" --bundle --format=esm --minify --target=es2022 \
        --legal-comments=none --log-level=warning --outfile="$out/$entry.js"
done
if [ "${1:-}" = "--check" ]; then
    for entry in codemirror crypto; do
        if ! cmp -s "$out/$entry.js" "../app/vendor/$entry.js"; then
            echo "web-console/app/vendor/$entry.js is stale: run web-console/vendor-src/build.sh" >&2
            exit 1
        fi
    done
    rm -rf "$out"
    echo "web-console vendor bundles match package-lock.json"
fi
