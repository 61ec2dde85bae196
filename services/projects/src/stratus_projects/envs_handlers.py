"""Environment and variable handlers: load, decide, save, reply. Store calls run in a worker thread.

Access follows the projects rules (`envs_domain.visible`): an environment is visible when its
project is (account, mode, `project_ids`, team membership) and its name is inside the key's
`environments`; otherwise it is the same 404 as one that does not exist. Roles: any role reads,
`developer` creates, changes settings and variables, `admin` deletes; revealing secret values
needs the admin scope and the `developer` role, and is recorded (`SecretRevealed`) before any
value leaves the service.

Each command saves once (`Partition.save`, which an Idempotency-Key defers into the wrapper's
save). Values are sealed before they reach a decision and opened only to build a reply.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterable
from typing import Any

from stratus_contracts import envs as c
from stratus_contracts.auth import Caller
from stratus_contracts.errors import DomainError, FieldError
from stratus_contracts.ids import decode_id, encode_id, new_uuid
from stratus_contracts.projects import Role
from stratus_eventstore.store import retry_on_conflict
from stratus_eventstore.view import LocalView
from stratus_projects import crypto, envs_listing
from stratus_projects import domain as projects
from stratus_projects import envs_domain as d
from stratus_projects.envs_publish import to_view
from stratus_projects.handlers import Partition

# Sealed value = 12-byte nonce + ciphertext + 16-byte tag: its plaintext is 28 bytes shorter.
_SEAL_OVERHEAD = crypto.NONCE_BYTES + 16
# Every variable of one environment, keys and values together: a config version must fit in one
# bus message and one response, so the whole map is bounded too.
MAX_TOTAL_BYTES = 512 * 1024


def _total_bytes(env: d.Environment) -> int:
    return sum(len(k) + len(v.sealed) - _SEAL_OVERHEAD for k, v in env.vars.items())


class EnvsHandlers:
    def __init__(
        self, partitions: dict[str, Partition], views: dict[str, LocalView], keyring: crypto.Keyring
    ) -> None:
        self.partitions = partitions
        self.views = views
        self.keyring = keyring

    # -- loading -------------------------------------------------------------------------

    def _load(self, part: Partition, aggregate_id: uuid.UUID, version: int | None = None) -> Any:
        return part.store.get_or_none(aggregate_id, d.project, version)

    def _save(self, part: Partition, events: list[Any]) -> None:
        part.save(events)  # the store, the projects view and the relay's wake-up
        self.views[part.mode].catch_up()

    def _project(
        self, part: Partition, caller: Caller, project_id: str, needed: Role | None = None, action: str = ""
    ) -> projects.Project:
        key = decode_id("prj", project_id)
        state = part.load(key) if key else None
        if not projects.visible(state, caller):
            raise DomainError("project_not_found", f"No project {project_id!r} in this account.")
        if needed is not None:
            projects.require_role(state, caller, needed, action)
        return state

    def _env(
        self, part: Partition, caller: Caller, env_id: str, needed: Role | None = None, action: str = ""
    ) -> tuple[d.Environment, projects.Project]:
        """The live environment and its project if the caller may see it (and holds `needed`)."""
        key = decode_id("env", env_id)
        env = self._load(part, key) if key else None
        project = part.load(env.project_id) if isinstance(env, d.Environment) else None
        if not d.visible(env, project, caller):
            raise d.not_found(env_id)
        if needed is not None:
            projects.require_role(project, caller, needed, action)
        return env, project

    def _index(self, part: Partition, project_id: uuid.UUID, name: str) -> d.NameIndex | None:
        return self._load(part, d.name_index_id(project_id, name))

    # -- default environments --------------------------------------------------------------

    def seed_new_project(self, project_id: uuid.UUID, caller: Caller) -> list[Any]:
        """Events that give a new project its default environments, for the project's own save."""
        return d.seed(project_id, caller.account_id, caller, None, {}, iter(new_uuid, None))

    def _seed_events(self, part: Partition, project: projects.Project, caller: Caller) -> list[Any]:
        """The default environments of a project made before environments existed, if still due."""
        marker = self._load(part, d.seeded_id(project.id))
        if marker is not None:
            return []
        indexes = {name: self._index(part, project.id, name) for name in c.DEFAULT_ENVIRONMENTS}
        return d.seed(project.id, project.account, caller, marker, indexes, iter(new_uuid, None))

    def _ensure_seeded(self, part: Partition, project: projects.Project, caller: Caller) -> None:
        retry_on_conflict(lambda: self._save(part, self._seed_events(part, project, caller)))

    # -- environments ------------------------------------------------------------------------

    def create_sync(self, cmd: c.CreateEnvironment) -> c.Environment:
        part = self.partitions[cmd.caller.mode]
        env_id = new_uuid()

        def attempt() -> c.Environment:
            project = self._project(part, cmd.caller, cmd.project_id, "developer", "Creating environments")
            d.require_name_allowed(cmd.caller, cmd.name)
            seeded = self._seed_events(part, project, cmd.caller)
            if any(isinstance(e, d.EnvironmentCreated) and e.name == cmd.name for e in seeded):
                raise DomainError(
                    "environment_name_taken",
                    f"An environment named {cmd.name!r} already exists in this project.",
                )
            index = self._index(part, project.id, cmd.name)
            events = d.create(env_id, project.account, project.id, cmd, index, cmd.caller.actor())
            self._save(part, [*seeded, *events])
            return to_view(d.project(None, events[:1]), part.mode)  # type: ignore[arg-type]

        return retry_on_conflict(attempt)

    def replace_sync(self, cmd: c.ReplaceEnvironment) -> c.Environment:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> c.Environment:
            env, _ = self._env(part, cmd.caller, cmd.env_id, "developer", "Changing environment settings")
            new_index = old_index = None
            if cmd.name != env.name:
                new_index = self._index(part, env.project_id, cmd.name)
                old_index = self._index(part, env.project_id, env.name)
            events = d.replace(env, cmd, new_index, old_index)
            self._save(part, events)
            return to_view(self._after(env, events), part.mode)

        return retry_on_conflict(attempt)

    def delete_sync(self, cmd: c.DeleteEnvironment) -> c.Environment:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> c.Environment:
            env, _ = self._env(part, cmd.caller, cmd.env_id, "admin", "Deleting an environment")
            index = self._index(part, env.project_id, env.name)
            events = d.delete(env, index, cmd.caller.actor(), cmd.expected_version)
            self._save(part, events)
            return to_view(self._after(env, events), part.mode)

        return retry_on_conflict(attempt)

    def get_sync(self, q: c.GetEnvironment) -> c.Environment:
        part = self.partitions[q.caller.mode]
        env, _ = self._env(part, q.caller, q.env_id)
        return to_view(env, part.mode)

    def list_sync(self, q: c.ListEnvironments) -> c.EnvironmentPage:
        part = self.partitions[q.caller.mode]
        project = self._project(part, q.caller, q.project_id)
        self._ensure_seeded(part, project, q.caller)
        view = self.views[part.mode]
        view.catch_up()  # read our own writes, and other replicas'
        sql, params = envs_listing.list_sql(q)
        return envs_listing.page(view.query(sql, params), q)

    @staticmethod
    def _after(env: d.Environment, events: list[Any]) -> d.Environment:
        mine = [e for e in events if isinstance(e, d.ENV_EVENTS)]
        return d.project(env, mine)  # type: ignore[return-value]

    # -- data keys ------------------------------------------------------------------------------

    def _data_key(self, part: Partition, env: d.Environment) -> crypto.DataKey | None:
        state = self._load(part, d.data_key_id(env.id))
        if state is None:
            return None
        return crypto.DataKey(env.id, self.keyring.unwrap(state.id, state.kek_id, state.wrapped))

    def _data_key_for_writing(self, part: Partition, env: d.Environment) -> tuple[crypto.DataKey, list[Any]]:
        """The environment's data key, made (and its creation returned for the save) if it has none."""
        existing = self._data_key(part, env)
        if existing is not None:
            return existing, []
        dek = crypto.new_data_key()
        kek, wrapped = self.keyring.wrap(d.data_key_id(env.id), dek)
        return crypto.DataKey(env.id, dek), [d.new_data_key(env, kek, wrapped)]

    # -- variables ----------------------------------------------------------------------------

    def change_vars_sync(self, cmd: c.ChangeVars) -> c.ConfigVersion:
        part = self.partitions[cmd.caller.mode]

        def attempt() -> c.ConfigVersion:
            env, _ = self._env(part, cmd.caller, cmd.env_id, "developer", "Changing variables")
            key, events = self._data_key_for_writing(part, env) if cmd.set else (None, [])
            changes = d.change_vars(env, cmd, key)
            if not changes:
                return self._version(part, env, env.config_version, reveal=False, caller=cmd.caller)
            after = self._after(env, changes)
            if (total := _total_bytes(after)) > MAX_TOTAL_BYTES:
                raise DomainError(
                    "validation_failed",
                    f"An environment's keys and values add up to at most {MAX_TOTAL_BYTES} bytes; "
                    f"this change would make {total}.",
                    [FieldError(field="vars", message=f"Keys and values would total {total} bytes.")],
                )
            self._save(part, [*events, *changes])
            return self._version(
                part, after, after.config_version, reveal=False, caller=cmd.caller, key=key, new=True
            )

        return retry_on_conflict(attempt)

    def _items(
        self,
        part: Partition,
        env: d.Environment,
        keys: Iterable[str],
        reveal: bool,
        key: crypto.DataKey | None = None,
    ) -> tuple[list[c.EnvVar], list[str]]:
        """The variables `keys` of `env` as the API shows them, and the secret keys shown."""
        opened: list[crypto.DataKey | None] = [key]

        def open_value(name: str, sealed: bytes) -> str:
            if opened[0] is None:
                opened[0] = self._data_key(part, env)
                if opened[0] is None:
                    raise crypto.unavailable("This environment's data key is missing.")
            return opened[0].open(name, sealed)

        items, revealed = [], []
        for name in keys:
            var = env.vars[name]
            hidden = var.secret and not reveal
            if var.secret and reveal:
                revealed.append(name)
            items.append(
                c.EnvVar(
                    key=name,
                    value=None if hidden else open_value(name, var.sealed),
                    secret=var.secret,
                    redacted=hidden,
                    fingerprint=var.fingerprint,
                    updated=var.updated,
                )
            )
        return items, revealed

    def _record_reveal(
        self,
        part: Partition,
        env: d.Environment,
        caller: Caller,
        version: int,
        keys: list[str],
        via: c.RevealVia,
    ) -> None:
        # Committed before the values leave: no reveal without its audit record.
        self._save(part, d.reveal(new_uuid(), env, caller, version, keys, via))

    def _version(
        self,
        part: Partition,
        env: d.Environment,
        number: int,
        *,
        reveal: bool,
        caller: Caller,
        via: c.RevealVia = "version",
        key: crypto.DataKey | None = None,
        new: bool = False,
    ) -> c.ConfigVersion:
        info = d.version_info(env, number)
        at = env if info.at == env.version else self._load(part, env.id, version=info.at)
        items, revealed = self._items(part, at, sorted(at.vars), reveal, key)
        if revealed:
            self._record_reveal(part, env, caller, number, revealed, via)
        return c.ConfigVersion(
            number=number,
            env_id=encode_id("env", env.id),
            project_id=encode_id("prj", env.project_id),
            environment=env.name,
            created=info.created,
            changed=list(info.changed),
            removed=list(info.removed),
            var_count=info.var_count,
            vars=items,
            env_version=env.version,
            current=number == env.config_version,
            new=new,
        )

    def list_vars_sync(self, q: c.ListEnvVars) -> c.EnvVarPage:
        part = self.partitions[q.caller.mode]
        if q.reveal:
            d.require_reveal_scope(q.caller)
        env, _ = self._env(
            part, q.caller, q.env_id, "developer" if q.reveal else None, "Revealing secret values"
        )
        keys = sorted(env.vars)
        if q.cursor:
            after = envs_listing.decode_key_cursor(q.cursor)
            keys = [k for k in keys if k > after]
        has_more = len(keys) > q.limit
        keys = keys[: q.limit]
        items, revealed = self._items(part, env, keys, q.reveal)
        if revealed:
            self._record_reveal(part, env, q.caller, env.config_version, revealed, "vars")
        return c.EnvVarPage(
            data=items,
            has_more=has_more,
            next_cursor=envs_listing.encode_key_cursor(keys[-1]) if has_more else None,
            config_version=env.config_version,
            env_version=env.version,
        )

    def get_version_sync(self, q: c.GetConfigVersion) -> c.ConfigVersion:
        part = self.partitions[q.caller.mode]
        if q.reveal:
            d.require_reveal_scope(q.caller)
        env, _ = self._env(
            part, q.caller, q.env_id, "developer" if q.reveal else None, "Revealing secret values"
        )
        number = env.config_version if q.number is None else q.number
        return self._version(part, env, number, reveal=q.reveal, caller=q.caller, via=q.via)

    def list_versions_sync(self, q: c.ListConfigVersions) -> c.ConfigVersionPage:
        part = self.partitions[q.caller.mode]
        env, _ = self._env(part, q.caller, q.env_id)
        infos = list(reversed(env.versions))
        if q.cursor:
            before = envs_listing.decode_number_cursor(q.cursor)
            infos = [i for i in infos if i.number < before]
        has_more = len(infos) > q.limit
        infos = infos[: q.limit]
        env_id, project_id = encode_id("env", env.id), encode_id("prj", env.project_id)
        items = [
            c.ConfigVersionSummary(
                number=i.number,
                env_id=env_id,
                project_id=project_id,
                created=i.created,
                changed=list(i.changed),
                removed=list(i.removed),
                var_count=i.var_count,
            )
            for i in infos
        ]
        cursor = envs_listing.encode_number_cursor(infos[-1].number) if has_more else None
        return c.ConfigVersionPage(data=items, has_more=has_more, next_cursor=cursor)

    # -- operator commands ---------------------------------------------------------------------

    def rewrap_sync(self, cmd: c.RewrapDataKeys) -> c.RewrapResult:
        current = self.keyring.current_id
        if current is None:
            raise crypto.unavailable("This replica has no master key (STRATUS_MASTER_KEY).")
        if cmd.expected_kek_id is not None and cmd.expected_kek_id != current:
            raise DomainError(
                "master_key_mismatch",
                f"This replica's master key is {current}, not {cmd.expected_kek_id}: restart it with "
                "the new STRATUS_MASTER_KEY (and the old one in STRATUS_MASTER_KEY_PREVIOUS) first.",
            )
        modes = {mode: self._rewrap_partition(part, current) for mode, part in self.partitions.items()}
        return c.RewrapResult(kek_id=current, modes=modes)

    def _rewrap_partition(self, part: Partition, current: str) -> c.RewrapCount:
        view = self.views[part.mode]
        view.catch_up()
        rewrapped = unavailable = 0
        for text in envs_listing.stale_data_keys(view, current):
            key_id = uuid.UUID(text)

            def attempt(key_id: uuid.UUID = key_id) -> int:
                state: d.DataKeyState = self._load(part, key_id)
                if state.kek_id == current:
                    return 0
                if not self.keyring.holds(state.kek_id):
                    return -1
                dek = self.keyring.unwrap(state.id, state.kek_id, state.wrapped)
                kek, wrapped = self.keyring.wrap(state.id, dek)
                events = d.rewrap(state, kek, wrapped)
                self._save(part, events)
                return len(events)

            outcome = retry_on_conflict(attempt)
            if outcome < 0:
                unavailable += 1
            else:
                rewrapped += outcome
        view.catch_up()
        return c.RewrapCount(
            total=envs_listing.count_data_keys(view), rewrapped=rewrapped, unavailable=unavailable
        )

    def rebuild_sync(self) -> dict[str, int]:
        counts = {}
        for mode, view in self.views.items():
            view.rebuild()
            counts[mode] = view.query("SELECT count(*) AS n FROM environments")[0]["n"]
        return counts

    # -- async faces for the bus: the store is synchronous, so it runs off the event loop --------

    async def create(self, cmd: c.CreateEnvironment) -> c.Environment:
        return await asyncio.to_thread(self.create_sync, cmd)

    async def replace(self, cmd: c.ReplaceEnvironment) -> c.Environment:
        return await asyncio.to_thread(self.replace_sync, cmd)

    async def delete(self, cmd: c.DeleteEnvironment) -> c.Environment:
        return await asyncio.to_thread(self.delete_sync, cmd)

    async def get(self, q: c.GetEnvironment) -> c.Environment:
        return await asyncio.to_thread(self.get_sync, q)

    async def list(self, q: c.ListEnvironments) -> c.EnvironmentPage:
        return await asyncio.to_thread(self.list_sync, q)

    async def change_vars(self, cmd: c.ChangeVars) -> c.ConfigVersion:
        return await asyncio.to_thread(self.change_vars_sync, cmd)

    async def list_vars(self, q: c.ListEnvVars) -> c.EnvVarPage:
        return await asyncio.to_thread(self.list_vars_sync, q)

    async def get_version(self, q: c.GetConfigVersion) -> c.ConfigVersion:
        return await asyncio.to_thread(self.get_version_sync, q)

    async def list_versions(self, q: c.ListConfigVersions) -> c.ConfigVersionPage:
        return await asyncio.to_thread(self.list_versions_sync, q)

    async def rewrap(self, cmd: c.RewrapDataKeys) -> c.RewrapResult:
        return await asyncio.to_thread(self.rewrap_sync, cmd)
