"""Logins and sessions: every OAuth grant, the SOAP login, idle expiry and re-login."""

from __future__ import annotations

import json
from typing import Any

import pytest
import requests
from simple_salesforce import Salesforce
from simple_salesforce.exceptions import (
    SalesforceAuthenticationFailed,
    SalesforceExpiredSession,
)

from include.sandbox.salesforce.auth import JWT_PRIVATE_KEY_FILE

from .conftest import SETTINGS


def test_soap_login_then_query(sf_server: Any) -> None:
    client = sf_server.client()
    assert client.sf_instance == "sandbox.my.salesforce.com"
    assert client.query("SELECT COUNT() FROM Contact")["totalSize"] == 0


def test_soap_login_wrong_password_fails(sf_server: Any) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        sf_server.client(password="wrong")
    assert caught.value.code == "INVALID_LOGIN"


def test_soap_login_fault_shape(sf_server: Any) -> None:
    response = requests.post(
        f"{sf_server.url}/services/Soap/u/59.0",
        data="<not-xml",
        headers={"content-type": "text/xml", "SOAPAction": "login"},
        timeout=10,
    )
    assert response.status_code == 500
    assert "<sf:exceptionCode>INVALID_LOGIN</sf:exceptionCode>" in response.text
    assert "soapenv:Fault" in response.text


def test_oauth_password_grant(sf_server: Any) -> None:
    client = Salesforce(
        username=SETTINGS.username,
        password=SETTINGS.password + SETTINGS.security_token,
        consumer_key=SETTINGS.consumer_key,
        consumer_secret=SETTINGS.consumer_secret,
        session=sf_server.session(),
    )
    assert client.query("SELECT COUNT() FROM Account")["totalSize"] == 0


def test_oauth_password_grant_wrong_secret(sf_server: Any) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(
            username=SETTINGS.username,
            password=SETTINGS.password,
            consumer_key=SETTINGS.consumer_key,
            consumer_secret="wrong",
            session=sf_server.session(),
        )
    assert caught.value.code == "invalid_client"


def test_oauth_password_grant_wrong_password(sf_server: Any) -> None:
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(
            username=SETTINGS.username,
            password="wrong",
            consumer_key=SETTINGS.consumer_key,
            consumer_secret=SETTINGS.consumer_secret,
            session=sf_server.session(),
        )
    assert caught.value.code == "invalid_grant"


def test_oauth_client_credentials_grant(sf_server: Any) -> None:
    client = Salesforce(
        consumer_key=SETTINGS.consumer_key,
        consumer_secret=SETTINGS.consumer_secret,
        domain="sandbox.my",
        session=sf_server.session(),
    )
    assert client.query("SELECT COUNT() FROM Lead")["totalSize"] == 0


def test_oauth_unsupported_grant_type(sf_server: Any) -> None:
    response = requests.post(
        f"{sf_server.url}/services/oauth2/token", data={"grant_type": "implicit"}, timeout=10
    )
    assert response.status_code == 400
    assert response.json()["error"] == "unsupported_grant_type"


def test_oauth_jwt_bearer_grant(sf_server: Any) -> None:
    client = Salesforce(
        username=SETTINGS.username,
        consumer_key=SETTINGS.consumer_key,
        privatekey_file=str(sf_server.data_dir / JWT_PRIVATE_KEY_FILE),
        session=sf_server.session(),
    )
    assert client.query("SELECT COUNT() FROM Campaign")["totalSize"] == 0


def test_oauth_jwt_bearer_wrong_key(sf_server: Any) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = other_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    with pytest.raises(SalesforceAuthenticationFailed) as caught:
        Salesforce(
            username=SETTINGS.username,
            consumer_key=SETTINGS.consumer_key,
            privatekey=pem,
            session=sf_server.session(),
        )
    assert caught.value.code == "invalid_grant"


def test_session_expired_by_control_route(sf_server: Any) -> None:
    client = sf_server.client()
    session_id = client.session_id
    sf_server.control("POST", "sessions/expire")
    response = requests.get(
        f"{sf_server.url}/services/data/v59.0/limits",
        headers={"Authorization": f"Bearer {session_id}"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json() == [
        {"message": "Session expired or invalid", "errorCode": "INVALID_SESSION_ID"}
    ]


def test_session_idle_expiry_by_sandbox_clock(sf_server: Any) -> None:
    client = Salesforce(
        instance_url=sf_server.client().base_url.split("/services")[0],
        session_id=sf_server.client().session_id,
        session=sf_server.session(),
    )
    client.query("SELECT COUNT() FROM Contact")
    sf_server.control("POST", "clock/advance", {"seconds": SETTINGS.session_idle_seconds - 60})
    client.query("SELECT COUNT() FROM Contact")
    sf_server.control("POST", "clock/advance", {"seconds": SETTINGS.session_idle_seconds + 1})
    with pytest.raises(SalesforceExpiredSession):
        client.query("SELECT COUNT() FROM Contact")


def test_simple_salesforce_relogs_in_after_expiry(sf_server: Any) -> None:
    client = sf_server.client()
    first_session = client.session_id
    sf_server.control("POST", "sessions/expire")
    assert client.query("SELECT COUNT() FROM Contact")["totalSize"] == 0
    assert client.session_id != first_session


def test_bulk2_expired_session_is_401(sf_server: Any) -> None:
    client = sf_server.client()
    sf_server.control("POST", "sessions/expire")
    response = requests.post(
        f"{sf_server.url}/services/data/v59.0/jobs/query",
        headers={"Authorization": f"Bearer {client.session_id}"},
        json={"operation": "query", "query": "SELECT Id FROM Contact"},
        timeout=10,
    )
    assert response.status_code == 401
    assert response.json()[0]["errorCode"] == "INVALID_SESSION_ID"


def test_unknown_bearer_token_is_401(sf_server: Any) -> None:
    response = requests.get(
        f"{sf_server.url}/services/data/v59.0/sobjects",
        headers={"Authorization": "Bearer not-a-session"},
        timeout=10,
    )
    assert response.status_code == 401


def test_salesforce_hook_with_sandbox_session(
    sf_server: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow.providers.salesforce.hooks.salesforce import SalesforceHook

    from include.cerkl_sync.salesforce_transport import build_salesforce_session

    connection = {
        "conn_type": "salesforce",
        "login": SETTINGS.username,
        "password": SETTINGS.password,
        "extra": {"security_token": SETTINGS.security_token},
    }
    monkeypatch.setenv("AIRFLOW_CONN_SALESFORCE_DEFAULT", json.dumps(connection))
    sf_server.seed("Contact", [{"LastName": "Hooked", "Email": "hooked@example.com"}])

    hook = SalesforceHook(
        salesforce_conn_id="salesforce_default", session=build_salesforce_session(sf_server.url)
    )
    assert hook.get_conn().sf_instance == "sandbox.my.salesforce.com"
    result = hook.make_query("SELECT LastName, Email FROM Contact")
    assert result["totalSize"] == 1
    assert result["records"][0]["LastName"] == "Hooked"
    assert hook.test_connection() == (True, "Connection successfully tested")
    assert "Cerkl_Subscriber_Id__c" in hook.get_available_fields("Contact")
