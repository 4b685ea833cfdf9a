#!/usr/bin/env python3
"""Side-by-side diff of two text files as an HTML fragment, for the docs site.

    sbs_diff.py OLD NEW [--old-label L] [--new-label L] [--context N] > fragment.html

The fragment is one <div class="sbs-diff"> holding a four-column table: old line
number, old line, new line number, new line. Changed lines are highlighted (and
the changed words inside a changed line); stretches of unchanged lines
longer than twice the context are folded into a <details> element that the
reader can open, so it needs no JavaScript. docs/site.css styles it.

Every piece of file content goes through html_escape(); nothing else from the
files reaches the output.

difflib only supplies the line matching (SequenceMatcher opcodes); the layout,
folding and markup are ours.
"""

import argparse
import difflib
import re
import sys

# Lines of unchanged context kept visible around every change.
DEFAULT_CONTEXT = 3

# Below this similarity, a changed pair of lines is marked as a whole rather
# than word by word (the word diff would be noise).
INTRALINE_MIN_RATIO = 0.5


def html_escape(text):
    """Escapes text for HTML element content and double-quoted attributes."""
    return (text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;").replace("'", "&#39;"))


def _expand(line):
    return line.rstrip("\r\n").expandtabs(8)


def _tokens(line):
    """Words, runs of spaces and single punctuation characters."""
    return re.findall(r"\w+|\s+|[^\w\s]", line)


def _intraline(old, new):
    """(old_html, new_html) with the differing words wrapped in spans."""
    old_t, new_t = _tokens(old), _tokens(new)
    matcher = difflib.SequenceMatcher(None, old_t, new_t, autojunk=False)
    if matcher.ratio() < INTRALINE_MIN_RATIO:
        return html_escape(old), html_escape(new)
    ops = matcher.get_opcodes()
    # Spaces alone between two changes belong to the change: one highlighted
    # run reads better than a row of separate words.
    for k in range(1, len(ops) - 1):
        tag, i1, i2, j1, j2 = ops[k]
        if (tag == "equal" and ops[k - 1][0] != "equal" and ops[k + 1][0] != "equal"
                and "".join(old_t[i1:i2]).isspace()):
            ops[k] = ("replace", i1, i2, j1, j2)
    # Consecutive changes become one segment, so each run is one span.
    segments = []  # [changed, old text, new text]
    for tag, i1, i2, j1, j2 in ops:
        changed = tag != "equal"
        a, b = "".join(old_t[i1:i2]), "".join(new_t[j1:j2])
        if segments and segments[-1][0] == changed:
            segments[-1][1] += a
            segments[-1][2] += b
        else:
            segments.append([changed, a, b])
    old_parts, new_parts = [], []
    for changed, a, b in segments:
        a, b = html_escape(a), html_escape(b)
        if not changed:
            old_parts.append(a)
            new_parts.append(b)
            continue
        if a:
            old_parts.append('<span class="sbs-x">%s</span>' % a)
        if b:
            new_parts.append('<span class="sbs-x">%s</span>' % b)
    return "".join(old_parts), "".join(new_parts)


class Row:
    """One table row: either side may be absent (None) for added/removed lines."""

    __slots__ = ("kind", "old_no", "old_html", "new_no", "new_html")

    def __init__(self, kind, old_no, old_html, new_no, new_html):
        self.kind = kind  # "eq", "chg", "del", "add"
        self.old_no, self.old_html = old_no, old_html
        self.new_no, self.new_html = new_no, new_html


def diff_rows(old_lines, new_lines):
    """Every row of the side-by-side view, in order."""
    old = [_expand(l) for l in old_lines]
    new = [_expand(l) for l in new_lines]
    rows = []
    matcher = difflib.SequenceMatcher(None, old, new, autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            for k in range(i2 - i1):
                text = html_escape(old[i1 + k])
                rows.append(Row("eq", i1 + k + 1, text, j1 + k + 1, text))
            continue
        # replace/delete/insert: pair lines up side by side; the longer side's
        # extra lines face an empty cell.
        n = max(i2 - i1, j2 - j1)
        for k in range(n):
            has_old, has_new = i1 + k < i2, j1 + k < j2
            if has_old and has_new:
                a, b = _intraline(old[i1 + k], new[j1 + k])
                rows.append(Row("chg", i1 + k + 1, a, j1 + k + 1, b))
            elif has_old:
                rows.append(Row("del", i1 + k + 1, html_escape(old[i1 + k]), None, None))
            else:
                rows.append(Row("add", None, None, j1 + k + 1, html_escape(new[j1 + k])))
    return rows


def _cells(row):
    def side(no, text, cls):
        if no is None:
            return '<td class="sbs-num sbs-empty"></td><td class="%s sbs-empty"></td>' % cls
        return '<td class="sbs-num">%d</td><td class="%s">%s</td>' % (no, cls, text)

    return '<tr class="sbs-%s">%s%s</tr>' % (
        row.kind, side(row.old_no, row.old_html, "sbs-old"),
        side(row.new_no, row.new_html, "sbs-new"))


_COLGROUP = ('<colgroup><col class="sbs-numcol"><col class="sbs-codecol">'
             '<col class="sbs-numcol"><col class="sbs-codecol"></colgroup>')


def _fold(rows):
    """A row that folds unchanged rows into a <details> the reader can open."""
    first, last = rows[0], rows[-1]
    if first.old_no == first.new_no and last.old_no == last.new_no:
        where = "lines %d&ndash;%d" % (first.old_no, last.old_no)
    else:
        where = "old %d&ndash;%d, new %d&ndash;%d" % (first.old_no, last.old_no,
                                                      first.new_no, last.new_no)
    inner = "\n".join(_cells(r) for r in rows)
    return ('<tr class="sbs-fold"><td colspan="4"><details><summary>'
            '%d unchanged lines (%s)</summary>\n'
            '<table class="sbs sbs-inner">%s<tbody>\n%s\n</tbody></table>'
            '</details></td></tr>' % (len(rows), where, _COLGROUP, inner))


def render(old_lines, new_lines, old_label, new_label, context=DEFAULT_CONTEXT):
    """The HTML fragment for one pair of files."""
    rows = diff_rows(old_lines, new_lines)
    changed = [i for i, r in enumerate(rows) if r.kind != "eq"]
    added = sum(1 for r in rows if r.new_no is not None and r.kind != "eq")
    removed = sum(1 for r in rows if r.old_no is not None and r.kind != "eq")

    # Which unchanged rows stay visible: those within `context` of a change.
    visible = [False] * len(rows)
    for i in changed:
        for k in range(max(0, i - context), min(len(rows), i + context + 1)):
            visible[k] = True
    out = []
    i = 0
    while i < len(rows):
        if visible[i] or rows[i].kind != "eq":
            out.append(_cells(rows[i]))
            i += 1
            continue
        j = i
        while j < len(rows) and not visible[j] and rows[j].kind == "eq":
            j += 1
        # Folding a stretch shorter than a fold row is not worth it.
        if j - i <= 2:
            out.extend(_cells(r) for r in rows[i:j])
        else:
            out.append(_fold(rows[i:j]))
        i = j

    summary = ("no differences" if not changed else
               "%d line%s removed or changed, %d added or changed"
               % (removed, "" if removed == 1 else "s", added))
    return ('<div class="sbs-diff" data-old="{ol}" data-new="{nl}">\n'
            '<p class="sbs-summary">{summary}</p>\n'
            '<table class="sbs">{cols}\n'
            '<thead><tr><th colspan="2" class="sbs-old">{ol}</th>'
            '<th colspan="2" class="sbs-new">{nl}</th></tr></thead>\n'
            '<tbody>\n{body}\n</tbody></table>\n</div>\n').format(
                ol=html_escape(old_label), nl=html_escape(new_label), summary=summary,
                cols=_COLGROUP, body="\n".join(out))


def read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines()


def main(argv):
    parser = argparse.ArgumentParser(
        prog="sbs_diff", description="Side-by-side HTML diff fragment of two files.")
    parser.add_argument("old")
    parser.add_argument("new")
    parser.add_argument("--old-label", help="heading of the left column (default: OLD)")
    parser.add_argument("--new-label", help="heading of the right column (default: NEW)")
    parser.add_argument("--context", type=int, default=DEFAULT_CONTEXT, metavar="N")
    args = parser.parse_args(argv)
    sys.stdout.write(render(read_lines(args.old), read_lines(args.new),
                            args.old_label or args.old, args.new_label or args.new,
                            args.context))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
