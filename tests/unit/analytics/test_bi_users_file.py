"""The BI users file: a rewrite the server can see (ClickHouse 18.16 compares whole-second
modification times) and only its owner can read."""
from __future__ import annotations

import os
from pathlib import Path

from analytics.bi_users import BiUser, read_users, users_file, write_users


def user(tenant: str) -> BiUser:
    return BiUser(tenant, f"product_bi_{tenant}", "0" * 64)


def test_a_rewrite_within_the_same_second_gets_a_later_second(tmp_path: Path):
    path = users_file(tmp_path, "product")
    write_users(path, [user("acme")], "product")
    first = path.stat().st_mtime
    os.utime(path, (int(first) + 0.2, int(first) + 0.2))  # as if the server read it just now
    seconds = {int(path.stat().st_mtime)}
    for tenant in ("beta", "gamma", "delta"):  # three runs of bi-users in well under a second
        write_users(path, [user("acme"), user(tenant)], "product")
        now = int(path.stat().st_mtime)
        assert now not in seconds, "the server would not see this version"
        seconds.add(now)
    assert set(read_users(path, "product")) == {"acme", "delta"}
    assert (path.stat().st_mode & 0o077) == 0
