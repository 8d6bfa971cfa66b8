/*
 * libdiana - internal: a streaming parser of MIME multipart bodies
 * (RFC 2046 section 5.1; PS3.18 multipart/related for WADO-RS), and the
 * boundary parameter of a Content-Type. Bytes are fed as they arrive, in
 * chunks of any size: a delimiter may be split across chunks anywhere.
 * Memory: the part headers (bounded) and the boundary, never a part body.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_NET_MULTIPART_H
#define DIANA_NET_MULTIPART_H

#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Longest boundary accepted (RFC 2046 allows 70; some servers use more). */
#define DIANA__MULTIPART_BOUNDARY_MAX 200

/**
 * The media type of a Content-Type value, lower case, without parameters
 * ("multipart/related"), into `type` (capacity `cap`), and its boundary
 * parameter (quoted or not, unquoted, backslash escapes removed) into
 * `boundary` (capacity DIANA__MULTIPART_BOUNDARY_MAX + 1). `type` may be
 * NULL. DIANA_EPACS with one line when the media type is not multipart or it has
 * no usable boundary.
 */
int diana__multipart_boundary(const char *content_type, char *type, size_t cap,
                              char boundary[DIANA__MULTIPART_BOUNDARY_MAX + 1]);

/**
 * The value of parameter `name` (case-insensitive) of a Content-Type-like
 * header value ("application/dicom; transfer-syntax=1.2.840.10008.1.2.1"),
 * unquoted, into `out` (capacity `cap`, truncated). Returns 0 when found,
 * DIANA_ENOTFOUND when absent (no error message is set).
 */
int diana__header_param(const char *value, const char *name, char *out, size_t cap);

/** One part's headers, borrowed during diana__multipart_callbacks.begin. */
typedef struct diana__multipart_part {
	size_t index;                 /* 0, 1, ... */
	const char *content_type;     /* "" when absent */
	const char *content_location; /* "" when absent */
	int64_t content_length;       /* -1 when absent (informative only) */
} diana__multipart_part;

/**
 * Callbacks; any may be NULL. A non-zero return stops the parser: feed()
 * returns it (a negative value as is, a positive one as DIANA_EUSER).
 * `data` receives a part body in pieces of any size (possibly 0 pieces for
 * an empty part); `end` runs when the part's closing delimiter was seen.
 */
typedef struct diana__multipart_callbacks {
	int (*begin)(const diana__multipart_part *part, void *user_data);
	int (*data)(const void *data, size_t len, void *user_data);
	int (*end)(void *user_data);
} diana__multipart_callbacks;

typedef struct diana__multipart diana__multipart;

/** A parser for `boundary` (1..DIANA__MULTIPART_BOUNDARY_MAX chars, no CR/LF). */
int diana__multipart_new(diana__multipart **out, const char *boundary,
                         const diana__multipart_callbacks *cb, void *user_data);
void diana__multipart_free(diana__multipart *m);

/**
 * Feed the next `len` bytes. Malformed input (garbage after a delimiter,
 * headers over 64 KiB, bad header lines) → DIANA_EPACS with one line; after
 * an error or a stop every further feed returns the same code.
 */
int diana__multipart_feed(diana__multipart *m, const void *data, size_t len);

/**
 * The body ended: 0 when the close delimiter was seen (an epilogue after
 * it is ignored), else DIANA_EPACS ("truncated" / "no boundary found").
 */
int diana__multipart_finish(diana__multipart *m);

/** Parts whose `end` was called so far. */
size_t diana__multipart_parts(const diana__multipart *m);

/** True while inside a part (begin called, end not yet). */
int diana__multipart_in_part(const diana__multipart *m);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_NET_MULTIPART_H */
