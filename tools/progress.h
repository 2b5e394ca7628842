/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The -p progress indicator of the vimg tool, in qemu-img's format:
 * "    (NN.NN/100%)" followed by a carriage return, written to stdout.  It is
 * redrawn only when the integer percentage changes, so long copies do not
 * flood a terminal or a log file.
 */
#ifndef VIMG_TOOLS_PROGRESS_H
#define VIMG_TOOLS_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

/**
 * struct cli_progress - progress state.
 * @enabled: -p was given (and not -q).
 * @last: last integer percentage drawn, -1 before the first draw.
 * @base: units already done by earlier parts (multi-source convert).
 * @total: total units of the whole operation (0: use the callback's).
 */
struct cli_progress {
    bool enabled;
    int last;
    uint64_t base;
    uint64_t total;
};

/** progress_start - draw "(0.00/100%)" when @enabled. */
void progress_start(struct cli_progress *p, bool enabled);

/**
 * progress_cb - vimg_progress_fn adaptor.
 * @opaque: the struct cli_progress.
 * @done: units done (relative to p->base).
 * @total: units of this part (used when p->total is 0).
 * Return: 0 (never cancels).
 */
int progress_cb(void *opaque, uint64_t done, uint64_t total);

/** progress_complete - draw "(100.00/100%)" unless already shown. */
void progress_complete(struct cli_progress *p);

/**
 * progress_finish - end the progress line.
 * Draws 100% if not yet shown, then (with @redraw_full, as convert does)
 * once more, then the newline.
 */
void progress_finish(struct cli_progress *p, bool redraw_full);

#endif /* VIMG_TOOLS_PROGRESS_H */
