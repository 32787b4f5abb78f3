"""A loopback stand-in for Vault's KV v2 HTTP API (no Vault binary here), answering with the
shapes of Vault's recorded responses (https://developer.hashicorp.com/vault/api-docs/secret/kv/
kv-v2) and recording every exchange."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

TOKEN = "hvs.test-token-for-the-recorded-exchange"


class VaultStandIn:
    def __init__(self, mount: str = "secret") -> None:
        self.mount = mount
        self.data: dict[str, list[dict]] = {}  # path -> versions
        self.exchanges: list[tuple[str, str, int]] = []
        self.down = False
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):  # quiet
                pass

            def _answer(self, status: int, document: dict | None = None) -> None:
                stand_in.exchanges.append((self.command, self.path, status))
                body = json.dumps(document).encode() if document is not None else b""
                self.send_response(status)
                if body:
                    self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def _route(self) -> tuple[str, str] | None:
                if stand_in.down:
                    self._answer(503, {"errors": ["Vault is sealed"]})
                    return None
                if self.headers.get("X-Vault-Token") != TOKEN:
                    self._answer(403, {"errors": ["permission denied"]})
                    return None
                prefix = f"/v1/{stand_in.mount}/"
                path = self.path.split("?")[0]
                if not path.startswith(prefix):
                    self._answer(404, {"errors": []})
                    return None
                kind, _, rest = path[len(prefix):].partition("/")
                return kind, rest

            def do_GET(self):
                route = self._route()
                if route is None:
                    return
                kind, path = route
                if "list=true" in self.path:
                    return self._list(path)
                versions = stand_in.data.get(path)
                if kind != "data" or not versions:
                    return self._answer(404, {"errors": []})
                return self._answer(200, {
                    "request_id": "0f2bd8a5-1b7e-4ad8-9cbd-2b1a8c1b2c3d", "lease_id": "",
                    "renewable": False, "lease_duration": 0,
                    "data": {"data": versions[-1],
                             "metadata": {"created_time": "2026-12-07T10:00:00.000000Z",
                                          "deletion_time": "", "destroyed": False,
                                          "version": len(versions)}},
                    "wrap_info": None, "warnings": None, "auth": None})

            def do_POST(self):
                route = self._route()
                if route is None:
                    return
                kind, path = route
                length = int(self.headers.get("Content-Length") or 0)
                document = json.loads(self.rfile.read(length) or b"{}")
                if kind != "data":
                    return self._answer(404, {"errors": []})
                stand_in.data.setdefault(path, []).append(document["data"])
                return self._answer(200, {"data": {
                    "created_time": "2026-12-07T10:00:00.000000Z", "deletion_time": "",
                    "destroyed": False, "version": len(stand_in.data[path])}})

            do_PUT = do_POST

            def do_DELETE(self):
                route = self._route()
                if route is None:
                    return
                kind, path = route
                if kind == "metadata":
                    stand_in.data.pop(path, None)
                return self._answer(204)

            def do_LIST(self):
                route = self._route()
                if route is not None:
                    self._list(route[1])

            def _list(self, path: str) -> None:
                folder = path.rstrip("/") + "/" if path else ""
                keys = set()
                for name in stand_in.data:
                    if name.startswith(folder):
                        head, sep, _ = name[len(folder):].partition("/")
                        keys.add(head + sep)
                if not keys:
                    return self._answer(404, {"errors": []})
                return self._answer(200, {"data": {"keys": sorted(keys)}})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> VaultStandIn:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()
