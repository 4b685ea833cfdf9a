#!/bin/bash
# syscount_test: tools/syscount prints the ladder's story, measured on the real
# servers over loopback: epoll_ctl per echoed message 4 (03, DEL + ADD on every
# read/write flip), 2 (04, MOD) and 0 (05, registered once). 05 also makes
# exactly one read and one write per message. Bad input exits non-zero with a
# message.
#
# Arguments (from tools/BUILD): the syscount script, echo_bench, then the
# servers of 03, 04 and 05.
set -u
syscount=$1 bench=$2
shift 2
failures=0
# Under --config=asan: LeakSanitizer cannot run under ptrace (strace), and would
# fail every server at exit. The suite checks the same servers for leaks
# without strace.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0"
fail() {
  echo "FAIL: $*"
  failures=$((failures + 1))
}

# measure NAME BINARY: syscount's JSON on stdout.
measure() {
  "$syscount" "$1" --server-binary "$2" --echo-bench "$bench" \
    --connections 20 --messages 400 --json
}
# check NAME JSON FIELD EXPECTED: FIELD of the JSON's per_message is within
# 0.02 of EXPECTED.
check() {
  local name=$1 json=$2 field=$3 expected=$4
  python3 - "$json" "$field" "$expected" <<'PY' || fail "$name: $field"
import json, sys
per = json.loads(sys.argv[1])["per_message"]
value, expected = per[sys.argv[2]], float(sys.argv[3])
print("%s per message: %.3f (expected %g)" % (sys.argv[2], value, expected))
sys.exit(0 if abs(value - expected) <= 0.02 else 1)
PY
}

for entry in "03_epoll_lt:$1:4" "04_epoll_mod:$2:2" "05_epoll_et:$3:0"; do
  IFS=: read -r name binary expected <<<"$entry"
  echo "== $name"
  if ! json=$(measure "$name" "$binary"); then
    fail "$name: syscount exited non-zero"
    continue
  fi
  check "$name" "$json" epoll_ctl "$expected"
  if [[ $name == 05_epoll_et ]]; then
    check "$name" "$json" read/recv/recvfrom 1
    check "$name" "$json" write/send/sendto 1
  fi
done

echo "== bad input"
out=$("$syscount" 07 --server-binary "$3" --echo-bench "$bench" 2>&1)
rc=$?
[[ $rc == 1 && $out == *"no server '07'; the stages are 00_blocking"* ]] ||
  fail "an unknown server: exit $rc, $out"
out=$("$syscount" 05 --server-binary /nonexistent --echo-bench "$bench" 2>&1)
rc=$?
[[ $rc == 2 && $out == *"--server-binary: '/nonexistent' is not an executable file"* ]] ||
  fail "a missing binary: exit $rc, $out"

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
