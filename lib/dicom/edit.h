/*
 * libdiana - internal mutation interface of lib/dicom for lib/deid: walk a
 * dataset (file meta included) and keep, remove, empty or replace each
 * element; insert top-level elements. Implemented in dsedit.cpp.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DICOM_EDIT_H
#define DIANA_DICOM_EDIT_H

#include <stddef.h>
#include <stdint.h>

#include <diana/dataset.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum diana__edit_action {
	DIANA__EDIT_KEEP = 0,    /* keep (for SQ: descend into the items) */
	DIANA__EDIT_REMOVE = 1,  /* remove the element */
	DIANA__EDIT_EMPTY = 2,   /* keep the element, zero-length value (SQ: no items) */
	DIANA__EDIT_REPLACE = 3  /* replace the value with *new_value */
} diana__edit_action;

typedef struct diana__edit_element {
	uint32_t tag;
	char vr[4];                 /* two letters, NUL-terminated */
	int depth;                  /* 0 at top level */
	const uint32_t *parents;    /* tags of the enclosing sequences, outermost first (depth entries) */
	const char *private_creator;/* for private data elements (gggg,xxyy): creator of block xx, else NULL */
	const uint8_t *value;       /* raw value (binary VRs little endian); NULL for SQ / encapsulated, and
	                               for deferred top-level Pixel Data (length set, bytes still in the file:
	                               diana__dataset_open_deferred) */
	size_t length;              /* value length in bytes */
	const char *charset;        /* effective Specific Character Set value ("" = default) */
	int is_meta;                /* file meta group 0002 */
	int encapsulated;           /* encapsulated Pixel Data */
	size_t items;               /* SQ: number of items */
} diana__edit_element;

/**
 * Called for every element, depth first, meta group first. Return a
 * diana__edit_action, or a negative error code to stop. For REPLACE set
 * *new_value (malloc'd, ownership passes to the dataset) and *new_len: the
 * raw value bytes; text is padded to even length by the dataset (space, or
 * NUL for UI).
 */
typedef int (*diana__edit_fn)(const diana__edit_element *el, uint8_t **new_value, size_t *new_len,
                              void *user_data);

/** Walk and edit. Returns 0, or the callback's negative code, or an error. */
int diana__dataset_edit(diana_dataset *ds, diana__edit_fn fn, void *user_data);

/**
 * Open a file strictly, as diana_dataset_open() with no options, but leave
 * native top-level Pixel Data of little endian data in the file: the
 * dataset keeps the file open, writing it (diana__dataset_save_atomic(),
 * diana_dataset_save()) copies the pixel bytes from there in the kernel
 * (copy_file_range), and anything else that needs them reads them first.
 * Not for concurrent use of one dataset by several threads. Memory stays
 * flat in the size of the pixel data.
 */
int diana__dataset_open_deferred(diana_dataset **out, const char *path);

/**
 * Insert or replace a top-level element (group 0002 goes to the file meta)
 * with raw value bytes; text values are padded as above.
 */
int diana__dataset_put(diana_dataset *ds, uint32_t tag, const char *vr, const uint8_t *value, size_t len);

/**
 * Insert or replace top-level elements from a DICOM JSON object (PS3.18
 * Annex F), e.g. a code sequence. Text must be ASCII unless the dataset's
 * Specific Character Set is ISO_IR 192.
 */
int diana__dataset_put_json(diana_dataset *ds, const char *json);

/**
 * Insert or replace the top-level elements (and file meta elements) of
 * `src` into `ds`, copies: as diana__dataset_put_json() with a dataset
 * parsed once (e.g. the same code sequence for every file).
 */
int diana__dataset_put_from(diana_dataset *ds, const diana_dataset *src);

/** Whether the top level (or the file meta, for group 0002) has `tag`. */
int diana__dataset_has(const diana_dataset *ds, uint32_t tag);

/** How diana__dataset_save_atomic() makes its output durable. */
enum {
	/* nothing: the caller syncs later, or never (scratch output) */
	DIANA__SAVE_NONE = 0,
	/* the file and its folder fsync'd before returning */
	DIANA__SAVE_FSYNC = 1,
	/* writeback started (sync_file_range(), asynchronous): the caller's
	 * later syncfs() finds the data written or under way */
	DIANA__SAVE_WRITEBACK = 2
};

/**
 * Write as a Part 10 file (as diana_dataset_save()) to a temporary name
 * beside `path`, then rename it into place: never a partial file under
 * `path`. `mode`: DIANA__SAVE_*. New files get mode 0600, a replaced file
 * keeps its mode.
 */
int diana__dataset_save_atomic(const diana_dataset *ds, const char *path, int mode);

/**
 * Tag of a public data dictionary keyword ("PatientName" -> 0x00100010).
 * Returns 0, DIANA_ENOTFOUND for an unknown keyword, DIANA_EINVAL for NULL.
 */
int diana__dict_tag(const char *keyword, uint32_t *tag);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_DICOM_EDIT_H */
