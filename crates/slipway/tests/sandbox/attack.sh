#!/bin/sh
# A malicious change's build script: tries to reach what an untrusted step must never reach.
# Each attempt prints `ATTACK <name>: blocked` or `ATTACK <name>: ESCAPED <detail>`.
# @PROJECT@, @PORT@, @SOCKET@, @TESTPID@ are filled in by the test.
P=@PROJECT@
try() { # name, command...
  name=$1; shift
  if out=$("$@" 2>&1); then
    echo "ATTACK $name: ESCAPED $(printf '%s' "$out" | head -c 200 | tr '\n' ' ')"
  else
    echo "ATTACK $name: blocked"
  fi
}
found_secret() { # reads every file given, succeeds if any holds key material
  for f in "$@"; do
    if [ -r "$f" ] && grep -q "PRIVATE KEY" "$f" 2>/dev/null; then echo "$f"; return 0; fi
  done
  return 1
}
try read_signing_key cat "$P/var/secrets/apt-signing.asc"
try find_keys sh -c 'found_key=$(find / -xdev \( -name "*.asc" -o -name "*.gpg" -o -name "*.key" \) -type f 2>/dev/null | while read f; do grep -l "PRIVATE KEY" "$f" 2>/dev/null; done | head -1); [ -n "$found_key" ] && echo "$found_key"'
try read_state_db cat "$P/.slipway/state.db"
try read_service_environ sh -c 'for f in /proc/[0-9]*/environ; do if grep -qa SLIPWAY_TEST_CANARY "$f" 2>/dev/null; then echo "$f"; exit 0; fi; done; exit 1'
try write_production_bucket sh -c "mkdir -p '$P/var/buckets/cros-packages' && echo x > '$P/var/buckets/cros-packages/pwned'"
try write_staging_bucket sh -c "mkdir -p '$P/var/buckets/cros-packages-staging/74' && echo x > '$P/var/buckets/cros-packages-staging/74/pwned'"
try write_cas sh -c "ls '$P/.slipway/cas/sha256' && for f in \$(find '$P/.slipway/cas' -type f | head -1); do echo TAMPERED >> \$f; done"
try create_cas_object sh -c "mkdir -p '$P/.slipway/cas/sha256/00' && echo x > '$P/.slipway/cas/sha256/00/pwned'"
try write_trusted_cache sh -c "mkdir -p '$P/.slipway/cache/builds/crostini-guest/trusted/lxd_container' && echo x > '$P/.slipway/cache/builds/crostini-guest/trusted/lxd_container/pwned'"
try write_repo_git sh -c "echo x > '$P/repo/.git/pwned'"
try write_config sh -c "echo '# pwned' >> '$P/slipway.toml'"
try write_base_image sh -c "echo x >> /var/cache/slipway/debian-bookworm-guest-base.tar"
try write_var_cache_slipway sh -c "echo x > /var/cache/slipway/pwned"
try write_other_workspace sh -c "echo TAMPERED > '$P/.slipway/runs/999/builds/other/work/artifact.txt'"
try hard_link_key ln "$P/var/secrets/apt-signing.asc" out-link.asc
try lxd_socket python3 -c "import socket; s=socket.socket(socket.AF_UNIX); s.connect('@SOCKET@')"
try proc_1_root sh -c "cat /proc/1/root$P/var/secrets/apt-signing.asc"
try tcp_loopback python3 -c "import socket; socket.create_connection(('127.0.0.1', @PORT@), timeout=3)"
try signal_outside kill -0 @TESTPID@
try ptrace_outside python3 -c "
import ctypes, sys
libc = ctypes.CDLL(None, use_errno=True)
sys.exit(0 if libc.ptrace(16, @TESTPID@, 0, 0) == 0 else 1)"
try mount_tmpfs sh -c "mkdir -p /tmp/m && mount -t tmpfs none /tmp/m"
try chroot_escape python3 -c "
import os
fd = os.open('/', os.O_RDONLY)
os.makedirs('/tmp/jail', exist_ok=True)
os.chroot('/tmp/jail')
os.fchdir(fd)
for _ in range(64): os.chdir('..')
os.chroot('.')
print(open('$P/var/secrets/apt-signing.asc').read())"
try host_root sh -c "ls /root/.bash_history /home 2>/dev/null | head -1; test -e /root/.cargo"
try my_cache sh -c 'echo ok > "$SLIPWAY_CACHE/mine" && cat "$SLIPWAY_CACHE/mine"'
# A daemon that tries to outlive the step and write later, in the cache that persists.
setsid sh -c 'sleep 4; echo late > "$SLIPWAY_CACHE/late-write"' > /dev/null 2>&1 &
echo "host uid check: $(id -u)"
echo "attacks done"
