#!/usr/bin/env python3
"""A fault-injecting HTTPS proxy in front of the bed's Pebble.

Every request is forwarded to Pebble (https, trusting the bed's CA) unless a rule in the
control file says to answer it with a fault instead. The Host header is passed through, so
Pebble checks each JWS `url` against the proxy's address (the URL the client signed) and
builds the URLs in its answers from it; any of Pebble's own URLs left in an answer (headers
or body) are rewritten to the proxy's anyway, so a client never leaves the proxy.

Control file (JSON, re-read whenever it changes; counters start afresh then):

    {"rules": [{"step": "new-order", "fault": "500", "times": 1}, ...],
     "ari": {"start": -60, "end": 3600}}

  step         dir | nonce | new-account | account | new-order | order | authz | challenge |
               finalize | cert | revoke | key-change | any
  fault        500 | 503 | 429 | badnonce | hang | close
  times        how many matching requests get the fault (default 1; -1: all of them)
  skip         matching requests let through before the fault starts (default 0)
  retry_after  seconds, sent as Retry-After with 500, 503 and 429
  hang         seconds a `hang` holds the connection before closing it unanswered (default 120)

`close` sends the start of an answer (status line, headers, half the body) and closes the
connection. Nothing is forwarded for a request that gets a fault.

`ari` makes the proxy a CA with renewal information (RFC 9773), which Pebble 2.4 lacks: the
directory gains `renewalInfo`, and GET `/renewal-info/<id>` answers, for every certificate, a
suggested window from `start` to `end` seconds after the request (negative: in the past).
Without `ari` the directory has no `renewalInfo`, as Pebble's. Pebble ignores the `replaces`
of a new order; the proxy reflects it in the created order, as RFC 9773 §5 asks of a CA (and
instant-acme checks), unless `"reflect": false` in `ari` makes it a CA that drops it. The
request log shows it.

Request log: one JSON object per line, {"step", "method", "path", "fault", "time"} (when the
request arrived, seconds since the epoch), for tests to count what reached the CA and when; a
new order that names the certificate it replaces adds "replaces".

Standard library only: the bed needs no pip.
"""

import argparse
import base64
import http.client
import http.server
import json
import os
import re
import socket
import socketserver
import ssl
import sys
import threading
import time

STEPS = [
    ("/dir", "dir"),
    ("/nonce-plz", "nonce"),
    ("/sign-me-up", "new-account"),
    ("/my-account/", "account"),
    ("/order-plz", "new-order"),
    ("/my-order/", "order"),
    ("/authZ/", "authz"),
    ("/chalZ/", "challenge"),
    ("/finalize-order/", "finalize"),
    ("/certZ/", "cert"),
    ("/revoke-cert", "revoke"),
    ("/rollover-account-key", "key-change"),
    ("/renewal-info/", "renewal-info"),
]
FAULTS = {"500", "503", "429", "badnonce", "hang", "close"}
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "te",
    "trailer",
    "content-length",
}


def step_of(path):
    for prefix, step in STEPS:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return step
    return "other"


class Rules:
    """The control file's rules, with how often each has fired since the file last changed."""

    def __init__(self, path):
        self.path = path
        self.lock = threading.Lock()
        self.stamp = None
        self.rules = []
        self.ari = None
        self.reflect = True

    def _load(self):
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            self.stamp, self.rules, self.ari, self.reflect = None, [], None, True
            return
        stamp = (st.st_ino, st.st_mtime_ns, st.st_size)
        if stamp == self.stamp:
            return
        with open(self.path, encoding="utf-8") as f:
            doc = json.load(f)
        rules = []
        for r in doc.get("rules", []):
            if r.get("fault") not in FAULTS:
                raise ValueError(f"unknown fault in {self.path}: {r!r}")
            rules.append(
                {
                    "step": r.get("step", "any"),
                    "fault": r["fault"],
                    "times": int(r.get("times", 1)),
                    "skip": int(r.get("skip", 0)),
                    "retry_after": r.get("retry_after"),
                    "hang": float(r.get("hang", 120)),
                    "seen": 0,
                    "fired": 0,
                }
            )
        ari = doc.get("ari")
        reflect = True
        if ari is not None:
            reflect = bool(ari.get("reflect", True))
            ari = (float(ari["start"]), float(ari["end"]))
        self.stamp, self.rules, self.ari, self.reflect = stamp, rules, ari, reflect

    def ari_window(self):
        """The renewal window, (start, end) in seconds from now, when the proxy offers ARI."""
        with self.lock:
            self._load()
            return self.ari

    def reflects_replaces(self):
        """Whether a created order names the certificate it replaces, as RFC 9773 §5 asks."""
        with self.lock:
            self._load()
            return self.reflect

    def match(self, step):
        """The rule whose fault this request gets, if any."""
        with self.lock:
            self._load()
            for r in self.rules:
                if r["step"] not in ("any", step):
                    continue
                r["seen"] += 1
                if r["seen"] <= r["skip"]:
                    continue
                if r["times"] >= 0 and r["fired"] >= r["times"]:
                    continue
                r["fired"] += 1
                return dict(r)
            return None


def replaces_of(body):
    """The `replaces` of a new order's JWS payload (RFC 9773 §5), if it names one."""
    try:
        payload = json.loads(body)["payload"]
        payload += "=" * (-len(payload) % 4)
        return json.loads(base64.urlsafe_b64decode(payload)).get("replaces")
    except (ValueError, KeyError, TypeError, AttributeError):
        return None


def problem(kind, status, detail):
    return json.dumps(
        {"type": f"urn:ietf:params:acme:error:{kind}", "detail": detail, "status": status}
    ).encode()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "faultproxy"

    def log_message(self, fmt, *args):
        sys.stderr.write("%s %s\n" % (time.strftime("%H:%M:%S"), fmt % args))

    def do_GET(self):
        self.handle_one()

    def do_HEAD(self):
        self.handle_one()

    def do_POST(self):
        self.handle_one()

    def handle_one(self):
        cfg = self.server.cfg
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        path = self.path.split("?", 1)[0]
        step = step_of(path)
        try:
            rule = cfg.rules.match(step)
        except (ValueError, json.JSONDecodeError, OSError) as e:
            self.log_message("control file: %s", e)
            rule = None
        replaces = replaces_of(body) if step == "new-order" else None
        cfg.record(step, self.command, self.path, rule["fault"] if rule else None, replaces)
        if rule:
            self.fault(rule)
        elif step == "renewal-info":
            self.renewal_info()
        else:
            self.forward(body, replaces)

    def renewal_info(self):
        try:
            window = self.server.cfg.rules.ari_window()
        except (ValueError, KeyError, json.JSONDecodeError, OSError) as e:
            self.log_message("control file: %s", e)
            window = None
        if window is None:
            body = problem("malformed", 404, "no renewal information (the proxy offers none)")
            self.send_plain(404, [("Content-Type", "application/problem+json")], body)
            return
        now = time.time()
        fmt = lambda t: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
        body = json.dumps(
            {"suggestedWindow": {"start": fmt(now + window[0]), "end": fmt(now + window[1])}}
        ).encode()
        self.send_plain(
            200,
            [("Content-Type", "application/json"), ("Retry-After", "21600")],
            body,
        )

    def send_plain(self, status, headers, body):
        self.send_response(status)
        for k, v in headers:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def fault(self, rule):
        f = rule["fault"]
        headers = [("Content-Type", "application/problem+json"), ("Cache-Control", "no-store")]
        if rule.get("retry_after") is not None:
            headers.append(("Retry-After", str(rule["retry_after"])))
        if f == "500":
            body = problem("serverInternal", 500, "internal error (injected by the bed's fault proxy)")
            self.send_plain(500, headers, body)
        elif f == "503":
            body = problem("serverInternal", 503, "service unavailable (injected by the bed's fault proxy)")
            self.send_plain(503, headers, body)
        elif f == "429":
            body = problem("rateLimited", 429, "too many new orders recently (injected by the bed's fault proxy)")
            self.send_plain(429, headers, body)
        elif f == "badnonce":
            # A fresh nonce from Pebble, as a CA sends with every error (RFC 8555 §6.5).
            nonce = self.server.cfg.fresh_nonce()
            if nonce:
                headers.append(("Replay-Nonce", nonce))
            body = problem("badNonce", 400, "JWS has an invalid anti-replay nonce (injected by the bed's fault proxy)")
            self.send_plain(400, headers, body)
        elif f == "hang":
            deadline = time.monotonic() + rule["hang"]
            while time.monotonic() < deadline:
                time.sleep(0.5)
            self.close_connection = True
        elif f == "close":
            body = b'{"status": "valid", "identifiers": [{"type": "dns", "value": "cut-off'
            self.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n")
            self.wfile.write(b"Content-Length: %d\r\n\r\n" % (len(body) * 2))
            self.wfile.write(body)
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

    def forward(self, body, replaces=None):
        cfg = self.server.cfg
        headers = {
            k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP
        }
        if body:
            headers["Content-Length"] = str(len(body))
        try:
            conn = cfg.upstream_conn()
            conn.request(self.command, self.path, body=body or None, headers=headers)
            rsp = conn.getresponse()
            data = rsp.read()
            conn.close()
        except (OSError, http.client.HTTPException) as e:
            self.send_plain(
                502,
                [("Content-Type", "application/problem+json")],
                problem("serverInternal", 502, f"the fault proxy could not reach Pebble: {e}"),
            )
            return
        out = []
        for k, v in rsp.getheaders():
            if k.lower() in HOP_BY_HOP:
                continue
            if k.lower() in ("location", "link"):
                v = cfg.rewrite(v)
            out.append((k, v))
        if rsp.getheader("Content-Type", "").split(";")[0].strip() in (
            "application/json",
            "application/problem+json",
        ):
            data = cfg.rewrite(data.decode()).encode()
        if step_of(self.path.split("?", 1)[0]) == "dir" and rsp.status == 200:
            try:
                offers = cfg.rules.ari_window() is not None
            except (ValueError, KeyError, json.JSONDecodeError, OSError) as e:
                self.log_message("control file: %s", e)
                offers = False
            if offers:
                directory = json.loads(data)
                directory["renewalInfo"] = cfg.public + "/renewal-info"
                data = json.dumps(directory).encode()
        try:
            reflect = cfg.rules.reflects_replaces()
        except (ValueError, KeyError, json.JSONDecodeError, OSError) as e:
            self.log_message("control file: %s", e)
            reflect = True
        if replaces is not None and rsp.status == 201 and reflect:
            # A CA with ARI reflects `replaces` in the order it created (RFC 9773 §5).
            order = json.loads(data)
            order["replaces"] = replaces
            data = json.dumps(order).encode()
        self.send_response(rsp.status)
        for k, v in out:
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)


class Config:
    def __init__(self, args):
        self.upstream = args.upstream.rstrip("/")
        m = re.match(r"https://([^/:]+):(\d+)$", self.upstream)
        if not m:
            sys.exit(f"faultproxy: --upstream must be https://HOST:PORT, not {args.upstream}")
        self.up_host, self.up_port = m.group(1), int(m.group(2))
        self.public = f"https://{args.listen}"
        self.rules = Rules(args.control)
        self.log_path = args.log
        self.log_lock = threading.Lock()
        self.ctx = ssl.create_default_context(cafile=args.ca)

    def upstream_conn(self):
        return http.client.HTTPSConnection(self.up_host, self.up_port, context=self.ctx, timeout=60)

    def rewrite(self, text):
        return text.replace(self.upstream, self.public)

    def fresh_nonce(self):
        try:
            conn = self.upstream_conn()
            conn.request("HEAD", "/nonce-plz")
            rsp = conn.getresponse()
            rsp.read()
            conn.close()
            return rsp.getheader("Replay-Nonce")
        except (OSError, http.client.HTTPException):
            return None

    def record(self, step, method, path, fault, replaces=None):
        entry = {"step": step, "method": method, "path": path, "fault": fault,
                 "time": time.time()}
        if replaces is not None:
            entry["replaces"] = replaces
        line = json.dumps(entry)
        with self.log_lock, open(self.log_path, "a", encoding="utf-8") as f:
            f.write(line + "\n")


class Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--listen", required=True, help="ADDR:PORT")
    p.add_argument("--upstream", required=True, help="https://PEBBLE:PORT")
    p.add_argument("--ca", required=True, help="the CA Pebble's TLS certificate comes from")
    p.add_argument("--cert", required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--control", required=True, help="the rules file (JSON)")
    p.add_argument("--log", required=True, help="the request log (JSON lines)")
    args = p.parse_args()
    addr, port = args.listen.rsplit(":", 1)
    server = Server((addr, int(port)), Handler)
    server.cfg = Config(args)
    tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    tls.load_cert_chain(args.cert, args.key)
    # The handshake happens in the request's thread, on its first read: a client that never
    # finishes one holds only its own thread.
    server.socket = tls.wrap_socket(server.socket, server_side=True, do_handshake_on_connect=False)
    server.serve_forever()


if __name__ == "__main__":
    main()
