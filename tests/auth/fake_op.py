"""A deliberately misbehaving OpenID provider for the ID-token negative tests.

Serves discovery, JWKS and a token endpoint on loopback. The token endpoint answers with
whatever ID token the test sets (badly signed, expired, wrong audience, ...), so the console's
validation is exercised on tokens a real provider would never issue. Positive flows use the
real provider (tests/support/oidc_provider.py).
"""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs

from joserfc import jwt
from joserfc.jwk import RSAKey


class FakeProvider:
    def __init__(self, client_id: str):
        self.client_id = client_id
        self.key = RSAKey.generate_key(2048, parameters={"kid": "good", "use": "sig",
                                                         "alg": "RS256"})
        self.id_token: str | None = None
        self.token_requests: list[dict[str, list[str]]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.issuer = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeProvider:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)

    def claims(self, nonce: str, **overrides) -> dict:
        now = int(time.time())
        claims = {"iss": self.issuer, "sub": "persona-operator", "aud": self.client_id,
                  "iat": now, "exp": now + 300, "auth_time": now, "nonce": nonce,
                  "preferred_username": "operator", "name": "Oskar Operator",
                  "groups": ["console-operators"]}
        claims.update(overrides)
        return {k: v for k, v in claims.items() if v is not None}

    def sign(self, claims: dict, key=None, *, alg: str = "RS256", kid: str = "good") -> str:
        return jwt.encode({"alg": alg, "kid": kid}, claims, key or self.key)

    def discovery(self) -> dict:
        return {
            "issuer": self.issuer,
            "authorization_endpoint": f"{self.issuer}/authorize",
            "token_endpoint": f"{self.issuer}/token",
            "jwks_uri": f"{self.issuer}/jwks",
            "end_session_endpoint": f"{self.issuer}/logout",
            "id_token_signing_alg_values_supported": ["RS256"],
            "token_endpoint_auth_methods_supported": ["client_secret_basic"],
        }

    def _handler(self):
        provider = self

        class Handler(BaseHTTPRequestHandler):
            def _json(self, status: int, value: dict) -> None:
                body = json.dumps(value).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path == "/.well-known/openid-configuration":
                    return self._json(200, provider.discovery())
                if self.path == "/jwks":
                    return self._json(200, {"keys": [provider.key.as_dict(private=False)]})
                return self._json(404, {})

            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode())
                provider.token_requests.append(form)
                if self.path != "/token" or provider.id_token is None:
                    return self._json(400, {"error": "invalid_grant"})
                return self._json(200, {"access_token": "at", "token_type": "Bearer",
                                        "expires_in": 300, "id_token": provider.id_token})

            def log_message(self, *_args):
                pass

        return Handler
