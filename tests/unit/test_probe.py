"""The probe's own encoding of SET must be what redis-py would send."""

import redis

from orchestrator.probe import Probe, _packed_set


def test_packed_set_equals_redis_py_encoding():
    conn = redis.Connection()
    for seq in (1, 42, 123456789):
        expected = b"".join(conn.pack_command("SET", Probe.key_for(seq), f"ab12cd:{seq}"))
        assert _packed_set(seq, b"ab12cd:") == expected


def test_value_for_matches_what_is_written():
    probe = Probe(lambda: None, run_id="ab12cd")
    assert _packed_set(7, b"ab12cd:").endswith(probe.value_for(7).encode() + b"\r\n")
