"""The SQLite store's schema: its versioned migrations, and the check that a file's phone index fits the key."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from gateway.store.phone_hash import KEY_ENV, KEY_FILE, PhoneKeyMismatch, key_fingerprint


def _hex_number(column: str) -> str:
    """SQL for the signed 64-bit integer the first 16 hex digits (lower case) of `column` spell, big-endian: each
    digit shifted into place (SQLite shifts 64-bit two's complement, so the top digit's high bit makes it negative)."""
    return " | ".join(f"((instr('0123456789abcdef', substr({column}, {i + 1}, 1)) - 1) << {60 - 4 * i})"
                      for i in range(16))


# The schema version of a file is its `PRAGMA user_version`: the number of these scripts it has run.
MIGRATIONS: tuple[str, ...] = (
    # 1: the first schema.
    """
    CREATE TABLE tickets (
        id                       TEXT PRIMARY KEY,
        idempotency_key          TEXT NOT NULL UNIQUE,
        national_registration_no TEXT,
        adapter_id               TEXT NOT NULL,
        source_system            TEXT NOT NULL,
        source_ticket_no         TEXT NOT NULL,
        status                   TEXT NOT NULL,
        respondent_uscc          TEXT,
        respondent_name          TEXT,
        complainant_phone_hash   TEXT,
        last_sequence            INTEGER NOT NULL,
        created_at               INTEGER NOT NULL,
        updated_at               INTEGER NOT NULL,
        body                     TEXT NOT NULL
    );
    CREATE INDEX tickets_national_no ON tickets(national_registration_no)
        WHERE national_registration_no IS NOT NULL;
    CREATE INDEX tickets_adapter ON tickets(adapter_id, created_at);
    CREATE INDEX tickets_status ON tickets(status, created_at);
    CREATE INDEX tickets_created ON tickets(created_at);
    CREATE INDEX tickets_source_no ON tickets(source_ticket_no);
    CREATE INDEX tickets_uscc ON tickets(respondent_uscc) WHERE respondent_uscc IS NOT NULL;
    CREATE INDEX tickets_respondent_name ON tickets(respondent_name) WHERE respondent_name IS NOT NULL;
    CREATE INDEX tickets_phone ON tickets(complainant_phone_hash) WHERE complainant_phone_hash IS NOT NULL;

    CREATE TABLE raw_payloads (
        ticket_id    TEXT PRIMARY KEY REFERENCES tickets(id),
        content_type TEXT NOT NULL,
        body         BLOB NOT NULL,
        received_at  INTEGER NOT NULL
    );

    CREATE TABLE deliveries (
        id               TEXT PRIMARY KEY,
        ticket_id        TEXT NOT NULL,
        destination      TEXT NOT NULL,
        kind             TEXT NOT NULL,
        idempotency_key  TEXT NOT NULL,
        body             BLOB NOT NULL,
        content_type     TEXT NOT NULL,
        headers          TEXT NOT NULL,
        priority         INTEGER NOT NULL,
        state            TEXT NOT NULL,
        claim_rank       INTEGER NOT NULL,
        due_at           INTEGER NOT NULL,
        attempts         INTEGER NOT NULL DEFAULT 0,
        created_at       INTEGER NOT NULL,
        lease_token      TEXT,
        lease_until      INTEGER,
        worker_id        TEXT,
        return_state     TEXT,
        delivered_at     INTEGER,
        dead_at          INTEGER,
        last_error_class TEXT,
        last_status_code INTEGER
    );
    CREATE INDEX deliveries_claim ON deliveries(destination, claim_rank, due_at)
        WHERE state IN ('pending', 'retrying');
    CREATE INDEX deliveries_leases ON deliveries(lease_until) WHERE state = 'in_flight';
    CREATE INDEX deliveries_ticket ON deliveries(ticket_id);
    CREATE INDEX deliveries_state ON deliveries(state, destination, created_at);

    CREATE TABLE attempts (
        delivery_id   TEXT NOT NULL,
        number        INTEGER NOT NULL,
        started_at    INTEGER NOT NULL,
        duration_ms   REAL NOT NULL,
        status_code   INTEGER,
        error_class   TEXT,
        outcome       TEXT NOT NULL,
        response_body TEXT,
        PRIMARY KEY (delivery_id, number)
    );

    CREATE TABLE quarantine (
        id                 TEXT PRIMARY KEY,
        adapter_id         TEXT NOT NULL,
        received_at        INTEGER NOT NULL,
        content_type       TEXT NOT NULL,
        body               BLOB NOT NULL,
        errors             TEXT NOT NULL,
        resolved_ticket_id TEXT
    );
    CREATE INDEX quarantine_adapter ON quarantine(adapter_id, received_at);
    CREATE INDEX quarantine_received ON quarantine(received_at);

    CREATE TABLE cursors (adapter_id TEXT PRIMARY KEY, cursor TEXT NOT NULL, updated_at INTEGER NOT NULL);
    CREATE TABLE locks (name TEXT PRIMARY KEY, owner TEXT NOT NULL, expires_at INTEGER NOT NULL);
    CREATE TABLE nonces (
        scope      TEXT NOT NULL,
        nonce      TEXT NOT NULL,
        expires_at INTEGER NOT NULL,
        PRIMARY KEY (scope, nonce)
    );
    CREATE INDEX nonces_expiry ON nonces(expires_at);
    """,
    # 2: operations - the audit log of operator actions, per-minute counters for the dashboard's chart.
    """
    CREATE TABLE audit_log (
        id         TEXT PRIMARY KEY,
        at         INTEGER NOT NULL,
        actor      TEXT NOT NULL,
        role       TEXT NOT NULL,
        action     TEXT NOT NULL,
        outcome    TEXT NOT NULL,
        ticket_ids TEXT NOT NULL,
        detail     TEXT NOT NULL
    );
    CREATE INDEX audit_at ON audit_log(at);
    CREATE TABLE audit_tickets (
        ticket_id TEXT NOT NULL,
        audit_id  TEXT NOT NULL,
        PRIMARY KEY (ticket_id, audit_id)
    );
    CREATE TABLE minute_counts (
        minute INTEGER NOT NULL,
        name   TEXT NOT NULL,
        count  INTEGER NOT NULL,
        PRIMARY KEY (minute, name)
    );
    """,
    # 3: running counts of deliveries per lane and state, and of tickets per adapter, kept by triggers in the
    # same transactions as the rows, so /metrics and the dashboard read a few rows however long the history.
    """
    CREATE TABLE delivery_counts (
        destination TEXT NOT NULL,
        state       TEXT NOT NULL,
        n           INTEGER NOT NULL,
        PRIMARY KEY (destination, state)
    ) WITHOUT ROWID;
    INSERT INTO delivery_counts (destination, state, n)
        SELECT destination, state, COUNT(*) FROM deliveries GROUP BY destination, state;
    CREATE TRIGGER deliveries_count_insert AFTER INSERT ON deliveries BEGIN
        INSERT INTO delivery_counts (destination, state, n) VALUES (NEW.destination, NEW.state, 1)
            ON CONFLICT (destination, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER deliveries_count_update AFTER UPDATE OF state, destination ON deliveries
        WHEN OLD.state IS NOT NEW.state OR OLD.destination IS NOT NEW.destination BEGIN
        UPDATE delivery_counts SET n = n - 1 WHERE destination = OLD.destination AND state = OLD.state;
        INSERT INTO delivery_counts (destination, state, n) VALUES (NEW.destination, NEW.state, 1)
            ON CONFLICT (destination, state) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER deliveries_count_delete AFTER DELETE ON deliveries BEGIN
        UPDATE delivery_counts SET n = n - 1 WHERE destination = OLD.destination AND state = OLD.state;
    END;
    CREATE TABLE ticket_counts (
        adapter_id TEXT PRIMARY KEY,
        n          INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO ticket_counts (adapter_id, n) SELECT adapter_id, COUNT(*) FROM tickets GROUP BY adapter_id;
    CREATE TRIGGER tickets_count_insert AFTER INSERT ON tickets BEGIN
        INSERT INTO ticket_counts (adapter_id, n) VALUES (NEW.adapter_id, 1)
            ON CONFLICT (adapter_id) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER tickets_count_update AFTER UPDATE OF adapter_id ON tickets
        WHEN OLD.adapter_id IS NOT NEW.adapter_id BEGIN
        UPDATE ticket_counts SET n = n - 1 WHERE adapter_id = OLD.adapter_id;
        INSERT INTO ticket_counts (adapter_id, n) VALUES (NEW.adapter_id, 1)
            ON CONFLICT (adapter_id) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER tickets_count_delete AFTER DELETE ON tickets BEGIN
        UPDATE ticket_counts SET n = n - 1 WHERE adapter_id = OLD.adapter_id;
    END;
    """,
    # 4: a replayed dead letter gets the retry policy's whole budget again, counted from its replay.
    """
    ALTER TABLE deliveries ADD COLUMN budget_attempts INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE deliveries ADD COLUMN budget_since INTEGER;
    """,
    # 5: compaction of old delivered deliveries (their bodies dropped, their records kept).
    """
    ALTER TABLE deliveries ADD COLUMN compacted_at INTEGER;
    CREATE INDEX deliveries_compactable ON deliveries(created_at) WHERE state = 'delivered' AND compacted_at IS NULL;
    """,
    # 6: one ticket's deliveries to a lane go in order; those waiting behind an earlier one are parked (claim rank
    # + 100 = lanes.PARKED, outside the claim's index range) so that a claim never scans them, and the settle of the
    # one ahead (delivered or dead) lets the next go. Kept by triggers, in the transaction of each write.
    """
    UPDATE deliveries SET claim_rank = claim_rank + 100
     WHERE state IN ('pending', 'retrying') AND claim_rank < 100 AND EXISTS (
           SELECT 1 FROM deliveries AS e WHERE e.ticket_id = deliveries.ticket_id
              AND e.destination = deliveries.destination AND e.rowid < deliveries.rowid
              AND e.state IN ('pending', 'retrying', 'in_flight'));
    CREATE TRIGGER deliveries_order_park AFTER INSERT ON deliveries
    WHEN EXISTS (SELECT 1 FROM deliveries AS e WHERE e.ticket_id = NEW.ticket_id
                    AND e.destination = NEW.destination AND e.rowid < NEW.rowid
                    AND e.state IN ('pending', 'retrying', 'in_flight')) BEGIN
        UPDATE deliveries SET claim_rank = claim_rank + 100 WHERE rowid = NEW.rowid;
    END;
    CREATE TRIGGER deliveries_order_next AFTER UPDATE OF state ON deliveries
    WHEN NEW.state IN ('delivered', 'dead') AND OLD.state NOT IN ('delivered', 'dead') BEGIN
        UPDATE deliveries SET claim_rank = claim_rank - 100
         WHERE rowid = (SELECT rowid FROM deliveries WHERE ticket_id = NEW.ticket_id
                           AND destination = NEW.destination AND state IN ('pending', 'retrying', 'in_flight')
                         ORDER BY rowid LIMIT 1)
           AND claim_rank >= 100;
    END;
    CREATE TRIGGER deliveries_order_replay AFTER UPDATE OF state ON deliveries
    WHEN OLD.state = 'dead' AND NEW.state = 'pending' BEGIN
        UPDATE deliveries SET claim_rank = claim_rank + 100
         WHERE ticket_id = NEW.ticket_id AND destination = NEW.destination AND rowid > NEW.rowid
           AND state IN ('pending', 'retrying') AND claim_rank < 100;
        UPDATE deliveries SET claim_rank = claim_rank + 100
         WHERE rowid = NEW.rowid AND claim_rank < 100 AND EXISTS (
               SELECT 1 FROM deliveries AS e WHERE e.ticket_id = NEW.ticket_id
                  AND e.destination = NEW.destination AND e.rowid < NEW.rowid
                  AND e.state IN ('pending', 'retrying', 'in_flight'));
    END;
    """,
    # 7: facts about the file itself: the fingerprint of the key its phone index was made with.
    """
    CREATE TABLE store_facts (
        name  TEXT PRIMARY KEY,
        value TEXT NOT NULL
    ) WITHOUT ROWID;
    """,
    # 8: a ticket's revision, the count of its saves: conditional saves compare it (lifecycle.revision).
    """
    ALTER TABLE tickets ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: tickets held for an operator's jurisdiction decision, found by index (Ticket.held_for_review).
    """
    ALTER TABLE tickets ADD COLUMN held TEXT;
    UPDATE tickets SET held = 'review'
        WHERE status = 'RECEIVED' AND json_extract(body, '$.routing.jurisdiction.outcome') = 'review';
    CREATE INDEX tickets_held ON tickets(held, created_at) WHERE held IS NOT NULL;
    """,
    # 10: deadlines as stored state: the earliest due day of a ticket's running time limits (deadline risk is
    # read by its index), and every ended limit of each ticket (on-time rates by day, organisation and kind).
    # Tickets stored before: a ticket not yet past acceptance still runs under the limits it was given at intake.
    """
    ALTER TABLE tickets ADD COLUMN next_due_on TEXT;
    UPDATE tickets SET next_due_on = (SELECT MIN(json_extract(d.value, '$.due_on'))
                                        FROM json_each(tickets.body, '$.routing.deadlines') AS d)
     WHERE status IN ('RECEIVED', 'DISPATCHED');
    CREATE INDEX tickets_next_due ON tickets(next_due_on, created_at) WHERE next_due_on IS NOT NULL;
    CREATE TABLE deadline_outcomes (
        ticket_id        TEXT NOT NULL,
        position         INTEGER NOT NULL,
        ended_on         TEXT NOT NULL,
        handler_org_code TEXT NOT NULL,
        handler_org_name TEXT NOT NULL,
        kind             TEXT NOT NULL,
        outcome          TEXT NOT NULL,
        PRIMARY KEY (ticket_id, position)
    ) WITHOUT ROWID;
    CREATE INDEX deadline_outcomes_ended ON deadline_outcomes(ended_on);
    """,
    # 11: alerts, one record each from firing to resolved (the alert monitor's state, shared by its processes).
    """
    CREATE TABLE alerts (
        id         TEXT PRIMARY KEY,
        firing     INTEGER NOT NULL,
        updated_at INTEGER NOT NULL,
        body       TEXT NOT NULL
    );
    CREATE INDEX alerts_firing ON alerts(firing, updated_at) WHERE firing = 1;
    CREATE INDEX alerts_updated ON alerts(updated_at);
    """,
    # 12: the sender's echo - the status each callback reports, and per ticket what its partner has heard, with the
    # tickets behind indexed by since when; quarantine dedupe - one open record per adapter and payload, counted.
    """
    ALTER TABLE deliveries ADD COLUMN reports_sequence INTEGER;
    ALTER TABLE deliveries ADD COLUMN reports_status TEXT;
    CREATE TABLE partner_echo (
        ticket_id       TEXT PRIMARY KEY,
        destination     TEXT NOT NULL,
        latest_sequence INTEGER NOT NULL,
        latest_status   TEXT NOT NULL,
        latest_at       INTEGER NOT NULL,
        heard_sequence  INTEGER,
        heard_status    TEXT,
        heard_at        INTEGER,
        behind_since    INTEGER
    ) WITHOUT ROWID;
    CREATE INDEX partner_echo_behind ON partner_echo(behind_since) WHERE behind_since IS NOT NULL;
    ALTER TABLE quarantine ADD COLUMN payload_digest TEXT;
    ALTER TABLE quarantine ADD COLUMN times_seen INTEGER NOT NULL DEFAULT 1;
    ALTER TABLE quarantine ADD COLUMN last_seen_at INTEGER;
    CREATE UNIQUE INDEX quarantine_open_payload ON quarantine(adapter_id, payload_digest)
        WHERE resolved_ticket_id IS NULL AND payload_digest IS NOT NULL;
    """,
    # 13: the raw payload of each later version of a ticket (a partner's new version or supplement), by its key.
    """
    CREATE TABLE raw_versions (
        ticket_id    TEXT NOT NULL REFERENCES tickets(id),
        key          TEXT NOT NULL,
        content_type TEXT NOT NULL,
        body         BLOB NOT NULL,
        received_at  INTEGER NOT NULL,
        PRIMARY KEY (ticket_id, key)
    ) WITHOUT ROWID;
    """,
    # 14: cross-line duplicate links - each ticket under the keyed hashes of its complainant|respondent marks, by
    # the time it was received, so a new ticket's candidates are a range read per mark. Tickets stored before
    # this migration are not indexed (the marks need the phone key and the ticket domain's normalisation).
    """
    CREATE TABLE ticket_link_keys (
        link_key    TEXT NOT NULL,
        received_at INTEGER NOT NULL,
        ticket_id   TEXT NOT NULL,
        PRIMARY KEY (link_key, received_at, ticket_id)
    ) WITHOUT ROWID;
    """,
    # 15: a partner's number belongs to one ticket, taken in intake's transaction (two versions of one matter
    # racing make one ticket). A store may hold duplicates made before: each number goes to its first-stored ticket.
    """
    CREATE TABLE source_numbers (
        source_system    TEXT NOT NULL,
        source_ticket_no TEXT NOT NULL,
        ticket_id        TEXT NOT NULL REFERENCES tickets(id) DEFERRABLE INITIALLY DEFERRED,
        PRIMARY KEY (source_system, source_ticket_no)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO source_numbers (source_system, source_ticket_no, ticket_id)
        SELECT source_system, source_ticket_no, id FROM tickets ORDER BY created_at, rowid;
    """,
    # 16: link keys as 8-byte integers (ticket_index.link_numbers) instead of 64 hex digits: half the index's size,
    # fewer pages for an intake to write and a look-up to read. The keys stored are converted from their hex.
    f"""
    CREATE TABLE ticket_link_numbers (
        link_key    INTEGER NOT NULL,
        received_at INTEGER NOT NULL,
        ticket_id   TEXT NOT NULL,
        PRIMARY KEY (link_key, received_at, ticket_id)
    ) WITHOUT ROWID;
    INSERT OR IGNORE INTO ticket_link_numbers (link_key, received_at, ticket_id)
        SELECT {_hex_number("link_key")}, received_at, ticket_id FROM ticket_link_keys;
    DROP TABLE ticket_link_keys;
    ALTER TABLE ticket_link_numbers RENAME TO ticket_link_keys;
    """,  # noqa: S608 - the expression is the constant _hex_number
    # 17: source_numbers.ticket_id indexed. Intake takes the partner's number before it stores the ticket, so the
    # deferred foreign key is pending when the ticket row goes in, and SQLite then looks for the child rows that
    # name it: without this index, a read of every partner's number at each intake (1.7 ms at 50,000 tickets).
    """
    CREATE INDEX source_numbers_ticket ON source_numbers(ticket_id);
    """,
    # 18: the link keys appended, one row per ticket in the order tickets come (link_log.py), and found through an
    # index in memory: a random-key index in the file wrote a leaf page per key at every commit. The keys
    # indexed are carried over, oldest received first.
    """
    CREATE TABLE link_log (
        seq         INTEGER PRIMARY KEY,
        received_at INTEGER NOT NULL,
        ticket_id   TEXT NOT NULL,
        link_keys   TEXT NOT NULL
    );
    INSERT INTO link_log (received_at, ticket_id, link_keys)
        SELECT received_at, ticket_id, group_concat(link_key, ' ') FROM ticket_link_keys
        GROUP BY ticket_id, received_at ORDER BY received_at, ticket_id;
    DROP TABLE ticket_link_keys;
    """,
)


def statements(script: str) -> Iterator[str]:
    """The statements of a migration script, a trigger's body (with its own semicolons) kept whole."""
    pending = ""
    for line in script.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            yield pending.strip()
            pending = ""
    if pending.strip():
        raise ValueError(f"an incomplete SQL statement ends the migration script: {pending.strip()[:80]!r}")


def migrate(db: sqlite3.Connection, path: Path) -> None:
    """Bring the file up to the newest schema in one transaction; refuse a file newer than this gateway."""
    db.execute("BEGIN IMMEDIATE")
    try:
        version = int(db.execute("PRAGMA user_version").fetchone()[0])
        if version > len(MIGRATIONS):
            raise RuntimeError(
                f"{path} has schema version {version}, newer than this gateway knows "
                f"({len(MIGRATIONS)}); run a newer gateway or restore a backup"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in statements(script):
                db.execute(statement)
            db.execute(f"PRAGMA user_version={number}")
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")


def check_phone_key(db: sqlite3.Connection, phone_key: bytes, path: Path) -> None:
    """A search by phone finds only what was indexed with the same key: the first gateway to open the file
    records its key's fingerprint (it does not reveal the key), and one with another key refuses to open it."""
    mine = key_fingerprint(phone_key)
    db.execute("INSERT OR IGNORE INTO store_facts (name, value) VALUES ('phone_key_fingerprint', ?)", (mine,))
    recorded = db.execute("SELECT value FROM store_facts WHERE name = 'phone_key_fingerprint'").fetchone()[0]
    if recorded != mine:
        raise PhoneKeyMismatch(
            f"this gateway's phone hash key is not the one the tickets in {path} were indexed with: set "
            f"{KEY_ENV} to that key (a gateway without {KEY_ENV} keeps its key in <data_dir>/{KEY_FILE})")
