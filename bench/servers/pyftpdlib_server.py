"""pyftpdlib peer for bench/run.js: FTPServer (single-process async loop) with its
default data path (sendfile for RETR when available). Prints {"port": N} on stdout.
With --tls-cert/--tls-key: TLS_FTPHandler (needs PyOpenSSL, Debian python3-openssl) with
TLS required on the control and the data connections (explicit FTPS, PROT P)."""
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
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    args = ap.parse_args()
    logging.basicConfig(level=logging.WARNING)  # no per-command logging during the bench

    auth = DummyAuthorizer()
    auth.add_user("bench", "bench", args.root, perm="elradfmwMT")

    base = FTPHandler
    if args.tls_cert:
        from pyftpdlib.handlers import TLS_FTPHandler  # ImportError without PyOpenSSL
        base = TLS_FTPHandler

    class Handler(base):
        pass

    if args.tls_cert:
        from pyftpdlib.handlers import TLS_DTPHandler

        class DTPHandler(TLS_DTPHandler):
            # pyftpdlib < 1.5.8 closes a passive data connection whose TLS handshake arrives
            # before RETR/STOR (curl starts it right after connecting), because DTPHandler is
            # not readable yet: curl then fails with "Bad PASV/EPSV response" (pyftpdlib issue
            # #604). This is upstream's fix (PR #612, in 1.5.8), for Debian 12's 1.5.7.
            def readable(self):
                return self._ssl_accepting or super().readable()

        Handler.dtp_handler = DTPHandler
        Handler.certfile = args.tls_cert
        Handler.keyfile = args.tls_key or args.tls_cert
        Handler.tls_control_required = True
        Handler.tls_data_required = True

    Handler.authorizer = auth
    lo, hi = (int(x) for x in args.pasv.split("-"))
    Handler.passive_ports = range(lo, hi + 1)
    Handler.banner = "pyftpdlib bench"
    # use_sendfile keeps its default (True where os.sendfile exists)

    server = FTPServer(("127.0.0.1", args.port), Handler)
    server.max_cons = 0          # no global connection limit
    server.max_cons_per_ip = 0   # no per-IP limit (500 idle sessions come from one IP)
    port = server.socket.getsockname()[1]
    sys.stdout.write(json.dumps({"port": port, "sendfile": Handler.use_sendfile, "tls": bool(args.tls_cert)}) + "\n")
    sys.stdout.flush()
    server.serve_forever()


if __name__ == "__main__":
    main()
