"""The docs site, checked as a reader would see it: //docs:site_test.

Static checks (no browser): every internal link of every page and of the
navigation tree resolves; the main page, every stage page, every diff page and
the stage x test table exist; the ladder can be followed from the main page to
the last stage through the stage pages' "next" links.

Browser checks, in headless Chromium (Debian's /usr/bin/chromium): the main
page, every stage page and every diff page are loaded and their DOM, after the
scripts ran, is checked: the ladder links are there, the navigation tree was
built, snippets show code, and each diff page shows both columns with content.
A screenshot of a diff page goes to the test's undeclared outputs.

Without Chromium the browser checks FAIL, unless the environment says
ECHO_ALLOW_NO_BROWSER=1 (`bazel test --test_env=ECHO_ALLOW_NO_BROWSER=1 ...`):
then they are reported as skipped, never as passed. tools/setup.sh installs
Chromium, so CI runs them.
"""

import html.parser
import os
import re
import sys
import time
import unittest
import xml.etree.ElementTree as ET

from tools.docs import chromium
from tools.docs import linkcheck

STAGE_PAGE = re.compile(r"^md_stages_(\d\d)_[a-z0-9_]+_README\.html$")
DIFF_PAGE = re.compile(r"^diff_(\d\d)_(\d\d)\.html$")


def expected_stages():
    """The stage numbers the site must have a page for ("00", "01", ...): the ladder
    docs/BUILD passes after the site's path, or None when run by hand without it."""
    return [name[:2] for name in sys.argv[2:]] or None


def site_dir():
    path = sys.argv[1] if len(sys.argv) > 1 else "docs/site"
    return os.path.abspath(path)


class Page(html.parser.HTMLParser):
    """What the checks need from one page: links, classes, texts by element."""

    def __init__(self, text):
        super().__init__(convert_charrefs=True)
        self.links = []  # href values
        self.title = ""
        self.cells = {"sbs-old": [], "sbs-new": []}  # texts of diff cells
        self.classes = {}  # class name -> count
        self.ladder_links = []  # hrefs inside div.ladder-nav
        self.fragment_text = []  # text inside div.fragment (snippets)
        self._stack = []  # (tag, classes) of open elements
        self._in_title = False
        self.feed(text)

    def _inside(self, cls):
        return any(cls in classes for _, classes in self._stack)

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        classes = (attrs.get("class") or "").split()
        for c in classes:
            self.classes[c] = self.classes.get(c, 0) + 1
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])
            if self._inside("ladder-nav"):
                self.ladder_links.append(attrs["href"])
        if tag == "title":
            self._in_title = True
        if tag in ("br", "img", "meta", "link", "input", "col", "hr"):
            return  # void elements never close
        if tag == "td":
            for side in ("sbs-old", "sbs-new"):
                if side in classes and "sbs-empty" not in classes:
                    self.cells[side].append("")
        self._stack.append((tag, classes))

    def handle_endtag(self, tag):
        if tag == "title":
            self._in_title = False
        for i in range(len(self._stack) - 1, -1, -1):
            if self._stack[i][0] == tag:
                del self._stack[i:]
                break

    def handle_data(self, data):
        if self._in_title:
            self.title += data
        for side in ("sbs-old", "sbs-new"):
            if self._stack and self._stack[-1][0] in ("td", "span") and self._inside(side) \
                    and self.cells[side]:
                self.cells[side][-1] += data
        if self._inside("fragment"):
            self.fragment_text.append(data)


def read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


class SiteLayout:
    """The pages of the built site, found by name."""

    def __init__(self, root):
        self.root = root
        names = sorted(os.listdir(root))
        self.stage_pages = {}
        for n in names:
            m = STAGE_PAGE.match(n)
            if m:
                self.stage_pages[m.group(1)] = n
        self.stages = sorted(self.stage_pages)
        self.diff_pages = {}
        for n in names:
            m = DIFF_PAGE.match(n)
            if m:
                self.diff_pages[(m.group(1), m.group(2))] = n

    def path(self, name):
        return os.path.join(self.root, name)

    def url(self, name):
        return "file://" + self.path(name)


LAYOUT = None


def layout():
    global LAYOUT
    if LAYOUT is None:
        LAYOUT = SiteLayout(site_dir())
    return LAYOUT


class StaticSiteTest(unittest.TestCase):
    def test_every_internal_link_resolves(self):
        problems, checked = linkcheck.Site(layout().root).problems()
        self.assertGreater(checked, 100, "suspiciously few links: is this the site?")
        self.assertEqual(problems, [], "broken internal links:\n" + "\n".join(problems))

    def test_main_page_stage_pages_diff_pages_and_table_exist(self):
        site = layout()
        for name in ("index.html", "stage_table.html", "stage_diffs.html"):
            self.assertTrue(os.path.isfile(site.path(name)), name)
        self.assertGreaterEqual(len(site.stages), 2, "stage pages: %s" % site.stages)
        self.assertEqual(site.stages[0], "00")
        if expected_stages() is not None:  # every stage of the ladder has its page
            self.assertEqual(site.stages, expected_stages(), "stage pages")
        for old, new in zip(site.stages, site.stages[1:]):
            self.assertIn((old, new), site.diff_pages,
                          "no side-by-side diff page for %s -> %s" % (old, new))
        self.assertEqual(len(site.diff_pages), len(site.stages) - 1, site.diff_pages)

    def test_the_ladder_can_be_followed_from_the_main_page_to_the_last_stage(self):
        site = layout()
        index = Page(read(site.path("index.html")))
        first = site.stage_pages[site.stages[0]]
        self.assertIn(first, index.links, "the main page does not link the first stage")
        page = first
        seen = [page]
        for number in site.stages[1:]:
            nav = Page(read(site.path(page))).ladder_links
            nxt = site.stage_pages[number]
            self.assertIn(nxt, nav, "%s has no ladder link to %s" % (page, nxt))
            page = nxt
            seen.append(page)
        self.assertEqual(seen, [site.stage_pages[s] for s in site.stages])

    def test_the_stage_table_has_a_column_per_stage_linked_to_its_page(self):
        site = layout()
        table = Page(read(site.path("stage_table.html")))
        for number in site.stages:
            self.assertIn(site.stage_pages[number], table.links, number)
        self.assertIn("Echo.ShortLineIsEchoedBack", read(site.path("stage_table.html")))


class BrowserSiteTest(unittest.TestCase):
    def setUp(self):
        # Each case says for itself that it could not run, so the counts show
        # every browser check as failed (or, when allowed, skipped).
        if not chromium.available():
            message = ("%s is not installed: the browser checks cannot run. Install it "
                       "with tools/setup.sh (Debian package 'chromium')" % chromium.CHROMIUM)
            if os.environ.get("ECHO_ALLOW_NO_BROWSER") == "1":
                self.skipTest(message + "; skipped because ECHO_ALLOW_NO_BROWSER=1")
            self.fail(message + ", or run with --test_env=ECHO_ALLOW_NO_BROWSER=1 to "
                      "skip these checks (they are then reported as skipped)")
        self.work = os.environ.get("TEST_TMPDIR")

    def dom(self, name):
        return Page(chromium.dump_dom(layout().url(name), workdir=self.work))

    def test_main_page_loads_with_its_navigation_and_links_the_whole_ladder(self):
        site = layout()
        page = self.dom("index.html")
        self.assertIn("Echo ladder", page.title)
        for number in site.stages:
            self.assertIn(site.stage_pages[number], page.links, "stage %s" % number)
        for name in site.diff_pages.values():
            self.assertIn(name, page.links)
        # Doxygen's navigation tree is built by its scripts: proof that they ran.
        self.assertIn(site.stage_pages[site.stages[0]], page.links)
        self.assertGreater(page.classes.get("item", 0) + page.classes.get("label", 0), 3,
                           "the navigation tree was not built")

    def test_stage_pages_load_with_snippets_and_links_to_both_diffs(self):
        site = layout()
        for i, number in enumerate(site.stages):
            name = site.stage_pages[number]
            page = self.dom(name)
            self.assertIn("Stage %s" % number, page.title, name)
            self.assertTrue("".join(page.fragment_text).strip(),
                            "%s shows no code snippet" % name)
            if i > 0:
                prev = site.stages[i - 1]
                self.assertIn(site.diff_pages[(prev, number)], page.ladder_links, name)
                self.assertIn(site.stage_pages[prev], page.ladder_links, name)
            if i + 1 < len(site.stages):
                nxt = site.stages[i + 1]
                self.assertIn(site.diff_pages[(number, nxt)], page.ladder_links, name)
                self.assertIn(site.stage_pages[nxt], page.ladder_links, name)

    def test_diff_pages_show_both_columns_with_content(self):
        site = layout()
        for (old, new), name in sorted(site.diff_pages.items()):
            page = self.dom(name)
            self.assertGreaterEqual(page.classes.get("sbs", 0), 1, name)
            old_text = "".join(page.cells["sbs-old"])
            new_text = "".join(page.cells["sbs-new"])
            self.assertIn("#include", old_text, "%s: the left column is empty" % name)
            self.assertIn("#include", new_text, "%s: the right column is empty" % name)
            changes = sum(page.classes.get(c, 0) for c in ("sbs-chg", "sbs-del", "sbs-add"))
            self.assertGreater(changes, 0, "%s highlights no change" % name)
            self.assertIn(site.stage_pages[old], page.ladder_links, name)
            self.assertIn(site.stage_pages[new], page.ladder_links, name)

    def test_a_screenshot_of_a_diff_page_is_a_real_picture(self):
        site = layout()
        name = sorted(site.diff_pages.values())[-1]
        out_dir = os.environ.get("TEST_UNDECLARED_OUTPUTS_DIR") or self.work or "/tmp"
        png = chromium.screenshot(site.url(name), os.path.join(out_dir, "stage_diff.png"),
                                  1400, 900, workdir=self.work)
        self.assertEqual(chromium.png_size(png), (1400, 900))
        self.assertGreater(os.path.getsize(png), 20000, "a blank page?")


class JUnitResult(unittest.TextTestResult):
    """Records every case for the JUnit XML file Bazel and .ci/run read."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.records = []  # (test, outcome, message, seconds)
        self._start = 0.0

    def startTest(self, test):
        self._start = time.monotonic()
        super().startTest(test)

    def _record(self, test, outcome, message=""):
        self.records.append((test, outcome, message, time.monotonic() - self._start))

    def addSuccess(self, test):
        super().addSuccess(test)
        self._record(test, "passed")

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._record(test, "failure", self._exc_info_to_string(err, test))

    def addError(self, test, err):
        super().addError(test, err)
        self._record(test, "error", self._exc_info_to_string(err, test))

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._record(test, "skipped", reason)


def write_junit(path, result):
    suite = ET.Element("testsuite", name="docs.site_test", tests=str(len(result.records)),
                       failures=str(sum(1 for r in result.records if r[1] == "failure")),
                       errors=str(sum(1 for r in result.records if r[1] == "error")),
                       skipped=str(sum(1 for r in result.records if r[1] == "skipped")))
    for test, outcome, message, seconds in result.records:
        # A class-level skip or failure is reported against the class.
        name = getattr(test, "_testMethodName", None) or str(test)
        case = ET.SubElement(suite, "testcase", classname=type(test).__name__,
                             name=name, time="%.3f" % seconds)
        if outcome != "passed":
            ET.SubElement(case, outcome, message=message.splitlines()[0] if message else "")
            if outcome != "skipped":
                case[-1].text = message
    root = ET.Element("testsuites")
    root.append(suite)
    ET.ElementTree(root).write(path, encoding="utf-8", xml_declaration=True)


def main():
    if not os.path.isfile(os.path.join(site_dir(), "index.html")):
        print("site_test: no site at %s" % site_dir(), file=sys.stderr)
        return 1
    loader = unittest.TestLoader()
    suite = unittest.TestSuite([loader.loadTestsFromTestCase(StaticSiteTest),
                                loader.loadTestsFromTestCase(BrowserSiteTest)])
    runner = unittest.TextTestRunner(verbosity=2, resultclass=JUnitResult)
    result = runner.run(suite)
    xml_path = os.environ.get("XML_OUTPUT_FILE")
    if xml_path:
        write_junit(xml_path, result)
    return 0 if result.wasSuccessful() else 1


if __name__ == "__main__":
    sys.exit(main())
