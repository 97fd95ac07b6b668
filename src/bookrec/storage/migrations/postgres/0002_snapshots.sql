-- bookrec schema v2 (PostgreSQL): binary snapshots of what recommend and similar read.
-- A snapshot is a copy of one vector column of books (float32 rows) or of the per-book
-- event counts (float64 rows: event code, rating, count), written in the same transaction
-- as the vectors. The triggers below delete a snapshot as soon as anything else changes what
-- it copies, so a reader that finds one can trust it; without one, readers use the columns.
CREATE TABLE snapshots (
    name               TEXT PRIMARY KEY,
    n_rows             INTEGER NOT NULL,
    width              INTEGER NOT NULL,
    ids                BYTEA NOT NULL,  -- int64 little-endian, ascending
    data               BYTEA NOT NULL,  -- n_rows × width, little-endian
    max_interaction_id BIGINT,          -- event counts: interactions up to this id
    created_at         TIMESTAMPTZ NOT NULL DEFAULT now()
);
-- Float bytes do not compress: skip the attempt.
ALTER TABLE snapshots ALTER COLUMN ids SET STORAGE EXTERNAL;
ALTER TABLE snapshots ALTER COLUMN data SET STORAGE EXTERNAL;

CREATE FUNCTION bookrec_drop_snapshots() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM snapshots WHERE name = ANY (TG_ARGV);
    RETURN NULL;
END
$$;

CREATE TRIGGER books_content_embedding_changed AFTER UPDATE OF content_embedding ON books
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('books.content_embedding');
CREATE TRIGGER books_cf_embedding_changed AFTER UPDATE OF cf_embedding ON books
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('books.cf_embedding');
CREATE TRIGGER books_gnn_vector_changed AFTER UPDATE OF gnn_vector ON books
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('books.gnn_vector');
CREATE TRIGGER books_inserted_with_vector AFTER INSERT ON books FOR EACH ROW
    WHEN (NEW.content_embedding IS NOT NULL OR NEW.cf_embedding IS NOT NULL
          OR NEW.gnn_vector IS NOT NULL)
    EXECUTE FUNCTION bookrec_drop_snapshots(
        'books.content_embedding', 'books.cf_embedding', 'books.gnn_vector');
CREATE TRIGGER books_deleted AFTER DELETE ON books
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots(
        'books.content_embedding', 'books.cf_embedding', 'books.gnn_vector');
CREATE TRIGGER interactions_changed AFTER UPDATE OF book_id, event, rating ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('book_event_counts');
CREATE TRIGGER interactions_deleted AFTER DELETE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('book_event_counts');
CREATE TRIGGER interactions_truncated AFTER TRUNCATE ON interactions
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots('book_event_counts');
CREATE TRIGGER books_truncated AFTER TRUNCATE ON books
    FOR EACH STATEMENT EXECUTE FUNCTION bookrec_drop_snapshots(
        'books.content_embedding', 'books.cf_embedding', 'books.gnn_vector');
