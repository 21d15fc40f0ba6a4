-- wattsweep's roles: what only a superuser may do, once per cluster (roles, their limits) and once per
-- wattsweep database (who may call the advisory-lock functions). Idempotent, and safe while several databases
-- of one cluster migrate at once (roles are cluster-wide: each change is made only if missing, and a
-- concurrent identical change is not an error).
--
-- Run by migration 0013 when `wattsweep db upgrade` connects as a superuser, and by compose's Postgres
-- container at its first start (deploy/postgres-init.sh), before the owner migrates without superuser rights.
--
--   wattsweep_owner   owns the database and its tables; runs migrations (DDL). Not a superuser.
--   wattsweep_app     scheduler and workers: rows only (SELECT, INSERT, UPDATE, DELETE), the advisory locks.
--   wattsweep_reader  analysts: SELECT, read-only transactions, no temp tables, bounded statements and files.

DO $$
DECLARE
    name text;
BEGIN
    FOREACH name IN ARRAY ARRAY['wattsweep_owner', 'wattsweep_app', 'wattsweep_reader'] LOOP
        BEGIN
            EXECUTE format('CREATE ROLE %I LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION', name);
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL;  -- made by an earlier run, or by another database's migration right now
        END;
    END LOOP;
END
$$;

DO $$
BEGIN
    IF (SELECT rolconnlimit FROM pg_roles WHERE rolname = 'wattsweep_reader') <> 10 THEN
        ALTER ROLE wattsweep_reader CONNECTION LIMIT 10;
    END IF;
EXCEPTION WHEN internal_error THEN
    NULL;  -- "tuple concurrently updated": another migration made the same change
END
$$;

-- Role settings. The application's timeouts are also sent by every connection (db/session.py); these hold
-- where a client cannot send them (PgBouncer in transaction mode) or does not (a psql session as the role).
DO $$
DECLARE
    s record;
BEGIN
    FOR s IN SELECT * FROM (VALUES
        ('wattsweep_app', 'statement_timeout', '5min'),
        ('wattsweep_app', 'lock_timeout', '30s'),
        ('wattsweep_app', 'idle_in_transaction_session_timeout', '1min'),
        ('wattsweep_reader', 'default_transaction_read_only', 'on'),
        ('wattsweep_reader', 'statement_timeout', '2min'),
        ('wattsweep_reader', 'idle_in_transaction_session_timeout', '5min'),
        ('wattsweep_reader', 'temp_file_limit', '1GB')
    ) AS v(role, setting, value) LOOP
        IF NOT EXISTS (
            SELECT 1 FROM pg_db_role_setting d JOIN pg_roles r ON r.oid = d.setrole
            WHERE r.rolname = s.role AND d.setdatabase = 0 AND s.setting || '=' || s.value = ANY (d.setconfig)
        ) THEN
            BEGIN
                EXECUTE format('ALTER ROLE %I SET %s = %L', s.role, s.setting, s.value);
            EXCEPTION WHEN internal_error THEN
                NULL;
            END;
        END IF;
    END LOOP;
END
$$;

-- In this database: a held advisory lock stalls every worker of a host (db/attribution.py), so only the
-- application may take one. Function privileges live in each database's catalog.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS signature
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'pg_catalog' AND p.proname LIKE 'pg\_%advisory%' LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.signature);
        EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO wattsweep_app', f.signature);
    END LOOP;
END
$$;
