-- The plugin files the hosts sharing this database have loaded, and the
-- component version each is at: every host starts new runs of a deployed
-- file's types, wherever the file was dropped. A file removed from a host's
-- plugins directory is deleted here.
CREATE TABLE deployments (
    file        TEXT PRIMARY KEY,
    version     TEXT NOT NULL,
    deployed_at BIGINT NOT NULL
);
