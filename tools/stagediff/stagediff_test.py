"""Tests of tools/stagediff on a small fake repository (no real stages needed)."""

import os
import subprocess
import sys
import tempfile
import unittest

SCRIPT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "stagediff.py")


def write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


class StagediffTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.root = tempfile.mkdtemp(dir=os.environ.get("TEST_TMPDIR"))
        write(os.path.join(cls.root, "stages/00_first/server.cc"), "a\nb\nc\n")
        write(os.path.join(cls.root, "stages/00_first/BUILD"), "same\n")
        write(os.path.join(cls.root, "stages/01_second/server.cc"), "a\nB\nc\n")
        write(os.path.join(cls.root, "stages/01_second/BUILD"), "same\n")
        write(os.path.join(cls.root, "stages/01_second/README.md"), "# Stage 01\n")
        os.makedirs(os.path.join(cls.root, "stages/02_unwritten"))  # no server.cc yet
        os.makedirs(os.path.join(cls.root, "stages/common"))

    def run_tool(self, *args, env=None, stdout=subprocess.PIPE, preexec_fn=None):
        full_env = dict(os.environ)
        full_env.pop("NO_COLOR", None)
        full_env.pop("BUILD_WORKSPACE_DIRECTORY", None)
        full_env.update(env or {})
        return subprocess.run([sys.executable, SCRIPT, "--root", self.root, *args],
                              stdout=stdout, stderr=subprocess.PIPE, text=True, env=full_env,
                              preexec_fn=preexec_fn, check=False)

    def test_prints_a_plain_unified_diff_when_stdout_is_not_a_terminal(self):
        r = self.run_tool("00", "01")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(r.stdout,
                         "--- stages/00_first/server.cc\n"
                         "+++ stages/01_second/server.cc\n"
                         "@@ -1,3 +1,3 @@\n"
                         " a\n-b\n+B\n c\n")
        self.assertNotIn("\033[", r.stdout)

    def test_color_always_colours_removed_added_and_headers(self):
        r = self.run_tool("--color=always", "0", "1")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("\033[31m-b\033[0m\n", r.stdout)
        self.assertIn("\033[32m+B\033[0m\n", r.stdout)
        self.assertIn("\033[36m@@ -1,3 +1,3 @@\033[0m\n", r.stdout)
        self.assertIn("\033[1m--- stages/00_first/server.cc\033[0m\n", r.stdout)

    def test_color_never_and_no_color_env_stay_plain(self):
        self.assertNotIn("\033[", self.run_tool("--color=never", "00", "01").stdout)
        r = self.run_tool("00", "01", env={"NO_COLOR": "1"})
        self.assertNotIn("\033[", r.stdout)

    def test_stages_may_be_named_by_directory_or_path(self):
        by_number = self.run_tool("00", "01").stdout
        self.assertEqual(self.run_tool("00_first", "stages/01_second/").stdout, by_number)

    def test_unknown_stage_exits_2_and_lists_the_known_ones(self):
        for name in ("07", "02", "02_unwritten", "common", "x"):
            r = self.run_tool("00", name)
            self.assertEqual(r.returncode, 2, name)
            self.assertIn("unknown stage '%s'" % name, r.stderr)
            self.assertIn("known stages: 00_first, 01_second", r.stderr)
            self.assertEqual(r.stdout, "")

    def test_stage_numbers_are_ascii_digits_only(self):
        # Fullwidth and superscript digits are digits to str.isdigit(); 5,000 digits
        # are too many for int(). Each is an unknown stage, not a traceback.
        for name in ("\uff11", "\uff10", "\u00b2", "9" * 5000):
            r = self.run_tool("00", name)
            self.assertEqual(r.returncode, 2, name[:10])
            self.assertIn("unknown stage '%s'" % name, r.stderr)
            self.assertNotIn("Traceback", r.stderr)
        self.assertEqual(self.run_tool("000", "001").stdout, self.run_tool("0", "1").stdout)

    def test_a_closed_stdout_is_an_error_not_a_traceback(self):
        for args in (["00", "01"], ["--help"]):
            r = self.run_tool(*args, stdout=None, preexec_fn=lambda: os.close(1))
            self.assertEqual(r.returncode, 1, args)
            self.assertEqual(r.stderr, "stagediff: error: stdout is closed\n", args)

    @unittest.skipUnless(os.path.exists("/dev/full"), "no /dev/full")
    def test_a_full_stdout_is_an_error_not_a_traceback(self):
        with open("/dev/full", "w") as full:
            for args in (["00", "01"], ["--help"]):
                r = self.run_tool(*args, stdout=full)
                self.assertEqual(r.returncode, 1, args)
                self.assertEqual(r.stderr, "stagediff: error: cannot write to stdout: "
                                 "No space left on device\n", args)

    def test_bad_arguments_exit_2_with_usage(self):
        for args in (["00"], [], ["00", "01", "02"], ["--color=sometimes", "00", "01"],
                     ["--context=-1", "00", "01"], ["--files=../x", "00", "01"],
                     ["--bogus", "00", "01"]):
            r = self.run_tool(*args)
            self.assertEqual(r.returncode, 2, args)
            self.assertIn("usage: stagediff", r.stderr, args)

    def test_help_exits_0_with_usage_on_stdout(self):
        r = self.run_tool("--help")
        self.assertEqual(r.returncode, 0)
        self.assertIn("usage: stagediff", r.stdout)
        self.assertIn("bazel run //tools/stagediff -- 03 04", r.stdout)

    def test_files_option_and_a_file_missing_on_one_side(self):
        r = self.run_tool("--files=README.md", "00", "01")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("--- stages/00_first/README.md\n+++ stages/01_second/README.md\n",
                      r.stdout)
        self.assertIn("+# Stage 01\n", r.stdout)

    def test_identical_stages_say_so_on_stderr(self):
        r = self.run_tool("01", "01")
        self.assertEqual(r.returncode, 0)
        self.assertEqual(r.stdout, "")
        self.assertIn("do not differ", r.stderr)


if __name__ == "__main__":
    unittest.main()
