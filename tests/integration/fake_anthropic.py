#!/usr/bin/env python3
"""A stand-in for the Anthropic Messages API, for 35-agent-e2e.sh,
36-apiproxy.sh and bench/apiproxy.

Usage: fake_anthropic.py LOG MARKER [--tls-cert PEM --tls-key PEM]
                                    [--stats FILE]

Listens on 127.0.0.1 on a free port and prints that port on stdout; with
--tls-cert and --tls-key it speaks HTTPS (TLS on every connection).  Every
request is logged to LOG as one JSON object per line (method, path, headers
of interest, every header's name, body size and SHA-256, the request's
"stream", "model", tool names, and the connection it came on).  Counters go
to FILE (default LOG.stats) as one JSON object, rewritten on every change:
TCP connections accepted, TLS handshakes completed (and how many of them
resumed a session), TLS handshakes that failed, requests.

Answers:

  POST /v1/messages               the reply text MARKER, as SSE when the body
                                  asks for "stream": true, else as JSON;
                                  see "Tool use" and "Modes" below
  POST /v1/messages/count_tokens  {"input_tokens": 10}
  HEAD or GET /                   200, empty
  anything else                   404 with an API-style error body

Tool use: when the last user message's text holds "CCVM_WRITE PATH TEXT"
(no spaces in either) and the request offers tools, the answer is a
tool_use block that makes the agent write TEXT into PATH: Claude Code's
Write tool (file_path, content) when offered, else its Bash tool
(command).  The next request, whose last user message carries the
tool_result, is answered with MARKER and end_turn.

Modes, chosen by the request body's member "ccvm_mode" (or the query
parameter ccvm_mode=):

  slow     SSE in HTTP chunks, "pause" seconds (default 0.5) between
           events.  With "release_file": PATH, the last events wait until
           PATH exists ("release_wait" seconds at most, default 60); with
           "sent_file": PATH, that file is created just before the last
           event is sent.  The log gets an entry {"event": "slow", ...}.
  big      SSE in HTTP chunks, "bytes" (default 10000000) bytes of body in
           all: text deltas of 16 KiB, as fast as the client reads.
  echo     200 JSON: {"method", "path", "headers": [[name, value], ...],
           "body_bytes", "body_sha256"}: the request as it arrived here
           (credential headers' values as their SHA-256: never echoed).
  status   "status" (default 429): an API-style error with that status and
           retry-after, x-should-retry and rate-limit headers.
"""
import argparse
import hashlib
import json
import os
import re
import socket
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

LOG_HEADERS = ("x-api-key", "authorization", "anthropic-version",
               "anthropic-beta", "user-agent", "host", "accept",
               "content-type", "content-length", "transfer-encoding",
               "connection", "proxy-authorization", "cookie",
               "x-forwarded-for", "forwarded", "via", "x-ccvm-test")
CREDENTIAL_HEADERS = ("x-api-key", "authorization", "proxy-authorization",
                      "cookie")
MAX_BODY = 64 << 20  # kept in memory; the rest is read and dropped
MAX_CHUNK_LINE = 4096
WRITE_RE = re.compile(r"CCVM_WRITE (\S+) (\S+)")
RATE_HEADERS = (("anthropic-ratelimit-requests-limit", "1000"),
                ("anthropic-ratelimit-requests-remaining", "999"))

conn_local = threading.local()


class BadRequest(Exception):
    pass


def last_user_message(req):
    msgs = req.get("messages")
    if not isinstance(msgs, list):
        return None
    for m in reversed(msgs):
        if isinstance(m, dict) and m.get("role") == "user":
            return m
    return None


def blocks(msg):
    """The content blocks of a message (a string content is one text)."""
    c = msg.get("content") if isinstance(msg, dict) else None
    if isinstance(c, str):
        return [{"type": "text", "text": c}]
    if isinstance(c, list):
        return [b for b in c if isinstance(b, dict)]
    return []


def tool_names(req):
    tools = req.get("tools")
    if not isinstance(tools, list):
        return []
    return [t.get("name") for t in tools if isinstance(t, dict)]


def find_tool(req, name):
    for t in req.get("tools") or []:
        if isinstance(t, dict) and t.get("name") == name:
            return t
    return None


def tool_props(tool):
    schema = tool.get("input_schema") or {}
    props = schema.get("properties") or {}
    return set(props) if isinstance(props, dict) else set()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 300  # an idle keep-alive connection is closed after this

    def log_message(self, fmt, *args):  # quiet on stderr
        pass

    # --- logging ---------------------------------------------------------
    def _write_log(self, entry):
        with self.server.log_lock, open(self.server.log_path, "a") as f:
            f.write(json.dumps(entry) + "\n")

    def _log(self, body, req):
        self.server.count("requests")
        entry = {"method": self.command, "path": self.path,
                 "body_bytes": self.body_len,
                 "body_sha256": self.body_sha,
                 "conn": getattr(conn_local, "conn_id", 0),
                 "header_names": [k.lower() for k in self.headers.keys()]}
        for h in LOG_HEADERS:
            v = self.headers.get(h)
            if v is not None:
                entry[h] = v
        if body and req is None:
            entry["json"] = False
        if isinstance(req, dict):
            entry["stream"] = req.get("stream")
            entry["model"] = req.get("model")
            entry["max_tokens"] = req.get("max_tokens")
            names = tool_names(req)
            if names:
                entry["tools"] = names
            if "ccvm_mode" in req:
                entry["ccvm_mode"] = req.get("ccvm_mode")
            last = last_user_message(req)
            if last is not None:
                entry["tool_result"] = any(
                    b.get("type") == "tool_result" for b in blocks(last))
        self._write_log(entry)
        return entry

    # --- request body ----------------------------------------------------
    def _readline(self):
        line = self.rfile.readline(MAX_CHUNK_LINE + 1)
        if len(line) > MAX_CHUNK_LINE or not line.endswith(b"\n"):
            raise BadRequest("bad chunk line")
        return line

    def _body(self):
        """Reads the whole body (Content-Length or chunked); keeps up to
        MAX_BODY bytes.  Sets body_len and body_sha."""
        kept, n_all = [], 0
        sha = hashlib.sha256()

        def take(data):
            nonlocal n_all
            sha.update(data)
            if n_all < MAX_BODY:
                kept.append(data[:MAX_BODY - n_all])
            n_all += len(data)

        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if te:
            if te != "chunked":
                raise BadRequest("transfer-encoding " + te)
            while True:
                line = self._readline().split(b";", 1)[0].strip()
                try:
                    size = int(line, 16)
                except ValueError:
                    raise BadRequest("bad chunk size") from None
                if size == 0:
                    while self._readline() not in (b"\r\n", b"\n"):
                        pass
                    break
                while size:
                    data = self.rfile.read(min(size, 1 << 16))
                    if not data:
                        raise BadRequest("short chunk")
                    take(data)
                    size -= len(data)
                if self.rfile.read(2) != b"\r\n":
                    raise BadRequest("chunk without CRLF")
        else:
            try:
                left = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                raise BadRequest("bad content-length") from None
            if left < 0:
                raise BadRequest("bad content-length")
            while left:
                data = self.rfile.read(min(left, 1 << 16))
                if not data:
                    raise BadRequest("short body")
                take(data)
                left -= len(data)
        self.body_len = n_all
        self.body_sha = sha.hexdigest()
        return b"".join(kept)

    def _read_request(self):
        """(body, parsed JSON object or None, mode, query)."""
        self.body_len, self.body_sha = 0, hashlib.sha256().hexdigest()
        body = self._body()
        req = None
        if body:
            try:
                req = json.loads(body)
            except ValueError:
                req = None
        query = parse_qs(self.path.split("?", 1)[1]) if "?" in self.path \
            else {}
        mode = None
        if isinstance(req, dict) and isinstance(req.get("ccvm_mode"), str):
            mode = req["ccvm_mode"]
        elif query.get("ccvm_mode"):
            mode = query["ccvm_mode"][0]
        return body, req, mode, query

    # --- responses -------------------------------------------------------
    def _send(self, code, ctype, data, extra=()):
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("request-id", "req_ccvm_e2e")
        for k, v in RATE_HEADERS:
            self.send_header(k, v)
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _json(self, code, obj, extra=()):
        self._send(code, "application/json", json.dumps(obj).encode(), extra)

    def _error(self, code, etype, message, extra=()):
        self._json(code, {"type": "error", "error": {
            "type": etype, "message": message}}, extra)

    def _not_found(self):
        self._error(404, "not_found_error", "not here: " + self.path)

    def _stream_start(self, extra=()):
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("request-id", "req_ccvm_stream")
        for k, v in RATE_HEADERS + tuple(extra):
            self.send_header(k, v)
        self.end_headers()
        self.wfile.flush()

    def _chunk(self, data):
        if data:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()

    def _stream_end(self):
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    @staticmethod
    def _sse(event, data):
        return ("event: %s\ndata: %s\n\n" % (event, json.dumps(data))).encode()

    def _message_events(self, req, content, stop_reason):
        """SSE events of one message whose content is a list of blocks
        (text or tool_use)."""
        model = req.get("model") or "claude-test"
        msg = {"id": "msg_ccvm_e2e", "type": "message", "role": "assistant",
               "model": model, "content": [], "stop_reason": None,
               "stop_sequence": None,
               "usage": {"input_tokens": 10, "output_tokens": 1,
                         "cache_creation_input_tokens": 0,
                         "cache_read_input_tokens": 0}}
        events = [("message_start", {"type": "message_start",
                                     "message": msg})]
        for i, b in enumerate(content):
            if b["type"] == "text":
                start = {"type": "text", "text": ""}
                delta = {"type": "text_delta", "text": b["text"]}
            else:
                start = dict(b, input={})
                delta = {"type": "input_json_delta",
                         "partial_json": json.dumps(b["input"])}
            events += [
                ("content_block_start", {"type": "content_block_start",
                                         "index": i,
                                         "content_block": start}),
                ("content_block_delta", {"type": "content_block_delta",
                                         "index": i, "delta": delta}),
                ("content_block_stop", {"type": "content_block_stop",
                                        "index": i})]
        events += [
            ("message_delta", {"type": "message_delta",
                               "delta": {"stop_reason": stop_reason,
                                         "stop_sequence": None},
                               "usage": {"output_tokens": 5}}),
            ("message_stop", {"type": "message_stop"})]
        return events

    def _reply(self, req, content, stop_reason):
        if not req.get("stream"):
            model = req.get("model") or "claude-test"
            self._json(200, {
                "id": "msg_ccvm_e2e", "type": "message", "role": "assistant",
                "model": model, "content": content,
                "stop_reason": stop_reason, "stop_sequence": None,
                "usage": {"input_tokens": 10, "output_tokens": 5,
                          "cache_creation_input_tokens": 0,
                          "cache_read_input_tokens": 0}})
            return
        data = b"".join(self._sse(e, d) for e, d in
                        self._message_events(req, content, stop_reason))
        self._send(200, "text/event-stream", data,
                   (("Cache-Control", "no-cache"),))

    def _tool_use(self, req):
        """The tool_use content asked for by CCVM_WRITE, or None."""
        last = last_user_message(req)
        if last is None or not req.get("tools"):
            return None
        if any(b.get("type") == "tool_result" for b in blocks(last)):
            return None
        text = " ".join(b.get("text", "") for b in blocks(last)
                        if b.get("type") == "text"
                        and isinstance(b.get("text"), str))
        m = WRITE_RE.search(text)
        if not m:
            return None
        path, content = m.group(1), m.group(2)
        write = find_tool(req, "Write")
        if write and {"file_path", "content"} <= tool_props(write):
            name, inp = "Write", {"file_path": path, "content": content}
        elif find_tool(req, "Bash"):
            name, inp = "Bash", {"command": "printf %s '%s' > '%s'" % (
                "%s", content, path), "description": "write the file"}
        else:
            return None
        return [{"type": "text", "text": "Writing the file."},
                {"type": "tool_use", "id": "toolu_ccvm_%d" % time.time_ns(),
                 "name": name, "input": inp}]

    def _message(self, req):
        marker = self.server.marker
        tool = self._tool_use(req)
        if tool:
            self._reply(req, tool, "tool_use")
            return
        last = last_user_message(req)
        if last and any(b.get("type") == "tool_result" for b in blocks(last)):
            marker = marker + " TOOL-DONE"
        self._reply(req, [{"type": "text", "text": marker}], "end_turn")

    def _slow(self, req):
        pause = float(req.get("pause", 0.5))
        release = req.get("release_file")
        sent = req.get("sent_file")
        wait = float(req.get("release_wait", 60))
        events = self._message_events(
            req, [{"type": "text", "text": self.server.marker}], "end_turn")
        info = {"event": "slow", "events": len(events), "released": None}
        t0 = time.monotonic()
        self._stream_start()
        for i, (e, d) in enumerate(events):
            if i:
                time.sleep(pause)
            if i == len(events) - 2:  # before message_delta, message_stop
                if release:
                    end = time.monotonic() + wait
                    while not os.path.exists(release) and \
                            time.monotonic() < end:
                        time.sleep(0.05)
                    info["released"] = os.path.exists(release)
                    info["waited"] = round(time.monotonic() - t0, 3)
                if sent:
                    with open(sent, "w") as f:
                        f.write("last events sent at %f\n" % time.time())
            self._chunk(self._sse(e, d))
        self._stream_end()
        info["seconds"] = round(time.monotonic() - t0, 3)
        self._write_log(info)

    def _big(self, req):
        total = int(req.get("bytes", 10000000))
        self._stream_start()
        start = self._sse("message_start", {"type": "message_start",
                                            "message": {"id": "msg_big"}})
        stop = self._sse("message_stop", {"type": "message_stop"})
        piece = self._sse("content_block_delta", {
            "type": "content_block_delta", "index": 0,
            "delta": {"type": "text_delta", "text": "x" * 16384}})
        self._chunk(start)
        left = total - len(start) - len(stop)
        batch = piece * 4
        while left >= len(batch):
            self._chunk(batch)
            left -= len(batch)
        if left > 0:  # pad with an SSE comment to the exact size
            self._chunk(b":" + b"x" * (left - 2) + b"\n" if left >= 2
                        else b"\n")
        self._chunk(stop)
        self._stream_end()

    def _echo(self, req):
        def shown(k, v):  # a credential is never echoed to the client
            if k.lower() in CREDENTIAL_HEADERS:
                return "<sha256 %s>" % hashlib.sha256(v.encode()).hexdigest()
            return v
        self._json(200, {"method": self.command, "path": self.path,
                         "headers": [[k, shown(k, v)]
                                     for k, v in self.headers.items()],
                         "body_bytes": self.body_len,
                         "body_sha256": self.body_sha})

    def _status(self, req, query):
        code = req.get("status") if isinstance(req, dict) else None
        if code is None:
            code = int((query.get("status") or ["429"])[0])
        self._error(int(code), "rate_limit_error",
                    "ccvm stand-in: status %d as asked" % int(code),
                    (("retry-after", "7"), ("x-should-retry", "false"),
                     ("anthropic-ratelimit-tokens-remaining", "0")))

    def _dispatch(self):
        try:
            body, req, mode, query = self._read_request()
        except BadRequest as e:
            self._write_log({"event": "bad-request", "why": str(e),
                             "method": self.command, "path": self.path})
            self.close_connection = True
            self._error(400, "invalid_request_error", str(e))
            return
        self._log(body, req)
        if not isinstance(req, dict):
            req = {}
        path = self.path.split("?", 1)[0]
        if mode == "echo":
            self._echo(req)
        elif mode == "status":
            self._status(req, query)
        elif self.command not in ("POST",):
            if path == "/" and self.command in ("GET", "HEAD"):
                self._send(200, "text/plain", b"")
            else:
                self._not_found()
        elif path == "/v1/messages" and mode == "slow":
            self._slow(req)
        elif path == "/v1/messages" and mode == "big":
            self._big(req)
        elif path == "/v1/messages":
            self._message(req)
        elif path == "/v1/messages/count_tokens":
            self._json(200, {"input_tokens": 10})
        else:
            self._not_found()

    do_POST = do_GET = do_HEAD = do_PUT = do_DELETE = do_PATCH = _dispatch


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, args):
        super().__init__(("127.0.0.1", 0), Handler)
        self.log_path = args.log
        self.marker = args.marker
        self.log_lock = threading.Lock()
        self.stats_path = args.stats or args.log + ".stats"
        self.stats_lock = threading.Lock()
        self.stats = {"connections": 0, "handshakes": 0, "resumed": 0,
                      "tls_failures": 0, "requests": 0}
        self.ctx = None
        if args.tls_cert:
            self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            self.ctx.load_cert_chain(args.tls_cert, args.tls_key)
        self._write_stats()

    def _write_stats(self):
        tmp = self.stats_path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(self.stats, f)
        os.replace(tmp, self.stats_path)

    def count(self, what):
        with self.stats_lock:
            self.stats[what] += 1
            self._write_stats()
            return self.stats[what]

    def finish_request(self, request, client_address):
        conn_local.conn_id = self.count("connections")
        # Small writes (headers, then the body; SSE events) go out at
        # once: no Nagle delay against the client's delayed ACK.
        request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if self.ctx is None:
            super().finish_request(request, client_address)
            return
        request.settimeout(30)
        try:
            tls = self.ctx.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError) as e:
            self.count("tls_failures")
            with self.log_lock, open(self.log_path, "a") as f:
                f.write(json.dumps({"event": "tls-failure",
                                    "conn": conn_local.conn_id,
                                    "why": str(e)}) + "\n")
            return
        self.count("handshakes")
        if tls.session_reused:
            self.count("resumed")
        tls.settimeout(None)
        try:
            super().finish_request(tls, client_address)
        finally:
            tls.close()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("log")
    ap.add_argument("marker")
    ap.add_argument("--tls-cert")
    ap.add_argument("--tls-key")
    ap.add_argument("--stats")
    args = ap.parse_args()
    if bool(args.tls_cert) != bool(args.tls_key):
        ap.error("--tls-cert and --tls-key go together")
    srv = Server(args)
    print(srv.server_address[1], flush=True)
    srv.serve_forever()


if __name__ == "__main__":
    main()
