"""Logins and sessions of the Salesforce sandbox: OAuth 2.0 grants, SOAP login, idle expiry."""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import secrets
import time
import xml.etree.ElementTree as ElementTree
from collections.abc import Callable
from datetime import datetime
from html import escape
from pathlib import Path
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from include.sandbox.salesforce.ids import ORG_ID_PREFIX, USER_ID_PREFIX, make_id
from include.sandbox.salesforce.settings import SalesforceSandboxSettings
from include.sandbox.salesforce.store import SalesforceStore

logger = logging.getLogger(__name__)

ORG_ID = make_id(ORG_ID_PREFIX, 1)
USER_ID = make_id(USER_ID_PREFIX, 1)
JWT_PRIVATE_KEY_FILE = "jwt_private_key.pem"
JWT_PUBLIC_KEY_FILE = "jwt_public_key.pem"
JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_LAST_USED_WRITE_SECONDS = 60.0


class OAuthError(Exception):
    """A failed OAuth token request: the OAuth ``error`` code and its description."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description


def ensure_jwt_key_pair(data_dir: Path) -> tuple[Path, Path]:
    """Create the RSA key pair for the JWT bearer grant in ``data_dir`` unless it exists.

    :return: (private key path, public key path), both PEM.
    """
    private_path = data_dir / JWT_PRIVATE_KEY_FILE
    public_path = data_dir / JWT_PUBLIC_KEY_FILE
    if private_path.exists() and public_path.exists():
        return private_path, public_path
    data_dir.mkdir(parents=True, exist_ok=True)
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    private_path.chmod(0o600)
    public_path.write_bytes(
        key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    logger.info("Generated the JWT signing key pair in %s", data_dir)
    return private_path, public_path


class SessionManager:
    """Sessions issued at login and expired after an idle time measured by the sandbox clock."""

    def __init__(
        self, store: SalesforceStore, clock: Callable[[], datetime], idle_seconds: float
    ) -> None:
        self.store = store
        self.clock = clock
        self.idle_seconds = idle_seconds
        self._last_used: dict[str, float] = {}

    def create(self, grant_type: str) -> str:
        """Start a session and return its id (``<org id>!<random>``, as Salesforce forms it)."""
        token = f"{ORG_ID[:15]}!{secrets.token_urlsafe(48)}"
        now = self.clock().timestamp()
        with self.store.lock:
            self.store.connection.execute(
                "INSERT INTO _sessions (token, grant_type, last_used) VALUES (?, ?, ?)",
                (token, grant_type, now),
            )
        self._last_used[token] = now
        logger.info("Started a session by the %s grant", grant_type)
        return token

    def touch(self, token: str) -> bool:
        """Return True and mark the session used when it exists and is not idle too long."""
        now = self.clock().timestamp()
        last_used = self._last_used.get(token)
        if last_used is None:
            with self.store.lock:
                row = self.store.connection.execute(
                    "SELECT last_used FROM _sessions WHERE token = ?", (token,)
                ).fetchone()
            if row is None:
                return False
            last_used = float(row[0])
        if now - last_used > self.idle_seconds:
            self._forget(token)
            return False
        self._last_used[token] = now
        if now - last_used > _LAST_USED_WRITE_SECONDS:
            with self.store.lock:
                self.store.connection.execute(
                    "UPDATE _sessions SET last_used = ? WHERE token = ?", (now, token)
                )
        return True

    def expire_all(self) -> int:
        """End every session now and return how many there were."""
        with self.store.lock:
            count = self.store.connection.execute("DELETE FROM _sessions").rowcount
        self._last_used.clear()
        logger.info("Expired %d sessions", count)
        return count

    def _forget(self, token: str) -> None:
        self._last_used.pop(token, None)
        with self.store.lock:
            self.store.connection.execute("DELETE FROM _sessions WHERE token = ?", (token,))


class Authenticator:
    """Credential checks of the token endpoint and the SOAP login."""

    def __init__(
        self, settings: SalesforceSandboxSettings, sessions: SessionManager, public_key: bytes
    ) -> None:
        self.settings = settings
        self.sessions = sessions
        self.public_key = public_key

    def token_response(self, form: dict[str, str], authorization: str | None) -> dict[str, Any]:
        """Run an OAuth 2.0 token request and build the JSON Salesforce returns.

        :param form: the form fields of ``POST /services/oauth2/token``.
        :param authorization: the ``Authorization`` header (Basic for client credentials).
        :raises OAuthError: for a wrong client, user, password, assertion or grant type.
        """
        grant_type = form.get("grant_type", "")
        if grant_type == "password":
            self._check_client(form.get("client_id"), form.get("client_secret"))
            self._check_user_password(form.get("username"), form.get("password"))
        elif grant_type == "client_credentials":
            client_id, client_secret = form.get("client_id"), form.get("client_secret")
            if authorization and authorization.lower().startswith("basic "):
                client_id, client_secret = _basic_credentials(authorization)
            self._check_client(client_id, client_secret)
        elif grant_type == JWT_GRANT:
            self._check_assertion(form.get("assertion", ""))
        else:
            raise OAuthError("unsupported_grant_type", "grant type not supported")

        token = self.sessions.create(grant_type)
        issued_at = str(int(time.time() * 1000))
        identity = f"https://login.salesforce.com/id/{ORG_ID}/{USER_ID}"
        signature = hmac.new(
            self.settings.consumer_secret.encode(), (identity + issued_at).encode(), hashlib.sha256
        ).digest()
        return {
            "access_token": token,
            "instance_url": self.settings.instance_url,
            "id": identity,
            "token_type": "Bearer",
            "issued_at": issued_at,
            "signature": base64.b64encode(signature).decode(),
            "scope": "api",
        }

    def _check_client(self, client_id: str | None, client_secret: str | None) -> None:
        if client_id != self.settings.consumer_key:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if not hmac.compare_digest(client_secret or "", self.settings.consumer_secret):
            raise OAuthError("invalid_client", "invalid client credentials")

    def _check_user_password(self, username: str | None, password: str | None) -> None:
        expected = {self.settings.password, self.settings.password + self.settings.security_token}
        if username != self.settings.username or password not in expected:
            raise OAuthError("invalid_grant", "authentication failure")

    def _check_assertion(self, assertion: str) -> None:
        audiences = [
            "https://login.salesforce.com",
            "https://test.salesforce.com",
            self.settings.instance_url,
        ]
        try:
            claims = jwt.decode(
                assertion,
                self.public_key,
                algorithms=["RS256"],
                audience=audiences,
                options={"require": ["iss", "sub", "aud", "exp"]},
            )
        except jwt.PyJWTError as exc:
            logger.info("Rejected a JWT bearer assertion: %s", type(exc).__name__)
            raise OAuthError("invalid_grant", "invalid assertion") from exc
        if claims["iss"] != self.settings.consumer_key:
            raise OAuthError("invalid_client_id", "client identifier invalid")
        if claims["sub"] != self.settings.username:
            raise OAuthError("invalid_grant", "user hasn't approved this consumer")

    def soap_login(self, body: bytes, version: str) -> tuple[int, str]:
        """Run a SOAP ``login`` call; return (HTTP status, XML envelope).

        Success is 200 with ``sessionId`` and ``serverUrl`` unprefixed in the partner
        namespace; failure is 500 with a ``soapenv:Fault`` holding ``sf:exceptionCode``.
        """
        username, password = _soap_credentials(body)
        expected = self.settings.password + self.settings.security_token
        if username != self.settings.username or not hmac.compare_digest(
            (password or "").encode(), expected.encode()
        ):
            return 500, _soap_fault(
                "INVALID_LOGIN", "Invalid username, password, security token; or user locked out."
            )
        token = self.sessions.create("soap")
        base = self.settings.instance_url.rstrip("/")
        return 200, _soap_success(
            session_id=token,
            server_url=f"{base}/services/Soap/u/{version}/{ORG_ID[:15]}",
            metadata_url=f"{base}/services/Soap/m/{version}/{ORG_ID[:15]}",
            username=self.settings.username,
            idle_seconds=int(self.sessions.idle_seconds),
        )


def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    try:
        decoded = base64.b64decode(header.split(" ", 1)[1]).decode()
    except (ValueError, UnicodeDecodeError):
        return None, None
    client_id, _, client_secret = decoded.partition(":")
    return client_id, client_secret


def _soap_credentials(body: bytes) -> tuple[str | None, str | None]:
    try:
        root = ElementTree.fromstring(body)
    except ElementTree.ParseError:
        return None, None
    values: dict[str, str] = {}
    for element in root.iter():
        local_name = element.tag.rsplit("}", 1)[-1]
        if local_name in ("username", "password") and local_name not in values:
            values[local_name] = element.text or ""
    return values.get("username"), values.get("password")


def _soap_fault(code: str, message: str) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:sf="urn:fault.partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><soapenv:Fault>"
        f"<faultcode>sf:{code}</faultcode><faultstring>{escape(code)}: {escape(message)}"
        "</faultstring><detail>"
        '<sf:LoginFault xsi:type="sf:LoginFault">'
        f"<sf:exceptionCode>{escape(code)}</sf:exceptionCode>"
        f"<sf:exceptionMessage>{escape(message)}</sf:exceptionMessage>"
        "</sf:LoginFault></detail></soapenv:Fault></soapenv:Body></soapenv:Envelope>"
    )


def _soap_success(
    *, session_id: str, server_url: str, metadata_url: str, username: str, idle_seconds: int
) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns="urn:partner.soap.sforce.com" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body><loginResponse><result>"
        f"<metadataServerUrl>{escape(metadata_url)}</metadataServerUrl>"
        "<passwordExpired>false</passwordExpired><sandbox>true</sandbox>"
        f"<serverUrl>{escape(server_url)}</serverUrl>"
        f"<sessionId>{escape(session_id)}</sessionId>"
        f"<userId>{USER_ID}</userId>"
        "<userInfo>"
        f"<organizationId>{ORG_ID}</organizationId>"
        "<organizationName>Cerkl Sync Sandbox</organizationName>"
        f"<sessionSecondsValid>{idle_seconds}</sessionSecondsValid>"
        f"<userId>{USER_ID}</userId><userName>{escape(username)}</userName>"
        "</userInfo></result></loginResponse></soapenv:Body></soapenv:Envelope>"
    )
