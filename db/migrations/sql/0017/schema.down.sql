-- pgferry 0017 down: superseded files become dead letters (a state 0016 knows), then the
-- state check of 0016.
UPDATE files.file SET state = 'dead' WHERE state = 'superseded';
ALTER TABLE files.file
    DROP CONSTRAINT file_state_check,
    ADD CONSTRAINT file_state_check
        CHECK (state IN ('pending', 'claimed', 'imported', 'duplicate', 'dead'));
