"""The team pages over HTTP: invitations from the invite form to a signed-in new member, roles
and the last owner, API keys shown once and revoked, two-factor on and off, the 2FA policy."""

from __future__ import annotations

import re
import secrets
import time
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pyotp
from sqlalchemy import func, select, update

from agent_platform.db.session import transaction
from agent_platform.organization.models import (
    ApiKey,
    Invitation,
    Membership,
    Organization,
    Role,
    User,
)
from agent_platform.organization.passwords import hash_password
from agent_platform.services import Services
from tests.support.people import PASSWORD, Person, create_person
from tests.support.web_client import form_token, signed_in

INVITATION_LINK = re.compile(r"https?://[^\s\"<]+/invitations/([A-Za-z0-9_-]+)")
API_KEY = re.compile(r"\bap_[A-Za-z0-9]+_[A-Za-z0-9_-]+")
NEW_PASSWORD = "amber-Kettle-41-softly-orbits"


async def join(services: Services, organization_id: uuid.UUID, role: Role) -> Person:
    """Another person of an existing organization."""
    email = f"user-{secrets.token_hex(4)}@example.com"
    async with transaction(services.sessions) as session:
        user = User(email=email, name="Bo Chen", password_hash=hash_password(PASSWORD))
        session.add(user)
        await session.flush()
        session.add(Membership(organization_id=organization_id, user_id=user.id, role=role))
    return Person(user.id, organization_id, email, PASSWORD)


async def count(services: Services, model: type[Invitation] | type[ApiKey] | type[User]) -> int:
    async with transaction(services.sessions) as session:
        return int(await session.scalar(select(func.count()).select_from(model)) or 0)


async def invite(client: httpx.AsyncClient, email: str, role: str = "member") -> httpx.Response:
    token = form_token(await client.get("/app/team"))
    return await client.post(
        "/app/team/invitations", data={"email": email, "role": role, "csrf_token": token}
    )


async def invitation_token(client: httpx.AsyncClient, email: str) -> str:
    answer = await invite(client, email)
    assert answer.status_code == 200, answer.text
    found = INVITATION_LINK.search(answer.text)
    assert found, "the invitation link is shown"
    return found.group(1)


async def accept(
    client: httpx.AsyncClient, token: str, *, password: str = NEW_PASSWORD, again: str | None = None
) -> httpx.Response:
    form = await client.get(f"/invitations/{token}")
    assert form.status_code == 200, form.text
    return await client.post(
        f"/invitations/{token}",
        data={
            "name": "Cy Diaz",
            "password": password,
            "password_again": password if again is None else again,
            "csrf_token": form_token(form),
        },
    )


async def test_an_invited_person_joins_signed_in_and_can_sign_in_again(
    api_url: str, services: Services
) -> None:
    owner = await create_person(services, role=Role.OWNER)
    async with signed_in(api_url, owner) as client:
        token = await invitation_token(client, "Cy@Example.com")
        later = await client.get("/app/team")
    assert token not in later.text, "the link is shown once"
    assert "cy@example.com" in later.text, "listed as pending"

    async with httpx.AsyncClient(base_url=api_url) as newcomer:
        page = await newcomer.get(f"/invitations/{token}")
        assert "Acme Sales" in page.text
        assert "cy@example.com" in page.text
        joined = await accept(newcomer, token)
        assert joined.status_code == 303
        assert joined.headers["location"] == "/app"
        landing = await newcomer.get("/app")
    assert landing.status_code == 200
    assert "Member" in landing.text

    async with httpx.AsyncClient(base_url=api_url) as stranger:
        used = await stranger.get(f"/invitations/{token}")
        assert used.status_code == 409
        assert "already been accepted" in used.text
    newcomer_person = Person(uuid.uuid4(), owner.organization_id, "cy@example.com", NEW_PASSWORD)
    async with signed_in(api_url, newcomer_person) as again:
        team = await again.get("/app/team")
    assert team.status_code == 200
    assert "Cy Diaz" in team.text


async def test_a_member_may_not_invite(api_url: str, services: Services) -> None:
    owner = await create_person(services, role=Role.OWNER)
    member = await join(services, owner.organization_id, Role.MEMBER)
    async with signed_in(api_url, member) as client:
        page = await client.get("/app/team")
        refused = await client.post(
            "/app/team/invitations",
            data={"email": "x@example.com", "role": "viewer", "csrf_token": form_token(page)},
        )
    assert page.status_code == 200
    assert 'action="/app/team/invitations"' not in page.text
    assert refused.status_code == 403
    assert await count(services, Invitation) == 0


async def test_bad_invitations_are_answered_on_the_form(api_url: str, services: Services) -> None:
    admin = await create_person(services, role=Role.ADMIN)
    async with signed_in(api_url, admin) as client:
        bad_email = await invite(client, "not-an-email")
        bad_role = await invite(client, "ok@example.com", role="emperor")
        owner_by_admin = await invite(client, "ok@example.com", role="owner")
        already = await invite(client, admin.email)
    assert bad_email.status_code == 422
    assert "This is not a valid email address." in bad_email.text
    assert 'value="not-an-email"' in bad_email.text, "the form keeps what was typed"
    assert bad_role.status_code == 422
    assert "Choose one of the offered roles." in bad_role.text
    assert owner_by_admin.status_code == 403
    assert already.status_code == 409
    assert await count(services, Invitation) == 0


async def test_a_weak_password_or_a_dead_link_joins_no_one(
    api_url: str, services: Services
) -> None:
    owner = await create_person(services, role=Role.OWNER)
    async with signed_in(api_url, owner) as client:
        token = await invitation_token(client, "dee@example.com")
        expired_token = await invitation_token(client, "eve@example.com")
    users_before = await count(services, User)
    async with transaction(services.sessions) as session:
        await session.execute(
            update(Invitation)
            .where(Invitation.email == "eve@example.com")
            .values(expires_at=datetime.now(UTC) - timedelta(minutes=1))
        )

    async with httpx.AsyncClient(base_url=api_url) as newcomer:
        weak = await accept(newcomer, token, password="password1234")
        differ = await accept(newcomer, token, again=NEW_PASSWORD + "x")
        expired = await newcomer.get(f"/invitations/{expired_token}")
        unknown = await newcomer.get("/invitations/not-a-real-token")
    assert weak.status_code == 422
    assert "The password is too weak" in weak.text
    assert differ.status_code == 422
    assert "The two passwords differ." in differ.text
    assert expired.status_code == 410
    assert "expired" in expired.text
    assert unknown.status_code == 404
    assert "not valid" in unknown.text
    assert await count(services, User) == users_before
    assert "ap_session" not in newcomer.cookies


async def test_an_api_key_is_shown_once_works_and_stops_when_revoked(
    api_url: str, services: Services
) -> None:
    admin = await create_person(services, role=Role.ADMIN)
    async with signed_in(api_url, admin) as client:
        token = form_token(await client.get("/app/api-keys"))
        no_scope = await client.post("/app/api-keys", data={"name": "sync", "csrf_token": token})
        assert no_scope.status_code == 422
        assert "Choose at least one scope" in no_scope.text
        assert await count(services, ApiKey) == 0

        created = await client.post(
            "/app/api-keys", data={"name": "CRM sync", "scopes": ["read"], "csrf_token": token}
        )
        assert created.status_code == 200
        found = API_KEY.search(created.text)
        assert found
        key = found.group(0)
        listing = await client.get("/app/api-keys")
        assert key not in listing.text
        assert "CRM sync" in listing.text

        async with httpx.AsyncClient(
            base_url=api_url, headers={"Authorization": f"Bearer {key}"}
        ) as program:
            assert (await program.get("/api/v1/agents")).status_code == 200
            async with transaction(services.sessions) as session:
                key_id = await session.scalar(select(ApiKey.id))
            confirm = await client.get(f"/app/api-keys/{key_id}/revoke")
            assert confirm.status_code == 200
            assert "CRM sync" in confirm.text
            revoked = await client.post(
                f"/app/api-keys/{key_id}/revoke", data={"csrf_token": token}
            )
            assert revoked.status_code == 303
            assert (await program.get("/api/v1/agents")).status_code == 401
        assert "Revoked" in (await client.get("/app/api-keys")).text


async def test_a_member_cannot_manage_api_keys(api_url: str, services: Services) -> None:
    member = await create_person(services, role=Role.MEMBER)
    async with signed_in(api_url, member) as client:
        assert (await client.get("/app/api-keys")).status_code == 403
        token = form_token(await client.get("/app/team"))
        refused = await client.post(
            "/app/api-keys", data={"name": "k", "scopes": ["read"], "csrf_token": token}
        )
    assert refused.status_code == 403
    assert await count(services, ApiKey) == 0


async def test_another_organization_s_ids_are_not_found(api_url: str, services: Services) -> None:
    ann = await create_person(services, role=Role.OWNER)
    bob = await join(services, ann.organization_id, Role.MEMBER)
    async with signed_in(api_url, ann) as client:
        await invitation_token(client, "fay@example.com")
        token = form_token(await client.get("/app/api-keys"))
        await client.post(
            "/app/api-keys", data={"name": "k", "scopes": ["read"], "csrf_token": token}
        )
    async with transaction(services.sessions) as session:
        invitation_id = await session.scalar(select(Invitation.id))
        key_id = await session.scalar(select(ApiKey.id))
        bob_membership = await session.scalar(
            select(Membership.id).where(Membership.user_id == bob.user_id)
        )

    eve = await create_person(services, organization_name="Other", role=Role.OWNER)
    async with signed_in(api_url, eve) as client:
        token = form_token(await client.get("/app/team"))
        answers = [
            await client.post(
                f"/app/team/invitations/{invitation_id}/cancel", data={"csrf_token": token}
            ),
            await client.get(f"/app/api-keys/{key_id}/revoke"),
            await client.post(f"/app/api-keys/{key_id}/revoke", data={"csrf_token": token}),
            await client.get(f"/app/team/members/{bob_membership}/remove"),
            await client.post(
                f"/app/team/members/{bob_membership}/remove", data={"csrf_token": token}
            ),
            await client.post(
                f"/app/team/members/{bob_membership}/role",
                data={"role": "viewer", "csrf_token": token},
            ),
            await client.get("/app/api-keys/not-an-id/revoke"),
        ]
    assert [answer.status_code for answer in answers] == [404] * len(answers)
    async with transaction(services.sessions) as session:
        assert await session.get(Invitation, invitation_id) is not None
        key = await session.get(ApiKey, key_id)
        assert key is not None
        assert key.revoked_at is None
        membership = await session.get(Membership, bob_membership)
        assert membership is not None
        assert membership.role == Role.MEMBER


async def test_roles_change_but_the_last_owner_stays(api_url: str, services: Services) -> None:
    owner = await create_person(services, role=Role.OWNER)
    bob = await join(services, owner.organization_id, Role.MEMBER)
    async with transaction(services.sessions) as session:
        memberships = dict((await session.execute(select(Membership.user_id, Membership.id))).all())
    async with signed_in(api_url, owner) as client:
        token = form_token(await client.get("/app/team"))
        own = memberships[owner.user_id]
        demoted = await client.post(
            f"/app/team/members/{own}/role", data={"role": "admin", "csrf_token": token}
        )
        removed = await client.post(f"/app/team/members/{own}/remove", data={"csrf_token": token})
        promoted = await client.post(
            f"/app/team/members/{memberships[bob.user_id]}/role",
            data={"role": "admin", "csrf_token": token},
        )
        bad_role = await client.post(
            f"/app/team/members/{memberships[bob.user_id]}/role",
            data={"role": "emperor", "csrf_token": token},
        )
        confirm = await client.get(f"/app/team/members/{memberships[bob.user_id]}/remove")
        gone = await client.post(
            f"/app/team/members/{memberships[bob.user_id]}/remove", data={"csrf_token": token}
        )
    assert demoted.status_code == removed.status_code == 409
    assert "at least one owner" in demoted.text
    assert promoted.status_code == 303
    assert bad_role.status_code == 422
    assert confirm.status_code == 200
    assert bob.email in confirm.text
    assert gone.status_code == 303
    async with transaction(services.sessions) as session:
        roles = dict((await session.execute(select(Membership.user_id, Membership.role))).all())
    assert roles == {owner.user_id: "owner"}


def code_at(secret: str, offset_seconds: int = 0) -> str:
    return pyotp.TOTP(secret).at(time.time() + offset_seconds)


async def test_two_factor_is_turned_on_and_off_with_codes(api_url: str, services: Services) -> None:
    admin = await create_person(services, role=Role.ADMIN)
    async with signed_in(api_url, admin) as client:
        page = await client.get("/app/security")
        token = form_token(page)
        secret_found = re.search(r'name="secret" value="([A-Z2-7]+)"', page.text)
        assert secret_found
        secret = secret_found.group(1)
        assert "<svg" in page.text
        wrong = await client.post(
            "/app/security/two-factor/enable",
            data={"secret": secret, "code": "000000", "csrf_token": token},
        )
        assert wrong.status_code == 422
        turned_on = await client.post(
            "/app/security/two-factor/enable",
            data={"secret": secret, "code": code_at(secret), "csrf_token": token},
        )
        assert turned_on.status_code == 303
        assert "Two-factor sign-in is on" in (await client.get("/app/security")).text

        not_off = await client.post(
            "/app/security/two-factor/disable", data={"code": "123456", "csrf_token": token}
        )
        assert not_off.status_code == 422
        assert "Two-factor sign-in is on" in not_off.text
        policy = await client.post(
            "/app/security/policy", data={"required": "true", "csrf_token": token}
        )
        assert policy.status_code == 403, "only an owner sets the policy"
        # The next time step: the code used to turn it on may not be used again.
        off = await client.post(
            "/app/security/two-factor/disable",
            data={"code": code_at(secret, 30), "csrf_token": token},
        )
        assert off.status_code == 303
    async with transaction(services.sessions) as session:
        user = await session.get(User, admin.user_id)
        assert user is not None
        assert not user.totp_enabled
        assert user.totp_secret_encrypted is None


async def test_an_owner_requires_two_factor_for_admins(api_url: str, services: Services) -> None:
    owner = await create_person(services, role=Role.OWNER, totp_secret=pyotp.random_base32())
    async with transaction(services.sessions) as session:
        await session.execute(
            update(User).where(User.id == owner.user_id).values(totp_enabled=False)
        )
    async with signed_in(api_url, owner) as client:
        token = form_token(await client.get("/app/security"))
        answer = await client.post(
            "/app/security/policy", data={"required": "true", "csrf_token": token}
        )
        assert answer.status_code == 303
        page = await client.get("/app/security")
    assert "Required: owners and administrators" in page.text
    assert "set it up now" in page.text
    async with transaction(services.sessions) as session:
        organization = await session.get(Organization, owner.organization_id)
        assert organization is not None
        assert organization.require_two_factor_for_admins
