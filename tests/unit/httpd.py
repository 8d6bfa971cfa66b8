#!/usr/bin/python3
"""Controllable HTTP/1.1 server on 127.0.0.1 for the HTTP client's unit
tests (retries, status mapping, auth, timeouts, streaming). Writes its port
to the file named by its argument (or stdout), then serves until killed.

  GET  /ok                  200 "hello" (keep-alive)
  GET  /flaky/KEY/N         503 for the first N hits of KEY, then 200 "recovered"
  GET  /status/CODE         answers CODE; every hit is counted
  GET  /count/PATH          number of hits seen for /PATH
  GET  /auth                200 with Basic user:secret, else 401
  GET  /slow/MS             waits MS milliseconds, then 200
  GET  /big/N               N bytes of a repeating pattern, chunked
  POST /echo                echoes the body; X-Content-Type echoes Content-Type
  *    /method              answers the method name
"""
import base64
import collections
import http.server
import os
import socketserver
import sys
import time

hits = collections.Counter()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="text/plain", extra=None):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (extra or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def route(self):
        path = self.path.split("?", 1)[0]
        hits[path] += 1
        parts = path.strip("/").split("/")
        if parts[0] == "ok":
            return self.reply(200, b"hello")
        if parts[0] == "method":
            n = int(self.headers.get("Content-Length") or 0)
            if n:
                self.rfile.read(n)
            return self.reply(200, self.command.encode())
        if parts[0] == "flaky":
            key, n = parts[1], int(parts[2])
            if hits["flaky:" + key] < n:
                hits["flaky:" + key] += 1
                return self.reply(503, b"busy")
            return self.reply(200, b"recovered")
        if parts[0] == "status":
            return self.reply(int(parts[1]), b"status body")
        if parts[0] == "count":
            return self.reply(200, str(hits["/" + "/".join(parts[1:])]).encode())
        if parts[0] == "auth":
            want = "Basic " + base64.b64encode(b"user:secret").decode()
            if self.headers.get("Authorization") == want:
                return self.reply(200, b"welcome")
            return self.reply(401, b"", extra={"WWW-Authenticate": 'Basic realm="t"'})
        if parts[0] == "slow":
            time.sleep(int(parts[1]) / 1000)
            return self.reply(200, b"late")
        if parts[0] == "big":
            n = int(parts[1])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            pattern = bytes(range(256)) * 256
            sent = 0
            while sent < n:
                chunk = pattern[: min(len(pattern), n - sent)]
                self.wfile.write(b"%x\r\n" % len(chunk) + chunk + b"\r\n")
                sent += len(chunk)
            self.wfile.write(b"0\r\n\r\n")
            return None
        if parts[0] == "echo":
            n = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(n)
            return self.reply(200, body, "application/octet-stream",
                              {"X-Content-Type": self.headers.get("Content-Type", "")})
        return self.reply(404, b"no such route")

    do_GET = do_POST = do_PUT = do_DELETE = route


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


srv = Server(("127.0.0.1", 0), Handler)
if len(sys.argv) > 1:  # write the port atomically to the named file
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
else:
    print(srv.server_address[1], flush=True)
srv.serve_forever()
