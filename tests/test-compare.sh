#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# vimg compare against qemu-img compare on the same inputs: identical
# images, a content mismatch (qemu reports the 512-byte sector start),
# size mismatches with and without -s (strict), raw against luks (both
# directions, with --object/--image-opts), and errors (rc 2).  Every case
# must give the same exit code, stdout and stderr as qemu-img; the key
# messages are also asserted literally.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img

random_file a.raw 2
cp a.raw b.raw
printf 'X' | dd of=b.raw bs=1 seek=1234567 conv=notrunc status=none
head -c 1M a.raw >short.raw
{ cat a.raw; head -c 1M /dev/zero; } >long.raw
cp long.raw longnz.raw
printf 'Y' | dd of=longnz.raw bs=1 seek=$((2 * 1048576 + 70000)) conv=notrunc status=none

expect_rc 0 "$VIMG" compare a.raw a.raw
assert_eq "$(cat "$LAST_OUT")" "Images are identical." "identical"
expect_rc 1 "$VIMG" compare a.raw b.raw
assert_eq "$(cat "$LAST_OUT")" "Content mismatch at offset 1234432!" "mismatch"
expect_rc 1 "$VIMG" compare -s a.raw long.raw
grep_last "Strict mode: Image size mismatch!"
expect_rc 0 "$VIMG" compare a.raw long.raw
grep_last "Warning: Image size mismatch!"
expect_rc 2 "$VIMG" compare a.raw missing.raw
grep_last "Could not open 'missing.raw'" stderr

for args in "a.raw a.raw" "a.raw b.raw" "b.raw a.raw" "a.raw short.raw" \
            "short.raw a.raw" "a.raw long.raw" "long.raw a.raw" \
            "a.raw longnz.raw" "-s a.raw long.raw" "-s a.raw a.raw" \
            "-s a.raw b.raw" "-f raw -F raw a.raw b.raw" "a.raw missing.raw" \
            "missing.raw a.raw" "-f luks a.raw a.raw" "-q a.raw b.raw"; do
    # shellcheck disable=SC2086
    same_as_qemu compare $args
    echo "ok compare $args (rc $LAST_RC)"
done

# raw against luks (vimg writes the luks image)
vimg_create_luks a.luks 2M
expect_ok "$VIMG" convert --object "$SECRET" -n -f raw a.raw \
    --target-image-opts "$(luks_opts a.luks)"
for args in "a.raw" "b.raw" "long.raw" "short.raw"; do
    same_as_qemu compare --object "$SECRET" \
        --image-opts "driver=raw,file.filename=$args" "$(luks_opts a.luks)"
    echo "ok compare $args vs luks (rc $LAST_RC)"
    case $args in
        a.raw|long.raw) assert_eq "$LAST_RC" 0 "compare $args vs luks" ;;
        *) assert_eq "$LAST_RC" 1 "compare $args vs luks" ;;
    esac
done
expect_rc 1 "$VIMG" compare --object "$SECRET" --image-opts \
    "driver=raw,file.filename=b.raw" "$(luks_opts a.luks)"
grep_last "Content mismatch at offset 1234432!"
same_as_qemu compare --object "$SECRET" --image-opts -F raw "$(luks_opts a.luks)" a.raw
assert_eq "$LAST_RC" 2 "--image-opts with -F"
grep_last "--image-opts and --format are mutually exclusive" stderr
same_as_qemu compare --object "$SECRET" -f raw --image-opts a.raw a.raw
printf bad >bad.pw
same_as_qemu compare --object "secret,id=s0,file=$TEST_TMP/bad.pw" --image-opts \
    "$(luks_opts a.luks)" "driver=raw,file.filename=a.raw"
assert_eq "$LAST_RC" 2 "wrong password in compare"
grep_last "Invalid password, cannot unlock any keyslot" stderr
exit 0
