"""Unit tests of the docs tools: sbs_diff, comment_filter, linkcheck, build_site."""

import os
import re
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_site  # noqa: E402
import comment_filter  # noqa: E402
import linkcheck  # noqa: E402
import sbs_diff  # noqa: E402


class SbsDiffTest(unittest.TestCase):
    def test_file_content_is_escaped_everywhere(self):
        old = ['#include <vector>', 'auto s = "a&b";', "x < y && y > z"]
        new = ['#include <string>', 'auto s = "a&b";', "x < y || y > z", "<script>x</script>"]
        out = sbs_diff.render(old, new, "a<old>.cc", 'b"new".cc')
        self.assertNotIn("<vector>", out)
        self.assertNotIn("<script>", out)
        self.assertNotIn("a<old>", out)
        self.assertIn("&lt;script&gt;x&lt;/script&gt;", out)
        self.assertIn("a&lt;old&gt;.cc", out)
        self.assertIn("b&quot;new&quot;.cc", out)
        # What is left after removing our own tags has no markup characters.
        text = re.sub(r"</?(div|p|table|colgroup|col|thead|tbody|tr|th|td|span|details|summary)"
                      r"(\s[^>]*)?>", "", out)
        self.assertNotRegex(text, r"[<>]")

    def test_two_columns_with_changed_lines_and_words_marked(self):
        out = sbs_diff.render(["same", "the old line", "gone"], ["same", "the new line"],
                              "old", "new")
        self.assertIn('<tr class="sbs-chg"><td class="sbs-num">2</td><td class="sbs-old">'
                      'the <span class="sbs-x">old</span> line</td><td class="sbs-num">2'
                      '</td><td class="sbs-new">the <span class="sbs-x">new</span> line</td>',
                      out)
        self.assertIn('<tr class="sbs-del"><td class="sbs-num">3</td><td class="sbs-old">gone'
                      '</td><td class="sbs-num sbs-empty"></td><td class="sbs-new sbs-empty">',
                      out)
        self.assertIn('<tr class="sbs-eq"><td class="sbs-num">1</td><td class="sbs-old">same',
                      out)

    def test_long_unchanged_stretches_fold_and_context_stays(self):
        old = ["line %d" % i for i in range(1, 41)]
        new = list(old)
        new[19] = "changed"
        out = sbs_diff.render(old, new, "old", "new", context=3)
        self.assertEqual(out.count("<details>"), 2)
        self.assertIn("16 unchanged lines (lines 1&ndash;16)", out)
        self.assertIn("17 unchanged lines (lines 24&ndash;40)", out)
        # Context: lines 17-19 and 21-23 are visible rows of the outer table.
        outer = out.split("<details>")
        self.assertIn('<td class="sbs-old">line 17</td>', outer[1].split("</details>")[1])

    def test_identical_files_say_so(self):
        out = sbs_diff.render(["a"] * 10, ["a"] * 10, "x", "y")
        self.assertIn("no differences", out)


class CommentFilterTest(unittest.TestCase):
    SOURCE = """// File comment line one.
// Line two with <tags>, @commands, \\n, 50% and --flags.
#pragma once

namespace {

//! [connection]
// A connection.
struct Connection {
  int fd;  // the socket
  bool reading = true;  // waiting to read,
                        // else to write
};
//! [connection]

// ---- Banner ----

// Does things; `code <x>` stays.
void f() {
  // inside a body: stays plain
  int x = 0;  // stays plain too
}

}  // namespace
"""

    def filtered(self, path="stages/03_epoll_lt/server.cc"):
        return comment_filter.filter_text(self.SOURCE, path).split("\n")

    def test_line_count_never_changes(self):
        self.assertEqual(len(self.filtered()), len(self.SOURCE.split("\n")))

    def test_file_comment_declarations_and_members_become_documentation(self):
        out = self.filtered()
        self.assertEqual(out[0], "/// File comment line one.")
        self.assertTrue(out[1].endswith(" \\file"), out[1])
        self.assertEqual(out[7], "/// A connection.")
        self.assertEqual(out[9], "  int fd;  ///< the socket")
        self.assertEqual(out[10], "  bool reading = true;  ///< waiting to read,")
        self.assertEqual(out[11].strip(), "///< else to write")
        self.assertEqual(out[17], "/// Does things; `code <x>` stays.")

    def test_special_characters_are_escaped_outside_code_spans(self):
        line = self.filtered()[1]
        self.assertIn("\\<tags\\>", line)
        self.assertIn("\\@commands", line)
        self.assertIn("\\\\n", line)
        self.assertIn("50\\%", line)
        self.assertIn("\\--flags", line)

    def test_markers_banners_and_bodies_stay_plain(self):
        out = self.filtered()
        self.assertEqual(out[6], "// [connection]")
        self.assertEqual(out[15], "// ---- Banner ----")
        self.assertEqual(out[19], "  // inside a body: stays plain")
        self.assertEqual(out[20], "  int x = 0;  // stays plain too")

    def test_a_stages_anonymous_namespace_gets_the_stages_name(self):
        self.assertIn("namespace stage_03_epoll_lt {", self.filtered()[4])
        self.assertEqual(self.filtered("stages/common/log.cc")[4], "namespace {")


class LinkcheckTest(unittest.TestCase):
    def test_broken_files_and_anchors_are_reported(self):
        root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        with open(os.path.join(root, "a.html"), "w") as f:
            f.write('<a href="b.html#there">ok</a> <a href="b.html#nowhere">bad anchor</a>\n'
                    '<img src="missing.png"> <a href="https://example.org/">external</a>\n'
                    '<a href="#top" id="top">self</a> <a href="../outside.html">out</a>')
        with open(os.path.join(root, "b.html"), "w") as f:
            f.write('<h1 id="there">B</h1>')
        with open(os.path.join(root, "nav.js"), "w") as f:
            f.write('var NAV = [ ["A", "a.html#anything"], ["C", "c.html"] ];')
        problems, checked = linkcheck.Site(root).problems()
        self.assertEqual(checked, 8)
        self.assertEqual(sorted(problems), [
            "a.html:1: b.html#nowhere: no anchor '#nowhere' in b.html",
            "a.html:2: missing.png: no such file",
            "a.html:3: ../outside.html: points outside the site",
            "nav.js:1: c.html: no such file",
        ])


class BuildSiteLinksTest(unittest.TestCase):
    def setUp(self):
        tree = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        self.site = build_site.Site(tree)
        files = {
            "docs/index.md": "# Echo ladder\n",
            "docs/decisions.md": "# Decisions\n",
            "docs/labelled.md": "# Labelled {#my_label}\n",
            "stages/00_blocking/README.md": "# Stage 00: blocking\n",
            "stages/00_blocking/server.cc": "",
            "stages/00_blocking/BUILD": "",
            "stages/01_threads/README.md": "# Stage 01: threads\n",
            "stages/common/fd.h": "",
        }
        for rel, text in files.items():
            path = self.site.path(rel)
            os.makedirs(os.path.dirname(path), exist_ok=True)
            with open(path, "w") as f:
                f.write(text)
            self.site.files.add(rel)

    def rewrite(self, page, line):
        return self.site.rewrite_line(page, line)

    def test_links_to_pages_and_sources_become_references(self):
        page = "stages/01_threads/README.md"
        self.assertEqual(self.rewrite(page, "[00](../00_blocking/README.md)"),
                         "[00](@ref md_stages_00_blocking_README)")
        self.assertEqual(self.rewrite(page, "[00](../00_blocking/)"),
                         "[00](@ref md_stages_00_blocking_README)")
        self.assertEqual(self.rewrite(page, "[fd](../common/fd.h)"),
                         "[fd](@ref stages/common/fd.h)")
        self.assertEqual(self.rewrite(page, "[top](../../README.md#the-shared-suite)"),
                         "[top](@ref index)")
        self.assertEqual(self.rewrite("docs/index.md", "[d](decisions.md) [l](labelled.md)"),
                         "[d](@ref md_docs_decisions) [l](@ref my_label)")

    def test_links_outside_the_site_become_text_and_others_stay(self):
        page = "stages/01_threads/README.md"
        self.assertEqual(self.rewrite(page, "see [the BUILD](../00_blocking/BUILD)."),
                         "see the BUILD.")
        self.assertEqual(self.rewrite(page, "[t](../../tests/harness.h)"), "t")
        for keep in ("[x](https://example.org/a.md)", "[x](#anchor)", "[x](@ref foo)",
                     "![img](images/a.png)", "`[x](../00_blocking/README.md)`"):
            self.assertEqual(self.rewrite(page, keep), keep)

    def test_stage_titles_are_checked(self):
        self.site.find_stages()
        self.assertEqual([s.heading for s in self.site.stages],
                         ["Stage 00: blocking", "Stage 01: threads"])
        with open(self.site.path("stages/01_threads/README.md"), "w") as f:
            f.write("# Threads\n")
        self.site.stages = []
        with self.assertRaisesRegex(build_site.BuildError,
                                    r"stages/01_threads/README.md:1: the first line must be "
                                    r"'# Stage 01: <title>'"):
            self.site.find_stages()

    def test_flat_names_keep_doxygens_page_ids(self):
        for rel in ("docs/decisions.md", "stages/00_blocking/README.md"):
            flat = build_site.flat_name(rel)
            self.assertNotIn("/", flat)
            self.assertEqual(build_site.page_id(flat, ""), build_site.page_id(rel, ""))


if __name__ == "__main__":
    unittest.main()
