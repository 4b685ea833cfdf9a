#!/usr/bin/env bash
# results_render_test: the checked-in docs/results.md and its charts are exactly
# what bench_all renders from the checked-in docs/results.json. Results are never
# edited by hand, and a change to the renderer lands with its output: after one,
# `bazel run //tools:bench_all -- --render-only` rewrites docs/ from the same
# results.json without measuring anything.
#
#   results_render_test.sh BENCH_ALL_PY RESULTS_JSON RESULTS_MD CHART...
set -euo pipefail
script="$1" json="$2" md="$3"
shift 3

if ! command -v gnuplot >/dev/null; then
  echo "FAIL: gnuplot is not installed (tools/setup.sh installs gnuplot-nox)" >&2
  exit 1
fi

out="${TEST_TMPDIR:-$(mktemp -d)}/render"
mkdir -p "$out"
cp "$json" "$out/results.json"
if ! python3 "$script" --render-only --out "$out" >"$out/log" 2>&1; then
  cat "$out/log" >&2
  echo "FAIL: bench_all --render-only failed" >&2
  exit 1
fi

failures=0
check() {  # check CHECKED_IN RENDERED
  if cmp -s "$1" "$2"; then
    echo "ok: $(basename "$1") is what bench_all renders"
  else
    echo "FAIL: $(basename "$1") differs from what bench_all renders from results.json" \
      "(run: bazel run //tools:bench_all -- --render-only)" >&2
    diff "$1" "$2" | head -20 >&2 || true
    failures=$((failures + 1))
  fi
}
check "$md" "$out/results.md"
for chart in "$@"; do
  check "$chart" "$out/images/$(basename "$chart")"
done
# Every chart rendered is checked in (a new chart cannot be left out).
rendered=$(find "$out/images" -name 'results_*.svg' | wc -l)
if [[ "$rendered" -ne $# ]]; then
  echo "FAIL: bench_all rendered $rendered charts, $# are checked in" >&2
  failures=$((failures + 1))
fi
exit $((failures > 0))
