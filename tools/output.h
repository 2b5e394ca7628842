/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Output of the vimg tool in qemu-img's exact formats: JSON printed the way
 * QEMU 7.2 prints a QDict (keys in hash-bucket order, 4-space indentation,
 * qemu's string escaping), the compact form used in json:{...} names, the
 * human-readable "qemu-img info" layout with its "Snapshot list:" table and
 * qemu's size_to_str() rendering ("64 MiB").
 */
#ifndef VIMG_TOOLS_OUTPUT_H
#define VIMG_TOOLS_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct json_object;

/**
 * qdict_bucket - the bucket (0..511) of @key in QEMU 7.2's QDict hash table;
 * QEMU prints a dictionary in ascending bucket order, and within a bucket the
 * most recently inserted key first.
 */
unsigned qdict_bucket(const char *key);

/**
 * qdict_order - the keys of a json-c object in QDict print order.
 * @obj: a json object (its insertion order stands for qemu's).
 * @n: receives the number of keys.
 * Return: malloc'd array of key pointers owned by @obj (caller frees the
 *   array only), NULL if the object is empty or on allocation failure.
 */
const char **qdict_order(struct json_object *obj, size_t *n);

/**
 * qjson_to_string - serialise @obj as qemu does.
 * @pretty: true for qemu-img's --output=json layout (4-space indent, one
 *   member per line), false for the one-line form of json:{...} names
 *   (", " and ": " separators).
 * Return: malloc'd string or NULL.
 */
char *qjson_to_string(struct json_object *obj, bool pretty);

/**
 * qjson_print - print @obj to stdout in qemu-img's --output=json layout,
 * with a final newline.
 * Return: 0, or -ENOMEM (nothing printed).
 */
int qjson_print(struct json_object *obj);

/**
 * size_to_str - qemu's human size: three significant digits and a binary
 * unit, switching unit once the value reaches 1000 ("1000 KiB" never shows;
 * it is "0.977 MiB").
 * @buf: output buffer.
 * @len: its size (32 bytes is enough).
 * Return: @buf.
 */
char *size_to_str(char *buf, size_t len, uint64_t val);

/**
 * print_info_human - print an ImageInfo object like "qemu-img info".
 * @f: stream.
 * @info: the object from vimg_image_info().
 * @name: the name to show after "image:".
 */
void print_info_human(FILE *f, struct json_object *info, const char *name);

/**
 * print_info_format_specific - print the "Format specific information:"
 * block of qemu-img's human info (the last part of print_info_human());
 * nothing when the image has no format-specific data.  qemu-io's "info"
 * prints the same block.
 * @f: stream.
 * @info: the object from vimg_image_info().
 */
void print_info_format_specific(FILE *f, struct json_object *info);

/**
 * print_snapshot_header - print the "Snapshot list:" title and column
 * header of qemu-img's snapshot table.
 * @f: stream.
 */
void print_snapshot_header(FILE *f);

/**
 * print_snapshot_row - print one row of the snapshot table in qemu's column
 * layout (local time, so tests set TZ).
 * @f: stream.
 * @id: snapshot id.
 * @name: snapshot tag.
 * @vm_state: VM state size in bytes.
 * @date_sec: creation time, seconds since the epoch.
 * @clock_nsec: guest clock in nanoseconds.
 * @icount: instruction count, or -1 for none (empty column).
 */
void print_snapshot_row(FILE *f, const char *id, const char *name,
                        uint64_t vm_state, int64_t date_sec,
                        uint64_t clock_nsec, int64_t icount);

/**
 * print_snapshot_table - print qemu-img's "Snapshot list:" table from the
 * "snapshots" array of an ImageInfo object.
 * @f: stream.
 * @snapshots: the array (NULL or empty: nothing is printed).
 */
void print_snapshot_table(FILE *f, struct json_object *snapshots);

#endif /* VIMG_TOOLS_OUTPUT_H */
