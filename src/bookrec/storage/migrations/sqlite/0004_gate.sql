-- bookrec schema v4 (SQLite): runs the quality gate rejected, and the learnt hybrid weights.
-- training_runs.status gains 'rejected'. SQLite cannot alter a CHECK, so the table is rebuilt;
-- model_artifacts references it ON DELETE CASCADE, and dropping the old table would delete
-- every artifact (foreign keys are on and cannot be turned off inside the migration's
-- transaction), so the artifacts wait in a table without a foreign key meanwhile.
CREATE TABLE model_artifacts_v3 AS SELECT run_id, name, data FROM model_artifacts;
DROP TABLE model_artifacts;

CREATE TABLE training_runs_v4 (
    id               INTEGER PRIMARY KEY,
    model            TEXT NOT NULL,
    status           TEXT NOT NULL
                     CHECK (status IN ('running', 'succeeded', 'failed', 'rejected')),
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
INSERT INTO training_runs_v4 SELECT id, model, status, parameters, started_at, finished_at,
    n_users, n_books, n_interactions, max_interaction_id, phases, metrics, error
    FROM training_runs;
DROP TABLE training_runs;
ALTER TABLE training_runs_v4 RENAME TO training_runs;
CREATE INDEX training_runs_model ON training_runs (model, id);

CREATE TABLE model_artifacts (
    run_id     INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    data       BLOB NOT NULL,
    PRIMARY KEY (run_id, name)
);
INSERT INTO model_artifacts (run_id, name, data) SELECT run_id, name, data FROM model_artifacts_v3;
DROP TABLE model_artifacts_v3;

-- The hybrid's fusion weights, learnt by the last train cf / train gnn that passed the gate
-- (from the held-out scores of every family with published vectors), written in the same
-- transaction as that run's vectors. prior: the popularity prior of an embedding family.
CREATE TABLE hybrid_weights (
    strategy   TEXT PRIMARY KEY CHECK (strategy IN ('cf', 'gnn', 'content', 'popular')),
    weight     REAL NOT NULL CHECK (weight >= 0),
    prior      REAL,
    run_id     INTEGER REFERENCES training_runs(id) ON DELETE SET NULL,
    updated_at REAL NOT NULL DEFAULT ((julianday('now') - 2440587.5) * 86400.0)
);
