"""A real HTTP server on 127.0.0.1 for the download tests: serves in-memory files, honours Range (and If-Range)
requests, sends an ETag, and can be told to cut the connection in the middle of a file or to stall there."""

import hashlib

import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class _QuietServer(ThreadingHTTPServer):
    """A client that hangs up mid-body (a refused download stops reading) is no server error: socketserver
    would print its traceback into the test's captured stderr."""

    def handle_error(self, request, client_address):
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ArchiveServer:
    def __init__(self):
        self.files: dict[str, bytes] = {}  # "/name.zip" -> body
        self.cuts: dict[str, int] = {}  # path -> how many more responses to cut halfway
        self.stalls: dict[str, int] = {}  # path -> how many more responses to stop sending halfway, connection kept open
        self.requests: list[tuple[str, str | None]] = []  # (path, Range header) in arrival order
        self.released = threading.Event()  # set on exit: stalled responses end
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # keep test output clean
                pass

            def do_GET(self):
                server.requests.append((self.path, self.headers.get("Range")))
                body = server.files.get(self.path)
                if body is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                etag = '"' + hashlib.sha256(body).hexdigest()[:16] + '"'
                match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
                if_range = self.headers.get("If-Range")
                if match and if_range is not None and if_range != etag:
                    match = None  # the file changed: the whole of it (RFC 9110 If-Range)
                if match:
                    start = int(match.group(1))
                    if start >= len(body):
                        self.send_response(416)
                        self.send_header("Content-Range", f"bytes */{len(body)}")
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    self.send_response(206)
                    self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
                else:
                    self.send_response(200)
                self.send_header("Content-Length", str(len(body) - start))
                self.send_header("ETag", etag)
                self.end_headers()
                rest = body[start:]
                if server.stalls.get(self.path, 0) > 0:
                    server.stalls[self.path] -= 1
                    self.wfile.write(rest[: len(rest) // 2])
                    self.wfile.flush()
                    server.released.wait(30)  # the host stops sending but keeps the connection open
                    self.close_connection = True
                    return
                if server.cuts.get(self.path, 0) > 0:
                    server.cuts[self.path] -= 1
                    self.wfile.write(rest[: len(rest) // 2])
                    self.wfile.flush()
                    self.close_connection = True  # the client sees a short body: a connection cut mid-file
                    return
                self.wfile.write(rest)

        self.httpd = _QuietServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def closed_port_url(path: str = "/x.zip") -> str:
    """A URL on 127.0.0.1 where nothing listens (the port was just released): the 'offline' case."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"
