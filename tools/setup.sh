#!/usr/bin/env bash
# Installs what echo ladder needs on a fresh Debian 12 machine, then checks it.
#
# Everything comes from Debian's own packages through apt: Bazel 4.2.3 and the
# Bazel rule sets it resolves locally (see WORKSPACE), GoogleTest sources, the
# compilers, the docs tool and the tools the README and the workshop use.
# Nothing is downloaded from anywhere else.
#
# Idempotent: when every package is already installed it does not touch apt at
# all (no root needed then) and only runs the checks. Safe to run again and again.
#
#   tools/setup.sh          # as root, or as a user who may use sudo
set -euo pipefail

# The Debian packages this project needs, and why.
readonly PACKAGES=(
  bazel-bootstrap   # Bazel 4.2.3, offline (`bazel` command)
  bazel-rules-cc    # @rules_cc, from /usr/share/bazel/rules/cc
  bazel-rules-java  # @rules_java, asked for implicitly by Bazel
  bazel-platforms   # @platforms, asked for implicitly by Bazel
  googletest        # GoogleTest sources in /usr/src/googletest
  g++               # the compiler Bazel's autodetected toolchain uses (C++20)
  clang-format      # the repo's .clang-format style
  doxygen           # docs/: the site (bazel build //docs:site)
  chromium          # docs/: the site test loads pages in headless Chromium
  fonts-dejavu-core # a font, so headless Chromium renders pages and screenshots
  libevent-dev      # tools/peers: the libevent echo server
  libuv1-dev        # tools/peers: the libuv echo server
  libboost-dev      # tools/peers: the Boost.Asio echo server (header-only)
  gnuplot-nox       # tools/bench_all: the charts in docs/results.md
  util-linux        # taskset: tools/bench_all pins server and client to cores
  strace            # tools/syscount: count the syscalls of each stage
  netcat-openbsd    # `nc 127.0.0.1 8080`, as the README shows
  python3           # scripts (.ci/run counts test cases with it)
  procps            # ps/pgrep/pkill, used by the tools and their tests
  iproute2          # ss: the docs find a server's pid by its listening port
)

say() { printf 'setup: %s\n' "$*" >&2; }

# Prints the packages of PACKAGES that are not fully installed, one a line.
missing_packages() {
  local pkg status
  for pkg in "${PACKAGES[@]}"; do
    status=$(dpkg-query -W -f='${db:Status-Status}' "$pkg" 2>/dev/null || true)
    if [[ "$status" != "installed" ]]; then
      printf '%s\n' "$pkg"
    fi
  done
}

# Makes sure we are root before using apt; re-runs this script through sudo when
# that is possible, and says plainly what to do when it is not.
become_root() {
  if [[ "$(id -u)" -eq 0 ]]; then
    return 0
  fi
  if command -v sudo >/dev/null 2>&1; then
    say "not root; re-running via sudo"
    exec sudo -- bash "$(readlink -f "${BASH_SOURCE[0]}")" "$@"
  fi
  say "packages must be installed and this user is not root (and there is no sudo)"
  echo "run as root: sudo tools/setup.sh" >&2
  exit 1
}

install_packages() {
  export DEBIAN_FRONTEND=noninteractive
  # Wait for another apt/dpkg (unattended upgrades, a parallel setup) rather
  # than failing at once on its lock.
  local apt_opts=(-o DPkg::Lock::Timeout=300)
  say "apt-get update"
  if ! apt-get "${apt_opts[@]}" update >&2; then
    # Lists from an earlier update may still do; the install below will tell.
    say "warning: apt-get update failed; trying with the package lists already here"
  fi
  say "apt-get install ${PACKAGES[*]}"
  if ! apt-get "${apt_opts[@]}" install -y --no-install-recommends "${PACKAGES[@]}" >&2
  then
    say "FAILED: apt-get install did not complete (see the messages above)"
    exit 1
  fi
}

# ---- Checks: everything the build, the tests and the docs rely on ------------

failures=()
checks=0

check() {  # check DESCRIPTION COMMAND...
  local what=$1
  shift
  checks=$((checks + 1))
  if "$@" >/dev/null 2>&1; then
    say "  ok       $what"
  else
    say "  MISSING  $what"
    failures+=("$what")
  fi
}

# Debian's bazel-bootstrap prints "bazel no_version"; any "bazel ..." line will do.
bazel_works() {
  local out
  out=$(cd / && bazel --version 2>/dev/null) || return 1
  [[ "$out" == bazel* ]]
}

# C++20 for real: concepts, <span> and designated initializers.
cxx20_works() {
  local dir rc=0
  dir=$(mktemp -d)
  cat >"$dir/t.cc" <<'EOF'
#include <concepts>
#include <span>
struct P { int x; int y; };
template <std::integral T> T twice(T v) { return v * 2; }
int main() {
  int a[] = {1, 2, 3};
  std::span<int> s(a);
  P p{.x = 1, .y = 2};
  return twice(p.x) + static_cast<int>(s.size()) == 5 ? 0 : 1;
}
EOF
  g++ -std=c++20 -Wall -Wextra -Werror -o "$dir/t" "$dir/t.cc" && "$dir/t" || rc=1
  rm -rf "$dir"
  return "$rc"
}

verify() {
  say "checking the tools"
  check "bazel (bazel --version)" bazel_works
  check "rules_cc in /usr/share/bazel/rules/cc" test -d /usr/share/bazel/rules/cc
  check "rules_java in /usr/share/bazel/rules/java" test -d /usr/share/bazel/rules/java
  check "platforms in /usr/share/bazel/tools/platforms" \
    test -d /usr/share/bazel/tools/platforms
  check "GoogleTest sources (/usr/src/googletest/googletest/src/gtest-all.cc)" \
    test -f /usr/src/googletest/googletest/src/gtest-all.cc
  check "g++ with -std=c++20" cxx20_works
  check "clang-format" command -v clang-format
  check "doxygen" command -v doxygen
  check "chromium (/usr/bin/chromium)" test -x /usr/bin/chromium
  check "libevent headers" test -f /usr/include/event2/event.h
  check "libuv headers" test -f /usr/include/uv.h
  check "Boost.Asio headers" test -f /usr/include/boost/asio.hpp
  check "gnuplot" command -v gnuplot
  check "taskset" command -v taskset

  check "strace" command -v strace
  check "nc" command -v nc
  check "python3" command -v python3
  check "ps (procps)" command -v ps
  check "ss (iproute2)" command -v ss

  if ((${#failures[@]} > 0)); then
    say "FAILED: ${#failures[@]} of $checks checks; missing:"
    local item
    for item in "${failures[@]}"; do
      say "  - $item"
    done
    exit 1
  fi
  say "all $checks checks passed: ready (try: bazel test //...)"
}

main() {
  local missing
  missing=$(missing_packages)
  if [[ -z "$missing" ]]; then
    say "all ${#PACKAGES[@]} packages already installed; skipping apt-get"
  else
    say "packages to install: $(echo "$missing" | tr '\n' ' ')"
    become_root "$@"
    install_packages
    missing=$(missing_packages)
    if [[ -n "$missing" ]]; then
      say "FAILED: still not installed: $(echo "$missing" | tr '\n' ' ')"
      exit 1
    fi
  fi
  verify
}

main "$@"
