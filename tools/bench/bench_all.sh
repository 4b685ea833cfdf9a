#!/usr/bin/env bash
# `bazel run //tools:bench_all`: runs tools/bench/bench_all.py with python3 (a
# plain script: Debian's Bazel 4 needs no Python toolchain for this). The
# script builds what it measures itself, with -c opt; see docs/tools.md.
set -euo pipefail
for candidate in \
    "${RUNFILES_DIR:-/nonexistent}/echo_ladder/tools/bench/bench_all.py" \
    "$0.runfiles/echo_ladder/tools/bench/bench_all.py" \
    "$(dirname "$0")/bench_all.py"; do
  if [[ -f "$candidate" ]]; then
    exec python3 "$candidate" "$@"
  fi
done
echo "bench_all: cannot find bench_all.py next to $0 or in its runfiles" >&2
exit 1
