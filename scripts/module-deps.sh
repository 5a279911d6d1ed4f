#!/usr/bin/env bash
# Lists which top-level modules of src/ each top-level module uses (from `crate::…` paths in
# its files), then the cycles among them. Exit status 1 when there is a cycle.
#
#   scripts/module-deps.sh            # listing + cycles
#   scripts/module-deps.sh --check    # cycles only (quiet when there are none)
#
# Items under `#[cfg(test)]` do not count: a test may reach across layers. Paths spelled with
# `super::` up to the crate root are not followed; the code names other modules by `crate::`.
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

# Files of a module: `name.rs` and everything under `name/`.
files_of() {
  local m=$1
  [ -f "$m.rs" ] && echo "$m.rs"
  [ -d "$m" ] && find "$m" -name '*.rs' | sort
  return 0
}

# The code of the given files without comments, string and char literals, and `#[cfg(test)]`
# items, so that a brace or a `crate::` in any of those is not mistaken for code. A line-based
# lexer: block comments, strings and test items may span lines.
code_of() {
  awk '
    FNR == 1 { comment = 0; string = 0; raw = ""; pending = 0; skipping = 0 }
    function ident(ch) { return ch ~ /[A-Za-z0-9_]/ }
    {
      line = $0; n = length(line); out = ""; i = 1
      while (i <= n) {
        c = substr(line, i, 1); two = substr(line, i, 2)
        if (comment > 0) {
          if (two == "/*") { comment++; i += 2 } else if (two == "*/") { comment--; i += 2 } else i++
          continue
        }
        if (raw != "") {
          j = index(substr(line, i), raw)
          if (j == 0) { i = n + 1 } else { i += j - 1 + length(raw); raw = "" }
          continue
        }
        if (string) {
          if (c == "\\") { i += 2 } else { if (c == "\"") string = 0; i++ }
          continue
        }
        if (two == "//") break
        if (two == "/*") { comment = 1; i += 2; continue }
        if (c == "\"") { string = 1; i++; out = out " "; continue }
        before = substr(line, i - 1, 1)
        if (c == "r" && (i == 1 || !ident(before) || (before == "b" && !ident(substr(line, i - 2, 1)))) \
            && match(substr(line, i), /^r#*"/)) {
          raw = "\"" substr(line, i + 1, RLENGTH - 2); i += RLENGTH; out = out " "
          continue
        }
        if (c == "\047") {
          # A char literal ('x', '\n', '\u{41}'); anything else is a lifetime or a label.
          if (substr(line, i + 1, 1) == "\\") {
            j = index(substr(line, i + 3), "\047"); i = (j == 0) ? n + 1 : i + 3 + j
            out = out " "; continue
          }
          if (substr(line, i + 2, 1) == "\047") { i += 3; out = out " "; continue }
        }
        if (substr(line, i, 12) == "#[cfg(test)]") { pending = 1; depth = 0; i += 12; continue }
        if (pending) {
          # The item the attribute applies to ends at its first top-level `;`, or with the
          # brace that closes its first `{`.
          if (c == "(" || c == "[") depth++
          else if (c == ")" || c == "]") depth--
          else if (c == ";" && depth == 0) pending = 0
          else if (c == "{") { pending = 0; skipping = 1 }
        } else if (skipping) {
          if (c == "{") skipping++
          else if (c == "}") skipping--
        } else {
          out = out c
        }
        i++
      }
      print out
    }
  ' "$@"
}

# The top-level modules named by `crate::x` paths, also inside `use crate::{x, y::{z, w}}`
# groups (only the first segment of each member of the outer group names a module).
uses_of() {
  local m=$1
  local -a files
  mapfile -t files < <(files_of "$m")
  [ ${#files[@]} -gt 0 ] || return 0
  code_of "${files[@]}" |
    sed -E -e 's/::/ :: /g' -e 's/[{},]/ & /g' -e 's/[^A-Za-z0-9_$:{},]+/ /g' |
    tr -s ' ' '\n' |
    awk '
      function take(t) {
        if (state == "crate") {
          if (t == "::") { state = "path"; return }
          state = ""
        } else if (state == "path") {
          if (t == "{") { state = "group"; depth = 1; member = 1; return }
          state = ""
          if (t ~ /^[a-z_][a-z0-9_]*$/) { print t; return }
        } else if (state == "group") {
          if (t == "{") depth++
          else if (t == "}") { if (--depth == 0) state = "" }
          else if (t == "," && depth == 1) member = 1
          else if (t != "::" && member && depth == 1) { print t; member = 0 }
          return
        }
        if (t == "crate" || t == "$crate") state = "crate"
      }
      { take($0) }
    ' |
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

# Cycles: for every module that can reach itself, the shortest way back to it (breadth-first),
# printed once per set of modules. At most one line per module, however tangled the graph.
shortest_cycle() {
  local start=$1 queue=("$1") head=0 node dep
  local -A parent=()
  while [ "$head" -lt "${#queue[@]}" ]; do
    node=${queue[$head]}
    head=$((head + 1))
    for dep in ${deps[$node]}; do
      if [ "$dep" = "$start" ]; then
        local path="$start" step=$node
        while [ "$step" != "$start" ]; do
          path="$step -> $path"
          step=${parent[$step]}
        done
        echo "$start -> $path"
        return
      fi
      if [ -z "${parent[$dep]:-}" ]; then
        parent[$dep]=$node
        queue+=("$dep")
      fi
    done
  done
}

declare -A printed
found=0
for m in "${modules[@]}"; do
  cycle=$(shortest_cycle "$m")
  [ -n "$cycle" ] || continue
  members=$(echo "${cycle// -> / }" | tr ' ' '\n' | sort -u | xargs)
  if [ -z "${printed[$members]:-}" ]; then
    printed[$members]=1
    echo "cycle: $cycle"
    found=1
  fi
done
if [ "$found" = 1 ]; then exit 1; fi
[ "${1:-}" = "--check" ] || echo "no cycles"
