#!/usr/bin/env python3
"""A stand-in for the Anthropic Messages API, for 35-agent-e2e.sh.

Usage: fake_anthropic.py LOG MARKER

Listens on 127.0.0.1 on a free port and prints that port on stdout.  Every
request is logged to LOG as one JSON object per line (method, path, headers
of interest, body size, the request's "stream" and "model").  Answers:

  POST /v1/messages               the reply text MARKER, as SSE when the body
                                  asks for "stream": true, else as JSON
  POST /v1/messages/count_tokens  {"input_tokens": 10}
  HEAD or GET /                   200, empty
  anything else                   404 with an API-style error body
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

LOG_HEADERS = ("x-api-key", "authorization", "anthropic-version",
               "anthropic-beta", "user-agent", "host", "accept")
MAX_BODY = 16 << 20


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # quiet on stderr
        pass

    def _log(self, body):
        entry = {"method": self.command, "path": self.path,
                 "body_bytes": len(body)}
        for h in LOG_HEADERS:
            v = self.headers.get(h)
            if v is not None:
                entry[h] = v
        try:
            req = json.loads(body) if body else {}
            if isinstance(req, dict):
                entry["stream"] = req.get("stream")
                entry["model"] = req.get("model")
                entry["max_tokens"] = req.get("max_tokens")
        except ValueError:
            entry["json"] = False
        with self.server.log_lock, open(self.server.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")
        return entry

    def _body(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n < 0 or n > MAX_BODY:
            n = 0
        return self.rfile.read(n) if n else b""

    def _send(self, code, ctype, data, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_ccvm_e2e")
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, code, obj):
        self._send(code, "application/json", json.dumps(obj).encode())

    def _not_found(self):
        self._json(404, {"type": "error", "error": {
            "type": "not_found_error", "message": "not here: " + self.path}})

    def _message(self, req):
        marker = self.server.marker
        model = req.get("model") or "claude-test"
        usage = {"input_tokens": 10, "output_tokens": 5,
                 "cache_creation_input_tokens": 0,
                 "cache_read_input_tokens": 0}
        msg = {"id": "msg_ccvm_e2e", "type": "message", "role": "assistant",
               "model": model, "content": [], "stop_reason": None,
               "stop_sequence": None, "usage": dict(usage, output_tokens=1)}
        if not req.get("stream"):
            msg["content"] = [{"type": "text", "text": marker}]
            msg["stop_reason"] = "end_turn"
            msg["usage"] = usage
            self._json(200, msg)
            return
        events = [
            ("message_start", {"type": "message_start", "message": msg}),
            ("content_block_start", {"type": "content_block_start",
                                     "index": 0,
                                     "content_block": {"type": "text",
                                                       "text": ""}}),
            ("content_block_delta", {"type": "content_block_delta",
                                     "index": 0,
                                     "delta": {"type": "text_delta",
                                               "text": marker}}),
            ("content_block_stop", {"type": "content_block_stop",
                                    "index": 0}),
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": "end_turn",
                                         "stop_sequence": None},
                               "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"}),
        ]
        data = "".join("event: %s\ndata: %s\n\n" % (e, json.dumps(d))
                       for e, d in events).encode()
        self._send(200, "text/event-stream", data,
                   (("Cache-Control", "no-cache"),))

    def do_POST(self):
        body = self._body()
        self._log(body)
        path = self.path.split("?", 1)[0]
        try:
            req = json.loads(body) if body else {}
        except ValueError:
            req = {}
        if not isinstance(req, dict):
            req = {}
        if path == "/v1/messages":
            self._message(req)
        elif path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": 10})
        else:
            self._not_found()

    def do_GET(self):
        self._log(self._body())
        if self.path.split("?", 1)[0] == "/":
            self._send(200, "text/plain", b"")
        else:
            self._not_found()

    do_HEAD = do_GET

    def do_PUT(self):
        self._log(self._body())
        self._not_found()

    do_DELETE = do_PUT
    do_PATCH = do_PUT


def main():
    if len(sys.argv) != 3:
        sys.exit("usage: fake_anthropic.py LOG MARKER")
    srv = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    srv.daemon_threads = True
    srv.log_path = sys.argv[1]
    srv.marker = sys.argv[2]
    srv.log_lock = threading.Lock()
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
