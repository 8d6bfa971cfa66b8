/*
 * libdiana - the key file lookup and the leak scanner: checks that
 * de-identified outputs carry no protected value. See doc/deid-scan.md.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_SCAN_H
#define DIANA_SCAN_H

#include <diana/common.h>
#include <diana/dataset.h>

DIANA_BEGIN_DECL

/**
 * Look up a key file row (re-identification): the first row whose column
 * `column` (e.g. "PseudoPatientID", "PseudoAccessionNumber",
 * "OriginalAccessionNumber") equals `value`. On success `*row_json` is a
 * JSON object of the row's columns (release with diana_free()).
 * Errors: DIANA_ENOTFOUND (no such row), DIANA_EINVAL (unknown column),
 * DIANA_EIO. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_key_lookup(const char *key_file, const char *column, const char *value,
                               char **row_json) DIANA_NOEXCEPT;

/* ------------------------------------------------------------------------ */
/* Leak scanner                                                              */
/* ------------------------------------------------------------------------ */

/**
 * A leak scanner: a set of protected values (original names, IDs, dates,
 * UIDs...) searched for in de-identified outputs. Fails closed: anything it
 * cannot read is reported as a failure, not skipped. Opaque.
 * Thread safety: once filled, scans may run concurrently.
 */
typedef struct diana_scanner diana_scanner;

/** Create an empty scanner. Thread safety: safe. Since: 0.1 */
DIANA_API int diana_scanner_new(diana_scanner **out) DIANA_NOEXCEPT;

/** Release a scanner. NULL is a no-op. Since: 0.1 */
DIANA_API void diana_scanner_free(diana_scanner *scanner) DIANA_NOEXCEPT;

/**
 * Add one protected value (UTF-8). Values shorter than 3 bytes are refused
 * with DIANA_EINVAL (they would match everywhere). Person names are also
 * searched component by component and in "Given Family" order.
 * Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_add_value(diana_scanner *scanner, const char *value) DIANA_NOEXCEPT;

/**
 * Add every identifying value of an original dataset: the values of the
 * attributes that the Basic Profile removes, empties or replaces (names,
 * IDs, dates, UIDs, addresses, free text...), at any depth.
 * Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_add_dataset(diana_scanner *scanner, const diana_dataset *original) DIANA_NOEXCEPT;

/** Add the "Original*" columns of every row of a key file. Thread safety: handle. Since: 0.1 */
DIANA_API int diana_scanner_add_key_file(diana_scanner *scanner, const char *key_file) DIANA_NOEXCEPT;

/**
 * Scan one output file: its path name, the file meta, every element value
 * (decoded text and raw bytes) except Pixel Data, at any depth.
 * Returns 0 when nothing was found; DIANA_ELEAK when a protected value
 * survives, with `*report` (if not NULL; release with diana_free()) a JSON
 * array of findings [{"where": "<tag path or 'file name'>", "kind": "..."}]
 * that names where, never the value; DIANA_EDICOM when the file cannot be
 * parsed (fail closed). Thread safety: safe on a filled scanner. Since: 0.1
 */
DIANA_API int diana_scanner_scan_file(const diana_scanner *scanner, const char *path, char **report) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_SCAN_H */
