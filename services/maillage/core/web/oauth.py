"""The OAuth 2.0 token endpoint (client-credentials grant, RFC 6749 §4.4) on Starlette, with authlib.

authlib's `AuthorizationServer` does the protocol — the grant, client authentication by `client_secret_basic`
or `client_secret_post`, scope checks, the error codes — and leaves the web framework to an adapter, which
authlib ships for Flask and Django but not for Starlette: this is that adapter. authlib is synchronous; the
client's row is read first (asynchronously) and handed to it for the one request.

The access token is the agency's own: an EdDSA JWT minted with its token key, for the scopes asked (at most
those the client was registered with), naming the client (RFC 9068's `client_id`), an hour at most.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextvars
import re
from collections import defaultdict
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, unquote

from authlib.oauth2.rfc6749 import AuthorizationServer, ClientMixin, OAuth2Payload, OAuth2Request
from authlib.oauth2.rfc6749.errors import InsecureTransportError, InvalidScopeError
from authlib.oauth2.rfc6749.grants import ClientCredentialsGrant
from pydantic import BaseModel, Field
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from maillage.core.clients.models import ClientRow
from maillage.core.crypto.secrets import check_secret
from maillage.core.crypto.tokens import MAX_LIFETIME, Scope
from maillage.core.i18n import DEFAULT_LANGUAGE, translate
from maillage.core.web.problems import problem

TOKEN_PATH = "/oauth/token"
FORM = "application/x-www-form-urlencoded"
AUTH_METHODS = ["client_secret_basic", "client_secret_post"]
CLIENT_CREDENTIALS = "client_credentials"
MAX_FORM_FIELDS = 16
CLIENT_ID = re.compile(r"[a-z0-9][a-z0-9.-]{0,127}")

# The row of the client asking, read before authlib (synchronous) runs: one per request, never shared.
_asking: contextvars.ContextVar[ClientRow | None] = contextvars.ContextVar("oauth_client", default=None)


class RegisteredClient(ClientMixin):  # type: ignore[misc]
    """authlib's view of a registered client: a confidential client of the client-credentials grant only."""

    def __init__(self, row: ClientRow) -> None:
        self.row = row

    def get_client_id(self) -> str:
        return self.row.client_id

    def check_client_secret(self, client_secret: str) -> bool:
        return check_secret(str(client_secret), self.row.secret_hash)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return endpoint == "token" and method in AUTH_METHODS

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == CLIENT_CREDENTIALS

    def get_allowed_scope(self, scope: str | None) -> str:
        """The scopes asked, those it may have (all it may have when it asks for none)."""
        allowed = set(self.row.scopes)
        asked = set(scope.split()) if scope else allowed
        return " ".join(sorted(asked & allowed))


class _Grant(ClientCredentialsGrant):  # type: ignore[misc]
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS


class _Payload(OAuth2Payload):  # type: ignore[misc]
    def __init__(self, fields: list[tuple[str, str]]) -> None:
        self._data = dict(fields)
        self._datalist: defaultdict[str, list[str]] = defaultdict(list)
        for name, value in fields:
            self._datalist[name].append(value)

    @property
    def data(self) -> dict[str, str]:
        return self._data

    @property
    def datalist(self) -> defaultdict[str, list[str]]:
        return self._datalist


class _Request(OAuth2Request):  # type: ignore[misc]
    def __init__(self, request: Request, fields: list[tuple[str, str]]) -> None:
        super().__init__(method=request.method, uri=str(request.url), headers=request.headers)
        self.payload = _Payload(fields)
        self._fields = dict(fields)

    @property
    def args(self) -> dict[str, str]:
        return {}

    @property
    def form(self) -> dict[str, str]:
        return self._fields


Mint = Callable[[str, list[Scope]], str]


class TokenAnswer(BaseModel):
    """RFC 6749 §5.1's answer."""

    access_token: str = Field(description="An EdDSA JWT of the agency, naming the client; an hour at most.")
    token_type: str = "Bearer"
    expires_in: int
    scope: str = Field(description="The scopes granted: those asked, or all the client may have.")


class TokenEndpoint(AuthorizationServer):  # type: ignore[misc]
    """One agency's token endpoint: `load` reads a client's row; `mint` makes the token for a client and scopes."""

    def __init__(self, *, load: Callable[[str], Awaitable[ClientRow | None]], mint: Mint) -> None:
        super().__init__(scopes_supported=[s.value for s in Scope])
        self._load, self._mint = load, mint
        self.register_grant(_Grant)
        self.register_token_generator("default", self._token)

    async def respond(self, request: Request) -> Response:
        fields = _form(await request.body())
        if fields is None:
            return _oauth_error(request, 400, "invalid_request", "problem.oauth.not-a-form")
        client_id = _basic_client_id(request.headers.get("authorization")) or dict(fields).get("client_id")
        # An id that cannot be one `maillage clients add` made is unknown, not a question for the database (which
        # would refuse a NUL in it).
        row = await self._load(client_id) if client_id and CLIENT_ID.fullmatch(client_id) else None
        try:
            oauth_request = _Request(request, fields)
        except InsecureTransportError:
            return _oauth_error(request, 400, "invalid_request", "problem.oauth.tls-only")
        token = _asking.set(row if row is not None and row.revoked_at is None else None)
        try:
            # In a thread: checking a secret costs scrypt's tens of milliseconds, which the event loop must not wait.
            status, body, headers = await asyncio.to_thread(self.create_token_response, oauth_request)
        finally:
            _asking.reset(token)
        if status != 200:
            error = body.get("error", "invalid_request")
            # One answer for an unknown client and a wrong secret: no probing which client ids exist.
            description = None if error == "invalid_client" else body.get("error_description")
            return _oauth_error(request, status, error, None, description=description)
        return JSONResponse(body, status_code=200, headers=dict(headers))

    # --- what authlib asks of an integration ----------------------------------------------------------------

    def query_client(self, client_id: str) -> RegisteredClient | None:
        row = _asking.get()
        return RegisteredClient(row) if row is not None and row.client_id == client_id else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to store: the token is a signed JWT, checked by its signature wherever it is used."""

    def create_oauth2_request(self, request: OAuth2Request) -> OAuth2Request:
        return request

    def handle_response(self, status: int, body: Any, headers: Any) -> tuple[int, Any, Any]:
        return status, body, headers

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        pass

    def _token(
        self,
        *,
        grant_type: str,
        client: RegisteredClient,
        user: Any = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = False,
    ) -> dict[str, Any]:
        granted = [Scope(s) for s in client.get_allowed_scope(scope).split()]
        if not granted:
            raise InvalidScopeError()
        return {
            "access_token": self._mint(client.row.client_id, granted),
            "token_type": "Bearer",
            "expires_in": int(MAX_LIFETIME.total_seconds()),
            "scope": " ".join(s.value for s in granted),
        }


def _form(body: bytes) -> list[tuple[str, str]] | None:
    try:
        fields = parse_qsl(
            body.decode(), keep_blank_values=True, strict_parsing=bool(body), max_num_fields=MAX_FORM_FIELDS
        )
    except (UnicodeDecodeError, ValueError):
        return None
    return fields


def _basic_client_id(authorization: str | None) -> str | None:
    if not authorization or not authorization.lower().startswith("basic "):
        return None
    try:
        decoded = base64.b64decode(authorization[6:].strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError):
        return None
    client_id, _, _ = decoded.partition(":")
    return unquote(client_id) or None


def _oauth_error(
    request: Request, status: int, error: str, key: str | None, *, description: str | None = None
) -> Response:
    """RFC 6749 §5.2's error, as an RFC 9457 problem that also carries its `error` members (OAuth clients
    read those): the detail is the message `key` (else the error's own) in the request's language, the
    `error_description` authlib's, else the detail in English — for a client's logs, not for people."""
    key = key or (f"problem.oauth.{error}" if error in OAUTH_ERRORS else "problem.oauth.invalid")
    described = description or translate(DEFAULT_LANGUAGE, key)
    answer = problem(request, status=status, code=code_of(error), detail=key, error=error, error_description=described)
    if status == 401:
        answer.headers["WWW-Authenticate"] = 'Basic realm="maillage"'
    return answer


OAUTH_ERRORS = frozenset(
    {"invalid_client", "unsupported_grant_type", "invalid_scope", "unauthorized_client", "invalid_request"}
)


def code_of(error: str) -> str:
    return "invalid-client" if error == "invalid_client" else "oauth"
