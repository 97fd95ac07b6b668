-- bookrec schema v1 (PostgreSQL). Vectors are JSONB arrays, as the serving API reads them.
-- Keys compare bytewise (COLLATE "C"): faster unique checks on bulk loads, any locale.
CREATE TABLE books (
    id                BIGSERIAL PRIMARY KEY,
    external_id       TEXT COLLATE "C" NOT NULL UNIQUE,
    title             TEXT NOT NULL,
    authors           TEXT,
    description       TEXT,
    isbn              TEXT,
    year              INTEGER,
    language          TEXT,
    tags              JSONB NOT NULL DEFAULT '[]',
    metadata          JSONB NOT NULL DEFAULT '{}',
    content_embedding JSONB,
    cf_embedding      JSONB,
    gnn_vector        JSONB,
    created_at        TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at        TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE users (
    id          BIGSERIAL PRIMARY KEY,
    external_id TEXT COLLATE "C" NOT NULL UNIQUE,
    cf_vector   JSONB,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    updated_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);

CREATE TABLE interactions (
    id          BIGSERIAL PRIMARY KEY,
    user_id     BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    book_id     BIGINT NOT NULL REFERENCES books(id) ON DELETE CASCADE,
    event       TEXT COLLATE "C" NOT NULL CHECK (event IN ('view', 'click', 'like', 'rate', 'purchase')),
    rating      REAL CHECK (rating IS NULL OR (rating >= 1 AND rating <= 5)),
    occurred_at TIMESTAMPTZ NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now(),
    UNIQUE (user_id, book_id, event, occurred_at)
);
CREATE INDEX interactions_book_id ON interactions (book_id);

CREATE TABLE training_runs (
    id                 BIGSERIAL PRIMARY KEY,
    model              TEXT NOT NULL,
    status             TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed')),
    parameters         JSONB NOT NULL DEFAULT '{}',
    started_at         TIMESTAMPTZ NOT NULL,
    finished_at        TIMESTAMPTZ,
    n_users            INTEGER,
    n_books            INTEGER,
    n_interactions     BIGINT,
    max_interaction_id BIGINT,
    phases             JSONB NOT NULL DEFAULT '{}',
    metrics            JSONB NOT NULL DEFAULT '{}',
    error              TEXT
);
CREATE INDEX training_runs_model ON training_runs (model, id);

CREATE TABLE model_artifacts (
    run_id BIGINT NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    name   TEXT NOT NULL,
    data   BYTEA NOT NULL,
    PRIMARY KEY (run_id, name)
);
