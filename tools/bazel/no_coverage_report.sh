#!/bin/sh
# Stand-in for Bazel's coverage report generator; see tools/bazel/BUILD.
echo "echo ladder does not generate coverage reports" >&2
exit 1
