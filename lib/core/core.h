/*
 * libdiana - internal core helpers (errors, logging, buffers, files).
 * Not installed; `diana__` names may change at any time.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_CORE_H
#define DIANA_CORE_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <diana/common.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define DIANA__PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define DIANA__PRINTF(a, b)
#endif

/* --- errors (thread-local) ---------------------------------------------- */

/** Record `code` and a one-line message for this thread; returns `code`.
 *  Never put DICOM element values into `fmt` arguments. */
int diana__error_set(int code, const char *fmt, ...) DIANA__PRINTF(2, 3);
/** Map an errno value to a diana code, record "<what>: <strerror>"; returns the code. */
int diana__error_errno(int errnum, const char *what);
/** Code for an errno value (ENOENT -> DIANA_ENOTFOUND, ENOSPC -> DIANA_ENOSPC, ...). */
int diana__errno_code(int errnum);
/** ENOMEM shortcut. */
int diana__error_oom(void);
/** Check an options struct version: 1..max accepted, else DIANA_EUNSUPPORTED. */
int diana__check_version(uint32_t version, uint32_t max, const char *what);

/* --- logging ------------------------------------------------------------ */

/** True when a message at `level` would be delivered (cheap). */
int diana__log_enabled(int level);
void diana__log(int level, const char *domain, const char *fmt, ...) DIANA__PRINTF(3, 4);
void diana__vlog(int level, const char *domain, const char *fmt, va_list ap);
/** Called once by diana_init(): reads DIANA_DEBUG. */
void diana__log_global_init(void);

/* --- growable byte buffer ----------------------------------------------- */

typedef struct diana__buf {
	char *data;   /* always NUL-terminated when non-NULL */
	size_t len;
	size_t cap;
	int oom;      /* sticky allocation failure */
} diana__buf;

#define DIANA__BUF_INIT { NULL, 0, 0, 0 }

int diana__buf_grow(diana__buf *b, size_t extra);
int diana__buf_put(diana__buf *b, const void *data, size_t len);
int diana__buf_puts(diana__buf *b, const char *s);
int diana__buf_putc(diana__buf *b, char c);
int diana__buf_printf(diana__buf *b, const char *fmt, ...) DIANA__PRINTF(2, 3);
/** Hand the data over (NUL-terminated, never NULL on success) and reset. */
char *diana__buf_detach(diana__buf *b, size_t *len);
void diana__buf_dispose(diana__buf *b);

/* --- strings and memory -------------------------------------------------- */
/** Decimal of a 128-bit big-endian number (no leading zeros; up to 39
 * digits and a NUL), e.g. for 2.25.<decimal> UIDs. */
void diana__decimal128(const uint8_t be[16], char out[40]);

char *diana__strdup(const char *s);
char *diana__strndup(const char *s, size_t n);
void *diana__malloc(size_t n); /* sets DIANA_ENOMEM on failure */
void *diana__calloc(size_t n, size_t size);

/* --- base64 (RFC 4648, with padding) -------------------------------------- */

/** Encode; returns a NUL-terminated malloc'd string or NULL (ENOMEM set). */
char *diana__base64_encode(const uint8_t *data, size_t len, size_t *out_len);
/** Decode (whitespace ignored); returns 0 or DIANA_EINVAL / DIANA_ENOMEM. */
int diana__base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len);

/* --- files ---------------------------------------------------------------- */

/** Read a whole file (bounded by max_size if non-zero). */
int diana__file_read(const char *path, uint64_t max_size, uint8_t **out, size_t *len);

/**
 * Read a secret or token file that must be private: a regular file (checked
 * on the open descriptor, no stat/open race) with no permission bit for group
 * or others, at most `max` bytes. Exactly one trailing LF or CR LF is cut
 * ("a\n\n" gives "a\n"): the project secret's rule, so pseudonyms never change.
 * On success *out is NUL-terminated (*len excludes the NUL), owned by the
 * caller: OPENSSL_cleanse it before free(). On error nothing is returned and
 * every copy was cleansed. Messages start with "<what>: " when `what` is not
 * NULL and never carry the content. Errors: DIANA_ENOTFOUND/EIO/... from
 * errno (open, read), DIANA_EINVAL (not a regular file, larger than max),
 * DIANA_EAUTH (mode & 077: "chmod 600 it"), DIANA_ENOMEM.
 */
int diana__secret_file_read(const char *path, const char *what, size_t max, uint8_t **out, size_t *len);
/**
 * The same reader without the privacy checks, for a credential file the API
 * never required to be private (the HEC token file): any mode, any readable
 * file but a folder (DIANA_EIO), so pipes (`--token-file <(...)`) still work.
 */
int diana__secret_file_read_any(const char *path, const char *what, size_t max, uint8_t **out, size_t *len);

/**
 * Atomic file creation: data goes to a temporary file beside `path`
 * (".<name>.tmp-XXXXXX", mode 0600), then is fsync'd and renamed over
 * `path`, then the folder is fsync'd. Abort removes the temporary file.
 */
typedef struct diana__atomic_file {
	int fd;
	char *path;
	char *tmp_path;
} diana__atomic_file;

int diana__atomic_open(diana__atomic_file *f, const char *path);
int diana__atomic_write(diana__atomic_file *f, const void *data, size_t len);
int diana__atomic_commit(diana__atomic_file *f);
void diana__atomic_abort(diana__atomic_file *f);
/** One-shot convenience over the three calls above. */
int diana__write_file_atomic(const char *path, const void *data, size_t len);

/** Create `path` and its missing parents (mode 0700). 0, or DIANA_EINVAL/EIO/ENOSPC... one line. */
int diana__mkdir_p(const char *path);
/**
 * Remove what is inside `dir` (not `dir` itself), depth-bounded (8), never
 * following symbolic links: work folders of a killed run.
 */
void diana__rm_tree_contents(const char *dir);

/* --- time ----------------------------------------------------------------- */

/** Monotonic clock in milliseconds. */
int64_t diana__now_ms(void);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_CORE_H */
