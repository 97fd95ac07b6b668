-- bookrec schema v1 (SQLite). Vectors are JSON arrays in TEXT; times are epoch seconds (REAL).
CREATE TABLE books (
    id                INTEGER PRIMARY KEY,
    external_id       TEXT NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    authors           TEXT,
    description       TEXT,
    isbn              TEXT,
    year              INTEGER,
    language          TEXT,
    tags              TEXT NOT NULL DEFAULT '[]',
    metadata          TEXT NOT NULL DEFAULT '{}',
    content_embedding TEXT,
    cf_embedding      TEXT,
    gnn_vector        TEXT,
    created_at        REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    updated_at        REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);

CREATE TABLE users (
    id          INTEGER PRIMARY KEY,
    external_id TEXT NOT NULL UNIQUE,
    cf_vector   TEXT,
    created_at  REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    updated_at  REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);

CREATE TABLE interactions (
    id          INTEGER PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    book_id     INTEGER NOT NULL REFERENCES books(id) ON DELETE CASCADE,
    event       TEXT NOT NULL CHECK (event IN ('view', 'click', 'like', 'rate', 'purchase')),
    rating      REAL CHECK (rating IS NULL OR (rating >= 1 AND rating <= 5)),
    occurred_at REAL NOT NULL,
    created_at  REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0),
    UNIQUE (user_id, book_id, event, occurred_at)
);
CREATE INDEX interactions_book_id ON interactions (book_id);

CREATE TABLE training_runs (
    id               INTEGER PRIMARY KEY,
    model            TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    parameters       TEXT NOT NULL DEFAULT '{}',
    started_at       REAL NOT NULL,
    finished_at      REAL,
    n_users          INTEGER,
    n_books          INTEGER,
    n_interactions   INTEGER,
    max_interaction_id INTEGER,
    phases           TEXT NOT NULL DEFAULT '{}',
    metrics          TEXT NOT NULL DEFAULT '{}',
    error            TEXT
);
CREATE INDEX training_runs_model ON training_runs (model, id);

CREATE TABLE model_artifacts (
    run_id     INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
