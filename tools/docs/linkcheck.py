#!/usr/bin/env python3
"""Checks that every internal link of a static HTML site resolves.

    linkcheck.py SITE_DIR

Reads every .html file (href and src attributes, and <object data>, which
Doxygen uses for SVG images) and every .js file (the "page.html#anchor" strings
of Doxygen's navigation tree) under SITE_DIR. A link to a local file must name
an existing file inside SITE_DIR; a link in an HTML page with a #fragment into
one of our HTML pages must name an id (or <a name>) that page has. Links with a
scheme (https:, mailto:, javascript:) are not ours to check.

Exit status: 0 when every link resolves, 1 otherwise (each broken link listed).
Used at build time by tools/docs/build_site.py and again by //docs:site_test.
"""

import html.parser
import os
import re
import sys
import urllib.parse

JS_PAGE_LINK = re.compile(r'"([A-Za-z0-9_./-]+\.html(?:#[^"]*)?)"')


class _Collector(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.links = []  # (line, attribute value)
        self.anchors = set()

    def handle_starttag(self, tag, attrs):
        for name, value in attrs:
            if value is None:
                continue
            if name in ("href", "src") or (name == "data" and tag == "object"):
                self.links.append((self.getpos()[0], value))
            elif name == "id" or (name == "name" and tag == "a"):
                self.anchors.add(value)

    handle_startendtag = handle_starttag


def _is_external(link):
    return bool(re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", link)) or link.startswith("//")


class Site:
    def __init__(self, root):
        self.root = os.path.abspath(root)
        self._anchors = {}

    def anchors(self, path):
        if path not in self._anchors:
            collector = _Collector()
            with open(path, encoding="utf-8", errors="replace") as f:
                collector.feed(f.read())
            self._anchors[path] = collector.anchors
        return self._anchors[path]

    def check_link(self, source, link, check_anchor=True):
        """None if `link` (found in file `source`) resolves, else the problem."""
        link = link.strip()
        if not link or _is_external(link):
            return None
        parsed = urllib.parse.urlsplit(link)
        path = urllib.parse.unquote(parsed.path)
        fragment = urllib.parse.unquote(parsed.fragment)
        if path:
            target = os.path.normpath(os.path.join(os.path.dirname(source), path))
        else:
            target = source
        if not (target == self.root or target.startswith(self.root + os.sep)):
            return "points outside the site"
        if not os.path.exists(target):
            return "no such file"
        if os.path.isdir(target):
            if not os.path.exists(os.path.join(target, "index.html")):
                return "a directory without index.html"
            return None
        if (check_anchor and fragment and target.endswith(".html")
                and fragment not in self.anchors(target)):
            return "no anchor '#%s' in %s" % (fragment, os.path.relpath(target, self.root))
        return None

    def problems(self):
        """Every broken internal link, as "file:line: link: problem" strings,
        and the number of links checked."""
        found, checked = [], 0
        for directory, _, files in sorted(os.walk(self.root)):
            for name in sorted(files):
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, self.root)
                if name.endswith(".html"):
                    collector = _Collector()
                    with open(path, encoding="utf-8", errors="replace") as f:
                        collector.feed(f.read())
                    self._anchors[path] = collector.anchors
                    links = collector.links
                    check_anchor = True
                elif name.endswith(".js"):
                    with open(path, encoding="utf-8", errors="replace") as f:
                        text = f.read()
                    links = [(text.count("\n", 0, m.start()) + 1, m.group(1))
                             for m in JS_PAGE_LINK.finditer(text)]
                    # Doxygen's navigation tree points at members of a file
                    # page by anchors that live on the namespace page; the page
                    # still opens. Only the file is checked for these.
                    check_anchor = False
                else:
                    continue
                for line, link in links:
                    checked += 1
                    problem = self.check_link(path, link, check_anchor)
                    if problem:
                        found.append("%s:%d: %s: %s" % (rel, line, link, problem))
        return found, checked


def main(argv):
    if len(argv) != 1:
        print("usage: linkcheck.py SITE_DIR", file=sys.stderr)
        return 2
    if not os.path.isdir(argv[0]):
        print("linkcheck: %s is not a directory" % argv[0], file=sys.stderr)
        return 2
    problems, checked = Site(argv[0]).problems()
    for p in problems:
        print("broken link: " + p, file=sys.stderr)
    if problems:
        print("linkcheck: %d of %d internal links are broken" % (len(problems), checked),
              file=sys.stderr)
        return 1
    print("linkcheck: all %d internal links resolve" % checked)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
