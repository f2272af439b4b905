"""The PostgreSQL store's schema: versioned migrations, applied in one transaction under an advisory lock."""

from __future__ import annotations

from dataclasses import dataclass

from gateway.store.errors import SchemaTooNew
from gateway.store.phone_hash import KEY_ENV, KEY_FILE, PhoneKeyMismatch, key_fingerprint
from gateway.store.postgres.connection import Conn


@dataclass(frozen=True)
class Migration:
    version: int
    description: str
    sql: str


# Times are timestamptz (UTC on the wire), tickets are `json` (the text exactly as the gateway wrote it, which a DBA
# can still query with ->>), and every list that is shown in the order things happened keeps a `seq` identity.
MIGRATIONS: tuple[Migration, ...] = (
    Migration(1, "tickets, raw payloads, deliveries and attempts, quarantine, coordination, operations", """
CREATE TABLE tickets (
    seq                      bigint GENERATED ALWAYS AS IDENTITY,
    id                       text PRIMARY KEY,
    idempotency_key          text NOT NULL,
    national_registration_no text,
    adapter_id               text NOT NULL,
    source_system            text NOT NULL,
    source_ticket_no         text NOT NULL,
    status                   text NOT NULL,
    respondent_uscc          text,
    respondent_name          text,
    complainant_phone_hash   text,
    held                     text,
    last_sequence            integer NOT NULL,
    revision                 integer NOT NULL,
    next_due_on              date,
    created_at               timestamptz NOT NULL,
    updated_at               timestamptz NOT NULL,
    body                     json NOT NULL,
    CONSTRAINT tickets_idempotency_key UNIQUE (idempotency_key)
);
CREATE INDEX tickets_created ON tickets (created_at DESC, seq DESC);
CREATE INDEX tickets_national_no ON tickets (national_registration_no, created_at)
    WHERE national_registration_no IS NOT NULL;
CREATE INDEX tickets_adapter ON tickets (adapter_id, created_at DESC, seq DESC);
CREATE INDEX tickets_status ON tickets (status, created_at DESC, seq DESC);
CREATE INDEX tickets_source_no ON tickets (source_ticket_no, created_at DESC, seq DESC);
CREATE INDEX tickets_uscc ON tickets (respondent_uscc, created_at DESC, seq DESC) WHERE respondent_uscc IS NOT NULL;
CREATE INDEX tickets_respondent_name ON tickets (respondent_name, created_at DESC, seq DESC)
    WHERE respondent_name IS NOT NULL;
CREATE INDEX tickets_phone ON tickets (complainant_phone_hash, created_at DESC, seq DESC)
    WHERE complainant_phone_hash IS NOT NULL;
CREATE INDEX tickets_held ON tickets (held, created_at DESC, seq DESC) WHERE held IS NOT NULL;
-- Deadline risk is read by the earliest due day of a ticket's running time limits.
CREATE INDEX tickets_next_due ON tickets (next_due_on, created_at DESC, seq DESC) WHERE next_due_on IS NOT NULL;

-- Every ended time limit of each ticket, for on-time counts by day, organisation and kind.
CREATE TABLE deadline_outcomes (
    ticket_id        text NOT NULL,
    position         integer NOT NULL,
    ended_on         date NOT NULL,
    handler_org_code text NOT NULL,
    handler_org_name text NOT NULL,
    kind             text NOT NULL,
    outcome          text NOT NULL,
    PRIMARY KEY (ticket_id, position)
);
CREATE INDEX deadline_outcomes_ended ON deadline_outcomes (ended_on);

CREATE TABLE raw_payloads (
    ticket_id    text PRIMARY KEY REFERENCES tickets (id),
    content_type text NOT NULL,
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL
);

-- The raw payload of each later version of a ticket (a partner's new version or supplement), by its key.
CREATE TABLE raw_versions (
    ticket_id    text NOT NULL REFERENCES tickets (id),
    key          text NOT NULL,
    content_type text NOT NULL,
    body         bytea NOT NULL,
    received_at  timestamptz NOT NULL,
    PRIMARY KEY (ticket_id, key)
);

-- Cross-line duplicate links: each ticket under the keyed hashes of its complainant|respondent marks, by the time it
-- was received, so a new ticket's candidates are a range read per mark.
CREATE TABLE ticket_link_keys (
    link_key    text NOT NULL,
    received_at timestamptz NOT NULL,
    ticket_id   text NOT NULL,
    PRIMARY KEY (link_key, received_at, ticket_id)
);

CREATE TABLE deliveries (
    seq              bigint GENERATED ALWAYS AS IDENTITY,
    id               text PRIMARY KEY,
    ticket_id        text NOT NULL,
    destination      text NOT NULL,
    kind             text NOT NULL,
    idempotency_key  text NOT NULL,
    body             bytea NOT NULL,
    content_type     text NOT NULL,
    headers          json NOT NULL,
    priority         smallint NOT NULL,
    state            text NOT NULL,
    claim_rank       smallint NOT NULL,
    due_at           timestamptz NOT NULL,
    attempts         integer NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL,
    lease_token      text,
    lease_until      timestamptz,
    worker_id        text,
    return_state     text,
    delivered_at     timestamptz,
    dead_at          timestamptz,
    last_error_class text,
    last_status_code integer,
    budget_attempts  integer NOT NULL DEFAULT 0,
    budget_since     timestamptz,
    compacted_at     timestamptz,
    reports_sequence integer,
    reports_status   text
);
-- A claim walks this index in claim order; the order check probes the one below it.
CREATE INDEX deliveries_claim ON deliveries (destination, claim_rank, due_at, seq)
    WHERE state IN ('pending', 'retrying');
CREATE INDEX deliveries_outstanding ON deliveries (ticket_id, destination, seq)
    WHERE state IN ('pending', 'retrying', 'in_flight');
CREATE INDEX deliveries_leases ON deliveries (lease_until) WHERE state = 'in_flight';
CREATE INDEX deliveries_ticket ON deliveries (ticket_id, created_at, seq);
CREATE INDEX deliveries_state ON deliveries (state, destination, created_at, seq);
CREATE INDEX deliveries_created ON deliveries (created_at, seq);
CREATE INDEX deliveries_compactable ON deliveries (created_at)
    WHERE state = 'delivered' AND compacted_at IS NULL;

CREATE TABLE attempts (
    delivery_id   text NOT NULL,
    number        integer NOT NULL,
    started_at    timestamptz NOT NULL,
    duration_ms   double precision NOT NULL,
    status_code   integer,
    error_class   text,
    outcome       text NOT NULL,
    response_body text,
    PRIMARY KEY (delivery_id, number)
);

-- Workers LISTEN on "lanes_<schema>": work that is due now wakes them at commit (payload: the lane's name).
-- Notifications of one transaction with the same payload arrive once.
CREATE FUNCTION notify_lane() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.state IN ('pending', 'retrying') AND NEW.due_at <= clock_timestamp()
       AND (TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state) THEN
        PERFORM pg_notify('lanes_' || TG_TABLE_SCHEMA, NEW.destination);
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_wake AFTER INSERT OR UPDATE OF state ON deliveries
    FOR EACH ROW EXECUTE FUNCTION notify_lane();

CREATE TABLE quarantine (
    seq                bigint GENERATED ALWAYS AS IDENTITY,
    id                 text PRIMARY KEY,
    adapter_id         text NOT NULL,
    received_at        timestamptz NOT NULL,
    content_type       text NOT NULL,
    body               bytea NOT NULL,
    errors             json NOT NULL,
    resolved_ticket_id text,
    payload_digest     text,
    times_seen         integer NOT NULL DEFAULT 1,
    last_seen_at       timestamptz
);
-- One open record per adapter and payload (bytes and content type): a payload that comes again is counted on it.
CREATE UNIQUE INDEX quarantine_open_payload ON quarantine (adapter_id, payload_digest)
    WHERE resolved_ticket_id IS NULL AND payload_digest IS NOT NULL;
CREATE INDEX quarantine_adapter ON quarantine (adapter_id, received_at DESC, seq DESC);
CREATE INDEX quarantine_received ON quarantine (received_at DESC, seq DESC);

CREATE TABLE cursors (adapter_id text PRIMARY KEY, cursor text NOT NULL, updated_at timestamptz NOT NULL);
CREATE TABLE locks (name text PRIMARY KEY, owner text NOT NULL, expires_at timestamptz NOT NULL);
CREATE TABLE nonces (
    scope      text NOT NULL,
    nonce      text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (scope, nonce)
);
CREATE INDEX nonces_expiry ON nonces (expires_at);

CREATE TABLE audit_log (
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    id         text PRIMARY KEY,
    at         timestamptz NOT NULL,
    actor      text NOT NULL,
    role       text NOT NULL,
    action     text NOT NULL,
    outcome    text NOT NULL,
    ticket_ids text[] NOT NULL,
    detail     json NOT NULL
);
CREATE INDEX audit_at ON audit_log (at DESC, seq DESC);
CREATE INDEX audit_tickets ON audit_log USING gin (ticket_ids);

CREATE TABLE minute_counts (
    minute timestamptz NOT NULL,
    name   text NOT NULL,
    count  bigint NOT NULL,
    PRIMARY KEY (minute, name)
);

CREATE TABLE store_facts (name text PRIMARY KEY, value text NOT NULL);

-- The sender's echo: per ticket, the newest status its partner's callbacks carry and the newest it heard, kept in
-- the transactions that enqueue and settle those callbacks; the tickets behind indexed by since when.
CREATE TABLE partner_echo (
    ticket_id       text PRIMARY KEY,
    destination     text NOT NULL,
    latest_sequence integer NOT NULL,
    latest_status   text NOT NULL,
    latest_at       timestamptz NOT NULL,
    heard_sequence  integer,
    heard_status    text,
    heard_at        timestamptz,
    behind_since    timestamptz
);
CREATE INDEX partner_echo_behind ON partner_echo (behind_since, ticket_id) WHERE behind_since IS NOT NULL;
CREATE INDEX deliveries_reports ON deliveries (ticket_id, destination, reports_sequence)
    WHERE reports_sequence IS NOT NULL;

-- Alerts, one record each from firing to resolved (the alert monitor's state, shared by its processes).
CREATE TABLE alerts (
    seq        bigint GENERATED ALWAYS AS IDENTITY,
    id         text PRIMARY KEY,
    firing     boolean NOT NULL,
    updated_at timestamptz NOT NULL,
    body       json NOT NULL
);
CREATE INDEX alerts_firing ON alerts (updated_at DESC, seq DESC) WHERE firing;
CREATE INDEX alerts_updated ON alerts (updated_at DESC, seq DESC);
"""),
    Migration(2, "lane counts kept by the statements that change deliveries", """
-- Deliveries per lane and state, kept in the transaction of every statement that inserts, updates or deletes
-- deliveries, so lane_stats reads a few rows instead of counting the table. Each statement appends its change as
-- rows of its own (n may be negative) rather than updating one counter row per lane, which would make concurrent
-- claims and settles on a lane wait for each other's commit; lane_stats and the reaper fold them (fold_lane_counts).
CREATE TABLE lane_counts (
    destination text NOT NULL,
    state       text NOT NULL,
    n           bigint NOT NULL
);

-- search_path as at creation (this schema), so a DBA's statement from another search_path still counts here.
CREATE FUNCTION count_lane_states() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' THEN
        INSERT INTO lane_counts (destination, state, n)
        SELECT destination, state, count(*) FROM new_rows GROUP BY destination, state;
    ELSIF TG_OP = 'DELETE' THEN
        INSERT INTO lane_counts (destination, state, n)
        SELECT destination, state, -count(*) FROM old_rows GROUP BY destination, state;
    ELSE
        INSERT INTO lane_counts (destination, state, n)
        SELECT destination, state, sum(change) FROM (
            SELECT destination, state, -1 AS change FROM old_rows
            UNION ALL SELECT destination, state, 1 FROM new_rows) AS changes
        GROUP BY destination, state HAVING sum(change) <> 0;
    END IF;
    RETURN NULL;
END $$;
CREATE TRIGGER deliveries_counted_inserts AFTER INSERT ON deliveries REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_lane_states();
CREATE TRIGGER deliveries_counted_updates AFTER UPDATE ON deliveries
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_lane_states();
CREATE TRIGGER deliveries_counted_deletes AFTER DELETE ON deliveries REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_lane_states();

-- The deliveries already kept: CREATE TRIGGER holds a lock that keeps writers out until this transaction commits, so
-- every delivery is counted either here or by a trigger, never both.
INSERT INTO lane_counts (destination, state, n) SELECT destination, state, count(*) FROM deliveries
    GROUP BY destination, state;
"""),
    Migration(3, "one ticket per partner number (source_numbers), taken in the intake statement", """
-- Two versions of one matter racing make one ticket: intake takes the (source system, number) with the ticket.
-- A schema may hold duplicates made before: each number goes to its first-stored ticket.
CREATE TABLE source_numbers (
    source_system    text NOT NULL,
    source_ticket_no text NOT NULL,
    ticket_id        text NOT NULL REFERENCES tickets (id),
    PRIMARY KEY (source_system, source_ticket_no)
);
INSERT INTO source_numbers (source_system, source_ticket_no, ticket_id)
    SELECT DISTINCT ON (source_system, source_ticket_no) source_system, source_ticket_no, id FROM tickets
    ORDER BY source_system, source_ticket_no, created_at, seq;
"""),
)

LATEST = MIGRATIONS[-1].version

_VERSION_TABLE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    description text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""

# Two gateways starting at once against an empty database: the second waits for the first's migrations.
_MIGRATION_LOCK = 0x48_49_47_01  # "HIG" 1


def schema_sql(schema: str) -> str:
    """The statements that make the schema and its version table, `schema` quoted."""
    return f'CREATE SCHEMA IF NOT EXISTS "{schema}";\nSET search_path TO "{schema}";\n{_VERSION_TABLE.strip()};'


async def schema_version(conn: Conn, schema: str) -> int:
    """The newest migration applied in `schema`; 0 for an empty (or missing) schema."""
    exists = await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations')
    if exists is None:
        return 0
    return int(await conn.fetchval(f'SELECT COALESCE(MAX(version), 0) FROM "{schema}".schema_migrations'))  # noqa: S608


def check_version(version: int, schema: str) -> None:
    if version > LATEST:
        raise SchemaTooNew(
            f"the PostgreSQL schema {schema!r} is at version {version}, newer than this gateway knows ({LATEST}); "
            "run a newer gateway or restore a backup")


def pending(version: int) -> tuple[Migration, ...]:
    return tuple(m for m in MIGRATIONS if m.version > version)


async def migrate(conn: Conn, schema: str) -> list[Migration]:
    """Bring `schema` up to the newest version in one transaction; the migrations applied. Refuses a newer one."""
    async with conn.transaction():
        await conn.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
        await conn.execute(schema_sql(schema))
        version = await schema_version(conn, schema)
        check_version(version, schema)
        applied = list(pending(version))
        for migration in applied:
            await conn.execute(migration.sql)
            await conn.execute("INSERT INTO schema_migrations (version, description) VALUES ($1, $2)",
                               migration.version, migration.description)
    return applied


async def check_phone_key(conn: Conn, phone_key: bytes, schema: str) -> None:
    """The first gateway to open the schema records its phone key's fingerprint; one with another key refuses."""
    mine = key_fingerprint(phone_key)
    await conn.execute("INSERT INTO store_facts (name, value) VALUES ('phone_key_fingerprint', $1)"
                       " ON CONFLICT (name) DO NOTHING", mine)
    recorded = await conn.fetchval("SELECT value FROM store_facts WHERE name = 'phone_key_fingerprint'")
    if recorded != mine:
        raise PhoneKeyMismatch(
            f"this gateway's phone hash key is not the one the tickets in PostgreSQL schema {schema!r} were indexed "
            f"with: set {KEY_ENV} to that key on every gateway (without it a gateway keeps its key in "
            f"<data_dir>/{KEY_FILE})")
