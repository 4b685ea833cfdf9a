"""Unit tests of bench_all's arithmetic and flags: the parts that need no servers.

The measuring itself (building with -c opt, starting servers, echo_bench) runs
only under `bazel run //tools:bench_all`; what it writes is checked by
results_render_test.
"""

import importlib.util
import io
import os
import subprocess
import sys
import unittest
from contextlib import redirect_stderr

HERE = os.path.dirname(os.path.abspath(__file__))
SPEC = importlib.util.spec_from_file_location("bench_all", os.path.join(HERE, "bench_all.py"))
bench_all = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench_all)

PEERS = ["libevent", "libuv", "asio"]
SERVERS = ["05_epoll_et"] + PEERS


def cell(per_round):
    """A cell of one field, `mb_per_s`, with one run per round: {server: [values]}."""
    out = {}
    for name, values in per_round.items():
        runs = [{"round": r, "mb_per_s": v} for r, v in enumerate(values)]
        out[name] = {"runs": runs, "median": {"mb_per_s": bench_all.median(values)}}
    return out


class RatioTest(unittest.TestCase):
    def test_a_stage_is_paired_with_the_peer_of_the_best_median_round_by_round(self):
        c = cell({"05_epoll_et": [100, 200, 300], "libevent": [50, 100, 600],
                  "libuv": [100, 100, 100], "asio": [200, 100, 150]})
        # Best median: asio 150 (libevent 100, libuv 100); per round 0.5, 2.0, 2.0.
        self.assertEqual(bench_all.best_peer(c, "mb_per_s", SERVERS), ("asio", 150))
        self.assertEqual(bench_all.ratio(c, "05_epoll_et", "mb_per_s", SERVERS), 2.0)

    def test_the_best_peer_is_1x_itself_but_measured_against_the_others_when_excluded(self):
        c = cell({"05_epoll_et": [1, 1, 1], "libevent": [90, 100, 110],
                  "libuv": [100, 100, 100], "asio": [180, 200, 220]})
        self.assertEqual(bench_all.ratio(c, "asio", "mb_per_s", SERVERS), 1.0)
        self.assertEqual(bench_all.best_peer(c, "mb_per_s", SERVERS, exclude="asio"),
                         ("libevent", 100))
        self.assertEqual(bench_all.ratio(c, "asio", "mb_per_s", SERVERS, exclude="asio"),
                         2.0)
        self.assertEqual(bench_all.ratio(c, "libuv", "mb_per_s", SERVERS, exclude="libuv"),
                         100 / 200)


class BarTableTest(unittest.TestCase):
    def render(self, cells):
        out = []
        bench_all.bar_table(out.append, cells, SERVERS)
        return out

    def test_each_server_is_held_against_the_best_of_the_others_and_cleared_cells_counted(self):
        # 05 fastest in the first cell, level with libuv in the second (1.00x counts
        # as clearing), slowest in the third; fields differ by cell as in bench_all.
        fast = cell({"05_epoll_et": [120] * 3, "libevent": [100] * 3, "libuv": [110] * 3,
                     "asio": [90] * 3})
        level = cell({"05_epoll_et": [100] * 3, "libevent": [80] * 3, "libuv": [100] * 3,
                      "asio": [50] * 3})
        slow = cell({"05_epoll_et": [50] * 3, "libevent": [100] * 3, "libuv": [100] * 3,
                     "asio": [200] * 3})
        for c in (fast, level):
            for v in c.values():  # ping-pong cells are compared by messages/s
                v["median"] = {"messages_per_s": v["median"]["mb_per_s"]}
                for run in v["runs"]:
                    run["messages_per_s"] = run.pop("mb_per_s")
        lines = self.render({"pingpong_100": fast, "pingpong_1000": level,
                             "stream_16k": slow})
        rows = [line for line in lines if line.startswith("| ")]
        self.assertEqual(rows[0], "| cell | 05_epoll_et | libevent | libuv | asio |")
        self.assertEqual(rows[1], "| ping-pong, 100 connections | **1.09x** | 0.91x | "
                         "**1.10x** | 0.82x |")
        self.assertEqual(rows[2], "| ping-pong, 1,000 connections | **1.00x** | 0.80x | "
                         "**1.25x** | 0.50x |")
        # libevent and libuv tie at 100 as asio's bar: the first listed is taken.
        self.assertEqual(rows[3], "| 16 KiB stream, 1 connection | 0.25x | 0.50x | 0.50x "
                         "| **2.00x** |")
        self.assertEqual(rows[4], "| cleared | 2 of 3 | 0 of 3 | 2 of 3 | 1 of 3 |")

    def test_no_table_without_05_or_all_three_peers(self):
        c = cell({"05_epoll_et": [1], "libevent": [1], "libuv": [1], "asio": [1]})
        cells = {"stream_16k": c}
        out = []
        bench_all.bar_table(out.append, cells, ["05_epoll_et", "libevent", "libuv"])
        self.assertEqual(out, [])
        bench_all.bar_table(out.append, cells, PEERS)
        self.assertEqual(out, [])
        self.assertTrue(self.render(cells))


class StreamGridFlagsTest(unittest.TestCase):
    def usage_error(self, argv):
        with redirect_stderr(io.StringIO()) as err, self.assertRaises(SystemExit) as exit:
            bench_all.parse_args(argv)
        self.assertEqual(exit.exception.code, 2)
        return err.getvalue()

    def test_the_grid_takes_05_and_the_peers_unless_servers_are_named(self):
        self.assertEqual(bench_all.parse_args(["--stream-grid", "4"]).servers, SERVERS)
        self.assertEqual(bench_all.parse_args(
            ["--stream-grid", "4", "--servers", "libuv,04_epoll_mod"]).servers,
            ["04_epoll_mod", "libuv"])

    def test_bad_combinations_are_usage_errors_with_a_reason(self):
        self.assertIn("from 1 to 128", self.usage_error(["--stream-grid", "0"]))
        self.assertIn("from 1 to 128", self.usage_error(["--stream-grid", "129"]))
        self.assertIn("--render-only", self.usage_error(["--stream-grid", "2",
                                                          "--render-only"]))
        self.assertIn("writes no files", self.usage_error(["--stream-grid", "2",
                                                           "--out", "x"]))
        self.assertIn("unknown server", self.usage_error(["--stream-grid", "2",
                                                          "--servers", "nginx"]))

    def test_the_shifts_spread_over_a_page_and_are_all_ones_the_preload_accepts(self):
        shifts = [bench_all.heap_shift(i, 16) for i in range(16)]
        self.assertEqual(shifts, list(range(0, 4096, 256)))
        for n in (1, 3, 5, 7, 100, 127, 128):  # every --stream-grid N gets N shifts
            shifts = [bench_all.heap_shift(i, n) for i in range(n)]
            self.assertEqual(len(set(shifts)), n, n)
            for s in shifts:  # heap_shift.cc: 0, or a multiple of 16 from 32 up
                self.assertTrue(s == 0 or (s % 16 == 0 and 32 <= s < 4096), (n, s))


class ServersAndRenderOnlyFlagsTest(unittest.TestCase):
    usage_error = StreamGridFlagsTest.usage_error

    def test_an_empty_server_list_is_a_usage_error_not_every_server(self):
        # Every server is the full run, which rewrites docs/: never by an empty value.
        for value in ("", ",", " , "):
            self.assertIn("--servers names no server", self.usage_error(["--servers", value]))
            self.assertIn("--servers names no server", self.usage_error(
                ["--stream-grid", "2", "--servers", value]))
        self.assertEqual(bench_all.parse_args([]).servers,
                         [n for n, _, _ in bench_all.SERVERS])

    def test_render_only_refuses_the_flags_of_a_measurement(self):
        for flags in (["--quick"], ["--runs", "3"], ["--servers", "libuv"]):
            self.assertIn("--render-only measures nothing; it cannot go with %s" % flags[0],
                          self.usage_error(["--render-only"] + flags))
        args = bench_all.parse_args(["--render-only", "--out", "x"])
        self.assertTrue(args.render_only)
        self.assertEqual(args.out, "x")

    def test_counts_are_ascii_digits_only(self):
        for flag in ("--runs", "--stream-grid"):
            for value in ("+5", "1_0", " 3", "\uff13", "3.0", ""):
                self.assertIn("expected a whole number", self.usage_error([flag, value]),
                              (flag, value))
        self.assertEqual(bench_all.parse_args(["--runs", "3"]).runs, 3)


class StartServerTest(unittest.TestCase):
    """bench_all reads the servers' listening line with syscount's read_line (the
    two must agree on its result), and reports a server that prints anything else."""

    def setUp(self):
        self.tmp = os.environ.get("TEST_TMPDIR") or "/tmp"
        workspace = os.path.dirname(os.path.dirname(HERE))
        self.runner = bench_all.Runner({}, {}, bench_all.load_syscount(workspace),
                                       self.tmp)
        self.runner.server_cpu = None  # no taskset needed here

    def fake(self, name, line, stay=True):
        path = os.path.join(self.tmp, name)
        with open(path, "w") as f:
            f.write("#!/bin/sh\nprintf '%s'\n%s" % (line, "exec sleep 30\n" if stay else ""))
        os.chmod(path, 0o755)
        self.runner.paths[name] = path

    def test_port_from_the_listening_line(self):
        self.fake("good", "listening on 127.0.0.1:4242\\n")
        process = self.runner.start_server("good")
        try:
            self.assertEqual(process.port, 4242)
        finally:
            self.runner.kill(process)

    def test_another_line_is_a_failure(self):
        self.fake("bad", "hello\\n")
        with self.assertRaisesRegex(bench_all.Failure, "did not print .*it printed 'hello'"):
            self.runner.start_server("bad")

    def test_ctrl_c_while_it_starts_leaves_no_server(self):
        path = os.path.join(self.tmp, "slow")  # prints nothing; its shell stays
        with open(path, "w") as f:
            f.write("#!/bin/sh\nwhile :; do sleep 1; done\n")
        os.chmod(path, 0o755)
        self.runner.paths["slow"] = path
        real = self.runner.syscount.read_line
        started = []

        def interrupted(stream, timeout_s):
            started.append(True)
            raise KeyboardInterrupt

        self.runner.syscount.read_line = interrupted
        try:
            with self.assertRaises(KeyboardInterrupt):
                self.runner.start_server("slow")
        finally:
            self.runner.syscount.read_line = real
        self.assertTrue(started)
        out = subprocess.run(["pgrep", "-f", "^/bin/sh " + self.runner.paths["slow"]],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout
        self.assertEqual(out, "", "the server was left running")

    def test_no_whole_line_is_a_failure(self):
        self.fake("partial", "listening on 127.0.0.1:4242", stay=False)  # then EOF
        with self.assertRaisesRegex(bench_all.Failure, "did not print .*closed its stdout after"):
            self.runner.start_server("partial")


if __name__ == "__main__":
    sys.exit(unittest.main())
