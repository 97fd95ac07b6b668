-- bookrec schema v3 (PostgreSQL): snapshots in chunks; the users vector column and the
-- interaction totals recorded for status.
-- v2 kept each snapshot in one value, and a field holds at most 1 GB (about 1M books x 256-d
-- float32). Now `snapshots` holds a header per snapshot (rows, width, chunks) and
-- `snapshot_chunks` its data, each chunk far below that limit. A header without chunks records
-- a column by its rows and width alone (users.cf_vector). `interaction_totals` (rows: event
-- code -> count; first_at / last_at: the oldest and newest occurred_at) is what the counted
-- interactions up to max_interaction_id add up to. As in v2, the triggers delete a snapshot as
-- soon as anything else changes what it copies or records.
ALTER TABLE snapshots RENAME TO snapshots_v2;

CREATE TABLE snapshots (
    name               TEXT PRIMARY KEY,
    n_rows             BIGINT NOT NULL,
    width              INTEGER NOT NULL,
    n_chunks           INTEGER NOT NULL,  -- 0: a header only
    max_interaction_id BIGINT,            -- aggregates of interactions: up to this id,
    first_at           DOUBLE PRECISION,  -- which occurred from first_at
    last_at            DOUBLE PRECISION,  -- to last_at (epoch seconds)
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE TABLE snapshot_chunks (
    name  TEXT NOT NULL,
    chunk INTEGER NOT NULL,  -- 0, 1, ... in order of the rows' ids
    ids   BYTEA NOT NULL,    -- int64 little-endian, ascending
    data  BYTEA NOT NULL,    -- rows x width, little-endian
    PRIMARY KEY (name, chunk)
);
-- Float bytes do not compress: skip the attempt.
ALTER TABLE snapshot_chunks ALTER COLUMN ids SET STORAGE EXTERNAL;
ALTER TABLE snapshot_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
INSERT INTO snapshots (name, n_rows, width, n_chunks, max_interaction_id, created_at)
    SELECT name, n_rows, width, 1, max_interaction_id, created_at FROM snapshots_v2;
INSERT INTO snapshot_chunks (name, chunk, ids, data) SELECT name, 0, ids, data FROM snapshots_v2;
DROP TABLE snapshots_v2;

CREATE OR REPLACE FUNCTION bookrec_drop_snapshots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshot_chunks WHERE name = ANY (TG_ARGV);
    DELETE FROM snapshots WHERE name = ANY (TG_ARGV);
    RETURN NULL;
END
$$;

-- The books triggers of v2 stay as they are; those of interactions drop the totals too.
DROP TRIGGER interactions_changed ON interactions;
DROP TRIGGER interactions_deleted ON interactions;
DROP TRIGGER interactions_truncated ON interactions;
CREATE TRIGGER interactions_changed
    AFTER UPDATE OF book_id, event, rating, occurred_at ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots(
        'book_event_counts', 'interaction_totals');
CREATE TRIGGER interactions_deleted AFTER DELETE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots(
        'book_event_counts', 'interaction_totals');
CREATE TRIGGER interactions_truncated AFTER TRUNCATE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots(
        'book_event_counts', 'interaction_totals');

CREATE TRIGGER users_cf_vector_changed AFTER UPDATE OF cf_vector ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('users.cf_vector');
CREATE TRIGGER users_inserted_with_vector AFTER INSERT ON users FOR EACH ROW
    WHEN (NEW.cf_vector IS NOT NULL)
    EXECUTE FUNCTION bookrec_drop_snapshots('users.cf_vector');
CREATE TRIGGER users_deleted AFTER DELETE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('users.cf_vector');
CREATE TRIGGER users_truncated AFTER TRUNCATE ON users
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('users.cf_vector');
