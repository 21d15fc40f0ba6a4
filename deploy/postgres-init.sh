#!/usr/bin/env bash
# Compose's Postgres runs this once, as the image's superuser, when its data volume is first initialised
# (mounted in /docker-entrypoint-initdb.d/). It does what only a superuser may, so that no wattsweep service
# ever connects as one:
#   1. migrations/roles.sql: the roles wattsweep_owner, wattsweep_app, wattsweep_reader and their limits, and
#      the advisory-lock functions of the wattsweep database kept for the application alone;
#   2. the roles' passwords (from the environment) and the database handed to wattsweep_owner, which then
#      runs the migrations (compose's `migrate` service) without superuser rights;
#   3. pg_hba.conf: the wattsweep roles (node roles too: +wattsweep_worker) reach the wattsweep database only
#      (PUBLIC may connect to the others), and the superuser connects over the container's local socket only,
#      never over the network.
# On a Postgres you run yourself, do the same once by hand (README, "Roles, ports and secrets").
# Needs: POSTGRES_USER, POSTGRES_DB (the wattsweep database), PGDATA, WATTSWEEP_{OWNER,APP,READER}_PASSWORD or
# WATTSWEEP_{OWNER,APP,READER}_PASSWORD_FILE (compose's secrets).
set -euo pipefail

ROLES_SQL="${WATTSWEEP_ROLES_SQL:-/wattsweep/roles.sql}"
for name in WATTSWEEP_OWNER_PASSWORD WATTSWEEP_APP_PASSWORD WATTSWEEP_READER_PASSWORD; do
    file_name="${name}_FILE"
    if [[ -n "${!file_name:-}" ]]; then  # compose's secrets: the password is a file, not an environment variable
        if [[ ! -r "${!file_name}" ]]; then
            echo "postgres-init.sh: $file_name=${!file_name} cannot be read" >&2
            exit 2
        fi
        printf -v "$name" '%s' "$(tr -d '\r\n' < "${!file_name}")"
    fi
    if [[ ! "${!name:-}" =~ ^[A-Za-z0-9]+$ ]]; then
        echo "postgres-init.sh: set $name or ${name}_FILE (letters and digits only)" >&2
        exit 2
    fi
done
psql=(psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet --username "$POSTGRES_USER" --dbname "$POSTGRES_DB")

"${psql[@]}" -f "$ROLES_SQL"
"${psql[@]}" -v db="$POSTGRES_DB" -v owner_pw="$WATTSWEEP_OWNER_PASSWORD" -v app_pw="$WATTSWEEP_APP_PASSWORD" \
    -v reader_pw="$WATTSWEEP_READER_PASSWORD" <<'SQL'
ALTER ROLE wattsweep_owner PASSWORD :'owner_pw';
ALTER ROLE wattsweep_app PASSWORD :'app_pw';
ALTER ROLE wattsweep_reader PASSWORD :'reader_pw';
ALTER DATABASE :"db" OWNER TO wattsweep_owner;
ALTER SCHEMA public OWNER TO wattsweep_owner;
SQL

# First match wins in pg_hba.conf: these lines go before the image's "host all all all scram-sha-256".
roles="wattsweep_owner,wattsweep_app,wattsweep_reader,+wattsweep_worker"  # +: every node role (db add-node)
{
    echo "# wattsweep: the superuser over the local socket only; its roles reach its database only"
    echo "host    all    $POSTGRES_USER    all    reject"
    echo "host    $POSTGRES_DB    $roles    all    scram-sha-256"
    echo "host    all    $roles    all    reject"
    echo "local   all    $roles    reject"
    cat "$PGDATA/pg_hba.conf"
} > "$PGDATA/pg_hba.conf.wattsweep"
mv "$PGDATA/pg_hba.conf.wattsweep" "$PGDATA/pg_hba.conf"
