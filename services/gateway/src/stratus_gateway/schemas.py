"""Request bodies at the HTTP edge: strict msgspec Structs (unknown fields are a 422).

Every string has a maximum length and every list a maximum size, so a body can only be as large
as its fields allow (and never over 1 MiB); a field beyond its limit is a 422 naming the field
and the limit. `tests/e2e/test_input_limits.py` checks that no body field is left unbounded."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import msgspec
from msgspec import UNSET, UnsetType

from stratus_contracts import projects
from stratus_contracts.auth import Scope
from stratus_contracts.deployments import BuildSettings
from stratus_contracts.identity import DEFAULT_ROTATION_OVERLAP, MAX_ROTATION_OVERLAP
from stratus_contracts.projects import Role

# Python's `\s` (str patterns) spelled out, so that a pattern means the same to the server's `re`
# and to the ECMA-262 regex a client validates the OpenAPI document with (whose `\s` differs:
# no U+001C–U+001F or U+0085, but U+FEFF).
SPACE = r"\t\n\x0b\x0c\r\x1c-\x1f \x85\xa0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
# A branch or tag (a ref name `git check-ref-format` could accept): no space or `~^:?*[\`.
REF_PATTERN = rf"^[^{SPACE}~^:?*\[\\]+$"

ProjectName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=63,
        pattern=r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$",
        description="Lowercase letters, digits and hyphens (a DNS label); unique per account and mode.",
        examples=["web"],
    ),
]
Description = Annotated[str, msgspec.Meta(max_length=1000, description="Free text, up to 1000 characters.")]


class ProjectCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: ProjectName
    description: Description = ""


# Build settings. The lengths are checked here; what makes a value valid (a git URL, a path
# starting with `/`, no NUL) is `stratus_contracts.projects.build_setting_problem`, which the
# projects service applies (422 naming `build.<field>`).
RepoUrl = Annotated[
    str,
    msgspec.Meta(
        max_length=projects.REPO_URL_MAX,
        description=f"The git repository to build: {projects.REPO_URL_FORMS}.",
        examples=["https://github.com/acme/web.git"],
    ),
]
BuildCommand = Annotated[
    str,
    msgspec.Meta(
        max_length=projects.COMMAND_MAX,
        description="Shell command that builds the app (empty: no build step).",
        examples=["npm ci && npm run build"],
    ),
]
StartCommand = Annotated[
    str,
    msgspec.Meta(
        max_length=projects.COMMAND_MAX,
        description="Shell command that starts the app; it must listen on `$PORT`.",
        examples=["npm start"],
    ),
]
HealthCheckPath = Annotated[
    str,
    msgspec.Meta(
        max_length=projects.HEALTH_CHECK_PATH_MAX,
        description="Path the app answers 2xx on once it is up (default `/`).",
        examples=["/healthz"],
    ),
]


class BuildSettingsInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Build settings as a whole (an environment's overrides on create and PUT): omitted or
    null is not set."""

    repo_url: RepoUrl | None = None
    build_command: BuildCommand | None = None
    start_command: StartCommand | None = None
    health_check_path: HealthCheckPath | None = None

    def settings(self) -> BuildSettings:
        return BuildSettings(
            repo_url=self.repo_url,
            build_command=self.build_command,
            start_command=self.start_command,
            health_check_path=self.health_check_path,
        )


class BuildSettingsPatch(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Build settings to change: an omitted one stays, `null` clears it."""

    repo_url: RepoUrl | UnsetType | None = UNSET
    build_command: BuildCommand | UnsetType | None = UNSET
    start_command: StartCommand | UnsetType | None = UNSET
    health_check_path: HealthCheckPath | UnsetType | None = UNSET


def build_changes(build: BuildSettingsPatch | UnsetType | None) -> dict[str, str | UnsetType | None]:
    """The build fields of a PATCH command: UNSET leaves one, None clears it, a string sets it."""
    if build is UNSET:
        return {}
    if build is None:
        return dict.fromkeys(projects.BUILD_FIELDS)
    return {field: getattr(build, field) for field in projects.BUILD_FIELDS}


class ProjectUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields to change; omitted (or null) `name` and `description` stay as they are. In `build`,
    an omitted setting stays and `null` clears it; `"build": null` clears them all."""

    name: ProjectName | None = None
    description: Description | None = None
    build: BuildSettingsPatch | UnsetType | None = UNSET


class ProjectMemberPut(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """The member's role on the project: `owner`, `admin`, `developer` or `viewer`."""

    role: Role


# --- API keys and members ---------------------------------------------------------------------

KeyName = Annotated[str, msgspec.Meta(min_length=1, max_length=100, description="A label for people.")]
Scopes = Annotated[
    list[Scope],
    msgspec.Meta(min_length=1, max_length=3, description="One or more of `read`, `write`, `admin`."),
]
MAX_LIST = 100  # entries in any list a body may carry
ProjectIds = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
    msgspec.Meta(max_length=MAX_LIST, description="Only these projects (`prj_…`); null: every project."),
]
EnvironmentNames = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=63)]],
    msgspec.Meta(max_length=MAX_LIST, description="Only these environment names; null: every environment."),
]
Cidrs = Annotated[
    list[Annotated[str, msgspec.Meta(min_length=1, max_length=64)]],
    msgspec.Meta(
        max_length=MAX_LIST,
        description="IPv4/IPv6 CIDRs (`203.0.113.0/24`, `2001:db8::/32`) requests may come from; "
        "empty or null: any address.",
    ),
]
ExpiresAt = Annotated[
    datetime, msgspec.Meta(tz=True, description="RFC 3339 time after which the key stops working.")
]


class KeyCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A new key in the calling key's mode. Left-out restrictions default to the caller's own."""

    name: KeyName
    scopes: Scopes
    project_ids: ProjectIds | None = None
    environments: EnvironmentNames | None = None
    allowed_ips: Cidrs = []
    expires_at: ExpiresAt | None = None
    member_id: (
        Annotated[str, msgspec.Meta(max_length=64, description="Bind the key to this member.")] | None
    ) = None


class KeyUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Fields to change. Omitted fields stay; `null` keeps `name`/`scopes` and removes a restriction
    (`project_ids`, `environments`, `allowed_ips`, `expires_at`). A past `expires_at` ends the key now."""

    name: KeyName | None = None
    scopes: Scopes | None = None
    project_ids: ProjectIds | msgspec.UnsetType | None = msgspec.UNSET
    environments: EnvironmentNames | msgspec.UnsetType | None = msgspec.UNSET
    allowed_ips: Cidrs | msgspec.UnsetType | None = msgspec.UNSET
    expires_at: ExpiresAt | msgspec.UnsetType | None = msgspec.UNSET


class KeyRotate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    overlap_seconds: Annotated[
        int,
        msgspec.Meta(
            ge=0,
            le=MAX_ROTATION_OVERLAP,
            description="How long the current secret keeps working (0: stops now; default one day).",
        ),
    ] = DEFAULT_ROTATION_OVERLAP


class MemberCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    email: Annotated[
        str,
        msgspec.Meta(
            min_length=3,
            max_length=254,
            pattern=rf"^[^@{SPACE}]+@[^@{SPACE}]+\.[^@{SPACE}]+$",
            description="Unique within the account and mode (compared case-insensitively).",
            examples=["ada@example.com"],
        ),
    ]
    name: Annotated[str, msgspec.Meta(max_length=100)] = ""
