#!/bin/sh
# The image's entrypoint: make the host's RAPL counters readable by the unprivileged `wattsweep` user where the
# host allows it, then run the command as that user (never as root).
#
# Since Linux 5.10 (CVE-2020-8694) intel-rapl's energy_uj files are readable by root only. A worker that runs as
# a normal user then cannot read them, and CodeCarbon silently estimates CPU energy from load and TDP instead.
# Started as root, this script gives the files to the worker's group (chgrp + g+r). That works when the
# container may change them: compose mounts /sys/class/powercap read-write into the worker services (see
# README, "CPU energy in the container: RAPL"). Where it may not, nothing changes: the worker starts, its windows
# say cpu_method `cpu-load-estimate` (an estimate, flagged as one), and this script says so in one line.
set -eu

POWERCAP="${WATTSWEEP_POWERCAP_DIR:-/sys/class/powercap}"
RUN_AS="${WATTSWEEP_RUN_AS:-wattsweep}"

if [ "$(id -u)" = "0" ]; then
    group="$(id -gn "$RUN_AS")"
    HOME="$(getent passwd "$RUN_AS" | cut -d: -f6)"
    export HOME
    total=0
    readable=0
    for counter in "$POWERCAP"/intel-rapl*/energy_uj "$POWERCAP"/intel-rapl*/intel-rapl*/energy_uj; do
        [ -e "$counter" ] || continue
        total=$((total + 1))
        chgrp "$group" "$counter" 2>/dev/null && chmod g+r "$counter" 2>/dev/null || true
        if setpriv --reuid="$RUN_AS" --regid="$group" --init-groups test -r "$counter"; then
            readable=$((readable + 1))
        fi
    done
    if [ "$total" -gt 0 ] && [ "$readable" -lt "$total" ]; then
        echo "wattsweep: RAPL is not readable by $RUN_AS ($readable of $total counters): CPU energy will be an" \
             "estimate (cpu-load-estimate); mount /sys/class/powercap read-write or see the README" >&2
    fi
    exec setpriv --reuid="$RUN_AS" --regid="$group" --init-groups "$@"
fi
exec "$@"
