-- bookrec schema v4 (PostgreSQL): runs the quality gate rejected, and the learnt hybrid weights.
ALTER TABLE training_runs DROP CONSTRAINT training_runs_status_check;
ALTER TABLE training_runs ADD CONSTRAINT training_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'rejected'));

-- The hybrid's fusion weights, learnt by the last train cf / train gnn that passed the gate
-- (from the held-out scores of every family with published vectors), written in the same
-- transaction as that run's vectors. prior: the popularity prior of an embedding family.
CREATE TABLE hybrid_weights (
    strategy   TEXT PRIMARY KEY CHECK (strategy IN ('cf', 'gnn', 'content', 'popular')),
    weight     DOUBLE PRECISION NOT NULL CHECK (weight >= 0),
    prior      DOUBLE PRECISION,
    run_id     BIGINT REFERENCES training_runs(id) ON DELETE SET NULL,
    updated_at TIMESTAMPTZ NOT NULL DEFAULT now()
);
