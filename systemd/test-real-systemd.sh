#!/usr/bin/env bash
# `make test-systemd`: eartag.service under a real systemd (see docs/service.md, "Tested under a real systemd").
#
# Builds (once, cached in .build-systemd/base-root) a minimal Debian root with debootstrap, copies it, installs the
# package from `make deb` into the copy with the imported mn04_as model and a test configuration whose capture is
# ALSA's `file` plugin reading a FIFO this script writes into, boots the copy with systemd as PID 1 in its own
# namespaces (systemd-nspawn --boot) and drives it with systemctl/journalctl through nsenter. Prints PASS/FAIL per
# check and exits non-zero on any failure. Needs root. Usage: systemd/test-real-systemd.sh [DEB]
set -uo pipefail
cd "$(dirname "$0")/.."

REFERENCE=${REFERENCE:-../shared/reference}
CACHE=${EARTAG_SYSTEMD_CACHE:-.build-systemd}
BASE=$CACHE/base-root
ROOT=$CACHE/root
# Packages of the base root: systemd as init, dbus, and the package's dependencies (libasound2 pulls its data).
INCLUDE=systemd,systemd-sysv,dbus,libsndfile1,libvorbisfile3,libsoxr0,libfftw3-single3,libasound2
MACHINE=eartagtest$$
# The watchdog phase waits WatchdogSec (30) + RestartSec (5) and some slack.
WATCHDOG_WAIT=${EARTAG_WATCHDOG_WAIT:-60}

failures=0
passes=0
pass() { echo "PASS: $*"; passes=$((passes + 1)); }
fail() { echo "FAIL: $*"; failures=$((failures + 1)); }
info() { echo "---- $*"; }
die() { echo "FAIL: $*"; failures=$((failures + 1)); exit 1; }

[ "$(id -u)" = 0 ] || die "must run as root (debootstrap, chroot, systemd-nspawn)"

need_tool() {  # need_tool COMMAND DEBIAN-PACKAGE
    command -v "$1" >/dev/null 2>&1 && return 0
    info "installing $2 (for $1)"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null ||
        { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$2" >/dev/null; } ||
        die "cannot install $2"
}
need_tool debootstrap debootstrap
need_tool systemd-nspawn systemd-container
need_tool sox sox

DEB=${1:-$(ls -t build/eartag_*.deb 2>/dev/null | head -n 1)}
[ -f "$DEB" ] || die "no package: run 'make deb' first (or pass the .deb)"
[ -f "$REFERENCE/efficientat/mn04_as_mAP_432.pt" ] || die "no $REFERENCE/efficientat/mn04_as_mAP_432.pt"

# ---------------------------------------------------------------------------------------------------------------
# The machine's configured Debian mirror (deb822 sources first, then the one-line format).
mirror() {
    local f
    for f in /etc/apt/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        awk 'BEGIN { RS = ""; FS = "\n" }
             /Suites:[^\n]*bookworm([ \n]|$)/ && !/Enabled: *no/ {
               for (i = 1; i <= NF; i++) if ($i ~ /^URIs:/) { split($i, a, /[ \t]+/); print a[2]; exit } }' "$f"
    done | grep -v security | head -n 1 | grep . && return
    grep -hs '^deb .*bookworm main' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | grep -v security |
        awk '{ for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' | head -n 1 | grep . && return
    echo http://deb.debian.org/debian
}

# The base root, built once (into a temporary directory renamed when complete) and reused.
stamp="debootstrap --variant=minbase --include=$INCLUDE bookworm"
if [ ! -f "$BASE/.eartag-stamp" ] || [ "$(cat "$BASE/.eartag-stamp")" != "$stamp" ]; then
    MIRROR=$(mirror)
    info "$stamp $BASE $MIRROR (once; about a minute and 250 MB)"
    rm -rf "$BASE" "$BASE.tmp" && mkdir -p "$CACHE"
    t0=$SECONDS
    debootstrap --variant=minbase --include="$INCLUDE" bookworm "$BASE.tmp" "$MIRROR" > "$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap.log"; die "debootstrap failed (log: $CACHE/debootstrap.log)"; }
    echo "$stamp" > "$BASE.tmp/.eartag-stamp"
    mv "$BASE.tmp" "$BASE"
    info "debootstrap took $((SECONDS - t0)) s"
else
    info "reusing $BASE"
fi

# A fresh copy for this run, so that every run starts from the same state.
rm -rf "$ROOT" && cp -a "$BASE" "$ROOT" || die "cannot copy $BASE"
ROOT=$(cd "$ROOT" && pwd)

# ---------------------------------------------------------------------------------------------------------------
# Cleanup: stop the container (systemd-nspawn halts it on SIGTERM, kills it on the second), the feeder, the FIFO.
NSPAWN=""
FEEDER=""
LEADER_NS=""
cleanup() {
    set +e
    [ -z "$FEEDER" ] || kill -- -"$FEEDER" 2>/dev/null
    exec 7>&- 2>/dev/null
    if [ -n "$NSPAWN" ] && kill -0 "$NSPAWN" 2>/dev/null; then
        kill -TERM "$NSPAWN"
        for _ in $(seq 1 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.1; done
        if kill -0 "$NSPAWN" 2>/dev/null; then kill -TERM "$NSPAWN"; sleep 1; kill -KILL "$NSPAWN" 2>/dev/null; fi
        wait "$NSPAWN" 2>/dev/null
    fi
    # Nothing may be left running in the container's PID namespace.
    local p left=""
    if [ -n "$LEADER_NS" ]; then
        for p in /proc/[0-9]*; do
            [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$LEADER_NS" ] && left="$left ${p#/proc/}"
        done
    fi
    if [ -n "$left" ]; then
        echo "FAIL: processes left in the container:$left (killing them)"
        for p in $left; do kill -KILL "$p" 2>/dev/null; done
        failures=$((failures + 1))
    fi
    if grep -q " $ROOT[/ ]" /proc/self/mounts; then
        echo "FAIL: mounts left under $ROOT"; grep " $ROOT[/ ]" /proc/self/mounts
        failures=$((failures + 1))
    fi
}
trap 'cleanup; echo "test-systemd: $passes passed, $failures failed"; [ "$failures" = 0 ]' EXIT
trap 'echo "FAIL: interrupted"; failures=$((failures + 1)); exit 130' INT TERM

# ---------------------------------------------------------------------------------------------------------------
# The package, the model, the test audio and configuration.
info "dpkg -i $(basename "$DEB") in the root"
cp "$DEB" "$ROOT/tmp/eartag.deb"
if chroot "$ROOT" dpkg -i /tmp/eartag.deb > "$CACHE/dpkg.log" 2>&1; then pass "dpkg -i installs the package in the root"
else cat "$CACHE/dpkg.log"; die "dpkg -i failed in the root"; fi
rm -f "$ROOT/tmp/eartag.deb"
if [ -L "$ROOT/etc/systemd/system/multi-user.target.wants/eartag.service" ]; then
    pass "postinst enabled eartag.service (multi-user.target.wants)"
else fail "postinst did not enable eartag.service"; fi

# DynamicUser=yes allocates a user named after the unit, unless a user of that name exists (then it is used). A
# group of that name without the user makes every start fail with 217/USER (see docs/service.md).
if chroot "$ROOT" getent passwd eartag >/dev/null || chroot "$ROOT" getent group eartag >/dev/null; then
    fail "the root has a static eartag user or group: DynamicUser=yes would not allocate a dynamic one"
else pass "no static eartag user or group in the root (DynamicUser=yes allocates one)"; fi

MODEL=$CACHE/mn04_as.safetensors
if [ ! -f "$MODEL" ]; then
    info "importing the model with the packaged binary"
    "$ROOT/usr/bin/eartag" import "$REFERENCE/efficientat/mn04_as_mAP_432.pt" -o "$MODEL" || die "eartag import failed"
fi
install -D -m 0644 "$MODEL" "$ROOT/usr/share/eartag/default.safetensors"

# 16-bit 32 kHz mono raw speech. The capture reads it from a FIFO that this script keeps open for writing (fd 7),
# so that audio flows exactly while the script feeds it: no data yet (start), a loop of the file (running), nothing
# (a stalled pipeline: ALSA's read() blocks).
RAW=$CACHE/speech.raw
sox -q "$REFERENCE/audio/speech.wav" -t raw -r 32000 -e signed -b 16 -c 1 "$RAW" || die "sox failed"
mkdir -p "$ROOT/srv/eartag-test"
FIFO=$ROOT/srv/eartag-test/audio.fifo
mkfifo -m 0644 "$FIFO"
# The PCM `eartagtest` for every ALSA client of the root: the `file` plugin over a `null` slave, reading the FIFO.
cat > "$ROOT/etc/asound.conf" <<'EOF'
# EarTag's test-systemd: the capture PCM reads raw 32 kHz mono s16le from a FIFO the test writes into.
pcm.eartagtest {
    type file
    slave { pcm { type null } }
    file "/dev/null"
    infile "/srv/eartag-test/audio.fifo"
    format "raw"
}
EOF
# The packaged example configuration with the test's device, shorter windows and a low threshold (speech events).
conf=$ROOT/etc/eartag/eartag.toml
sed -i -e 's|^device = "default"|device = "eartagtest"|' -e 's|^length = 10.0|length = 5.0|' \
    -e 's|^threshold = 0.3|threshold = 0.2|' "$conf"
grep -q '^device = "eartagtest"' "$conf" && grep -q '^length = 5.0' "$conf" && grep -q '^threshold = 0.2' "$conf" ||
    die "could not adapt $conf"

exec 7<>"$FIFO"    # a writer from the start: the capture's open() of the FIFO does not block, its read()s do
feed_start() {
    # The feeder writes through its own write-only descriptor: should this script die, the container's end and
    # this script's fd 7 close, its writes fail (EPIPE) and the loop ends.
    setsid bash -c 'exec 7>&-; while cat "$0"; do :; done > "$1"' "$RAW" "$FIFO" 2>/dev/null &
    FEEDER=$!
}
feed_stop() {
    [ -z "$FEEDER" ] || kill -- -"$FEEDER" 2>/dev/null
    wait "$FEEDER" 2>/dev/null
    FEEDER=""
}

# ---------------------------------------------------------------------------------------------------------------
# Boot.
info "booting: systemd-nspawn -D $ROOT --boot (systemd as PID 1, own PID/mount/UTS/IPC namespaces)"
systemd-nspawn -q -D "$ROOT" --boot --machine="$MACHINE" --register=no --keep-unit --console=passive \
    > "$CACHE/boot.log" 2>&1 &
NSPAWN=$!
# A guard halts the container should this script die without running its EXIT trap (SIGKILL).
setsid bash -c 'while kill -0 "$0" 2>/dev/null; do sleep 1; done
    alive() { [ "$(cat /proc/$1/comm 2>/dev/null)" = systemd-nspawn ]; }
    alive "$1" || exit 0
    kill -TERM "$1"; for i in $(seq 1 100); do alive "$1" || exit 0; sleep 0.1; done
    kill -TERM "$1"; sleep 1; alive "$1" && kill -KILL "$1"' "$$" "$NSPAWN" < /dev/null > /dev/null 2>&1 &

# The container's PID 1 as seen from here: the child of systemd-nspawn whose PID in its own namespace is 1.
LEADER=""
for _ in $(seq 1 100); do
    for p in $(ps --ppid "$NSPAWN" -o pid= 2>/dev/null); do
        if awk '/^NSpid:/ { exit !($NF == 1) }' "/proc/$p/status" 2>/dev/null; then LEADER=$p; break; fi
    done
    [ -n "$LEADER" ] && break
    kill -0 "$NSPAWN" 2>/dev/null || break
    sleep 0.1
done
[ -n "$LEADER" ] || { cat "$CACHE/boot.log"; die "systemd did not start in the container"; }
LEADER_NS=$(readlink "/proc/$LEADER/ns/pid")
pass "systemd runs as PID 1 of its own PID namespace (host PID $LEADER: $(tr '\0' ' ' < /proc/$LEADER/cmdline))"
in_root() { nsenter -t "$LEADER" -m -p -u -i -r -w "$@"; }

# The boot does not finish: multi-user.target waits for eartag, which cannot be ready before audio is fed. Wait for
# the services the checks need instead.
for _ in $(seq 1 150); do
    [ "$(in_root systemctl is-active systemd-journald dbus systemd-logind 2>/dev/null | grep -c '^active$')" = 3 ] && break
    kill -0 "$NSPAWN" 2>/dev/null || break
    sleep 0.2
done
info "system state: $(in_root systemctl is-system-running 2>/dev/null); jobs: $(in_root systemctl list-jobs --no-legend 2>/dev/null | awk '{ printf "%s%s %s", (NR > 1 ? ", " : ""), $2, $4 }')"
for u in systemd-journald dbus systemd-logind; do
    if [ "$(in_root systemctl is-active $u 2>/dev/null)" = active ]; then pass "$u is active"
    else fail "$u is not active ($(in_root systemctl is-active $u 2>/dev/null))"; fi
done

show() { in_root systemctl show eartag -P "$1" 2>/dev/null; }
wait_for() {  # wait_for SECONDS COMMAND...: until the command succeeds
    local end=$((SECONDS + $1)); shift
    while ! "$@"; do [ $SECONDS -lt $end ] || return 1; sleep 0.2; done
}
state() { echo "$(show ActiveState)/$(show SubState)"; }

# ---------------------------------------------------------------------------------------------------------------
# 1. Started at boot (the package enabled it), but not ready while no audio flows.
info "1. READY=1 only once audio flows"
wait_for 20 sh -c '[ "$(nsenter -t '"$LEADER"' -m -p -r systemctl show eartag -P MainPID)" != 0 ]'
sleep 3
s=$(state); pid=$(show MainPID)
if [ "$s" = activating/start ] && [ "$pid" != 0 ]; then
    pass "without audio: $s, MainPID=$pid (started, not ready)"
else
    fail "without audio the service is $s (MainPID=$pid), expected activating/start"
    in_root systemctl status eartag --no-pager 2>&1 | tail -n 20
fi
feed_start
if wait_for 30 sh -c '[ "$(nsenter -t '"$LEADER"' -m -p -r systemctl show eartag -P SubState)" = running ]'; then
    pass "with audio flowing: $(state), MainPID=$(show MainPID); $(show StatusText)"
else fail "the service did not become active once audio flowed ($(state))"; fi
echo "     $(in_root systemctl show eartag -p ActiveState,SubState,MainPID,NRestarts,Result | tr '\n' ' ')"

# ---------------------------------------------------------------------------------------------------------------
# 2. The sandbox: configured (systemctl show) and in force (the main process seen from inside).
info "2. sandboxing"
props="DynamicUser SupplementaryGroups CapabilityBoundingSet AmbientCapabilities NoNewPrivileges UMask ProtectSystem
ProtectHome PrivateTmp PrivateMounts ProtectKernelTunables ProtectKernelModules ProtectKernelLogs ProtectControlGroups
ProtectClock ProtectHostname ProtectProc ProcSubset RemoveIPC KeyringMode DevicePolicy DeviceAllow
RestrictAddressFamilies IPAddressDeny RestrictNamespaces RestrictRealtime RestrictSUIDSGID LockPersonality
MemoryDenyWriteExecute SystemCallArchitectures SystemCallErrorNumber StateDirectory ConfigurationDirectory
WatchdogUSec Restart NotifyAccess Type"
in_root systemctl show eartag $(printf -- '-p %s ' $props) | sed 's/^/     /'
want() {  # want PROPERTY VALUE-REGEX
    local v; v=$(show "$1")
    if [[ "$v" =~ ^($2)$ ]]; then pass "$1=$v"; else fail "$1=$v (expected $2)"; fi
}
want DynamicUser yes
want SupplementaryGroups audio
want CapabilityBoundingSet ''
want AmbientCapabilities ''
want NoNewPrivileges yes
want ProtectSystem strict
want ProtectHome yes
want PrivateTmp yes
want ProtectProc invisible
want ProcSubset pid
want DevicePolicy closed
want RestrictAddressFamilies AF_UNIX
want RestrictNamespaces yes
want MemoryDenyWriteExecute yes
want SystemCallArchitectures native
want SystemCallErrorNumber 'EPERM|1'
want WatchdogUSec '30s|30000000'
want Restart on-failure
f=$(show SystemCallFilter)
if [ -n "$f" ] && [[ "$f" != *" setpriority "* && "$f" != *" setrlimit "* ]] && [[ "$f" == *read* ]]; then
    pass "SystemCallFilter allows $(wc -w <<< "$f") calls (no setpriority, setrlimit)"
else fail "SystemCallFilter: ${f:0:200}"; fi

pid=$(show MainPID)
status=$(in_root cat /proc/"$pid"/status 2>/dev/null)
echo "$status" | grep -E '^(Name|Uid|Gid|Groups|Cap(Inh|Prm|Eff|Bnd|Amb)|NoNewPrivs|Seccomp|Seccomp_filters):' | sed 's/^/     /'
field() { echo "$status" | awk -v k="$1:" '$1 == k { $1 = ""; sub(/^ /, ""); print }'; }
uid=$(field Uid | awk '{ print $1 }')
if [ -n "$uid" ] && [ "$uid" -ge 61184 ] && [ "$uid" -le 65519 ]; then pass "runs as dynamic user $uid (name via NSS: $(in_root getent passwd "$uid" | cut -d: -f1 | grep . || echo "none: no libnss-systemd in the root"))"
else fail "Uid: $(field Uid) (expected a dynamic user, 61184-65519)"; fi
caps=ok
for c in CapInh CapPrm CapEff CapBnd CapAmb; do [ "$(field $c)" = 0000000000000000 ] || caps="$caps $c=$(field $c)"; done
if [ "$caps" = ok ]; then pass "no capabilities (CapInh/Prm/Eff/Bnd/Amb all 0)"; else fail "capabilities:${caps#ok}"; fi
[ "$(field NoNewPrivs)" = 1 ] && pass "NoNewPrivs 1" || fail "NoNewPrivs $(field NoNewPrivs)"
[ "$(field Seccomp)" = 2 ] && pass "Seccomp 2 (filter mode, $(field Seccomp_filters) filters)" || fail "Seccomp $(field Seccomp)"
audio=$(in_root getent group audio | cut -d: -f3)
if [ -n "$audio" ] && [[ " $(field Groups) " == *" $audio "* ]]; then pass "the audio group ($audio) is among its groups ($(field Groups))"
else fail "audio group ($audio) not among its groups ($(field Groups))"; fi

# Its file system, seen from its own mount namespace (entered from the host as root: only a read-only mount stops
# root's writes, file permissions do not).
hostpid=""
for p in /proc/[0-9]*; do
    [ "$(readlink "$p/ns/pid" 2>/dev/null)" = "$LEADER_NS" ] || continue
    awk -v want="$pid" '/^NSpid:/ { exit !($NF == want) }' "$p/status" 2>/dev/null && { hostpid=${p#/proc/}; break; }
done
in_service() { nsenter -t "$hostpid" -m "$@"; }
probe() {  # probe DIR [NSENTER-OPTIONS]: "writable" or the error of creating a file there
    local dir=$1; shift
    in_service "$@" sh -c 'f="$1/.eartag-write-probe"; if err=$(touch "$f" 2>&1); then rm -f "$f"; echo writable;
                      else echo "${err##*: }"; fi' sh "$dir"
}
for d in /usr /etc /var /var/lib /srv; do
    r=$(probe "$d")
    [ "$r" = "Read-only file system" ] && pass "$d is read-only in its namespace (even for root)" || fail "$d: $r (expected read-only)"
done
# ConfigurationDirectory= is a read-write bind mount under ProtectSystem=strict (systemd makes every *Directory=
# writable); it stays read-only to the service because it is root's (0755) and the service is not root.
as_service=(-S "$uid" -G "$(field Gid | awk '{ print $1 }')")
echo "     /etc/eartag in its mount namespace: $(in_root cat /proc/"$pid"/mountinfo | awk '$5 == "/etc/eartag" { print $6 }' | tail -n 1)"
r=$(probe /etc/eartag "${as_service[@]}")
[ "$r" = "Permission denied" ] && pass "/etc/eartag is not writable by the service user ($r)" || fail "/etc/eartag as the service user: $r"
r=$(probe /var/lib/private/eartag "${as_service[@]}")
[ "$r" = writable ] && pass "its state directory /var/lib/private/eartag is writable by the service user" || fail "state directory: $r"
r=$(in_service sh -c 'ls -A /home; ls -A /root' 2>&1 | tr '\n' ' ')
[ -z "$r" ] && pass "/home and /root are empty for it (ProtectHome)" || fail "ProtectHome: $r"
mounts=$(in_root cat /proc/"$pid"/mountinfo 2>/dev/null)
procopts=$(echo "$mounts" | awk '$5 == "/proc" { for (i = 7; $i != "-"; i++); o = $(i + 3) } END { print o }')
[[ "$procopts" == *hidepid=invisible* && "$procopts" == *subset=pid* ]] && pass "its /proc: $procopts" ||
    fail "its /proc: $procopts"
tmpsrc=$(echo "$mounts" | awk '$5 == "/tmp" { print $4 }' | tail -n 1)
[[ "$tmpsrc" == *systemd-private-*eartag.service* ]] && pass "private /tmp ($tmpsrc)" || fail "/tmp is not private ($tmpsrc)"
r=$(in_service ls /dev | tr '\n' ' ')
echo "     its /dev: $r"

# ---------------------------------------------------------------------------------------------------------------
# 3. Events in the journal.
info "3. events in the journal"
if wait_for 60 sh -c "nsenter -t $LEADER -m -p -r journalctl -u eartag -o cat --no-pager | grep -q '\"type\":\"start\"'"; then
    pass "journalctl -u eartag -o cat shows events:"
    in_root journalctl -u eartag -o cat --no-pager | grep '"type":"\(start\|end\)"' | head -n 4 | cut -c1-200 | sed 's/^/     /'
else
    fail "no events in journalctl -u eartag -o cat:"; in_root journalctl -u eartag -o cat --no-pager | tail -n 15
fi

# ---------------------------------------------------------------------------------------------------------------
# 4. A stalled pipeline: the feeder stops, ALSA's read() blocks, the pings stop; the watchdog kills it and
# Restart= starts it again.
info "4. watchdog (stall the audio; WatchdogSec=30, RestartSec=5)"
pid0=$(show MainPID); n0=$(show NRestarts)
feed_stop
t0=$SECONDS; seen=""
while [ $((SECONDS - t0)) -lt "$WATCHDOG_WAIT" ]; do
    r=$(show Result); s=$(state)
    if [ "$r" = watchdog ] && [ -z "$seen" ]; then seen="after $((SECONDS - t0)) s: $s, Result=$r"; fi
    [ "$(show NRestarts)" -gt "$n0" ] 2>/dev/null && [ "$(show MainPID)" != 0 ] && break
    sleep 0.5
done
n1=$(show NRestarts); pid1=$(show MainPID)
if [ -n "$seen" ]; then pass "the stalled service was killed by the watchdog ($seen)"
else fail "no Result=watchdog within $WATCHDOG_WAIT s ($(state), Result=$(show Result))"; fi
if [ "$n1" -gt "$n0" ] 2>/dev/null && [ "$pid1" != 0 ] && [ "$pid1" != "$pid0" ]; then
    pass "Restart= started it again after $((SECONDS - t0)) s: NRestarts $n0 -> $n1, MainPID $pid0 -> $pid1"
else fail "not restarted: NRestarts $n0 -> $n1, MainPID $pid0 -> $pid1"; fi
in_root journalctl -u eartag -o cat --no-pager | grep -i 'watchdog\|Main process exited\|Failed with\|Scheduled restart' |
    tail -n 4 | sed 's/^/     /'
feed_start
if wait_for 30 sh -c '[ "$(nsenter -t '"$LEADER"' -m -p -r systemctl show eartag -P SubState)" = running ]'; then
    pass "the restarted service is ready again once audio flows ($(state))"
else fail "the restarted service did not become active ($(state))"; fi

# ---------------------------------------------------------------------------------------------------------------
# 5. systemctl stop: SIGTERM, STOPPING=1, clean exit 0.
info "5. systemctl stop"
sleep 2
t0=$SECONDS
in_root systemctl stop eartag
echo "     $(in_root systemctl show eartag -p ActiveState,Result,ExecMainCode,ExecMainStatus | tr '\n' ' ') ($((SECONDS - t0)) s)"
if [ "$(show ActiveState)" = inactive ] && [ "$(show Result)" = success ] && [ "$(show ExecMainStatus)" = 0 ] &&
   [ "$(show ExecMainCode)" = 1 ]; then
    pass "systemctl stop ended it cleanly (exited, status 0, Result=success) in $((SECONDS - t0)) s"
else fail "stop: $(state) Result=$(show Result) ExecMainCode=$(show ExecMainCode) ExecMainStatus=$(show ExecMainStatus)"; fi
in_root journalctl -u eartag -o cat --no-pager | tail -n 4 | cut -c1-200 | sed 's/^/     /'
feed_stop

exit 0
