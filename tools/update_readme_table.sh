#!/bin/bash
# Regenerates the stage x test table in README.md from tests/expectations.cc
# (the part between the stage-table markers). tests:readme_table_test fails
# until this has been run after the expectations or the suite change.
#
# BAZEL_STARTUP_OPTS: startup options for every bazel command, as for the other
# tools (e.g. "--output_base=/tmp/bazel_me" when several people share the tree).
set -euo pipefail
cd "$(dirname "$0")/.."
read -r -a startup_opts <<<"${BAZEL_STARTUP_OPTS:-}"
bazel_cmd() { bazel "${startup_opts[@]}" "$@"; }
bazel_cmd build //tests:markdown_table >/dev/null 2>&1 || bazel_cmd build //tests:markdown_table
table="$("$(bazel_cmd info bazel-bin 2>/dev/null)/tests/markdown_table" --markdown_table)"

python3 - "$table" <<'PY'
import re, sys
table = sys.argv[1]
text = open("README.md").read()
begin, end = "<!-- stage-table:begin -->", "<!-- stage-table:end -->"
if begin not in text or end not in text:
    sys.exit("README.md has no stage-table markers")
head, rest = text.split(begin, 1)
_, tail = rest.split(end, 1)
open("README.md", "w").write(head + begin + "\n" + table + "\n" + end + tail)
print("README.md: stage x test table updated")
PY
