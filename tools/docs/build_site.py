#!/usr/bin/env python3
"""Builds the docs site with Doxygen: the action behind `bazel build //docs:site`.

    build_site.py --manifest FILE --doxyfile docs/Doxyfile --out DIR
                  [--table-tool BIN] [--filter comment_filter.py] [--keep]

The manifest lists the inputs, one "PATH<TAB>REPO_PATH" a line. They are copied
into a scratch tree at their repository paths, so the tree looks like the
repository (stage READMEs keep working `\\snippet stages/NN_name/server.cc x`
commands). Then, in that tree:

1. every Markdown page's relative links are rewritten for the site (a link to
   another page or to a source file becomes a Doxygen reference; see
   rewrite_links), and each stage page gets the ladder navigation: previous and
   next stage, and the side-by-side diffs with its neighbours;
2. pages are generated: one side-by-side diff page per pair of consecutive
   stages (its HTML tables under _generated/), an overview of the diffs, and
   the stage x test table printed by the suite's --markdown_table; every page
   goes to the top of the tree (see flat_name);
3. doxygen runs with docs/Doxyfile plus the path settings of the scratch tree;
   any warning fails the build (warnings name repository paths and lines);
4. every internal link of the result is checked (tools/docs/linkcheck.py);
5. the HTML is copied to --out.

Rules for the pages (stages/NN_name/README.md and docs/*.md), which must read
well on GitHub and in the site alike:

- A stage page's first line is exactly `# Stage NN: <title>`, NN its directory's
  number, with no `{#label}`: it is the page title, and the ladder navigation
  and the diff pages use it. The build says so when it is not.
- Link other pages and files with ordinary relative Markdown links, as on
  GitHub: `[01_threads](../01_threads/README.md)`, `[decisions](../../docs/decisions.md)`,
  `[fd.h](../common/fd.h)`. In the site a link to a page becomes that page, one
  to a .cc/.h file in the site its source page, one to the top-level README.md
  the main page (#anchors are dropped); a link to anything else (tests/, BUILD,
  tools/) becomes its plain text.
- Do not link the side-by-side diffs: the site adds the ladder navigation
  (previous and next stage, and the diffs with both) at the top and the bottom
  of every stage page.
- Quote code with `\\snippet stages/NN_name/server.cc name` (repository path,
  `//! [name]` markers in the file), never by line number.
- Any Doxygen warning fails the build, with the page's own path and line.
"""

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import linkcheck  # noqa: E402  (our sibling module)
import sbs_diff  # noqa: E402

GENERATED = "_generated"
STAGE_DIR = re.compile(r"^stages/(\d\d)_([a-z0-9_]+)/README\.md$")
STAGE_TITLE = re.compile(r"^# Stage (\d\d): (\S.*?)\s*$")
LABEL = re.compile(r"\{#([A-Za-z0-9_-]+)\}\s*$")
# Files whose diff between consecutive stages gets a side-by-side section.
DIFF_FILES = ("server.cc", "BUILD")
# Docs pages in reading order after the stages; any other docs/*.md follows,
# alphabetically, and decisions.md comes last.
DOCS_ORDER = ("workshop.md", "original.md", "results.md")
DOCS_LAST = ("decisions.md",)
SOURCE_EXTENSIONS = (".cc", ".h")


class BuildError(Exception):
    pass


def page_id(rel_path, first_line):
    """The Doxygen page id of a Markdown file, as Doxygen derives it."""
    if rel_path == "docs/index.md":
        return "index"  # USE_MDFILE_AS_MAINPAGE
    m = LABEL.search(first_line)
    if m:
        return m.group(1)
    stem = os.path.splitext(rel_path)[0]
    return "md_" + re.sub(r"[^A-Za-z0-9_]", "_", stem)


def flat_name(rel_path):
    """Where a page goes at the top of the scratch tree. Doxygen lists the
    directory of every input in its file index, so pages sit at the top (no
    empty docs/ entry); the flattened name gives the same page id."""
    return re.sub(r"[^A-Za-z0-9_]", "_", os.path.splitext(rel_path)[0]) + ".md"


def first_line_of(path):
    with open(path, encoding="utf-8") as f:
        return f.readline().rstrip("\n")


class Stage:
    def __init__(self, number, dirname, title):
        self.number = number  # "03"
        self.dirname = dirname  # "03_epoll_lt"
        self.title = title  # "the classic level-triggered epoll server"
        self.readme = "stages/%s/README.md" % dirname
        self.page = page_id(self.readme, "")

    @property
    def heading(self):
        return "Stage %s: %s" % (self.number, self.title)


def diff_id(old, new):
    return "diff_%s_%s" % (old.number, new.number)


class Site:
    def __init__(self, tree):
        self.tree = tree
        self.files = set()  # repository paths present in the tree
        self.stages = []
        self.shifts = {}  # page path -> (after line, lines inserted), for warnings
        self.flat = {}  # flattened page name -> repository path, for warnings
        self._pages = None

    def path(self, rel):
        return os.path.join(self.tree, rel)

    # ---- Inputs ------------------------------------------------------------

    def copy_inputs(self, manifest):
        with open(manifest, encoding="utf-8") as f:
            for line in f:
                line = line.rstrip("\n")
                if not line:
                    continue
                src, rel = line.split("\t")
                dest = self.path(rel)
                os.makedirs(os.path.dirname(dest), exist_ok=True)
                shutil.copyfile(src, dest)
                self.files.add(rel)

    def find_stages(self):
        problems = []
        for rel in sorted(self.files):
            m = STAGE_DIR.match(rel)
            if not m:
                continue
            dirname = rel.split("/")[1]
            title_line = first_line_of(self.path(rel))
            t = STAGE_TITLE.match(title_line)
            if not t or t.group(1) != m.group(1) or LABEL.search(title_line):
                problems.append(
                    "%s:1: the first line must be '# Stage %s: <title>' (the page title "
                    "and the ladder navigation use it), not %r"
                    % (rel, m.group(1), title_line))
                continue
            self.stages.append(Stage(m.group(1), dirname, t.group(2)))
        numbers = [s.number for s in self.stages]
        if len(set(numbers)) != len(numbers):
            problems.append("two stages share a number: %s" % ", ".join(numbers))
        if problems:
            raise BuildError("\n".join(problems))
        if not self.stages:
            raise BuildError("no stages/NN_name/README.md among the inputs")

    def docs_pages(self):
        pages = sorted(r for r in self.files
                       if r.startswith("docs/") and r.endswith(".md") and r.count("/") == 1
                       and r != "docs/index.md")

        def key(rel):
            name = os.path.basename(rel)
            if name in DOCS_ORDER:
                return (0, DOCS_ORDER.index(name), name)
            if name in DOCS_LAST:
                return (2, DOCS_LAST.index(name), name)
            return (1, 0, name)

        return sorted(pages, key=key)

    def pages(self):
        """Every Markdown page of the site: repository path -> page id."""
        if self._pages is None:
            self._pages = {}
            for rel in self.files:
                if (rel.endswith(".md") and (STAGE_DIR.match(rel) or (
                        rel.startswith("docs/") and rel.count("/") == 1))):
                    self._pages[rel] = page_id(rel, first_line_of(self.path(rel)))
        return self._pages

    def flatten_pages(self):
        """Copies every processed page to the top of the tree (see flat_name)."""
        for rel in self.pages():
            name = flat_name(rel)
            shutil.copyfile(self.path(rel), self.path(name))
            self.flat[name] = rel

    def sources(self):
        return sorted(r for r in self.files if r.endswith(SOURCE_EXTENSIONS)
                      and not r.endswith("_test.cc"))

    # ---- Links ---------------------------------------------------------------

    def link_target(self, page_rel, target):
        """What a relative link in page_rel should become in the site:
        ("ref", doxygen_ref), ("keep", None) or ("text", None)."""
        if (re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", target) or target.startswith("#")
                or target.startswith("@") or target.startswith("\\")
                or target.startswith("//")):
            return "keep", None
        path = target.split("#", 1)[0].split("?", 1)[0]
        if not path:
            return "keep", None
        rel = os.path.normpath(os.path.join(os.path.dirname(page_rel), path))
        if rel.startswith(".."):
            return "text", None
        pages = self.pages()
        if rel == "README.md":
            return "ref", "index"  # the site's main page plays the README's part
        if os.path.isdir(self.path(rel)) and rel + "/README.md" in pages:
            rel += "/README.md"
        if rel in pages:
            return "ref", pages[rel]
        if rel in self.files and rel.endswith(SOURCE_EXTENSIONS):
            return "ref", rel  # Doxygen resolves a file reference by its path
        return "text", None

    INLINE_LINK = re.compile(r"(!?)\[((?:[^\[\]]|\[[^\]]*\])*)\]\(\s*([^()\s]+)(\s+\"[^\"]*\")?\s*\)")

    def rewrite_line(self, page_rel, line):
        parts = re.split(r"(`+[^`]*`+)", line)  # leave code spans alone

        def fix(m):
            bang, text, target, title = m.group(1), m.group(2), m.group(3), m.group(4) or ""
            if bang:
                return m.group(0)  # images: Doxygen finds them in IMAGE_PATH
            kind, ref = self.link_target(page_rel, target)
            if kind == "ref":
                return "[%s](@ref %s%s)" % (text, ref, title)
            if kind == "text":
                return text  # the target is not part of the site
            return m.group(0)

        for i in range(0, len(parts), 2):
            parts[i] = self.INLINE_LINK.sub(fix, parts[i])
        return "".join(parts)

    def rewrite_links(self, page_rel):
        """Rewrites the page's relative Markdown links, line for line."""
        path = self.path(page_rel)
        with open(path, encoding="utf-8") as f:
            lines = f.read().split("\n")
        fence = None
        for i, line in enumerate(lines):
            m = re.match(r"^\s*(```+|~~~+)", line)
            if m:
                if fence is None:
                    fence = m.group(1)[0] * 3
                elif line.strip().startswith(fence):
                    fence = None
                continue
            if fence is None:
                lines[i] = self.rewrite_line(page_rel, line)
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines))

    # ---- Ladder navigation ---------------------------------------------------

    def neighbours(self, stage):
        i = self.stages.index(stage)
        before = self.stages[i - 1] if i > 0 else None
        after = self.stages[i + 1] if i + 1 < len(self.stages) else None
        return before, after

    def add_stage_navigation(self, stage):
        before, after = self.neighbours(stage)
        top = ['<div class="ladder-nav">']
        if before:
            top.append("[&larr; %s](@ref %s) &nbsp;|&nbsp; " % (before.heading, before.page))
            # The diff that leads here is this stage's child page in the tree.
            top.append('\\subpage %s "What changed from %s, side by side"'
                       % (diff_id(before, stage), before.number))
        if after:
            if before:
                top.append(" &nbsp;|&nbsp; ")
            top.append("[What changes in %s, side by side](@ref %s) &nbsp;|&nbsp; "
                       % (after.number, diff_id(stage, after)))
            top.append("[%s &rarr;](@ref %s)" % (after.heading, after.page))
        top.append("<br>Source: [stages/%s/server.cc](@ref stages/%s/server.cc)"
                   % (stage.dirname, stage.dirname))
        top.append("</div>")
        nav = ["", "".join(top), ""]

        bottom = ["", "", '<div class="ladder-nav ladder-next">']
        if after:
            bottom.append("Next: [%s](@ref %s), after [what changes, side by side](@ref %s)."
                          % (after.heading, after.page, diff_id(stage, after)))
        else:
            bottom.append("This is the last stage of the ladder. "
                          "[Back to the main page](@ref index).")
        bottom.append("</div>")

        path = self.path(stage.readme)
        with open(path, encoding="utf-8") as f:
            lines = f.read().rstrip("\n").split("\n")
        lines = lines[:1] + nav + lines[1:] + bottom
        with open(path, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        self.shifts[stage.readme] = (1, len(nav))

    # ---- Generated pages -----------------------------------------------------

    def write(self, rel, text):
        path = self.path(rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
        return rel

    def read_lines(self, rel):
        if rel not in self.files:
            return []
        return sbs_diff.read_lines(self.path(rel))

    def diff_page(self, old, new):
        did = diff_id(old, new)
        out = [
            "# Stage %s → %s: %s {#%s}" % (old.number, new.number, new.title, did),
            "",
            '<div class="ladder-nav">[&larr; %s](@ref %s) &nbsp;|&nbsp; [%s &rarr;](@ref %s)</div>'
            % (old.heading, old.page, new.heading, new.page),
            "",
            "What changed from `%s` (left) to `%s` (right): changed lines are "
            "highlighted, and the words that changed inside them; unchanged "
            "stretches are folded (click to open them). In a terminal, "
            "`bazel run //tools/stagediff -- %s %s` prints the same diff."
            % (old.dirname, new.dirname, old.number, new.number),
            "",
        ]
        for name in DIFF_FILES:
            old_rel = "stages/%s/%s" % (old.dirname, name)
            new_rel = "stages/%s/%s" % (new.dirname, name)
            if old_rel not in self.files and new_rel not in self.files:
                continue
            anchor = "%s_%s" % (did, re.sub(r"[^A-Za-z0-9]", "_", name))
            fragment = self.write(
                "%s/diffs/%s.html" % (GENERATED, anchor),
                sbs_diff.render(self.read_lines(old_rel), self.read_lines(new_rel),
                                old_rel, new_rel))
            out.append("## %s {#%s}" % (name, anchor))
            out.append("")
            if name.endswith(SOURCE_EXTENSIONS):
                out.append("Source pages: [%s](@ref %s) and [%s](@ref %s)."
                           % (old_rel, old_rel, new_rel, new_rel))
                out.append("")
            out.append("\\htmlinclude[block] %s" % fragment)
            out.append("")
        return self.write("%s.md" % did, "\n".join(out))

    def diffs_overview(self):
        out = [
            "# Side-by-side diffs {#stage_diffs}",
            "",
            "Each stage fixes one thing about the stage before it, so the diff between "
            "two consecutive stages is the lesson. Each page below shows the old stage "
            "on the left and the new one on the right.",
            "",
        ]
        for old, new in zip(self.stages, self.stages[1:]):
            out.append("- [Stage %s → %s: %s](@ref %s)"
                       % (old.number, new.number, new.title, diff_id(old, new)))
        out.append("")
        return self.write("stage_diffs.md", "\n".join(out))

    def table_page(self, table_tool):
        try:
            table = subprocess.run([table_tool, "--markdown_table"], check=True,
                                   capture_output=True, text=True).stdout
        except subprocess.CalledProcessError as e:
            raise BuildError("%s --markdown_table failed (exit %d):\n%s"
                             % (table_tool, e.returncode, e.stderr)) from e
        by_number = {s.number: s for s in self.stages}
        lines = table.rstrip("\n").split("\n")
        if not lines or not lines[0].startswith("| test |"):
            raise BuildError("unexpected --markdown_table output:\n" + table)
        # Column headings are stage numbers: link each to its stage page.
        cells = lines[0].split("|")
        for i, cell in enumerate(cells):
            number = cell.strip()
            if number in by_number:
                cells[i] = " [%s](@ref %s) " % (number, by_number[number].page)
        lines[0] = "|".join(cells)
        out = [
            "# Stage × test table {#stage_table}",
            "",
            "Every stage runs the same black-box suite (`tests/`, one test target per "
            "stage: `bazel test //tests:all`). Where a stage cannot do something *by "
            "design*, the test still runs against it and asserts the limitation, so "
            "this table is honest: a `limit` cell is a test that passes by proving the "
            "stage's known weakness.",
            "",
            "This page is generated when the site is built, from the suite's own "
            "expectations table (`tests/expectations.cc`, printed by "
            "`//tests:markdown_table --markdown_table`), so it cannot drift from the "
            "suite; `//tests:readme_table_test` keeps the copy in the top-level "
            "README in step.",
            "",
        ] + lines + [""]
        return self.write("stage_table.md", "\n".join(out))

    # ---- Doxygen -------------------------------------------------------------

    def doxyfile(self, template, filter_script, table_page):
        stage_inputs = []
        for old, new in zip([None] + self.stages, self.stages):
            if old is not None:
                stage_inputs.append("%s.md" % diff_id(old, new))
            stage_inputs.append(flat_name(new.readme))
        inputs = ([flat_name("docs/index.md")] + stage_inputs
                  + ["stage_diffs.md"]
                  + ([table_page] if table_page else [])
                  + [flat_name(p) for p in self.docs_pages()] + self.sources())
        images = "docs/images"
        settings = {
            "INPUT": " ".join(inputs),
            "USE_MDFILE_AS_MAINPAGE": flat_name("docs/index.md"),
            "EXAMPLE_PATH": ".",
            "IMAGE_PATH": images if os.path.isdir(self.path(images)) else "",
            "OUTPUT_DIRECTORY": "_out",
            "WARN_LOGFILE": "_out/warnings.log",
            "HTML_EXTRA_STYLESHEET": "docs/site.css" if "docs/site.css" in self.files else "",
            "FILTER_PATTERNS": '"*.cc=%s %s" "*.h=%s %s"' % (
                sys.executable, filter_script, sys.executable, filter_script),
        }
        with open(template, encoding="utf-8") as f:
            text = f.read()
        text += "\n# ---- Set by tools/docs/build_site.py for this scratch tree ----\n"
        for key, value in settings.items():
            text += "%-22s = %s\n" % (key, value)
        return self.write("_Doxyfile", text)

    def repo_message(self, text):
        """Doxygen's messages with scratch paths made repository paths, and the
        line numbers of stage pages shifted back past the navigation we added."""
        text = text.replace(self.tree + os.sep, "")

        def unshift(m):
            rel, line = self.flat.get(m.group(1), m.group(1)), int(m.group(2))
            after, count = self.shifts.get(rel, (0, 0))
            if count and line > after + count:
                line -= count
            return "%s:%d:" % (rel, line)

        return re.sub(r"^([\w./-]+\.md):(\d+):", unshift, text, flags=re.M)

    def run_doxygen(self, doxygen, doxyfile):
        os.makedirs(self.path("_out"), exist_ok=True)
        result = subprocess.run([doxygen, doxyfile], cwd=self.tree,
                                capture_output=True, text=True)
        log_path = self.path("_out/warnings.log")
        warnings = ""
        if os.path.exists(log_path):
            with open(log_path, encoding="utf-8", errors="replace") as f:
                warnings = f.read().strip()
        if result.returncode != 0 or warnings:
            details = "\n".join(t for t in (warnings, result.stderr.strip(),
                                            result.stdout.strip()) if t)
            raise BuildError("doxygen reported problems (the site must build with no "
                             "warning):\n" + self.repo_message(details))


def find_doxygen(explicit):
    candidates = [explicit] if explicit else [shutil.which("doxygen"), "/usr/bin/doxygen"]
    for c in candidates:
        if c and os.path.exists(c):
            return c
    raise BuildError("doxygen not found; install it with tools/setup.sh "
                     "(Debian package 'doxygen')")


def main(argv):
    parser = argparse.ArgumentParser(prog="build_site", description=__doc__.split("\n")[0])
    parser.add_argument("--manifest", required=True)
    parser.add_argument("--doxyfile", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--table-tool")
    parser.add_argument("--filter", default=os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "comment_filter.py"))
    parser.add_argument("--doxygen")
    parser.add_argument("--keep", action="store_true", help="keep the scratch tree")
    args = parser.parse_args(argv)

    scratch = tempfile.mkdtemp(prefix="docs_site_")
    try:
        site = Site(os.path.join(scratch, "tree"))
        site.copy_inputs(args.manifest)
        site.find_stages()
        for rel in site.pages():
            site.rewrite_links(rel)
        for stage in site.stages:
            site.add_stage_navigation(stage)
        site.flatten_pages()
        for old, new in zip(site.stages, site.stages[1:]):
            site.diff_page(old, new)
        site.diffs_overview()
        table = site.table_page(args.table_tool) if args.table_tool else None
        doxyfile = site.doxyfile(args.doxyfile, os.path.abspath(args.filter), table)
        site.run_doxygen(find_doxygen(args.doxygen), doxyfile)

        html_dir = site.path("_out/html")
        problems, checked = linkcheck.Site(html_dir).problems()
        if problems:
            raise BuildError("broken internal links in the generated site:\n"
                             + "\n".join(problems))
        if os.path.exists(args.out):
            shutil.rmtree(args.out)
        shutil.copytree(html_dir, args.out)
        return 0
    except BuildError as e:
        print("docs site: ERROR: %s" % e, file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print("docs site: scratch tree kept in %s" % scratch, file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
