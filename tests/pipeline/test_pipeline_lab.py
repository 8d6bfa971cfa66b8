# Lab test of prospective pipelines (include/diana/pipeline.h through the Python
# binding, and `diana watch`) against the real Orthanc helper and PACS of
# tests/lab, with a local HTTP receiver (loopback) that checks the Slack and
# webhook wire formats. Studies are sent to the helper (the watched Orthanc);
# its StableAge (5 s) makes each study "stable" a few seconds later.
# SPDX-License-Identifier: MIT
import base64
import hashlib
import hmac
import http.server
import json
import os
import signal
import subprocess
import threading
import time
import urllib.request

import pytest

import diana

TMP = os.environ.get("DIANA_LAB_TMP")
pytestmark = pytest.mark.skipif(TMP is None, reason="needs the lab: run through tests/lab/with-lab.sh")
HERE = os.path.dirname(os.path.abspath(__file__))
SECRET = b"webhook secret for the pipeline test 0123456789"


def env(name):
    v = os.environ.get(name)
    assert v, "%s is not set: run through tests/lab/with-lab.sh" % name
    return v


def orthanc_uri(who):
    return "orthanc+http://%s:%s@%s" % (env("DIANA_LAB_%s_USER" % who), env("DIANA_LAB_%s_PASSWORD" % who),
                                       env("DIANA_LAB_%s_URL" % who)[7:])


def rest(who, method, path, body=None):
    auth = base64.b64encode(("%s:%s" % (env("DIANA_LAB_%s_USER" % who),
                                        env("DIANA_LAB_%s_PASSWORD" % who))).encode()).decode()
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(env("DIANA_LAB_%s_URL" % who) + path, data=data, method=method,
                                 headers={"Authorization": "Basic " + auth})
    with urllib.request.urlopen(req, timeout=60) as r:
        text = r.read()
    return json.loads(text) if text else None


class Receiver(http.server.ThreadingHTTPServer):
    """Records POSTs; answers 503 while ``down`` is set."""

    def __init__(self):
        self.requests = []
        self.down = False
        super().__init__(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    @property
    def url(self):
        return "http://127.0.0.1:%d" % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if self.server.down:
            self.send_response(503)
            self.end_headers()
            return
        self.server.requests.append((self.path, dict(self.headers), body))
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *a):
        pass


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.shutdown()
    r.server_close()


def synth(prefix):
    out = os.path.join(TMP, "pipe-" + prefix)
    subprocess.run([env("PYTHON"), os.path.join(env("DIANA_LAB_TOOLS"), "synth.py"), "--out", out,
                    "--ct", "1", "--ct-slices", "2", "--ct-size", "64x64", "--xr", "1", "--xr-size", "64x64",
                    "--prefix", prefix, "--quiet"], check=True)
    rows = {}
    with open(os.path.join(out, "manifest.csv")) as f:
        for line in f:
            r = line.strip().split(",")
            if r[0].startswith(prefix):
                rows[r[0]] = r
    return out, rows


def send(folder, which=None):
    files = []
    for acc in sorted(os.listdir(folder)):
        if which and acc not in which:
            continue
        d = os.path.join(folder, acc)
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    with diana.Session(orthanc_uri("HELPER")) as s:
        st = s.store(files)
        assert not st["errors"]


def config(tmp_path, receiver, timeout_s=20):
    sec = tmp_path / "hook.secret"
    sec.write_bytes(SECRET + b"\n")
    sec.chmod(0o600)
    slack = tmp_path / "slack.url"
    slack.write_text(receiver.url + "/services/T000/B000/XXXX\n")
    slack.chmod(0o600)
    return {
        "source": {"uri": orthanc_uri("HELPER"), "events": "StableStudy", "poll_s": 0.5},
        "state": str(tmp_path / "state"),
        "filter": {"all": [{"tag": "Modality", "equals": "CT"}]},
        "model": {"command": [os.path.join(HERE, "model.py")], "timeout_s": timeout_s, "name": "ich-test"},
        "sinks": [
            {"type": "slack", "url_file": str(slack)},
            {"type": "webhook", "url": receiver.url + "/hook", "secret_file": str(sec)},
            {"type": "jsonl", "path": str(tmp_path / "results.jsonl")},
            {"type": "sr", "uri": orthanc_uri("PACS"), "model_name": "ich-test"},
        ],
    }


def wait_for(p, pred, timeout=40):
    t0 = time.time()
    while time.time() - t0 < timeout:
        p.run_once()
        st = p.stats()
        if pred(st):
            return st
        time.sleep(0.5)
    raise AssertionError("timed out; stats: %r" % p.stats())


def pacs_sr_series(study_uid):
    ids = rest("PACS", "POST", "/tools/find", {"Level": "Series", "Expand": True,
                                               "Query": {"StudyInstanceUID": study_uid, "Modality": "SR"}})
    return ids


def test_ct_only_exactly_once_and_restart(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "ok")
    data, rows = synth("PIPA")
    cfg = config(tmp_path, receiver)
    with diana.Pipeline(cfg) as p:
        assert p.run_once() == 0  # starts "now": nothing old is processed
        send(data)
        st = wait_for(p, lambda s: s["seen"] >= 2 and s["processed"] >= 1 and s["pending"] == 0)
        assert st["seen"] == 2 and st["matched"] == 1 and st["processed"] == 1
        assert st["delivered"] == 4
        assert st["last_delivered_ms"] >= st["last_model_ms"] >= st["last_retrieved_ms"] >= 0
    ct = rows["PIPA-CT-001"]
    acc = ct[0]
    # Slack: text + blocks, accession masked to its last 4 characters, no other PHI
    slack = [r for r in receiver.requests if r[0].startswith("/services/")]
    assert len(slack) == 1
    msg = json.loads(slack[0][2])
    assert "****" + acc[-4:] in msg["text"]
    assert acc not in msg["text"] and acc not in json.dumps(msg["blocks"])
    assert ct[5].split("^")[0] not in slack[0][2].decode("utf-8", "replace"), "no patient name"
    assert msg["blocks"][0]["type"] == "section"
    # webhook: JSON with the result, a valid HMAC-SHA256 signature, a delivery id
    hooks = [r for r in receiver.requests if r[0] == "/hook"]
    assert len(hooks) == 1
    _, headers, body = hooks[0]
    want = "sha256=" + hmac.new(SECRET, body, hashlib.sha256).hexdigest()
    assert headers["X-Diana-Signature"] == want
    assert headers["Content-Type"] == "application/json"
    assert headers.get("X-Diana-Delivery")
    doc = json.loads(body)
    assert doc["result"]["summary"].startswith("no hemorrhage (2 images)")
    assert doc["study_instance_uid"] == ct[2]
    assert set(doc["latency_ms"]) >= {"detected", "retrieved", "model"}
    # JSONL: one line with latencies
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["model"] == "ich-test"
    # the SR landed in the PACS, in the CT's study
    sr = pacs_sr_series(ct[2])
    assert len(sr) == 1, sr
    # restart: nothing repeated
    with diana.Pipeline(cfg) as p:
        assert p.run_once() == 0
        time.sleep(1)
        assert p.run_once() == 0
        assert p.stats()["processed"] == 0
    assert len([r for r in receiver.requests if r[0] == "/hook"]) == 1
    assert len((tmp_path / "results.jsonl").read_text().splitlines()) == 1
    # and a new study after the restart is processed once
    data2, rows2 = synth("PIPB")
    with diana.Pipeline(cfg) as p:
        send(data2, ["PIPB-CT-001"])
        wait_for(p, lambda s: s["processed"] >= 1 and s["pending"] == 0)
    assert len([r for r in receiver.requests if r[0] == "/hook"]) == 2


def test_model_failure_timeout_then_next(tmp_path, receiver, monkeypatch):
    cfg = config(tmp_path, receiver, timeout_s=2)
    data, rows = synth("PIPC")
    data2, _ = synth("PIPD")
    data3, _ = synth("PIPE")
    with diana.Pipeline(cfg) as p:
        p.run_once()
        monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "fail")
        send(data, ["PIPC-CT-001"])
        wait_for(p, lambda s: s["model_failures"] >= 1)
        monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "sleep")
        t0 = time.time()
        send(data2, ["PIPD-CT-001"])
        wait_for(p, lambda s: s["model_failures"] >= 2)
        assert time.time() - t0 < 30, "the timeout stopped the model"
        monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "ok")
        send(data3, ["PIPE-CT-001"])
        st = wait_for(p, lambda s: s["processed"] >= 1 and s["pending"] == 0)
        assert st["model_failures"] == 2
    lines = [json.loads(x) for x in (tmp_path / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 3
    assert "error" in lines[0] and "error" in lines[1] and "result" in lines[2]
    assert "time" in lines[1]["error"] or "finish" in lines[1]["error"]
    # no Slack message for a failed model
    assert len([r for r in receiver.requests if r[0].startswith("/services/")]) == 1


def test_receiver_down_then_back(tmp_path, receiver, monkeypatch):
    monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "ok")
    cfg = config(tmp_path, receiver)
    cfg["sinks"] = cfg["sinks"][:2]
    data, _ = synth("PIPF")
    with diana.Pipeline(cfg) as p:
        p.run_once()
        receiver.down = True
        send(data, ["PIPF-CT-001"])
        st = wait_for(p, lambda s: s["processed"] >= 1)
        assert st["pending"] == 2 and st["delivered"] == 0
        assert len(os.listdir(tmp_path / "state" / "spool")) == 2, "kept on disk until delivered"
    # even across a restart
    receiver.down = False
    with diana.Pipeline(cfg) as p:
        st = wait_for(p, lambda s: s["pending"] == 0 and s["delivered"] >= 2)
    assert len(receiver.requests) == 2
    assert os.listdir(tmp_path / "state" / "spool") == []


def test_python_model_and_cli(tmp_path, receiver, monkeypatch):
    cfg = config(tmp_path, receiver)
    cfg["sinks"] = [cfg["sinks"][2]]
    seen = []

    def model(study):
        seen.append((study.instances, study.header.get("Modality")))
        if len(seen) == 1:
            raise RuntimeError("first call fails")
        return {"summary": "python model ok"}

    data, _ = synth("PIPG")
    data2, _ = synth("PIPH")
    with diana.Pipeline(cfg, model=model) as p:
        p.run_once()
        send(data, ["PIPG-CT-001"])
        wait_for(p, lambda s: s["model_failures"] >= 1)
        send(data2, ["PIPH-CT-001"])
        st = wait_for(p, lambda s: s["processed"] >= 1)
        assert isinstance(p.model_errors[0], RuntimeError)
    assert seen == [(2, "CT"), (2, "CT")]
    # the CLI: --check, a bad configuration, --once --stats, SIGTERM
    diana_cli = os.environ.get("DIANA_CLI")
    if not diana_cli:
        pytest.skip("DIANA_CLI not set")
    good = tmp_path / "watch.json"
    cfg2 = config(tmp_path, receiver)
    cfg2["state"] = "state-cli"
    cfg2["sinks"] = [{"type": "jsonl", "path": "cli.jsonl"}]
    good.write_text(json.dumps(cfg2))
    r = subprocess.run([diana_cli, "watch", "--check", str(good)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    bad = tmp_path / "bad.json"
    cfg3 = dict(cfg2)
    cfg3["sinks"] = [{"type": "slack"}]
    bad.write_text(json.dumps(cfg3))
    r = subprocess.run([diana_cli, "watch", "--check", str(bad)], capture_output=True, text=True)
    assert r.returncode == 2 and "sinks[0].url: missing" in r.stderr and len(r.stderr.splitlines()) == 1
    r = subprocess.run([diana_cli, "watch", "--once", "--stats", str(good)], capture_output=True, text=True)
    assert r.returncode == 0 and "studies:" in r.stdout, r.stderr
    assert (tmp_path / "state-cli" / "cursor.json").exists(), "paths resolve against the configuration"
    proc = subprocess.Popen([diana_cli, "watch", str(good)], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    time.sleep(1.5)
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 0


def test_dose_watch_to_splunk(tmp_path, receiver):
    """Radiation dose monitoring: SR series only (nothing else retrieved), the
    built-in RDSR parser, events to a Splunk HTTP Event Collector (local receiver)."""
    rdsr = os.path.join(env("DIANA_TEST_DATA"), "dicom", "rdsr", "synth-ct-rdsr.dcm")
    token = tmp_path / "hec.token"
    token.write_text("11111111-2222-3333-4444-555555555555\n")
    token.chmod(0o600)
    cfg = {
        "source": {"uri": orthanc_uri("HELPER"), "events": "StableSeries", "modalities": ["SR"], "poll_s": 0.5},
        "state": str(tmp_path / "dose-state"),
        "model": {"builtin": "dose"},
        "sinks": [{"type": "splunk", "url": receiver.url, "token_file": str(token), "index": "dose"},
                  {"type": "jsonl", "path": str(tmp_path / "dose.jsonl")}],
    }
    data, _ = synth("PIPK")  # a CT study: its series is not SR, so it is never retrieved
    with diana.Pipeline(cfg) as p:
        p.run_once()
        send(data, ["PIPK-CT-001"])
        with diana.Session(orthanc_uri("HELPER")) as s:
            assert not s.store([rdsr])["errors"]
        st = wait_for(p, lambda s: s["processed"] >= 1 and s["pending"] == 0)
        assert st["seen"] == 1, "the CT series was skipped without being retrieved"
    hec = [r for r in receiver.requests if r[0] == "/services/collector/event"]
    assert len(hec) == 1
    _, headers, body = hec[0]
    assert headers["Authorization"] == "Splunk 11111111-2222-3333-4444-555555555555"
    events = [json.loads(x) for x in body.decode().replace("}{", "}\n{").splitlines() if x.strip()]
    assert len(events) == 1 and events[0]["index"] == "dose"
    ev = events[0]["event"]
    assert ev["template"] and ev["events"], ev.keys()
    assert isinstance(events[0]["time"], (int, float)) and events[0]["time"] > 0
    doc = diana.dose(rdsr)
    assert ev["sop_instance_uid"] == doc["sop_instance_uid"]
    line = json.loads((tmp_path / "dose.jsonl").read_text().splitlines()[0])
    assert line["result"]["summary"] == "1 radiation dose report"


def test_cfind_polling_source(tmp_path, monkeypatch):
    """A PACS polled by C-FIND over DIMSE: a study is handled once its instance
    count stayed the same for quiet_s; nothing is repeated after a restart."""
    monkeypatch.setenv("DIANA_TEST_MODEL_MODE", "ok")
    rest("PACS", "PUT", "/modalities/pipeline-poll", {"AET": "DIANA_W", "Host": "127.0.0.1", "Port": 14293})
    data, rows = synth("PIPP")
    files = []
    for acc in sorted(os.listdir(data)):
        d = os.path.join(data, acc)
        if os.path.isdir(d):
            files += [os.path.join(d, f) for f in sorted(os.listdir(d))]
    with diana.Session(orthanc_uri("PACS")) as s:
        assert not s.store(files)["errors"]
    cfg = {
        "source": {"uri": "dicom://%s@%s:%s?aet=DIANA_W" % (env("DIANA_LAB_PACS_AET"), env("DIANA_LAB_PACS_HOST"),
                                                          env("DIANA_LAB_PACS_DICOM_PORT")),
                   "poll": {"lookback_min": 5000000, "quiet_s": 1, "keys": {"AccessionNumber": "PIPP-*"}}},
        "state": str(tmp_path / "poll-state"),
        "filter": {"tag": "Modality", "equals": "CT"},
        "model": {"command": [os.path.join(HERE, "model.py")], "timeout_s": 30},
        "sinks": [{"type": "jsonl", "path": str(tmp_path / "poll.jsonl")}],
    }
    with diana.Pipeline(cfg) as p:
        assert p.run_once() == 0, "the first poll only notes the studies"
        st = wait_for(p, lambda s: s["seen"] >= 2 and s["processed"] >= 1, timeout=30)
        assert st["matched"] == 1
    lines = [json.loads(x) for x in (tmp_path / "poll.jsonl").read_text().splitlines()]
    assert len(lines) == 1 and lines[0]["study_instance_uid"] == rows["PIPP-CT-001"][2]
    with diana.Pipeline(cfg) as p:
        for _ in range(4):
            p.run_once()
            time.sleep(0.5)
        assert p.stats()["seen"] == 0
    assert len((tmp_path / "poll.jsonl").read_text().splitlines()) == 1
