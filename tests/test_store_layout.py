"""The store's key layout keeps every key one script touches in one hash slot, so each script
runs on one node of a Redis Cluster; and the scripts ship with the package."""

import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from redis.crc import key_slot

from service.store import scripts
from service.store.layout import ALL_BUCKETS, BUCKETS, EntryKeys, UserKeys
from service.store.lua import source
from tests.support.services import REPO

# Ids a hostile or careless client could send: separators, braces, spaces, unicode.
IDS = ["user-1", "a:b", "{b001}", "x}y{z", "with space", "ünï©ødé", "%3A", "*?[]"]


def _slot(key: str) -> int:
    return int(key_slot(key.encode()))


@pytest.mark.parametrize("tenant", ["acme", "t:{1}", "tenant with space"])
@pytest.mark.parametrize("user_id", IDS)
def test_every_key_of_a_user_and_its_bucket_indexes_share_one_slot(
    tenant: str, user_id: str
) -> None:
    user = UserKeys(tenant, user_id)
    session = user.session("s:{1}")
    entry = user.entry(user.new_entry_id(session, "abc123"))
    keys = [
        *user.own_keys(),
        user.lease,
        user.fence,
        *session.all_keys(),
        *entry.all_keys(),
        user.bucket.idle,
        user.bucket.outbox_due,
        user.bucket.outbox_dead,
        user.tenant_entries,
    ]

    assert {_slot(key) for key in keys} == {_slot(user.prefix)}
    # The entry id alone names its user (an operator re-drives by id).
    assert EntryKeys.from_id(entry.entry_id) == entry


def test_users_spread_over_every_bucket_and_buckets_over_distinct_slots() -> None:
    used = {UserKeys("acme", f"user-{i}").bucket.index for i in range(20 * BUCKETS)}

    assert used == set(range(BUCKETS))
    assert len({_slot(bucket.prefix) for bucket in ALL_BUCKETS}) == BUCKETS


def test_no_script_names_a_key_of_its_own() -> None:
    """Every key reaches a script through KEYS: no script text builds one from a prefix."""
    for spec in scripts.ALL_SPECS:
        text = source(spec)
        assert "syn:" not in text, spec.name
        assert " .. ':" not in text, spec.name


def test_the_wheel_ships_every_lua_script(tmp_path: Path) -> None:
    # Built from a copy: setuptools writes build/ next to the sources it builds.
    source = tmp_path / "src"
    for part in ("service", "janitor", "contracts"):
        shutil.copytree(REPO / part, source / part, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(REPO / "pyproject.toml", source / "pyproject.toml")
    shutil.copy(REPO / "README.md", source / "README.md")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(source)],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("*.whl")
    shipped = {n for n in zipfile.ZipFile(wheel).namelist() if n.endswith(".lua")}
    on_disk = {
        str(p.relative_to(REPO)) for p in (REPO / "service" / "store" / "lua").rglob("*.lua")
    }

    assert shipped == on_disk


def test_no_key_is_named_outside_the_store() -> None:
    """Key names (Synapse's `syn:` and arq's `arq:`) appear in service/store/ only."""
    outside = [
        path
        for root in ("service", "janitor", "contracts")
        for path in (REPO / root).rglob("*.py")
        if "store" not in path.relative_to(REPO).parts[:2]
    ]
    named = [
        str(path.relative_to(REPO))
        for path in outside
        if re.search(r"""["'](syn|arq):""", path.read_text(encoding="utf-8"))
    ]

    assert outside
    assert named == []
