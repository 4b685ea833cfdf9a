"""Headless Chromium (Debian's package) for the docs: DOM dumps and screenshots.

Every run gets a fresh profile directory and the flags that keep Chromium off
the network and away from the GPU, so it works offline, as root, in a sandbox.
"""

import os
import shutil
import subprocess
import tempfile

CHROMIUM = "/usr/bin/chromium"

FLAGS = (
    "--headless",
    "--no-sandbox",  # we run as root in CI, where Chromium's own sandbox cannot start
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--hide-scrollbars",
    # Let the page's scripts (Doxygen's navigation tree) run before the dump.
    "--virtual-time-budget=5000",
)


class ChromiumError(Exception):
    pass


def available(path=None):
    path = path or CHROMIUM
    return os.path.isfile(path) and os.access(path, os.X_OK)


def _run(extra, url, workdir=None, timeout=120, path=None):
    path = path or CHROMIUM
    profile = tempfile.mkdtemp(prefix="chromium_profile_", dir=workdir)
    env = dict(os.environ)
    env["HOME"] = profile  # Chromium writes under $HOME too
    try:
        result = subprocess.run(
            [path, *FLAGS, "--user-data-dir=" + profile, *extra, url],
            capture_output=True, text=True, timeout=timeout, env=env, check=False)
    except subprocess.TimeoutExpired as e:
        raise ChromiumError("chromium did not finish %s within %d s" % (url, timeout)) from e
    finally:
        shutil.rmtree(profile, ignore_errors=True)
    if result.returncode != 0:
        raise ChromiumError("chromium exited %d on %s:\n%s"
                            % (result.returncode, url, result.stderr[-4000:]))
    return result


def dump_dom(url, workdir=None, path=None):
    """The page's DOM after its scripts ran, as HTML."""
    dom = _run(["--dump-dom"], url, workdir, path=path).stdout
    if "<html" not in dom:
        raise ChromiumError("chromium printed no DOM for %s" % url)
    return dom


def screenshot(url, out_png, width=1400, height=1000, workdir=None, path=None):
    """Saves a PNG of the page, as seen in a width x height window."""
    out_png = os.path.abspath(out_png)
    if os.path.exists(out_png):
        os.remove(out_png)
    _run(["--screenshot=" + out_png, "--window-size=%d,%d" % (width, height)], url,
         workdir, path=path)
    if not os.path.isfile(out_png):
        raise ChromiumError("chromium wrote no screenshot of %s" % url)
    return out_png


def png_size(path):
    """(width, height) of a PNG file, or None if it is not one."""
    with open(path, "rb") as f:
        head = f.read(24)
    if len(head) < 24 or head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
