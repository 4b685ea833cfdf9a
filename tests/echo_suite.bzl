"""The shared suite, one test target per stage."""

load("@rules_cc//cc:defs.bzl", "cc_test")

def echo_suite(stages):
    """Makes //tests:echo_suite_<stage> for every stage, all from one suite.

    Also makes //tests:soak_<stage>, the same suite with long soak loops,
    tagged manual. Each target runs the same GoogleTest binary against
    //stages/<stage>:server. Adding a stage is one line in tests/BUILD (and one
    in tests/expectations.cc).

    Args:
      stages: stage directory names, e.g. ["00_blocking", "01_threads"].
    """
    for stage in stages:
        server = "//stages/%s:server" % stage
        args = [
            "--server=$(rootpath %s)" % server,
            "--stage=" + stage,
            "--faultinject=$(rootpath //tools/faultinject:libfaultinject.so)",
        ]
        data = [
            server,
            "//tools/faultinject:libfaultinject.so",
        ]
        # Medium (a 300 s timeout), not short (60 s): one stage takes about 20 s,
        # under TSan about 28 s on 2 cores, and a laptop under load may take twice
        # that. Bazel's note that some tests' size is "too big" is expected.
        cc_test(
            name = "echo_suite_" + stage,
            size = "medium",
            args = args,
            data = data,
            deps = [":suite"],
        )

        # The same suite with 10x the churn and soak cycles (--soak). Manual:
        # `bazel test //...` skips it; run it by name when you change a stage.
        cc_test(
            name = "soak_" + stage,
            size = "large",
            args = args + ["--soak"],
            data = data,
            tags = [
                "exclusive",
                "manual",
            ],
            deps = [":suite"],
        )
