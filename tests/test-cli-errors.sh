#!/usr/bin/env bash
# SPDX-License-Identifier: LGPL-2.1-or-later
#
# Command-line errors: for each bad invocation vimg must exit with
# qemu-img's code and print qemu-img's messages (program name normalised),
# and must not create the target file.  A few key messages are asserted
# literally as well.

# shellcheck source=functions.sh
source "${SRCDIR:-$(dirname "$0")}/functions.sh"

requires_vimg
requires qemu-img

touch e.raw
while IFS= read -r args; do
    [ -n "$args" ] || continue
    # shellcheck disable=SC2086
    same_as_qemu $args
    [ ! -e x.raw ] && [ ! -e x.luks ] || fail "'$args' created a file"
    echo "ok [$args] rc $LAST_RC: $(head -1 "$LAST_ERR")"
done <<LIST
foo
create
create -f raw
create -f raw x.raw
create -f foo x.raw 1M
create -f raw x.raw 1Q
create -f raw x.raw -1
create -f raw -o size=abc x.raw
create -f raw -o bogus=1 x.raw 1M
create -f raw x.raw 1M 2M
create -f luks x.luks 1M
create -f luks -o key-secret=s0 x.luks 1M
create -f luks --object $SECRET -o key-secret=s0,cipher-alg=des x.luks 1M
create -f luks --object $SECRET -o key-secret=s0,cipher-alg=cast5-128,cipher-mode=xts x.luks 1M
create -f luks --object $SECRET -o key-secret=s0,hash-alg=foo x.luks 1M
create -f luks --object $SECRET -o key-secret=s0,ivgen-alg=foo x.luks 1M
create -f luks --object $SECRET -o key-secret=s0,cipher-alg=aes-128,ivgen-alg=essiv,ivgen-hash-alg=sha1 x.luks 1M
info
info missing.raw
info -f foo e.raw
info --output=xml e.raw
info --image-opts driver=raw
info --object secret,id=s0 e.raw
info --object secret,id=s0,data=x,bogus=y e.raw
--object secret,id=s0,data=x info e.raw
convert
convert e.raw
convert -O foo e.raw x.raw
convert -f luks e.raw x.raw
convert -O raw missing.raw x.raw
dd
dd if=e.raw
compare
compare e.raw
LIST

# Literal checks of the most visible messages.
expect_error 1 "Unknown file format 'foo'" "$VIMG" create -f foo x.raw 1M
expect_error 1 "x.raw: Image creation needs a size parameter" "$VIMG" create -f raw x.raw
expect_error 1 "Parameter 'key-secret' is required for cipher" \
    "$VIMG" create -f luks x.luks 1M
expect_error 1 "Must specify both input and output files" "$VIMG" dd if=e.raw
expect_error 1 "--output must be used with human or json as argument." \
    "$VIMG" info --output=xml e.raw
[ ! -e x.raw ] && [ ! -e x.luks ] || fail "a failing command created a file"
exit 0
