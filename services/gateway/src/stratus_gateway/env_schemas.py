"""Request bodies of the environment and variable routes: strict msgspec Structs, every field
bounded (the limits themselves live in `stratus_contracts.envs`). An environment's `build`
overrides its project's build settings (the shapes are the projects routes')."""

from __future__ import annotations

from typing import Annotated

import msgspec
from litestar.openapi.spec import OpenAPIType, Schema
from msgspec import UNSET, UnsetType

from stratus_contracts import envs
from stratus_contracts.deployments import BuildSettings
from stratus_contracts.errors import FieldError
from stratus_gateway.problems import ApiError
from stratus_gateway.schemas import REF_PATTERN, BuildSettingsInput, BuildSettingsPatch

EnvName = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=envs.NAME_MAX,
        pattern=envs.NAME_PATTERN,
        description="Lowercase letters, digits and hyphens (a DNS label); unique per project.",
        examples=["preview-42"],
    ),
]
Description = Annotated[
    str, msgspec.Meta(max_length=envs.DESCRIPTION_MAX, description="Free text, up to 1000 characters.")
]
Branch = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=envs.BRANCH_MAX,
        pattern=REF_PATTERN,
        description="The git branch this environment deploys from.",
        examples=["main"],
    ),
]
VarKey = Annotated[
    str,
    msgspec.Meta(
        min_length=1,
        max_length=envs.KEY_MAX,
        pattern=envs.KEY_PATTERN,
        description="Letters, digits and `_`, not starting with a digit.",
        examples=["DATABASE_URL"],
    ),
]
# Characters here; the 64 KiB limit is on UTF-8 bytes, checked by `check_values`.
VarValue = Annotated[
    str,
    msgspec.Meta(
        max_length=envs.VALUE_MAX_BYTES,
        description=f"Any text up to {envs.VALUE_MAX_BYTES} bytes (UTF-8).",
    ),
]


def overrides(build: BuildSettingsInput | None) -> BuildSettings:
    return BuildSettings() if build is None else build.settings()


class EnvCreate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: EnvName
    description: Description = ""
    branch: Branch | None = None
    auto_deploy: bool = False
    build: BuildSettingsInput | None = None  # overrides of the project's build settings


class EnvReplace(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Every setting of the environment; an omitted field takes its default (PUT replaces: an
    override left out of `build` is dropped, and the project's setting applies)."""

    name: EnvName
    description: Description = ""
    branch: Branch | None = None
    auto_deploy: bool = False
    build: BuildSettingsInput | None = None


class EnvUpdate(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Settings to change. Omitted fields stay; `null` keeps `name`, `description` and
    `auto_deploy`, clears `branch`, and in `build` drops an override (the project's setting then
    applies); `"build": null` drops every override."""

    name: EnvName | None = None
    description: Description | None = None
    branch: Branch | UnsetType | None = UNSET
    auto_deploy: bool | None = None
    build: BuildSettingsPatch | UnsetType | None = UNSET


class VarInput(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    key: VarKey
    value: VarValue
    # Omitted: a new variable is not secret, an existing one keeps its flag.
    secret: bool | None = None


class VarsPost(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """One variable (`key`, `value`, `secret`) or many (`vars`), created or updated."""

    key: VarKey | None = None
    value: VarValue | None = None
    secret: bool | None = None
    vars: Annotated[list[VarInput], msgspec.Meta(min_length=1, max_length=envs.MAX_VARS)] | None = None

    def changes(self) -> list[envs.VarChange]:
        if self.vars is not None:
            if self.key is not None or self.value is not None or self.secret is not None:
                raise _invalid("vars", "Send either `vars` or one `key` and `value`, not both.")
            items = self.vars
        elif self.key is None or self.value is None:
            field = "key" if self.key is None else "value"
            raise _invalid(field, "This field is required (or send `vars`: a list of variables).")
        else:
            items = [VarInput(key=self.key, value=self.value, secret=self.secret)]
        seen: set[str] = set()
        for i, item in enumerate(items):
            if item.key in seen:
                raise _invalid(f"vars[{i}].key", f"{item.key} is given more than once.")
            seen.add(item.key)
        changes = [envs.VarChange(key=v.key, value=v.value, secret=v.secret) for v in items]
        check_values(changes, "vars[{i}].value" if self.vars is not None else "value")
        return changes


class VarPatchValue(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    value: VarValue
    secret: bool | None = None


# PATCH: KEY -> new value (its secret flag kept), {"value", "secret"}, or null (delete the key).
# Decoded by `decode_patch`, not by Litestar: Litestar drops a limit annotated on a whole body.
PatchItem = VarValue | VarPatchValue | None
_patch_map = msgspec.json.Decoder(Annotated[dict[str, msgspec.Raw], msgspec.Meta(max_length=envs.MAX_VARS)])
_patch_item = msgspec.json.Decoder(PatchItem)  # type: ignore[arg-type]


def decode_patch(body: bytes) -> tuple[list[envs.VarChange], list[str]]:
    """The changes a PATCH body asks for; 422 naming each bad key (400 for malformed JSON)."""
    if not body.strip():
        raise _invalid("body", "A JSON object body is required.")
    try:
        raw = _patch_map.decode(body)
    except msgspec.ValidationError as exc:
        message = str(exc)
        if "length" in message:
            message = f"At most {envs.MAX_VARS} variables per environment."
        raise _invalid("body", message) from None
    except msgspec.DecodeError as exc:
        raise ApiError("malformed_json", f"The request body is not valid JSON: {exc}.") from None
    errors: list[FieldError] = []
    changes, removed = [], []
    for key, text in raw.items():
        if (problem := envs.key_problem(key)) is not None:
            errors.append(FieldError(field=key[:300], message=problem))
            continue
        try:
            item = _patch_item.decode(text)
        except msgspec.ValidationError as exc:
            errors.append(FieldError(field=key, message=str(exc).split(" - at ")[0]))
            continue
        if item is None:
            removed.append(key)
        elif isinstance(item, str):
            changes.append(envs.VarChange(key=key, value=item))
        else:
            changes.append(envs.VarChange(key=key, value=item.value, secret=item.secret))
    if errors:
        raise ApiError("validation_failed", errors[0].message, errors=errors)
    check_values(changes, "{key}")
    return changes, removed


def patch_schema() -> Schema:
    """The PATCH body for OpenAPI (Litestar cannot derive it from a body it does not decode)."""
    value = Schema(type=OpenAPIType.STRING, max_length=envs.VALUE_MAX_BYTES)
    item = Schema(
        type=OpenAPIType.OBJECT,
        properties={"value": value, "secret": Schema(type=OpenAPIType.BOOLEAN)},
        required=["value"],
        additional_properties=False,
    )
    return Schema(
        type=OpenAPIType.OBJECT,
        max_properties=envs.MAX_VARS,
        property_names=Schema(type=OpenAPIType.STRING, pattern=envs.KEY_PATTERN, max_length=envs.KEY_MAX),
        additional_properties=Schema(one_of=[value, item, Schema(type=OpenAPIType.NULL)]),
        description="Variables by key: a value (keeps the secret flag), `{value, secret}`, "
        "or `null` to delete.",
    )


def check_values(changes: list[envs.VarChange], field: str) -> None:
    """422 for a value over the byte limit (msgspec counted characters)."""
    errors = [
        FieldError(field=field.format(i=i, key=change.key), message=problem)
        for i, change in enumerate(changes)
        if (problem := envs.value_problem(change.value)) is not None
    ]
    if errors:
        raise ApiError("validation_failed", errors[0].message, errors=errors)


def _invalid(field: str, message: str) -> ApiError:
    return ApiError("validation_failed", message, errors=[FieldError(field=field, message=message)])
