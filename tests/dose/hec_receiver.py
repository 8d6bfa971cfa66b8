#!/usr/bin/python3
"""Stand-in for a Splunk HTTP Event Collector on 127.0.0.1, for the dose tests.

  hec_receiver.py PORTFILE LOGFILE [CERT KEY]

With CERT and KEY (PEM) it speaks HTTPS. Writes its port to PORTFILE, then serves until killed (SIGTERM). Every
request is appended to LOGFILE as one JSON line {"method", "path", "auth",
"content_type", "status", "body"}. It answers like HEC:

  POST [/PREFIX]/services/collector/event
      200 {"text":"Success","code":0} when the Authorization header is
      "Splunk <token>" with a non-empty token and the body is one or more
      concatenated JSON objects each with an "event" member; 401 {"code":2}
      without the header, 403 {"code":4} for the token "bad-token", 400
      {"code":6} for a body HEC would refuse.
  PREFIX "fail503-N": 503 {"code":9} for the first N requests of that prefix.
  anything else: 404.
"""
import collections
import http.server
import json
import socketserver
import sys

hits = collections.Counter()
LOG = None


def events_ok(body):
    dec = json.JSONDecoder()
    text = body.decode("utf-8")
    i, n = 0, 0
    while True:
        while i < len(text) and text[i] in " \r\n\t":
            i += 1
        if i == len(text):
            return n > 0
        obj, i = dec.raw_decode(text, i)
        if not isinstance(obj, dict) or "event" not in obj:
            return False
        n += 1


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def answer(self, status, payload, body=b""):
        data = json.dumps(payload).encode()
        with open(LOG, "a") as f:
            f.write(json.dumps({"method": self.command, "path": self.path,
                                "auth": self.headers.get("Authorization"),
                                "content_type": self.headers.get("Content-Type"),
                                "status": status,
                                "body": body.decode("utf-8", "replace")}) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n) if n else b""
        path = self.path.split("?", 1)[0]
        parts = path.strip("/").split("/")
        prefix = ""
        if parts and parts[0].startswith("fail503-"):
            prefix = parts.pop(0)
        if parts != ["services", "collector", "event"]:
            return self.answer(404, {"text": "The requested URL was not found", "code": 404}, body)
        if prefix:
            hits[prefix] += 1
            if hits[prefix] <= int(prefix.split("-")[1]):
                return self.answer(503, {"text": "Server is busy", "code": 9}, body)
        auth = self.headers.get("Authorization") or ""
        if not auth.startswith("Splunk ") or not auth[7:]:
            return self.answer(401, {"text": "Token is required", "code": 2}, body)
        if auth[7:] == "bad-token":
            return self.answer(403, {"text": "Invalid token", "code": 4}, body)
        try:
            ok = events_ok(body)
        except ValueError:
            ok = False
        if not ok:
            return self.answer(400, {"text": "Invalid data format", "code": 6}, body)
        return self.answer(200, {"text": "Success", "code": 0}, body)

    do_GET = do_POST


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    global LOG
    LOG = sys.argv[2]
    srv = Server(("127.0.0.1", 0), Handler)
    if len(sys.argv) > 4:
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(sys.argv[3], sys.argv[4])
        srv.socket = ctx.wrap_socket(srv.socket, server_side=True)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
