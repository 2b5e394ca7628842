#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Hostile LUKS2 volumes (tests/images/hostile/luks2/, make-luks2.sh) against
# the real cryptsetup and vimg.  Each file is copied to a scratch directory
# and, if shorter, extended with zeroes to 100 KiB (the valid layout's data
# offset + 4 KiB) so cryptsetup's "device too small" check does not hide
# the defect; both tools see the same bytes.  EXPECTED there, tab-separated:
#   FILE CS_DUMP CS_OPEN INFO_RC INFO_MSG CHECK_RC CHECK_MSG CONV_RC CONV_MSG
# CS_DUMP / CS_OPEN: exit status of `cryptsetup luksDump` and `cryptsetup
# open --test-passphrase` (password "pw") recorded from cryptsetup 2.6.1
# ('-': not run, too slow); the rest: `vimg info -f luks`, `vimg check -f
# luks` and `vimg convert` (key "pw", --image-opts) to raw: exit status and
# a message (substring of stdout+stderr, '-': none required).
# Besides the recorded values, vimg must agree with cryptsetup: a header
# cryptsetup refuses to dump is refused by vimg info; a volume cryptsetup
# cannot unlock is not converted; one it unlocks converts to the plaintext
# make-luks2.sh wrote.  A signal, timeout, sanitizer report, output file
# after a failure or changed input is always a failure.
#
# Usage: VIMG=build/tools/vimg fuzz/check-hostile-luks2.sh [DIR]
# Exit status 0 if everything passed, 77 if vimg is missing.
set -u

. "$(dirname "$0")/hostile-lib.sh"
dir=${1:-$here/../tests/images/hostile/luks2}
hostile_init
have_cs=1
if ! command -v cryptsetup >/dev/null 2>&1; then
    have_cs=0
    echo "# cryptsetup not installed: its verdicts are taken from EXPECTED"
fi
printf pw > "$work/pw"
HOSTILE_NO_OUT_RAW=1 HOSTILE_SHOW=5

while IFS=$'\t' read -r file dump open irc imsg crc cmsg vrc vmsg; do
    case $file in
        ''|'#'*) continue ;;
    esac
    if [ ! -r "$dir/$file" ]; then
        fail "$file: file missing"
        continue
    fi
    img=$work/img.luks
    cp "$dir/$file" "$img"
    [ "$(stat -c %s "$img")" -ge 102400 ] || truncate -s 102400 "$img"
    before=$(sha256sum < "$img")

    # The recorded verdicts must be consistent with vimg's.
    if [ "$dump" != 0 ] && [ "$irc" = 0 ]; then
        fail "$file: cryptsetup refuses the header but vimg info is expected to accept it"
    fi
    if [ "$open" != - ] && [ "$open" != 0 ] && [ "$vrc" = 0 ]; then
        fail "$file: cryptsetup cannot unlock but vimg convert is expected to succeed"
    fi
    if [ "$open" = 0 ] && [ "$vrc" != 0 ]; then
        fail "$file: cryptsetup unlocks but vimg convert is expected to fail"
    fi

    if [ $have_cs = 1 ]; then
        timeout 60 cryptsetup luksDump "$img" >/dev/null 2>&1
        rc=$?
        [ "$rc" = "$dump" ] && ok "cryptsetup luksDump $file: $rc" ||
            fail "cryptsetup luksDump $file: exit status $rc, recorded $dump"
        if [ "$open" != - ]; then
            timeout 60 cryptsetup open --test-passphrase --key-file "$work/pw" \
                "$img" >/dev/null 2>&1
            rc=$?
            [ "$rc" = "$open" ] && ok "cryptsetup open --test-passphrase $file: $rc" ||
                fail "cryptsetup open --test-passphrase $file: exit status $rc, recorded $open"
        fi
    fi

    hostile_run "info $file" "$irc" "$imsg" "$VIMG" info -f luks img.luks
    hostile_run "check $file" "$crc" "$cmsg" "$VIMG" check -f luks img.luks
    if hostile_run "convert $file" "$vrc" "$vmsg" "$VIMG" convert \
            --object "secret,id=s0,file=$work/pw" --image-opts \
            "driver=luks,key-secret=s0,file.filename=img.luks" -O raw out.raw &&
            [ "$vrc" = 0 ]; then
        if head -c 30 "$work/out.raw" | grep -q 'vimg hostile luks2 sector   0'; then
            ok "convert $file: plaintext as written by make-luks2.sh"
        else
            fail "convert $file: wrong plaintext"
        fi
    fi
    [ "$(sha256sum < "$img")" = "$before" ] || fail "$file: image was modified"
done < "$dir/EXPECTED"

hostile_summary
