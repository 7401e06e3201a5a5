-- pgferry 0013 up: the cutover verification of the migration hub (seed 001).

-- Key indicators: a query on a source and one on the target that must give the same rows.
-- Declared by the schema owner (etl.define_cutover_indicator), read by `harness cutover verify`.
CREATE TABLE etl.cutover_indicator (
    name          text PRIMARY KEY,
    source        text NOT NULL CHECK (source ~ '^[a-z][a-z0-9_]{0,62}$'),
    source_query  text NOT NULL,
    target_query  text NOT NULL
);
COMMENT ON TABLE etl.cutover_indicator IS
    'Key indicators compared by harness cutover verify: a source query and a target query';

-- Every verification run, kept: the sign-off's record.
CREATE TABLE etl.cutover_check (
    check_id    bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    checked_at  timestamptz NOT NULL DEFAULT clock_timestamp(),
    checked_by  text NOT NULL DEFAULT session_user,
    passed      boolean NOT NULL,
    report      jsonb NOT NULL
);
COMMENT ON TABLE etl.cutover_check IS
    'Results of harness cutover verify: who, when, passed or not, the full report';

REVOKE ALL ON etl.cutover_indicator, etl.cutover_check FROM PUBLIC;
GRANT ALL ON etl.cutover_indicator, etl.cutover_check TO pgferry_owner;
GRANT SELECT ON etl.cutover_indicator, etl.cutover_check TO pgferry_worker;
