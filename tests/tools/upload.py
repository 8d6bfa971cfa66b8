#!/usr/bin/python3
"""upload.py - upload DICOM files to an Orthanc over REST (POST /instances).

  upload.py --url http://127.0.0.1:18042 --user pacs --password pacs-secret [--json] PATH...

PATH: .dcm files or folders (searched recursively for *.dcm, sorted).  One
keep-alive HTTP connection for all files.  Every answer must be HTTP 200 with
"Status" "Success" or "AlreadyStored".  Prints the counts and the throughput
to stderr (and, with --json, one JSON object to stdout).  Exit 0 when every
file was accepted, 1 otherwise (also when no file was found).
Used by tests/lab/seed.sh; only the Python standard library.
"""
import argparse
import base64
import http.client
import json
import os
import sys
import time
import urllib.parse


def dicom_files(paths):
    for p in paths:
        if os.path.isdir(p):
            found = []
            for root, dirs, names in os.walk(p):
                dirs.sort()
                found += [os.path.join(root, n) for n in names if n.lower().endswith(".dcm")]
            yield from sorted(found)
        else:
            yield p


class Client:
    def __init__(self, url, user, password, timeout):
        u = urllib.parse.urlsplit(url)
        if u.scheme != "http":
            raise SystemExit("upload.py: only http:// URLs (the lab is plain HTTP on loopback)")
        self.host, self.port = u.hostname, u.port or 80
        self.base = u.path.rstrip("/")
        self.timeout = timeout
        self.headers = {"Content-Type": "application/dicom", "Connection": "keep-alive"}
        if user is not None:
            token = base64.b64encode(("%s:%s" % (user, password or "")).encode()).decode()
            self.headers["Authorization"] = "Basic " + token
        self.conn = None
        self.connections = 0

    def post(self, body):
        """-> (http status, parsed JSON or text)"""
        for attempt in (1, 2):
            if self.conn is None:
                self.conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
                self.connections += 1
            try:
                self.conn.request("POST", self.base + "/instances", body=body, headers=self.headers)
                r = self.conn.getresponse()
                data = r.read()
                if r.getheader("Connection", "").lower() == "close":
                    self.conn.close()
                    self.conn = None
                try:
                    return r.status, json.loads(data.decode("utf-8") or "null")
                except ValueError:
                    return r.status, data.decode("utf-8", "replace")
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # a keep-alive connection closed by the server: reconnect once
                self.conn.close()
                self.conn = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--user")
    ap.add_argument("--password")
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--json", action="store_true", help="print the counts as JSON to stdout")
    ap.add_argument("--quiet", "-q", action="store_true", help="no per-failure lines")
    ap.add_argument("paths", nargs="+")
    a = ap.parse_args(argv)

    c = Client(a.url, a.user, a.password, a.timeout)
    counts = {"files": 0, "Success": 0, "AlreadyStored": 0, "failed": 0, "bytes": 0}
    t0 = time.monotonic()
    for path in dicom_files(a.paths):
        with open(path, "rb") as f:
            body = f.read()
        counts["files"] += 1
        counts["bytes"] += len(body)
        try:
            status, answer = c.post(body)
        except OSError as e:
            status, answer = 0, str(e)
        st = answer.get("Status") if isinstance(answer, dict) else None
        if status == 200 and st in ("Success", "AlreadyStored"):
            counts[st] += 1
        else:
            counts["failed"] += 1
            if not a.quiet:
                print("upload: FAILED %s: HTTP %s %s" % (path, status, answer), file=sys.stderr)
    dt = time.monotonic() - t0
    counts["seconds"] = round(dt, 3)
    counts["connections"] = c.connections
    mb = counts["bytes"] / 1e6
    print("upload: %d files, %.1f MB to %s in %.2f s (%.1f files/s, %.1f MB/s, %.1f ms/file, "
          "%d connection(s)): %d Success, %d AlreadyStored, %d failed"
          % (counts["files"], mb, a.url, dt, counts["files"] / dt if dt else 0, mb / dt if dt else 0,
             1000 * dt / counts["files"] if counts["files"] else 0, c.connections,
             counts["Success"], counts["AlreadyStored"], counts["failed"]), file=sys.stderr)
    if a.json:
        print(json.dumps(counts))
    if counts["files"] == 0:
        print("upload: no .dcm file found in %s" % " ".join(a.paths), file=sys.stderr)
        return 1
    return 1 if counts["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
