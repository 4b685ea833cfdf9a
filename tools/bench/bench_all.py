#!/usr/bin/env python3
"""bench_all: every stage and every peer through one fixed matrix.

    bazel run //tools:bench_all                 # the full matrix (< 15 min): docs/
    bazel run //tools:bench_all -- --quick      # a ~2-minute smoke run: a temp dir
    bazel run //tools:bench_all -- --stream-grid 16   # streaming at 16 heap shifts

It builds every stage's server, the three peers (tools/peers: libevent, libuv,
Boost.Asio) and //tools:echo_bench with `bazel build -c opt`, runs them all through
the same matrix in one run, and writes

    docs/results.md             the tables, the targets of issue 5, the machine
    docs/images/results_*.svg   charts, rendered with gnuplot
    docs/results.json           every run's raw numbers

The results are produced by this tool only; never edit them by hand.

The matrix (see docs/tools.md for how each number is measured):
  - ping-pong, 64-byte messages, 1 / 100 / 1,000 / 10,000 connections;
  - streaming 16 KiB messages, 16 in flight, on 1 connection;
  - one 64 MiB message on 1 connection;
  - system calls per message (tools/syscount's method: strace -f -c, N and 2N
    messages, subtracted) at 50 connections and at 1;
  - server RSS with 1,000 and 10,000 idle connections.
Each throughput cell is the median of several runs (5, idle cells 3; 1 with
--quick), each against a fresh server, with server and client pinned to
different cores. The runs go in rounds; each round moves every server's heap by
the same number of bytes, a different number each round (heap_shift below).

Environment:
    BAZEL_STARTUP_OPTS  startup options for the nested bazel commands. Under
                        `bazel run` the default is the output base bench_all was
                        built in, so no second Bazel server starts.

--stream-grid N measures the streaming cell alone, for 05_epoll_et and the peers
(or --servers), at N heap shifts spread over a page, and prints the runs and a
summary instead of writing results: how the servers compare over every placement
of their buffers, not the few of the full matrix's rounds.

Exit status: 0 when the results were written (failed cells are marked in them;
for --stream-grid: when every run completed); 1 when nothing could be measured
(build failure, missing tools; for --stream-grid: any run failed); 2 on bad
usage; 130 when --stream-grid is interrupted (its summary is still printed).
"""

import argparse
import datetime
import importlib.machinery
import importlib.util
import json
import math
import os
import platform
import random
import re
import resource
import select
import shlex
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

# ---- What is measured ---------------------------------------------------------

# name, Bazel target, kind ("stage" or "peer"), short label for charts.
SERVERS = [
    ("00_blocking", "//stages/00_blocking:server", "stage"),
    ("01_threads", "//stages/01_threads:server", "stage"),
    ("02_poll", "//stages/02_poll:server", "stage"),
    ("03_epoll_lt", "//stages/03_epoll_lt:server", "stage"),
    ("04_epoll_mod", "//stages/04_epoll_mod:server", "stage"),
    ("05_epoll_et", "//stages/05_epoll_et:server", "stage"),
    ("libevent", "//tools/peers:libevent_server", "peer"),
    ("libuv", "//tools/peers:libuv_server", "peer"),
    ("asio", "//tools/peers:asio_server", "peer"),
]
ECHO_BENCH = "//tools:echo_bench"
HEAP_SHIFT = "//tools/bench:libheap_shift.so"  # preloaded: see heap_shift()
EVENT_STAGES = ("02_poll", "03_epoll_lt", "04_epoll_mod", "05_epoll_et")
BUFFER_SIZE = 16 * 1024  # every server's default --buffer-size
STREAM_SIZE = 16 * 1024  # the streaming cell's message size

PINGPONG_CONNECTIONS = (1, 100, 1000, 10000)
# One more ping-pong cell: 100 busy connections among a crowd of idle ones, the
# case a poll() loop pays for (it hands the kernel every fd on every call and then
# scans them all) and epoll does not (it reports the ready ones only).
CROWD_KEY = "pingpong_crowd"
CROWD_BUSY = 100
SYSCALL_CONNECTIONS = (50, 1)
IDLE_CONNECTIONS = (1000, 10000)

FULL = {
    "runs": 5,
    "duration_s": 1.5,        # measured window of each duration-mode run
    # Streaming on one loopback connection settles, for a second or so at a time, in
    # a fast or a slow state (about 1,300 or 1,050 MB/s in the runs that showed it,
    # most of all for servers that read until drained; see docs/decisions.md): a
    # longer window averages over both.
    "stream_duration_s": 3.0,
    "warmup_s": 0.5,
    "pipeline": 16,           # streaming: 16 KiB messages in flight
    "syscall_messages": {50: 5000, 1: 2000},  # N; the second run sends 2N
    "idle_runs": 3,
    "idle_connections": IDLE_CONNECTIONS,
    "crowd_idle": 10000,      # idle connections around the crowd cell's busy ones
    "crowd_runs": 3,          # the crowd cell's runs (rounds 1-3 of the traffic cells)
}
QUICK = {
    "runs": 1,
    "duration_s": 0.5,
    "stream_duration_s": 0.5,
    "warmup_s": 0.2,
    "pipeline": 16,
    "syscall_messages": {50: 1000, 1: 500},
    "idle_runs": 1,
    "idle_connections": (1000,),  # 10,000 idle clients take a while to connect
    "crowd_idle": 1000,
    "crowd_runs": 1,
}

GRID_SERVERS = ("05_epoll_et", "libevent", "libuv", "asio")  # --stream-grid's default
GRID_ROUNDS = 2            # --stream-grid's default number of rounds
STALL_TIMEOUT_S = 10       # echo_bench --stall-timeout
SERVER_START_TIMEOUT_S = 10
SERVER_STOP_TIMEOUT_S = 20
IDLE_SETTLE_S = 0.5        # after echo_bench says its hold began, before reading RSS
IDLE_HOLD_S = 600          # echo_bench --hold; SIGTERM ends it once it has served
IDLE_CONNECT_TIMEOUT_S = 120  # for all idle clients to connect and echo


def cannot_run(server, scenario, connections):
    """Why `server` is not run in this cell by design, or None."""
    if server == "00_blocking" and connections > 1:
        return "00_blocking serves one client at a time"
    return None


# ---- Small helpers ------------------------------------------------------------

START = time.monotonic()


def say(message):
    elapsed = time.monotonic() - START
    print("bench_all [%3d:%02d] %s" % (elapsed // 60, elapsed % 60, message),
          file=sys.stderr, flush=True)


class Failure(Exception):
    """A measurement failed; the message says why."""


def run_text(command, **kwargs):
    try:
        return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                              universal_newlines=True, **kwargs).stdout.strip()
    except OSError:
        return ""


def load_syscount(workspace):
    """tools/syscount as a module: bench_all counts system calls with its method and
    its code (strace -f -c, N and 2N messages, subtracted)."""
    path = os.path.join(workspace, "tools", "syscount")
    loader = importlib.machinery.SourceFileLoader("syscount", path)
    spec = importlib.util.spec_from_loader("syscount", loader)
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def proc_stat_cpu_s(pid):
    """utime + stime of the whole process (all threads, also exited ones), in s."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def proc_status(pid):
    """{"VmRSS": kib, "VmHWM": kib, "Threads": n} from /proc/PID/status."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "Threads"):
                out[key] = int(value.split()[0])
    return out


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


# ---- Building -----------------------------------------------------------------

def bazel_startup_options():
    """The nested bazel commands use the output base bench_all itself was built in
    (found in this script's runfiles path), unless BAZEL_STARTUP_OPTS says."""
    if "BAZEL_STARTUP_OPTS" in os.environ:
        return shlex.split(os.environ["BAZEL_STARTUP_OPTS"])
    here = os.path.abspath(__file__)  # the runfiles path, not the symlink's target
    if "/execroot/" in here:
        return ["--output_base=" + here.split("/execroot/", 1)[0]]
    return []


def build(workspace):
    if shutil.which("bazel") is None:
        raise Failure("bazel is not installed; tools/setup.sh installs it")
    startup = bazel_startup_options()
    targets = [t for _, t, _ in SERVERS] + [ECHO_BENCH, HEAP_SHIFT]
    say("building with -c opt: %s" % " ".join(targets))
    command = (["bazel"] + startup + ["build", "-c", "opt", "--symlink_prefix=/"] + targets)
    result = subprocess.run(command, cwd=workspace, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    if result.returncode != 0:
        sys.stderr.write(result.stderr[-5000:])
        raise Failure("the build failed: %s" % " ".join(shlex.quote(c) for c in command))
    info = subprocess.run(["bazel"] + startup + ["info", "-c", "opt", "bazel-bin"],
                          cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if info.returncode != 0:
        raise Failure("bazel info failed: %s" % info.stderr.strip()[-2000:])
    bin_dir = info.stdout.strip()

    def path_of(target):
        package, name = target[2:].split(":")
        return os.path.join(bin_dir, package, name)

    paths = {name: path_of(target) for name, target, _ in SERVERS}
    paths["echo_bench"] = path_of(ECHO_BENCH)
    for path in paths.values():
        if not os.access(path, os.X_OK):
            raise Failure("built, but %s is not there" % path)
    paths["heap_shift"] = path_of(HEAP_SHIFT)
    if not os.path.isfile(paths["heap_shift"]):
        raise Failure("built, but %s is not there" % paths["heap_shift"])
    return paths, compile_flags(workspace, startup)


def compile_flags(workspace, startup):
    """The optimization-related flags of one stage's compile command, as Bazel ran
    it (bazel aquery), so the results say exactly how the servers were built."""
    result = subprocess.run(
        ["bazel"] + startup + ["aquery", "-c", "opt",
                               "mnemonic(CppCompile, //stages/05_epoll_et:server)",
                               "--output=text"],
        cwd=workspace, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        universal_newlines=True)
    flags = re.findall(r"(?<=\s)(-O\d|-O[sg]|-g\d?|-DNDEBUG|-std=c\+\+\w+|-march=\S+|"
                       r"-fno-omit-frame-pointer|-D_FORTIFY_SOURCE=\d|-fstack-protector\S*)"
                       r"(?=[\s,\]])", result.stdout)
    seen = []
    for flag in flags:
        if flag not in seen:
            seen.append(flag)
    return " ".join(seen)


# ---- Machine ------------------------------------------------------------------

def machine_info(workspace, compile_flags_text, pinned):
    cpu = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    os_name = platform.system()
    try:
        with open("/etc/os-release") as f:
            for line in f:
                if line.startswith("PRETTY_NAME="):
                    os_name = line.split("=", 1)[1].strip().strip('"')
    except OSError:
        pass
    versions = {}
    for package in ("libevent-dev", "libuv1-dev", "libboost-dev", "gnuplot-nox", "strace"):
        versions[package] = run_text(["dpkg-query", "-W", "-f=${Version}", package]) or "?"
    commit = run_text(["git", "-C", workspace, "rev-parse", "--short", "HEAD"]) or "?"
    dirty = run_text(["git", "-C", workspace, "status", "--porcelain", "--", "stages",
                      "tools/peers", "tools/echo_bench", "tools/bench/heap_shift.cc"])
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": cpu,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "os": os_name,
        "compiler": run_text(["gcc", "--version"]).splitlines()[0] if shutil.which("gcc")
        else "?",
        "build": "bazel -c opt (%s)" % compile_flags_text if compile_flags_text
        else "bazel -c opt",
        "bazel": run_text(["bazel", "--version"]) or "?",
        "packages": versions,
        "commit": commit + (" with uncommitted changes in stages/ or tools/" if dirty else ""),
        "pinned": pinned,
        "loadavg_start": open("/proc/loadavg").read().split()[:3],
    }


# ---- Running one server and one client ----------------------------------------

class Runner:
    def __init__(self, paths, config, syscount, workdir):
        self.paths = paths
        self.config = config
        self.syscount = syscount
        self.workdir = workdir
        cores = sorted(os.sched_getaffinity(0))
        if len(cores) >= 2:
            self.server_cpu, self.client_cpu = cores[0], cores[1]
        else:
            self.server_cpu = self.client_cpu = None

    def pin(self, cpu):
        if cpu is None or shutil.which("taskset") is None:
            return []
        return ["taskset", "-c", str(cpu)]

    def start_server(self, name, shift=0):
        """Starts `name` on a free port, its heap moved by `shift` bytes."""
        err_path = os.path.join(self.workdir, "%s.stderr" % name)
        err = open(err_path, "w")
        command = self.pin(self.server_cpu) + [self.paths[name], "--host", "127.0.0.1",
                                               "--port", "0", "--quiet"]
        env = None
        if shift:
            env = dict(os.environ, ECHO_LADDER_HEAP_SHIFT=str(shift))
            env["LD_PRELOAD"] = " ".join(
                p for p in (self.paths["heap_shift"], os.environ.get("LD_PRELOAD")) if p)
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=err, env=env)
        err.close()
        process.err_path = err_path
        try:
            line, how = self.syscount.read_line(process.stdout, SERVER_START_TIMEOUT_S)
        except BaseException:  # Ctrl-C while it starts: leave no server behind
            self.kill(process)
            raise
        match = re.match(r"^listening on (.*):(\d+)$", line) if how == "line" else None
        if not match:
            self.kill(process)
            raise Failure("%s did not print `listening on HOST:PORT` (%s): %s" % (
                name, self.syscount.describe_line(line, how, SERVER_START_TIMEOUT_S),
                self.stderr_tail(process)))
        process.port = int(match.group(2))
        return process

    @staticmethod
    def stderr_tail(process):
        try:
            with open(process.err_path) as f:
                text = f.read().strip()
        except OSError:
            return ""
        return text[-300:]

    @staticmethod
    def kill(process):
        if process.poll() is None:
            process.kill()
        process.wait()

    def stop_server(self, name, process):
        """SIGTERM; the contract says exit 0 with a summary."""
        if process.poll() is not None:
            raise Failure("%s had exited (status %d) before it was stopped: %s"
                          % (name, process.returncode, self.stderr_tail(process)))
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=SERVER_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.kill(process)
            raise Failure("%s did not exit within %d s of SIGTERM"
                          % (name, SERVER_STOP_TIMEOUT_S))
        if process.returncode != 0:
            raise Failure("%s exited with status %d after SIGTERM: %s"
                          % (name, process.returncode, self.stderr_tail(process)))

    def echo_bench(self, port, connections, size, pipeline=1, messages=None):
        c = self.config
        command = self.pin(self.client_cpu) + [
            self.paths["echo_bench"], "--host", "127.0.0.1", "--port", str(port),
            "--connections", str(connections), "--size", str(size),
            "--pipeline", str(pipeline), "--stall-timeout", str(STALL_TIMEOUT_S), "--json"]
        if messages is None:
            duration = c.get("stream_duration_s", c["duration_s"]) if pipeline > 1 \
                else c["duration_s"]
            command += ["--duration", str(duration), "--warmup", str(c["warmup_s"])]
            timeout = duration + c["warmup_s"] + 4 * STALL_TIMEOUT_S + 60
        else:
            command += ["--messages", str(messages)]
            timeout = 4 * STALL_TIMEOUT_S + 120
        try:
            result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                    universal_newlines=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise Failure("echo_bench did not finish within %d s" % timeout)
        try:
            report = json.loads(result.stdout)
        except ValueError:
            raise Failure("echo_bench failed (exit %d): %s"
                          % (result.returncode, result.stderr.strip()[-300:]))
        if result.returncode != 0 or not report.get("ok"):
            raise Failure("echo_bench: %s" % (report.get("error")
                                             or result.stderr.strip()[-300:]))
        return report

    def traffic_run(self, name, connections, size, pipeline=1, messages=None, shift=0,
                    idle=0):
        """One run against a fresh server, its heap moved by `shift` bytes, with `idle`
        more connections held open and idle all along; the numbers of one cell run."""
        process = self.start_server(name, shift)
        sampler = CpuSampler(process.pid)
        crowd = None
        try:
            if idle:
                crowd = self.start_crowd(process.port, idle)
            sampler.start()
            started = time.monotonic()
            try:
                report = self.echo_bench(process.port, connections, size, pipeline,
                                         messages)
            except Failure as failure:
                if process.poll() is not None:
                    raise Failure("%s died (status %d) during the run; %s"
                                  % (name, process.returncode, failure))
                raise
            finally:
                sampler.stop()
            status = proc_status(process.pid)
            if crowd is not None:
                self.end_crowd(crowd)
        except BaseException:
            if crowd is not None:
                self.kill(crowd)
            self.kill(process)
            raise
        self.stop_server(name, process)
        # The measured window, on our clock: echo_bench connects everything, warms
        # up, then measures (its start is a few ms after `started`).
        window_start = started + report["connect_total_s"] + report["warmup_s"]
        window_s = report["window_s"]
        cpu_s = sampler.between(window_start, window_start + window_s)
        in_window = report["messages"]
        return {
            "messages_per_s": report["messages_per_s"],
            "mb_per_s": report["mb_per_s"],
            "p50_us": report["latency_ns"]["p50"] / 1e3,
            "p99_us": report["latency_ns"]["p99"] / 1e3,
            "window_s": window_s,
            "messages": in_window,
            "messages_verified": report["messages_verified"],
            # The server's CPU time in the measured window, per message completed in
            # it (connecting, warming up and closing are left out).
            "cpu_us_per_message": cpu_s * 1e6 / in_window if in_window else None,
            "server_cpu_s": cpu_s,
            # The share of the window the server spent on a CPU: well below 1, the
            # client or the machine set the pace, not the server.
            "server_busy": cpu_s / window_s if window_s > 0 else None,
            # echo_bench's own CPU time in the same window (it reads it itself), per
            # message and as a share of its one core: near 100%, the client set the
            # pace as much as the server did.
            "client_cpu_us_per_message": report["cpu_s"] * 1e6 / in_window
            if in_window else None,
            "client_busy": report["cpu_s"] / window_s if window_s > 0 else None,
            "rss_kib": status.get("VmRSS"),
            "peak_rss_kib": status.get("VmHWM"),
            "threads": status.get("Threads"),
            "connect_retries": report["connect_retries"],
        }

    def syscall_run(self, name, connections):
        n = self.config["syscall_messages"][connections]
        first = self.syscount.measure(self.paths[name], self.paths["echo_bench"], name,
                                      connections, n, 64, self.workdir)
        second = self.syscount.measure(self.paths[name], self.paths["echo_bench"], name,
                                       connections, 2 * n, 64, self.workdir)
        rows1 = self.syscount.group_counts(first)
        rows2 = self.syscount.group_counts(second)
        per = {}
        for row in rows1:
            value = (rows2[row][0] - rows1[row][0]) / n
            per[row] = 0.0 if abs(value) < 0.005 else round(value, 3)
        return {"messages": [n, 2 * n], "per_message": per}

    def start_crowd(self, port, connections):
        """echo_bench (pinned to the client core) holding `connections` connections
        to the server open and idle, each after echoing one 64-byte message; returns
        once echo_bench's stderr says that its hold has begun."""
        command = self.pin(self.client_cpu) + [
            self.paths["echo_bench"], "--host", "127.0.0.1", "--port", str(port),
            "--connections", str(connections), "--size", "64",
            "--messages", str(connections), "--hold", str(IDLE_HOLD_S),
            "--stall-timeout", str(STALL_TIMEOUT_S), "--json"]
        crowd = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        line, how = self.syscount.read_line(crowd.stderr, IDLE_CONNECT_TIMEOUT_S)
        holding = "echo_bench: holding %d connections" % connections
        if how != "line" or not line.startswith(holding):
            self.kill(crowd)
            raise Failure("echo_bench did not hold %d idle connections (%s): %s" % (
                connections, self.syscount.describe_line(line, how, IDLE_CONNECT_TIMEOUT_S),
                self.crowd_error(crowd)))
        return crowd

    def end_crowd(self, crowd):
        """Ends the hold with SIGTERM (every connection closes cleanly) and checks
        that no idle connection was closed or sent anything meanwhile."""
        if crowd.poll() is not None:
            raise Failure("echo_bench's idle connections closed too early: %s"
                          % self.crowd_error(crowd))
        crowd.send_signal(signal.SIGTERM)
        try:
            out, _ = crowd.communicate(timeout=4 * STALL_TIMEOUT_S + 60)
        except subprocess.TimeoutExpired:
            raise Failure("echo_bench did not close its idle connections in time")
        try:
            report = json.loads(out.decode() or "{}")
        except ValueError:
            report = {}
        if crowd.returncode != 0 or not report.get("ok"):
            raise Failure("echo_bench holding idle connections: %s"
                          % (report.get("error") or "exit %d" % crowd.returncode))

    @staticmethod
    def crowd_error(crowd):
        """The end of what a finished (or killed) echo_bench wrote on stderr."""
        if crowd.poll() is None:
            return ""
        return crowd.stderr.read().decode(errors="replace").strip()[-300:]

    def idle_run(self, name, connections):
        """RSS of a fresh server before and after `connections` clients connect, each
        echo one 64-byte message and then sit idle (echo_bench --hold)."""
        process = self.start_server(name)
        crowd = None
        try:
            time.sleep(0.1)
            before = proc_status(process.pid)
            crowd = self.start_crowd(process.port, connections)
            time.sleep(IDLE_SETTLE_S)
            if process.poll() is not None:
                raise Failure("%s died (status %d) holding idle connections: %s"
                              % (name, process.returncode, self.stderr_tail(process)))
            after = proc_status(process.pid)
            self.end_crowd(crowd)
        except BaseException:
            if crowd is not None:
                self.kill(crowd)
            self.kill(process)
            raise
        self.stop_server(name, process)
        return {
            "rss_start_kib": before["VmRSS"],
            "rss_idle_kib": after["VmRSS"],
            "threads": after.get("Threads"),
            "per_connection_kib": (after["VmRSS"] - before["VmRSS"]) / connections,
        }


class CpuSampler:
    """Samples a process's CPU time (/proc/PID/stat) every 20 ms in a thread, so the
    CPU time of any interval of a run can be read afterwards."""

    PERIOD_S = 0.02

    def __init__(self, pid):
        import threading
        self.pid = pid
        self.samples = []  # (monotonic time, cpu seconds)
        self.done = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def sample(self):
        try:
            self.samples.append((time.monotonic(), proc_stat_cpu_s(self.pid)))
        except OSError:
            pass  # the process is gone: the run fails anyway

    def run(self):
        while not self.done.wait(self.PERIOD_S):
            self.sample()

    def start(self):
        self.sample()
        self.thread.start()

    def stop(self):
        self.done.set()
        self.thread.join()
        self.sample()

    def at(self, t):
        """CPU seconds at time t, interpolated between the samples around it."""
        s = self.samples
        if not s:
            return 0.0
        if t <= s[0][0]:
            return s[0][1]
        for (t0, c0), (t1, c1) in zip(s, s[1:]):
            if t <= t1:
                return c0 + (c1 - c0) * (t - t0) / (t1 - t0) if t1 > t0 else c1
        return s[-1][1]

    def between(self, t0, t1):
        return self.at(t1) - self.at(t0)


# ---- The matrix ---------------------------------------------------------------

def pingpong_cells(config):
    """(key, busy connections, idle connections, title, short title) of every
    ping-pong cell, in the order they run and are shown."""
    out = [("pingpong_%d" % c, c, 0, "%s connection%s" % ("{:,}".format(c), "" if c == 1
                                                           else "s"),
            "{:,} conn.".format(c)) for c in PINGPONG_CONNECTIONS]
    idle = config.get("crowd_idle")
    if idle:
        out.append((CROWD_KEY, CROWD_BUSY, idle,
                    "%d busy among %s idle connections" % (CROWD_BUSY, "{:,}".format(idle)),
                    "%d + {:,} idle".format(idle) % CROWD_BUSY))
    return out


def scenarios(config):
    """(key, title, connections, size, pipeline, messages, idle) of every traffic cell
    group, in the order they run; messages None: a duration-mode run; idle: more
    connections held open and idle during the run."""
    out = []
    for key, c, idle, title, _ in pingpong_cells(config):
        out.append((key, "ping-pong 64 B, " + title, c, 64, 1, None, idle))
    out.append(("stream_16k", "streaming 16 KiB, %d in flight, 1 connection"
                % config["pipeline"], 1, STREAM_SIZE, config["pipeline"], None, 0))
    out.append(("transfer_64m", "one 64 MiB message, 1 connection", 1, 64 * 1024 * 1024, 1,
                1, 0))
    return out


def heap_shift(r, runs):
    """Bytes by which round r of `runs` moves every server's heap
    (tools/bench/heap_shift.cc): the rounds spread evenly over a 4 KiB page, so
    that a cell's median is taken over several placements of the servers' buffers
    within their pages instead of the one its command line happens to give (see
    docs/decisions.md, "Comparing 05 with the peers"). A multiple of 16; 0 or at
    least 32, the smallest block glibc's malloc hands out."""
    shift = (16 * round(r * 256 / runs)) % 4096
    return 32 if shift == 16 else shift


def round_order(servers, r):
    """The servers in the order round r runs them: round 0 in the listed order,
    every later round shuffled (the same shuffle every time bench_all runs), so
    that no server always runs first, or always right after the same neighbour
    (10,000 threads of 01_threads, say)."""
    order = list(servers)
    if r > 0:
        random.Random(r).shuffle(order)
    return order


def run_matrix(runner, servers, config, results):
    cells = results["cells"]
    # Runs interleave (run 1 of every server, then run 2, ...) so that a change in
    # the shared machine's load hits every server alike; each run records its
    # round, so that ratios can compare runs of the same round (see paired_ratio).
    for key, title, connections, size, pipeline, messages, idle in scenarios(config):
        say("== %s" % title)
        for name in servers:
            reason = cannot_run(name, key, connections)
            cells[key][name] = {"runs": [], "errors": [], "na": reason}
        runs = config["crowd_runs"] if idle else config["runs"]
        for r in range(runs):
            for name in round_order(servers, r):
                cell = cells[key][name]
                if cell["na"]:
                    continue
                if len(cell["errors"]) >= 2 and not cell["runs"]:
                    continue  # failed twice: do not spend the time again
                shift = heap_shift(r, config["runs"])
                try:
                    run = runner.traffic_run(name, connections, size, pipeline, messages,
                                             shift, idle)
                except (Failure, OSError) as failure:  # OSError: e.g. a reset
                    cell["errors"].append(str(failure))
                    say("%s %s run %d: FAILED: %s" % (name, key, r + 1, failure))
                    continue
                run["round"] = r
                run["heap_shift"] = shift
                cell["runs"].append(run)
                say("%s %s run %d/%d: %s msg/s, %.1f MB/s, p99 %s, %.2f us CPU/msg"
                    % (name, key, r + 1, runs,
                       "{:,.0f}".format(run["messages_per_s"]), run["mb_per_s"],
                       fmt_us(run["p99_us"]), run["cpu_us_per_message"] or 0))
        for name in servers:
            summarize(cells[key][name])

    say("== system calls per message (strace -f -c, tools/syscount's method)")
    for connections in SYSCALL_CONNECTIONS:
        key = "syscalls_%d" % connections
        for name in servers:
            reason = cannot_run(name, key, connections)
            cell = cells[key][name] = {"runs": [], "errors": [], "na": reason}
            if reason:
                continue
            try:
                cell["runs"].append(runner.syscall_run(name, connections))
            except (Failure, runner.syscount.Failure, OSError) as failure:
                cell["errors"].append(str(failure))
                say("%s %s: FAILED: %s" % (name, key, failure))
                continue
            per = cell["runs"][0]["per_message"]
            say("%s %d conn.: %.2f syscalls/msg (epoll_ctl %.2f)"
                % (name, connections, per["total"], per["epoll_ctl"]))
            cell["median"] = dict(per)

    say("== RSS with idle connections")
    for connections in config["idle_connections"]:
        key = "idle_%d" % connections
        for name in servers:
            reason = cannot_run(name, key, connections)
            cells[key][name] = {"runs": [], "errors": [], "na": reason}
        for r in range(config["idle_runs"]):
            for name in round_order(servers, r):
                cell = cells[key][name]
                if cell["na"] or (len(cell["errors"]) >= 2 and not cell["runs"]):
                    continue
                try:
                    run = runner.idle_run(name, connections)
                except (Failure, OSError) as failure:  # OSError: e.g. a reset
                    cell["errors"].append(str(failure))
                    say("%s %s run %d: FAILED: %s" % (name, key, r + 1, failure))
                    continue
                cell["runs"].append(run)
                say("%s %d idle: RSS %s -> %s, %.1f KiB per connection"
                    % (name, connections, fmt_kib(run["rss_start_kib"]),
                       fmt_kib(run["rss_idle_kib"]), run["per_connection_kib"]))
        for name in servers:
            summarize(cells[key][name])


def summarize(cell):
    """The median of every number over the successful runs."""
    if not cell["runs"]:
        return
    keys = [k for k in cell["runs"][0].keys() if k not in ("round", "heap_shift")]
    cell["median"] = {k: median([r[k] for r in cell["runs"]]) for k in keys}


# ---- Formatting ---------------------------------------------------------------

def fmt_us(us):
    if us is None:
        return "-"
    if us < 1000:
        return "%.0f µs" % us
    if us < 1e6:
        return "%.2f ms" % (us / 1e3)
    return "%.2f s" % (us / 1e6)


def fmt_kib(kib):
    if kib is None:
        return "-"
    if kib < 10 * 1024:
        return "%.0f KiB" % kib
    return "%.1f MiB" % (kib / 1024)


def fmt_int(value):
    return "-" if value is None else "{:,.0f}".format(value)


def fmt_cpu(us):
    if us is None:
        return "-"
    return "%.2f µs" % us if us < 1000 else "%.1f ms" % (us / 1e3)


def fmt_busy(share):
    return "-" if share is None else "%.0f%%" % (100 * share)


def fmt_big(value):
    return fmt_int(value) if value is not None and value >= 1000 else fmt_num(value, 1)


def fmt_num(value, digits=2):
    return "-" if value is None else "%.*f" % (digits, value)


class Notes:
    """Footnotes for cells that were not run or failed."""

    def __init__(self):
        self.items = []
        self.seen = set()  # cells already marked in the current row

    def new_row(self):
        self.seen = set()

    def first_in_row(self, cell):
        """True the first time a cell is asked about in a row: only its first column
        carries the marker, the rest stay empty."""
        if id(cell) in self.seen:
            return False
        self.seen.add(id(cell))
        return True

    def add(self, text):
        if text not in self.items:
            self.items.append(text)
        return "[%d]" % (self.items.index(text) + 1)


def cell_value(cell, field, fmt, notes):
    """The median, or a marker that says why there is none (in the row's first column
    that shows this cell; its other columns stay empty)."""
    if cell is None:
        return "-"
    if cell.get("na"):
        return "n/a " + notes.add(cell["na"]) if notes.first_in_row(cell) else ""
    if "median" not in cell:
        if not notes.first_in_row(cell):
            return ""
        return "**failed** " + notes.add(cell["errors"][0] if cell["errors"] else "failed")
    text = fmt(cell["median"].get(field))
    if cell["errors"] and notes.first_in_row(cell):
        text += " " + notes.add("%d of %d runs failed: %s" % (
            len(cell["errors"]), len(cell["errors"]) + len(cell["runs"]), cell["errors"][0]))
    return text


def best_peer(cells, field, servers, lower_is_better=False, exclude=None):
    """(name, value) of the best peer in a cell group (highest, or lowest), leaving
    out the peer named `exclude`."""
    best = None
    for name in servers:
        if kind_of(name) != "peer" or name == exclude:
            continue
        m = cells.get(name, {}).get("median")
        if not m or m.get(field) is None:
            continue
        better = m[field] < best[1] if best and lower_is_better else \
            not best or m[field] > best[1]
        if better:
            best = (name, m[field])
    return best


def kind_of(name):
    return {n: k for n, _, k in SERVERS}[name]


def paired_ratios(cells, name, peer, field):
    """name's result over peer's in each round both completed: runs of one round
    are seconds apart, so a change in the shared machine's load cancels out."""
    def by_round(server):
        return {r["round"]: r[field] for r in cells.get(server, {}).get("runs", [])
                if "round" in r and r.get(field) is not None}
    mine, theirs = by_round(name), by_round(peer)
    return [mine[k] / theirs[k] for k in sorted(mine) if k in theirs and theirs[k]]


def ratio(cells, name, field, servers, lower_is_better=False, exclude=None):
    """name against the best peer (the peer with the best median; `exclude` is left
    out of the choice): the median of the paired ratios of the rounds, or, for
    results recorded without rounds, the ratio of the medians."""
    best = best_peer(cells, field, servers, lower_is_better, exclude)
    m = cells.get(name, {}).get("median")
    if not best or not m or m.get(field) is None or best[1] == 0:
        return None
    if name == best[0]:
        return 1.0
    paired = paired_ratios(cells, name, best[0], field)
    return median(paired) if paired else m[field] / best[1]


def fmt_ratio(value):
    return "-" if value is None else "%.2fx" % value


# ---- Charts (gnuplot) ---------------------------------------------------------

STAGE_COLORS = ["#c6dbef", "#9ecae1", "#6baed6", "#4292c6", "#2171b5", "#08519c"]
PEER_COLORS = ["#fdae6b", "#e6550d", "#a63603"]


def color_of(name):
    names = [n for n, _, _ in SERVERS]
    stages = [n for n, _, k in SERVERS if k == "stage"]
    peers = [n for n, _, k in SERVERS if k == "peer"]
    if name in stages:
        return STAGE_COLORS[stages.index(name) % len(STAGE_COLORS)]
    return PEER_COLORS[peers.index(name) % len(PEER_COLORS)] if name in names else "#999999"


def gnuplot_histogram(path, title, ylabel, groups, series, values, logscale=False,
                      stacked=False):
    """A clustered (or row-stacked) bar chart. groups: x labels; series: bar names;
    values[group][series] (None: missing); logscale: False or the y axis' minimum."""
    workdir = os.path.dirname(path)
    data = os.path.join(workdir, os.path.basename(path) + ".dat")
    with open(data, "w") as f:
        f.write("group " + " ".join('"%s"' % s for s in series) + "\n")
        for g in groups:
            row = []
            for s in series:
                v = values.get(g, {}).get(s)
                row.append("?" if v is None else repr(float(v)))
            f.write('"%s" %s\n' % (g, " ".join(row)))
    lines = [
        'set terminal svg size 960,420 noenhanced font "sans,11" background rgb "white"',
        'set output "%s"' % path,
        'set title "%s"' % title,
        'set ylabel "%s"' % ylabel,
        "set datafile missing '?'",
        "set style data histograms",
        "set style histogram rowstacked" if stacked else
        "set style histogram clustered gap 1",
        "set style fill solid 0.9 border rgb '#333333'",
        "set boxwidth 0.75" if stacked else "set boxwidth 0.9",
        "set key outside right top vertical",
        "set grid ytics lc rgb '#dddddd'",
        'set xtics nomirror font ",9"' if stacked else "set xtics nomirror",
        "set ytics nomirror",
        "set border 3",
        "set yrange [%s:*]" % (logscale or "0"),
    ]
    if logscale:
        lines += ["set logscale y", 'set format y "%g"']
    plots = []
    for i, s in enumerate(series):
        color = SERIES_COLORS.get(s) or color_of(s)
        source = "'%s'" % data if i == 0 else "''"
        plots.append("%s using %d%s title columnheader(%d) lc rgb '%s'"
                     % (source, i + 2, ":xtic(1)" if i == 0 else "", i + 2, color))
    lines.append("plot " + ", \\\n  ".join(plots))
    script = data + ".gp"
    with open(script, "w") as f:
        f.write("\n".join(lines) + "\n")
    result = subprocess.run(["gnuplot", script], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, universal_newlines=True)
    os.unlink(data)
    os.unlink(script)
    if result.returncode != 0:
        raise Failure("gnuplot failed for %s: %s" % (path, result.stderr.strip()[-500:]))


SERIES_COLORS = {
    "epoll_wait": "#6baed6", "epoll_ctl": "#de2d26", "read/recv/recvfrom": "#31a354",
    "write/send/sendto": "#a1d99b", "poll": "#9e9ac8", "other": "#bdbdbd",
    "1,000 idle": "#6baed6", "10,000 idle": "#08519c",
    "16 KiB x16": "#6baed6", "64 MiB": "#08519c",
}


def make_charts(results, servers, images):
    """Renders the charts; returns {chart: relative file name} (missing if gnuplot
    is not installed or fails: the tables still stand)."""
    if shutil.which("gnuplot") is None:
        say("gnuplot is not installed (Debian's gnuplot-nox): no charts")
        return {}
    cells = results["cells"]
    os.makedirs(images, exist_ok=True)
    charts = {}

    def median_of(key, name, field):
        m = cells.get(key, {}).get(name, {}).get("median")
        return None if not m else m.get(field)

    def ms(us):
        return None if us is None else us / 1e3

    pp_cells = pingpong_cells(results["config"])
    pp_groups = [short for _, _, _, _, short in pp_cells]
    specs = [
        ("pingpong", "Ping-pong, 64-byte messages: messages per second (higher is better)",
         "messages/s", pp_groups, servers,
         {short: {s: median_of(key, s, "messages_per_s") for s in servers}
          for key, _, _, _, short in pp_cells}, False, False),
        ("latency", "Ping-pong, 64-byte messages: p99 round trip (lower is better)",
         "p99 latency (ms, log scale)", pp_groups, servers,
         {short: {s: ms(median_of(key, s, "p99_us")) for s in servers}
          for key, _, _, _, short in pp_cells}, "0.01", False),
        ("cpu", "Server CPU time per ping-pong message (lower is better)",
         "µs of CPU per message", pp_groups, servers,
         {short: {s: median_of(key, s, "cpu_us_per_message") for s in servers}
          for key, _, _, _, short in pp_cells}, False, False),
        ("streaming", "Streaming on one connection: MB/s of echoed payload",
         "MB/s", ["16 KiB x16", "64 MiB"], servers,
         {"16 KiB x16": {s: median_of("stream_16k", s, "mb_per_s") for s in servers},
          "64 MiB": {s: median_of("transfer_64m", s, "mb_per_s") for s in servers}},
         False, False),
    ]
    rows = ["epoll_wait", "epoll_ctl", "read/recv/recvfrom", "write/send/sendto", "poll",
            "other"]
    sys_values = {}
    for s in servers:
        m = cells.get("syscalls_50", {}).get(s, {}).get("median")
        sys_values[s] = {r: (None if not m else max(0.0, m.get(r, 0.0))) for r in rows}
    specs.append(("syscalls", "System calls per echoed 64-byte message, 50 connections",
                  "system calls per message", servers, rows, sys_values, False, True))
    idle_values = {}
    for s in servers:
        idle_values[s] = {
            "1,000 idle": median_of("idle_1000", s, "per_connection_kib"),
            "10,000 idle": median_of("idle_10000", s, "per_connection_kib")}
    specs.append(("memory", "Server RSS per idle connection (lower is better)",
                  "KiB per connection", servers, ["1,000 idle", "10,000 idle"],
                  idle_values, False, False))

    for name, title, ylabel, groups, series, values, logscale, stacked in specs:
        file_name = "results_%s.svg" % name
        try:
            gnuplot_histogram(os.path.join(images, file_name), title, ylabel, groups,
                              series, values, logscale, stacked)
            charts[name] = file_name
        except Failure as failure:
            say(str(failure))
    return charts


# ---- docs/results.md ----------------------------------------------------------

def check_targets(results, servers):
    """Issue 5's targets, each (target, measured, holds: True/False/None)."""
    cells = results["cells"]
    out = []

    def m(key, name, field):
        c = cells.get(key, {}).get(name, {})
        return None if "median" not in c else c["median"].get(field)

    # Every event-driven stage holds 10,000 connections with every echo verified.
    for name in EVENT_STAGES:
        if name not in servers:
            continue
        c = cells.get("pingpong_10000", {}).get(name)
        if c is None:
            continue  # not measured in this run
        ok = bool(c.get("runs")) and not c.get("errors")
        out.append(("%s holds 10,000 connections, every echo verified" % name,
                    "%d of %d runs verified" % (len(c.get("runs", [])),
                                                len(c.get("runs", [])) + len(c.get("errors", []))),
                    ok))

    a, b = m("pingpong_100", "05_epoll_et", "messages_per_s"), \
        m("pingpong_100", "03_epoll_lt", "messages_per_s")
    if a is not None and b:
        out.append(("05 >= 1.3x 03, msg/s, ping-pong 100 connections",
                    "%.2fx (%s vs %s msg/s)" % (a / b, fmt_int(a), fmt_int(b)), a / b >= 1.3))
    for key, field, label in (("pingpong_100", "messages_per_s", "ping-pong 100 connections"),
                              ("pingpong_1000", "messages_per_s",
                               "ping-pong 1,000 connections"),
                              ("stream_16k", "mb_per_s", "streaming MB/s, 1 connection")):
        best = best_peer(cells.get(key, {}), field, servers)
        v = m(key, "05_epoll_et", field)
        if best and v is not None:
            r = ratio(cells.get(key, {}), "05_epoll_et", field, servers)
            paired = paired_ratios(cells.get(key, {}), "05_epoll_et", best[0], field)
            spread = "; per round %.2fx to %.2fx" % (min(paired), max(paired)) \
                if len(paired) > 1 else ""
            out.append(("05 >= 1.0x best peer, %s" % label,
                        "%.2fx (medians %s vs %s %s %s%s)" % (
                            r, fmt_big(v), best[0], fmt_big(best[1]),
                            "msg/s" if field == "messages_per_s" else "MB/s", spread),
                        r >= 1.0))

    v = m("syscalls_50", "05_epoll_et", "total")
    if v is not None:
        out.append(("05: at most 2.2 syscalls/message at 50 connections", "%.2f" % v,
                    v <= 2.2))
    for name, key, floor in (("01_threads", "syscalls_50", 2), ("01_threads", "syscalls_1", 2),
                             ("02_poll", "syscalls_1", 4), ("03_epoll_lt", "syscalls_1", 8),
                             ("04_epoll_mod", "syscalls_1", 6)):
        v = m(key, name, "total")
        if v is not None:
            conns = key.split("_")[1]
            out.append(("%s at its floor of %d syscalls/message (%s connection%s)"
                        % (name, floor, conns, "" if conns == "1" else "s"),
                        "%.2f" % v, abs(v - floor) <= 0.1))
    limit = 2 + BUFFER_SIZE / 1024
    for name in EVENT_STAGES:
        for n in IDLE_CONNECTIONS:
            v = m("idle_%d" % n, name, "per_connection_kib")
            if v is not None:
                out.append(("%s: RSS per idle connection < 2 KiB + buffer (%d KiB), %s idle"
                            % (name, limit, "{:,}".format(n)), "%.1f KiB" % v, v < limit))
    return out


# The cells of the "05 >= 1.0x the best peer" targets: (cell key, field, title).
BAR_CELLS = (("pingpong_100", "messages_per_s", "ping-pong, 100 connections"),
             ("pingpong_1000", "messages_per_s", "ping-pong, 1,000 connections"),
             ("stream_16k", "mb_per_s", "16 KiB stream, 1 connection"))


def bar_table(w, cells, servers):
    """The "1.0x the best peer" bar applied to each peer too, against the best of
    the other two, by the same paired method: how often an established library
    clears the bar that the targets set for 05."""
    peers = [s for s in servers if kind_of(s) == "peer"]
    if "05_epoll_et" not in servers or len(peers) < 3:
        return
    names = ["05_epoll_et"] + peers
    rows = []
    for key, field, title in BAR_CELLS:
        c = cells.get(key, {})
        values = [ratio(c, n, field, servers, exclude=n) for n in names]
        if all(v is not None for v in values):
            rows.append((title, values))
    if not rows:
        return
    w("### The same bar, applied to the peers")
    w("")
    w("Each server against the best of the *other* peers in the cell (for 05, the best "
      "of all three), by the same paired method as the targets: at 1.00x or above it "
      "clears the bar \"at least 1.0x the best peer\" itself. The last row counts the "
      "cells where each one does. The libraries make the same system calls per "
      "message as 05 (System calls per message, below), so this shows how much of "
      "passing or failing that bar is the design and how much is which server had the "
      "better seconds of this run.")
    w("")
    w("| cell | " + " | ".join(names) + " |")
    w("|---|" + "---:|" * len(names))
    for title, values in rows:
        w("| %s | %s |" % (title, " | ".join(
            ("**%s**" if v >= 1.0 else "%s") % fmt_ratio(v) for v in values)))
    w("| cleared | %s |" % " | ".join(
        "%d of %d" % (sum(1 for _, vs in rows if vs[i] >= 1.0), len(rows))
        for i in range(len(names))))
    w("")


def ratio_table(w, cells, servers, stages, notes, groups, best_label, fmt_best,
                lower_is_better=False):
    """Writes a table with a column per (cell key, field, title) in `groups`: a first
    row naming the best peer of each cell (fmt_best(value, field) formats its value),
    then each stage's ratio to it, or why the stage has none."""
    w("| stage | " + " | ".join(g[2] for g in groups) + " |")
    w("|---|" + "---:|" * len(groups))
    row = [best_label]
    for key, field, _ in groups:
        best = best_peer(cells.get(key, {}), field, servers, lower_is_better)
        row.append("-" if not best else "%s %s" % (best[0], fmt_best(best[1], field)))
    w("| " + " | ".join(row) + " |")
    for name in stages:
        notes.new_row()
        row = [name]
        for key, field, _ in groups:
            cell = cells.get(key, {}).get(name)
            if cell is None or "median" not in cell:
                row.append(cell_value(cell, field, str, notes))
            else:
                row.append(fmt_ratio(ratio(cells.get(key, {}), name, field, servers,
                                           lower_is_better)))
        w("| " + " | ".join(row) + " |")


def write_markdown(path, results, servers, charts, images_rel):
    meta = results["meta"]
    cells = results["cells"]
    config = results["config"]
    notes = Notes()
    out = []
    w = out.append

    def chart(name, alt):
        """Embeds chart `name`, if it was drawn, then a blank line."""
        if name in charts:
            w("![%s](%s/%s)" % (alt, images_rel, charts[name]))
            w("")

    w("# Results: the ladder and its peers, measured")
    w("")
    w("<!-- Generated by `bazel run //tools:bench_all` (tools/bench/bench_all.py). "
      "Do not edit by hand: run it again. -->")
    w("")
    w("Produced by `bazel run //tools:bench_all%s` on %s; never edited by hand. Every "
      "stage and the three peers (the same echo server on libevent, libuv and Boost.Asio, "
      "`tools/peers/`) ran through the same matrix in the same run. Ratios within this "
      "one run are what to compare: absolute numbers depend on the machine and on "
      "whatever else it was doing. How each number is measured: "
      "[docs/tools.md](tools.md) (bench_all)."
      % (" -- --quick" if meta.get("quick") else "", meta["date"]))
    w("")
    if meta.get("interrupted"):
        w("**This run was interrupted: the matrix is incomplete.**")
        w("")
    w("## Machine")
    w("")
    w("| | |")
    w("|---|---|")
    w("| date | %s |" % meta["date"])
    w("| CPU | %s, %d cores |" % (meta["cpu"], meta["cores"]))
    w("| kernel | %s (%s) |" % (meta["kernel"], meta["os"]))
    w("| compiler | %s |" % meta["compiler"])
    w("| build | %s |" % meta["build"].replace("|", "\\|"))
    w("| libraries | %s |" % ", ".join("%s %s" % kv for kv in meta["packages"].items()))
    w("| source | commit %s |" % meta["commit"])
    w("| pinning | %s |" % meta["pinned"])
    w("| runs | each throughput cell is the median of %d run%s (a fresh server each), "
      "%g s measured (streaming: %g s) after a %g s warm-up; runs go in rounds (every "
      "server once, in an order shuffled each round) |"
      % (config["runs"], "" if config["runs"] == 1 else "s", config["duration_s"],
         config.get("stream_duration_s", config["duration_s"]), config["warmup_s"]))
    if meta.get("heap_shifts"):
        w("| heap layout | in the traffic cells, each round starts every server with "
          "its heap moved by the same number of bytes (`tools/bench/heap_shift.cc`, preloaded), a different "
          "number each round: %s; a median is over several placements of the buffers "
          "within their pages |" % ", ".join("{:,}".format(b) for b in meta["heap_shifts"]))
    # The load average counts runnable threads: 01_threads' idle cells (the last
    # cells run) add up to 10,000 of them, so a high value at the end is bench_all's.
    own = ("; the end includes 01_threads' %s idle threads" % "{:,}".format(
        max(config["idle_connections"])) if "01_threads" in servers else "")
    w("| load average | %s at the start, %s at the end (1, 5 and 15-minute averages%s) |"
      % (" ".join(meta["loadavg_start"]), " ".join(meta["loadavg_end"]), own))
    w("| duration | %.1f minutes |" % (meta["elapsed_s"] / 60))
    w("")

    w("## Targets (issue 5)")
    w("")
    w("| target | measured | |")
    w("|---|---|:-:|")
    for target, measured, ok in check_targets(results, servers):
        w("| %s | %s | %s |" % (target, measured, "holds" if ok else "**fails**"))
    w("")
    bar_table(w, cells, servers)

    stages = [s for s in servers if kind_of(s) == "stage"]
    w("## Each stage as a ratio to the best peer")
    w("")
    w("Messages/s (ping-pong) and MB/s (streaming) of each stage divided by the best of "
      "libevent, libuv and Asio in the same cell; above 1.00x the stage is faster. The "
      "best peer is the one with the best median; each ratio (here and in the *vs best "
      "peer* columns below) is the median, over the rounds, of the stage's run divided "
      "by the best peer's run of the same round. Runs of one round are seconds apart, so "
      "a change in what else the machine is doing falls on both.")
    w("")
    groups = [(key, "messages_per_s", short)
              for key, _, _, _, short in pingpong_cells(config)]
    groups += [("stream_16k", "mb_per_s", "16 KiB stream"),
               ("transfer_64m", "mb_per_s", "64 MiB")]
    ratio_table(w, cells, servers, stages, notes, groups, "**best peer**",
                lambda v, field: fmt_int(v) if field == "messages_per_s"
                else fmt_num(v, 0) + " MB/s")
    w("")
    w("The same, for the server's CPU time per message: each stage's divided by that "
      "of the most frugal peer in the cell. Below 1.00x the stage spends less CPU per "
      "message. Where the server is busy well under 100% of the time (the *server busy* "
      "columns below), the client or the shared machine set the pace (a *client busy* "
      "near 100% says it was the client), and this comparison says more about the "
      "server than messages/s does.")
    w("")
    cpu_groups = [(key, "cpu_us_per_message", title) for key, _, title in groups]
    ratio_table(w, cells, servers, stages, notes, cpu_groups, "**most frugal peer**",
                lambda v, field: fmt_cpu(v), lower_is_better=True)
    w("")
    chart("pingpong", "Ping-pong messages per second")

    w("## Ping-pong, 64-byte messages")
    w("")
    w("Each connection sends 64 bytes and waits for their echo before it sends the next "
      "(`echo_bench --size 64 --pipeline 1 --duration %g --warmup %g`). CPU/message is "
      "the server's user + system time (`/proc/PID/stat`, sampled every 20 ms) in "
      "echo_bench's measured window divided by the messages completed in it; *server "
      "busy* is that CPU time over the window (at most 100%% for a single-threaded "
      "server); *client busy* is echo_bench's own CPU time in the same window over "
      "the window (it reads its process CPU clock as the window opens and closes; "
      "one thread, so 100%% is its core busy all along): near 100%%, the client's "
      "core was saturated and set the pace as much as the server did; peak RSS is "
      "the server's `VmHWM`."
      % (config["duration_s"], config["warmup_s"]))
    for key, _, idle, title, _ in pingpong_cells(config):
        w("")
        w("### %s" % title[0].upper() + title[1:])
        w("")
        if idle:
            w("%d connections ping-pong as above while echo_bench holds %s more open and "
              "idle (`--messages %d --hold`: each echoed one message first, then sends "
              "nothing). A `poll()` loop hands the kernel every one of its %s fds on "
              "every call and scans them all for the few that are ready; epoll keeps the "
              "interest list in the kernel and reports the ready ones only. Median of "
              "%d run%s."
              % (CROWD_BUSY, "{:,}".format(idle), idle, "{:,}".format(idle + CROWD_BUSY + 2),
                 config["crowd_runs"], "" if config["crowd_runs"] == 1 else "s"))
            w("")
        w("| server | messages/s | MB/s | p50 | p99 | CPU/message | server busy | "
          "client busy | peak RSS | vs best peer |")
        w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
        for name in servers:
            notes.new_row()
            cell = cells.get(key, {}).get(name)
            r = ratio(cells.get(key, {}), name, "messages_per_s", servers)
            w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                name, cell_value(cell, "messages_per_s", fmt_int, notes),
                cell_value(cell, "mb_per_s", lambda v: fmt_num(v, 2), notes),
                cell_value(cell, "p50_us", fmt_us, notes),
                cell_value(cell, "p99_us", fmt_us, notes),
                cell_value(cell, "cpu_us_per_message", fmt_cpu, notes),
                cell_value(cell, "server_busy", fmt_busy, notes),
                cell_value(cell, "client_busy", fmt_busy, notes),
                cell_value(cell, "peak_rss_kib", fmt_kib, notes),
                fmt_ratio(r) if cell and "median" in cell else "-"))
    w("")
    chart("latency", "Ping-pong p99 latency")
    chart("cpu", "Ping-pong CPU per message")

    w("## Streaming on one connection")
    w("")
    w("16 KiB messages with %d in flight (`--size 16K --pipeline %d --duration %g`), and "
      "one 64 MiB message (`--size 64M --messages 1`: MB/s is 64 MiB over the time from "
      "its first byte sent to its last byte echoed). One loopback connection streaming "
      "runs in a fast or a slow state, so this window is longer than the ping-pong "
      "ones. Which state a server lands in can depend on "
      "where its buffer sits within its memory page, which its heap layout decides, "
      "the same on every start of one command line: each round moves every "
      "server's heap by a different number of bytes (Machine: heap layout), so each "
      "median here is over several placements, not one accident of layout (see "
      "[Decisions](decisions.md), \"Comparing 05 with the peers\")."
      % (config["pipeline"], config["pipeline"],
         config.get("stream_duration_s", config["duration_s"])))
    w("")
    w("| server | 16 KiB: MB/s | messages/s | p50 | p99 | CPU/message | server busy | "
      "client busy | vs best peer | 64 MiB: MB/s | time | vs best peer |")
    w("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name in servers:
        notes.new_row()
        s16 = cells.get("stream_16k", {}).get(name)
        big = cells.get("transfer_64m", {}).get(name)
        w("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            name, cell_value(s16, "mb_per_s", lambda v: fmt_num(v, 1), notes),
            cell_value(s16, "messages_per_s", fmt_int, notes),
            cell_value(s16, "p50_us", fmt_us, notes),
            cell_value(s16, "p99_us", fmt_us, notes),
            cell_value(s16, "cpu_us_per_message", fmt_cpu, notes),
            cell_value(s16, "server_busy", fmt_busy, notes),
            cell_value(s16, "client_busy", fmt_busy, notes),
            fmt_ratio(ratio(cells.get("stream_16k", {}), name, "mb_per_s", servers)),
            cell_value(big, "mb_per_s", lambda v: fmt_num(v, 1), notes),
            cell_value(big, "window_s", lambda v: "-" if v is None else "%.3f s" % v, notes),
            fmt_ratio(ratio(cells.get("transfer_64m", {}), name, "mb_per_s", servers))))
    w("")
    chart("streaming", "Streaming MB/s")

    w("## System calls per message")
    w("")
    w("tools/syscount's method and code: the server runs under `strace -f -c` twice, "
      "fresh each time, while echo_bench sends exactly N and then 2N 64-byte messages; "
      "per message = (calls in run 2 - calls in run 1) / N, so start-up, accepts and "
      "closes cancel out. N = %s. read/write and epoll_ctl counts follow from each "
      "design; epoll_wait and poll count wake-ups, which depend on timing (strace slows "
      "the server, so more connections are ready per wake-up than untraced). One "
      "measurement per cell." % ", ".join("%s at %d connection%s" % (
          "{:,}".format(n), c, "" if c == 1 else "s")
          for c, n in sorted(((int(c), n) for c, n in config["syscall_messages"].items()),
                             reverse=True)))
    rows = ["epoll_wait", "epoll_ctl", "read/recv/recvfrom", "write/send/sendto", "poll",
            "other", "total"]
    for connections in SYSCALL_CONNECTIONS:
        key = "syscalls_%d" % connections
        w("")
        w("### %d connection%s" % (connections, "" if connections == 1 else "s"))
        w("")
        w("| server | " + " | ".join(rows) + " |")
        w("|---|" + "---:|" * len(rows))
        for name in servers:
            notes.new_row()
            cell = cells.get(key, {}).get(name)
            values = [cell_value(cell, r, lambda v: fmt_num(v, 2), notes) for r in rows]
            if cell and "median" in cell:
                values = [fmt_num(cell["median"].get(r), 2) for r in rows]
                values[-1] = "**%s**" % values[-1]
            w("| %s | %s |" % (name, " | ".join(values)))
    w("")
    chart("syscalls", "System calls per message")

    w("## Memory: RSS per idle connection")
    w("")
    w("A fresh server's RSS (`VmRSS`) is read, then N clients connect (`echo_bench "
      "--connections N --messages N --hold %g`), each echoes one 64-byte message (so the "
      "server has accepted and served it) and then sits idle; %g s after echo_bench says "
      "that its hold has begun, RSS is read again: "
      "per connection = (RSS with N idle - RSS before) / N. Every server's buffer is "
      "%d KiB (`--buffer-size` default); pages of it that were never written need not "
      "be resident. Median of %d run%s."
      % (IDLE_HOLD_S, IDLE_SETTLE_S, BUFFER_SIZE // 1024, config["idle_runs"],
         "" if config["idle_runs"] == 1 else "s"))
    w("")
    w("| server | RSS at start | RSS, 1,000 idle | per connection | RSS, 10,000 idle | "
      "per connection | threads, 10,000 idle |")
    w("|---|---:|---:|---:|---:|---:|---:|")
    for name in servers:
        notes.new_row()
        a = cells.get("idle_1000", {}).get(name)
        b = cells.get("idle_10000", {}).get(name)
        w("| %s | %s | %s | %s | %s | %s | %s |" % (
            name, cell_value(a, "rss_start_kib", fmt_kib, notes),
            cell_value(a, "rss_idle_kib", fmt_kib, notes),
            cell_value(a, "per_connection_kib", lambda v: "%.1f KiB" % v, notes),
            cell_value(b, "rss_idle_kib", fmt_kib, notes),
            cell_value(b, "per_connection_kib", lambda v: "%.1f KiB" % v, notes),
            cell_value(b, "threads", fmt_int, notes)))
    w("")
    chart("memory", "RSS per idle connection")

    w("## Notes")
    w("")
    if notes.items:
        for i, text in enumerate(notes.items, 1):
            w("%d. %s" % (i, text.replace("|", "\\|").replace("\n", " ")))
    else:
        w("No cell failed and every cell ran.")
    w("")
    w("Raw numbers of every run: [results.json](results.json).")
    w("")
    with open(path, "w") as f:
        f.write("\n".join(out))


# ---- Main ---------------------------------------------------------------------

def ascii_int(text):
    """An argparse type: a whole number in ASCII digits (int() would also take
    " 1_0", "+5" or other scripts' digits); ranges are checked by the caller."""
    if not re.fullmatch(r"[0-9]{1,6}", text):
        raise argparse.ArgumentTypeError("expected a whole number, got %r" % text)
    return int(text)


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="bazel run //tools:bench_all --",
        description="Runs every stage and every peer through one fixed matrix and writes "
        "docs/results.md, docs/images/results_*.svg and docs/results.json.")
    parser.add_argument("--quick", action="store_true",
                        help="a ~2-minute smoke run: 1 run per cell, short windows; writes "
                        "to a temporary directory unless --out is given")
    parser.add_argument("--runs", type=ascii_int,
                        help="runs per cell (default %d, idle cells %d; 1 with --quick)"
                        % (FULL["runs"], FULL["idle_runs"]))
    parser.add_argument("--servers",
                        help="comma-separated subset, e.g. 03_epoll_lt,05_epoll_et,libuv "
                        "(writes to a temporary directory unless --out is given); it must "
                        "name at least one")
    parser.add_argument("--render-only", action="store_true",
                        help="measure nothing: rewrite results.md and the charts from the "
                        "results.json already in the output directory (so not with "
                        "--quick, --runs or --servers)")
    parser.add_argument("--out", help="directory for results.md, results.json and "
                        "images/ (default: the workspace's docs/ for a full run)")
    parser.add_argument("--stream-grid", type=ascii_int, metavar="N",
                        help="measure only the 16 KiB streaming cell, at N heap shifts "
                        "spread over a 4 KiB page, every server once per shift per "
                        "round (--runs rounds, default %d), and print each run and a "
                        "summary; writes no files. Servers: 05_epoll_et and the peers "
                        "unless --servers is given" % GRID_ROUNDS)
    args = parser.parse_args(argv)
    names = [n for n, _, _ in SERVERS]
    if args.stream_grid is not None:
        # Steps of at least 32 bytes: heap_shift.cc takes no shift of 16, so more
        # than 128 shifts would repeat one.
        if not 1 <= args.stream_grid <= 128:
            parser.error("--stream-grid must be from 1 to 128 shifts")
        if args.render_only:
            parser.error("--stream-grid measures; it cannot go with --render-only")
        if args.out:
            parser.error("--stream-grid prints its results and writes no files: "
                         "drop --out (redirect its output instead)")
        if args.servers is None:
            args.servers = ",".join(GRID_SERVERS)
    if args.render_only:
        # It renders the servers and runs of the results.json it reads.
        for flag, given in (("--quick", args.quick), ("--runs", args.runs is not None),
                            ("--servers", args.servers is not None)):
            if given:
                parser.error("--render-only measures nothing; it cannot go with %s" % flag)
    if args.servers is not None:
        chosen = [s.strip() for s in args.servers.split(",") if s.strip()]
        # An empty --servers (an unset shell variable, say) must not mean all of them:
        # that is the full run, which rewrites docs/.
        if not chosen:
            parser.error("--servers names no server; give one or more of: %s"
                         % ", ".join(names))
        for s in chosen:
            if s not in names:
                parser.error("unknown server %r; the servers are: %s" % (s, ", ".join(names)))
        args.servers = [n for n in names if n in chosen]
    else:
        args.servers = names
    if args.runs is not None and args.runs < 1:
        parser.error("--runs must be at least 1")
    return args


def find_workspace():
    if os.environ.get("BUILD_WORKSPACE_DIRECTORY"):
        return os.environ["BUILD_WORKSPACE_DIRECTORY"]
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.realpath(__file__))))


def main(argv):
    args = parse_args(argv)
    config = dict(QUICK if args.quick else FULL)
    if args.runs:
        config["runs"] = config["idle_runs"] = config["crowd_runs"] = args.runs
    workspace = find_workspace()
    full = not args.quick and args.servers == [n for n, _, _ in SERVERS]
    if args.out:
        out_dir = os.path.abspath(os.path.join(os.environ.get("BUILD_WORKING_DIRECTORY",
                                                              os.getcwd()), args.out))
    elif full:
        out_dir = os.path.join(workspace, "docs")
    else:
        out_dir = scratch_dir()

    if args.stream_grid is not None:
        return stream_grid_main(args, config, workspace)

    if args.render_only:
        source = os.path.join(out_dir, "results.json")
        try:
            with open(source) as f:
                results = json.load(f)
            servers = results["servers"]
        except (OSError, ValueError, KeyError, TypeError) as error:
            say("FAILED: cannot read the results to render from %s: %s" % (
                source, error if not isinstance(error, KeyError) else "no %s" % error))
            return 1
        try:
            render(results, servers, out_dir)
        except (Failure, OSError) as failure:
            say("FAILED: %s" % failure)
            return 1
        except (KeyError, TypeError, ValueError) as error:
            say("FAILED: cannot render %s: it is not complete results of bench_all, or "
                "this bench_all reads them wrongly (%s: %s)" % (
                    source, type(error).__name__, error))
            return 1
        return 0

    # The servers and echo_bench inherit the limit (both raise their own soft limit
    # too); 10,000 connections need the hard limit above it.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < max(IDLE_CONNECTIONS + PINGPONG_CONNECTIONS) + CROWD_BUSY + 64:
        say("warning: the fd limit (%d) is below 10,000 connections: those cells will fail"
            % hard)
    for tool in ("strace", "taskset", "gnuplot"):
        if shutil.which(tool) is None:
            say("warning: %s is not installed; tools/setup.sh lists it" % tool)

    runner, flags = make_runner(workspace, config)
    if runner is None:
        return 1
    runner_dir = runner.workdir
    pinned = ("server on CPU %d, client on CPU %d (taskset)"
              % (runner.server_cpu, runner.client_cpu) if runner.server_cpu is not None
              else "not pinned (fewer than 2 cores)")
    meta = machine_info(workspace, flags, pinned)
    meta["quick"] = args.quick
    meta["heap_shifts"] = [heap_shift(r, config["runs"]) for r in range(config["runs"])]
    say("machine: %s, %d cores, kernel %s; load %s" % (
        meta["cpu"], meta["cores"], meta["kernel"], " ".join(meta["loadavg_start"])))
    say("writing to %s" % out_dir)
    keys = [s[0] for s in scenarios(config)] + ["syscalls_%d" % c for c in
                                                SYSCALL_CONNECTIONS] + \
        ["idle_%d" % c for c in IDLE_CONNECTIONS]
    results = {"meta": meta, "config": config, "servers": args.servers,
               "cells": {k: {} for k in keys}}
    try:
        run_matrix(runner, args.servers, config, results)
    except KeyboardInterrupt:
        if not args.out:  # never replace the checked-in results with a partial run
            out_dir = scratch_dir()
        say("interrupted: writing what was measured so far to %s" % out_dir)
        meta["interrupted"] = True
    meta["loadavg_end"] = open("/proc/loadavg").read().split()[:3]
    meta["elapsed_s"] = time.monotonic() - START

    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=False)
        f.write("\n")
    shutil.rmtree(runner_dir, ignore_errors=True)
    render(results, args.servers, out_dir)
    return 0


def plural(n):
    return "" if n == 1 else "s"


def make_runner(workspace, config):
    """Builds what is measured; (a Runner in a new scratch directory, the compile
    flags), or (None, None) after saying why it could not."""
    try:
        syscount = load_syscount(workspace)
        paths, flags = build(workspace)
    except (Failure, OSError) as failure:
        say("FAILED: %s" % failure)
        return None, None
    return Runner(paths, config, syscount, tempfile.mkdtemp(prefix="bench_all.")), flags


def stream_grid_main(args, config, workspace):
    """--stream-grid N: the streaming cell alone, at N heap placements, printed."""
    runner, _ = make_runner(workspace, config)
    if runner is None:
        return 1
    runner_dir = runner.workdir
    rounds = args.runs or GRID_ROUNDS
    shifts = [heap_shift(i, args.stream_grid) for i in range(args.stream_grid)]
    servers = args.servers
    window = config.get("stream_duration_s", config["duration_s"])
    minutes = math.ceil(len(servers) * len(shifts) * rounds
                        * (window + config["warmup_s"] + 1) / 60)
    say("stream grid: %d server%s x %d heap shift%s x %d round%s, %g s per run: about "
        "%d minute%s" % (len(servers), plural(len(servers)), len(shifts),
                         plural(len(shifts)), rounds, plural(rounds), window, minutes,
                         plural(minutes)))
    print("16 KiB messages, %d in flight, 1 connection, %g s measured after %g s; MB/s "
          "per run, every server at the same heap shift in turn (order shuffled)"
          % (config["pipeline"], window, config["warmup_s"]))
    print("")
    print("| round | shift | " + " | ".join(servers) + " |")
    print("|---:|---:|" + "---:|" * len(servers))
    runs = {name: {} for name in servers}  # name -> {(round, shift): MB/s}

    def row(r, shift, missing):
        print("| %d | %s | %s |" % (r, "{:,}".format(shift), " | ".join(
            fmt_num(runs[n][(r, shift)], 0) if (r, shift) in runs[n] else missing
            for n in servers)), flush=True)

    interrupted = False
    try:
        for r in range(rounds):
            for i, shift in enumerate(shifts):
                order = list(servers)
                random.Random(r * 1000 + i).shuffle(order)
                try:
                    for name in order:
                        try:
                            report = runner.traffic_run(name, 1, STREAM_SIZE,
                                                        config["pipeline"], shift=shift)
                            runs[name][(r, shift)] = report["mb_per_s"]
                        except Failure as failure:
                            say("%s at shift %d failed: %s" % (name, shift, failure))
                except KeyboardInterrupt:
                    row(r, shift, "-")  # the runs of this shift made so far
                    raise
                row(r, shift, "failed")
    except KeyboardInterrupt:
        interrupted = True
        say("interrupted: the summary covers the runs so far")
    finally:
        shutil.rmtree(runner_dir, ignore_errors=True)
    print("")
    print("| server | runs | mean MB/s | median MB/s | slowest | fastest |")
    print("|---|---:|---:|---:|---:|---:|")
    for name in servers:
        values = list(runs[name].values())
        if values:
            print("| %s | %d | %s | %s | %s | %s |" % (
                name, len(values), fmt_num(statistics.mean(values), 0),
                fmt_num(median(values), 0), fmt_num(min(values), 0),
                fmt_num(max(values), 0)))
    print("")
    first = servers[0]
    for other in servers[1:]:
        paired = [runs[first][k] / runs[other][k] for k in runs[first]
                  if k in runs[other] and runs[other][k]]
        if paired:
            print("%s / %s, paired by round and shift: median %.2fx, ahead in %d of %d"
                  % (first, other, median(paired), sum(1 for x in paired if x > 1),
                     len(paired)))
    if interrupted:
        return 130
    return 0 if all(len(runs[n]) == rounds * len(shifts) for n in servers) else 1


def scratch_dir():
    """Where a run that must not replace docs/ writes: one directory per user, so
    that people sharing a machine do not overwrite each other's runs."""
    return os.path.join(tempfile.gettempdir(), "echo_ladder_bench-%d" % os.getuid())


def render(results, servers, out_dir):
    """results.md and the charts, from the results (also --render-only)."""
    charts = make_charts(results, servers, os.path.join(out_dir, "images"))
    write_markdown(os.path.join(out_dir, "results.md"), results, servers, charts, "images")
    say("wrote %s (%d charts) after %.1f minutes of measuring" % (
        os.path.join(out_dir, "results.md"), len(charts), results["meta"]["elapsed_s"] / 60))
    runs = results["config"]["runs"]
    if runs < FULL["runs"]:
        say("the speed targets below come from %d run%s per traffic cell, not the full"
            " run's %d: a noisy sample, not a verdict (the syscall counts are exact"
            " either way)" % (runs, "" if runs == 1 else "s", FULL["runs"]))
    for target, measured, ok in check_targets(results, servers):
        say("target %s: %s: %s" % ("holds" if ok else "FAILS", target, measured))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
