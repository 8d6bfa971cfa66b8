/*
 * libdiana - study filters of pipelines (see filter.h and
 * doc/pipeline-filter.md).
 *
 * The JSON rules are compiled once into a tree of nodes: keys are checked
 * (syntax and dictionary keywords) and regexes compiled at load, so that a
 * bad filter is refused before the first study and matching needs no
 * allocation beyond the values it reads. Every load error is DIANA_EINVAL
 * with the position of the rule ("filter.all[1].any[0]: ...").
 *
 * Choices (documented in doc/pipeline-filter.md):
 * - equals/one_of compare exactly (case-sensitive) by default;
 *   "case_sensitive": false folds ASCII letters only. regex is
 *   case-insensitive unless "case_sensitive": true.
 * - Values are read with diana_dataset_get() (padding removed) and split at
 *   '\' unless the dictionary VR of the element is LT, ST, UT or UR (single
 *   valued: a '\' there is text); a rule matches when any value matches.
 * - An absent element (or a path through a missing item, or through an
 *   element that is not a sequence) never matches equals, one_of, regex or
 *   range; neither does a value that cannot be read as text (sequence,
 *   binary VR). "present" is true for any element that exists, empty
 *   or not.
 * - range: a value is a number (DS/IS syntax, or the text of a binary
 *   number) or an Age String ("012Y", "006M", "003W", "010D" -> years:
 *   M/12, W*7/365.25, D/365.25); bounds inclusive, null = open. Other
 *   values do not match. Parsing ignores the locale.
 * - all/any need at least one rule (an empty list is most likely a
 *   mistake that would silently pass or drop every study); nesting of
 *   all/any/not is limited to 32 levels. An empty object matches all only
 *   as the whole filter.
 * - Errors while reading a value other than "absent"/"not text" (for
 *   example DIANA_EDICOM: a value that cannot be decoded from its
 *   character set) are returned by diana__filter_match() as they are.
 *
 * Matching reads the tree only: one filter may be used by several threads
 * at once (regexec() on a compiled regex_t is thread-safe).
 * Messages never contain element values: only rule positions, keys and
 * operator names, which come from the configuration.
 * SPDX-License-Identifier: MIT
 */
#include <locale.h>
#include <math.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../core/core.h"
#include "../dicom/dicom.h"
#include "filter.h"

#define FILTER_MAX_DEPTH 32
#define POS_MAX 512

enum node_op {
	OP_ALL,
	OP_ANY,
	OP_NOT,
	OP_EQUALS,
	OP_ONE_OF,
	OP_REGEX,
	OP_RANGE,
	OP_PRESENT
};

typedef struct node node;

struct node {
	enum node_op op;
	/* all / any / not */
	node **kids;
	size_t nkids;
	/* element rules */
	char *key;
	int split;          /* split the value at '\' */
	int icase;          /* equals/one_of: ASCII case folding */
	char **values;      /* equals (1) / one_of (n) */
	size_t nvalues;
	regex_t re;
	int has_re;
	double lo, hi;
	int has_lo, has_hi;
	int present;        /* present: 1 = must exist, 0 = must be absent */
};

struct diana__filter {
	node *root;         /* NULL: match all */
	locale_t c_locale;  /* for strtod_l */
};

/* --- positions ------------------------------------------------------------ */

typedef struct pos {
	char text[POS_MAX];
	size_t len;
} pos;

/* Append to the position; returns the previous length for pos_pop(). */
static size_t pos_push(pos *p, const char *name, size_t index, int indexed)
{
	size_t old = p->len;
	int n;
	if (p->len >= sizeof p->text - 1)
		return old;
	if (indexed)
		n = snprintf(p->text + p->len, sizeof p->text - p->len, ".%s[%zu]", name, index);
	else
		n = snprintf(p->text + p->len, sizeof p->text - p->len, ".%s", name);
	if (n < 0)
		n = 0;
	p->len += (size_t)n;
	if (p->len >= sizeof p->text)
		p->len = sizeof p->text - 1;
	return old;
}

static void pos_pop(pos *p, size_t old)
{
	p->len = old;
	p->text[old] = '\0';
}

/* --- freeing -------------------------------------------------------------- */

static void node_free(node *n)
{
	size_t i;
	if (!n)
		return;
	for (i = 0; i < n->nkids; i++)
		node_free(n->kids[i]);
	free(n->kids);
	for (i = 0; i < n->nvalues; i++)
		free(n->values[i]);
	free(n->values);
	free(n->key);
	if (n->has_re)
		regfree(&n->re);
	free(n);
}

void diana__filter_free(diana__filter *f)
{
	if (!f)
		return;
	node_free(f->root);
	if (f->c_locale != (locale_t)0)
		freelocale(f->c_locale);
	free(f);
}

/* --- keys ------------------------------------------------------------------ */

/* Four hex digits -> 0..0xFFFF, or -1. */
static int hex4(const char *s)
{
	int i, r = 0;
	for (i = 0; i < 4; i++) {
		char c = s[i];
		int d;
		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			return -1;
		r = (r << 4) | d;
	}
	return r;
}

/*
 * Check a key as diana_dataset_get() parses it (keyword, "gggg,eeee",
 * "(gggg,eeee)", "ggggeeee", items "[n]", segments joined by '.', no index
 * on the last one) so that a typo fails at load rather than never
 * matching. `*last_tag` receives the tag of the last segment.
 */
static int check_key(const char *key, const pos *p, uint32_t *last_tag)
{
	const char *s = key;
	if (!*s)
		return diana__error_set(DIANA_EINVAL, "%s: 'tag' is empty", p->text);
	for (;;) {
		const char *end = s;
		size_t n;
		uint32_t tag = 0;
		int g, e, has_index = 0;
		while (*end && *end != '.' && *end != '[')
			end++;
		n = (size_t)(end - s);
		if (n == 11 && s[0] == '(' && s[5] == ',' && s[10] == ')' && (g = hex4(s + 1)) >= 0 &&
		    (e = hex4(s + 6)) >= 0) {
			tag = ((uint32_t)g << 16) | (uint32_t)e;
		} else if (n == 9 && s[4] == ',' && (g = hex4(s)) >= 0 && (e = hex4(s + 5)) >= 0) {
			tag = ((uint32_t)g << 16) | (uint32_t)e;
		} else if (n == 8 && (g = hex4(s)) >= 0 && (e = hex4(s + 4)) >= 0) {
			tag = ((uint32_t)g << 16) | (uint32_t)e;
		} else {
			char name[128];
			size_t i;
			int rc;
			if (n == 0 || n >= sizeof name)
				return diana__error_set(DIANA_EINVAL, "%s: invalid key '%.64s'", p->text, key);
			for (i = 0; i < n; i++) {
				char c = s[i];
				if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9')))
					return diana__error_set(DIANA_EINVAL, "%s: invalid key '%.64s'", p->text, key);
			}
			memcpy(name, s, n);
			name[n] = '\0';
			rc = diana__dict_lookup(name, &tag);
			if (rc == DIANA_ENOTFOUND)
				return diana__error_set(DIANA_EINVAL, "%s: unknown keyword '%s' in key '%.64s'",
				                        p->text, name, key);
			if (rc < 0)
				return rc == DIANA_ENOMEM ? diana__error_oom()
				                          : diana__error_set(rc, "%s: keyword lookup failed", p->text);
		}
		s = end;
		if (*s == '[') {
			s++;
			if (*s < '0' || *s > '9')
				return diana__error_set(DIANA_EINVAL, "%s: invalid item index in key '%.64s'", p->text, key);
			while (*s >= '0' && *s <= '9')
				s++;
			if (*s != ']' || (size_t)(s - end) > 10)
				return diana__error_set(DIANA_EINVAL, "%s: invalid item index in key '%.64s'", p->text, key);
			s++;
			has_index = 1;
		}
		if (!*s) {
			if (has_index)
				return diana__error_set(DIANA_EINVAL,
				                        "%s: item index on the last element of key '%.64s'", p->text, key);
			*last_tag = tag;
			return 0;
		}
		if (*s != '.' || !s[1])
			return diana__error_set(DIANA_EINVAL, "%s: invalid key '%.64s'", p->text, key);
		s++;
	}
}

/* --- compiling ------------------------------------------------------------- */

static const char *const value_ops[] = { "equals", "one_of", "regex", "range", "present" };
static const char *const group_ops[] = { "all", "any", "not" };

static int is_one_of(const char *k, const char *const *list, size_t n)
{
	size_t i;
	for (i = 0; i < n; i++)
		if (strcmp(k, list[i]) == 0)
			return 1;
	return 0;
}

#define NELEM(a) (sizeof(a) / sizeof((a)[0]))

static int compile(const cJSON *j, pos *p, int depth, node **out);

static int compile_list(const cJSON *arr, const char *opname, pos *p, int depth, node *n)
{
	const cJSON *it;
	size_t count = 0, i = 0;
	if (!cJSON_IsArray(arr))
		return diana__error_set(DIANA_EINVAL, "%s: '%s' needs an array of rules", p->text, opname);
	for (it = arr->child; it; it = it->next)
		count++;
	if (count == 0)
		return diana__error_set(DIANA_EINVAL, "%s: '%s' needs at least one rule", p->text, opname);
	n->kids = diana__calloc(count, sizeof *n->kids);
	if (!n->kids)
		return DIANA_ENOMEM;
	for (it = arr->child; it; it = it->next, i++) {
		size_t old = pos_push(p, opname, i, 1);
		int rc = compile(it, p, depth + 1, &n->kids[i]);
		pos_pop(p, old);
		n->nkids = i + 1;
		if (rc < 0)
			return rc;
	}
	return 0;
}

static int dup_value(const cJSON *v, char **out)
{
	*out = diana__strdup(v->valuestring);
	return *out ? 0 : DIANA_ENOMEM;
}

static int compile_range(const cJSON *v, pos *p, node *n)
{
	const cJSON *a, *b;
	if (!cJSON_IsArray(v) || !(a = v->child) || !(b = a->next) || b->next)
		return diana__error_set(DIANA_EINVAL, "%s: 'range' needs [min, max] (numbers or null)", p->text);
	if (!cJSON_IsNull(a) && !cJSON_IsNumber(a))
		return diana__error_set(DIANA_EINVAL, "%s: 'range' needs [min, max] (numbers or null)", p->text);
	if (!cJSON_IsNull(b) && !cJSON_IsNumber(b))
		return diana__error_set(DIANA_EINVAL, "%s: 'range' needs [min, max] (numbers or null)", p->text);
	n->has_lo = cJSON_IsNumber(a);
	n->has_hi = cJSON_IsNumber(b);
	n->lo = n->has_lo ? a->valuedouble : 0;
	n->hi = n->has_hi ? b->valuedouble : 0;
	if ((n->has_lo && !isfinite(n->lo)) || (n->has_hi && !isfinite(n->hi)))
		return diana__error_set(DIANA_EINVAL, "%s: 'range' bounds must be finite", p->text);
	if (n->has_lo && n->has_hi && n->lo > n->hi)
		return diana__error_set(DIANA_EINVAL, "%s: 'range' minimum is greater than its maximum", p->text);
	return 0;
}

static int compile_element(const cJSON *tag, const cJSON *opj, const cJSON *cs,
                           pos *p, node *n)
{
	const char *op = opj->string;
	uint32_t last_tag = 0;
	char vr[3];
	int rc;

	if (!cJSON_IsString(tag) || !tag->valuestring)
		return diana__error_set(DIANA_EINVAL, "%s: 'tag' must be a string", p->text);
	if ((rc = check_key(tag->valuestring, p, &last_tag)) < 0)
		return rc;
	n->key = diana__strdup(tag->valuestring);
	if (!n->key)
		return DIANA_ENOMEM;
	diana__dict_vr(last_tag, vr);
	n->split = !(strcmp(vr, "LT") == 0 || strcmp(vr, "ST") == 0 || strcmp(vr, "UT") == 0 ||
	             strcmp(vr, "UR") == 0);

	if (strcmp(op, "present") != 0) {
		static const char *const binary[] = { "SQ", "OB", "OW", "OF", "OD", "OL", "OV" };
		if (is_one_of(vr, binary, NELEM(binary)))
			return diana__error_set(DIANA_EINVAL, "%s: '%.64s' has VR %s: only 'present' applies",
			                        p->text, tag->valuestring, vr);
	}

	if (cs) {
		if (strcmp(op, "range") == 0 || strcmp(op, "present") == 0)
			return diana__error_set(DIANA_EINVAL, "%s: 'case_sensitive' does not apply to '%s'", p->text, op);
		if (!cJSON_IsBool(cs))
			return diana__error_set(DIANA_EINVAL, "%s: 'case_sensitive' must be true or false", p->text);
	}

	if (strcmp(op, "equals") == 0) {
		n->op = OP_EQUALS;
		n->icase = cs && cJSON_IsFalse(cs);
		if (!cJSON_IsString(opj) || !opj->valuestring)
			return diana__error_set(DIANA_EINVAL, "%s: 'equals' needs a string (use 'range' for numbers)",
			                        p->text);
		n->values = diana__calloc(1, sizeof *n->values);
		if (!n->values)
			return DIANA_ENOMEM;
		n->nvalues = 1;
		return dup_value(opj, &n->values[0]);
	}
	if (strcmp(op, "one_of") == 0) {
		const cJSON *it;
		size_t count = 0, i = 0;
		n->op = OP_ONE_OF;
		n->icase = cs && cJSON_IsFalse(cs);
		if (!cJSON_IsArray(opj))
			return diana__error_set(DIANA_EINVAL, "%s: 'one_of' needs an array of strings", p->text);
		for (it = opj->child; it; it = it->next) {
			if (!cJSON_IsString(it) || !it->valuestring)
				return diana__error_set(DIANA_EINVAL, "%s: 'one_of' needs an array of strings", p->text);
			count++;
		}
		if (count == 0)
			return diana__error_set(DIANA_EINVAL, "%s: 'one_of' needs at least one string", p->text);
		n->values = diana__calloc(count, sizeof *n->values);
		if (!n->values)
			return DIANA_ENOMEM;
		for (it = opj->child; it; it = it->next, i++) {
			n->nvalues = i + 1;
			if ((rc = dup_value(it, &n->values[i])) < 0)
				return rc;
		}
		return 0;
	}
	if (strcmp(op, "regex") == 0) {
		int flags = REG_EXTENDED | REG_NOSUB;
		n->op = OP_REGEX;
		if (!(cs && cJSON_IsTrue(cs)))
			flags |= REG_ICASE;
		if (!cJSON_IsString(opj) || !opj->valuestring)
			return diana__error_set(DIANA_EINVAL, "%s: 'regex' needs a string", p->text);
		rc = regcomp(&n->re, opj->valuestring, flags);
		if (rc != 0) {
			char msg[160];
			if (rc == REG_ESPACE)
				return diana__error_oom();
			regerror(rc, &n->re, msg, sizeof msg);
			return diana__error_set(DIANA_EINVAL, "%s: invalid regex: %s", p->text, msg);
		}
		n->has_re = 1;
		return 0;
	}
	if (strcmp(op, "range") == 0) {
		n->op = OP_RANGE;
		return compile_range(opj, p, n);
	}
	/* present */
	n->op = OP_PRESENT;
	if (!cJSON_IsBool(opj))
		return diana__error_set(DIANA_EINVAL, "%s: 'present' needs true or false", p->text);
	n->present = cJSON_IsTrue(opj);
	return 0;
}

static int compile(const cJSON *j, pos *p, int depth, node **out)
{
	const cJSON *it, *tag = NULL, *cs = NULL, *op = NULL;
	node *n;
	int rc;

	*out = NULL;
	if (depth > FILTER_MAX_DEPTH)
		return diana__error_set(DIANA_EINVAL, "%s: rules nested deeper than %d levels", p->text,
		                        FILTER_MAX_DEPTH);
	if (!cJSON_IsObject(j))
		return diana__error_set(DIANA_EINVAL, "%s: a rule must be a JSON object", p->text);

	for (it = j->child; it; it = it->next) {
		const char *k = it->string ? it->string : "";
		const cJSON *o;
		/* duplicate keys: cJSON keeps them all */
		for (o = j->child; o != it; o = o->next)
			if (o->string && strcmp(o->string, k) == 0)
				return diana__error_set(DIANA_EINVAL, "%s: duplicate key '%.64s'", p->text, k);
		if (strcmp(k, "tag") == 0) {
			tag = it;
		} else if (strcmp(k, "case_sensitive") == 0) {
			cs = it;
		} else if (is_one_of(k, value_ops, NELEM(value_ops)) || is_one_of(k, group_ops, NELEM(group_ops))) {
			if (op)
				return diana__error_set(DIANA_EINVAL, "%s: two operators '%s' and '%s' in one rule",
				                        p->text, op->string, k);
			op = it;
		} else {
			return diana__error_set(DIANA_EINVAL, "%s: unknown operator '%.64s'", p->text, k);
		}
	}
	if (!op) {
		if (tag || cs)
			return diana__error_set(DIANA_EINVAL, "%s: rule has no operator", p->text);
		return diana__error_set(DIANA_EINVAL, "%s: empty rule", p->text);
	}

	n = diana__calloc(1, sizeof *n);
	if (!n)
		return DIANA_ENOMEM;

	if (is_one_of(op->string, group_ops, NELEM(group_ops))) {
		if (tag || cs) {
			rc = diana__error_set(DIANA_EINVAL, "%s: '%s' takes no '%s'", p->text, op->string,
			                      tag ? "tag" : "case_sensitive");
		} else if (strcmp(op->string, "not") == 0) {
			size_t old;
			n->op = OP_NOT;
			n->kids = diana__calloc(1, sizeof *n->kids);
			if (!n->kids) {
				rc = DIANA_ENOMEM;
			} else {
				old = pos_push(p, "not", 0, 0);
				n->nkids = 1;
				rc = compile(op, p, depth + 1, &n->kids[0]);
				pos_pop(p, old);
			}
		} else {
			n->op = strcmp(op->string, "all") == 0 ? OP_ALL : OP_ANY;
			rc = compile_list(op, op->string, p, depth, n);
		}
	} else {
		if (!tag)
			rc = diana__error_set(DIANA_EINVAL, "%s: '%s' needs a 'tag'", p->text, op->string);
		else
			rc = compile_element(tag, op, cs, p, n);
	}
	if (rc < 0) {
		node_free(n);
		return rc;
	}
	*out = n;
	return 0;
}

int diana__filter_new(const struct cJSON *json, diana__filter **out)
{
	diana__filter *f;
	pos p;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	*out = NULL;
	f = diana__calloc(1, sizeof *f);
	if (!f)
		return DIANA_ENOMEM;
	f->c_locale = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0);
	if (f->c_locale == (locale_t)0) {
		free(f);
		return diana__error_oom();
	}
	/* NULL, JSON null or {}: match all */
	if (json && !cJSON_IsNull(json) && !(cJSON_IsObject(json) && !json->child)) {
		strcpy(p.text, "filter");
		p.len = strlen(p.text);
		rc = compile(json, &p, 0, &f->root);
		if (rc < 0) {
			diana__filter_free(f);
			return rc;
		}
	}
	*out = f;
	return 0;
}

/* --- matching -------------------------------------------------------------- */

static int ascii_lower(int c)
{
	return (c >= 'A' && c <= 'Z') ? c + ('a' - 'A') : c;
}

/* Compare the `len` bytes at `v` with the NUL-terminated `want`. */
static int text_equal(const char *v, size_t len, const char *want, int icase)
{
	size_t i;
	for (i = 0; i < len; i++) {
		if (!want[i])
			return 0;
		if (icase ? ascii_lower((unsigned char)v[i]) != ascii_lower((unsigned char)want[i])
		          : v[i] != want[i])
			return 0;
	}
	return want[len] == '\0';
}

/*
 * A number in DS/IS syntax (or as diana_dataset_get() formats binary
 * numbers), surrounding spaces allowed, or an Age String (1 to 3 digits
 * then D, W, M or Y) converted to years. 0 and the value, or -1.
 */
static int value_number(const diana__filter *f, const char *v, size_t len, double *out)
{
	char buf[64];
	const char *s, *e;
	size_t n, i;
	char *end;
	int digits = 0;

	while (len && (*v == ' '))
		v++, len--;
	while (len && v[len - 1] == ' ')
		len--;
	if (len == 0 || len >= sizeof buf)
		return -1;
	memcpy(buf, v, len);
	buf[len] = '\0';

	/* Age String */
	n = len;
	if (n >= 2 && n <= 4 && strchr("DWMY", buf[n - 1])) {
		double num = 0;
		for (i = 0; i + 1 < n; i++) {
			if (buf[i] < '0' || buf[i] > '9')
				return -1;
			num = num * 10 + (buf[i] - '0');
		}
		switch (buf[n - 1]) {
		case 'D': *out = num / 365.25; break;
		case 'W': *out = num * 7.0 / 365.25; break;
		case 'M': *out = num / 12.0; break;
		default: *out = num; break;
		}
		return 0;
	}

	/* [+-] digits [. digits] [(e|E) [+-] digits], at least one mantissa digit */
	s = buf;
	if (*s == '+' || *s == '-')
		s++;
	for (e = s; *e >= '0' && *e <= '9'; e++)
		digits++;
	if (*e == '.') {
		e++;
		for (; *e >= '0' && *e <= '9'; e++)
			digits++;
	}
	if (!digits)
		return -1;
	if (*e == 'e' || *e == 'E') {
		e++;
		if (*e == '+' || *e == '-')
			e++;
		if (*e < '0' || *e > '9')
			return -1;
		while (*e >= '0' && *e <= '9')
			e++;
	}
	if (*e)
		return -1;
	*out = strtod_l(buf, &end, f->c_locale);
	if (*end || !isfinite(*out))
		return -1;
	return 0;
}

static int value_matches(const diana__filter *f, const node *n, const char *v, size_t len)
{
	size_t i;
	switch (n->op) {
	case OP_EQUALS:
	case OP_ONE_OF:
		for (i = 0; i < n->nvalues; i++)
			if (text_equal(v, len, n->values[i], n->icase))
				return 1;
		return 0;
	case OP_REGEX: {
		/* regexec() wants a NUL-terminated string: the caller terminates each value */
		return regexec(&n->re, v, 0, NULL, 0) == 0;
	}
	case OP_RANGE: {
		double d;
		if (value_number(f, v, len, &d) < 0)
			return 0;
		if (n->has_lo && d < n->lo)
			return 0;
		if (n->has_hi && d > n->hi)
			return 0;
		return 1;
	}
	default:
		return 0;
	}
}

/* Read the element: 1 with `*text` (diana_free), 0 when absent or not text, <0 error. */
static int read_value(const node *n, const diana_dataset *ds, char **text)
{
	int rc = diana_dataset_get(ds, n->key, text);
	if (rc == 0)
		return 1;
	/* absent; a path through an element that is not a sequence; sequence or binary VR */
	if (rc == DIANA_ENOTFOUND || rc == DIANA_EINVAL || rc == DIANA_EUNSUPPORTED)
		return 0;
	return rc;
}

static int match_node(const diana__filter *f, const node *n, const diana_dataset *ds)
{
	size_t i;
	int rc;
	char *text = NULL;

	switch (n->op) {
	case OP_ALL:
		for (i = 0; i < n->nkids; i++) {
			rc = match_node(f, n->kids[i], ds);
			if (rc <= 0)
				return rc;
		}
		return 1;
	case OP_ANY:
		for (i = 0; i < n->nkids; i++) {
			rc = match_node(f, n->kids[i], ds);
			if (rc != 0)
				return rc;
		}
		return 0;
	case OP_NOT:
		rc = match_node(f, n->kids[0], ds);
		return rc < 0 ? rc : !rc;
	case OP_PRESENT:
		rc = diana_dataset_get(ds, n->key, &text);
		diana_free(text);
		if (rc == 0 || rc == DIANA_EUNSUPPORTED || rc == DIANA_EDICOM)
			return n->present; /* the element exists */
		if (rc == DIANA_ENOTFOUND || rc == DIANA_EINVAL)
			return !n->present;
		return rc;
	default:
		break;
	}

	rc = read_value(n, ds, &text);
	if (rc <= 0)
		return rc;
	rc = 0;
	if (!n->split) {
		rc = value_matches(f, n, text, strlen(text));
	} else {
		char *s = text;
		for (;;) {
			char *bs = strchr(s, '\\');
			if (bs)
				*bs = '\0';
			if (value_matches(f, n, s, strlen(s))) {
				rc = 1;
				break;
			}
			if (!bs)
				break;
			s = bs + 1;
		}
	}
	diana_free(text);
	return rc;
}

int diana__filter_match(const diana__filter *f, const diana_dataset *ds)
{
	if (!f || !ds)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if (!f->root)
		return 1;
	return match_node(f, f->root, ds);
}
