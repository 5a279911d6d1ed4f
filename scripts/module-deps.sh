#!/usr/bin/env bash
# Lists which top-level modules of src/ each top-level module uses (from `crate::…` paths in
# its files), then the cycles among them. Exit status 1 when there is a cycle.
#
#   scripts/module-deps.sh            # listing + cycles
#   scripts/module-deps.sh --check    # cycles only (quiet when there are none)
set -euo pipefail
cd "$(dirname "$0")/../src"

modules=()
for entry in *; do
  case "$entry" in
    lib.rs | main.rs) ;;
    *.rs) modules+=("${entry%.rs}") ;;
    *) [ -d "$entry" ] && modules+=("$entry") ;;
  esac
done

is_module() {
  local m
  for m in "${modules[@]}"; do [ "$m" = "$1" ] && return 0; done
  return 1
}

# Files of a module: `name.rs` and everything under `name/`; test modules count too, except
# `#[cfg(test)]` blocks, which are cut off at the marker (they sit at the end of a file).
files_of() {
  local m=$1
  [ -f "$m.rs" ] && echo "$m.rs"
  [ -d "$m" ] && find "$m" -name '*.rs' | sort
  return 0
}

# The top-level modules named by `crate::x` paths, also inside `use crate::{x, y::z}` groups.
uses_of() {
  local m=$1 file
  for file in $(files_of "$m"); do
    awk '/^#\[cfg\(test\)\]/ { exit } { print }' "$file"
  done |
    sed -e 's,//.*$,,' |
    tr '\n' ' ' |
    { grep -oE 'crate::(\{[^}]*\}|[a-z_]+)' || true; } |
    sed -e 's/^crate:://' -e 's/[{}]/ /g' |
    tr ', ' '\n\n' |
    sed -e 's/::.*//' |
    { grep -E '^[a-z_]+$' || true; } |
    sort -u |
    while read -r dep; do
      if [ "$dep" != "$m" ] && is_module "$dep"; then echo "$dep"; fi
    done
}

declare -A deps
for m in "${modules[@]}"; do
  deps[$m]=$(uses_of "$m" | tr '\n' ' ')
done

if [ "${1:-}" != "--check" ]; then
  for m in "${modules[@]}"; do
    list=$(echo "${deps[$m]}" | xargs | sed 's/ /, /g')
    echo "$m -> ${list:-(nothing)}"
  done
fi

# Cycles: a depth-first search from every module; a path that comes back to a module on it
# is a cycle, printed once per set of modules.
declare -A printed
found=0
visit() {
  local node=$1 path=$2 dep
  for dep in ${deps[$node]}; do
    case " $path " in
      *" $dep "*)
        local cycle="${path#*"$dep"}"
        cycle="$dep$cycle $dep"
        local members
        members=$(echo "$cycle" | tr ' ' '\n' | sort -u | xargs)
        if [ -z "${printed[$members]:-}" ]; then
          printed[$members]=1
          echo "cycle: ${cycle// / -> }"
          found=1
        fi
        ;;
      *) visit "$dep" "$path $dep" ;;
    esac
  done
}
for m in "${modules[@]}"; do
  visit "$m" "$m"
done
if [ "$found" = 1 ]; then exit 1; fi
[ "${1:-}" = "--check" ] || echo "no cycles"
