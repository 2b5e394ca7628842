#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Secrets never leak out of the vimg process:
# (1) children: every command that takes a secret (create, amend, convert,
#     info, io, commit, check, compare, dd, resize, luks header-backup),
#     with the secret given as file=, data=, format=base64 and keyid+iv,
#     runs under strace -f: vimg executes no other program and forks no
#     process (the only execve is vimg's own), and for every form but
#     what the user typed on vimg's own command line (data=, the base64
#     or encrypted form) no form of the secret appears in the traced
#     argv/environment.
# (2) output: no command, successful or failing (wrong password, bad
#     options, missing secret), prints the passphrase, its base64 form or
#     the encrypted form on stdout or stderr.
# (3) process state while vimg holds a secret (blocked reading the second
#     secret from a fifo): core dumps are off (RLIMIT_CORE 0 in
#     /proc/PID/limits); the process is not dumpable (run as "nobody", its
#     /proc/PID files belong to root, which the kernel does only for
#     non-dumpable processes); its environment holds no secret; and every
#     copy of the passphrase in its memory (scanned through /proc/PID/mem)
#     lies in a mapping marked MADV_DONTDUMP ("dd" in VmFlags of smaps).
# (4) key material while vimg holds an unlocked image (vimg io blocked on
#     its command fifo), for a LUKS image in aes-256-xts-plain64 and one in
#     aes-128-cbc-essiv:sha256: the master key as cryptsetup dumps it
#     (--dump-volume-key), each XTS half (the first round key of each AES
#     key schedule equals it), and the ESSIV salt-key (SHA-256 of the master
#     key), found in memory at all (else the scan is blind) and every copy
#     in MADV_DONTDUMP mappings; the same for the passphrase, which is given
#     as data=: and /proc/PID/cmdline no longer shows it (vimg overwrites
#     data= values in its argv once they are parsed).
# (5) Argon2 working memory: while vimg unlocks a LUKS2 argon2id keyslot
#     with a 64 MiB memory cost, every anonymous mapping with at least
#     48 MiB resident (one must be seen, else the check is blind)
#     is MADV_DONTDUMP and not mlocked ("Locked: 0 kB": LUKS2 memory
#     costs up to 4 GiB exceed RLIMIT_MEMLOCK, and root must not pin
#     them), and the derivation still opens the volume (same data).

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires strace
requires python3
requires openssl
requires setpriv
[ "$VIMG_IS_QEMU" = 0 ] || skip "checks vimg's process hygiene"
[ "$(id -u)" = 0 ] || skip "needs root (setpriv to nobody, /proc/PID/mem)"
strace -f -o /dev/null true 2>/dev/null || skip "ptrace not permitted here"

SEC="LeakCanary-$$-${RANDOM}-q7Zx"
printf '%s' "$SEC" >sec.pw
SEC_B64=$(printf '%s' "$SEC" | base64 -w0)
key_hex=$(openssl rand -hex 32)
iv_hex=$(openssl rand -hex 16)
KEY_B64=$(echo "$key_hex" | xxd -r -p | base64 -w0)
IV_B64=$(echo "$iv_hex" | xxd -r -p | base64 -w0)
CT_B64=$(printf '%s' "$SEC" | openssl enc -aes-256-cbc -K "$key_hex" \
         -iv "$iv_hex" | base64 -w0)
NEEDLES=("$SEC" "$SEC_B64" "$CT_B64")

# The four ways of giving secret s0 (and s1 = the same passphrase + "2").
printf '%s2' "$SEC" >sec2.pw
FORMS=(file data base64 keyid)
form_objs()
{
    case $1 in
        file) echo "--object secret,id=s0,file=$TEST_TMP/sec.pw" ;;
        data) echo "--object secret,id=s0,data=$SEC" ;;
        base64) echo "--object secret,id=s0,data=$SEC_B64,format=base64" ;;
        keyid) echo "--object secret,id=k0,data=$KEY_B64,format=base64" \
                    "--object secret,id=s0,data=$CT_B64,format=base64,keyid=k0,iv=$IV_B64" ;;
    esac
    echo "--object secret,id=s1,file=$TEST_TMP/sec2.pw"
}

# no_secret FILE WHAT: none of the secret's forms in FILE.
no_secret()
{
    local n
    for n in "${NEEDLES[@]}"; do
        if grep -qF -- "$n" "$1"; then
            fail "$2: the secret appears in $(basename "$1")"
        fi
    done
}

# traced FORM WANT_RC CMD...: run vimg CMD under strace -f; check children,
# argv/env of execve calls, and stdout/stderr.
traced()
{
    local form=$1 want=$2 n
    shift 2
    LAST_RC=0
    # (LeakSanitizer cannot run under ptrace: off for sanitizer builds.)
    ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}detect_leaks=0" \
        strace -f -qq -v -s 65536 -e trace=execve,fork,vfork -e signal=none \
        -o trace.txt "$VIMG" "$@" >"$LAST_OUT" 2>"$LAST_ERR" || LAST_RC=$?
    if [ "$LAST_RC" != "$want" ]; then
        _show_last "$@"
        fail "$form: expected exit $want, got $LAST_RC: vimg $1"
    fi
    n=$(grep -c 'execve(' trace.txt)
    [ "$n" = 1 ] || { cat trace.txt >&2; fail "$form: vimg $1 ran $((n - 1)) programs"; }
    ! grep -qE '(^|[^a-z])v?fork\(' trace.txt ||
        fail "$form: vimg $1 forked"
    # vimg's own argv holds what the user typed (data=: the passphrase;
    # base64: its base64 form; keyid: the ciphertext); nothing else may
    # appear in any traced argv or environment.
    case $form in
        file) no_secret trace.txt "$form: vimg $1 argv/env" ;;
        base64|keyid)
            for n in "$SEC" $([ $form = keyid ] && echo "$SEC_B64"); do
                grep -qF -- "$n" trace.txt &&
                    fail "$form: vimg $1: a decoded secret form in argv/env"
            done ;;
    esac
    no_secret "$LAST_OUT" "$form: vimg $1 stdout"
    no_secret "$LAST_ERR" "$form: vimg $1 stderr"
}

# ---- (1) + (2): every command, every form -------------------------------------
for form in "${FORMS[@]}"; do
    read -r -a O <<<"$(form_objs $form | tr "\n" " ")"
    rm -f img.luks img2.luks top.qcow2 base.qcow2 out.raw hdr.bak
    traced $form 0 create -f luks "${O[@]}" -o key-secret=s0,iter-count=1000 img.luks 1M
    traced $form 0 amend "${O[@]}" -o state=active,new-secret=s1,iter-count=1000 \
        --image-opts "driver=luks,key-secret=s0,file.filename=img.luks"
    traced $form 0 io "${O[@]}" --image-opts "driver=luks,key-secret=s1,file.filename=img.luks" \
        -c "write -P 0x11 0 64k"
    traced $form 0 convert "${O[@]}" --image-opts "driver=luks,key-secret=s0,file.filename=img.luks" \
        -O raw out.raw
    traced $form 0 convert "${O[@]}" -f raw out.raw -O luks \
        -o key-secret=s0,iter-count=1000 img2.luks
    traced $form 0 compare "${O[@]}" --image-opts \
        "driver=luks,key-secret=s0,file.filename=img.luks" \
        "driver=luks,key-secret=s0,file.filename=img2.luks"
    traced $form 0 info "${O[@]}" --image-opts "driver=luks,key-secret=s0,file.filename=img.luks"
    traced $form 63 check "${O[@]}" --image-opts "driver=luks,key-secret=s0,file.filename=img.luks"
    traced $form 0 dd "${O[@]}" --image-opts -O raw bs=64k \
        "if=driver=luks,key-secret=s0,file.filename=img.luks" of=dd.raw
    rm -f dd.raw
    traced $form 0 resize "${O[@]}" --image-opts "driver=luks,key-secret=s0,file.filename=img.luks" 2M
    traced $form 0 create -f qcow2 "${O[@]}" \
        -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 base.qcow2 1M
    traced $form 0 create -f qcow2 "${O[@]}" -b base.qcow2 -F qcow2 \
        -o encrypt.format=luks,encrypt.key-secret=s0,encrypt.iter-count=1000 top.qcow2
    traced $form 0 commit "${O[@]}" --image-opts \
        "driver=qcow2,encrypt.key-secret=s0,file.filename=top.qcow2,backing.encrypt.key-secret=s0"
    traced $form 0 luks header-backup img.luks hdr.bak
    # failures: wrong password, unknown secret id, bad option
    traced $form 1 convert "${O[@]}" --image-opts \
        "driver=luks,key-secret=s1,file.filename=img2.luks" -O raw bad.raw
    traced $form 1 io "${O[@]}" --image-opts "driver=luks,key-secret=s9,file.filename=img.luks" \
        -c "read 0 512"
    traced $form 1 amend "${O[@]}" -o state=bogus,new-secret=s1 \
        --image-opts "driver=luks,key-secret=s0,file.filename=img.luks"
    traced $form 1 create -f luks "${O[@]}" -o key-secret=s0,cipher-alg=nope x.luks 1M
    echo "ok $form: no child process, no secret in argv/env/output"
done

# ---- (3): the process while it holds a secret -------------------------------------
chmod 755 "$TEST_TMP"
mkfifo fifo
chmod 666 fifo
chmod 644 sec.pw
setpriv --reuid=65534 --regid=65534 --clear-groups -- \
    "$VIMG" info --object "secret,id=s0,file=$TEST_TMP/sec.pw" \
    --object "secret,id=s1,file=$TEST_TMP/fifo" out.raw >hold.out 2>hold.err &
pid=$!
cleanup_fn kill -9 "$pid"
exec 3>fifo                       # blocks until vimg opens the fifo
printf '%s' "${SEC}-partial" >&3  # vimg reads this and waits for more
# wait until vimg sleeps in read() with the partial secret in memory
for _ in $(seq 100); do
    grep -q 'pipe_read\|pipe_wait' "/proc/$pid/wchan" 2>/dev/null && break
    sleep 0.1
done
grep -q '^Max core file size *0 *0 ' "/proc/$pid/limits" ||
    fail "core dumps are not disabled: $(grep core "/proc/$pid/limits")"
assert_eq "$(awk '/^Uid:/ { print $2 }' "/proc/$pid/status")" 65534 "vimg uid"
assert_eq "$(stat -c %u "/proc/$pid/status")" 0 \
    "owner of /proc/PID/status (0 only for non-dumpable processes)"
tr '\0' '\n' <"/proc/$pid/environ" >env.txt
no_secret env.txt "environment"
# scan_mem PID HEXNEEDLE... : every copy of every needle (hex; prefixed
# with "!" when it must be found at least once) lies in a "dd" mapping.
cat >scan.py <<'PY'
import re, sys
pid = sys.argv[1]
needles = [(a.startswith('!'), bytes.fromhex(a.lstrip('!'))) for a in sys.argv[2:]]
vmas, cur = [], None
for line in open(f'/proc/{pid}/smaps'):
    m = re.match(r'^([0-9a-f]+)-([0-9a-f]+) (\S+)', line)
    if m:
        cur = [int(m.group(1), 16), int(m.group(2), 16), m.group(3), set()]
        vmas.append(cur)
    elif line.startswith('VmFlags:'):
        cur[3] = set(line.split()[1:])
hits, bad = [0] * len(needles), []
with open(f'/proc/{pid}/mem', 'rb', 0) as mem:
    for lo, hi, perms, flags in vmas:
        if 'r' not in perms or hi - lo > (1 << 30):
            continue
        try:
            mem.seek(lo)
            data = mem.read(hi - lo)
        except OSError:
            continue
        for i, (_, n) in enumerate(needles):
            for m in re.finditer(re.escape(n), data):
                hits[i] += 1
                if 'dd' not in flags:
                    bad.append(f'needle {i} ({n[:4].hex()}..) at '
                               f'{lo + m.start():x} in {lo:x}-{hi:x} {perms} '
                               f'{" ".join(sorted(flags))}')
for i, (must, n) in enumerate(needles):
    if must and hits[i] == 0:
        sys.exit(f'needle {i} ({n[:4].hex()}..) not found in memory: the scan is blind')
if bad:
    sys.exit('secret copies outside MADV_DONTDUMP memory:\n' + '\n'.join(bad))
print(f'ok {sum(hits)} copies ({hits}), all in MADV_DONTDUMP mappings')
PY
scan_mem()
{
    python3 scan.py "$@"
}
hex() { printf '%s' "$1" | xxd -p | tr -d '\n'; }

scan_mem "$pid" "!$(hex "$SEC")" || fail "secret memory check"
printf 'x' >&3
exec 3>&-
wait "$pid" || true
no_secret hold.out "held process stdout"
no_secret hold.err "held process stderr"
echo "ok process state: no core, not dumpable, clean environment"

# ---- (5): Argon2 working memory (before (4), which needs cryptsetup) ----------------
rm -f a2.luks
expect_ok "$VIMG" create -q -f luks --object "secret,id=s0,file=$TEST_TMP/sec.pw" \
    -o key-secret=s0,encrypt.format=luks2,kdf=argon2id,memory=65536,parallel=1,iter-count=4 \
    a2.luks 1M
expect_ok "$VIMG" io --object "secret,id=s0,file=$TEST_TMP/sec.pw" --image-opts \
    "driver=luks,key-secret=s0,file.filename=a2.luks" -c "write -P 0x6b 0 64k"
cat >kdfmem.py <<'PY'
import os, re, sys, time
pid, min_kib, fifo, secret = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
# vimg waits for its secret on the fifo: only now, with this poller
# running (python starts slowly on a loaded machine), may the KDF begin.
with open(fifo, 'wb') as f:
    f.write(open(secret, 'rb').read())
seen, deadline = {}, time.time() + 120
while time.time() < deadline:
    try:
        state = open(f'/proc/{pid}/stat').read().rsplit(')', 1)[1].split()[0]
        text = open(f'/proc/{pid}/smaps').read()
    except (OSError, IndexError):
        text, state = '', '?'
    if state in ('Z', 'X') or not os.path.exists(f'/proc/{pid}'):
        break                           # exited
    cur = None
    for line in text.splitlines():
        m = re.match(r'^([0-9a-f]+)-([0-9a-f]+) \S+ \S+ \S+ (\d+)', line)
        if m:
            lo, hi = int(m.group(1), 16), int(m.group(2), 16)
            cur = {'range': f'{lo:x}-{hi:x}', 'kib': (hi - lo) // 1024,
                   'anon': m.group(3) == '0', 'locked': 0, 'rss': 0}
        elif cur and line.startswith('Rss:'):
            cur['rss'] = int(line.split()[1])
        elif cur and line.startswith('Locked:'):
            cur['locked'] = int(line.split()[1])
        elif cur and line.startswith('VmFlags:'):
            # populated, not merely reserved (sanitizer shadow/heap areas)
            if cur['anon'] and cur['rss'] >= min_kib:
                cur['dd'] = 'dd' in line.split()[1:]
                seen[cur['range']] = cur
    time.sleep(0.02)
if not seen:
    sys.exit(f'no anonymous mapping of {min_kib} KiB or more seen: the check is blind')
bad = [v for v in seen.values() if not v['dd'] or v['locked']]
for v in seen.values():
    print(f"{v['range']} {v['kib']} KiB rss={v['rss']} kB dd={v['dd']} "
          f"locked={v['locked']} kB")
sys.exit('Argon2 memory not DONTDUMP or mlocked' if bad else 0)
PY
rm -f a2fifo && mkfifo a2fifo
"$VIMG" convert --object "secret,id=s0,file=$TEST_TMP/a2fifo" --image-opts \
    "driver=luks,key-secret=s0,file.filename=a2.luks" -O raw a2.raw >a2.out 2>a2.err &
pid=$!
cleanup_fn kill -9 "$pid"
python3 kdfmem.py "$pid" $((48 * 1024)) a2fifo sec.pw >kdfmem.out 2>&1 ||
    { cat kdfmem.out >&2; fail "Argon2 working memory check"; }
wait "$pid" || fail "argon2id volume did not open: $(cat a2.err)"
cat kdfmem.out
python3 -c "
import sys; d = open('a2.raw', 'rb').read()
sys.exit(d[:65536] != b'\x6b' * 65536)" || fail "argon2id volume: wrong data"
echo "ok Argon2 working memory (64 MiB) in MADV_DONTDUMP, unlocked pages"

# ---- (4): key material of an open image; data= scrubbed from argv ---------------
if ! command -v cryptsetup >/dev/null; then
    skip "cryptsetup not installed (needed to dump the master key); (1)-(3) passed"
fi
for spec in "aes-256 xts plain64 -" "aes-128 cbc essiv sha256"; do
    read -r alg mode ivgen ivhash <<<"$spec"
    opts="key-secret=s0,iter-count=1000,cipher-alg=$alg,cipher-mode=$mode,ivgen-alg=$ivgen"
    [ "$ivhash" = - ] || opts+=",ivgen-hash-alg=$ivhash"
    rm -f key.luks
    expect_ok "$VIMG" create -q -f luks --object "secret,id=s0,file=$TEST_TMP/sec.pw" \
        -o "$opts" key.luks 1M
    # Volume key as cryptsetup sees it ("MK dump:" then hex byte pairs).
    cryptsetup luksDump --dump-volume-key --batch-mode \
        --key-file sec.pw key.luks >dump.txt 2>&1 ||
        fail "cryptsetup luksDump --dump-volume-key: $(cat dump.txt)"
    mk=$(awk '/^MK dump:/ { f = 1; sub(/^MK dump:/, "") }
              f && /^[ \t]*([0-9a-f][0-9a-f][ \t]*)+$/ { gsub(/[ \t]/, ""); printf "%s", $0; next }
              f && !/^MK dump:/ { f = 0 }' dump.txt)
    klen=$(( ${#mk} / 2 ))
    [ "$klen" = $([ "$alg" = aes-256 ] && echo 64 || echo 16) ] ||
        fail "$spec: could not read the master key from: $(cat dump.txt)"
    needles=("!$mk")
    if [ "$mode" = xts ]; then
        # the two AES-256 keys; each is its key schedule's first round key
        needles+=("!${mk:0:64}" "!${mk:64:64}")
    else
        needles+=("!$(echo "$mk" | xxd -r -p | sha256sum | cut -c1-64)")
    fi
    rm -f cmds && mkfifo cmds
    "$VIMG" io --object "secret,id=s0,data=$SEC" --image-opts \
        "driver=luks,key-secret=s0,file.filename=key.luks" \
        <cmds >io.out 2>io.err &
    pid=$!
    cleanup_fn kill -9 "$pid"
    exec 3>cmds
    echo "write -P 0x5a 0 64k" >&3    # the cipher has been used
    for _ in $(seq 100); do
        grep -q 'wrote 65536' io.out 2>/dev/null && break
        sleep 0.1
    done
    grep -q 'wrote 65536' io.out || fail "$spec: vimg io did not write: $(cat io.err)"
    tr '\0' '\n' <"/proc/$pid/cmdline" >cmdline.txt
    grep -q '^secret,id=s0,data=\*\**$' cmdline.txt ||
        fail "$spec: data= not masked in /proc/PID/cmdline: $(cat cmdline.txt)"
    no_secret cmdline.txt "$spec: /proc/PID/cmdline"
    scan_mem "$pid" "$(hex "$SEC")" "${needles[@]}" ||
        fail "$spec: key material outside MADV_DONTDUMP memory"
    exec 3>&-
    wait "$pid" || fail "$spec: vimg io failed: $(cat io.err)"
    grep -q "warning: secret 's0' is passed on the command line" io.err ||
        fail "$spec: the data= warning is gone"
    echo "ok $spec: master key, key schedules, ESSIV key in DONTDUMP memory; argv scrubbed"
done
echo "PASS: $TEST_NAME"
