"""Access and session tokens: issue, verify, and every way a token must be refused."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives import serialization

from hygie.platform import Platform
from hygie.security.keys import FileKeyStore
from hygie.security.model import Kind, Principal
from hygie.security.scopes import ScopeSet
from hygie.security.tokens import (
    ExpiredToken,
    InvalidToken,
    TokenService,
    issue_service_token,
    tokens_for,
)

AUD = "https://hygie.example"


def service(tmp_path: Path, **kw: object) -> TokenService:
    args: dict[str, object] = {"issuer": "hygie", "audience": AUD}
    args.update(kw)
    return TokenService(FileKeyStore(tmp_path / "keys"), **args)  # type: ignore[arg-type]


def nurse() -> Principal:
    return Principal(subject="amartin", kind=Kind.PRACTITIONER,
                     scopes=ScopeSet.parse("user/Patient.rs user/Observation.cruds"),
                     display="Alice Martin", roles=frozenset({"nurse", "icu"}),
                     fhir_user="Practitioner/p1", hospital="chu-nord")


def payload(token: str) -> dict[str, object]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_issue_then_verify_gives_back_the_principal(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    issued = tokens.issue(nurse())
    claims = tokens.decode(issued.token)
    assert claims["iss"] == "hygie" and claims["aud"] == AUD and claims["sub"] == "amartin"
    assert claims["exp"] - claims["iat"] == 900 == issued.expires_in
    assert claims["scope"] == "user/Patient.rs user/Observation.cruds"
    assert claims["fhirUser"] == "Practitioner/p1" and claims["hospital"] == "chu-nord"
    assert claims["roles"] == ["icu", "nurse"] and claims["name"] == "Alice Martin"
    assert len(claims["jti"]) >= 16
    assert jwt.get_unverified_header(issued.token)["typ"] == "at+jwt"
    principal = tokens.verify(issued.token)
    assert principal.subject == "amartin" and principal.kind is Kind.PRACTITIONER
    assert principal.may("Observation", "u") and not principal.may("Patient", "u")
    assert not principal.may("Observation", "d")  # the scope grants it, the nurse role not
    assert principal.roles == {"nurse", "icu"} and principal.token_id == claims["jti"]
    assert principal.expires_at == claims["exp"]


def test_each_token_has_its_own_jti(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    assert tokens.issue(nurse()).principal.token_id != tokens.issue(nurse()).principal.token_id


def test_patient_claim_for_a_patient_context(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    patient = Principal(subject="jdupont", kind=Kind.PATIENT,
                        scopes=ScopeSet.parse("patient/*.rs"), patient="pat-42",
                        fhir_user="Patient/pat-42")
    verified = tokens.verify(tokens.issue(patient).token)
    assert verified.patient == "pat-42" and verified.kind is Kind.PATIENT


def test_expired_token_is_refused_even_from_the_cache(tmp_path: Path) -> None:
    tokens = service(tmp_path, leeway_s=0)
    issued = tokens.issue(nurse(), lifetime_s=1)
    assert tokens.verify(issued.token).subject == "amartin"  # now cached
    time.sleep(2.1)
    with pytest.raises(ExpiredToken):
        tokens.verify(issued.token)
    with pytest.raises(ExpiredToken):
        tokens.decode(issued.token)


def test_token_dated_in_the_past_is_expired(tmp_path: Path) -> None:
    past = service(tmp_path, clock=lambda: time.time() - 3600)
    token = past.issue(nurse()).token
    with pytest.raises(ExpiredToken):
        service(tmp_path).verify(token)


def test_leeway_accepts_a_token_just_expired(tmp_path: Path) -> None:
    skewed = service(tmp_path, clock=lambda: time.time() - 905)  # expired 5 s ago
    token = skewed.issue(nurse()).token
    assert service(tmp_path, leeway_s=10).verify(token).subject == "amartin"
    with pytest.raises(ExpiredToken):
        service(tmp_path, leeway_s=0).verify(token)


def test_tampered_payload_is_refused(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    token = tokens.issue(nurse()).token
    header, _, signature = token.split(".")
    claims = payload(token)
    claims["scope"] = "user/*.cruds"
    forged = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature"):
        tokens.verify(f"{header}.{forged}.{signature}")


def test_token_from_another_key_is_refused(tmp_path: Path) -> None:
    ours = service(tmp_path / "ours")
    theirs = service(tmp_path / "theirs")
    with pytest.raises(InvalidToken, match="unknown key"):
        ours.verify(theirs.issue(nurse()).token)
    # same kid in the header, but signed with another key
    other = FileKeyStore(tmp_path / "theirs").signing_key()
    kid = FileKeyStore(tmp_path / "ours" / "keys").signing_key().kid
    claims = ours.decode(ours.issue(nurse()).token)
    forged = jwt.encode(claims, other.key, algorithm="ES256", headers={"kid": kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="signature"):
        ours.verify(forged)


def test_wrong_audience_or_issuer_is_refused(tmp_path: Path) -> None:
    token = service(tmp_path).issue(nurse()).token
    with pytest.raises(InvalidToken, match="aud"):
        service(tmp_path, audience="https://elsewhere.example").verify(token)
    with pytest.raises(InvalidToken, match="iss"):
        service(tmp_path, issuer="someone-else").verify(token)


def test_algorithm_confusion_is_refused(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    claims = tokens.decode(tokens.issue(nurse()).token)
    kid = tokens.keys.signing_key().kid
    unsigned = jwt.encode(claims, None, algorithm="none", headers={"kid": kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="ES256"):
        tokens.verify(unsigned)
    public_pem = tokens.keys.public_keys()[kid].public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    header = base64.urlsafe_b64encode(json.dumps(
        {"alg": "HS256", "kid": kid, "typ": "at+jwt"}).encode()).rstrip(b"=")
    body = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=")
    mac = hmac.new(public_pem, header + b"." + body, hashlib.sha256).digest()
    hs = (header + b"." + body + b"." + base64.urlsafe_b64encode(mac).rstrip(b"=")).decode()
    with pytest.raises(InvalidToken, match="ES256"):
        tokens.verify(hs)


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "x" * 10_000, "eyJ.eyJ.sig"])
def test_garbage_is_refused(tmp_path: Path, garbage: str) -> None:
    with pytest.raises(InvalidToken):
        service(tmp_path).verify(garbage)


def test_missing_claim_is_refused(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    claims = tokens.decode(tokens.issue(nurse()).token)
    del claims["jti"]
    signing = tokens.keys.signing_key()
    token = jwt.encode(claims, signing.key, algorithm="ES256",
                       headers={"kid": signing.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="jti"):
        tokens.verify(token)


def test_malformed_scope_claim_is_refused(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    claims = tokens.decode(tokens.issue(nurse()).token)
    claims["scope"] = "user/Nope.rs"
    signing = tokens.keys.signing_key()
    token = jwt.encode(claims, signing.key, algorithm="ES256",
                       headers={"kid": signing.kid, "typ": "at+jwt"})
    with pytest.raises(InvalidToken, match="malformed"):
        tokens.verify(token)


def test_session_and_access_tokens_are_not_interchangeable(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    session = tokens.issue_session(nurse()).token
    access = tokens.issue(nurse()).token
    assert tokens.verify_session(session).subject == "amartin"
    with pytest.raises(InvalidToken, match="type"):
        tokens.verify(session)
    with pytest.raises(InvalidToken, match="type"):
        tokens.verify_session(access)
    assert payload(session)["exp"] - payload(session)["iat"] == 8 * 3600


def test_verified_tokens_are_cached_and_the_cache_is_bounded(tmp_path: Path) -> None:
    tokens = service(tmp_path, cache_size=3)
    issued = [tokens.issue(nurse()).token for _ in range(5)]
    first = tokens.verify(issued[0])
    assert tokens.verify(issued[0]) is first  # same object: no second verification
    for token in issued[1:]:
        tokens.verify(token)
    assert len(tokens._caches["at+jwt"]) == 3
    assert tokens.verify(issued[0]) is not first  # evicted, verified afresh
    assert tokens.verify(issued[0]) == first


def test_failures_are_not_cached(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    for _ in range(3):
        with pytest.raises(InvalidToken):
            tokens.verify("a.b.c")
    assert len(tokens._caches["at+jwt"]) == 0


def test_checks_run_on_cached_tokens_too(tmp_path: Path) -> None:
    tokens = service(tmp_path)
    token = tokens.issue(nurse()).token
    tokens.verify(token)
    revoked: set[str] = set()

    def not_revoked(principal: Principal) -> None:
        if principal.token_id in revoked:
            raise InvalidToken("the token has been revoked")

    tokens.add_check(not_revoked)
    assert tokens.verify(token).subject == "amartin"
    revoked.add(payload(token)["jti"])  # type: ignore[arg-type]
    with pytest.raises(InvalidToken, match="revoked"):
        tokens.verify(token)


def test_platform_tokens_use_its_settings_and_var_dir(sqlite_platform: Platform) -> None:
    tokens = tokens_for(sqlite_platform)
    assert tokens_for(sqlite_platform) is tokens
    token = issue_service_token(sqlite_platform, subject="lab-gateway", scope="system/*.rs")
    claims = tokens.decode(token)
    assert claims["aud"] == sqlite_platform.settings.base_url
    assert claims["iss"] == sqlite_platform.settings.token_issuer
    assert claims["client_id"] == "lab-gateway" and claims["kind"] == "service"
    assert (sqlite_platform.settings.var_dir / "keys" / "active").exists()
