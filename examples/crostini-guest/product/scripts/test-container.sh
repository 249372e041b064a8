#!/bin/sh
# Boots the image in a real LXD and checks the guest integration, like the original lxd/test.py:
# the container starts, the system unit cros-sftp.service is active, and for user 1000 (lingering)
# the user units cros-garcon.service, sommelier@0.service and sommelier-x@0.service are active.
# Writes JUnit to OUTFILE. Starts its own LXD daemon (private LXD_DIR, a `dir` pool, no network)
# and stops it again.
set -eu
report=${1:?usage: test-container.sh OUTFILE}
images="$SLIPWAY_INPUTS/lxd_container/lxd/debian/bookworm/amd64/default"
mkdir -p "$(dirname "$report")"

export LXD_DIR="$TMPDIR/lxd"
pool="$TMPDIR/pool"
mkdir -p "$LXD_DIR" "$pool"
lxd --group root --logfile "$LXD_DIR/lxd.log" >/dev/null 2>&1 &
daemon=$!
stop() {
  lxc delete --force guest-test >/dev/null 2>&1 || true
  timeout 60 lxd shutdown >/dev/null 2>&1 || kill "$daemon" 2>/dev/null || true
}
trap stop EXIT
timeout 60 lxd waitready
lxd init --preseed <<PRESEED
storage_pools:
- name: default
  driver: dir
  config:
    source: $pool
profiles:
- name: default
  devices:
    root:
      path: /
      pool: default
      type: disk
PRESEED
lxc image import "$images/lxd.tar.xz" "$images/rootfs.squashfs" --alias guest-under-test >/dev/null

cases=""
failures=0
check() { # name, command...
  name=$1; shift
  if out=$("$@" 2>&1); then
    cases="$cases<testcase classname=\"ContainerTest\" name=\"$name\"/>"
    echo "ok: $name"
  else
    failures=$((failures + 1))
    msg=$(printf '%s' "$out" | tr -d '<>&"' | head -c 500)
    cases="$cases<testcase classname=\"ContainerTest\" name=\"$name\"><failure message=\"$msg\"/></testcase>"
    echo "FAILED: $name: $out"
  fi
}
in_guest() { lxc exec guest-test -- "$@"; }
running() { # systemd answers once its bus is up; wait for the boot to settle
  for _ in $(seq 1 90); do
    state=$(lxc exec guest-test -- systemctl is-system-running 2>/dev/null || true)
    case "$state" in running|degraded) return 0 ;; esac
    sleep 1
  done
  echo "system state: ${state:-no answer}"
  return 1
}
user_active() {
  for _ in $(seq 1 60); do
    if lxc exec guest-test --user 1000 --env XDG_RUNTIME_DIR=/run/user/1000 -- systemctl --user is-active "$@" >/dev/null 2>&1; then
      return 0
    fi
    sleep 1
  done
  lxc exec guest-test --user 1000 --env XDG_RUNTIME_DIR=/run/user/1000 -- systemctl --user is-active "$@"
}

check test_container_starts lxc launch guest-under-test guest-test
check test_system_boots running
check test_cros_sftp_active in_guest systemctl is-active cros-sftp.service
check test_user_units_active user_active cros-garcon.service sommelier@0.service sommelier-x@0.service

total=4
printf '<?xml version="1.0" encoding="UTF-8"?>\n<testsuites><testsuite name="ContainerTest" tests="%s" failures="%s">%s</testsuite></testsuites>\n' \
  "$total" "$failures" "$cases" > "$report"
[ "$failures" -eq 0 ]
