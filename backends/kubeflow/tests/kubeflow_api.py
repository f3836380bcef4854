"""A local HTTP server that speaks the KFP v2beta1 REST shapes ``kfp.Client`` uses, replaying a
recorded exchange file and recording every request, so deploy tests can assert the requests.

A fixture (``fixtures/*.json``) is ``{"exchanges": [...]}``, in the order the client must send
them. Each exchange has ``method``, ``path``, optionally ``query`` (parameters that must be
present with these values; a JSON-text value is compared as JSON) and ``body`` (the JSON request
body: every key given must be there with that value, recursively; lists compare whole), and the ``response`` (JSON) with an optional ``status``. A request that does not
match the next exchange gets a 500 and is listed in :attr:`KfpApi.problems`. ``$NAME`` in a
fixture is replaced by ``values["NAME"]`` (values only the test knows, such as a content hash).
"""

from __future__ import annotations

import contextlib
import email.parser
import email.policy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

FIXTURES = Path(__file__).parent / "fixtures"


class KfpApi:
    """``with KfpApi("new_pipeline") as api: ... api.url ...``; then check ``api.problems``."""

    def __init__(self, fixture: str, values: dict[str, str] | None = None) -> None:
        text = (FIXTURES / f"{fixture}.json").read_text()
        for key, value in (values or {}).items():
            text = text.replace(f"${key}", value)
        self.exchanges: list[dict[str, Any]] = json.loads(text)["exchanges"]
        self.requests: list[dict[str, Any]] = []
        self.uploads: list[str] = []
        self.problems: list[str] = []
        self._next = 0
        self._lock = threading.Lock()
        api = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length) if length else b""
                status, body = api.handle(self.command, self.path, self.headers.get("Content-Type", ""), raw)
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = do_DELETE = do_PUT = _serve

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> KfpApi:
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def unconsumed(self) -> list[str]:
        return [f"{e['method']} {e['path']}" for e in self.exchanges[self._next :]]

    def handle(self, method: str, target: str, content_type: str, raw: bytes) -> tuple[int, Any]:
        url = urlsplit(target)
        query = dict(parse_qsl(url.query))
        body: Any = None
        if content_type.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                b"Content-Type: " + content_type.encode() + b"\r\n\r\n" + raw
            )
            for part in message.iter_parts():
                self.uploads.append(
                    part.get_content() if isinstance(part.get_content(), str) else part.get_content().decode()
                )
        elif raw:
            body = json.loads(raw)
        with self._lock:
            self.requests.append({"method": method, "path": url.path, "query": query, "body": body})
            if self._next >= len(self.exchanges):
                self.problems.append(f"unexpected {method} {url.path} (no exchange left)")
                return 500, {"error": "no exchange left"}
            want = self.exchanges[self._next]
            problems = _mismatch(want, method, url.path, query, body)
            if problems:
                self.problems.extend(f"{method} {url.path}: {p}" for p in problems)
                return 500, {"error": "; ".join(problems)}
            self._next += 1
            return int(want.get("status", 200)), want.get("response", {})


def _mismatch(want: dict[str, Any], method: str, path: str, query: dict[str, str], body: Any) -> list[str]:
    if (want["method"], want["path"]) != (method, path):
        return [f"expected {want['method']} {want['path']}"]
    problems = []
    for key, value in want.get("query", {}).items():
        got = query.get(key)
        if got is None:
            problems.append(f"query {key!r} missing")
            continue
        if not isinstance(value, str):
            with contextlib.suppress(json.JSONDecodeError):
                got = json.loads(got)
        if got != value:
            problems.append(f"query {key!r} = {got!r}, expected {value!r}")
    if "body" in want and not _contains(body, want["body"]):
        problems.append(
            f"body {json.dumps(body, sort_keys=True)} != {json.dumps(want['body'], sort_keys=True)}"
        )
    return problems


def _contains(got: Any, want: Any) -> bool:
    if isinstance(want, dict):
        return isinstance(got, dict) and all(k in got and _contains(got[k], v) for k, v in want.items())
    return bool(got == want and type(got) is type(want))
