#!/usr/bin/env bash
# heap_shift_test: libheap_shift.so, preloaded with ECHO_LADDER_HEAP_SHIFT=N, moves
# a later 16 KiB block by exactly N bytes (as bench_all relies on), and leaves the
# heap alone for 0 and for values it does not accept.
#
#   heap_shift_test.sh PROBE SHIM
set -euo pipefail
probe="$(realpath "$1")"
shim="$(realpath "$2")"
failures=0

offset() {  # offset [SHIFT]: the probe's block offset, preloaded when SHIFT is given
  local out
  if [[ $# -eq 0 ]]; then
    out="$("$probe")"
  else
    out="$(LD_PRELOAD="$shim" ECHO_LADDER_HEAP_SHIFT="$1" "$probe")"
  fi
  echo "${out#* }"
}

allocator="$("$probe")"
allocator="${allocator% *}"  # "glibc", "asan" or "tsan": which malloc the probe has
base="$(offset)"
echo "without the preload: $allocator allocator, block at offset $base"
if [[ "$allocator" != glibc ]]; then
  # A sanitizer replaces malloc with its own size-class allocator, which one
  # block does not move, so the offsets cannot be checked: say so and fail
  # rather than pass. (tools/bench/BUILD makes this test incompatible with
  # --config=asan and --config=tsan, so Bazel skips it there.)
  echo "FAIL: the probe uses the $allocator allocator; the heap shift can only be" \
    "checked with glibc's malloc (build without a sanitizer)"
  exit 1
fi

check() {  # check SHIFT EXPECTED_MOVE
  local got want
  got="$(offset "$1")"
  want=$(((base + $2) % 4096))
  if [[ "$got" == "$want" ]]; then
    echo "ok: ECHO_LADDER_HEAP_SHIFT=$1 -> offset $got"
  else
    echo "FAIL: ECHO_LADDER_HEAP_SHIFT=$1 -> offset $got, want $want (moved by $2)"
    failures=$((failures + 1))
  fi
}

# Moved by exactly N, wrapping around the page.
for shift in 32 48 816 1632 2464 3280 4080 4096 8192; do check "$shift" "$shift"; done
# Left alone: 0, empty, and what the shim refuses (below 32, not a multiple of 16,
# above 64 KiB, not a number).
for shift in 0 "" 16 17 40 -32 65552 abc 32x; do check "$shift" 0; done

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
