/*
 * libdiana - helpers of the key file and the leak scanner (lib/deid/scan):
 * text folding for matching, a string hash map, Aho-Corasick matching.
 * Internal; `diana__` names may change at any time.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_SCANUTIL_H
#define DIANA_SCANUTIL_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* --- folding ------------------------------------------------------------ */

/** Character classes of folded bytes (diana__fold() `cls` output). */
enum {
	DIANA__FOLD_OTHER = 0,
	DIANA__FOLD_LETTER = 1,
	DIANA__FOLD_DIGIT = 2,
	DIANA__FOLD_CLASS_MASK = 3,
	DIANA__FOLD_UPPER = 4 /* the source character was an upper-case letter */
};

/**
 * Fold bytes for matching: lower case and without diacritics (A-Z, Latin-1,
 * Latin Extended-A, Greek, Cyrillic, full-width ASCII; "ß" -> "ss", "Æ" ->
 * "ae", combining marks dropped). Valid UTF-8 sequences are decoded; any
 * other byte is read as ISO 8859-1, so values stored in Latin-1 fold to the
 * same bytes as their UTF-8 form. Other characters are copied unchanged.
 *
 * `out` and `cls` (may be NULL) need room for 2 * len + 1 bytes; `cls`
 * receives the class of the character each output byte comes from.
 * Returns the number of bytes written (out is NUL-terminated).
 */
size_t diana__fold(const uint8_t *in, size_t len, uint8_t *out, uint8_t *cls);

/** diana__fold() into a new NUL-terminated string (NULL on ENOMEM). */
char *diana__fold_dup(const char *in, size_t len, size_t *out_len);

/** True when `s[0..len)` is valid UTF-8 (no NUL, shortest forms, <= U+10FFFF, no surrogates). */
int diana__utf8_valid(const char *s, size_t len);

/* --- string map (string -> int) ---------------------------------------- */

typedef struct diana__strmap {
	char **keys;
	size_t *lens;
	int *vals;
	size_t cap;   /* power of two, 0 when empty */
	size_t count;
} diana__strmap;

#define DIANA__STRMAP_INIT { NULL, NULL, NULL, 0, 0 }

/** Pointer to the value of `key`, or NULL. */
int *diana__strmap_get(const diana__strmap *m, const char *key, size_t len);
/**
 * Insert `key` (copied) with `val` unless present. Returns 1 when inserted,
 * 0 when already present (then `*slot`, if not NULL, points to its value),
 * DIANA_ENOMEM.
 */
int diana__strmap_put(diana__strmap *m, const char *key, size_t len, int val, int **slot);
void diana__strmap_dispose(diana__strmap *m);

/* --- Aho-Corasick -------------------------------------------------------- */

typedef struct diana__ac diana__ac;

/** Build an automaton over `n` byte strings (none empty); ids are their indexes. */
int diana__ac_build(diana__ac **out, const char *const *patterns, const size_t *lens, size_t n);
void diana__ac_free(diana__ac *ac);

/** Called for every occurrence: pattern id and the index of its last byte. Non-zero stops. */
typedef int (*diana__ac_fn)(uint32_t id, size_t end, void *user_data);

/** Report every occurrence of every pattern in `text`. Thread-safe on a built automaton. */
int diana__ac_search(const diana__ac *ac, const uint8_t *text, size_t len, diana__ac_fn fn,
                     void *user_data);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_SCANUTIL_H */
