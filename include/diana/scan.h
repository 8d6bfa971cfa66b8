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
 * Tell the scanner which options (DIANA_DEID_* bits of profile.h) the
 * outputs were made with, so that the values those options retain on
 * purpose are not findings: diana_scanner_add_dataset() does not protect
 * the values of attributes the profile keeps under these options (e.g.
 * dates with DIANA_DEID_RETAIN_LONG_FULL_DATES, device serial numbers with
 * DIANA_DEID_RETAIN_DEVICE_IDENTITY, UIDs with DIANA_DEID_RETAIN_UIDS, the
 * safe private elements with DIANA_DEID_RETAIN_SAFE_PRIVATE) and
 * diana_scanner_add_key_file() skips the Original* columns they keep (Study
 * Date, Study Instance UID). Everything else is protected as before, and
 * diana_scanner_add_value() values always are. Default: 0 (the basic
 * profile). Must be called before any value is added.
 * Errors: DIANA_EINVAL (unknown bits, both Retain Long options, values
 * already added). Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_set_options(diana_scanner *scanner, uint32_t deid_options) DIANA_NOEXCEPT;

/**
 * Tell the scanner about a per-attribute override of the outputs' profile
 * (`key` and `action` as in diana_profile_set_action(), the replacement
 * value is not needed): with DIANA_ACTION_KEEP the attribute's original
 * values are not protected from originals and key files; REMOVE, EMPTY and
 * REPLACE protect them even where an option would retain them;
 * DIANA_ACTION_DEFAULT drops the override. Must be called before any value
 * is added. Errors: DIANA_EINVAL. Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_set_action(diana_scanner *scanner, const char *key, int action) DIANA_NOEXCEPT;

/**
 * Add one protected value (UTF-8). Values shorter than 3 bytes (after
 * trimming spaces) are refused with DIANA_EINVAL (they would match
 * everywhere), as is text that is not UTF-8. A value with '^' is a person
 * name ("Family^Given"): also searched component by component (components
 * of 3 bytes or more) and as "Given Family" and "Family Given". A valid
 * date YYYYMMDD is also searched as YYYY-MM-DD, DD.MM.YYYY, MM/DD/YYYY...
 * Matching ignores case and diacritics (doc/deid-scan.md).
 * Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_add_value(diana_scanner *scanner, const char *value) DIANA_NOEXCEPT;

/**
 * Add every identifying value of an original dataset: the values of the
 * attributes that the Basic Profile removes, empties or replaces (less
 * those the outputs' options and overrides retain, see
 * diana_scanner_set_options()) (names,
 * IDs, dates, UIDs, addresses, free text...), at any depth, file meta and
 * private elements included. Not protected (doc/deid-scan.md, false
 * positive policy): times, ages, coded strings, numbers, purely numeric
 * values shorter than 6 characters, standard UIDs, private creators,
 * libdiana's own dummy values, and free text, UIDs or single name words
 * that an added original also holds in an attribute the profile keeps.
 * Errors: DIANA_EINVAL, DIANA_EDICOM (a value cannot be read or decoded),
 * DIANA_ENOMEM. Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_add_dataset(diana_scanner *scanner, const diana_dataset *original) DIANA_NOEXCEPT;

/**
 * Add the "Original*" columns of every row of a key file (never the
 * pseudonyms). Errors: DIANA_ENOTFOUND, DIANA_EIO, DIANA_EINVAL (not a key
 * file: another header, invalid CSV or UTF-8), DIANA_ENOMEM.
 * Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_scanner_add_key_file(diana_scanner *scanner, const char *key_file) DIANA_NOEXCEPT;

/**
 * Scan one output file: every component of `path`, the preamble, the file
 * meta, every element value (decoded text and raw bytes) except Pixel
 * Data, at any depth. The file is read leniently (all that can be parsed
 * is checked).
 * Returns 0 when nothing was found (`*report` is "[]"); DIANA_ELEAK when a
 * protected value survives, with `*report` a JSON array of findings
 * [{"where": W, "kind": K}] that names where, never the value: W is a key
 * for diana_dataset_get() ("00081115[0].0020000E"), "file meta 00020016",
 * "raw bytes of 00111001", "file name" or "preamble"; K is "name", "id",
 * "date", "uid" or "text". `report` may be NULL; release it with
 * diana_free(). Fails closed: DIANA_EDICOM when the file cannot be parsed
 * or one of its elements cannot be read, DIANA_ENOTFOUND / DIANA_EIO for
 * the file, DIANA_EINVAL when the scanner holds no protected value (it
 * never vouches for anything then); `*report` is NULL on these errors.
 * Thread safety: safe on a filled scanner (concurrent scans). Since: 0.1
 */
DIANA_API int diana_scanner_scan_file(const diana_scanner *scanner, const char *path, char **report) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_SCAN_H */
