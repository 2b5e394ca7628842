#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimgd's NBD operation: an unprivileged client (nobody) reads a LUKS image
# made by the real qemu-img through an NBD socket the broker hands over,
# with the real qemu-img as NBD client (file.server.type=fd), while it can
# read neither the image file nor the key file.  The passphrase must not
# appear in the server's argv or environment, nor in the logs.  Denials:
# no rule, read-write on a read-only rule, names escaping nbd.root.
#
# The whole scenario runs once per server vimgd can put behind the socket:
# `vimg serve --fd` (nbd_server = vimg) and qemu-nbd (nbd_server =
# qemu-nbd), each when available; the test prints which it exercised.  With the vimg server the contract is
# `vimg serve --fd N -r --object secret,id=s0,file=/dev/fd/4 --image-opts
# driver=luks,key-secret=s0,file.filename=/dev/fd/3`.

. "$SRCDIR/functions.sh"

[ "$(id -u)" = 0 ] || skip "must run as root (starts vimgd, drops clients to nobody)"
requires setpriv
requires qemu-img
. "$SRCDIR/broker-functions.sh"

# VIMG_SERVE: another vimg binary to run as the server (default: $VIMG)
VIMG_SERVE=${VIMG_SERVE:-$VIMG}
ENGINES=()
SERVE_PLUGIN=$(dirname "$VIMG_SERVE")/../server/nbdkit-vimg-plugin.so
if ldd "$SERVE_PLUGIN" 2>/dev/null | grep libasan >/dev/null; then
    # vimgd gives its servers a clean environment: no LD_PRELOAD of the
    # sanitizer runtime, without which nbdkit cannot load this plugin
    echo "SKIPPED CASE: vimg serve --fd: sanitizer build of the nbdkit plugin"
elif "$VIMG_SERVE" serve --help 2>&1 | grep -- '--fd' >/dev/null; then
    ENGINES+=("vimg=$VIMG_SERVE")
else
    echo "SKIPPED CASE: vimg serve --fd: $VIMG_SERVE has no 'serve --fd'"
fi
if command -v qemu-nbd >/dev/null; then
    ENGINES+=("qemu-nbd=$(command -v qemu-nbd)")
else
    echo "SKIPPED CASE: qemu-nbd engine: qemu-nbd not installed"
fi
[ ${#ENGINES[@]} -gt 0 ] || skip "neither 'vimg serve --fd' nor qemu-nbd is available"

T=$TEST_TMP
chmod 755 "$T"
mkdir -m 711 "$T/images"
mkdir -m 700 "$T/keys"
mkdir -m 777 "$T/out"
PASS="nbd-broker-$RANDOM$RANDOM-pw"
printf '%s' "$PASS" >"$T/keys/enc.key"
chmod 600 "$T/keys/enc.key"
random_file "$T/plain.raw" 2
qemu_retry qemu-img convert -q --object "secret,id=k,file=$T/keys/enc.key" -f raw -O luks \
    -o key-secret=k,iter-time=10 "$T/plain.raw" "$T/images/enc.luks" ||
    fail "qemu-img could not create the LUKS image"
chmod 600 "$T/images/enc.luks"
ln -s ../keys/enc.key "$T/images/keylink"

# write_conf ENGINE PATH BASE ROOT FORMAT: $T/BASE.conf, one read-only nbd
# rule for nobody on $T/ROOT, socket $T/BASE.sock, audit $T/BASE-audit.log.
write_conf()
{
    cat >"$T/$3.conf" <<EOC
[daemon]
socket = $T/$3.sock
audit = $T/$3-audit.log
nbd_server = $1
nbd_server_path = $2
[rule $4]
match.uid = nobody
allow = nbd
nbd.root = $T/$4
nbd.secret = $T/keys/enc.key
nbd.format = $5
nbd.access = ro
EOC
    chmod 600 "$T/$3.conf"
}

# run_engine NAME PATH: vimgd with nbd_server = NAME, the whole scenario.
run_engine()
{
    local ENGINE=$1 ENGINE_PATH=$2 p
    echo "NBD server behind the broker: $ENGINE ($ENGINE_PATH)"
    write_conf "$ENGINE" "$ENGINE_PATH" "$ENGINE" images luks

    # the secret file must be root-only, or vimgd refuses the config
    chmod 640 "$T/keys/enc.key"
    expect_error 1 "nbd.secret '$T/keys/enc.key' has mode 0640" \
        "$VIMGD" --config "$T/$ENGINE.conf" --check-config
    chmod 600 "$T/keys/enc.key"
    expect_ok "$VIMGD" --config "$T/$ENGINE.conf" --check-config

    SOCK=$T/$ENGINE.sock
    start_vimgd "$T/$ENGINE.conf" "$SOCK" "$T/$ENGINE-vimgd.log"

    # nobody can read neither the image nor the key
    expect_rc 1 "${AS_NOBODY[@]}" cat "$T/images/enc.luks"
    expect_rc 1 "${AS_NOBODY[@]}" cat "$T/keys/enc.key"

    # ... but reads the decrypted image through the broker with qemu-img
    NBD_OPTS='driver=raw,file.driver=nbd,file.server.type=fd,file.server.str={fd}'
    expect_ok nobody_broker nbd enc.luks -- \
        qemu-img convert -O raw --image-opts "$NBD_OPTS" "$T/out/$ENGINE.raw"
    assert_same_file "$T/out/$ENGINE.raw" "$T/plain.raw" "image read through the broker's NBD socket"
    echo "nobody read $(stat -c %s "$T/out/$ENGINE.raw") decrypted bytes through $ENGINE"

    # the server: passphrase neither in argv nor environment; it is gone after
    # its client (here one that never speaks NBD: the broker stops it when the
    # requester's connection ends)
    "${AS_NOBODY[@]}" "$VIMG" broker --socket "$SOCK" nbd enc.luks -- sleep 2 &
    HOLDER=$!
    cleanup_fn bg_stop "$HOLDER"
    # descendants PID: every process below PID (the workers and their servers)
    descendants()
    {
        ps -e -o pid=,ppid= | awk -v root="$1" '
            { parent[$1] = $2 }
            END {
                found[root] = 1
                do {
                    more = 0
                    for (p in parent) {
                        if (!(p in found) && (parent[p] in found)) { found[p] = 1; more = 1 }
                    }
                } while (more)
                for (p in found) if (p != root) print p
            }'
    }
    # servers: descendants of vimgd that are not vimgd workers
    servers()
    {
        local p
        for p in $(descendants "$VIMGD_PID"); do
            [ "$(readlink "/proc/$p/exe" 2>/dev/null)" = "$(readlink -f "$VIMGD")" ] || echo "$p"
        done
    }
    SERVERS=
    for _ in $(seq 50); do
        SERVERS=$(servers)
        [ -n "$SERVERS" ] && break
        sleep 0.05
    done
    [ -n "$SERVERS" ] || fail "no NBD server process found while a client held its socket"
    for p in $SERVERS; do
        tr '\0' '\n' <"/proc/$p/cmdline" | grep -qF "$PASS" && fail "passphrase in the server's argv"
        tr '\0' '\n' <"/proc/$p/environ" | grep -qF "$PASS" && fail "passphrase in the server's environment"
        echo "server process $p: $(tr '\0' ' ' <"/proc/$p/cmdline")"
    done
    wait "$HOLDER"
    for _ in $(seq 50); do
        [ -z "$(servers)" ] && break
        sleep 0.1
    done
    [ -z "$(servers)" ] || fail "the NBD server outlived its client: $(servers)"

    # denials
    expect_error 1 "read-write access requested, nbd.access is ro" nobody_broker nbd --rw enc.luks -- true
    expect_error 1 "no rule allows nbd for uid 4242" \
        "${AS_OTHER[@]}" "$VIMG" broker --socket "$SOCK" nbd enc.luks -- true
    expect_error 1 "symbolic links are not followed beneath nbd.root" nobody_broker nbd keylink -- true
    expect_error 1 "is absolute or contains '..'" nobody_broker nbd ../keys/enc.key -- true
    expect_error 1 "'broker nbd' needs a command" nobody_broker nbd enc.luks

    grep -qF "$PASS" "$T/$ENGINE-audit.log" "$T/$ENGINE-vimgd.log" && fail "passphrase in a log"
    grep -q "event=allow op=nbd uid=$(id -u nobody) .*NBD export of 'enc.luks' (luks, read-only)" \
        "$T/$ENGINE-audit.log" || fail "audit: nbd grant not logged"
    check_vimgd_log "$T/$ENGINE-vimgd.log"
    bg_stop "$VIMGD_PID"
}

# qcow2 images naming other files (issue 7 follow-up): the server runs with
# the broker's privileges and would open a backing or data file by name,
# outside nbd.root.  All are encrypted qcow2 that the server could open with
# the rule's secret, so only vimgd's header check stands between nobody and
# the root-only file.
mkdir -m 711 "$T/qimages"
TOPSECRET="root-only-$RANDOM$RANDOM-content"
{ printf '%s' "$TOPSECRET"; head -c 65536 /dev/zero; } >"$T/topsecret.raw"
truncate -s 1M "$T/topsecret.raw"
chmod 600 "$T/topsecret.raw"
QOBJ=(--object "secret,id=k,file=$T/keys/enc.key")
QENC=encrypt.format=luks,encrypt.key-secret=k,encrypt.iter-time=10
qemu_retry qemu-img convert -q "${QOBJ[@]}" -f raw -O qcow2 -o "$QENC" \
    "$T/plain.raw" "$T/qimages/good.qcow2" || fail "qemu-img could not create good.qcow2"
qemu_retry qemu-img create -q "${QOBJ[@]}" -f qcow2 -o "$QENC" -b "$T/topsecret.raw" -F raw \
    "$T/qimages/abs-backing.qcow2" 1M || fail "qemu-img could not create abs-backing.qcow2"
qemu_retry qemu-img create -q "${QOBJ[@]}" -f qcow2 -o "$QENC" -u -b ../topsecret.raw -F raw \
    "$T/qimages/rel-backing.qcow2" 1M || fail "qemu-img could not create rel-backing.qcow2"
cp "$T/topsecret.raw" "$T/datafile.raw"
qemu_retry qemu-img create -q "${QOBJ[@]}" -f qcow2 -o "$QENC,data_file=$T/datafile.raw" \
    "$T/qimages/datafile.qcow2" 1M || fail "qemu-img could not create datafile.qcow2"
# qemu-img create zeroes nothing in an existing data file: put the secret back
cp "$T/topsecret.raw" "$T/datafile.raw"
chmod 600 "$T/datafile.raw" "$T"/qimages/*.qcow2
qemu-img info "$T/qimages/datafile.qcow2" | grep -q "data file: $T/datafile.raw" ||
    fail "datafile.qcow2 does not name its data file"

# run_qcow2_engine NAME PATH: a qcow2 rule; self-contained images are
# served, images naming other files are refused with an audit line.
run_qcow2_engine()
{
    local ENGINE=$1 ENGINE_PATH=$2 img
    write_conf "$ENGINE" "$ENGINE_PATH" "q$ENGINE" qimages qcow2
    SOCK=$T/q$ENGINE.sock
    start_vimgd "$T/q$ENGINE.conf" "$SOCK" "$T/q$ENGINE-vimgd.log"

    expect_ok nobody_broker nbd good.qcow2 -- \
        qemu-img convert -O raw --image-opts "$NBD_OPTS" "$T/out/q$ENGINE.raw"
    assert_same_file "$T/out/q$ENGINE.raw" "$T/plain.raw" "qcow2 image read through $ENGINE"

    for img in abs-backing rel-backing; do
        expect_error 1 "'$img.qcow2' references a backing file; images naming other files are not served" \
            nobody_broker nbd "$img.qcow2" -- \
            qemu-img convert -O raw --image-opts "$NBD_OPTS" "$T/out/q$ENGINE-$img.raw"
        grep -q "event=allow-failed op=nbd uid=$(id -u nobody) .*'$img.qcow2' references a backing file" \
            "$T/q$ENGINE-audit.log" || fail "audit: refusal of $img.qcow2 not logged"
    done
    expect_error 1 "'datafile.qcow2' references an external data file" \
        nobody_broker nbd datafile.qcow2 -- \
        qemu-img convert -O raw --image-opts "$NBD_OPTS" "$T/out/q$ENGINE-datafile.raw"
    grep -q "event=allow-failed op=nbd uid=$(id -u nobody) .*'datafile.qcow2' references an external data file" \
        "$T/q$ENGINE-audit.log" || fail "audit: refusal of datafile.qcow2 not logged"
    if grep -rqF "$TOPSECRET" "$T/out"; then
        fail "the root-only file's content reached nobody"
    fi
    check_vimgd_log "$T/q$ENGINE-vimgd.log"
    bg_stop "$VIMGD_PID"
}

for e in "${ENGINES[@]}"; do
    run_engine "${e%%=*}" "${e#*=}"
    run_qcow2_engine "${e%%=*}" "${e#*=}"
done
echo "PASS: $TEST_NAME"
