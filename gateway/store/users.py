"""Console users: who may log in, with which role and sites."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, func, insert, select
from sqlalchemy.exc import IntegrityError

from gateway.auth import Role
from gateway.models import UserPublic, check_user_sites
from gateway.store.base import ConflictError, Part
from gateway.store.schema import users


def _user(row: Row[Any]) -> UserPublic:
    return UserPublic(
        username=row.username,
        role=Role(row.role),
        sites=list(row.sites),
        display_name=row.display_name,
        disabled=bool(row.disabled),
    )


class UserStore(Part):
    """Users and their password hashes (which never leave this class but for login)."""

    def create_user(
        self,
        username: str,
        password_hash: str,
        role: Role,
        sites: Sequence[str],
        display_name: str | None = None,
    ) -> UserPublic:
        """Add a console user; ConflictError if the name is taken, ValueError unless admins
        have exactly ['*'] and nobody else has '*'."""
        check_user_sites(role, list(sites))
        try:
            with self._tx() as conn:
                conn.execute(
                    insert(users).values(
                        username=username,
                        password_hash=password_hash,
                        role=role.value,
                        sites=list(sites),
                        display_name=display_name,
                        disabled=False,
                    )
                )
        except IntegrityError:
            raise ConflictError(f"user {username!r} exists") from None
        return UserPublic(
            username=username,
            role=role,
            sites=list(sites),
            display_name=display_name,
            disabled=False,
        )

    def user_credentials(self, username: str) -> tuple[UserPublic, str] | None:
        """A user and their password hash, for login."""
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        if row is None:
            return None
        return _user(row), row.password_hash

    def user(self, username: str) -> UserPublic | None:
        """One console user, or None."""
        with self._read() as conn:
            row = conn.execute(select(users).where(users.c.username == username)).first()
        return None if row is None else _user(row)

    def list_users(self) -> list[UserPublic]:
        """Every console user."""
        with self._read() as conn:
            rows = conn.execute(select(users).order_by(users.c.username)).all()
        return [_user(r) for r in rows]

    def user_count(self) -> int:
        """How many console users exist."""
        with self._read() as conn:
            return int(conn.execute(select(func.count()).select_from(users)).scalar_one())
