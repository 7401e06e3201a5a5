-- pgferry 0017 up: a file can be superseded (a newer version of its path was listed, or it
-- changed while it was fetched): it is then neither imported nor a dead letter.
ALTER TABLE files.file
    DROP CONSTRAINT file_state_check,
    ADD CONSTRAINT file_state_check
        CHECK (state IN ('pending', 'claimed', 'imported', 'duplicate', 'dead', 'superseded'));
