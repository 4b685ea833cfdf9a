"""Repository rules that make Debian's Bazel packages usable offline in Bazel 4."""

def _debian_rules_cc_impl(ctx):
    """Copies Debian's rules_cc and makes it load in Bazel 4.2.3.

    Two files of rules_cc 0.0.4 call use_cpp_toolchain(), which Bazel 4 does
    not have. In Bazel 4 the call would return exactly the C++ toolchain type,
    so we write that label in its place.
    """
    src = ctx.path(ctx.attr.path)
    if not src.exists:
        fail("%s not found: install Debian's bazel-rules-cc (tools/setup.sh)" % ctx.attr.path)
    result = ctx.execute(["cp", "-R", str(src) + "/.", "."])
    if result.return_code != 0:
        fail("copying %s failed: %s" % (ctx.attr.path, result.stderr))
    for f in ctx.attr.patched_files:
        text = ctx.read(f)
        text = text.replace(', "use_cpp_toolchain")', ")")
        text = text.replace(
            "use_cpp_toolchain()",
            '["@bazel_tools//tools/cpp:toolchain_type"]',
        )
        ctx.file(f, text, executable = False)

debian_rules_cc = repository_rule(
    implementation = _debian_rules_cc_impl,
    attrs = {
        "path": attr.string(mandatory = True),
        "patched_files": attr.string_list(default = [
            "cc/private/rules_impl/cc_flags_supplier.bzl",
            "cc/private/rules_impl/compiler_flag.bzl",
        ]),
    },
    local = True,
)
