-- wattsweep's roles: what only a superuser may do, once per cluster (roles, their limits) and once per
-- wattsweep database (who may call the advisory-lock functions). Idempotent, and safe while several databases
-- of one cluster migrate at once (roles are cluster-wide: each change is made only if missing, and a
-- concurrent identical change is not an error).
--
-- Run by migration 0013 when `wattsweep db upgrade` connects as a superuser, and by compose's Postgres
-- container at its first start (deploy/postgres-init.sh), before the owner migrates without superuser rights.
--
--   wattsweep_owner   owns the database and its tables; runs migrations (DDL). Not a superuser. May end other
--                     roles' sessions (pg_signal_backend): db/stale_sessions.py ends stale reader and node sessions.
--   wattsweep_app     the scheduler (submit, cancel, retry, reconcile, import) and local runs: rows of the plan,
--                     and, as a member of wattsweep_worker, what a worker does. Deletes nothing but `unavailable`.
--   wattsweep_worker  no login: what a GPU worker may do (migration 0020 lists it, column by column). Each node
--                     logs in as its own member of it (`wattsweep db add-node`), so that one node cannot end
--                     another's connections.
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
    BEGIN
        CREATE ROLE wattsweep_worker NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION;
    EXCEPTION WHEN duplicate_object OR unique_violation THEN
        NULL;
    END;
END
$$;

-- Local runs (`wattsweep run`) do a worker's part in the scheduler's process. The owner ends sessions that outstay
-- their limits (a role may lower its own timeouts to zero: role settings do not hold it), migration 0020.
DO $$
BEGIN
    IF NOT pg_has_role('wattsweep_app', 'wattsweep_worker', 'MEMBER') THEN
        GRANT wattsweep_worker TO wattsweep_app;
    END IF;
    IF NOT pg_has_role('wattsweep_owner', 'pg_signal_backend', 'MEMBER') THEN
        GRANT pg_signal_backend TO wattsweep_owner;
    END IF;
    IF NOT pg_has_role('wattsweep_owner', 'pg_read_all_stats', 'MEMBER') THEN
        GRANT pg_read_all_stats TO wattsweep_owner;  -- to see how long other roles' sessions have been idle
    END IF;
EXCEPTION WHEN internal_error OR unique_violation THEN
    NULL;  -- a concurrent migration made the same grant
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
        ('wattsweep_app', 'jit', 'off'),  -- the result views: compiling costs more than it saves (db/session.py)
        ('wattsweep_reader', 'default_transaction_read_only', 'on'),
        ('wattsweep_reader', 'statement_timeout', '2min'),
        ('wattsweep_reader', 'idle_in_transaction_session_timeout', '5min'),
        ('wattsweep_reader', 'temp_file_limit', '1GB'),
        ('wattsweep_reader', 'jit', 'off')
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

-- In this database. Function privileges live in each database's catalog.
--
-- A held advisory lock stalls every worker of a host (db/results/attribution.py): only the transaction-scoped
-- ones are granted, and only to the scheduler and the workers. A session-scoped lock outlives the transaction,
-- and a node that turned its own timeouts off could hold it for ever.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS signature, p.proname LIKE '%xact%' AS in_transaction
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'pg_catalog' AND p.proname LIKE 'pg\_%advisory%' LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.signature);
        IF f.in_transaction THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO wattsweep_app, wattsweep_worker', f.signature);
        ELSE
            EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM wattsweep_app', f.signature);
        END IF;
    END LOOP;
END
$$;

-- Large objects are written outside any table's grants, even in a read-only transaction, and temp_file_limit
-- does not bound them: the reader stored 50 MB that way. wattsweep uses none; nobody but the owner of the
-- catalog may call these. Ending a backend is the owner's alone (its watch over stale sessions): with PUBLIC
-- holding it, any member of a shared role could end its peers' connections.
DO $$
DECLARE
    f record;
BEGIN
    FOR f IN SELECT p.oid::regprocedure AS signature, p.proname AS name
             FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
             WHERE n.nspname = 'pg_catalog'
               AND (p.proname LIKE 'lo\_%' OR p.proname IN ('loread', 'lowrite')
                    OR p.proname IN ('pg_terminate_backend', 'pg_cancel_backend')) LOOP
        EXECUTE format('REVOKE EXECUTE ON FUNCTION %s FROM PUBLIC', f.signature);
        IF f.name IN ('pg_terminate_backend', 'pg_cancel_backend') THEN
            EXECUTE format('GRANT EXECUTE ON FUNCTION %s TO wattsweep_owner', f.signature);
        END IF;
    END LOOP;
END
$$;
