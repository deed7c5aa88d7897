"""The probe's own encoding of SET must be what redis-py would send."""

import redis

from orchestrator.engine.nodes import _packed_set
from orchestrator.workloads.writes import Probe, key_for


def test_packed_set_equals_redis_py_encoding():
    conn = redis.Connection()
    for seq in (1, 42, 123456789):
        expected = b"".join(conn.pack_command("SET", key_for(seq), f"ab12cd:{seq}"))
        assert _packed_set(key_for(seq).encode(), f"ab12cd:{seq}".encode()) == expected


def test_value_for_matches_what_is_written():
    probe = Probe(lambda: None, lambda exc, connecting: ("fail", ""), run_id="ab12cd")
    assert _packed_set(b"probe:7", b"ab12cd:7").endswith(probe.value_for(7).encode() + b"\r\n")
