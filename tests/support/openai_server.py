"""Scripted OpenAI-compatible HTTP server for tests (stdlib only).

    with FakeOpenAI() as srv:
        srv.script(reply("hi"), error(429, "slow down", headers={"Retry-After": "3"}))
        litellm.completion(model="openai/fake", api_base=srv.base_url, api_key="sk-test", ...)
        assert srv.chat_requests[0]["body"]["messages"] == [...]

Each POST /v1/chat/completions pops ONE scripted entry; a request with n > 1 pops n
consecutive reply() entries, one per choice. An empty (or too short) queue answers
500 "fake server: no scripted reply left", so a test fails loudly instead of hanging.
"""

from __future__ import annotations

import json
import math
import socket
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

NO_REPLY_LEFT = "fake server: no scripted reply left"

# Default error type/code per status. litellm classifies errors partly by body *text*
# ("invalid_request_error" turns a 401 into BadRequestError), so these defaults map each
# status to its natural litellm class; pass type=/code= to imitate a specific server.
_ERROR_DEFAULTS = {
    400: ("invalid_request_error", None),
    401: ("authentication_error", "invalid_api_key"),
    403: ("request_forbidden", None),
    404: ("invalid_request_error", "model_not_found"),
    422: ("invalid_request_error", None),
    429: ("requests", "rate_limit_exceeded"),
}


def reply(content=None, tool_calls=None, usage=None, finish_reason=None, stream_delay=0.0, stream_chunk=8):
    """Scripted assistant answer; tool_calls is a list of {name, arguments(dict|str), id?}. Streamed (a
    request with stream=True), it goes out in `stream_chunk`-character deltas, `stream_delay` seconds apart."""
    calls = [
        {
            "id": tc.get("id", f"call_{i}"),
            "name": tc["name"],
            # a str is sent verbatim so tests can script malformed (non-JSON) arguments
            "arguments": tc.get("arguments", {})
            if isinstance(tc.get("arguments"), str)
            else json.dumps(tc.get("arguments", {})),
        }
        for i, tc in enumerate(tool_calls or [])
    ]
    return {
        "kind": "reply",
        "content": content,
        "tool_calls": calls,
        "usage": usage,
        "finish_reason": finish_reason or ("tool_calls" if calls else "stop"),
        "stream_delay": stream_delay,
        "stream_chunk": stream_chunk,
    }


def raw(body, status=200, content_type="application/json", headers=None):
    """Scripted verbatim response (str/bytes/dict body), e.g. malformed JSON or no `choices`."""
    if isinstance(body, dict):
        body = json.dumps(body)
    return {
        "kind": "raw",
        "status": status,
        "content_type": content_type,
        "headers": dict(headers or {}),
        "body": body.encode() if isinstance(body, str) else body,
    }


def error(status, message, type=None, code=None, headers=None):
    """Scripted HTTP error with OpenAI's body shape {"error": {message, type, param, code}}."""
    default_type, default_code = _ERROR_DEFAULTS.get(status, ("server_error", None))
    return raw(
        {
            "error": {
                "message": message,
                "type": type or default_type,
                "param": None,
                "code": default_code if code is None else code,
            }
        },
        status,
        headers=headers,
    )


def hang(seconds, then=None):
    """Sleep `seconds`, then answer with `then` (default: a plain reply); trips client timeouts."""
    return {"kind": "hang", "seconds": seconds, "then": then or reply("(late reply)")}


def trickle(seconds, then=None):
    """Answer with `then` (a reply), but first send one keep-alive space a second for `seconds` (JSON allows
    leading whitespace): a per-read timeout never fires, only a bound on the whole reply does."""
    return {"kind": "trickle", "seconds": seconds, "then": then or reply("(slow reply)")}


def _tokens(text: str) -> int:
    """Deterministic ~4-chars-per-token estimate; exact counts are not the point here."""
    return math.ceil(len(text) / 4)


class FakeOpenAI:
    """Context-managed scripted OpenAI server on 127.0.0.1:<free port>."""

    def __init__(self, models=("fake-model",)):
        self.models = list(models)
        self.requests: list[dict] = []  # {"method", "path", "headers" (lower-case keys), "body"} each
        self._queue: deque = deque()
        self._lock = threading.Lock()
        self._stop = threading.Event()  # wakes hang() sleepers so shutdown never waits on them
        self._conns: set = set()  # open client sockets; closed on stop() to end keep-alive handlers
        self._httpd = self._thread = None

    def start(self) -> FakeOpenAI:
        """Bind port 0 and serve in a daemon thread."""
        self._httpd = _QuietServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"fake": self}))
        self._httpd.daemon_threads = True  # a stuck handler must never block interpreter exit
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, name="FakeOpenAI", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and release the port."""
        if self._httpd is None:
            return
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for sock in conns:  # handlers blocked reading a keep-alive socket now see EOF and exit
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(timeout=5)
        self._httpd = None

    __enter__ = start

    def __exit__(self, *exc):
        self.stop()

    @property
    def base_url(self) -> str:
        """OpenAI-style base URL, e.g. http://127.0.0.1:PORT/v1."""
        return f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"

    def script(self, *entries) -> None:
        """Append reply/error/raw/hang entries to the answer queue."""
        with self._lock:
            self._queue.extend(entries)

    @property
    def remaining(self) -> int:
        """Scripted entries not consumed yet."""
        with self._lock:
            return len(self._queue)

    @property
    def chat_requests(self) -> list[dict]:
        """Recorded chat-completion requests (len() counts client retries)."""
        with self._lock:
            return [r for r in self.requests if r["path"].endswith("/chat/completions")]

    def _take(self, n: int):
        """Entries answering one request: [error/raw/hang] or n replies; None when too few are left."""
        with self._lock:
            if not self._queue:
                return None
            if self._queue[0]["kind"] != "reply" or n == 1:
                return [self._queue.popleft()]
            if len(self._queue) < n or any(self._queue[i]["kind"] != "reply" for i in range(n)):
                return None
            return [self._queue.popleft() for _ in range(n)]


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request, client_address):
        """A client that gave up (a timeout test) resets its connection: not worth a traceback."""
        import sys

        if not isinstance(sys.exc_info()[1], OSError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    """Per-connection handler; `fake` is injected by FakeOpenAI.start via a subclass."""

    fake: FakeOpenAI
    protocol_version = "HTTP/1.1"  # keep-alive like the real API; every non-stream answer has Content-Length

    def setup(self):
        super().setup()
        with self.fake._lock:
            self.fake._conns.add(self.connection)

    def finish(self):
        with self.fake._lock:
            self.fake._conns.discard(self.connection)
        try:
            super().finish()
        except OSError:
            pass  # socket already shut down by stop()

    def log_message(self, *args):  # keep test output quiet
        pass

    def _send(self, status, body: bytes, content_type="application/json", headers=None):
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in (headers or {}).items():
            self.send_header(k, str(v))
        self.end_headers()
        self.wfile.write(body)

    def _send_entry(self, e):
        self._send(e["status"], e["body"], e["content_type"], e["headers"])

    def _record(self, body):
        with self.fake._lock:
            # header names lower-cased: the sync (httpx) and async (aiohttp) clients differ in case
            self.fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "time": time.monotonic(),
                    "body": body,
                    "headers": {k.lower(): v for k, v in self.headers.items()},
                }
            )

    def do_GET(self):
        self._record(None)
        if self.path.rstrip("/").endswith("/models"):
            data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.fake.models]
            return self._send(200, json.dumps({"object": "list", "data": data}).encode())
        self._send_entry(error(404, f"fake server: no route GET {self.path}", type="not_found_error"))

    def do_POST(self):
        data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(data or b"{}")
        except ValueError:
            body = {"_unparsed": data.decode("utf-8", "replace")}
        self._record(body)
        if not self.path.rstrip("/").endswith("/chat/completions"):
            return self._send_entry(error(404, f"fake server: no route POST {self.path}", type="not_found_error"))
        try:
            self._answer_chat(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (timeout) before we answered

    def _answer_chat(self, req: dict):
        n = int(req.get("n") or 1)
        entries = self.fake._take(n)
        if entries is None:
            return self._send_entry(error(500, NO_REPLY_LEFT + (f" (request asked for n={n})" if n > 1 else "")))
        if entries[0]["kind"] == "hang":
            self.fake._stop.wait(entries[0]["seconds"])
            entries = [entries[0]["then"]]
        if entries[0]["kind"] == "trickle":
            return self._trickle(req, entries[0])
        if entries[0]["kind"] == "raw":
            return self._send_entry(entries[0])
        if req.get("stream"):
            return self._stream(req, entries, self._usage(req, entries))
        self._send(200, self._completion_body(req, entries))

    def _trickle(self, req: dict, entry: dict) -> None:
        body = self._completion_body(req, [entry["then"]])
        pad = int(entry["seconds"])
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(pad + len(body)))
        self.end_headers()
        for _ in range(pad):
            self.wfile.write(b" ")
            self.wfile.flush()
            if self.fake._stop.wait(1.0):
                return
        self.wfile.write(body)

    def _completion_body(self, req: dict, entries: list) -> bytes:
        choices = []
        for i, e in enumerate(entries):
            msg = {"role": "assistant", "content": e["content"]}
            if e["tool_calls"]:
                msg["tool_calls"] = [
                    {"id": tc["id"], "type": "function", "function": {"name": tc["name"], "arguments": tc["arguments"]}}
                    for tc in e["tool_calls"]
                ]
            choices.append({"index": i, "message": msg, "finish_reason": e["finish_reason"], "logprobs": None})
        completion = {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": req.get("model", "fake-model"),
            "choices": choices,
            "usage": self._usage(req, entries),
        }
        return json.dumps(completion).encode()

    @staticmethod
    def _usage(req: dict, entries: list) -> dict:
        """The first entry's scripted usage wins; missing numbers are estimated from the request."""
        scripted = entries[0]["usage"] or {}
        prompt = scripted.get(
            "prompt_tokens", _tokens(json.dumps(req.get("messages", [])) + json.dumps(req.get("tools", [])))
        )
        completion = scripted.get(
            "completion_tokens",
            sum(_tokens((e["content"] or "") + "".join(tc["arguments"] for tc in e["tool_calls"])) for e in entries),
        )
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": scripted.get("total_tokens", prompt + completion),
        }

    def _stream(self, req: dict, entries: list, usage: dict):
        """Answer as SSE chunks; without Content-Length the connection closes after [DONE]."""
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True
        base = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": req.get("model", "fake-model"),
        }

        def send(choices, **extra):
            self.wfile.write(b"data: " + json.dumps({**base, "choices": choices, **extra}).encode() + b"\n\n")
            self.wfile.flush()

        def delta(i, d, finish=None):
            send([{"index": i, "delta": d, "finish_reason": finish}])
            pause = entries[i].get("stream_delay") or 0.0
            if pause and self.fake._stop.wait(pause):
                raise BrokenPipeError  # the server is stopping: end this stream

        for i, e in enumerate(entries):
            delta(i, {"role": "assistant", "content": ""})
            text = e["content"] or ""
            size = e.get("stream_chunk") or 8
            for k in range(0, len(text), size):  # several small deltas, like the real API
                delta(i, {"content": text[k : k + size]})
            for j, tc in enumerate(e["tool_calls"]):
                # OpenAI's shape: the first delta carries id/type/name, later ones only argument fragments
                delta(
                    i,
                    {
                        "tool_calls": [
                            {
                                "index": j,
                                "id": tc["id"],
                                "type": "function",
                                "function": {"name": tc["name"], "arguments": ""},
                            }
                        ]
                    },
                )
                for k in range(0, len(tc["arguments"]), 8):
                    delta(i, {"tool_calls": [{"index": j, "function": {"arguments": tc["arguments"][k : k + 8]}}]})
            delta(i, {}, e["finish_reason"])
        if (req.get("stream_options") or {}).get("include_usage"):
            send([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()
