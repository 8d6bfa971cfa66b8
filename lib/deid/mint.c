/*
 * libdiana - keyed deterministic pseudonyms: HMAC-SHA256 (OpenSSL EVP_MAC)
 * under the project secret; UIDs, codes, sham names, date shifts.
 *
 * Everything here is a pure function of (secret, input): the same secret
 * gives the same pseudonyms on every machine and in every run; another
 * secret gives unrelated ones. Byte order is explicit everywhere.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#include "../core/core.h"
#include "mint.h"

struct diana__mint {
	EVP_MAC *mac;
	EVP_MAC_CTX *tmpl; /* keyed, never updated: duplicated per thread */
	uint64_t id;       /* unique in the process: names it in thread caches */
};

/*
 * Each thread keeps one keyed copy of the template of the last mint it
 * used and re-initialises it (EVP_MAC_init() without a key keeps the key)
 * for every HMAC: duplicating the context for each one cost most of a
 * pseudonym (allocations inside OpenSSL). The copy is freed when the
 * thread ends, when the thread moves to another mint, and when the mint is
 * freed by this thread; ids are never reused, so a stale copy is never
 * taken for another mint's.
 */
static uint64_t mint_ids;
static pthread_key_t cache_key;
static pthread_once_t cache_once = PTHREAD_ONCE_INIT;
static int cache_ok;

struct mint_cache {
	uint64_t id;
	EVP_MAC_CTX *c;
};

static void cache_free(void *p)
{
	struct mint_cache *mc = p;
	if (mc) {
		EVP_MAC_CTX_free(mc->c);
		free(mc);
	}
}

static void cache_init(void)
{
	cache_ok = pthread_key_create(&cache_key, cache_free) == 0;
}

/* this thread's context for `m`, ready for updates; NULL: use a duplicate */
static EVP_MAC_CTX *cached_ctx(const diana__mint *m)
{
	struct mint_cache *mc;

	if (pthread_once(&cache_once, cache_init) != 0 || !cache_ok)
		return NULL;
	mc = pthread_getspecific(cache_key);
	if (!mc) {
		mc = calloc(1, sizeof *mc);
		if (!mc)
			return NULL;
		if (pthread_setspecific(cache_key, mc) != 0) {
			free(mc);
			return NULL;
		}
	}
	if (mc->c && mc->id == m->id) {
		if (EVP_MAC_init(mc->c, NULL, 0, NULL))
			return mc->c;
	}
	EVP_MAC_CTX_free(mc->c);
	mc->c = EVP_MAC_CTX_dup(m->tmpl);
	mc->id = m->id;
	return mc->c;
}

int diana__mint_new(diana__mint **out, const uint8_t *key, size_t len)
{
	diana__mint *m;
	OSSL_PARAM params[2];
	char digest[] = "SHA256";

	*out = NULL;
	if (!key || len < DIANA__MINT_MIN_SECRET)
		return diana__error_set(DIANA_EINVAL, "the secret must be at least %d bytes",
		                        DIANA__MINT_MIN_SECRET);
	m = diana__calloc(1, sizeof *m);
	if (!m)
		return DIANA_ENOMEM;
	m->mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (m->mac)
		m->tmpl = EVP_MAC_CTX_new(m->mac);
	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0);
	params[1] = OSSL_PARAM_construct_end();
	if (!m->tmpl || !EVP_MAC_init(m->tmpl, key, len, params)) {
		diana__mint_free(m);
		return diana__error_set(DIANA_ERROR, "OpenSSL HMAC-SHA256 is not available");
	}
	m->id = __atomic_add_fetch(&mint_ids, 1, __ATOMIC_RELAXED);
	*out = m;
	return 0;
}

int diana__mint_dup(const diana__mint *m, diana__mint **out)
{
	diana__mint *d;

	*out = NULL;
	d = diana__calloc(1, sizeof *d);
	if (!d)
		return DIANA_ENOMEM;
	if (!EVP_MAC_up_ref(m->mac)) {
		free(d);
		return diana__error_set(DIANA_ERROR, "OpenSSL HMAC-SHA256 is not available");
	}
	d->mac = m->mac;
	d->tmpl = EVP_MAC_CTX_dup(m->tmpl);
	if (!d->tmpl) {
		diana__mint_free(d);
		return diana__error_oom();
	}
	d->id = __atomic_add_fetch(&mint_ids, 1, __ATOMIC_RELAXED);
	*out = d;
	return 0;
}

void diana__mint_free(diana__mint *m)
{
	if (!m)
		return;
	if (cache_ok) { /* this thread's copy of the key goes with it */
		struct mint_cache *mc = pthread_getspecific(cache_key);
		if (mc && mc->id == m->id) {
			EVP_MAC_CTX_free(mc->c);
			mc->c = NULL;
			mc->id = 0;
		}
	}
	EVP_MAC_CTX_free(m->tmpl); /* clears the key */
	EVP_MAC_free(m->mac);
	free(m);
}

int diana__mint_hmac(const diana__mint *m, const char *prefix, const void *data, size_t len,
                     uint8_t out[32])
{
	EVP_MAC_CTX *c = cached_ctx(m), *own = NULL;
	size_t n = 0;
	int ok;

	if (!c && !(c = own = EVP_MAC_CTX_dup(m->tmpl)))
		return diana__error_oom();
	ok = EVP_MAC_update(c, (const unsigned char *)prefix, strlen(prefix)) &&
	     (!len || EVP_MAC_update(c, data, len)) && EVP_MAC_final(c, out, &n, 32) && n == 32;
	EVP_MAC_CTX_free(own);
	if (!ok)
		return diana__error_set(DIANA_ERROR, "HMAC-SHA256 failed");
	return 0;
}

int diana__mint_uid(const diana__mint *m, const char *uid, size_t len, char out[DIANA__UID_MAX + 1])
{
	uint8_t h[32];
	int rc = diana__mint_hmac(m, "uid:", uid, len, h);

	if (rc < 0)
		return rc;
	/* the first 128 bits, as a decimal */
	memcpy(out, "2.25.", 5);
	diana__decimal128(h, out + 5);
	OPENSSL_cleanse(h, sizeof h);
	return 0;
}

int diana__mint_code(const diana__mint *m, const char *prefix, const char *value, size_t len,
                     char out[DIANA__CODE_LEN + 1])
{
	static const char b32[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
	uint8_t h[32];
	int rc = diana__mint_hmac(m, prefix, value, len, h);

	if (rc < 0)
		return rc;
	/* 10 bytes = 80 bits = 16 groups of 5 bits */
	for (int i = 0; i < DIANA__CODE_LEN; i++) {
		int bit = i * 5, byte = bit / 8, off = bit % 8;
		unsigned v = ((unsigned)h[byte] << 8) | (byte + 1 < 32 ? h[byte + 1] : 0);
		out[i] = b32[(v >> (11 - off)) & 31];
	}
	out[DIANA__CODE_LEN] = 0;
	OPENSSL_cleanse(h, sizeof h);
	return 0;
}

static uint32_t be32(const uint8_t *p)
{
	return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* uniform in [0, n) from 64 bits (bias < 2^-40 for n < 2^24) */
static uint32_t pick(const uint8_t *p, uint32_t n)
{
	uint64_t v = ((uint64_t)be32(p) << 32) | be32(p + 4);
	return (uint32_t)(v % n);
}

/* true when `word` equals (ASCII case-insensitively) a component of `name` */
static int name_has(const char *name, const char *word)
{
	size_t wl = strlen(word);
	const char *p = name;

	while (p && *p) {
		size_t n = strcspn(p, "^= ,");
		if (n == wl && !strncasecmp(p, word, wl))
			return 1;
		p += n;
		if (*p)
			p++;
	}
	return 0;
}

int diana__mint_name(const diana__mint *m, const char *key, size_t len, const char *avoid,
                     char out[DIANA__NAME_MAX])
{
	uint8_t h[32];
	char prefix[32];
	const char *family, *given;

	/* never hand out a name sharing a component with the real one */
	for (unsigned round = 0;; round++) {
		int rc;
		if (round)
			snprintf(prefix, sizeof prefix, "name:%u:", round);
		else
			strcpy(prefix, "name:");
		rc = diana__mint_hmac(m, prefix, key, len, h);
		if (rc < 0)
			return rc;
		family = diana__family_names[pick(h, (uint32_t)diana__n_family_names)];
		given = diana__given_names[pick(h + 8, (uint32_t)diana__n_given_names)];
		if (!avoid || round >= 64 || (!name_has(avoid, family) && !name_has(avoid, given)))
			break;
	}
	snprintf(out, DIANA__NAME_MAX, "%s^%s", family, given);
	OPENSSL_cleanse(h, sizeof h);
	return 0;
}

int diana__mint_shift(const diana__mint *m, const char *key, size_t len, int max_days, int *days)
{
	uint8_t h[32];
	int rc = diana__mint_hmac(m, "date-shift:", key, len, h);

	if (rc < 0)
		return rc;
	if (max_days < 1)
		max_days = 1;
	*days = -(int)(pick(h, (uint32_t)max_days) + 1);
	OPENSSL_cleanse(h, sizeof h);
	return 0;
}

/* ---- civil dates (proleptic Gregorian; H. Hinnant's algorithms) ---------- */

static long days_from_civil(long y, unsigned mo, unsigned d)
{
	y -= mo <= 2;
	long era = (y >= 0 ? y : y - 399) / 400;
	unsigned yoe = (unsigned)(y - era * 400);
	unsigned doy = (153 * (mo + (mo > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + (long)doe - 719468;
}

static void civil_from_days(long z, long *y, unsigned *mo, unsigned *d)
{
	z += 719468;
	long era = (z >= 0 ? z : z - 146096) / 146097;
	unsigned doe = (unsigned)(z - era * 146097);
	unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	long yy = (long)yoe + era * 400;
	unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	unsigned mp = (5 * doy + 2) / 153;
	*d = doy - (153 * mp + 2) / 5 + 1;
	*mo = mp < 10 ? mp + 3 : mp - 9;
	*y = yy + (*mo <= 2);
}

static int num(const char *p, int n, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < n; i++) {
		if (p[i] < '0' || p[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	*out = v;
	return 0;
}

static int valid_ymd(unsigned y, unsigned mo, unsigned d)
{
	static const unsigned mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };
	if (y < 1 || mo < 1 || mo > 12 || d < 1 || d > mdays[mo - 1])
		return 0;
	if (mo == 2 && d == 29 && !((y % 4 == 0 && y % 100 != 0) || y % 400 == 0))
		return 0;
	return 1;
}

static int shift_ymd(unsigned y, unsigned mo, unsigned d, int days, unsigned *oy, unsigned *omo,
                     unsigned *od)
{
	long ny;
	if (!valid_ymd(y, mo, d))
		return -1;
	civil_from_days(days_from_civil((long)y, mo, d) + days, &ny, omo, od);
	if (ny < 1 || ny > 9999)
		return -1;
	*oy = (unsigned)ny;
	return 0;
}

int diana__shift_da(const char *v, size_t len, int days, char out[9])
{
	unsigned y, mo, d;

	if (len == 8) {
		if (num(v, 4, &y) || num(v + 4, 2, &mo) || num(v + 6, 2, &d))
			return -1;
	} else if (len == 10 && v[4] == '.' && v[7] == '.') {
		if (num(v, 4, &y) || num(v + 5, 2, &mo) || num(v + 8, 2, &d))
			return -1;
	} else {
		return -1;
	}
	if (shift_ymd(y, mo, d, days, &y, &mo, &d))
		return -1;
	snprintf(out, 9, "%04u%02u%02u", y, mo, d);
	return 0;
}

int diana__shift_dt(const char *v, size_t len, int days, char *out, size_t cap)
{
	unsigned y, mo = 1, d = 1;
	size_t prec; /* digits of the date part: 4, 6 or 8 */
	char buf[9];

	if (cap < len + 1 || len < 4 || num(v, 4, &y))
		return -1;
	prec = 4;
	if (len >= 6 && !num(v + 4, 2, &mo)) {
		prec = 6;
		if (len >= 8 && !num(v + 6, 2, &d))
			prec = 8;
	}
	/* what follows the date must be a time or an offset, never more digits of a date */
	if (prec < 8 && len > prec && v[prec] != '&' && v[prec] != '+' && v[prec] != '-')
		return -1;
	if (shift_ymd(y, mo, d, days, &y, &mo, &d))
		return -1;
	snprintf(buf, sizeof buf, "%04u%02u%02u", y, mo, d);
	memcpy(out, buf, prec);
	memcpy(out + prec, v + prec, len - prec);
	out[len] = 0;
	return 0;
}
