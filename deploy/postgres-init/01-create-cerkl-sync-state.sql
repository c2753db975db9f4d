-- Creates the sync-state database next to the Airflow metadata database. The postgres image
-- runs this file only when it initialises an empty data volume. On an existing volume, run
-- the statement once by hand (docs/deployment.md).
CREATE DATABASE cerkl_sync_state;
