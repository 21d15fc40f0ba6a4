#!/bin/sh
# Compose's Redis: write the ACL file (deploy/redis-users.acl) with the passwords, outside the data volume
# (comments dropped: Redis reads none), then run redis-server with it and the other arguments.
#
# Passwords come from files (compose secrets) or, where no file is named, from the environment:
#   REDIS_PASSWORD[_FILE]          the scheduler's user, `wattsweep`
#   REDIS_FLOWER_PASSWORD[_FILE]   Flower's
#   REDIS_WORKERS[_FILE]           one line (or space-separated item) per hardware class: `<class>:<password>`;
#                                  each becomes user worker-<class>, which reaches that class's queue only
set -eu
template="${REDIS_ACL_TEMPLATE:-/wattsweep/redis-users.acl}"
acl="${REDIS_ACL_FILE:-/tmp/wattsweep-users.acl}"

from_file() {  # $1: a variable name; its value, or the contents of the file ${1}_FILE names
    eval "file=\${${1}_FILE:-}"
    if [ -n "$file" ]; then
        [ -r "$file" ] || { echo "redis-start.sh: ${1}_FILE=$file cannot be read" >&2; exit 2; }
        tr -d '\r' < "$file"
    else
        eval "printf '%s' \"\${$1:-}\""
    fi
}
alnum() {  # $1 name, $2 value
    case "$2" in
        "" | *[!A-Za-z0-9]*) echo "redis-start.sh: set $1 (letters and digits only)" >&2; exit 2 ;;
    esac
}

password=$(from_file REDIS_PASSWORD); alnum REDIS_PASSWORD "$password"
flower_password=$(from_file REDIS_FLOWER_PASSWORD); alnum REDIS_FLOWER_PASSWORD "$flower_password"
workers=$(from_file REDIS_WORKERS)
[ -n "$workers" ] || { echo "redis-start.sh: set REDIS_WORKERS (class:password, one per hardware class)" >&2; exit 2; }
sep=$(printf '\006\026')  # kombu's priority separator: a class's priority lists are <class>\x06\x16<3|6|9>

umask 077
worker_line=$(grep '^user worker-@CLASS@ ' "$template")
sed -e "/^#/d" -e "/^user worker-@CLASS@ /d" -e "s/@REDIS_PASSWORD@/$password/" \
    -e "s/@REDIS_FLOWER_PASSWORD@/$flower_password/" "$template" > "$acl"
for item in $workers; do
    class=${item%%:*}
    worker_password=${item#*:}
    # A class is a queue name (worker/contract/celery_app.py): no glob characters can reach a key pattern.
    case "$class" in
        "" | [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*)
            echo "redis-start.sh: REDIS_WORKERS: class '$class': letters, digits, '.', '_', '-'" >&2; exit 2 ;;
    esac
    [ "$class" != "$item" ] || { echo "redis-start.sh: REDIS_WORKERS: '$class' has no ':password'" >&2; exit 2; }
    alnum "REDIS_WORKERS ($class)" "$worker_password"
    printf '%s\n' "$worker_line" | sed -e "s/@CLASS@/$class/g" -e "s/@WORKER_PASSWORD@/$worker_password/" \
        -e "s/@SEP@/$sep/" >> "$acl"
done
[ -z "${REDIS_ACL_ONLY:-}" ] || exit 0  # tests: the ACL file alone, for a redis-server they start themselves
exec redis-server --aclfile "$acl" "$@"
