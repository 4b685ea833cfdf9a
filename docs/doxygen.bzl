"""doxygen_site: the docs site, built by Debian's doxygen in one Bazel action.

The rule copies its inputs into a scratch tree laid out like the repository,
generates the side-by-side diff pages and the stage x test table page there,
runs doxygen with docs/Doxyfile, checks every internal link of the result, and
outputs the HTML as one directory (a tree artifact). The work is done by
tools/docs/build_site.py; this file only declares what goes in.
"""

DocSourcesInfo = provider(
    doc = "Source files (srcs and hdrs) of a C++ target, for the docs.",
    fields = {"files": "depset of source Files"},
)

def _doc_sources_aspect_impl(target, ctx):
    files = []
    for attr in ("srcs", "hdrs"):
        for dep in getattr(ctx.rule.attr, attr, []):
            files.extend([f for f in dep.files.to_list() if f.is_source])
    return [DocSourcesInfo(files = depset(files))]

# Collects the sources a cc_library or cc_binary names, so that the site follows
# the BUILD files (a file added to stages/common appears in its API reference).
_doc_sources = aspect(
    implementation = _doc_sources_aspect_impl,
    doc = "The srcs and hdrs of the targets in doxygen_site's `code`.",
)

def _manifest_line(f):
    # "exec path<TAB>repository path": where to read a file, where it goes.
    return "%s\t%s" % (f.path, f.short_path)

def _doxygen_site_impl(ctx):
    out = ctx.actions.declare_directory(ctx.label.name)
    files = depset(
        ctx.files.srcs,
        transitive = [c[DocSourcesInfo].files for c in ctx.attr.code],
    )

    manifest = ctx.actions.declare_file(ctx.label.name + ".manifest")
    lines = ctx.actions.args()
    lines.set_param_file_format("multiline")
    lines.add_all(files, map_each = _manifest_line)
    ctx.actions.write(manifest, lines)

    args = ctx.actions.args()
    args.add("--manifest", manifest)
    args.add("--doxyfile", ctx.file.doxyfile)
    args.add("--out", out.path)
    tools = []
    if ctx.attr.table_tool:
        args.add("--table-tool", ctx.executable.table_tool)
        tools.append(ctx.attr.table_tool[DefaultInfo].files_to_run)

    ctx.actions.run(
        executable = ctx.executable._builder,
        arguments = [args],
        inputs = depset([manifest, ctx.file.doxyfile], transitive = [files]),
        tools = tools,
        outputs = [out],
        mnemonic = "DoxygenSite",
        progress_message = "Building the docs site %s with doxygen" % ctx.label,
        # doxygen and python3 are Debian's, found on the PATH (tools/setup.sh).
        use_default_shell_env = True,
    )
    return [DefaultInfo(files = depset([out]), runfiles = ctx.runfiles(files = [out]))]

doxygen_site = rule(
    implementation = _doxygen_site_impl,
    doc = "A browsable HTML site built by doxygen; any doxygen warning or broken " +
          "internal link fails the build.",
    attrs = {
        "srcs": attr.label_list(
            allow_files = True,
            doc = "Pages (docs/*.md, stages/NN_name/README.md), images, the " +
                  "stylesheet and the stage files the diff pages compare " +
                  "(stages/NN_name/server.cc and BUILD). Each keeps its " +
                  "repository path in the scratch tree.",
        ),
        "code": attr.label_list(
            aspects = [_doc_sources],
            doc = "C++ targets whose srcs and hdrs are documented and browsable.",
        ),
        "doxyfile": attr.label(
            allow_single_file = True,
            mandatory = True,
            doc = "The Doxygen settings; the build appends the scratch tree's paths.",
        ),
        "table_tool": attr.label(
            executable = True,
            cfg = "exec",
            doc = "A binary that prints the stage x test table with --markdown_table.",
        ),
        "_builder": attr.label(
            default = "//tools/docs:build_site",
            executable = True,
            cfg = "exec",
        ),
    },
)
