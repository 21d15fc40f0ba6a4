#!/bin/sh
# Compose's Redis: write the ACL file (deploy/redis-users.acl) with the passwords from the environment, outside
# the data volume (comments dropped: Redis reads none), then run redis-server with it and the other arguments.
set -eu
template="${REDIS_ACL_TEMPLATE:-/wattsweep/redis-users.acl}"
acl="${REDIS_ACL_FILE:-/tmp/wattsweep-users.acl}"
for name in REDIS_PASSWORD REDIS_FLOWER_PASSWORD; do
    eval "value=\${$name:-}"
    case "$value" in
        "" | *[!A-Za-z0-9]*) echo "redis-start.sh: set $name (letters and digits only)" >&2; exit 2 ;;
    esac
done
umask 077
sed -e "/^#/d" -e "s/@REDIS_PASSWORD@/$REDIS_PASSWORD/" -e "s/@REDIS_FLOWER_PASSWORD@/$REDIS_FLOWER_PASSWORD/" \
    "$template" > "$acl"
exec redis-server --aclfile "$acl" "$@"
