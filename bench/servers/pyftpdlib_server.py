"""pyftpdlib peer for bench/run.js: FTPServer (single-process async loop) with its
default data path (sendfile for RETR when available). Prints {"port": N} on stdout."""
import argparse
import json
import logging
import sys

from pyftpdlib.authorizers import DummyAuthorizer
from pyftpdlib.handlers import FTPHandler
from pyftpdlib.servers import FTPServer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--root", required=True)
    ap.add_argument("--pasv", default="20000-20999")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)  # no per-command logging during the bench

    auth = DummyAuthorizer()
    auth.add_user("bench", "bench", args.root, perm="elradfmwMT")

    class Handler(FTPHandler):
        pass

    Handler.authorizer = auth
    lo, hi = (int(x) for x in args.pasv.split("-"))
    Handler.passive_ports = range(lo, hi + 1)
    Handler.banner = "pyftpdlib bench"
    # use_sendfile keeps its default (True where os.sendfile exists)

    server = FTPServer(("127.0.0.1", args.port), Handler)
    server.max_cons = 0          # no global connection limit
    server.max_cons_per_ip = 0   # no per-IP limit (500 idle sessions come from one IP)
    port = server.socket.getsockname()[1]
    sys.stdout.write(json.dumps({"port": port, "sendfile": Handler.use_sendfile}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
