-- bookrec schema v5 (SQLite): the settings `bookrec tune --apply` chose. key is a setting's
-- 'section.field' ('cf.factors', 'hybrid.gnn'), value its JSON, run_id the `tune` training run
-- that chose it. Effective settings: defaults < these < .env < environment < command line.
CREATE TABLE tuned_settings (
    key        TEXT PRIMARY KEY,
    value      TEXT NOT NULL,
    run_id     INTEGER NOT NULL REFERENCES training_runs(id) ON DELETE CASCADE,
    updated_at REAL NOT NULL
);
