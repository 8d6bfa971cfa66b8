#!/usr/bin/python3
"""A deliberately awkward DICOMweb server on 127.0.0.1 for the unit test of
lib/session/dicomweb.c (tests/session/test_dicomweb_fake.c): what Orthanc
never does. Writes its port to the file named by argv[1]; serves the DICOM
files named by argv[2:] (in order) until killed. Base URL: /dw.

  GET  /dw/studies?limit=L&offset=O   1234 fake studies, pages honoured (0020000D=UID: exact match; studies 1.1-1.5, 1.8, 1.9 exist)
  GET  /noofs/studies?limit=L         ignores offset: always the first page
  GET  /count                          number of /studies requests so far
  GET  /dw/studies/1.1                 every file, one part each: quoted boundary
                                       with odd characters, a preamble, an
                                       epilogue, written in 1..7-byte pieces
  GET  /dw/studies/1.2                 the first part, then half of the second,
                                       then the connection closes (truncated)
  GET  /dw/studies/1.3                 a part typed application/json
  GET  /dw/studies/1.4                 a part whose Content-Length is wrong
  GET  /dw/studies/1.5                 406 when Accept has transfer-syntax=*,
                                       else like 1.1
  GET  /dw/studies/1.6                 200, multipart, no part at all
  GET  /dw/studies/1.8                 200, one bare application/dicom body (not multipart)
  GET  /dw/studies/1.9                 every file, parts without headers at all
  POST /dw/studies                     STOW-RS, by SOP Instance UID: the 1st file
                                       referenced (with a warning), the 2nd failed
                                       (0xA700), others not listed; HTTP 202
SPDX-License-Identifier: MIT
"""
import http.server
import json
import re
import socketserver
import sys
import time

FILES = [open(p, "rb").read() for p in sys.argv[2:]]
counts = {"studies": 0}
BOUNDARY = "odd (boundary) =:,?/ 42"  # legal bchars that need quoting


def sop_uid(data):
    """(0002,0003) MediaStorageSOPInstanceUID from the file meta (explicit VR LE)."""
    i = data.find(b"\x02\x00\x03\x00UI")
    if i < 0:
        return ""
    n = data[i + 6] | (data[i + 7] << 8)
    return data[i + 8:i + 8 + n].rstrip(b"\x00 ").decode()


def study(i):
    return {
        "0020000D": {"vr": "UI", "Value": ["1.2.840.99.%d" % i]},
        "00080050": {"vr": "SH", "Value": ["ACC%05d" % i]},
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "FAKE^PATIENT%d" % i}]},
        "00081190": {"vr": "UR", "Value": ["http://x/dw/studies/1.2.840.99.%d" % i]},
    }


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def reply(self, code, body=b"", ctype="application/dicom+json"):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def multipart(self, parts, trickle=True, truncate=False, preamble=True):
        quoted = BOUNDARY
        self.send_response(200)
        self.send_header("Content-Type",
                         'multipart/related; type="application/dicom"; boundary="%s"' % quoted)
        self.send_header("Connection", "close")
        self.end_headers()
        b = BOUNDARY.encode()
        body = b"This is the preamble.\r\n" if preamble else b""
        for k, (ctype, data, clen) in enumerate(parts):
            body += b"--" + b + b"\r\n"
            if ctype:
                body += b"Content-Type: " + ctype.encode() + b"\r\n"
            if clen is not None:
                body += b"Content-Length: %d\r\n" % clen
            body += b"\r\n"
            if truncate and k == 1:
                body += data[:len(data) // 2]
                self.send_chunks(body, trickle)
                self.close_connection = True
                return
            body += data + b"\r\n"
        body += b"--" + b + b"--\r\nthe epilogue\r\n"
        self.send_chunks(body, trickle)
        self.close_connection = True

    def send_chunks(self, body, trickle):
        if not trickle:
            self.wfile.write(body)
            return
        i, k = 0, 0
        # tiny pieces around every boundary, big ones inside the data
        marks = [m.start() for m in re.finditer(re.escape(b"--" + BOUNDARY.encode()), body)]
        while i < len(body):
            near = any(m - 16 <= i <= m + 96 for m in marks)
            n = (k % 7) + 1 if near else 4096
            self.wfile.write(body[i:i + n])
            self.wfile.flush()
            i += n
            k += 1

    def do_GET(self):
        path, _, query = self.path.partition("?")
        args = dict(a.split("=", 1) for a in query.split("&") if "=" in a)
        if path == "/count":
            return self.reply(200, str(counts["studies"]).encode(), "text/plain")
        if path in ("/dw/studies", "/noofs/studies"):
            counts["studies"] += 1
            limit = int(args.get("limit", "0")) or 1234
            offset = int(args.get("offset", "0")) if path == "/dw/studies" else 0
            page = [study(i) for i in range(offset, min(1234, offset + limit))]
            if "0020000D" in args:  # a StudyInstanceUID match: exact; 1.1-1.5 exist
                uid = args["0020000D"]
                page = [a for a in page if a["0020000D"]["Value"][0] == uid]
                if uid in ("1.1", "1.2", "1.3", "1.4", "1.5", "1.8", "1.9"):
                    page = [{"0020000D": {"vr": "UI", "Value": [uid]}}]
            return self.reply(200, json.dumps(page).encode())
        m = re.match(r"^/dw/studies/([0-9.]+)$", path)
        if not m:
            return self.reply(404, b"{}")
        uid = m.group(1)
        dicom = [("application/dicom", f, len(f)) for f in FILES]
        accept = self.headers.get("Accept", "")
        if uid == "1.1":
            return self.multipart(dicom)
        if uid == "1.2":
            return self.multipart(dicom, truncate=True)
        if uid == "1.3":
            return self.multipart([dicom[0], ("application/json", b"{}", 2)])
        if uid == "1.4":
            f = FILES[0]
            return self.multipart([("application/dicom; transfer-syntax=1.2.840.10008.1.2.1", f,
                                    len(f) + 10)])
        if uid == "1.5":
            if "transfer-syntax=*" in accept:
                return self.reply(406, b"{}", "application/json")
            return self.multipart(dicom, trickle=False)
        if uid == "1.9":
            return self.multipart([("", f, None) for f in FILES], trickle=False)
        if uid == "1.8":
            return self.reply(200, FILES[1], "application/dicom")
        if uid == "1.6":
            return self.multipart([], trickle=False, preamble=False)
        return self.reply(404, b"{}")

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(n)
        ctype = self.headers.get("Content-Type", "")
        m = re.search(r'boundary="?([^";]+)"?', ctype)
        if self.path != "/dw/studies" or not m:
            return self.reply(400, b"{}")
        b = b"--" + m.group(1).encode()
        parts = [p for p in body.split(b) if p.startswith(b"\r\n") and len(p) > 4]
        uids = []
        for p in parts:
            head, _, data = p[2:].partition(b"\r\n\r\n")
            uids.append(sop_uid(data))
        ans = {"00081199": {"vr": "SQ", "Value": []}, "00081198": {"vr": "SQ", "Value": []}}
        known = [sop_uid(f) for f in FILES]
        for u in uids:
            k = known.index(u) if u in known else -1
            item = {"00081155": {"vr": "UI", "Value": [u]},
                    "00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]}}
            if k == 0:
                item["00081196"] = {"vr": "US", "Value": [0xB000]}
                ans["00081199"]["Value"].append(item)
            elif k == 1:
                item["00081197"] = {"vr": "US", "Value": [0xA700]}
                ans["00081198"]["Value"].append(item)
        return self.reply(202, json.dumps(ans).encode())


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    srv = Server(("127.0.0.1", 0), Handler)
    with open(sys.argv[1] + ".tmp", "w") as f:
        f.write(str(srv.server_address[1]))
    import os
    os.rename(sys.argv[1] + ".tmp", sys.argv[1])
    srv.serve_forever()


if __name__ == "__main__":
    main()
