"""Roles and what each may do: the one permission matrix of the station.

Endpoints declare the ``Permission`` they need; a user holds the permissions of their role; an
API token holds those of its own role that its user's role also grants (demoting a user narrows
their tokens at once).
"""

from __future__ import annotations

from enum import StrEnum

from station.db import Role

__all__ = ["ROLE_PERMISSIONS", "Permission", "Role", "permissions_of"]


class Permission(StrEnum):
    READ = "read"  # everything a viewer sees: clusters, media, programmes, schedules, plays, stats
    CLUSTERS_WRITE = "clusters:write"  # register, replace, retire clusters; provisioning
    MEDIA_WRITE = "media:write"
    PROGRAMMES_WRITE = "programmes:write"
    SCHEDULES_WRITE = "schedules:write"
    LIVE = "live"  # speak live, relay
    EMERGENCY = "emergency"  # start/stop an emergency broadcast
    APPROVE = "approve"  # approve a programme version for air
    AUDIT_READ = "audit:read"
    USERS_MANAGE = "users:manage"  # accounts and other users' tokens
    SETTINGS_WRITE = "settings:write"


_BROADCAST = {
    Permission.MEDIA_WRITE,
    Permission.PROGRAMMES_WRITE,
    Permission.SCHEDULES_WRITE,
    Permission.LIVE,
    Permission.EMERGENCY,
}

ROLE_PERMISSIONS: dict[Role, frozenset[Permission]] = {
    Role.VIEWER: frozenset({Permission.READ}),
    Role.TECHNICIAN: frozenset({Permission.READ, Permission.CLUSTERS_WRITE}),
    Role.BROADCASTER: frozenset({Permission.READ, *_BROADCAST}),
    # The leader approves, may go live or raise an emergency, and reads the audit log; editing
    # the programmes they approve stays with the broadcasters (separation of duties).
    Role.APPROVER: frozenset(
        {
            Permission.READ,
            Permission.APPROVE,
            Permission.LIVE,
            Permission.EMERGENCY,
            Permission.AUDIT_READ,
        }
    ),
    Role.ADMIN: frozenset(Permission),
}


def permissions_of(role: Role, *, limited_to: Role | None = None) -> frozenset[Permission]:
    """The permissions of ``role``, intersected with those of ``limited_to`` when given."""
    granted = ROLE_PERMISSIONS[Role(role)]
    if limited_to is not None:
        granted &= ROLE_PERMISSIONS[Role(limited_to)]
    return granted
