#!/usr/bin/env python3
"""Serves the built docs site over HTTP: `bazel run //docs:serve`.

    bazel run //docs:serve                    # http://127.0.0.1:8000/
    bazel run //docs:serve -- --port 8123     # another port (0: any free one)

It binds to 127.0.0.1 unless --host says otherwise (exposing the site to the
network is a choice), prints the URL, and serves until Ctrl-C. The site is the
output of //docs:site; `bazel run` builds it first.
"""

import argparse
import functools
import http.server
import os
import socket
import sys


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="serve",
                                     description="Serve the echo ladder docs site.")
    parser.add_argument("--site", default="docs/site",
                        help="the site directory (default: %(default)s, in the "
                             "runfiles of bazel run)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: %(default)s)")
    parser.add_argument("--port", type=int, default=8000,
                        help="port to listen on, 0 for any free port (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true", help="do not log each request")
    args = parser.parse_args(argv)
    if not 0 <= args.port <= 65535:
        parser.error("--port must be between 0 and 65535")
    return args


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 (the base class's name)
        pass


def main(argv):
    args = parse_args(argv)
    site = os.path.abspath(args.site)
    if not os.path.isfile(os.path.join(site, "index.html")):
        print("serve: no site at %s (build it with: bazel build //docs:site)" % site,
              file=sys.stderr)
        return 1
    base = QuietHandler if args.quiet else http.server.SimpleHTTPRequestHandler
    handler = functools.partial(base, directory=site)
    server_class = http.server.ThreadingHTTPServer
    if ":" in args.host:  # an IPv6 address such as ::1

        class Server6(http.server.ThreadingHTTPServer):
            address_family = socket.AF_INET6

        server_class = Server6
    try:
        server = server_class((args.host, args.port), handler)
    except OSError as e:
        print("serve: cannot listen on %s:%d: %s (choose another with --port N)"
              % (args.host, args.port, e.strerror or e), file=sys.stderr)
        return 1
    host, port = server.server_address[:2]
    shown = "[%s]" % host if ":" in host else host
    print("Serving the docs site at http://%s:%d/ (Ctrl-C to stop)" % (shown, port),
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("\nserve: stopped", file=sys.stderr)
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
