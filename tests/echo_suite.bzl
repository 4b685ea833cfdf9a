"""The shared suite, one test target per stage."""

load("@rules_cc//cc:defs.bzl", "cc_test")

def echo_suite(stages):
    """Makes //tests:echo_suite_<stage> for every stage, all from one suite.

    Each target runs the same GoogleTest binary against
    //stages/<stage>:server. Adding a stage is one line in tests/BUILD (and one
    in tests/expectations.cc).

    Args:
      stages: stage directory names, e.g. ["00_blocking", "01_threads"].
    """
    for stage in stages:
        server = "//stages/%s:server" % stage
        cc_test(
            name = "echo_suite_" + stage,
            size = "medium",
            args = [
                "--server=$(rootpath %s)" % server,
                "--stage=" + stage,
                "--faultinject=$(rootpath //tools/faultinject:libfaultinject.so)",
            ],
            data = [
                server,
                "//tools/faultinject:libfaultinject.so",
            ],
            deps = [":suite"],
        )
