#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Secret objects (--object secret / secret_keyring), checked against
# qemu-img: an image created by vimg with each way of passing the password
# must open in qemu-img with the plain password from a file (and not with a
# different one).  Covers data=, file= (a trailing newline is part of the
# password), format=base64, keyid+iv (AES-256-CBC, made with openssl enc),
# secret_keyring (kernel user key; skipped if keyctl is unusable), invalid
# UTF-8 (create fails and leaves no file), vimg's warning for data=, and the
# syntax errors with qemu's exact messages.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img
requires openssl

head -c 1M /dev/zero >plain.raw

# created_with NAME OBJECT...: vimg create -f luks with the given --object
# arguments (secret id s0), write plain.raw's zeros plus a marker.
created_with()
{
    local name=$1 o args=()
    shift
    for o in "$@"; do
        args+=(--object "$o")
    done
    rm -f "$name"
    if [ "$VIMG_IS_QEMU" = 1 ]; then
        qemu_retry "$VIMG" create -q -f luks "${args[@]}" \
            -o key-secret=s0,iter-time=10 "$name" 1M ||
            fail "create $name"
    else
        expect_ok "$VIMG" create -q -f luks "${args[@]}" \
            -o key-secret=s0,iter-count=1000 "$name" 1M
    fi
}

# opens_with_file IMG PWFILE: qemu-img must unlock IMG with this file.
opens_with_file()
{
    expect_ok qemu-img convert --object "secret,id=s0,file=$2" \
        --image-opts "$(luks_opts "$1")" -O raw check.raw
    rm -f check.raw
}

# refuses_data IMG WORD: qemu-img must NOT unlock IMG with data=WORD.
refuses_data()
{
    expect_error 1 "Invalid password, cannot unlock any keyslot" \
        qemu-img convert --object "secret,id=s0,data=$2" \
        --image-opts "$(luks_opts "$1")" -O raw check.raw
}

# ---- data= ----------------------------------------------------------------
if [ "$VIMG_IS_QEMU" = 1 ]; then
    qemu_retry "$VIMG" create -q -f luks --object "secret,id=s0,data=$PW" \
        -o key-secret=s0,iter-time=10 data.luks 1M || fail "create data.luks"
else
    expect_ok "$VIMG" create -f luks --object "secret,id=s0,data=$PW" \
        -o key-secret=s0,iter-count=1000 data.luks 1M
    grep_last "warning: secret 's0' is passed on the command line (data=)" stderr
    grep_last "Formatting 'data.luks', fmt=luks size=1048576"
    # -q silences the warning (and the Formatting line).
    expect_ok "$VIMG" create -q -f luks --object "secret,id=s0,data=$PW" \
        -o key-secret=s0,iter-count=1000 data2.luks 1M
    [ ! -s "$LAST_ERR" ] && [ ! -s "$LAST_OUT" ] ||
        fail "create -q printed: $(cat "$LAST_OUT" "$LAST_ERR")"
    # file= never warns.
    expect_ok "$VIMG" info --object "$SECRET" plain.raw
    [ ! -s "$LAST_ERR" ] || fail "file= printed: $(cat "$LAST_ERR")"
fi
opens_with_file data.luks "$PWFILE"
refuses_data data.luks "${PW}x"
echo "ok data="

# ---- file= keeps the trailing newline ---------------------------------------
printf 'sesame\n' >nl.pw
created_with nl.luks "secret,id=s0,file=$TEST_TMP/nl.pw"
opens_with_file nl.luks "$TEST_TMP/nl.pw"
refuses_data nl.luks sesame
# and vimg agrees in both directions
expect_error 1 "Invalid password, cannot unlock any keyslot" \
    "$VIMG" convert --object "secret,id=s0,data=sesame" \
    --image-opts "$(luks_opts nl.luks)" -O raw check.raw
expect_ok "$VIMG" convert --object "secret,id=s0,file=$TEST_TMP/nl.pw" \
    --image-opts "$(luks_opts nl.luks)" -O raw check.raw
rm -f check.raw
echo "ok file= with trailing newline"

# ---- format=base64 ----------------------------------------------------------
b64=$(printf '%s' "$PW" | base64 -w0)
created_with b64.luks "secret,id=s0,data=$b64,format=base64"
opens_with_file b64.luks "$PWFILE"
refuses_data b64.luks "$b64"
base64 -w0 <"$PWFILE" >b64.file
created_with b64f.luks "secret,id=s0,file=$TEST_TMP/b64.file,format=base64"
opens_with_file b64f.luks "$PWFILE"
expect_error 1 "Base64 data contains invalid characters" \
    "$VIMG" info --object "secret,id=s0,data=@@@,format=base64" plain.raw
echo "ok format=base64"

# ---- keyid + iv (AES-256-CBC encrypted secret) ------------------------------
key_hex=$(openssl rand -hex 32)
iv_hex=$(openssl rand -hex 16)
key_b64=$(echo "$key_hex" | xxd -r -p | base64 -w0)
iv_b64=$(echo "$iv_hex" | xxd -r -p | base64 -w0)
ct_b64=$(printf '%s' "$PW" | openssl enc -aes-256-cbc -K "$key_hex" -iv "$iv_hex" |
         base64 -w0)
created_with enc.luks "secret,id=k0,data=$key_b64,format=base64" \
    "secret,id=s0,data=$ct_b64,format=base64,keyid=k0,iv=$iv_b64"
opens_with_file enc.luks "$PWFILE"
# The same with the key read raw from a file and the ciphertext raw.
echo "$key_hex" | xxd -r -p >key.bin
printf '%s' "$PW" | openssl enc -aes-256-cbc -K "$key_hex" -iv "$iv_hex" >ct.bin
created_with enc2.luks "secret,id=k0,file=$TEST_TMP/key.bin" \
    "secret,id=s0,file=$TEST_TMP/ct.bin,keyid=k0,iv=$iv_b64"
opens_with_file enc2.luks "$PWFILE"
expect_error 1 "Key should be 32 bytes in length" \
    "$VIMG" info --object secret,id=k0,data=abc \
    --object "secret,id=s0,data=eHh4,format=base64,keyid=k0,iv=$iv_b64" plain.raw
expect_error 1 "IV should be 16 bytes in length not 3" \
    "$VIMG" info --object "secret,id=k0,data=$key_b64,format=base64" \
    --object "secret,id=s0,data=$ct_b64,format=base64,keyid=k0,iv=AAAA" plain.raw
expect_error 1 "IV is required to decrypt secret" \
    "$VIMG" info --object "secret,id=k0,data=$key_b64,format=base64" \
    --object "secret,id=s0,data=$ct_b64,format=base64,keyid=k0" plain.raw
echo "ok keyid+iv"

# ---- secret_keyring ---------------------------------------------------------
if command -v keyctl >/dev/null && \
       serial=$(keyctl add user "vimg-test-$$" "$PW" @u 2>/dev/null); then
    cleanup_fn keyctl unlink "$serial" @u
    keyctl setperm "$serial" 0x3f3f0000 >/dev/null 2>&1 || true
    created_with ring.luks "secret_keyring,id=s0,serial=$serial"
    opens_with_file ring.luks "$PWFILE"
    expect_ok "$VIMG" convert --object "secret_keyring,id=s0,serial=$serial" \
        --image-opts "$(luks_opts ring.luks)" -O raw check.raw
    rm -f check.raw
    expect_error 1 "Unable to read serial key 00003039: Required key not available" \
        "$VIMG" info --object secret_keyring,id=s0,serial=12345 plain.raw
    echo "ok secret_keyring"
else
    echo "note: keyctl unavailable or not permitted here; secret_keyring not tested"
fi

# ---- invalid UTF-8 ----------------------------------------------------------
printf '\xff\xfeabc' >bad.pw
rm -f utf.luks
expect_error 1 "Data from secret s0 is not valid UTF-8" \
    "$VIMG" create -f luks --object "secret,id=s0,file=$TEST_TMP/bad.pw" \
    -o key-secret=s0,iter-time=10 utf.luks 1M
[ ! -e utf.luks ] || fail "invalid UTF-8: utf.luks left behind"
# Even an existing file is removed (qemu iotest 282).
echo old >utf.luks
expect_error 1 "Data from secret s0 is not valid UTF-8" \
    "$VIMG" create -f luks --object "secret,id=s0,file=$TEST_TMP/bad.pw" \
    -o key-secret=s0,iter-time=10 utf.luks 1M
[ ! -e utf.luks ] || fail "invalid UTF-8: existing utf.luks left behind"
echo "ok invalid UTF-8"

# ---- syntax errors ----------------------------------------------------------
expect_error 1 "Parameter 'bogus' is unexpected" \
    "$VIMG" info --object secret,id=s0,data=x,bogus=1 plain.raw
expect_error 1 "'file' and 'data' are mutually exclusive" \
    "$VIMG" info --object secret,id=s0,data=x,file=y plain.raw
expect_error 1 "Either 'file' or 'data' must be provided" \
    "$VIMG" info --object secret,id=s0 plain.raw
expect_error 1 "Unable to read /nonexistent/pw: " \
    "$VIMG" info --object secret,id=s0,file=/nonexistent/pw plain.raw
expect_error 1 "Parameter 'qom-type' does not accept value 'foo'" \
    "$VIMG" info --object foo,id=s0 plain.raw
expect_error 1 "No secret with id 's1'" \
    "$VIMG" convert --object "$SECRET" \
    --image-opts "$(luks_opts data.luks s1)" -O raw check.raw
echo "ok syntax errors"
exit 0
