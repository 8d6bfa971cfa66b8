/*
 * libdiana - keyed deterministic pseudonyms (HMAC-SHA256 under the project
 * secret) and date arithmetic. Internal to lib/deid.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DEID_MINT_H
#define DIANA_DEID_MINT_H

#include <stddef.h>
#include <stdint.h>

#define DIANA__MINT_MIN_SECRET 32
#define DIANA__UID_MAX 64
#define DIANA__CODE_LEN 16 /* base32 characters of a keyed code */
#define DIANA__NAME_MAX 64

typedef struct diana__mint diana__mint;

/** Keyed minter; the key is copied (and wiped on free). Thread-safe once created. */
int diana__mint_new(diana__mint **out, const uint8_t *key, size_t len);
void diana__mint_free(diana__mint *m);
/** An independent copy (same key), e.g. for a scanner that outlives the profile. */
int diana__mint_dup(const diana__mint *m, diana__mint **out);

/** HMAC-SHA256(key, prefix || data). */
int diana__mint_hmac(const diana__mint *m, const char *prefix, const void *data, size_t len,
                     uint8_t out[32]);

/**
 * "2.25." + decimal of the first 128 bits of HMAC("uid:" + uid): at most 44
 * characters, no leading zeros. `uid` is the original without padding.
 */
int diana__mint_uid(const diana__mint *m, const char *uid, size_t len, char out[DIANA__UID_MAX + 1]);

/** 16 characters of RFC 4648 base32 (A-Z, 2-7) of HMAC(prefix + value): 80 bits. */
int diana__mint_code(const diana__mint *m, const char *prefix, const char *value, size_t len,
                     char out[DIANA__CODE_LEN + 1]);

/**
 * A sham person name "Family^Given" chosen by HMAC("name:" + key) from the
 * built-in lists; when `avoid` (the real name, or NULL) shares a component
 * with it, the next candidate HMAC("name:<n>:" + key) is taken.
 */
int diana__mint_name(const diana__mint *m, const char *key, size_t len, const char *avoid,
                     char out[DIANA__NAME_MAX]);

/** Per-patient date shift in [-max_days, -1] from HMAC("date-shift:" + key). */
int diana__mint_shift(const diana__mint *m, const char *key, size_t len, int max_days, int *days);

/**
 * Shift one DA value ("YYYYMMDD", or the ACR-NEMA "YYYY.MM.DD") by `days`;
 * writes "YYYYMMDD". Returns 0, or -1 when the value is not a valid date
 * or the result leaves years 0001..9999.
 */
int diana__shift_da(const char *v, size_t len, int days, char out[9]);

/**
 * Shift the date part of one DT value ("YYYY[MM[DD[HHMMSS[.F]]]][&ZZXX]");
 * time and offset are kept, a partial date keeps its precision (missing
 * month/day count as 01). `out` needs len + 1 bytes. Returns 0 or -1.
 */
int diana__shift_dt(const char *v, size_t len, int days, char *out, size_t cap);

/** Name lists (names.c). */
extern const char *const diana__family_names[];
extern const size_t diana__n_family_names;
extern const char *const diana__given_names[];
extern const size_t diana__n_given_names;

#endif /* DIANA_DEID_MINT_H */
