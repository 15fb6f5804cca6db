"""The data directory: created once by ``tsuba init``, validated by everything after.

A data directory holds ``tsuba.toml``, the SQLite database, the master key file and the
local keyring.  Initialising twice is refused.  ``force`` re-creates only what is missing
and re-runs migrations: it never replaces a master key or a keyring, because that would
destroy every key (and so every signature and every envelope) made before.
"""

from __future__ import annotations

import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlalchemy.engine import make_url

from tsuba.core.config import CONFIG_FILE, Settings, load_settings
from tsuba.core.errors import HomeError
from tsuba.core.keys.base import KeyKind, KeyManager
from tsuba.core.keys.envelope import DEFAULT_KEK
from tsuba.core.keys.factory import open_key_manager
from tsuba.core.keys.files import PRIVATE_DIR, create_exclusive, loose_permissions
from tsuba.core.keys.local import LocalKeyManager
from tsuba.core.keys.master import resolve_master, write_master_key_file
from tsuba.core.storage import current_heads, open_engine, upgrade

# Settings that must not be suggested in a file: secrets belong in the environment.
_ENV_ONLY = {"home", "master_key", "master_passphrase"}
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
# Any of these in a directory means it was initialised before.
_MARKERS = (CONFIG_FILE, "keyring.json", "master.key", "tsuba.db")


@dataclass(frozen=True)
class InitResult:
    """What ``init_home``/``ensure_home`` found and did, for people and for JSON."""

    home: Path
    created: tuple[str, ...] = ()
    kept: tuple[str, ...] = ()
    keys_created: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    database: str = ""
    schema: tuple[str, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict[str, Any]:
        return {
            "home": str(self.home),
            "created": list(self.created),
            "kept": list(self.kept),
            "keys_created": list(self.keys_created),
            "notes": list(self.notes),
            "database": self.database,
            "schema": list(self.schema),
        }


def required_keys(settings: Settings) -> list[tuple[str, KeyKind]]:
    """Keys every data directory holds: the audit signing key and the envelope KEK."""
    return [(settings.audit.signing_key, KeyKind.ED25519), (DEFAULT_KEK, KeyKind.AES256_GCM)]


def require_home(settings: Settings) -> None:
    """Fail with a clear HomeError when the data directory does not exist."""
    if not settings.home.is_dir():
        raise HomeError(f"no data directory at {settings.home}: run 'tsuba init'")


def init_home(home: Path, force: bool = False) -> InitResult:
    """Create the data directory at ``home``; with ``force``, complete an existing one."""
    present = [name for name in _MARKERS if (home / name).exists()]
    if present and not force:
        raise HomeError(
            f"data directory {home} is already initialised ({', '.join(present)} exist): "
            "run 'tsuba init --force' to re-create only missing pieces (existing keys are kept)"
        )
    created: list[str] = []
    kept: list[str] = []
    notes: list[str] = []

    if home.exists() and not home.is_dir():
        raise HomeError(f"{home} exists and is not a directory: choose another --home")
    if not home.exists():
        home.mkdir(parents=True, mode=PRIVATE_DIR)
        created.append(str(home))
    loose = home.stat().st_mode & 0o077
    if loose:
        os.chmod(home, PRIVATE_DIR)
        notes.append(f"tightened {home} to mode 0700")

    config = home / CONFIG_FILE
    (created if create_exclusive(config, default_config().encode()) else kept).append(
        str(config)
    )
    settings = load_settings(home)

    km = _key_manager_for_init(settings, created, kept, notes)
    existing = {info.name for info in km.list_keys()}
    keys_created = []
    for name, kind in required_keys(settings):
        km.create(name, kind, exist_ok=True)
        if name not in existing:
            keys_created.append(name)

    database, schema = _migrate(settings, created, kept)
    return InitResult(
        home=home,
        created=tuple(created),
        kept=tuple(kept),
        keys_created=tuple(keys_created),
        notes=tuple(notes),
        database=database,
        schema=schema,
    )


def ensure_home(settings: Settings) -> InitResult:
    """Initialise a missing data directory, or check an existing one (HomeError if broken)."""
    if not settings.home.exists():
        return init_home(settings.home)
    problems = check_home(settings)
    if problems:
        raise HomeError(
            f"data directory {settings.home} is incomplete: {'; '.join(problems)}: "
            "run 'tsuba init --force' to re-create missing pieces"
        )
    km = open_key_manager(settings)
    names = {info.name for info in km.list_keys()}
    missing = [name for name, _ in required_keys(settings) if name not in names]
    if missing:
        raise HomeError(
            f"data directory {settings.home} lacks the keys {', '.join(missing)}: "
            "run 'tsuba init --force' to create them"
        )
    return InitResult(home=settings.home, notes=("data directory checked",))


def check_home(settings: Settings) -> list[str]:
    """What is missing or too open in an existing data directory (empty when all is well)."""
    home = settings.home
    if not home.is_dir():
        return [f"no data directory at {home}"]
    problems = []
    if home.stat().st_mode & 0o077:
        problems.append(f"{home} is accessible by group or others (expected mode 0700)")
    needed: list[Path] = []
    if settings.keys.backend == "local":
        needed.append(settings.path(settings.keys.keyring_file))
        if settings.master_key is None and settings.master_passphrase is None:
            needed.append(settings.path(settings.keys.master_key_file))
    if settings.database_url is None:
        needed.append(home / "tsuba.db")
    for path in needed:
        if not path.exists():
            problems.append(f"missing {path}")
        elif path.suffix != ".db" and (mode := loose_permissions(path)) is not None:
            problems.append(f"{path} has mode {mode:04o} (expected 0600)")
    return problems


def default_config() -> str:
    """``tsuba.toml`` with every setting commented out at its default."""
    lines = [
        "# tsuba settings. Each setting is shown commented out at its default value:",
        "# to change one, uncomment it and its [section] line.",
        "# TSUBA_* environment variables override this file (sections joined with '__',",
        "# e.g. TSUBA_SERVER__PORT=9000). Keep secrets out of this file: set",
        "# TSUBA_MASTER_KEY or TSUBA_MASTER_PASSPHRASE in the environment instead.",
        "",
    ]
    _describe_model(Settings(), [], lines)
    return "\n".join(lines).rstrip() + "\n"


def _describe_model(model: BaseModel, path: list[str], lines: list[str]) -> None:
    sections: list[tuple[str, BaseModel]] = []
    plain = model.model_dump(mode="json")
    for name, info in type(model).model_fields.items():
        if not path and name in _ENV_ONLY:
            continue
        value = getattr(model, name)
        if isinstance(value, BaseModel):
            sections.append((name, value))
        elif "SecretStr" in str(info.annotation):
            env = "TSUBA_" + "__".join([*path, name]).upper()
            lines.append(f"# {name}: a secret, set {env} in the environment")
        elif value is None:
            lines.append(f"# {name} =   (not set)")
        else:
            lines.append(f"# {_toml_key(name)} = {_toml_inline(plain[name])}")
    for name, section in sections:
        # Headers stay commented too: an empty table is not always the default (a section
        # whose default is a configured instance would fall back to the bare model's).
        lines.extend(["", f"# [{'.'.join([*path, name])}]"])
        _describe_model(section, [*path, name], lines)


def _toml_key(key: str) -> str:
    return key if _BARE_KEY.fullmatch(key) else json.dumps(key)


def _toml_inline(value: Any) -> str:
    """One TOML value on one line (inline arrays and tables), from JSON-shaped data."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, list):
        return "[" + ", ".join(_toml_inline(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{_toml_key(str(k))} = {_toml_inline(v)}" for k, v in value.items()
                 if v is not None]
        return "{" + ", ".join(items) + "}"
    raise TypeError(f"cannot write {type(value).__name__} as TOML")


def _key_manager_for_init(
    settings: Settings, created: list[str], kept: list[str], notes: list[str]
) -> KeyManager:
    if settings.keys.backend != "local":
        notes.append(f"keys live in the {settings.keys.backend} backend")
        return open_key_manager(settings)
    keyring = settings.path(settings.keys.keyring_file)
    master_file = settings.path(settings.keys.master_key_file)
    if settings.master_key is not None or settings.master_passphrase is not None:
        source = "TSUBA_MASTER_KEY" if settings.master_key is not None else (
            "TSUBA_MASTER_PASSPHRASE"
        )
        notes.append(f"master key from {source}: no master key file written")
    elif master_file.exists():
        kept.append(str(master_file))
    elif keyring.exists():
        raise HomeError(
            f"keyring {keyring} exists but its master key file {master_file} is missing: "
            "restore the file or set TSUBA_MASTER_KEY (a new master key could not open the "
            "keyring, so none is created)"
        )
    else:
        write_master_key_file(master_file)
        created.append(str(master_file))
    master = resolve_master(settings)
    if keyring.exists():
        kept.append(str(keyring))
        return LocalKeyManager(keyring, master)
    km = LocalKeyManager.initialise(keyring, master)
    created.append(str(keyring))
    return km


def _migrate(
    settings: Settings, created: list[str], kept: list[str]
) -> tuple[str, tuple[str, ...]]:
    url = settings.sqlalchemy_url
    parsed = make_url(url)
    db_file = None
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        db_file = Path(str(parsed.database))
    existed = db_file is not None and db_file.exists()
    engine = open_engine(url)
    try:
        upgrade(engine)
        heads = tuple(sorted(current_heads(engine)))
    finally:
        engine.dispose()
    if db_file is not None:
        (kept if existed else created).append(str(db_file))
        if not existed:
            os.chmod(db_file, stat.S_IRUSR | stat.S_IWUSR)
    return parsed.render_as_string(hide_password=True), heads


__all__ = [
    "InitResult",
    "check_home",
    "default_config",
    "ensure_home",
    "init_home",
    "require_home",
    "required_keys",
]
