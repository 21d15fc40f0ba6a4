#!/bin/sh
# Write the head node's compose secrets into ./secrets (docker-compose.yml names each file): random passwords, and
# the URLs built from them. Run once, from the repository's root, before the first `docker-compose up`:
#
#   deploy/make-secrets.sh HARDWARE_CLASS FLOWER_USER
#
# Existing files are kept (re-running adds what is missing). The folder is yours alone (mode 700); the files in it
# are mode 644 because compose mounts each file as it is into containers whose users (postgres, redis, wattsweep)
# are not you; nobody else can reach them through the folder. node_database_url is not written here: it comes from
# `wattsweep db add-node` once Postgres runs (README, "Adding a GPU node"); node_broker_url is this node's.
set -eu
class="${1:?usage: deploy/make-secrets.sh HARDWARE_CLASS FLOWER_USER}"
flower_user="${2:?usage: deploy/make-secrets.sh HARDWARE_CLASS FLOWER_USER (Flower's login name: no default)}"
case "$class" in
    "" | [!A-Za-z0-9]* | *[!A-Za-z0-9._-]*) echo "make-secrets.sh: class '$class': letters, digits, '.', '_', '-'" >&2
                                            exit 2 ;;
esac
case "$flower_user" in
    "" | *[!A-Za-z0-9._-]*) echo "make-secrets.sh: Flower user '$flower_user': letters, digits, '.', '_', '-'" >&2
                            exit 2 ;;
esac
dir=secrets
mkdir -p "$dir" && chmod 700 "$dir"
umask 022

new_password() { od -An -N24 -tx1 /dev/urandom | tr -d ' \n'; }
keep() {  # $1 file, $2 content: written only if the file is missing
    [ -e "$dir/$1" ] || printf '%s\n' "$2" > "$dir/$1"
}
value() { tr -d '\r\n' < "$dir/$1"; }

for name in postgres_superuser_password postgres_owner_password postgres_app_password postgres_reader_password \
            redis_password redis_flower_password; do
    keep "$name" "$(new_password)"
done
keep redis_workers "$class:$(new_password)"
keep flower_basic_auth "$flower_user:$(new_password)"
keep owner_database_url "postgresql://wattsweep_owner:$(value postgres_owner_password)@postgres:5432/wattsweep"
keep scheduler_database_url "postgresql://wattsweep_app:$(value postgres_app_password)@postgres:5432/wattsweep"
keep scheduler_broker_url "redis://wattsweep:$(value redis_password)@redis:6379/0"
keep flower_broker_url "redis://flower:$(value redis_flower_password)@redis:6379/0"
worker_password=$(sed -n "s/^$class://p" "$dir/redis_workers" | head -n 1)
[ -n "$worker_password" ] || { echo "make-secrets.sh: $dir/redis_workers has no line for '$class'" >&2; exit 2; }
keep node_broker_url "redis://worker-$class:$worker_password@redis:6379/0"
echo "secrets written to $dir/ (Flower's login: $dir/flower_basic_auth); next: README, \"Adding a GPU node\"" >&2
