-- The schema of version-1 databases, kept to build fixtures for the migration tests.
-- clipdash results database, schema version 1. A public contract: users query these tables with SQL.
-- Long format throughout: one row per number (metrics) or per image (decisions, entropies, features).
-- epoch = -1 marks a model that is not part of a training trajectory (a pretrained tag, a lone file).

CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL);

CREATE TABLE IF NOT EXISTS runs (
    run         VARCHAR PRIMARY KEY,   -- 'ViT-B-32:openai', or a training directory's name
    model_spec  VARCHAR NOT NULL,      -- the spec string as given on the command line
    arch        VARCHAR NOT NULL,      -- open_clip architecture name
    source      VARCHAR NOT NULL,      -- 'pretrained', 'file' or 'directory'
    created_at  TIMESTAMP NOT NULL
);

CREATE TABLE IF NOT EXISTS checkpoints (
    run     VARCHAR NOT NULL,
    epoch   INTEGER NOT NULL,
    path    VARCHAR,                   -- NULL for pretrained tags
    sha256  VARCHAR,                   -- of the checkpoint file; NULL for pretrained tags
    PRIMARY KEY (run, epoch)
);

-- Which (checkpoint, evaluation) pairs are complete: resume is a query on this table.
CREATE TABLE IF NOT EXISTS evaluations (
    run          VARCHAR NOT NULL,
    epoch        INTEGER NOT NULL,
    eval         VARCHAR NOT NULL,     -- zeroshot, noise, tid2013, livec, cue_conflict, probe, class_agnostic
    seconds      DOUBLE NOT NULL,
    finished_at  TIMESTAMP NOT NULL,
    PRIMARY KEY (run, epoch, eval)
);

CREATE TABLE IF NOT EXISTS metrics (
    run      VARCHAR NOT NULL,
    epoch    INTEGER NOT NULL,
    metric   VARCHAR NOT NULL,         -- acc1, acc5, noise_drop, srcc, plcc, texture_bias, shape_bias, lp_acc1, ...
    dataset  VARCHAR NOT NULL,         -- cifar10, cifar10-c/gaussian_noise, tid2013, livec, cue-conflict, ...
    variant  VARCHAR NOT NULL,         -- 'key=value;key=value' (templates, severity, tau, classifier, ...), '' if none
    value    DOUBLE,                   -- NaN/NULL when undefined (e.g. a correlation of constant scores)
    PRIMARY KEY (run, epoch, metric, dataset, variant)
);

-- Unique per (run, epoch, protocol, image); kept unique by the writer (no index: these tables hold most rows).
CREATE TABLE IF NOT EXISTS cue_conflict_decisions (
    run            VARCHAR NOT NULL,
    epoch          INTEGER NOT NULL,
    protocol       VARCHAR NOT NULL,   -- two_prompt, sixteen_class, imagenet_mean
    image          VARCHAR NOT NULL,   -- '<shape>/<file>.png' relative to the stimuli folder
    shape_class    VARCHAR NOT NULL,
    texture_class  VARCHAR NOT NULL,
    decision       VARCHAR NOT NULL,   -- the chosen class (16-way protocols) or the winning cue's class
    shape_score    DOUBLE NOT NULL,    -- cosine (two_prompt) or probability (16-way) of the shape class
    texture_score  DOUBLE NOT NULL
);

-- Per-image entropy of softmax(cos/tau) over the class-agnostic prompts, for histograms.
-- Unique per (run, epoch, dataset, tau, image_index); kept unique by the writer (no index: these tables hold most rows).
CREATE TABLE IF NOT EXISTS entropies (
    run          VARCHAR NOT NULL,
    epoch        INTEGER NOT NULL,
    dataset      VARCHAR NOT NULL,
    tau          DOUBLE NOT NULL,
    image_index  INTEGER NOT NULL,
    entropy      DOUBLE NOT NULL
);

-- Raw cosine(image, generic prompt) per image, so the app can retrain the class-agnostic probe at any tau.
-- Unique per (run, epoch, dataset, split, image_index); kept unique by the writer (no index: these tables hold most rows).
CREATE TABLE IF NOT EXISTS class_agnostic_features (
    run          VARCHAR NOT NULL,
    epoch        INTEGER NOT NULL,
    dataset      VARCHAR NOT NULL,
    split        VARCHAR NOT NULL,     -- train, test
    image_index  INTEGER NOT NULL,
    label        INTEGER NOT NULL,
    cosines      FLOAT[] NOT NULL,     -- one per prompt, in class_agnostic_prompts order
    PRIMARY KEY (run, epoch, dataset, split, image_index)
);

CREATE TABLE IF NOT EXISTS class_agnostic_prompts (
    prompt_index  INTEGER PRIMARY KEY,
    prompt        VARCHAR NOT NULL
);

-- L2-normalised image embeddings of a small probe split, for interactive linear probes.
-- Unique per (run, epoch, dataset, split, image_index); kept unique by the writer (no index: these tables hold most rows).
CREATE TABLE IF NOT EXISTS image_embeddings (
    run          VARCHAR NOT NULL,
    epoch        INTEGER NOT NULL,
    dataset      VARCHAR NOT NULL,
    split        VARCHAR NOT NULL,
    image_index  INTEGER NOT NULL,
    label        INTEGER NOT NULL,
    embedding    FLOAT[] NOT NULL
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

-- Class names per dataset, so labels in the per-image tables can be named without the dataset at hand.
CREATE TABLE IF NOT EXISTS classnames (
    dataset      VARCHAR NOT NULL,
    label        INTEGER NOT NULL,
    classname    VARCHAR NOT NULL,
    PRIMARY KEY (dataset, label)
);
