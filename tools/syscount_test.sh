#!/bin/bash
# syscount_test: tools/syscount prints the ladder's story, measured on the real
# servers over loopback: epoll_ctl per echoed message 4 (03, DEL + ADD on every
# read/write flip), 2 (04, MOD) and 0 (05, registered once). 05 also makes
# exactly one read and one write per message. Bad input exits non-zero with a
# message and no traceback, and neither a failure nor Ctrl-C leaves a server (or
# an echo_bench) running.
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

# The binaries syscount runs below are copies at paths of this test's own, so
# that what is still running afterwards is what syscount left behind.
tmp=${TEST_TMPDIR:-$(mktemp -d)}/syscount_test
mkdir -p "$tmp"
cp "$3" "$tmp/server"
cp "$bench" "$tmp/echo_bench"
# A server that prints something else than `listening on HOST:PORT` and stays.
printf '#!/bin/bash\necho "not a listening line"\nexec -a "$0" sleep 300\n' \
  >"$tmp/fake_server"
chmod +x "$tmp/fake_server"
tmp_re=$(printf '%s' "$tmp" | sed 's/[][\.*^$+?(){}|]/\\&/g')
# no_leftovers WHAT: fails when a process of a copy above still runs, and kills it.
no_leftovers() {
  local pids
  pids=$(pgrep -f "^$tmp_re/") || return 0
  fail "$1: left running: $(ps -o pid=,args= -p "${pids//$'\n'/,}")"
  kill -9 $pids 2>/dev/null
}
command -v pgrep >/dev/null || fail "pgrep (Debian's procps) is not installed"

echo "== bad input"
for name in 07 nosuch ""; do
  out=$("$syscount" "$name" --server-binary "$tmp/server" --echo-bench "$bench" 2>&1)
  rc=$?
  [[ $rc == 2 && $out == *"no server '$name'; the stages are 00_blocking"* &&
    $out == *"usage: tools/syscount"* ]] || fail "an unknown server '$name': exit $rc, $out"
done
out=$("$syscount" 05 --server-binary /nonexistent --echo-bench "$bench" 2>&1)
rc=$?
[[ $rc == 2 && $out == *"--server-binary: '/nonexistent' is not an executable file"* ]] ||
  fail "a missing binary: exit $rc, $out"
# Counts: ASCII digits only, within echo_bench's limits (2N for --messages), checked
# before anything starts. (`timeout`: with 2N beyond the limit, N alone is not.)
for entry in "--size:2000000000:at most 1073741824" \
  "--connections:2000000:at most 1000000" \
  "--messages:500000000000001:at most 500000000000000" \
  "--messages: 1_0:expected a whole number" "--size:+5:expected a whole number"; do
  IFS=: read -r flag value expected <<<"$entry"
  out=$(timeout 20 "$syscount" 05 --server-binary "$tmp/server" --echo-bench "$bench" \
    "$flag" "$value" 2>&1)
  rc=$?
  [[ $rc == 2 && $out == *"argument $flag: $expected"* ]] ||
    fail "$flag '$value': exit $rc, $out"
done
no_leftovers "bad counts"

echo "== syscount's limits are echo_bench's"
# syscount repeats echo_bench's limits (tools/echo_bench/flags.h) to check counts
# up front. Each limit it names must be exactly where echo_bench's own check is:
# echo_bench accepts the limit (exit 1 here: nothing listens on port 1, or too
# few fds) and rejects one more as bad usage (exit 2). --messages: syscount's
# second run sends 2N, so echo_bench's limit is twice syscount's.
for entry in "--connections:2000000:1" "--size:2000000000:1" \
  "--messages:900000000000000000:2"; do
  IFS=: read -r flag value factor <<<"$entry"
  out=$("$syscount" 05 --server-binary "$tmp/server" --echo-bench "$bench" \
    "$flag" "$value" 2>&1)
  limit=$(grep -o "argument $flag: at most [0-9]*" <<<"$out" | grep -o '[0-9]*$')
  if [[ -z $limit ]]; then
    fail "$flag: syscount named no limit: $out"
    continue
  fi
  limit=$((limit * factor))
  base=(--port 1)
  [[ $flag == --messages ]] || base+=(--messages 2)
  "$bench" "${base[@]}" "$flag" "$limit" >/dev/null 2>&1
  rc=$?
  [[ $rc == 1 ]] || fail "$flag $limit (syscount's limit): echo_bench exit $rc, want 1"
  "$bench" "${base[@]}" "$flag" "$((limit + 1))" >/dev/null 2>&1
  rc=$?
  [[ $rc == 2 ]] || fail "$flag $((limit + 1)): echo_bench exit $rc, want 2 (bad usage)"
done

echo "== a single-digit stage number"
if json=$(timeout 20 "$syscount" 5 --server-binary "$tmp/server" --echo-bench "$bench" \
  --connections 1 --messages 20 --json 2>"$tmp/err"); then
  [[ $json == '{"stage": "05_epoll_et", "connections": 1,'* ]] || fail "5: $json"
  grep -q "^syscount: run: 20 messages over 1 connection$" "$tmp/err" ||
    fail "5: $(cat "$tmp/err")"
else
  fail "5: exit non-zero: $(cat "$tmp/err")"
fi

echo "== failures leave nothing running"
# check_failure WHAT EXPECTED ARGS...: syscount exits 1 saying EXPECTED, no traceback.
check_failure() {
  local what=$1 expected=$2 out rc
  shift 2
  out=$(timeout 20 "$syscount" 05 --connections 2 --messages 20 "$@" 2>&1)
  rc=$?
  [[ $rc == 1 && $out == *"$expected"* && $out != *Traceback* ]] ||
    fail "$what: exit $rc, $out"
  no_leftovers "$what"
}
check_failure "echo_bench fails" "FAILED: echo_bench failed (exit 1)" \
  --server-binary "$tmp/server" --echo-bench /bin/false
check_failure "echo_bench prints no JSON" "FAILED: echo_bench exited 0 but printed no JSON" \
  --server-binary "$tmp/server" --echo-bench /bin/true
check_failure "no listening line" \
  "did not print \`listening on HOST:PORT\` (it printed 'not a listening line')" \
  --server-binary "$tmp/fake_server" --echo-bench "$tmp/echo_bench"
check_failure "a server that exits at once" \
  "(it closed its stdout without printing a line); its stderr:"$'\n'"(empty)" \
  --server-binary /bin/true --echo-bench "$tmp/echo_bench"

echo "== stdout that cannot be written"
out=$(timeout 20 "$syscount" 05 --server-binary "$tmp/server" --echo-bench "$bench" \
  --connections 2 --messages 20 --json 2>&1 >/dev/full)
rc=$?
[[ $rc == 1 && $out == *"FAILED: cannot write to stdout: No space left on device" &&
  $out != *Traceback* ]] || fail "stdout /dev/full: exit $rc, $out"
out=$(timeout 20 "$syscount" 05 --server-binary "$tmp/server" --echo-bench "$bench" \
  --connections 2 --messages 20 2>&1 >&-)
rc=$?
[[ $rc == 1 && $out == "syscount: FAILED: stdout is closed"* ]] ||
  fail "stdout closed: exit $rc, $out"
no_leftovers "stdout"

echo "== Ctrl-C"
# A run far too long to finish, interrupted once echo_bench is running. Job
# control gives the background job the default SIGINT disposition.
set -m
"$syscount" 05 --server-binary "$tmp/server" --echo-bench "$tmp/echo_bench" \
  --connections 1 --messages 100000000 2>"$tmp/err" &
pid=$!
set +m
for ((i = 0; i < 200; i++)); do
  pgrep -f "^$tmp_re/echo_bench " >/dev/null && break
  sleep 0.1
done
kill -INT "$pid"
for ((i = 0; i < 200; i++)); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$pid" 2>/dev/null; then
  kill -9 "$pid"
  fail "Ctrl-C: syscount still running 20 s after SIGINT"
fi
wait "$pid"
rc=$?
out=$(cat "$tmp/err")
[[ $rc == 130 && $out == *"syscount: interrupted"* && $out != *Traceback* ]] ||
  fail "Ctrl-C: exit $rc, $out"
no_leftovers "Ctrl-C"

if ((failures > 0)); then
  echo "$failures check(s) failed"
  exit 1
fi
echo "all checks passed"
