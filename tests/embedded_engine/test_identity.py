"""Who is calling: tokens resolved to identities (anonymous, raw, Bearer), their scopes and the lanes they see."""

from __future__ import annotations

from pathlib import Path

import pytest

from embedded_engine.authority import DEFAULT_CLIENTS, AuthError, Authority, ClientRecord
from embedded_engine.identity import ANONYMOUS_IDENTITY, DUMMY_TOKEN, Identity, IdentityResolver


@pytest.fixture
def authority(tmp_path: Path) -> Authority:
    return Authority("http://127.0.0.1:1/authority", DEFAULT_CLIENTS, tmp_path / "signing-key.pem")


def _client(client_id: str) -> ClientRecord:
    return next(client for client in DEFAULT_CLIENTS if client.client_id == client_id)


def test_dummy_token_is_the_anonymous_root_identity_when_anonymous_access_is_allowed(
    authority: Authority,
) -> None:
    identity = IdentityResolver(authority, allow_anonymous=True).resolve(f"Bearer {DUMMY_TOKEN}")

    assert identity.anonymous
    assert identity.user_id == "dummy_token"
    assert identity.is_admin
    assert identity.can_see_lane("Clerk")


def test_dummy_token_is_refused_when_anonymous_access_is_off(authority: Authority) -> None:
    resolver = IdentityResolver(authority, allow_anonymous=False)

    with pytest.raises(AuthError, match="anonymous"):
        resolver.resolve(f"Bearer {DUMMY_TOKEN}")


def test_missing_authorization_header_is_anonymous_only_with_anonymous_access(authority: Authority) -> None:
    assert IdentityResolver(authority, allow_anonymous=True).resolve(None).anonymous

    with pytest.raises(AuthError, match="missing"):
        IdentityResolver(authority, allow_anonymous=False).resolve(None)


def test_non_bearer_scheme_is_refused(authority: Authority) -> None:
    resolver = IdentityResolver(authority, allow_anonymous=True)

    with pytest.raises(AuthError, match="Bearer"):
        resolver.resolve("Basic YWxpY2U6YWxpY2Utc2VjcmV0")


def test_raw_token_and_bearer_token_resolve_to_the_same_user(authority: Authority) -> None:
    resolver = IdentityResolver(authority, allow_anonymous=False)
    token = authority.issue_token(_client("alice"))

    raw = resolver.resolve(token)
    bearer = resolver.resolve(f"Bearer {token}")

    assert raw.user_id == bearer.user_id == "alice"
    assert raw.scopes == frozenset({"engine_read", "engine_write"})
    assert not raw.anonymous
    assert not raw.is_admin


def test_identity_sees_only_lanes_it_has_a_claim_for(authority: Authority) -> None:
    resolver = IdentityResolver(authority, allow_anonymous=False)
    alice = resolver.resolve(authority.issue_token(_client("alice")))

    assert alice.can_see_lane(None)
    assert alice.can_see_lane("")
    assert alice.can_see_lane("Approver")
    assert alice.can_see_lane("Geschäftsführung")
    assert not alice.can_see_lane("Clerk")
    assert not alice.can_see_lane("sub")


def test_admin_scope_sees_every_lane(authority: Authority) -> None:
    resolver = IdentityResolver(authority, allow_anonymous=False)
    gateway = resolver.resolve(authority.issue_token(_client("gateway")))

    assert gateway.is_admin
    assert gateway.can_see_lane("Clerk")
    assert gateway.can_see_lane("Approver")


def test_a_lane_claim_of_false_does_not_grant_the_lane(tmp_path: Path) -> None:
    client = ClientRecord("dave", "dave-secret", "dave", "engine_read", {"Clerk": "false", "Approver": True})
    authority = Authority("http://issuer.test", [client], tmp_path / "key.pem")
    dave = IdentityResolver(authority, allow_anonymous=False).resolve(authority.issue_token(client))

    assert not dave.can_see_lane("Clerk")
    assert dave.can_see_lane("Approver")


def test_visible_lanes_are_the_lanes_with_a_claim_and_every_lane_for_an_admin() -> None:
    clerk = Identity(user_id="bob", token="t", scopes=frozenset({"engine_read"}), claims={"Clerk": "true"})

    assert clerk.visible_lanes(["Clerk", "Approver", "sub"]) == frozenset({"Clerk"})
    assert clerk.visible_lanes([]) == frozenset()
    assert ANONYMOUS_IDENTITY.visible_lanes(["Clerk", "Approver"]) is None


def test_an_admin_has_every_scope_others_only_theirs() -> None:
    reader = Identity(user_id="carol", token="t", scopes=frozenset({"engine_read"}), claims={})

    assert reader.has_scope("engine_read")
    assert not reader.has_scope("engine_write")
    assert ANONYMOUS_IDENTITY.has_scope("engine_write")
