#!/usr/bin/env python3
"""Doxygen input filter: our plain `//` comments become documentation.

    comment_filter.py FILE      (prints the filtered file; Doxygen's FILTER_PATTERNS)

The project comments its code with ordinary `//` comments, written to be read in
the source. Doxygen only reads `///`-style comments as documentation, so this
filter rewrites, line for line (the line count never changes, so Doxygen's line
numbers and source links stay right):

- the comment block at the top of a file -> that file's documentation;
- a comment block directly above a declaration at namespace or class scope (no
  blank line in between) -> that declaration's documentation;
- a trailing `// ...` after a member, field or enumerator -> `///< ...`, and
  comment lines continuing it at the same column;
- `//! [name]` snippet markers -> plain comments (they mark code for \\snippet,
  they document nothing).

Comments inside function bodies, banners followed by a blank line, and anything
else stay plain comments. The text of every converted comment is escaped so that
Doxygen shows it as written: no command (backslash, @), HTML tag or entity in a
comment can produce a warning. Code spans in backquotes are left alone.

Only Doxygen's parse sees the filtered text: FILTER_SOURCE_FILES stays NO, so the
source pages and \\snippet quote the files as they are.
"""

import re
import sys

COMMENT_LINE = re.compile(r"^(\s*)//(?!/)(?!!)(.*)$")       # a line that is only "// ..."
SNIPPET_MARKER = re.compile(r"^(\s*)//!(\s*\[[^\]]*\]\s*)$")  # "//! [name]"
SCOPE_HEAD = re.compile(
    r"^\s*(template\s*<.*>\s*)?(namespace|class|struct|union|enum|extern\s*\"C\")\b[^=(]*$",
    re.S)
# Characters that mean something to Doxygen in a comment, and their escapes.
SPECIAL = re.compile(r"([\\@<>&#%$])")


def _dashes(m):
    # Doxygen shows -- as an en dash and --- as an em dash; escaped with a
    # backslash they stay as typed (--trace stays --trace).
    run = len(m.group(0))
    chunks = []
    while run > 0:
        take = 3 if run in (3, 5) else 2 if run >= 2 else 1
        chunks.append("\\" + "-" * take if take > 1 else "-")
        run -= take
    return "".join(chunks)


def escape_text(text):
    """Escapes Doxygen commands, HTML, entities and dashes outside `code spans`."""
    parts = re.split(r"(`[^`]*`)", text)
    for i in range(0, len(parts), 2):  # even indexes are outside code spans
        parts[i] = re.sub(r"-{2,}", _dashes, SPECIAL.sub(r"\\\1", parts[i]))
    return "".join(parts)


def code_part(line):
    """(code, comment_start): the line without a trailing // comment, and where
    that comment starts (or -1). Skips string and character literals and /* */
    comments that open and close on the line."""
    i, n = 0, len(line)
    quote = None
    while i < n:
        c = line[i]
        if quote:
            if c == "\\":
                i += 2
                continue
            if c == quote:
                quote = None
        elif c in "\"'":
            # A digit separator (1'000) is not a character literal.
            if c == "'" and i > 0 and line[i - 1].isalnum() and i + 1 < n and line[i + 1].isalnum():
                i += 1
                continue
            quote = c
        elif line.startswith("//", i):
            return line[:i], i
        elif line.startswith("/*", i):
            end = line.find("*/", i + 2)
            if end < 0:
                return line[:i], -1
            i = end + 2
            continue
        i += 1
    return line, -1


# A stage's server.cc: stages/NN_name/server.cc.
STAGE_FILE = re.compile(r"(?:^|/)stages/(\d\d_[a-z0-9_]+)/[^/]+$")
ANON_NAMESPACE = re.compile(r"^namespace\s*\{\s*$")


class Filter:
    def __init__(self, lines, path=""):
        self.lines = lines
        # Doxygen names an anonymous namespace after the file's base name, so
        # the six stages' `namespace {` in six server.cc files would merge into
        # one. For the parse only, each stage's becomes a named namespace.
        stage = STAGE_FILE.search(path.replace("\\", "/"))
        self.stage = stage.group(1) if stage else None
        self.out = list(lines)
        # For each line: True if it sits at namespace/class scope (every
        # enclosing brace opens a namespace, class, struct, union or enum).
        self.at_scope = self._scopes()

    def _scopes(self):
        result = []
        stack = []  # True for a scope brace, False for code (function body...)
        head = ""   # text since the last ; { or } at this level
        in_block_comment = False
        for line in self.lines:
            result.append(all(stack))
            text = line
            if in_block_comment:
                end = text.find("*/")
                if end < 0:
                    continue
                text = text[end + 2:]
                in_block_comment = False
            code, _ = code_part(text)
            if code.lstrip().startswith("#"):
                continue  # preprocessor lines hold no braces that matter here
            start = code.find("/*")
            if start >= 0 and code.find("*/", start) < 0:
                code = code[:start]
                in_block_comment = True
            code = re.sub(r'"(\\.|[^"\\])*"', '""', code)
            code = re.sub(r"'(\\.|[^'\\])'", "''", code)
            for c in code:
                if c == "{":
                    stack.append(bool(SCOPE_HEAD.match(head)) and all(stack))
                    head = ""
                elif c == "}":
                    if stack:
                        stack.pop()
                    head = ""
                elif c == ";":
                    head = ""
                else:
                    head += c
            head += " "
        return result

    def _declaration_follows(self, index):
        """True if line `index` starts a declaration Doxygen can document."""
        if index >= len(self.lines):
            return False
        text = self.lines[index].strip()
        if not text or text.startswith("}") or text.startswith("//"):
            return False
        if text.startswith("#"):
            return text.startswith("#define")
        if re.match(r"^(public|private|protected)\s*:", text):
            return False
        if re.match(r"^namespace\s*\{", text) or text.startswith("extern \"C\""):
            return False  # an anonymous namespace or linkage block documents nothing
        return self.at_scope[index]

    def run(self):
        n = len(self.lines)
        i = 0
        first_code_seen = False
        trailing_column = -1  # column of the previous line's ///< comment, if any
        while i < n:
            line = self.lines[i]
            marker = SNIPPET_MARKER.match(line)
            if marker:
                self.out[i] = "%s//%s" % (marker.group(1), marker.group(2))
                trailing_column = -1
                i += 1
                continue
            m = COMMENT_LINE.match(line)
            if m and trailing_column >= 0 and len(m.group(1)) == trailing_column:
                # Continues the trailing comment of the line above.
                self.out[i] = "%s///< %s" % (m.group(1), escape_text(m.group(2).strip()))
                i += 1
                continue
            trailing_column = -1
            if m:
                j = i
                while j < n and COMMENT_LINE.match(self.lines[j]):
                    j += 1
                if not first_code_seen:
                    self._convert_block(i, j, file_doc=True)
                elif self.at_scope[i] and self._declaration_follows(j):
                    self._convert_block(i, j, file_doc=False)
                i = j
                continue
            stripped = line.strip()
            if stripped:
                first_code_seen = True
            if self.stage and ANON_NAMESPACE.match(line):
                self.out[i] = ("/** The code of stage %s: an anonymous namespace in its "
                               "server.cc. */ namespace stage_%s {"
                               % (self.stage, self.stage))
                i += 1
                continue
            code, start = code_part(line)
            if (start >= 0 and self.at_scope[i] and code.strip()
                    and not code.lstrip().startswith("#")
                    and code.rstrip()[-1:] in (";", ",")
                    and not line.startswith("//!", start)
                    and not line.startswith("///", start)):
                trailing = line[start + 2:]
                self.out[i] = "%s///< %s" % (code, escape_text(trailing.strip()))
                trailing_column = start
            i += 1
        return self.out

    def _convert_block(self, begin, end, file_doc):
        for k in range(begin, end):
            m = COMMENT_LINE.match(self.lines[k])
            self.out[k] = "%s///%s" % (m.group(1), escape_text(m.group(2)))
        if file_doc:
            # The top-of-file comment documents the file itself.
            self.out[end - 1] += " \\file"


def filter_text(text, path=""):
    lines = text.split("\n")
    return "\n".join(Filter(lines, path).run())


def main(argv):
    if len(argv) != 1:
        print("usage: comment_filter.py FILE", file=sys.stderr)
        return 2
    with open(argv[0], encoding="utf-8", errors="replace") as f:
        sys.stdout.write(filter_text(f.read(), argv[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
