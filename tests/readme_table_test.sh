#!/bin/bash
# Checks that the stage x test table in README.md is exactly what the suite's
# expectations table generates. To refresh it: tools/update_readme_table.sh
set -euo pipefail
table_bin="$1"
readme="$2"
expected="$("$table_bin" --markdown_table)"
actual="$(sed -n '/<!-- stage-table:begin -->/,/<!-- stage-table:end -->/p' "$readme" |
  sed '1d;$d')"
if [[ "$expected" != "$actual" ]]; then
  echo "README.md's stage x test table is out of date. Run tools/update_readme_table.sh" >&2
  diff <(echo "$expected") <(echo "$actual") >&2 || true
  exit 1
fi
echo "README table matches tests/expectations.cc"
