/*
 * libdiana - the key file: a CSV linking original identifiers to their
 * pseudonyms, one row per study. Internal to lib/deid.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_KEYFILE_H
#define DIANA_KEYFILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Columns, in file order (also the CSV header line). */
#define DIANA__KEY_NFIELDS 12
extern const char *const diana__key_columns[DIANA__KEY_NFIELDS];
/* OriginalPatientName, OriginalPatientID, OriginalPatientBirthDate,
 * OriginalAccessionNumber, OriginalStudyInstanceUID, OriginalStudyDate,
 * PseudoPatientName, PseudoPatientID, PseudoPatientBirthDate,
 * PseudoAccessionNumber, PseudoStudyInstanceUID, PseudoStudyDate */

typedef struct diana__keyfile diana__keyfile;

/**
 * Open (create with mode 0600 and a header line if missing; O_EXCL, so
 * concurrent creators agree on one file) a key file and load the set of
 * studies it already lists (by OriginalStudyInstanceUID). An existing file
 * with another header is refused with DIANA_EINVAL. A torn last row (crash
 * during a write) is cut off under the lock.
 */
int diana__keyfile_open(diana__keyfile **out, const char *path);

/**
 * Append one row (DIANA__KEY_NFIELDS UTF-8 strings, NULL = empty) unless its
 * study is already listed. Returns 1 when written, 0 when the study was
 * already there, <0 on error (DIANA_EINVAL: no OriginalStudyInstanceUID or
 * a field that is not UTF-8; DIANA_EIO: the file was removed or replaced
 * while open; DIANA_ENOSPC). The row is written with one write() on an
 * O_APPEND descriptor under flock() and fsync'd; rows other writers appended
 * meanwhile are read first, so concurrent processes and threads never
 * interleave or duplicate rows. Thread-safe.
 */
int diana__keyfile_append(diana__keyfile *k, const char *const *fields);

/** Close; NULL is a no-op. Not concurrently with diana__keyfile_append(). */
void diana__keyfile_close(diana__keyfile *k);

/**
 * Read every row: calls fn(fields, user_data) with DIANA__KEY_NFIELDS
 * strings per row (never NULL, "" when empty, valid UTF-8); a non-zero
 * return stops and is returned. Quoted CSV (RFC 4180, CRLF or LF line ends,
 * a UTF-8 byte order mark) is handled. A last row without its line end (a
 * writer crashed) is ignored. No lock is taken. Errors: DIANA_ENOTFOUND,
 * DIANA_EIO, DIANA_EINVAL (not a key file: other header, a row with another
 * number of fields, invalid CSV or UTF-8), DIANA_ENOMEM.
 */
typedef int (*diana__keyfile_row_fn)(const char *const *fields, void *user_data);
int diana__keyfile_read(const char *path, diana__keyfile_row_fn fn, void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_KEYFILE_H */
