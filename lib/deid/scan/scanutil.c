/*
 * libdiana - text folding, string map and Aho-Corasick matching for the key
 * file and the leak scanner.
 *
 * Why our own Aho-Corasick rather than a library: the only multi-pattern
 * matchers packaged by Debian are Hyperscan (amd64 only, needs SSSE3, a large
 * C++ regex engine) and language bindings (python3-ahocorasick). The patterns
 * here are a few thousand literal byte strings at most and the text is the
 * non-pixel part of a DICOM file (kilobytes), so a compact automaton (trie
 * edges in one hash table, failure and dictionary links) is fast enough and
 * keeps libdiana portable and free of new dependencies.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>

#include "../../core/core.h"
#include "scanutil.h"

/* ------------------------------------------------------------------------ */
/* folding                                                                   */
/* ------------------------------------------------------------------------ */

/* ISO 8859-1 / U+00C0..U+00FF without diacritics, lower case; NULL = not a letter */
static const char *const latin1_fold[64] = {
	"a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	"d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "ss",
	"a", "a", "a", "a", "a", "a", "ae", "c", "e", "e", "e", "e", "i", "i", "i", "i",
	"d", "n", "o", "o", "o", "o", "o", NULL, "o", "u", "u", "u", "u", "y", "th", "y",
};

/* U+0100..U+017F (Latin Extended-A) */
static const char *const latin_ext_a_fold[128] = {
	"a", "a", "a", "a", "a", "a", "c", "c", "c", "c", "c", "c", "c", "c", "d", "d",  /* 0100 */
	"d", "d", "e", "e", "e", "e", "e", "e", "e", "e", "e", "e", "g", "g", "g", "g",  /* 0110 */
	"g", "g", "g", "g", "h", "h", "h", "h", "i", "i", "i", "i", "i", "i", "i", "i",  /* 0120 */
	"i", "i", "ij", "ij", "j", "j", "k", "k", "k", "l", "l", "l", "l", "l", "l", "l", /* 0130 */
	"l", "l", "l", "n", "n", "n", "n", "n", "n", "n", "n", "n", "o", "o", "o", "o",  /* 0140 */
	"o", "o", "oe", "oe", "r", "r", "r", "r", "r", "r", "s", "s", "s", "s", "s", "s", /* 0150 */
	"s", "s", "t", "t", "t", "t", "t", "t", "u", "u", "u", "u", "u", "u", "u", "u",  /* 0160 */
	"u", "u", "u", "u", "w", "w", "y", "y", "y", "z", "z", "z", "z", "z", "z", "s",  /* 0170 */
};

static int latin_ext_a_upper(uint32_t cp)
{
	if (cp <= 0x137)
		return !(cp & 1);
	if (cp >= 0x139 && cp <= 0x148)
		return (int)(cp & 1);
	if (cp >= 0x14A && cp <= 0x177)
		return !(cp & 1);
	if (cp == 0x178)
		return 1;
	if (cp >= 0x179 && cp <= 0x17E)
		return (int)(cp & 1);
	return 0;
}

static size_t put_utf8(uint32_t cp, uint8_t *out)
{
	if (cp < 0x80) {
		out[0] = (uint8_t)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (uint8_t)(0xC0 | (cp >> 6));
		out[1] = (uint8_t)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (uint8_t)(0xE0 | (cp >> 12));
		out[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
		out[2] = (uint8_t)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (uint8_t)(0xF0 | (cp >> 18));
	out[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3F));
	out[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3F));
	out[3] = (uint8_t)(0x80 | (cp & 0x3F));
	return 4;
}

/* Greek: lower case without tonos/dialytika; 0 = not handled here */
static uint32_t greek_fold(uint32_t cp, int *upper)
{
	*upper = 0;
	switch (cp) {
	case 0x386: *upper = 1; return 0x3B1;
	case 0x388: *upper = 1; return 0x3B5;
	case 0x389: *upper = 1; return 0x3B7;
	case 0x38A: case 0x3AA: *upper = 1; return 0x3B9;
	case 0x38C: *upper = 1; return 0x3BF;
	case 0x38E: case 0x3AB: *upper = 1; return 0x3C5;
	case 0x38F: *upper = 1; return 0x3C9;
	case 0x390: case 0x3AF: case 0x3CA: return 0x3B9;
	case 0x3AC: return 0x3B1;
	case 0x3AD: return 0x3B5;
	case 0x3AE: return 0x3B7;
	case 0x3B0: case 0x3CB: case 0x3CD: return 0x3C5;
	case 0x3C2: return 0x3C3; /* final sigma */
	case 0x3CC: return 0x3BF;
	case 0x3CE: return 0x3C9;
	default: break;
	}
	if (cp >= 0x391 && cp <= 0x3A9 && cp != 0x3A2) {
		*upper = 1;
		return cp + 0x20;
	}
	if (cp >= 0x3B1 && cp <= 0x3C9)
		return cp;
	return 0;
}

static uint32_t cyrillic_fold(uint32_t cp, int *upper)
{
	*upper = 0;
	if (cp == 0x401 || cp == 0x451) { /* Ё ё -> е */
		*upper = cp == 0x401;
		return 0x435;
	}
	if (cp >= 0x400 && cp <= 0x40F) {
		*upper = 1;
		return cp + 0x50;
	}
	if (cp >= 0x410 && cp <= 0x42F) {
		*upper = 1;
		return cp + 0x20;
	}
	if (cp >= 0x430 && cp <= 0x45F)
		return cp;
	if ((cp >= 0x460 && cp <= 0x481) || (cp >= 0x48A && cp <= 0x4BF)) {
		*upper = !(cp & 1);
		return cp | 1;
	}
	return 0;
}

static int is_punct_cp(uint32_t cp)
{
	return (cp >= 0x80 && cp <= 0xBF) || cp == 0xD7 || cp == 0xF7 ||
	       (cp >= 0x2000 && cp <= 0x206F) || (cp >= 0x3000 && cp <= 0x303F) ||
	       (cp >= 0xFF00 && cp <= 0xFF0F) || (cp >= 0xFF1A && cp <= 0xFF20) ||
	       (cp >= 0xFF3B && cp <= 0xFF40) || (cp >= 0xFF5B && cp <= 0xFF65) || cp == 0xFEFF;
}

/* Fold one code point; returns bytes written to out (<= 4), *c = class flags. */
static size_t fold_cp(uint32_t cp, uint8_t *out, uint8_t *c)
{
	const char *s = NULL;
	uint32_t f;
	int upper = 0;

	if (cp < 0x80) {
		if (cp >= 'A' && cp <= 'Z') {
			out[0] = (uint8_t)(cp + 32);
			*c = DIANA__FOLD_LETTER | DIANA__FOLD_UPPER;
		} else {
			out[0] = (uint8_t)cp;
			if (cp >= 'a' && cp <= 'z')
				*c = DIANA__FOLD_LETTER;
			else if (cp >= '0' && cp <= '9')
				*c = DIANA__FOLD_DIGIT;
			else
				*c = DIANA__FOLD_OTHER;
		}
		return 1;
	}
	if (cp >= 0x300 && cp <= 0x36F) /* combining diacritical marks */
		return 0;
	if (cp >= 0xC0 && cp <= 0xFF) {
		s = latin1_fold[cp - 0xC0];
		upper = cp <= 0xDE;
	} else if (cp >= 0x100 && cp <= 0x17F) {
		s = latin_ext_a_fold[cp - 0x100];
		upper = latin_ext_a_upper(cp);
	} else if (cp >= 0xFF10 && cp <= 0xFF19) { /* full-width digits */
		out[0] = (uint8_t)('0' + (cp - 0xFF10));
		*c = DIANA__FOLD_DIGIT;
		return 1;
	} else if (cp >= 0xFF21 && cp <= 0xFF3A) {
		out[0] = (uint8_t)('a' + (cp - 0xFF21));
		*c = DIANA__FOLD_LETTER | DIANA__FOLD_UPPER;
		return 1;
	} else if (cp >= 0xFF41 && cp <= 0xFF5A) {
		out[0] = (uint8_t)('a' + (cp - 0xFF41));
		*c = DIANA__FOLD_LETTER;
		return 1;
	}
	if (s) {
		size_t n = strlen(s);
		memcpy(out, s, n);
		*c = (uint8_t)(DIANA__FOLD_LETTER | (upper ? DIANA__FOLD_UPPER : 0));
		return n;
	}
	if (cp >= 0x370 && cp <= 0x3FF && (f = greek_fold(cp, &upper)) != 0) {
		*c = (uint8_t)(DIANA__FOLD_LETTER | (upper ? DIANA__FOLD_UPPER : 0));
		return put_utf8(f, out);
	}
	if (cp >= 0x400 && cp <= 0x4FF && (f = cyrillic_fold(cp, &upper)) != 0) {
		*c = (uint8_t)(DIANA__FOLD_LETTER | (upper ? DIANA__FOLD_UPPER : 0));
		return put_utf8(f, out);
	}
	*c = is_punct_cp(cp) ? DIANA__FOLD_OTHER : DIANA__FOLD_LETTER;
	return put_utf8(cp, out);
}

/* Decode one strict UTF-8 sequence at in[0..len); returns its length or 0. */
static size_t utf8_decode(const uint8_t *in, size_t len, uint32_t *cp)
{
	uint8_t b = in[0];
	size_t n, i;
	uint32_t v, min;

	if (b < 0x80) {
		*cp = b;
		return 1;
	}
	if (b >= 0xC2 && b <= 0xDF) {
		n = 2;
		v = b & 0x1F;
		min = 0x80;
	} else if (b >= 0xE0 && b <= 0xEF) {
		n = 3;
		v = b & 0x0F;
		min = 0x800;
	} else if (b >= 0xF0 && b <= 0xF4) {
		n = 4;
		v = b & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (n > len)
		return 0;
	for (i = 1; i < n; i++) {
		if ((in[i] & 0xC0) != 0x80)
			return 0;
		v = (v << 6) | (in[i] & 0x3F);
	}
	if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF))
		return 0;
	*cp = v;
	return n;
}

int diana__utf8_valid(const char *s, size_t len)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	while (i < len) {
		uint32_t cp;
		size_t n;
		if (p[i] == 0)
			return 0;
		n = utf8_decode(p + i, len - i, &cp);
		if (!n)
			return 0;
		i += n;
	}
	return 1;
}

size_t diana__fold(const uint8_t *in, size_t len, uint8_t *out, uint8_t *cls)
{
	size_t i = 0, o = 0;

	while (i < len) {
		uint32_t cp;
		uint8_t buf[4], c = 0;
		size_t n, k, j;

		if (in[i] < 0x80) { /* fast path */
			uint8_t b = in[i++];
			if (b >= 'A' && b <= 'Z') {
				out[o] = (uint8_t)(b + 32);
				c = DIANA__FOLD_LETTER | DIANA__FOLD_UPPER;
			} else {
				out[o] = b;
				c = (b >= 'a' && b <= 'z') ? DIANA__FOLD_LETTER
				    : (b >= '0' && b <= '9') ? DIANA__FOLD_DIGIT
				                             : DIANA__FOLD_OTHER;
			}
			if (cls)
				cls[o] = c;
			o++;
			continue;
		}
		n = utf8_decode(in + i, len - i, &cp);
		if (!n) { /* not UTF-8: read the byte as ISO 8859-1 */
			cp = in[i];
			n = 1;
		}
		i += n;
		k = fold_cp(cp, buf, &c);
		for (j = 0; j < k; j++) {
			out[o] = buf[j];
			if (cls)
				cls[o] = c;
			o++;
		}
	}
	out[o] = 0;
	return o;
}

char *diana__fold_dup(const char *in, size_t len, size_t *out_len)
{
	uint8_t *out;
	size_t n;

	if (len > (SIZE_MAX - 1) / 2) {
		diana__error_oom();
		return NULL;
	}
	out = diana__malloc(2 * len + 1);
	if (!out)
		return NULL;
	n = diana__fold((const uint8_t *)in, len, out, NULL);
	if (out_len)
		*out_len = n;
	return (char *)out;
}

/* ------------------------------------------------------------------------ */
/* string map                                                                */
/* ------------------------------------------------------------------------ */

static uint64_t hash_bytes(const char *s, size_t len)
{
	uint64_t h = 0xcbf29ce484222325ull;
	size_t i;
	for (i = 0; i < len; i++) {
		h ^= (uint8_t)s[i];
		h *= 0x100000001b3ull;
	}
	return h ^ (h >> 29);
}

static size_t strmap_find(const diana__strmap *m, const char *key, size_t len)
{
	size_t mask = m->cap - 1, i = (size_t)hash_bytes(key, len) & mask;

	while (m->keys[i]) {
		if (m->lens[i] == len && memcmp(m->keys[i], key, len) == 0)
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

int *diana__strmap_get(const diana__strmap *m, const char *key, size_t len)
{
	size_t i;
	if (!m->cap)
		return NULL;
	i = strmap_find(m, key, len);
	return m->keys[i] ? &m->vals[i] : NULL;
}

static int strmap_grow(diana__strmap *m)
{
	diana__strmap n = DIANA__STRMAP_INIT;
	size_t i;

	n.cap = m->cap ? m->cap * 2 : 64;
	n.keys = calloc(n.cap, sizeof *n.keys);
	n.lens = calloc(n.cap, sizeof *n.lens);
	n.vals = calloc(n.cap, sizeof *n.vals);
	if (!n.keys || !n.lens || !n.vals) {
		free(n.keys);
		free(n.lens);
		free(n.vals);
		return diana__error_oom();
	}
	for (i = 0; i < m->cap; i++) {
		if (m->keys[i]) {
			size_t j = strmap_find(&n, m->keys[i], m->lens[i]);
			n.keys[j] = m->keys[i];
			n.lens[j] = m->lens[i];
			n.vals[j] = m->vals[i];
		}
	}
	n.count = m->count;
	free(m->keys);
	free(m->lens);
	free(m->vals);
	*m = n;
	return 0;
}

int diana__strmap_put(diana__strmap *m, const char *key, size_t len, int val, int **slot)
{
	size_t i;
	char *k;

	if (slot)
		*slot = NULL;
	if ((m->count + 1) * 2 > m->cap) {
		int rc = strmap_grow(m);
		if (rc)
			return rc;
	}
	i = strmap_find(m, key, len);
	if (m->keys[i]) {
		if (slot)
			*slot = &m->vals[i];
		return 0;
	}
	k = diana__strndup(key, len);
	if (!k)
		return DIANA_ENOMEM;
	m->keys[i] = k;
	m->lens[i] = len;
	m->vals[i] = val;
	m->count++;
	if (slot)
		*slot = &m->vals[i];
	return 1;
}

void diana__strmap_dispose(diana__strmap *m)
{
	size_t i;
	for (i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->lens);
	free(m->vals);
	m->keys = NULL;
	m->lens = NULL;
	m->vals = NULL;
	m->cap = m->count = 0;
}

/* ------------------------------------------------------------------------ */
/* Aho-Corasick                                                              */
/* ------------------------------------------------------------------------ */

struct diana__ac {
	int32_t root[256];  /* children of the root, -1 = none */
	uint64_t *ekeys;    /* edge hash: key = (node << 8 | byte) + 1, 0 = empty */
	int32_t *evals;     /* child node */
	size_t ecap;        /* power of two */
	int32_t *fail;
	int32_t *out;       /* pattern id ending here, or -1 */
	int32_t *dict;      /* nearest proper suffix node with an output, or -1 */
	size_t nnodes;
};

static uint64_t edge_hash(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdull;
	k ^= k >> 33;
	return k;
}

static int32_t ac_goto(const diana__ac *ac, int32_t node, uint8_t b)
{
	uint64_t key;
	size_t i, mask;

	if (node == 0)
		return ac->root[b];
	key = (((uint64_t)node << 8) | b) + 1;
	mask = ac->ecap - 1;
	i = (size_t)edge_hash(key) & mask;
	while (ac->ekeys[i]) {
		if (ac->ekeys[i] == key)
			return ac->evals[i];
		i = (i + 1) & mask;
	}
	return -1;
}

static void ac_set(diana__ac *ac, int32_t node, uint8_t b, int32_t child)
{
	uint64_t key;
	size_t i, mask;

	if (node == 0) {
		ac->root[b] = child;
		return;
	}
	key = (((uint64_t)node << 8) | b) + 1;
	mask = ac->ecap - 1;
	i = (size_t)edge_hash(key) & mask;
	while (ac->ekeys[i])
		i = (i + 1) & mask;
	ac->ekeys[i] = key;
	ac->evals[i] = child;
}

void diana__ac_free(diana__ac *ac)
{
	if (!ac)
		return;
	free(ac->ekeys);
	free(ac->evals);
	free(ac->fail);
	free(ac->out);
	free(ac->dict);
	free(ac);
}

int diana__ac_build(diana__ac **out, const char *const *patterns, const size_t *lens, size_t n)
{
	diana__ac *ac;
	size_t total = 1, i, nodes = 1;
	int32_t *first = NULL, *next = NULL, *queue = NULL;
	uint8_t *label = NULL;
	size_t qh = 0, qt = 0;

	*out = NULL;
	for (i = 0; i < n; i++) {
		if (lens[i] == 0 || lens[i] > (size_t)INT32_MAX - total)
			return diana__error_set(DIANA_EINVAL, "invalid pattern length");
		total += lens[i];
	}
	ac = diana__calloc(1, sizeof *ac);
	if (!ac)
		return DIANA_ENOMEM;
	memset(ac->root, 0xFF, sizeof ac->root);
	ac->ecap = 64;
	while (ac->ecap < total * 2)
		ac->ecap *= 2;
	ac->ekeys = calloc(ac->ecap, sizeof *ac->ekeys);
	ac->evals = calloc(ac->ecap, sizeof *ac->evals);
	ac->fail = calloc(total, sizeof *ac->fail);
	ac->out = malloc(total * sizeof *ac->out);
	ac->dict = malloc(total * sizeof *ac->dict);
	first = malloc(total * sizeof *first);
	next = malloc(total * sizeof *next);
	label = malloc(total);
	queue = malloc(total * sizeof *queue);
	if (!ac->ekeys || !ac->evals || !ac->fail || !ac->out || !ac->dict || !first || !next ||
	    !label || !queue)
		goto oom;
	memset(ac->out, 0xFF, total * sizeof *ac->out);
	memset(ac->dict, 0xFF, total * sizeof *ac->dict);
	memset(first, 0xFF, total * sizeof *first);

	/* trie */
	for (i = 0; i < n; i++) {
		const uint8_t *p = (const uint8_t *)patterns[i];
		int32_t cur = 0;
		size_t j;
		for (j = 0; j < lens[i]; j++) {
			int32_t child = ac_goto(ac, cur, p[j]);
			if (child < 0) {
				child = (int32_t)nodes++;
				ac_set(ac, cur, p[j], child);
				label[child] = p[j];
				next[child] = first[cur];
				first[cur] = child;
			}
			cur = child;
		}
		if (ac->out[cur] < 0)
			ac->out[cur] = (int32_t)i;
	}
	ac->nnodes = nodes;

	/* failure and dictionary links, breadth first */
	queue[qt++] = 0;
	while (qh < qt) {
		int32_t u = queue[qh++], v;
		for (v = first[u]; v >= 0; v = next[v]) {
			int32_t f;
			if (u == 0) {
				f = 0;
			} else {
				int32_t s = ac->fail[u];
				for (;;) {
					int32_t g = ac_goto(ac, s, label[v]);
					if (g >= 0) {
						f = g;
						break;
					}
					if (s == 0) {
						f = 0;
						break;
					}
					s = ac->fail[s];
				}
			}
			ac->fail[v] = f;
			ac->dict[v] = ac->out[f] >= 0 ? f : ac->dict[f];
			queue[qt++] = v;
		}
	}
	free(first);
	free(next);
	free(label);
	free(queue);
	*out = ac;
	return 0;
oom:
	free(first);
	free(next);
	free(label);
	free(queue);
	diana__ac_free(ac);
	return diana__error_oom();
}

int diana__ac_search(const diana__ac *ac, const uint8_t *text, size_t len, diana__ac_fn fn,
                     void *user_data)
{
	int32_t state = 0;
	size_t i;

	for (i = 0; i < len; i++) {
		uint8_t b = text[i];
		int32_t t;
		for (;;) {
			int32_t g = ac_goto(ac, state, b);
			if (g >= 0) {
				state = g;
				break;
			}
			if (state == 0)
				break;
			state = ac->fail[state];
		}
		t = ac->out[state] >= 0 ? state : ac->dict[state];
		while (t > 0) {
			int rc = fn((uint32_t)ac->out[t], i, user_data);
			if (rc)
				return rc;
			t = ac->dict[t];
		}
	}
	return 0;
}
