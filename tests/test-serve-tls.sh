#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# `vimg serve` over TCP on 127.0.0.1: plain, TLS with a pre-shared key
# (--tls-psk; nbdinfo and qemu-img as PSK clients) and TLS with x509
# certificates made by certtool (--tls-creds; nbdcopy and qemu-img).  A
# client without TLS must be turned away when TLS is required.

. "$(dirname "$0")/functions.sh"
. "$SRCDIR/serve-functions.sh"
requires qemu-img
requires python3

free_port()
{
    python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# serve_tcp ARGS...: start `vimg serve -b 127.0.0.1 -p PORT ARGS` and wait
# until the port accepts connections.
serve_tcp()
{
    local i
    PORT=$(free_port)
    LD_PRELOAD=$SERVE_PRELOAD "$VIMG" serve -b 127.0.0.1 -p "$PORT" "$@" \
        2>>serve.err &
    SERVE_PID=$!
    cleanup_fn kill -9 "$SERVE_PID"
    for ((i = 0; i < 200; i++)); do
        if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT)).close()" \
                2>/dev/null; then
            return 0
        fi
        kill -0 "$SERVE_PID" 2>/dev/null || break
        sleep 0.05
    done
    cat serve.err >&2
    fail "vimg serve on TCP did not start"
}

qemu_create_luks l.luks 8M
expect_ok qemu-io --object "$SECRET" --image-opts "$(luks_opts l.luks)" \
    -c 'write -P 0x5a 0 2M'
expect_ok qemu-img convert -O raw --object "$SECRET" --image-opts \
    "$(luks_opts l.luks)" ref.raw

# 1. Plain TCP.
serve_tcp --object "$SECRET" --image-opts "$(luks_opts l.luks)"
expect_ok nbdcopy "nbd://127.0.0.1:$PORT/" tcp.raw
assert_same_file tcp.raw ref.raw "copy over TCP"
serve_stop

# 2. TLS with a pre-shared key.
mkdir psk
printf 'alice:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    >psk/keys.psk
serve_tcp --tls-psk "$PWD/psk/keys.psk" --object "$SECRET" \
    --image-opts "$(luks_opts l.luks)"
expect_ok nbdinfo "nbds://alice@127.0.0.1:$PORT/?tls-psk-file=$PWD/psk/keys.psk"
grep -q 'with TLS' "$LAST_OUT" || fail "no TLS: $(cat "$LAST_OUT")"
expect_ok qemu-img convert -O raw \
    --object "tls-creds-psk,id=tls0,endpoint=client,dir=$PWD/psk,username=alice" \
    --image-opts "driver=nbd,host=127.0.0.1,port=$PORT,tls-creds=tls0" psk.raw
assert_same_file psk.raw ref.raw "qemu-img over TLS-PSK"
expect_ok qemu-io \
    --object "tls-creds-psk,id=tls0,endpoint=client,dir=$PWD/psk,username=alice" \
    --image-opts "driver=nbd,host=127.0.0.1,port=$PORT,tls-creds=tls0" \
    -c 'write -P 0x6b 4M 64k' -c 'read -P 0x6b 4M 64k'
grep -q 'Pattern verification failed' "$LAST_OUT" && fail "TLS-PSK write"
dd if=/dev/zero bs=64k count=1 status=none | tr '\0' '\153' |
    dd of=ref.raw bs=64k seek=64 conv=notrunc status=none
# Without TLS the client is refused.
run_cmd nbdinfo "nbd://127.0.0.1:$PORT/"
[ "$LAST_RC" != 0 ] || fail "TLS-PSK server accepted a client without TLS"
# A wrong key is refused.
mkdir bad
printf 'alice:%s\n' "$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')" \
    >bad/keys.psk
run_cmd nbdinfo "nbds://alice@127.0.0.1:$PORT/?tls-psk-file=$PWD/bad/keys.psk"
[ "$LAST_RC" != 0 ] || fail "TLS-PSK server accepted a wrong key"
serve_stop

# 3. TLS with x509 certificates (certtool from gnutls-bin).
if command -v certtool >/dev/null 2>&1; then
    mkdir x509
    cd x509 || fail "cd x509"
    certtool --generate-privkey >ca-key.pem 2>/dev/null
    printf 'cn = vimg test CA\nca\ncert_signing_key\nexpiration_days = 2\n' \
        >ca.info
    certtool --generate-self-signed --load-privkey ca-key.pem \
        --template ca.info --outfile ca-cert.pem 2>/dev/null ||
        fail "certtool CA"
    certtool --generate-privkey >server-key.pem 2>/dev/null
    printf '%s\n' 'organization = vimg' 'cn = localhost' \
        'dns_name = localhost' 'ip_address = 127.0.0.1' 'tls_www_server' \
        'encryption_key' 'signing_key' 'expiration_days = 2' >server.info
    certtool --generate-certificate --load-ca-certificate ca-cert.pem \
        --load-ca-privkey ca-key.pem --load-privkey server-key.pem \
        --template server.info --outfile server-cert.pem 2>/dev/null ||
        fail "certtool server certificate"
    mkdir client && cp ca-cert.pem client/
    cd .. || fail "cd .."
    serve_tcp --tls-creds "$PWD/x509" --object "$SECRET" \
        --image-opts "$(luks_opts l.luks)"
    expect_ok nbdcopy \
        "nbds://127.0.0.1:$PORT/?tls-certificates=$PWD/x509/client" x509.raw
    assert_same_file x509.raw ref.raw "nbdcopy over TLS-x509"
    expect_ok qemu-img convert -O raw \
        --object "tls-creds-x509,id=tls0,endpoint=client,dir=$PWD/x509/client" \
        --image-opts "driver=nbd,host=127.0.0.1,port=$PORT,tls-creds=tls0" \
        x509q.raw
    assert_same_file x509q.raw ref.raw "qemu-img over TLS-x509"
    run_cmd nbdinfo "nbd://127.0.0.1:$PORT/"
    [ "$LAST_RC" != 0 ] || fail "TLS-x509 server accepted a client without TLS"
    serve_stop
else
    echo "certtool not found (gnutls-bin): x509 part not run"
fi

# 4. Option errors.
expect_error 1 "--tls-creds and --tls-psk are exclusive" vimg_serve \
    --tls-creds x --tls-psk y l.luks
expect_error 1 "--socket cannot be combined" vimg_serve -s a.sock -p 1 l.luks
echo "PASS: $TEST_NAME"
