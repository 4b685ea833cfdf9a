#!/usr/bin/env python3
"""Prints the unified diff between two stages of the ladder: the lesson in between.

    bazel run //tools/stagediff -- 03 04
    tools/stagediff/stagediff.py 03 04          (works without Bazel too)

A stage may be named by its number ("3", "03") or its directory ("03_epoll_lt",
"stages/03_epoll_lt"). By default the diff covers server.cc and BUILD; the
stage's README.md is prose and is left out unless --files asks for it.

Colour: only when stdout is a terminal (--color=auto, the default), or always
with --color=always; never with --color=never or when NO_COLOR is set.

Exit status: 0 when the diff was printed (whether or not the stages differ, and
also when the reader of a pipe leaves early, as `| head` does), 2 on bad arguments
or an unknown stage, 1 when a file cannot be read or stdout cannot be written (it
is closed, or the disk is full).
"""

import argparse
import difflib
import os
import re
import sys

DEFAULT_FILES = ("server.cc", "BUILD")

# ANSI SGR sequences: red for removed lines, green for added ones, cyan for hunk
# headers, bold for file headers.
RED, GREEN, CYAN, BOLD, RESET = "\033[31m", "\033[32m", "\033[36m", "\033[1m", "\033[0m"

# ASCII digits only: \d and str.isdigit() also take other scripts' digits ("３", "²").
STAGE_DIR = re.compile(r"^([0-9][0-9])_[a-z0-9_]+$")
NUMBER = re.compile(r"[0-9]+")


class UsageError(Exception):
    """A problem with the command line: reported with exit status 2."""


class Parser(argparse.ArgumentParser):
    def print_help(self, file=None):
        # argparse drops a help text it cannot write and exits 0; main says so instead.
        file = file or sys.stdout
        file.write(self.format_help())
        file.flush()


def repo_root(explicit):
    """The work tree whose stages are compared."""
    if explicit:
        return explicit
    # `bazel run` starts us inside the runfiles tree; the user's tree is here.
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY")
    if workspace:
        return workspace
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def known_stages(root):
    """Stage directory names under root/stages, in ladder order."""
    stages_dir = os.path.join(root, "stages")
    try:
        names = os.listdir(stages_dir)
    except OSError as e:
        raise UsageError("cannot list %s: %s (is --root the repository?)"
                         % (stages_dir, e.strerror)) from e
    # A directory becomes a stage once it has its server.cc.
    return sorted(n for n in names
                  if STAGE_DIR.match(n)
                  and os.path.isfile(os.path.join(stages_dir, n, "server.cc")))


def resolve_stage(name, stages):
    """Maps "3", "03", "03_epoll_lt" or "stages/03_epoll_lt/" to a stage directory."""
    wanted = name.strip().rstrip("/")
    if wanted.startswith("stages/"):
        wanted = wanted[len("stages/"):]
    if NUMBER.fullmatch(wanted):
        # "3", "03" and "003" alike, without int(): it refuses thousands of digits.
        matches = [s for s in stages if s[:2].lstrip("0") == wanted.lstrip("0")]
    else:
        matches = [s for s in stages if s == wanted]
    if len(matches) != 1:
        listing = ", ".join(stages) if stages else "(none found)"
        raise UsageError("unknown stage '%s'; known stages: %s" % (name, listing))
    return matches[0]


def read_lines(path):
    with open(path, encoding="utf-8", errors="replace") as f:
        return f.read().splitlines(keepends=True)


def colour_line(line, colour):
    if not colour:
        return line
    body = line.rstrip("\n")
    end = line[len(body):]
    if body.startswith("+++") or body.startswith("---"):
        return BOLD + body + RESET + end
    if body.startswith("@@"):
        return CYAN + body + RESET + end
    if body.startswith("+"):
        return GREEN + body + RESET + end
    if body.startswith("-"):
        return RED + body + RESET + end
    return line


def diff_file(root, old, new, name, context):
    """The unified diff lines of stages/old/name against stages/new/name."""
    old_rel = "stages/%s/%s" % (old, name)
    new_rel = "stages/%s/%s" % (new, name)
    old_path, new_path = os.path.join(root, old_rel), os.path.join(root, new_rel)
    # A file missing on one side shows as wholly added or removed, as in git.
    old_lines = read_lines(old_path) if os.path.exists(old_path) else []
    new_lines = read_lines(new_path) if os.path.exists(new_path) else []
    if not os.path.exists(old_path) and not os.path.exists(new_path):
        raise FileNotFoundError("neither %s nor %s exists" % (old_rel, new_rel))
    lines = []
    for line in difflib.unified_diff(old_lines, new_lines, old_rel, new_rel, n=context):
        if not line.endswith("\n"):
            line += "\n\\ No newline at end of file\n"
        lines.append(line)
    return lines


def parse_args(argv):
    parser = Parser(
        prog="stagediff",
        description="Print the unified diff between two stages of the echo ladder "
                    "(by default their server.cc and BUILD).",
        epilog="examples:\n"
               "  bazel run //tools/stagediff -- 03 04\n"
               "  bazel run //tools/stagediff -- --color=always 02_poll 03_epoll_lt | less -R\n"
               "  bazel run //tools/stagediff -- --files=server.cc,README.md 00 01",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("old", help="the earlier stage: 03, 3 or 03_epoll_lt")
    parser.add_argument("new", help="the later stage, named the same way")
    parser.add_argument("--color", "--colour", dest="color", default="auto",
                        choices=("auto", "always", "never"),
                        help="colour the diff: auto (only on a terminal, the default), "
                             "always, never")
    parser.add_argument("--files", default=",".join(DEFAULT_FILES),
                        help="comma-separated file names inside each stage "
                             "(default: %(default)s)")
    parser.add_argument("-U", "--context", type=int, default=3, metavar="N",
                        help="lines of context around each change (default: 3)")
    parser.add_argument("--root", help="repository root (default: the Bazel "
                                       "workspace, or this script's repository)")

    # argparse reports its own errors with exit status 2; ours below do the same.
    args = parser.parse_args(argv)
    if args.context < 0:
        parser.error("--context must be 0 or more")
    files = [f.strip() for f in args.files.split(",") if f.strip()]
    if not files or any("/" in f or f in (".", "..") for f in files):
        parser.error("--files wants plain file names inside a stage, e.g. server.cc,BUILD")
    args.files = files
    return args


def use_colour(choice):
    if choice == "always":
        return True
    if choice == "never" or os.environ.get("NO_COLOR"):
        return False
    return sys.stdout.isatty()


def cannot_write(error):
    """The exit status after writing to stdout failed with error."""
    # Python flushes stdout once more at exit: let that go nowhere, quietly.
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    if isinstance(error, BrokenPipeError):
        # `stagediff 03 04 | head`: the reader left; that is not an error.
        return 0
    print("stagediff: error: cannot write to stdout: %s" % (error.strerror or error),
          file=sys.stderr)
    return 1


def main(argv):
    if sys.stdout is None:  # started with stdout closed, e.g. `stagediff 03 04 >&-`
        print("stagediff: error: stdout is closed", file=sys.stderr)
        return 1
    try:
        args = parse_args(argv)
    except OSError as e:  # --help, into a full disk
        return cannot_write(e)
    try:
        root = repo_root(args.root)
        stages = known_stages(root)
        old = resolve_stage(args.old, stages)
        new = resolve_stage(args.new, stages)
    except UsageError as e:
        print("stagediff: error: %s" % e, file=sys.stderr)
        return 2
    colour = use_colour(args.color)
    out = []
    try:
        for name in args.files:
            out.extend(diff_file(root, old, new, name, args.context))
    except OSError as e:
        print("stagediff: error: %s" % e, file=sys.stderr)
        return 1
    if not out:
        print("stagediff: %s and %s do not differ in %s"
              % (old, new, ", ".join(args.files)), file=sys.stderr)
        return 0
    try:
        sys.stdout.write("".join(colour_line(line, colour) for line in out))
        sys.stdout.flush()
    except OSError as e:
        return cannot_write(e)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
