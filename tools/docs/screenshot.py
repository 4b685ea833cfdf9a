#!/usr/bin/env python3
"""Takes the screenshot of a side-by-side diff page that the docs show.

    bazel run //docs:screenshot                 # writes docs/images/stage_diff.png
    bazel run //docs:screenshot -- --page diff_02_03.html --out /tmp/x.png

It loads the page of the built site (//docs:site) in headless Chromium
(Debian's package: tools/setup.sh installs it) and saves a PNG. Run it again
after the diff pages' look changes, and commit the image.
"""

import argparse
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import chromium  # noqa: E402  (our sibling module)


def main(argv):
    parser = argparse.ArgumentParser(prog="screenshot", description=__doc__.split("\n")[0])
    parser.add_argument("--site", default="docs/site", help="the built site directory")
    parser.add_argument("--page", default="diff_03_04.html",
                        help="page of the site to show (default: %(default)s)")
    workspace = os.environ.get("BUILD_WORKSPACE_DIRECTORY", os.getcwd())
    parser.add_argument("--out", default=os.path.join(workspace, "docs/images/stage_diff.png"),
                        help="where to write the PNG (default: %(default)s)")
    parser.add_argument("--width", type=int, default=1400)
    parser.add_argument("--height", type=int, default=900)
    args = parser.parse_args(argv)

    page = os.path.join(os.path.abspath(args.site), args.page)
    if not os.path.isfile(page):
        print("screenshot: no page %s (is --page right? build //docs:site first)" % page,
              file=sys.stderr)
        return 2
    if not chromium.available():
        print("screenshot: %s not found; install it with tools/setup.sh" % chromium.CHROMIUM,
              file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with tempfile.TemporaryDirectory() as work:
        try:
            png = chromium.screenshot("file://" + page, os.path.join(work, "shot.png"),
                                      args.width, args.height, workdir=work)
        except chromium.ChromiumError as e:
            print("screenshot: %s" % e, file=sys.stderr)
            return 1
        with open(png, "rb") as src, open(args.out, "wb") as dst:
            dst.write(src.read())
    print("screenshot: wrote %s (%dx%d) of %s"
          % (args.out, args.width, args.height, args.page))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
