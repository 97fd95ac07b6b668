-- bookrec schema v2 (SQLite): binary snapshots of what recommend and similar read.
-- A snapshot is a copy of one vector column of books (float32 rows) or of the per-book
-- event counts (float64 rows: event code, rating, count), written in the same transaction
-- as the vectors. The triggers below delete a snapshot as soon as anything else changes what
-- it copies, so a reader that finds one can trust it; without one, readers use the columns.
CREATE TABLE snapshots (
    name               TEXT PRIMARY KEY,
    n_rows             INTEGER NOT NULL,
    width              INTEGER NOT NULL,
    ids                BLOB NOT NULL,  -- int64 little-endian, ascending
    data               BLOB NOT NULL,  -- n_rows × width, little-endian
    max_interaction_id INTEGER,        -- event counts: interactions up to this id
    created_at         REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);

CREATE TRIGGER books_content_embedding_changed AFTER UPDATE OF content_embedding ON books
BEGIN
    DELETE FROM snapshots WHERE name = 'books.content_embedding';
END;
CREATE TRIGGER books_cf_embedding_changed AFTER UPDATE OF cf_embedding ON books
BEGIN
    DELETE FROM snapshots WHERE name = 'books.cf_embedding';
END;
CREATE TRIGGER books_gnn_vector_changed AFTER UPDATE OF gnn_vector ON books
BEGIN
    DELETE FROM snapshots WHERE name = 'books.gnn_vector';
END;
CREATE TRIGGER books_inserted_with_vector AFTER INSERT ON books
WHEN NEW.content_embedding IS NOT NULL OR NEW.cf_embedding IS NOT NULL
    OR NEW.gnn_vector IS NOT NULL
BEGIN
    DELETE FROM snapshots WHERE name LIKE 'books.%';
END;
CREATE TRIGGER books_deleted AFTER DELETE ON books
BEGIN
    DELETE FROM snapshots WHERE name LIKE 'books.%';
END;
CREATE TRIGGER interactions_changed AFTER UPDATE OF book_id, event, rating ON interactions
BEGIN
    DELETE FROM snapshots WHERE name = 'book_event_counts';
END;
CREATE TRIGGER interactions_deleted AFTER DELETE ON interactions
BEGIN
    DELETE FROM snapshots WHERE name = 'book_event_counts';
END;
