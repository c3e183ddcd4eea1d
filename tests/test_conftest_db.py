"""The per-test database fixture really gives an isolated, writable database."""

import psycopg


def test_pg_dsn_is_a_fresh_writable_database(pg_dsn: str) -> None:
    with psycopg.connect(pg_dsn) as conn:
        conn.execute("CREATE TABLE probe (x int)")
        conn.execute("INSERT INTO probe VALUES (1)")
        (count,) = conn.execute("SELECT count(*) FROM probe").fetchone()
    assert count == 1
    with psycopg.connect(pg_dsn) as conn:
        (name,) = conn.execute("SELECT current_database()").fetchone()
    assert name.startswith("pbx_test_")
