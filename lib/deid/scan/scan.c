/*
 * libdiana - the leak scanner: protected values (original names, IDs,
 * dates, UIDs, free text) searched for in de-identified outputs.
 *
 * Matching (doc/deid-scan.md has the policy):
 *  - every text is folded (lower case, no diacritics, Latin-1 bytes read as
 *    their characters: scanutil.c) and searched with one Aho-Corasick
 *    automaton over the folded patterns;
 *  - where: the path name (every component), the preamble, every element
 *    of the file meta and of the dataset at any depth (decoded text, and
 *    raw bytes of text and binary values), never Pixel Data;
 *  - short patterns need boundaries: a numeric pattern must not touch
 *    other digits (dates may be followed by a time), a pattern with letters
 *    shorter than 6 bytes must stand as a word (camelCase counts);
 *  - the report names where and which kind, never the value.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "../../core/core.h"
#include "../deid.h"
#include "../engine.h"
#include "../mint.h"
#include "keyfile.h"
#include "scanutil.h"

enum { KIND_NAME = 1, KIND_ID = 2, KIND_DATE = 4, KIND_UID = 8, KIND_TEXT = 16 };
#define NKINDS 5
static const char *const kind_names[NKINDS] = { "name", "id", "date", "uid", "text" };

/* matching rules, derived from the folded pattern */
enum { RULE_ANYWHERE = 0, RULE_WORD, RULE_NUMBER, RULE_DATE };

/* where a value comes from (policy differs) */
enum { SRC_EXPLICIT, SRC_KEYFILE, SRC_DATASET };

#define MIN_VALUE 3        /* bytes: shorter values match everywhere */
#define MIN_NUMERIC 6      /* purely numeric values from datasets/key files */
#define MIN_ANYWHERE 6     /* folded bytes: shorter patterns with letters need word boundaries */
#define MAX_TEXTLIKE 65536 /* private binary values read as text up to this size */

struct diana_scanner {
	diana__strmap index; /* folded pattern -> position */
	char **pats;
	size_t *lens;
	uint8_t *kinds;       /* KIND_* bits */
	uint8_t *strict;      /* kinds that no kept value may exempt (explicit values, key
	                         files, IDs, dates, whole names) */
	size_t n, cap;
	diana__strmap kept;   /* folded values the profile keeps in the originals */
	diana__strmap pseudo; /* folded pseudonyms of key files (Pseudo* name and ID columns), and
	                         with the outputs' profile the sham name of every protected person
	                         name: an output value equal to one is the engine's, not a leak,
	                         even when a sham name shares a word with another person's real
	                         name (the engine's name lists hold common names) */
	diana__mint *mint;    /* the outputs' project secret (set_profile), or NULL */

	/* how the outputs were made: values the profile retains are not protected */
	uint32_t options;     /* DIANA_DEID_* */
	struct scan_override {
		uint32_t tag;
		int action;       /* DIANA_ACTION_KEEP ... REPLACE */
	} *ov;                /* sorted by tag */
	size_t nov;
	int used;             /* values were added: the options can no longer change */

	pthread_mutex_t mu;   /* guards the lazy build below */
	int built;
	diana__ac *ac;
	uint8_t *rules;
	uint8_t *active;      /* kinds that count after the text exemption */
	size_t nactive;
};

/* ------------------------------------------------------------------------ */
/* patterns                                                                  */
/* ------------------------------------------------------------------------ */

static int is_digit(int c)
{
	return c >= '0' && c <= '9';
}

/* digits with optional separators only */
static int is_numeric(const char *s, size_t len)
{
	size_t i, digits = 0;
	for (i = 0; i < len; i++) {
		if (is_digit((unsigned char)s[i]))
			digits++;
		else if (!strchr(".-/:+, ", s[i]))
			return 0;
	}
	return digits > 0;
}

/*
 * `exemptable`: the value came from an original and may be dropped when the
 * originals also hold it in attributes the profile keeps (the text
 * exemption: vocabulary of devices and protocols, see doc/deid-scan.md).
 */
static int add_folded(diana_scanner *s, const char *folded, size_t len, int kind, int exemptable)
{
	int *slot, rc;

	if (len < MIN_VALUE)
		return 0;
	rc = diana__strmap_put(&s->index, folded, len, (int)s->n, &slot);
	if (rc < 0)
		return rc;
	if (rc == 0) {
		size_t i = (size_t)*slot;
		s->kinds[i] |= (uint8_t)kind;
		if (!exemptable)
			s->strict[i] |= (uint8_t)kind;
		s->built = 0;
		return 0;
	}
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 256;
		char **p = realloc(s->pats, cap * sizeof *p);
		if (p)
			s->pats = p;
		size_t *l = realloc(s->lens, cap * sizeof *l);
		if (l)
			s->lens = l;
		uint8_t *k = realloc(s->kinds, cap);
		if (k)
			s->kinds = k;
		uint8_t *t = realloc(s->strict, cap);
		if (t)
			s->strict = t;
		if (!p || !l || !k || !t)
			return diana__error_oom();
		s->cap = cap;
	}
	s->pats[s->n] = diana__strndup(folded, len);
	if (!s->pats[s->n])
		return DIANA_ENOMEM;
	s->lens[s->n] = len;
	s->kinds[s->n] = (uint8_t)kind;
	s->strict[s->n] = exemptable ? 0 : (uint8_t)kind;
	s->n++;
	s->built = 0;
	return 0;
}

static int add_string(diana_scanner *s, const char *v, size_t len, int kind, int exemptable)
{
	size_t flen;
	char *f;
	int rc;

	if (len < MIN_VALUE)
		return 0;
	f = diana__fold_dup(v, len, &flen);
	if (!f)
		return DIANA_ENOMEM;
	/* folding may drop characters (combining marks) */
	while (flen > 0 && f[flen - 1] == ' ')
		flen--;
	rc = add_folded(s, f, flen, kind, exemptable);
	free(f);
	return rc;
}

static void trim(const char **v, size_t *len)
{
	while (*len > 0 && ((*v)[0] == ' ' || (*v)[0] == '\t'))
		(*v)++, (*len)--;
	while (*len > 0 && ((*v)[*len - 1] == ' ' || (*v)[*len - 1] == '\t' || (*v)[*len - 1] == '\0' ||
	                    (*v)[*len - 1] == '\r' || (*v)[*len - 1] == '\n'))
		(*len)--;
}

static int valid_date8(const char *d)
{
	int m, day, i;
	for (i = 0; i < 8; i++)
		if (!is_digit((unsigned char)d[i]))
			return 0;
	m = (d[4] - '0') * 10 + (d[5] - '0');
	day = (d[6] - '0') * 10 + (d[7] - '0');
	return m >= 1 && m <= 12 && day >= 1 && day <= 31;
}

/* YYYYMMDD and the ways people write it */
static int add_date(diana_scanner *s, const char *d)
{
	char f[10][16];
	size_t i;
	int rc = add_string(s, d, 8, KIND_DATE, 0);

	snprintf(f[0], sizeof f[0], "%.4s-%.2s-%.2s", d, d + 4, d + 6);
	snprintf(f[1], sizeof f[1], "%.4s/%.2s/%.2s", d, d + 4, d + 6);
	snprintf(f[2], sizeof f[2], "%.4s.%.2s.%.2s", d, d + 4, d + 6);
	/* day first (Europe) and month first (US) */
	snprintf(f[3], sizeof f[3], "%.2s.%.2s.%.4s", d + 6, d + 4, d);
	snprintf(f[4], sizeof f[4], "%.2s/%.2s/%.4s", d + 6, d + 4, d);
	snprintf(f[5], sizeof f[5], "%.2s-%.2s-%.4s", d + 6, d + 4, d);
	snprintf(f[6], sizeof f[6], "%.2s/%.2s/%.4s", d + 4, d + 6, d);
	snprintf(f[7], sizeof f[7], "%.2s-%.2s-%.4s", d + 4, d + 6, d);
	for (i = 0; rc == 0 && i < 8; i++)
		rc = add_string(s, f[i], 10, KIND_DATE, 0);
	return rc;
}

static int add_pseudonym(diana_scanner *s, const char *v);

/* With the outputs' secret: the sham name the engine writes for this
 * person name (outside Patient Name, which the key file names) */
static int add_sham_of(diana_scanner *s, const char *v, size_t len)
{
	char name[DIANA__NAME_MAX], *orig;
	int rc;

	if (!s->mint)
		return 0;
	if (!(orig = diana__strndup(v, len)))
		return DIANA_ENOMEM;
	rc = diana__mint_name(s->mint, orig, len, orig, name);
	free(orig);
	return rc < 0 ? rc : add_pseudonym(s, name);
}

/* With the outputs' secret: the sham Patient Name the engine writes for
 * this original (keyed by the patient, as in the engine) */
static int add_patient_sham(diana_scanner *s, const diana_dataset *ds)
{
	static const char *const keys[4] = { "00100020", "00100010", "00100030", "0020000D" };
	char *v[4] = { NULL }, *pkey = NULL, name[DIANA__NAME_MAX];
	size_t len;
	int rc = 0;

	for (int i = 0; i < 4 && rc == 0; i++) {
		int r = diana_dataset_get(ds, keys[i], &v[i]);
		if (r == DIANA_ENOMEM)
			rc = r;
		else if (r < 0) {
			v[i] = NULL; /* absent, or not text: as the engine sees it */
			diana_error_clear();
		}
	}
	if (rc == 0 && v[1] && *v[1] && (rc = diana__deid_patient_key(v[0], v[1], v[2], v[3], &pkey, &len)) == 0 &&
	    (rc = diana__mint_name(s->mint, pkey, len, v[1], name)) >= 0)
		rc = add_pseudonym(s, name);
	free(pkey);
	for (int i = 0; i < 4; i++)
		diana_free(v[i]);
	return rc < 0 ? rc : 0;
}

/* One person name: "Family^Given^Middle^Prefix^Suffix", groups split by '='. */
static int add_person_name(diana_scanner *s, const char *v, size_t len, int src)
{
	size_t g0 = 0;
	int rc = add_string(s, v, len, KIND_NAME, 0);

	if (rc == 0)
		rc = add_sham_of(s, v, len);

	while (rc == 0 && g0 <= len) {
		size_t g1 = g0, c0, ncomp = 0;
		const char *comp[5] = { NULL };
		size_t clen[5] = { 0 };
		while (g1 < len && v[g1] != '=')
			g1++;
		/* components */
		c0 = g0;
		while (rc == 0 && c0 <= g1) {
			size_t c1 = c0;
			const char *cv;
			size_t cl;
			while (c1 < g1 && v[c1] != '^')
				c1++;
			cv = v + c0;
			cl = c1 - c0;
			trim(&cv, &cl);
			if (ncomp < 5) {
				comp[ncomp] = cv;
				clen[ncomp] = cl;
			}
			ncomp++;
			/* a single word: exempt when the originals keep it (a device called "Optima") */
			rc = add_string(s, cv, cl, KIND_NAME, src == SRC_DATASET);
			c0 = c1 + 1;
		}
		/* "Given Family" and "Family Given" (finds "Li Na" where "Li" and "Na" are too short) */
		if (rc == 0 && ncomp >= 2 && clen[0] && clen[1]) {
			int order;
			for (order = 0; rc == 0 && order < 2; order++) {
				diana__buf b = DIANA__BUF_INIT;
				diana__buf_put(&b, comp[!order], clen[!order]);
				diana__buf_putc(&b, ' ');
				diana__buf_put(&b, comp[order], clen[order]);
				rc = b.oom ? DIANA_ENOMEM : add_string(s, b.data, b.len, KIND_NAME, 0);
				diana__buf_dispose(&b);
			}
		}
		g0 = g1 + 1;
	}
	return rc;
}

/*
 * True when v[0..len) is one of the constant values the engine writes
 * (dummies, "YES", "ANONYMIZED"...), ignoring case: the same in every output,
 * they identify nobody even when an original held the same text (files
 * de-identified before often do).
 */
static int is_engine_constant(const char *v, size_t len)
{
	const char *const *d;
	for (d = diana__deid_dummy_values; *d; d++)
		if (strlen(*d) == len && strncasecmp(*d, v, len) == 0)
			return 1;
	return diana__deid_is_method_text(v, len);
}

/* One protected value of a known kind (already split into single values). */
static int add_protected(diana_scanner *s, const char *v, size_t len, int kind, int src)
{
	trim(&v, &len);
	if (src != SRC_EXPLICIT && is_engine_constant(v, len))
		return 0;
	if (len < MIN_VALUE) {
		if (src == SRC_EXPLICIT)
			return diana__error_set(DIANA_EINVAL, "protected values must have at least %d bytes",
			                        MIN_VALUE);
		return 0;
	}
	if (src != SRC_EXPLICIT && len < MIN_NUMERIC && is_numeric(v, len))
		return 0;
	switch (kind) {
	case KIND_NAME:
		return add_person_name(s, v, len, src);
	case KIND_DATE:
		if (len >= 8 && valid_date8(v)) {
			int rc = add_date(s, v);
			if (rc == 0 && len > 8) /* a date time: the whole value too */
				rc = add_string(s, v, len, KIND_DATE, 0);
			return rc;
		}
		return add_string(s, v, len, KIND_DATE, 0);
	case KIND_UID:
		/* standard UIDs (SOP classes, transfer syntaxes...) identify nobody */
		if (src != SRC_EXPLICIT && len > 14 && memcmp(v, "1.2.840.10008.", 14) == 0)
			return 0;
		return add_string(s, v, len, KIND_UID, src == SRC_DATASET);
	case KIND_TEXT:
		return add_string(s, v, len, KIND_TEXT, src == SRC_DATASET);
	default:
		return add_string(s, v, len, kind, 0);
	}
}

/* Kind of a value known only by its text. */
static int guess_kind(const char *v, size_t len)
{
	size_t i, dots = 0, digits = 0, spaces = 0;
	int uidlike = 1;

	if (memchr(v, '^', len))
		return KIND_NAME;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)v[i];
		if (is_digit(c))
			digits++;
		else if (c == '.')
			dots++;
		else
			uidlike = 0;
		if (c == ' ')
			spaces++;
	}
	if (len == 8 && digits == 8 && valid_date8(v))
		return KIND_DATE;
	if (uidlike && dots >= 2 && digits > 0)
		return KIND_UID;
	if (digits > 0 && spaces == 0)
		return KIND_ID;
	return KIND_TEXT;
}

/* ------------------------------------------------------------------------ */
/* lifetime, explicit values, key files                                     */
/* ------------------------------------------------------------------------ */

DIANA_API int diana_scanner_new(diana_scanner **out)
{
	diana_scanner *s;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	*out = NULL;
	s = diana__calloc(1, sizeof *s);
	if (!s)
		return DIANA_ENOMEM;
	pthread_mutex_init(&s->mu, NULL);
	*out = s;
	return 0;
}

static void drop_build(diana_scanner *s)
{
	diana__ac_free(s->ac);
	free(s->rules);
	free(s->active);
	s->ac = NULL;
	s->rules = NULL;
	s->active = NULL;
	s->nactive = 0;
	s->built = 0;
}

DIANA_API void diana_scanner_free(diana_scanner *s)
{
	size_t i;

	if (!s)
		return;
	drop_build(s);
	for (i = 0; i < s->n; i++)
		free(s->pats[i]);
	free(s->pats);
	free(s->lens);
	free(s->kinds);
	free(s->strict);
	diana__strmap_dispose(&s->index);
	diana__strmap_dispose(&s->kept);
	diana__strmap_dispose(&s->pseudo);
	diana__mint_free(s->mint);
	free(s->ov);
	pthread_mutex_destroy(&s->mu);
	free(s);
}

/* ------------------------------------------------------------------------ */
/* the outputs' profile: options and overrides                              */
/* ------------------------------------------------------------------------ */

static int check_unused(const diana_scanner *s)
{
	if (s->used)
		return diana__error_set(DIANA_EINVAL,
		                        "set the outputs' options and overrides before adding protected values");
	return 0;
}

DIANA_API int diana_scanner_set_options(diana_scanner *s, uint32_t options)
{
	int rc;

	if (!s)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if ((rc = check_unused(s)) < 0)
		return rc;
	if (options & ~DIANA__DEID_ALL_OPTIONS)
		return diana__error_set(DIANA_EINVAL, "unknown de-identification option bits 0x%x",
		                        (unsigned)(options & ~DIANA__DEID_ALL_OPTIONS));
	if ((options & DIANA_DEID_RETAIN_LONG_FULL_DATES) && (options & DIANA_DEID_RETAIN_LONG_MODIFIED_DATES))
		return diana__error_set(DIANA_EINVAL,
		                        "retain-long-full-dates and retain-long-modified-dates exclude each other");
	s->options = options;
	return 0;
}

static int put_override(diana_scanner *s, uint32_t tag, int action)
{
	size_t i;

	for (i = 0; i < s->nov && s->ov[i].tag < tag; i++)
		;
	if (i < s->nov && s->ov[i].tag == tag) {
		if (action == DIANA_ACTION_DEFAULT) {
			memmove(s->ov + i, s->ov + i + 1, (s->nov - i - 1) * sizeof *s->ov);
			s->nov--;
		} else {
			s->ov[i].action = action;
		}
		return 0;
	}
	if (action == DIANA_ACTION_DEFAULT)
		return 0;
	{
		struct scan_override *n = realloc(s->ov, (s->nov + 1) * sizeof *n);
		if (!n)
			return diana__error_oom();
		s->ov = n;
	}
	memmove(s->ov + i + 1, s->ov + i, (s->nov - i) * sizeof *s->ov);
	s->ov[i].tag = tag;
	s->ov[i].action = action;
	s->nov++;
	return 0;
}

DIANA_API int diana_scanner_set_action(diana_scanner *s, const char *key, int action)
{
	uint32_t tag;
	int rc;

	if (!s || !key)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if ((rc = check_unused(s)) < 0)
		return rc;
	if (action < DIANA_ACTION_DEFAULT || action > DIANA_ACTION_REPLACE)
		return diana__error_set(DIANA_EINVAL, "unknown action %d", action);
	if ((rc = diana__deid_parse_key(key, &tag)) < 0)
		return rc;
	return put_override(s, tag, action);
}

DIANA_API int diana_scanner_set_profile(diana_scanner *s, const diana_profile *p)
{
	struct scan_override *ov = NULL;
	int rc;

	if (!s || !p)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if ((rc = check_unused(s)) < 0)
		return rc;
	if (p->nov && !(ov = malloc(p->nov * sizeof *ov)))
		return diana__error_oom();
	if (p->mint) { /* the engine's sham names become recognisable */
		diana__mint *m = NULL;
		if ((rc = diana__mint_dup(p->mint, &m)) < 0) {
			free(ov);
			return rc;
		}
		diana__mint_free(s->mint);
		s->mint = m;
	}
	for (size_t i = 0; i < p->nov; i++) { /* the profile's are sorted by tag too */
		ov[i].tag = p->ov[i].tag;
		ov[i].action = p->ov[i].action;
	}
	free(s->ov);
	s->ov = ov;
	s->nov = p->nov;
	s->options = p->options;
	return 0;
}

static const struct scan_override *find_override(const diana_scanner *s, uint32_t tag)
{
	size_t lo = 0, hi = s->nov;

	if (tag == 0x00020003u) /* Media Storage SOP Instance UID follows SOP Instance UID */
		tag = 0x00080018u;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->ov[mid].tag == tag)
			return &s->ov[mid];
		if (s->ov[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/*
 * Whether the value of an original's element is protected: the basic
 * profile changes the attribute, and neither an override nor an option of
 * the outputs' profile retains it. `*kept`: the outputs hold the value
 * unchanged (the kept vocabulary of the text exemption).
 */
static int protects(const diana_scanner *s, uint32_t tag, const char *vr, const char *creator, int *kept)
{
	const struct scan_override *ov = find_override(s, tag);
	int listed = diana__deid_is_identifying(tag), protect;

	if (ov)
		protect = listed && ov->action != DIANA_ACTION_KEEP;
	else
		protect = listed && !diana__deid_retains(tag, vr, creator, s->options);
	*kept = !protect && !(ov && ov->action != DIANA_ACTION_KEEP);
	return protect;
}

DIANA_API int diana_scanner_add_value(diana_scanner *s, const char *value)
{
	size_t len;

	if (!s || !value)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	s->used = 1;
	len = strlen(value);
	if (!diana__utf8_valid(value, len))
		return diana__error_set(DIANA_EINVAL, "protected value is not UTF-8");
	return add_protected(s, value, len, guess_kind(value, len), SRC_EXPLICIT);
}

static const int key_column_kinds[6] = { KIND_NAME, KIND_ID, KIND_DATE, KIND_ID, KIND_UID, KIND_DATE };
static const uint32_t key_column_tags[6] = { 0x00100010u, 0x00100020u, 0x00100030u,
	                                     0x00080050u, 0x0020000Du, 0x00080020u };
static const char *const key_column_vrs[6] = { "PN", "LO", "DA", "SH", "UI", "DA" };

/* remember a pseudonym of a key file (whole value, folded) */
static int add_pseudonym(diana_scanner *s, const char *v)
{
	size_t len = strlen(v), flen;
	int *slot = NULL, rc;
	char *f;

	trim(&v, &len);
	if (len < MIN_VALUE)
		return 0;
	f = diana__fold_dup(v, len, &flen);
	if (!f)
		return DIANA_ENOMEM;
	while (flen > 0 && f[flen - 1] == ' ')
		flen--;
	rc = diana__strmap_put(&s->pseudo, f, flen, 1, &slot);
	free(f);
	return rc < 0 ? rc : 0;
}

/* True when v[0..len) (one value) is a pseudonym listed in a key file. */
static int is_pseudonym(const diana_scanner *s, const char *v, size_t len)
{
	size_t flen;
	char *f;
	int hit;

	if (len < MIN_VALUE || s->pseudo.count == 0)
		return 0; /* no key file: nothing to fold (the common case stays allocation-free) */
	f = diana__fold_dup(v, len, &flen);
	if (!f)
		return 0; /* out of memory: no exemption (fails closed) */
	while (flen > 0 && f[flen - 1] == ' ')
		flen--;
	hit = diana__strmap_get(&s->pseudo, f, flen) != NULL;
	free(f);
	return hit;
}

static int key_row(const char *const *fields, void *user_data)
{
	diana_scanner *s = user_data;
	int i, rc, kept;

	/* the Pseudo* name and ID columns: PseudoPatientName, PseudoPatientID, PseudoAccessionNumber */
	for (i = 6; i <= 9; i++) {
		if (i == 8)
			continue; /* PseudoPatientBirthDate: a date, never exempted */
		if (fields[i] && (rc = add_pseudonym(s, fields[i])) < 0)
			return rc;
	}

	for (i = 0; i < 6; i++) { /* the Original* columns */
		/* a column the outputs' profile retains (Study Date with retain-long-full-dates...) */
		if (!protects(s, key_column_tags[i], key_column_vrs[i], NULL, &kept))
			continue;
		rc = add_protected(s, fields[i], strlen(fields[i]), key_column_kinds[i], SRC_KEYFILE);
		if (rc < 0)
			return rc;
	}
	return 0;
}

DIANA_API int diana_scanner_add_key_file(diana_scanner *s, const char *key_file)
{
	if (!s || !key_file)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	s->used = 1;
	return diana__keyfile_read(key_file, key_row, s);
}

/* ------------------------------------------------------------------------ */
/* original datasets                                                         */
/* ------------------------------------------------------------------------ */

static int vr_is(const char *vr, const char *list)
{
	const char *p;
	for (p = list; *p; p += 3)
		if (p[0] == vr[0] && p[1] == vr[1])
			return 1;
	return 0;
}

#define TEXT_VRS "AE AS CS DA DS DT IS LO LT PN SH ST TM UC UI UR UT "
#define NUMBER_VRS "US SS UL SL FL FD UV SV AT "
#define BINARY_VRS "OB OW OD OF OL OV UN "
#define SINGLE_VALUED_VRS "LT ST UT UR "

static int is_pixel_tag(uint32_t tag)
{
	return tag == 0x7FE00008u || tag == 0x7FE00009u || tag == 0x7FE00010u;
}

static int ends_with(const char *s, const char *suffix)
{
	size_t a = strlen(s), b = strlen(suffix);
	return a >= b && strcmp(s + a - b, suffix) == 0;
}

static int keyword_is_id(const char *kw)
{
	return ends_with(kw, "ID") || ends_with(kw, "IDs") || ends_with(kw, "Number") ||
	       ends_with(kw, "Numbers") || ends_with(kw, "Identifier") || ends_with(kw, "Locator");
}

/* Printable text in a binary value (private data of implicit VR files): its length, or 0. */
static size_t textlike(const uint8_t *b, size_t len)
{
	size_t i;
	while (len > 0 && (b[len - 1] == 0 || b[len - 1] == ' '))
		len--;
	if (len < MIN_VALUE || len > MAX_TEXTLIKE)
		return 0;
	for (i = 0; i < len; i++) {
		if (b[i] < 0x20 && b[i] != '\t' && b[i] != '\r' && b[i] != '\n' && b[i] != 0x1B)
			return 0;
		if (b[i] == 0x7F)
			return 0;
	}
	return len;
}

/*
 * An element the walk visited but whose value cannot be read (undecodable
 * text; a group 0002 element in the dataset body, which keys cannot reach):
 * it cannot be checked, so the file fails.
 */
static int unreadable(const diana_element *el, int rc)
{
	if (rc == DIANA_ENOMEM)
		return rc;
	return diana__error_set(DIANA_EDICOM, "element (%04X,%04X) cannot be read: not scanned",
	                        (unsigned)(el->tag >> 16), (unsigned)(el->tag & 0xFFFF));
}

typedef struct add_ctx {
	diana_scanner *s;
	const diana_dataset *ds;
} add_ctx;

/* Each '\'-separated value of `v` (or all of it) as a protected value. */
static int add_values(diana_scanner *s, const char *v, size_t len, int kind, int split)
{
	size_t a = 0;
	int rc = 0;

	if (!split)
		return add_protected(s, v, len, kind, SRC_DATASET);
	while (rc == 0 && a <= len) {
		size_t b = a;
		while (b < len && v[b] != '\\')
			b++;
		rc = add_protected(s, v + a, b - a, kind, SRC_DATASET);
		a = b + 1;
	}
	return rc;
}

static int add_kept(diana_scanner *s, const char *v, size_t len)
{
	size_t flen;
	char *f;
	int rc;

	trim(&v, &len);
	if (len < MIN_VALUE)
		return 0;
	f = diana__fold_dup(v, len, &flen);
	if (!f)
		return DIANA_ENOMEM;
	rc = diana__strmap_put(&s->kept, f, flen, 0, NULL);
	free(f);
	return rc < 0 ? rc : 0;
}

/*
 * The private creator of a private data element's block ((gggg,xxee) ->
 * (gggg,00xx) in the same item), or NULL when there is none.
 */
static int private_creator(const diana_dataset *ds, const diana_element *el, char **out)
{
	size_t n = strlen(el->path);
	char *key;
	int rc;

	*out = NULL;
	if ((el->tag & 0xFFFF) < 0x1000 || n < 8)
		return 0;
	if (!(key = diana__strdup(el->path)))
		return DIANA_ENOMEM;
	snprintf(key + n - 4, 5, "00%02X", (unsigned)((el->tag >> 8) & 0xFF));
	rc = diana_dataset_get(ds, key, out);
	free(key);
	if (rc == DIANA_ENOMEM)
		return rc;
	if (rc < 0) { /* no creator: the element is in no safe block */
		diana_error_clear();
		*out = NULL;
	}
	return 0;
}

static int add_element(const diana_element *el, void *user_data)
{
	add_ctx *c = user_data;
	diana_scanner *s = c->s;
	uint32_t group = el->tag >> 16, elem = el->tag & 0xFFFF;
	int identifying, kept, kind = 0, rc = 0;
	char *text = NULL, *creator = NULL;

	if (strcmp(el->vr, "SQ") == 0 || is_pixel_tag(el->tag) || elem == 0 || el->vm == 0)
		return 0;
	if ((group & 1) && elem >= 0x10 && elem <= 0xFF)
		return 0; /* private creator: a vendor's name, identifies nobody */
	if ((group & 1) && (s->options & DIANA_DEID_RETAIN_SAFE_PRIVATE)) {
		/* the safe private list is matched by the creator of the element's block */
		rc = private_creator(c->ds, el, &creator);
		if (rc < 0)
			return rc;
	}
	identifying = protects(s, el->tag, el->vr, creator, &kept);
	free(creator);

	if (vr_is(el->vr, TEXT_VRS)) {
		rc = diana_dataset_get(c->ds, el->path, &text);
		if (rc < 0) /* undecodable text: the original cannot be protected fully */
			return unreadable(el, rc);
		if (!identifying) {
			rc = kept ? add_kept(s, text, strlen(text)) : 0;
		} else if (vr_is(el->vr, "PN ")) {
			kind = KIND_NAME;
		} else if (vr_is(el->vr, "UI ")) {
			kind = KIND_UID;
		} else if (vr_is(el->vr, "DA DT ")) {
			kind = KIND_DATE;
		} else if (vr_is(el->vr, "AE LO LT SH ST UC UR UT ")) {
			kind = keyword_is_id(el->keyword) ? KIND_ID : KIND_TEXT;
		}
		/* TM, AS, CS, DS, IS: times, ages, coded values and numbers identify nobody */
		if (kind)
			rc = add_values(s, text, strlen(text), kind, !vr_is(el->vr, SINGLE_VALUED_VRS));
		diana_free(text);
		return rc;
	}
	if (identifying && (group & 1) && vr_is(el->vr, BINARY_VRS)) {
		/* private values of implicit VR data (UN), or text kept in OB */
		uint8_t *bytes = NULL;
		size_t len = 0, tl;
		rc = diana_dataset_get_bytes(c->ds, el->path, &bytes, &len);
		if (rc < 0)
			return unreadable(el, rc);
		tl = bytes ? textlike(bytes, len) : 0;
		if (tl) {
			size_t a = 0;
			const char *v = (const char *)bytes;
			while (rc == 0 && a <= tl) {
				size_t b = a;
				while (b < tl && v[b] != '\\')
					b++;
				if (b > a) {
					const char *p = v + a;
					size_t pl = b - a;
					trim(&p, &pl);
					kind = guess_kind(p, pl);
					if (kind == KIND_ID)
						kind = KIND_TEXT; /* a vendor's value: text (exempt when kept elsewhere) */
					rc = add_protected(s, p, pl, kind, SRC_DATASET);
				}
				a = b + 1;
			}
		}
		diana_free(bytes);
	}
	return rc;
}

DIANA_API int diana_scanner_add_dataset(diana_scanner *s, const diana_dataset *original)
{
	add_ctx c;
	int rc;

	if (!s || !original)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	s->used = 1;
	c.s = s;
	c.ds = original;
	rc = diana_dataset_foreach(original, DIANA_FOREACH_META, add_element, &c);
	if (rc == 0 && s->mint)
		rc = add_patient_sham(s, original);
	s->built = 0;
	return rc;
}

/* ------------------------------------------------------------------------ */
/* matching                                                                  */
/* ------------------------------------------------------------------------ */

static int rule_of(const char *p, size_t len, int kinds)
{
	size_t i, digits = 0;

	if (is_numeric(p, len)) {
		for (i = 0; i < len; i++)
			digits += is_digit((unsigned char)p[i]);
		if ((kinds & KIND_DATE) && digits == len && len == 8)
			return RULE_DATE;
		return RULE_NUMBER;
	}
	return len < MIN_ANYWHERE ? RULE_WORD : RULE_ANYWHERE;
}

typedef struct match_ctx {
	diana_scanner *s; /* written only while building (text exemption), under its lock */
	const uint8_t *text;
	const uint8_t *cls;
	size_t n;
	int check_text_exemption; /* used while building */
	uint8_t found;
} match_ctx;

static int cls_of(const match_ctx *m, size_t i)
{
	return m->cls[i] & DIANA__FOLD_CLASS_MASK;
}

static int word_boundary(const match_ctx *m, size_t left, size_t right)
{
	int a = m->cls[left], b = m->cls[right];
	int ca = a & DIANA__FOLD_CLASS_MASK, cb = b & DIANA__FOLD_CLASS_MASK;

	if (ca == DIANA__FOLD_OTHER || cb == DIANA__FOLD_OTHER || ca != cb)
		return 1;
	/* camelCase: a lower-case letter followed by an upper-case one */
	return ca == DIANA__FOLD_LETTER && !(a & DIANA__FOLD_UPPER) && (b & DIANA__FOLD_UPPER);
}

/* the digit run of the match does not go on to the left: no digit, no "9." */
static int number_left_ok(const match_ctx *m, size_t start)
{
	if (start == 0)
		return 1;
	if (cls_of(m, start - 1) == DIANA__FOLD_DIGIT)
		return 0;
	if ((m->text[start - 1] == '.' || m->text[start - 1] == ',') && start >= 2 &&
	    cls_of(m, start - 2) == DIANA__FOLD_DIGIT)
		return 0;
	return 1;
}

static int number_right_ok(const match_ctx *m, size_t end, int dotted)
{
	if (end + 1 >= m->n)
		return 1;
	if (cls_of(m, end + 1) == DIANA__FOLD_DIGIT)
		return 0;
	/* "123456.7" is another number; "1.2.3.4" followed by ".5" is a derived UID */
	if (!dotted && (m->text[end + 1] == '.' || m->text[end + 1] == ',') && end + 2 < m->n &&
	    cls_of(m, end + 2) == DIANA__FOLD_DIGIT)
		return 0;
	return 1;
}

static int on_match(uint32_t id, size_t end, void *user_data)
{
	match_ctx *m = user_data;
	const diana_scanner *s = m->s;
	size_t len = s->lens[id], start = end + 1 - len;
	int ok;

	switch (s->rules[id]) {
	case RULE_WORD:
		ok = (start == 0 || word_boundary(m, start - 1, start)) &&
		     (end + 1 >= m->n || word_boundary(m, end, end + 1));
		break;
	case RULE_NUMBER:
		ok = number_left_ok(m, start) &&
		     number_right_ok(m, end, memchr(s->pats[id], '.', len) != NULL);
		break;
	case RULE_DATE: /* may be followed by a time (DT) */
		ok = number_left_ok(m, start);
		break;
	default:
		ok = 1;
	}
	/* "PID-0004567" is another ID than "PID-000456": digits at an edge must not go on */
	if (ok && s->rules[id] != RULE_NUMBER && s->rules[id] != RULE_DATE) {
		if (start > 0 && is_digit(m->text[start]) && cls_of(m, start - 1) == DIANA__FOLD_DIGIT)
			ok = 0;
		if (end + 1 < m->n && is_digit(m->text[end]) && cls_of(m, end + 1) == DIANA__FOLD_DIGIT)
			ok = 0;
	}
	if (!ok)
		return 0;
	if (m->check_text_exemption) {
		/* a value the profile keeps in an original is no leak when seen again */
		s->active[id] &= s->strict[id];
		return 0;
	}
	m->found |= s->active[id];
	return 0;
}

typedef struct scratch {
	uint8_t *buf;
	uint8_t *cls;
	size_t cap;
} scratch;

static void scratch_dispose(scratch *sc)
{
	free(sc->buf);
	free(sc->cls);
	sc->buf = sc->cls = NULL;
	sc->cap = 0;
}

/* Fold `data` and return the kinds of the protected values found in it. */
static int match_bytes(const diana_scanner *s, scratch *sc, const void *data, size_t len, int exemption,
                       uint8_t *found)
{
	match_ctx m;
	size_t need;

	*found = 0;
	if (len == 0)
		return 0;
	if (len > (SIZE_MAX - 1) / 2)
		return diana__error_oom();
	need = 2 * len + 1;
	if (need > sc->cap) {
		uint8_t *b = realloc(sc->buf, need), *c;
		if (b)
			sc->buf = b;
		c = realloc(sc->cls, need);
		if (c)
			sc->cls = c;
		if (!b || !c)
			return diana__error_oom();
		sc->cap = need;
	}
	memset(&m, 0, sizeof m);
	m.s = (diana_scanner *)s;
	m.text = sc->buf;
	m.cls = sc->cls;
	m.n = diana__fold((const uint8_t *)data, len, sc->buf, sc->cls);
	m.check_text_exemption = exemption;
	diana__ac_search(s->ac, m.text, m.n, on_match, &m);
	*found = m.found;
	return 0;
}

static int build_locked(diana_scanner *s)
{
	size_t i;
	int rc;
	scratch sc = { NULL, NULL, 0 };

	drop_build(s);
	s->rules = malloc(s->n ? s->n : 1);
	s->active = malloc(s->n ? s->n : 1);
	if (!s->rules || !s->active) {
		drop_build(s);
		return diana__error_oom();
	}
	for (i = 0; i < s->n; i++) {
		s->rules[i] = (uint8_t)rule_of(s->pats[i], s->lens[i], s->kinds[i]);
		s->active[i] = s->kinds[i];
	}
	rc = diana__ac_build(&s->ac, (const char *const *)s->pats, s->lens, s->n);
	if (rc) {
		drop_build(s);
		return rc;
	}
	/* text exemption: free text also found in kept values of the originals */
	for (i = 0; i < s->kept.cap; i++) {
		uint8_t found;
		if (!s->kept.keys[i])
			continue;
		rc = match_bytes(s, &sc, s->kept.keys[i], s->kept.lens[i], 1, &found);
		if (rc) {
			scratch_dispose(&sc);
			drop_build(s);
			return rc;
		}
	}
	scratch_dispose(&sc);
	for (i = 0; i < s->n; i++)
		s->nactive += s->active[i] != 0;
	s->built = 1;
	return 0;
}

/* ------------------------------------------------------------------------ */
/* scanning                                                                  */
/* ------------------------------------------------------------------------ */

typedef struct finding {
	char *where;
	uint8_t kinds;
} finding;

typedef struct scan_ctx {
	const diana_scanner *s;
	const diana_dataset *ds;
	scratch sc;
	finding *f;
	size_t nf, capf;
} scan_ctx;

static int add_finding(scan_ctx *c, const char *prefix, const char *where, uint8_t kinds)
{
	diana__buf b = DIANA__BUF_INIT;

	if (!kinds)
		return 0;
	if (c->nf == c->capf) {
		size_t cap = c->capf ? c->capf * 2 : 16;
		finding *f = realloc(c->f, cap * sizeof *f);
		if (!f)
			return diana__error_oom();
		c->f = f;
		c->capf = cap;
	}
	diana__buf_puts(&b, prefix);
	diana__buf_puts(&b, where);
	if (b.oom)
		return DIANA_ENOMEM;
	c->f[c->nf].where = diana__buf_detach(&b, NULL);
	c->f[c->nf].kinds = kinds;
	c->nf++;
	return 0;
}

/*
 * Match the value of an output element, value by value ('\\'-separated
 * unless `single`): a value that is one of the engine's constants (dummies,
 * method texts) is skipped, it is the same in every output whatever the
 * original said. Used on decoded text and on the raw bytes of text VRs.
 */
static int match_values(scan_ctx *c, const char *data, size_t len, int single, uint8_t *found)
{
	const char *p = data, *end = data + len;

	*found = 0;
	if (!data || !len)
		return 0;
	for (;;) {
		const char *e = single ? NULL : memchr(p, '\\', (size_t)(end - p));
		size_t n = e ? (size_t)(e - p) : (size_t)(end - p);
		const char *v = p;
		size_t vn = n;
		uint8_t f;
		int rc;
		trim(&v, &vn);
		if (!is_engine_constant(v, vn) && !is_pseudonym(c->s, v, vn)) {
			if ((rc = match_bytes(c->s, &c->sc, p, n, 0, &f)) != 0)
				return rc;
			*found |= f;
		}
		if (!e)
			return 0;
		p = e + 1;
	}
}

/*
 * An output element the outputs' options or overrides retain on purpose
 * (the scanner was told with set_options/set_action/set_profile): its
 * values are there deliberately, they are not findings.
 */
static int retained_on_purpose(scan_ctx *c, const diana_element *el, int *skip)
{
	const diana_scanner *s = c->s;
	char *creator = NULL;
	int kept, rc;

	*skip = 0;
	if (!s->options && !s->nov)
		return 0;
	if (!diana__deid_is_identifying(el->tag))
		return 0; /* the basic profile keeps it: scanned as always */
	if (((el->tag >> 16) & 1) && (s->options & DIANA_DEID_RETAIN_SAFE_PRIVATE) &&
	    (rc = private_creator(c->ds, el, &creator)) < 0)
		return rc;
	*skip = !protects(s, el->tag, el->vr, creator, &kept);
	free(creator);
	return 0;
}

static int scan_element(const diana_element *el, void *user_data)
{
	scan_ctx *c = user_data;
	const char *prefix = (el->tag >> 16) == 0x0002 && el->depth == 0 ? "file meta " : "";
	uint8_t text_found = 0, raw_found = 0;
	int rc;

	int skip, single = vr_is(el->vr, SINGLE_VALUED_VRS);

	if (strcmp(el->vr, "SQ") == 0 || is_pixel_tag(el->tag))
		return 0;
	if ((rc = retained_on_purpose(c, el, &skip)) != 0 || skip)
		return rc;
	if (vr_is(el->vr, TEXT_VRS) || vr_is(el->vr, NUMBER_VRS)) {
		char *text = NULL;
		rc = diana_dataset_get(c->ds, el->path, &text);
		if (rc < 0)
			return unreadable(el, rc);
		rc = match_values(c, text, strlen(text), single, &text_found);
		diana_free(text);
		if (rc)
			return rc;
		if ((rc = add_finding(c, prefix, el->path, text_found)) != 0)
			return rc;
	}
	if (!vr_is(el->vr, NUMBER_VRS)) {
		uint8_t *bytes = NULL;
		size_t len = 0;
		char rprefix[32];
		rc = diana_dataset_get_bytes(c->ds, el->path, &bytes, &len);
		if (rc < 0)
			return unreadable(el, rc);
		if (vr_is(el->vr, TEXT_VRS)) /* the engine's constants are skipped here too */
			rc = match_values(c, (const char *)bytes, len, single, &raw_found);
		else
			rc = match_bytes(c->s, &c->sc, bytes, len, 0, &raw_found);
		diana_free(bytes);
		if (rc)
			return rc;
		raw_found &= (uint8_t)~text_found; /* already reported for this element */
		snprintf(rprefix, sizeof rprefix, "raw bytes of %s", prefix);
		if ((rc = add_finding(c, rprefix, el->path, raw_found)) != 0)
			return rc;
	}
	return 0;
}

static int scan_path_name(scan_ctx *c, const char *path)
{
	const char *p = path;
	uint8_t all = 0;

	while (*p) {
		const char *e = strchr(p, '/');
		size_t n = e ? (size_t)(e - p) : strlen(p);
		uint8_t found;
		int rc = match_bytes(c->s, &c->sc, p, n, 0, &found);
		if (rc)
			return rc;
		all |= found;
		p += n;
		while (*p == '/')
			p++;
	}
	return add_finding(c, "", "file name", all);
}

static int ensure_built(const diana_scanner *cs)
{
	diana_scanner *s = (diana_scanner *)cs; /* the lazy build is internally locked */
	int rc = 0;

	pthread_mutex_lock(&s->mu);
	if (!s->built)
		rc = build_locked(s);
	pthread_mutex_unlock(&s->mu);
	return rc;
}

static int make_report(const scan_ctx *c, char **report)
{
	cJSON *arr = cJSON_CreateArray();
	char *text;
	size_t i;
	int k;

	if (!arr)
		return diana__error_oom();
	for (i = 0; i < c->nf; i++) {
		for (k = 0; k < NKINDS; k++) {
			cJSON *o;
			if (!(c->f[i].kinds & (1u << k)))
				continue;
			o = cJSON_CreateObject();
			if (!o || !cJSON_AddStringToObject(o, "where", c->f[i].where) ||
			    !cJSON_AddStringToObject(o, "kind", kind_names[k])) {
				cJSON_Delete(o);
				cJSON_Delete(arr);
				return diana__error_oom();
			}
			cJSON_AddItemToArray(arr, o);
		}
	}
	text = cJSON_PrintUnformatted(arr);
	cJSON_Delete(arr);
	if (!text)
		return diana__error_oom();
	*report = diana__strdup(text);
	cJSON_free(text);
	return *report ? 0 : DIANA_ENOMEM;
}

DIANA_API int diana_scanner_scan_file(const diana_scanner *s, const char *path, char **report)
{
	diana_dataset_options opts = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	scan_ctx c;
	uint8_t *data = NULL;
	size_t len = 0, i;
	int rc;

	if (report)
		*report = NULL;
	if (!s || !path)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if ((rc = ensure_built(s)) != 0)
		return rc;
	if (s->nactive == 0)
		return diana__error_set(DIANA_EINVAL, "the scanner holds no protected values");

	memset(&c, 0, sizeof c);
	c.s = s;
	if ((rc = scan_path_name(&c, path)) != 0)
		goto out;
	if ((rc = diana__file_read(path, 0, &data, &len)) != 0)
		goto out;
	if (len >= 132 && memcmp(data + 128, "DICM", 4) == 0) {
		uint8_t found;
		if ((rc = match_bytes(s, &c.sc, data, 128, 0, &found)) != 0 ||
		    (rc = add_finding(&c, "", "preamble", found)) != 0)
			goto out;
	}
	/* lenient: the scanner reads what it can; anything unreadable still fails */
	opts.flags = DIANA_OPEN_LENIENT;
	rc = diana_dataset_open_memory(&ds, data, len, &opts);
	free(data);
	data = NULL;
	if (rc < 0) {
		if (rc != DIANA_ENOMEM && rc != DIANA_EDICOM)
			rc = diana__error_set(DIANA_EDICOM, "not a readable DICOM file (%s)", diana_strerror(rc));
		goto out;
	}
	c.ds = ds;
	rc = diana_dataset_foreach(ds, DIANA_FOREACH_META, scan_element, &c);
	if (rc < 0)
		goto out;
	if (c.nf > 0) {
		size_t n = 0;
		for (i = 0; i < c.nf; i++) {
			int k;
			for (k = 0; k < NKINDS; k++)
				n += (c.f[i].kinds >> k) & 1;
		}
		if (report && (rc = make_report(&c, report)) != 0)
			goto out;
		rc = diana__error_set(DIANA_ELEAK, "protected data found in %zu place%s", n, n == 1 ? "" : "s");
	} else if (report) {
		*report = diana__strdup("[]");
		rc = *report ? 0 : DIANA_ENOMEM;
	}
out:
	free(data);
	diana_dataset_free(ds);
	scratch_dispose(&c.sc);
	for (i = 0; i < c.nf; i++)
		free(c.f[i].where);
	free(c.f);
	if (rc < 0 && rc != DIANA_ELEAK && report && *report) {
		diana_free(*report);
		*report = NULL;
	}
	return rc;
}
