#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# qcow2 external data files (-o data_file=NAME[,data_file_raw=on]) against
# the real qemu-img / qemu-io 7.2, in both directions:
#   - create: the same qcow2 bytes as qemu-img create (plain, raw, 4 KiB
#     clusters, preallocation) and a data file of the virtual size; qemu's refusals
#     (compat=0.10, data_file_raw without data_file or with a backing file)
#     with qemu's messages;
#   - info (human and JSON) equal to qemu-img info's; map (JSON and the
#     human "File" column naming the data file) and check (human and JSON,
#     also on a leaked, a compressed-entry and a host!=guest image) equal to
#     qemu-img's;
#   - random writes by qemu-io read back identically by vimg, and the same
#     writes by vimg io pass qemu-img check, compare identical with qemu's
#     image and leave the same data file; with data_file_raw the data file
#     itself equals the guest content;
#   - extended L2 and backing files with a data file, as qemu;
#   - convert to and from data-file images, convert -c refused; resize grows
#     (and shrinks) the data file; amend data_file=/data_file_raw=off as
#     qemu-img amend (same header bytes) and its refusals;
#   - LUKS inside qcow2 with a data file, both ways (no plaintext in the
#     data file);
#   - errors: missing data file named, --image-opts data-file.filename
#     override, names relative to the working directory (as qemu 7.2),
#     a name over 4095 bytes, snapshots refused.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires qemu-img
requires qemu-io
requires python3
requires_vimg
[ "$VIMG_IS_QEMU" = 1 ] && skip "needs vimg (compares against qemu-img)"

# same_error WHAT RC ARGS...: both fail with RC and the same message.
same_error()
{
    local what=$1 rc=$2 msg
    shift 2
    run_cmd qemu-img "$@"
    assert_eq "$LAST_RC" "$rc" "$what: qemu-img exit code"
    msg=$(sed -n 's/^qemu-img: //p' "$LAST_ERR" | head -1)
    [ -n "$msg" ] || fail "$what: qemu-img gave no message"
    expect_error "$rc" "$msg" "$VIMG" "$@"
}

# info_json FILE...: info --output=json without actual-size (allocation).
info_json()
{
    python3 -c '
import json, sys
d = json.load(sys.stdin)
d.pop("actual-size", None)
print(json.dumps(d, sort_keys=True))'
}

WRITES=writes.txt
# A deterministic mix of writes for qemu-io and vimg io: patterns, partial
# clusters, zeroes, over-writes.
python3 - >"$WRITES" <<'PY'
import random
r = random.Random(7)
size = 4 << 20
for i in range(40):
    ln = r.choice([512, 4096, 65536, 3 * 65536, 100000 // 512 * 512])
    off = r.randrange(0, size - ln) // 512 * 512
    if i % 7 == 3:
        print("write -z %d %d" % (off, ln))
    else:
        print("write -P %d %d %d" % (i + 1, off, ln))
PY
io_args()
{
    local l
    while read -r l; do
        printf -- '-c\n%s\n' "$l"
    done <"$WRITES"
}
mapfile -t IOARGS < <(io_args)

# ---- create: same bytes as qemu-img create --------------------------------
mkdir v q
for opts in "data_file=d.raw" "data_file=d.raw,data_file_raw=on" \
            "data_file=d.raw,cluster_size=4096" \
            "data_file=d.raw,preallocation=metadata" \
            "data_file=d.raw,preallocation=full"; do
    rm -f v/* q/*
    (cd v && expect_ok "$VIMG" create -q -f qcow2 -o "$opts" i.qcow2 4M) ||
        exit 1
    (cd q && expect_ok qemu-img create -q -f qcow2 -o "$opts" i.qcow2 4M) ||
        exit 1
    assert_same_file v/i.qcow2 q/i.qcow2 "create -o $opts"
    assert_eq "$(stat -c %s v/d.raw)" 4194304 "data file size ($opts)"
    assert_eq "$(stat -c %s q/d.raw)" 4194304 "qemu's data file size"
    (cd v && qcheck i.qcow2) || exit 1
done
# An existing data file is truncated, as qemu does.
head -c 8M /dev/urandom >old.raw
expect_ok "$VIMG" create -q -f qcow2 -o data_file=old.raw t.qcow2 1M
assert_eq "$(stat -c %s old.raw)" 1048576 "truncated data file size"
cmp -s old.raw <(head -c 1M /dev/zero) || fail "old data file content kept"

same_error "compat=0.10" 1 create -q -f qcow2 \
    -o data_file=x.raw,compat=0.10 e.qcow2 1M
same_error "raw without data_file" 1 create -q -f qcow2 \
    -o data_file_raw=on e.qcow2 1M
qemu-img create -q -f raw base.raw 1M
same_error "raw with backing" 1 create -q -f qcow2 -b base.raw -F raw \
    -o data_file=x.raw,data_file_raw=on e.qcow2 1M
[ ! -e e.qcow2 ] || fail "a refused create left e.qcow2"

# ---- qemu-io writes, vimg reads -------------------------------------------
for raw in off on; do
    rm -rf v q && mkdir v q
    (cd q && expect_ok qemu-img create -q -f qcow2 \
        -o data_file=d.raw,data_file_raw=$raw i.qcow2 4M &&
        expect_ok qemu-io -f qcow2 "${IOARGS[@]}" i.qcow2) || exit 1
    (cd v && expect_ok "$VIMG" create -q -f qcow2 \
        -o data_file=d.raw,data_file_raw=$raw i.qcow2 4M &&
        expect_ok "$VIMG" io -f qcow2 "${IOARGS[@]}" i.qcow2) || exit 1
    cd q || exit 1
    expect_ok "$VIMG" convert -O raw i.qcow2 ../vq.raw
    expect_ok qemu-img convert -O raw i.qcow2 ../qq.raw
    assert_same_file ../vq.raw ../qq.raw "raw=$raw: vimg reads qemu's image"
    same_as_qemu map --output=json i.qcow2
    same_as_qemu map i.qcow2
    grep -q 'd\.raw$' "$LAST_OUT" || fail "map names the data file"
    same_as_qemu check i.qcow2
    same_as_qemu check --output=json i.qcow2
    same_as_qemu info i.qcow2
    run_cmd "$VIMG" info --output=json i.qcow2
    info_json <"$LAST_OUT" >v.json
    run_cmd qemu-img info --output=json i.qcow2
    info_json <"$LAST_OUT" >q.json
    assert_same_file v.json q.json "raw=$raw info json"
    grep -q '"data-file": "d.raw"' v.json || fail "info json data-file"
    grep -q "\"data-file-raw\": $([ $raw = on ] && echo true || echo false)" \
        v.json || fail "info json data-file-raw"
    if [ $raw = on ]; then
        assert_same_file d.raw ../qq.raw "qemu's raw data file is the guest"
    fi
    cd .. || exit 1

    # ---- vimg io wrote the same: qemu reads it ----------------------------
    cd v || exit 1
    qcheck i.qcow2
    expect_ok qemu-img compare i.qcow2 ../q/i.qcow2
    expect_ok qemu-img convert -O raw i.qcow2 ../qv.raw
    assert_same_file ../qv.raw ../qq.raw "raw=$raw: qemu reads vimg's image"
    assert_same_file d.raw ../q/d.raw "raw=$raw: same data file as qemu's"
    if [ $raw = on ]; then
        assert_same_file d.raw ../qq.raw "vimg's raw data file is the guest"
    fi
    # More vimg writes over qemu's image, read back by qemu-io (from q/:
    # the data file name is relative to the working directory).
    (cd ../q && expect_ok "$VIMG" io -c 'write -P 0xa5 65024 70000' \
        -c 'write -z 1048576 65536' i.qcow2) || exit 1
    (cd ../q && expect_ok qemu-io -f qcow2 -c 'read -P 0xa5 65024 70000' \
        -c 'read -P 0 1048576 65536' i.qcow2) || exit 1
    (cd ../q && qcheck i.qcow2) || exit 1
    cd .. || exit 1
done

# ---- extended L2 with a data file: subclusters ---------------------------
rm -rf v q && mkdir v q
for d in v q; do
    tool=qemu-img io=qemu-io
    [ $d = v ] && tool=$VIMG io="$VIMG io"
    # shellcheck disable=SC2086
    (cd $d && expect_ok "$tool" create -q -f qcow2 \
        -o data_file=d.raw,extended_l2=on i.qcow2 4M &&
        expect_ok $io -f qcow2 "${IOARGS[@]}" i.qcow2) || exit 1
done
(cd v && qcheck i.qcow2 && expect_ok qemu-img compare i.qcow2 ../q/i.qcow2 &&
    same_as_qemu map --output=json i.qcow2 &&
    same_as_qemu check i.qcow2) || exit 1
(cd q && same_as_qemu map --output=json i.qcow2 &&
    expect_ok "$VIMG" compare i.qcow2 ../v/i.qcow2) || exit 1
assert_same_file v/d.raw q/d.raw "extended L2: same data file"

# ---- a backing file with a data file: copy-on-write into the data file ----
qemu-img create -q -f raw bk.raw 1M
expect_ok qemu-io -f raw -c 'write -P 0x33 0 1M' bk.raw
expect_ok "$VIMG" create -q -f qcow2 -b bk.raw -F raw -o data_file=ov.raw \
    ov.qcow2
expect_ok qemu-img create -q -f qcow2 -b bk.raw -F raw -o data_file=oq.raw \
    oq.qcow2
W=(-c 'write -P 0x44 70k 4k' -c 'write -z 300k 8k' -c 'write -P 5 1020k 4k')
expect_ok "$VIMG" io "${W[@]}" ov.qcow2
expect_ok qemu-io "${W[@]}" oq.qcow2
qcheck ov.qcow2
expect_ok qemu-img compare ov.qcow2 oq.qcow2
expect_ok "$VIMG" compare oq.qcow2 ov.qcow2
assert_same_file ov.raw oq.raw "backing: same data file as qemu's"
same_as_qemu map --output=json oq.qcow2

# ---- measure: a data file changes nothing ---------------------------------
same_as_qemu measure -O qcow2 -o data_file=x.raw --size 1G
same_as_qemu measure -O qcow2 \
    -o data_file=x.raw,data_file_raw=on --size 64M
[ ! -e x.raw ] || fail "measure created the data file"

# ---- convert --------------------------------------------------------------
random_file src.raw 2
expect_ok "$VIMG" convert -O qcow2 -o data_file=c.raw src.raw c.qcow2
qcheck c.qcow2
expect_ok qemu-img compare src.raw c.qcow2
assert_same_file c.raw src.raw "convert: data at the guest offsets"
expect_ok qemu-img convert -O qcow2 -o data_file=qc.raw,data_file_raw=on \
    src.raw qc.qcow2
expect_ok "$VIMG" compare src.raw qc.qcow2
expect_ok "$VIMG" convert -O qcow2 qc.qcow2 plain.qcow2
expect_ok qemu-img compare src.raw plain.qcow2
run_cmd "$VIMG" convert -c -O qcow2 -o data_file=cc.raw src.raw cc.qcow2
assert_eq "$LAST_RC" 1 "convert -c to a data-file image"
grep_last "Operation not supported" stderr

# ---- resize ---------------------------------------------------------------
for raw in off on; do
    rm -f r.qcow2 r.raw
    expect_ok "$VIMG" create -q -f qcow2 \
        -o data_file=r.raw,data_file_raw=$raw r.qcow2 1M
    expect_ok "$VIMG" io -c 'write -P 7 0 1M' r.qcow2
    expect_ok "$VIMG" resize r.qcow2 3M
    assert_eq "$(stat -c %s r.raw)" 3145728 "grown data file (raw=$raw)"
    qcheck r.qcow2
    expect_ok qemu-io -c 'read -P 7 0 1M' -c 'read -P 0 1M 2M' \
        -c 'write -P 8 2M 1M' r.qcow2
    if [ $raw = on ]; then
        run_cmd qemu-img map --output=json r.qcow2
        grep_last '"start": 0, "length": 3145728, "depth": 0, "present": true, "zero": false, "data": true, "offset": 0'
        expect_ok qemu-img convert -O raw r.qcow2 r-guest.raw
        assert_same_file r.raw r-guest.raw "raw data file after resize"
    fi
    expect_ok "$VIMG" resize --shrink r.qcow2 2M
    assert_eq "$(stat -c %s r.raw)" 2097152 "shrunk data file (raw=$raw)"
    qcheck r.qcow2
done

# ---- amend ----------------------------------------------------------------
rm -rf v q && mkdir v q
for d in v q; do
    (cd $d && expect_ok qemu-img create -q -f qcow2 \
        -o data_file=d.raw,data_file_raw=on i.qcow2 1M &&
        cp d.raw renamed-data.raw) || exit 1
done
(cd v && expect_ok "$VIMG" amend -o data_file=renamed-data.raw i.qcow2 &&
    expect_ok "$VIMG" amend -o data_file_raw=off i.qcow2) || exit 1
(cd q && expect_ok qemu-img amend -o data_file=renamed-data.raw i.qcow2 &&
    expect_ok qemu-img amend -o data_file_raw=off i.qcow2) || exit 1
assert_same_file v/i.qcow2 q/i.qcow2 "amend data_file, data_file_raw=off"
(cd v && qcheck i.qcow2 && same_as_qemu info i.qcow2) || exit 1
cd v || exit 1
same_error "amend data_file_raw=on" 1 amend -o data_file_raw=on i.qcow2
expect_ok "$VIMG" create -q -f qcow2 n.qcow2 1M
same_error "amend data_file without one" 1 amend -o data_file=x n.qcow2
cd .. || exit 1

# ---- LUKS inside qcow2 with a data file ----------------------------------
LO="encrypt.format=luks,encrypt.key-secret=s0"
expect_ok "$VIMG" create -q -f qcow2 --object "$SECRET" \
    -o "$LO,encrypt.iter-count=1000,data_file=lv.raw" lv.qcow2 4M
qemu_retry qemu-img create -q -f qcow2 --object "$SECRET" \
    -o "$LO,encrypt.iter-time=10,data_file=lq.raw" lq.qcow2 4M ||
    fail "qemu-img create luks with a data file"
for img in lv lq; do
    expect_ok qemu-io --object "$SECRET" --image-opts "${IOARGS[@]}" \
        "driver=qcow2,file.filename=$img.qcow2,encrypt.key-secret=s0"
done
expect_ok "$VIMG" io --object "$SECRET" --image-opts \
    -c 'write -P 0x5a 3M 100000' \
    "driver=qcow2,file.filename=lv.qcow2,encrypt.key-secret=s0"
expect_ok qemu-io --object "$SECRET" --image-opts \
    -c 'write -P 0x5a 3M 100000' \
    "driver=qcow2,file.filename=lq.qcow2,encrypt.key-secret=s0"
run_cmd qemu-img check --object "$SECRET" --image-opts \
    "driver=qcow2,file.filename=lv.qcow2,encrypt.key-secret=s0"
assert_eq "$LAST_RC" 0 "qemu-img check of vimg's LUKS data-file image"
for img in lv lq; do
    expect_ok "$VIMG" convert --object "$SECRET" --image-opts \
        "driver=qcow2,file.filename=$img.qcow2,encrypt.key-secret=s0" \
        -O raw "v-$img.raw"
    expect_ok qemu-img convert --object "$SECRET" --image-opts \
        "driver=qcow2,file.filename=$img.qcow2,encrypt.key-secret=s0" \
        -O raw "q-$img.raw"
    assert_same_file "v-$img.raw" "q-$img.raw" "LUKS $img: vimg and qemu"
    if grep -qa "$(printf 'ZZZZZZZZZZZZZZZZ')" "$img.raw"; then
        fail "plaintext in the encrypted data file $img.raw"
    fi
done
assert_same_file v-lv.raw v-lq.raw "LUKS: same guest content"

# ---- errors and file names ------------------------------------------------
expect_ok "$VIMG" create -q -f qcow2 -o data_file=m.raw m.qcow2 1M
expect_ok "$VIMG" io -c 'write -P 9 0 4096' m.qcow2
mv m.raw moved.raw
expect_error 1 "Could not open 'm.raw': No such file or directory" \
    "$VIMG" io -c 'read 0 512' m.qcow2
expect_ok "$VIMG" info m.qcow2          # metadata only, as qemu-img info
expect_error 1 "Could not open 'm.raw'" "$VIMG" check m.qcow2
expect_ok "$VIMG" io --image-opts -c 'read -P 9 0 4096' \
    driver=qcow2,file.filename=m.qcow2,data-file.filename=moved.raw
same_as_qemu info --image-opts \
    driver=qcow2,file.filename=m.qcow2,data-file.filename=moved.raw
# data-file.filename on an image without a data file: accepted by info,
# refused by I/O opens (qemu's message).
expect_ok "$VIMG" create -q -f qcow2 n.qcow2 1M
same_as_qemu info --image-opts \
    driver=qcow2,file.filename=n.qcow2,data-file.filename=moved.raw
expect_error 1 "'data-file' can only be set for images with an external data file" \
    "$VIMG" io -c 'read 0 512' --image-opts \
    driver=qcow2,file.filename=n.qcow2,data-file.filename=moved.raw
# A data file naming the image itself is refused (vimg), not followed.
expect_error 1 "the data file is the image file itself" \
    "$VIMG" create -q -f qcow2 -o data_file=self.qcow2 self.qcow2 1M
[ ! -e self.qcow2 ] || fail "refused create left self.qcow2"
expect_ok "$VIMG" create -q -f qcow2 -o data_file=s2.raw s2.qcow2 1M
expect_ok "$VIMG" amend -o data_file=s2.qcow2 s2.qcow2
cp s2.qcow2 s2.before
expect_error 1 "the data file is the image file itself" \
    "$VIMG" io -c 'write 0 512' s2.qcow2
assert_same_file s2.qcow2 s2.before "refused image untouched"
# Relative names are used as given (the working directory), as qemu 7.2.
mkdir -p sub
expect_ok "$VIMG" create -q -f qcow2 -o data_file=sd.raw sub/s.qcow2 1M
[ -e sd.raw ] && [ ! -e sub/sd.raw ] || fail "data file not made in cwd"
expect_ok "$VIMG" io -c 'write -P 3 0 4k' sub/s.qcow2
expect_ok qemu-io -c 'read -P 3 0 4k' sub/s.qcow2
# Snapshots are refused, with qemu's wording; vimg reencrypt too.
same_error "snapshot" 1 snapshot -c s1 sub/s.qcow2
expect_error 1 "Images with an external data file cannot be re-encrypted" \
    "$VIMG" reencrypt --object "$SECRET" -o encrypt.key-secret=s0 lv.qcow2

# Hand-made defects on a qemu-made image (64 KiB clusters; L2 at 0x40000).
qemu-img create -q -f qcow2 -o data_file=h.raw h.qcow2 1M
expect_ok qemu-io -c 'write -P 1 0 128k' -c 'write -P 2 512k 64k' h.qcow2
poke()
{
    printf "$3" | dd of="$1" bs=1 seek=$(($2)) conv=notrunc status=none
}
cp h.qcow2 leak.qcow2
poke leak.qcow2 0x20008 '\x00\x02'            # L2 table refcount 2
same_as_qemu check leak.qcow2
same_as_qemu check --output=json leak.qcow2
expect_rc 0 "$VIMG" check -r leaks leak.qcow2
qcheck leak.qcow2
expect_ok qemu-img compare leak.qcow2 h.qcow2
cp h.qcow2 comp.qcow2
poke comp.qcow2 0x40008 '\x40\x00\x00\x00\x00\x0a\x00\x00'
same_as_qemu check comp.qcow2
expect_error 1 "Compressed cluster entry found in image with external data file" \
    "$VIMG" dd if=comp.qcow2 of=out.raw
expect_error 1 "Input/output error" "$VIMG" convert -O raw comp.qcow2 out.raw
cp h.qcow2 moved.qcow2
poke moved.qcow2 0x40008 '\x80\x00\x00\x00\x00\x0a\x00\x00'
same_as_qemu check moved.qcow2
expect_error 1 "does not match guest cluster offset" \
    "$VIMG" dd if=moved.qcow2 of=out.raw
cp h.qcow2 nocopied.qcow2
poke nocopied.qcow2 0x40008 '\x00\x00\x00\x00\x00\x01\x00\x00'
same_as_qemu check nocopied.qcow2
# A name of 5000 bytes (qemu-img info shows it; vimg refuses it clearly).
python3 - <<'PY'
import struct
with open("h.qcow2", "rb") as f:
    img = bytearray(f.read())
name = b"n" * 5000
# header_length 112: the data file extension is the first one.
ext = struct.pack(">II", 0x44415441, len(name)) + name + bytes(-len(name) % 8)
old = 8 + 8                         # the extension naming "h.raw"
img[0x70:0x10000] = ext + img[0x70 + old:0x10000 - len(ext) + old]
assert len(img) % 0x10000 == 0
with open("long.qcow2", "wb") as f:
    f.write(img)
PY
expect_error 1 "Data file name too long" "$VIMG" info long.qcow2
cmp -s h.qcow2 long.qcow2 && fail "long.qcow2 was not patched"
exit 0
