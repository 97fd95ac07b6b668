-- bookrec schema v3 (SQLite): snapshots in chunks; the users vector column and the interaction
-- totals recorded for status.
-- v2 kept each snapshot in one value, which SQLite caps at 1e9 bytes (960,000 books x 256-d
-- float32). Now `snapshots` holds a header per snapshot (rows, width, chunks) and
-- `snapshot_chunks` its data, each chunk far below that cap. A header without chunks records
-- a column by its rows and width alone (users.cf_vector). `interaction_totals` (rows: event
-- code -> count; first_at / last_at: the oldest and newest occurred_at) is what the counted
-- interactions up to max_interaction_id add up to. As in v2, the triggers delete a snapshot as
-- soon as anything else changes what it copies or records.
DROP TRIGGER books_content_embedding_changed;
DROP TRIGGER books_cf_embedding_changed;
DROP TRIGGER books_gnn_vector_changed;
DROP TRIGGER books_inserted_with_vector;
DROP TRIGGER books_deleted;
DROP TRIGGER interactions_changed;
DROP TRIGGER interactions_deleted;
ALTER TABLE snapshots RENAME TO snapshots_v2;

CREATE TABLE snapshots (
    name               TEXT PRIMARY KEY,
    n_rows             INTEGER NOT NULL,
    width              INTEGER NOT NULL,
    n_chunks           INTEGER NOT NULL,  -- 0: a header only
    max_interaction_id INTEGER,           -- aggregates of interactions: up to this id,
    first_at           REAL,              -- which occurred from first_at
    last_at            REAL,              -- to last_at (epoch seconds)
    created_at         REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
CREATE TABLE snapshot_chunks (
    name  TEXT NOT NULL,
    chunk INTEGER NOT NULL,  -- 0, 1, ... in order of the rows' ids
    ids   BLOB NOT NULL,     -- int64 little-endian, ascending
    data  BLOB NOT NULL,     -- rows x width, little-endian
    PRIMARY KEY (name, chunk)
);
INSERT INTO snapshots (name, n_rows, width, n_chunks, max_interaction_id, created_at)
    SELECT name, n_rows, width, 1, max_interaction_id, created_at FROM snapshots_v2;
INSERT INTO snapshot_chunks (name, chunk, ids, data) SELECT name, 0, ids, data FROM snapshots_v2;
DROP TABLE snapshots_v2;

CREATE TRIGGER books_content_embedding_changed AFTER UPDATE OF content_embedding ON books
BEGIN
    DELETE FROM snapshot_chunks WHERE name = 'books.content_embedding';
    DELETE FROM snapshots WHERE name = 'books.content_embedding';
END;
CREATE TRIGGER books_cf_embedding_changed AFTER UPDATE OF cf_embedding ON books
BEGIN
    DELETE FROM snapshot_chunks WHERE name = 'books.cf_embedding';
    DELETE FROM snapshots WHERE name = 'books.cf_embedding';
END;
CREATE TRIGGER books_gnn_vector_changed AFTER UPDATE OF gnn_vector ON books
BEGIN
    DELETE FROM snapshot_chunks WHERE name = 'books.gnn_vector';
    DELETE FROM snapshots WHERE name = 'books.gnn_vector';
END;
CREATE TRIGGER books_inserted_with_vector AFTER INSERT ON books
WHEN NEW.content_embedding IS NOT NULL OR NEW.cf_embedding IS NOT NULL
    OR NEW.gnn_vector IS NOT NULL
BEGIN
    DELETE FROM snapshot_chunks WHERE name LIKE 'books.%';
    DELETE FROM snapshots WHERE name LIKE 'books.%';
END;
CREATE TRIGGER books_deleted AFTER DELETE ON books
BEGIN
    DELETE FROM snapshot_chunks WHERE name LIKE 'books.%';
    DELETE FROM snapshots WHERE name LIKE 'books.%';
END;
CREATE TRIGGER users_cf_vector_changed AFTER UPDATE OF cf_vector ON users
BEGIN
    DELETE FROM snapshot_chunks WHERE name = 'users.cf_vector';
    DELETE FROM snapshots WHERE name = 'users.cf_vector';
END;
CREATE TRIGGER users_inserted_with_vector AFTER INSERT ON users
WHEN NEW.cf_vector IS NOT NULL
BEGIN
    DELETE FROM snapshot_chunks WHERE name = 'users.cf_vector';
    DELETE FROM snapshots WHERE name = 'users.cf_vector';
END;
CREATE TRIGGER users_deleted AFTER DELETE ON users
WHEN OLD.cf_vector IS NOT NULL
BEGIN
    DELETE FROM snapshot_chunks WHERE name = 'users.cf_vector';
    DELETE FROM snapshots WHERE name = 'users.cf_vector';
END;
CREATE TRIGGER interactions_changed AFTER UPDATE OF book_id, event, rating, occurred_at ON interactions
BEGIN
    DELETE FROM snapshot_chunks WHERE name IN ('book_event_counts', 'interaction_totals');
    DELETE FROM snapshots WHERE name IN ('book_event_counts', 'interaction_totals');
END;
CREATE TRIGGER interactions_deleted AFTER DELETE ON interactions
BEGIN
    DELETE FROM snapshot_chunks WHERE name IN ('book_event_counts', 'interaction_totals');
    DELETE FROM snapshots WHERE name IN ('book_event_counts', 'interaction_totals');
END;
