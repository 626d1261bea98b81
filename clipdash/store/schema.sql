-- clipdash results database, schema version 3 (migrations from older versions: migrate.py). A public contract: users query these tables with SQL.
-- Long format throughout: one row per number (metrics) or per item (the measurements' per-item tables).
-- epoch = -1 marks a model that is not part of a training trajectory (a pretrained tag, a lone file).
-- Every number carries `setting`: the id of the settings it was made with (evaluation_settings).
-- The per-item tables (zeroshot_predictions, noise_predictions, tid2013_pairs, livec_scores,
-- cue_conflict_decisions, probe_predictions, image_embeddings, entropies, class_agnostic_features, ...)
-- are declared by the measurement modules (clipdash/measurements/) and created from there.

CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS runs (
    run             VARCHAR PRIMARY KEY,  -- the run's name in this database: a folder's name, ARCH:TAG, or --run-name
    run_id          VARCHAR NOT NULL,     -- a UUID given at the run's first write: its identity across databases
    model_spec      VARCHAR NOT NULL,     -- the spec string as given on the command line
    arch            VARCHAR NOT NULL,     -- open_clip architecture name
    source          VARCHAR NOT NULL,     -- 'pretrained', 'file' or 'directory'
    created_at      TIMESTAMP NOT NULL,
    source_path     VARCHAR,              -- the run folder or checkpoint file (absolute); NULL for a pretrained tag
    n_params        BIGINT,               -- parameters of the evaluated model (both towers); NULL when unknown
    params          JSON,                 -- the run's params.txt as an object (open_clip training runs); NULL if none
    pretrained_tag  VARCHAR,              -- the open_clip pretrained tag; NULL for files and folders
    training_data   VARCHAR               -- what it was trained on, as its source says (tag, train_data or source)
);

CREATE TABLE IF NOT EXISTS checkpoints (
    run     VARCHAR NOT NULL,
    epoch   INTEGER NOT NULL,
    path    VARCHAR,                   -- NULL for pretrained tags
    sha256  VARCHAR,                   -- of the checkpoint file; NULL for pretrained tags
    PRIMARY KEY (run, epoch)
);

-- The settings that change a measurement's numbers: its own parameters (templates, seeds, split sizes,
-- solvers, grids, prompts) and the engine's (precision, device, decoder, limit, subset, data fingerprint,
-- revision). Query them with JSON operators: settings->>'templates', settings->>'precision'.
CREATE TABLE IF NOT EXISTS evaluation_settings (
    setting   VARCHAR PRIMARY KEY,      -- 16 hex digits of SHA-256 over (eval, canonical settings JSON)
    eval      VARCHAR NOT NULL,
    settings  JSON NOT NULL
);

-- Which (checkpoint, measurement, setting) triples are complete: resume is a query on this table.
CREATE TABLE IF NOT EXISTS evaluations (
    run               VARCHAR NOT NULL,
    epoch             INTEGER NOT NULL,
    eval              VARCHAR NOT NULL,  -- zeroshot, noise, tid2013, livec, cue_conflict, probe, class_agnostic, ...
    setting           VARCHAR NOT NULL,
    seconds           DOUBLE NOT NULL,
    finished_at       TIMESTAMP NOT NULL,
    clipdash_version  VARCHAR,          -- recorded, not compared (a change that moves numbers bumps a revision)
    PRIMARY KEY (run, epoch, eval, setting)
);

-- Unique per (run, epoch, metric, dataset, variant, setting); kept unique by the writer (no index).
CREATE TABLE IF NOT EXISTS metrics (
    run      VARCHAR NOT NULL,
    epoch    INTEGER NOT NULL,
    setting  VARCHAR NOT NULL,
    metric   VARCHAR NOT NULL,         -- acc1, acc5, noise_drop, srcc, plcc, texture_bias, shape_bias, lp_acc1, ...
    dataset  VARCHAR NOT NULL,         -- cifar10, cifar10-c/gaussian_noise, tid2013, livec, cue-conflict, ...
    variant  VARCHAR NOT NULL,         -- the sub-series, 'key=value;...' sorted (severity, protocol, class, tau, C, classifier, distortion); '' if none
    value    DOUBLE                    -- NaN/NULL when undefined (e.g. a correlation of constant scores)
);

CREATE TABLE IF NOT EXISTS class_agnostic_prompts (
    prompt_index  INTEGER PRIMARY KEY,
    prompt        VARCHAR NOT NULL
);

-- Human baseline (Geirhos et al. 2019 cue-conflict trials), per subject and shape class.
CREATE TABLE IF NOT EXISTS human_shape_bias (
    subject      VARCHAR NOT NULL,     -- 'subject-01' ... ; 'mean' for the mean over subjects
    shape_class  VARCHAR NOT NULL,     -- a class, or 'all'
    n_shape      INTEGER NOT NULL,
    n_texture    INTEGER NOT NULL,
    shape_bias   DOUBLE,
    PRIMARY KEY (subject, shape_class)
);

-- Class names per dataset, so labels in the per-item tables can be named without the dataset at hand.
CREATE TABLE IF NOT EXISTS classnames (
    dataset      VARCHAR NOT NULL,
    label        INTEGER NOT NULL,
    classname    VARCHAR NOT NULL,
    PRIMARY KEY (dataset, label)
);
