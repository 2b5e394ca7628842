// SPDX-License-Identifier: LGPL-2.1-or-later
/*
 * Progress indicator of the vimg tool (see progress.h).  qemu-img prints the
 * percentage with two decimals and a trailing carriage return, and finishes
 * with a newline; the same text is produced here, but only when the integer
 * percentage moves.
 */
#include <stdio.h>

#include "progress.h"

static void
draw(double pct)
{
    printf("    (%.2f/100%%)\r", pct);
    fflush(stdout);
}

void
progress_start(struct cli_progress *p, bool enabled)
{
    p->enabled = enabled;
    p->last = 0;
    p->base = 0;
    p->total = 0;
    if (enabled) {
        draw(0.0);
    }
}

int
progress_cb(void *opaque, uint64_t done, uint64_t total)
{
    struct cli_progress *p = opaque;
    uint64_t all = p->total ? p->total : total;
    double pct;
    int ipct;

    if (!p->enabled) {
        return 0;
    }
    done += p->base;
    if (all == 0 || done >= all) {
        pct = 100.0;
    } else {
        pct = (double)done * 100.0 / (double)all;
    }
    ipct = (int)pct;
    if (ipct != p->last) {
        p->last = ipct;
        draw(pct);
    }
    return 0;
}

void
progress_complete(struct cli_progress *p)
{
    if (p->enabled && p->last != 100) {
        p->last = 100;
        draw(100.0);
    }
}

void
progress_finish(struct cli_progress *p, bool redraw_full)
{
    if (!p->enabled) {
        return;
    }
    progress_complete(p);
    if (redraw_full) {
        draw(100.0);
    }
    putchar('\n');
    fflush(stdout);
    p->enabled = false;
}
