/*
 * libdiana - DICOM Specific Character Set (0008,0005) to UTF-8.
 * SPDX-License-Identifier: MIT
 *
 * References: PS3.3 C.12.1.1.2 (defined terms, escape sequences), PS3.5
 * 6.1 (code extension rules) and Annexes H, I, J, K (examples).
 *
 * Model.  A value is decoded with an ISO 2022 state of two graphic sets:
 * G0 for bytes 0x00-0x7F (ASCII, JIS X 0201 romaji, JIS X 0208 or
 * JIS X 0212) and G1 for bytes 0x80-0xFF (none, an ISO 8859 upper half,
 * TIS 620, JIS X 0201 katakana, KS X 1001 or GB 2312).  Value 1 of the
 * attribute (or ISO_IR 6 when empty) sets the initial state; escape
 * sequences re-designate G0 or G1; every delimiter resets the state to the
 * initial one: all C0 controls except ESC (CR, LF, FF, TAB, ...), the
 * value separator '\', and for PN also '^' and '='.  Delimiters are only
 * recognised at character boundaries: while a two-byte set is in G0 its
 * byte pairs are taken whole (PS3.5 requires the writer to switch back
 * before any delimiter).  Escape sequences never reach the output.
 *
 * Bytes are gathered into runs of one iconv source encoding (EUC-JP for
 * all Japanese sets, EUC-KR, GB2312, ISO-8859-x, TIS-620) after moving
 * GL-designated double-byte characters to their EUC form; a run is handed
 * to iconv when the encoding changes.  Plain ASCII, ISO-8859-1 and UTF-8
 * never touch iconv.  iconv descriptors live in a per-call table: nothing
 * here is global and mutable, so the functions are thread-safe.
 *
 * Decisions (each one tested in tests/charset):
 * - Bytes >= 0x80 while no G1 set is designated (value 1 empty or
 *   ISO_IR 6, or after a reset to it) are read as ISO-8859-1 like pydicom,
 *   except that a value without escape sequences that is valid UTF-8 as a
 *   whole is taken as UTF-8 (a frequent writer error; a Latin-1 text is
 *   almost never valid UTF-8).
 * - JIS X 0201 romaji (ISO_IR 13 G0, ESC ( J) is decoded as ASCII, as
 *   pydicom and most viewers do: 0x5C stays the '\' delimiter, not YEN.
 * - Known escape sequences are honoured even when their term is missing
 *   from (0008,0005) (the sequence is unambiguous); unknown ones are a
 *   DIANA_EDICOM error.  Stand-alone sets (ISO_IR 192, GB18030, GBK) have
 *   no code extensions: their bytes, ESC included, are decoded as is, and
 *   further values after them are ignored, like pydicom.
 * - Terms are matched case-insensitively with ' ', '_' and '-' treated
 *   alike ("ISO IR 100", "ISO_2022_IR_87"), another pydicom tolerance.
 */
#include <errno.h>
#include <iconv.h>
#include <stdint.h>
#include <string.h>

#include "../core/core.h"
#include "dicom.h"

#define ESC 0x1b

/* --- encodings of runs --------------------------------------------------- */

enum enc {
	ENC_ASCII = 0, /* bytes copied as they are */
	ENC_LATIN1,    /* built in */
	ENC_UTF8,      /* built in (validated) */
	ENC_8859_2,
	ENC_8859_3,
	ENC_8859_4,
	ENC_8859_5,
	ENC_8859_6,
	ENC_8859_7,
	ENC_8859_8,
	ENC_8859_9,
	ENC_8859_15,
	ENC_TIS620,
	ENC_EUCJP,
	ENC_EUCKR,
	ENC_GB2312,
	ENC_GB18030,
	ENC_GBK,
	ENC_COUNT
};

static const struct {
	const char *iconv_name; /* NULL: built in */
	const char *label;      /* for error messages */
} encs[ENC_COUNT] = {
	[ENC_ASCII] = { NULL, "ISO_IR 6 (ASCII)" },
	[ENC_LATIN1] = { NULL, "ISO_IR 100 (ISO-8859-1)" },
	[ENC_UTF8] = { NULL, "ISO_IR 192 (UTF-8)" },
	[ENC_8859_2] = { "ISO-8859-2", "ISO_IR 101 (ISO-8859-2)" },
	[ENC_8859_3] = { "ISO-8859-3", "ISO_IR 109 (ISO-8859-3)" },
	[ENC_8859_4] = { "ISO-8859-4", "ISO_IR 110 (ISO-8859-4)" },
	[ENC_8859_5] = { "ISO-8859-5", "ISO_IR 144 (ISO-8859-5)" },
	[ENC_8859_6] = { "ISO-8859-6", "ISO_IR 127 (ISO-8859-6)" },
	[ENC_8859_7] = { "ISO-8859-7", "ISO_IR 126 (ISO-8859-7)" },
	[ENC_8859_8] = { "ISO-8859-8", "ISO_IR 138 (ISO-8859-8)" },
	[ENC_8859_9] = { "ISO-8859-9", "ISO_IR 148 (ISO-8859-9)" },
	[ENC_8859_15] = { "ISO-8859-15", "ISO_IR 203 (ISO-8859-15)" },
	[ENC_TIS620] = { "TIS-620", "ISO_IR 166 (TIS 620)" },
	[ENC_EUCJP] = { "EUC-JP", "ISO 2022 IR 13/87/159 (JIS X 0201/0208/0212)" },
	[ENC_EUCKR] = { "EUC-KR", "ISO 2022 IR 149 (KS X 1001)" },
	[ENC_GB2312] = { "EUC-CN", "ISO 2022 IR 58 (GB 2312)" },
	[ENC_GB18030] = { "GB18030", "GB18030" },
	[ENC_GBK] = { "GBK", "GBK" },
};

/* --- graphic sets ---------------------------------------------------------- */

enum g0set { G0_ASCII, G0_ROMAJI, G0_JIS0208, G0_JIS0212 };

enum g1set {
	G1_NONE, G1_LATIN1, G1_8859_2, G1_8859_3, G1_8859_4, G1_8859_5, G1_8859_6,
	G1_8859_7, G1_8859_8, G1_8859_9, G1_8859_15, G1_TIS620, G1_KATAKANA, G1_KSC,
	G1_GB2312
};

static const unsigned char g1_enc[] = {
	[G1_NONE] = ENC_LATIN1, /* see the decisions above */
	[G1_LATIN1] = ENC_LATIN1,
	[G1_8859_2] = ENC_8859_2,
	[G1_8859_3] = ENC_8859_3,
	[G1_8859_4] = ENC_8859_4,
	[G1_8859_5] = ENC_8859_5,
	[G1_8859_6] = ENC_8859_6,
	[G1_8859_7] = ENC_8859_7,
	[G1_8859_8] = ENC_8859_8,
	[G1_8859_9] = ENC_8859_9,
	[G1_8859_15] = ENC_8859_15,
	[G1_TIS620] = ENC_TIS620,
	[G1_KATAKANA] = ENC_EUCJP,
	[G1_KSC] = ENC_EUCKR,
	[G1_GB2312] = ENC_GB2312,
};

/* Escape sequences of PS3.3 Tables C.12-3 and C.12-4 (bytes after ESC). */
static const struct {
	const char *seq;
	unsigned char is_g1;
	unsigned char set;
} escapes[] = {
	{ "(B", 0, G0_ASCII },     /* ISO-IR 6 */
	{ "(J", 0, G0_ROMAJI },    /* ISO-IR 14 */
	{ "$B", 0, G0_JIS0208 },   /* ISO-IR 87 */
	{ "$(D", 0, G0_JIS0212 },  /* ISO-IR 159 */
	{ ")I", 1, G1_KATAKANA },  /* ISO-IR 13 */
	{ "-A", 1, G1_LATIN1 },    /* ISO-IR 100 */
	{ "-B", 1, G1_8859_2 },    /* ISO-IR 101 */
	{ "-C", 1, G1_8859_3 },    /* ISO-IR 109 */
	{ "-D", 1, G1_8859_4 },    /* ISO-IR 110 */
	{ "-L", 1, G1_8859_5 },    /* ISO-IR 144 */
	{ "-G", 1, G1_8859_6 },    /* ISO-IR 127 */
	{ "-F", 1, G1_8859_7 },    /* ISO-IR 126 */
	{ "-H", 1, G1_8859_8 },    /* ISO-IR 138 */
	{ "-M", 1, G1_8859_9 },    /* ISO-IR 148 */
	{ "-b", 1, G1_8859_15 },   /* ISO-IR 203 */
	{ "-T", 1, G1_TIS620 },    /* ISO-IR 166 */
	{ "$)C", 1, G1_KSC },      /* ISO-IR 149 */
	{ "$)A", 1, G1_GB2312 },   /* ISO-IR 58 */
};

/* --- defined terms ---------------------------------------------------------- */

/* Stand-alone terms carry their encoding; the others their initial sets when
 * used as value 1.  Names are in normalised form (upper case, one space). */
static const struct term {
	const char *name;
	unsigned char standalone; /* encoding, or 0 */
	unsigned char g0, g1;
	unsigned char needs;      /* iconv encoding used by the term, or 0 */
} terms[] = {
	{ "ISO IR 6", 0, G0_ASCII, G1_NONE, 0 },
	{ "ISO IR 100", 0, G0_ASCII, G1_LATIN1, 0 },
	{ "ISO IR 101", 0, G0_ASCII, G1_8859_2, ENC_8859_2 },
	{ "ISO IR 109", 0, G0_ASCII, G1_8859_3, ENC_8859_3 },
	{ "ISO IR 110", 0, G0_ASCII, G1_8859_4, ENC_8859_4 },
	{ "ISO IR 144", 0, G0_ASCII, G1_8859_5, ENC_8859_5 },
	{ "ISO IR 127", 0, G0_ASCII, G1_8859_6, ENC_8859_6 },
	{ "ISO IR 126", 0, G0_ASCII, G1_8859_7, ENC_8859_7 },
	{ "ISO IR 138", 0, G0_ASCII, G1_8859_8, ENC_8859_8 },
	{ "ISO IR 148", 0, G0_ASCII, G1_8859_9, ENC_8859_9 },
	{ "ISO IR 203", 0, G0_ASCII, G1_8859_15, ENC_8859_15 },
	{ "ISO IR 166", 0, G0_ASCII, G1_TIS620, ENC_TIS620 },
	{ "ISO IR 13", 0, G0_ROMAJI, G1_KATAKANA, ENC_EUCJP },
	{ "ISO 2022 IR 6", 0, G0_ASCII, G1_NONE, 0 },
	{ "ISO 2022 IR 100", 0, G0_ASCII, G1_LATIN1, 0 },
	{ "ISO 2022 IR 101", 0, G0_ASCII, G1_8859_2, ENC_8859_2 },
	{ "ISO 2022 IR 109", 0, G0_ASCII, G1_8859_3, ENC_8859_3 },
	{ "ISO 2022 IR 110", 0, G0_ASCII, G1_8859_4, ENC_8859_4 },
	{ "ISO 2022 IR 144", 0, G0_ASCII, G1_8859_5, ENC_8859_5 },
	{ "ISO 2022 IR 127", 0, G0_ASCII, G1_8859_6, ENC_8859_6 },
	{ "ISO 2022 IR 126", 0, G0_ASCII, G1_8859_7, ENC_8859_7 },
	{ "ISO 2022 IR 138", 0, G0_ASCII, G1_8859_8, ENC_8859_8 },
	{ "ISO 2022 IR 148", 0, G0_ASCII, G1_8859_9, ENC_8859_9 },
	{ "ISO 2022 IR 203", 0, G0_ASCII, G1_8859_15, ENC_8859_15 },
	{ "ISO 2022 IR 166", 0, G0_ASCII, G1_TIS620, ENC_TIS620 },
	{ "ISO 2022 IR 13", 0, G0_ROMAJI, G1_KATAKANA, ENC_EUCJP },
	/* multi-byte sets: only meaningful as code extensions (value 2+); as
	 * value 1 the G0 set stays ASCII and a G1 set is designated */
	{ "ISO 2022 IR 87", 0, G0_ASCII, G1_NONE, ENC_EUCJP },
	{ "ISO 2022 IR 159", 0, G0_ASCII, G1_NONE, ENC_EUCJP },
	{ "ISO 2022 IR 149", 0, G0_ASCII, G1_KSC, ENC_EUCKR },
	{ "ISO 2022 IR 58", 0, G0_ASCII, G1_GB2312, ENC_GB2312 },
	/* stand-alone (no code extensions) */
	{ "ISO IR 192", ENC_UTF8, G0_ASCII, G1_NONE, 0 },
	{ "GB18030", ENC_GB18030, G0_ASCII, G1_NONE, ENC_GB18030 },
	{ "GBK", ENC_GBK, G0_ASCII, G1_NONE, ENC_GBK },
};

#define TERM_DEFAULT (&terms[0])
#define TERM_MAX 40

/* Printable copy of (part of) the attribute for messages.  (0008,0005) is a
 * CS value naming a repertoire, not patient data. */
static void printable(char *dst, size_t cap, const char *s, size_t n)
{
	size_t i, j = 0;

	for (i = 0; i < n && j + 1 < cap; i++) {
		unsigned char c = (unsigned char)s[i];
		dst[j++] = (c >= 0x20 && c < 0x7f && c != '\'') ? (char)c : '?';
	}
	dst[j] = '\0';
}

static const struct term *term_lookup(const char *s, size_t n)
{
	char norm[TERM_MAX];
	size_t i, j = 0;
	int sep = 0;

	for (i = 0; i < n; i++) {
		char c = s[i];
		if (c == ' ' || c == '_' || c == '-') {
			sep = 1;
			continue;
		}
		if (sep && j > 0) {
			if (j + 1 >= sizeof(norm))
				return NULL;
			norm[j++] = ' ';
		}
		sep = 0;
		if (j + 1 >= sizeof(norm))
			return NULL;
		norm[j++] = (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
	}
	norm[j] = '\0';
	for (i = 0; i < sizeof(terms) / sizeof(terms[0]); i++) {
		if (strcmp(norm, terms[i].name) == 0)
			return &terms[i];
	}
	return NULL;
}

/*
 * Parse the attribute: returns value 1's term in *first, and in *needs a
 * bit mask of the iconv encodings the declared terms may use.  An unknown
 * term gives DIANA_EUNSUPPORTED (recorded only when `report`).
 */
static int parse_charset(const char *charset, int report, const struct term **first,
                         unsigned *needs)
{
	const char *p = charset ? charset : "";
	int index = 0;

	*first = TERM_DEFAULT;
	*needs = 0;
	for (;;) {
		const char *end = strchr(p, '\\');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		const char *s = p;
		const struct term *t;

		while (n > 0 && *s == ' ') {
			s++;
			n--;
		}
		while (n > 0 && s[n - 1] == ' ')
			n--;
		if (n == 0) {
			t = index == 0 ? TERM_DEFAULT : NULL; /* empty later values: ignored */
		} else if (!(t = term_lookup(s, n))) {
			if (report) {
				char shown[48];
				printable(shown, sizeof(shown), s, n);
				diana__error_set(DIANA_EUNSUPPORTED,
				                 "unsupported specific character set term '%s'", shown);
			}
			return DIANA_EUNSUPPORTED;
		}
		if (t) {
			if (index == 0)
				*first = t;
			/* a stand-alone value 1 excludes extensions; a stand-alone
			 * later value cannot be invoked: both are ignored */
			if (t->needs && (index == 0 || (!t->standalone && !(*first)->standalone)))
				*needs |= 1u << t->needs;
		}
		if (!end)
			break;
		p = end + 1;
		index++;
	}
	return 0;
}

/* --- UTF-8 helpers ---------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1..4), or 0. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned char c = s[0];
	unsigned char lo = 0x80, hi = 0xbf;
	size_t len, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		len = 2;
	else if (c >= 0xe0 && c <= 0xef)
		len = 3;
	else if (c >= 0xf0 && c <= 0xf4)
		len = 4;
	else
		return 0;
	if (c == 0xe0)
		lo = 0xa0;
	else if (c == 0xed)
		hi = 0x9f; /* no surrogates */
	else if (c == 0xf0)
		lo = 0x90;
	else if (c == 0xf4)
		hi = 0x8f; /* <= U+10FFFF */
	if (n < len || s[1] < lo || s[1] > hi)
		return 0;
	for (i = 2; i < len; i++) {
		if (s[i] < 0x80 || s[i] > 0xbf)
			return 0;
	}
	return len;
}

static int utf8_valid(const unsigned char *s, size_t n)
{
	size_t i = 0;

	while (i < n) {
		size_t k = utf8_seq(s + i, n - i);
		if (!k)
			return 0;
		i += k;
	}
	return 1;
}

static int put_latin1(diana__buf *out, const unsigned char *s, size_t n)
{
	size_t i, extra = n > SIZE_MAX / 2 ? SIZE_MAX : n * 2;
	int rc = diana__buf_grow(out, extra);
	char *o;

	if (rc)
		return rc;
	o = out->data + out->len;
	for (i = 0; i < n; i++) {
		unsigned char c = s[i];
		if (c < 0x80) {
			*o++ = (char)c;
		} else {
			*o++ = (char)(0xc0 | (c >> 6));
			*o++ = (char)(0x80 | (c & 0x3f));
		}
	}
	out->len = (size_t)(o - out->data);
	out->data[out->len] = '\0';
	return 0;
}

/* --- the decoder -------------------------------------------------------------- */

struct dec {
	diana__buf out;
	diana__buf run;         /* pending bytes, in encoding run_enc */
	int run_enc;
	iconv_t cd[ENC_COUNT];  /* opened on first use, closed by dec_done() */
};

static void dec_init(struct dec *d)
{
	int i;

	memset(d, 0, sizeof(*d));
	d->run_enc = ENC_ASCII;
	for (i = 0; i < ENC_COUNT; i++)
		d->cd[i] = (iconv_t)-1;
}

static void dec_done(struct dec *d)
{
	int i;

	for (i = 0; i < ENC_COUNT; i++) {
		if (d->cd[i] != (iconv_t)-1)
			iconv_close(d->cd[i]);
	}
	diana__buf_dispose(&d->run);
	diana__buf_dispose(&d->out);
}

static int undecodable(int enc)
{
	return diana__error_set(DIANA_EDICOM, "text value not decodable as %s", encs[enc].label);
}

static int open_cd(iconv_t *cd, int enc)
{
	if (*cd != (iconv_t)-1)
		return 0;
	*cd = iconv_open("UTF-8", encs[enc].iconv_name);
	if (*cd != (iconv_t)-1)
		return 0;
	if (errno == ENOMEM)
		return diana__error_oom();
	return diana__error_set(DIANA_EUNSUPPORTED, "no iconv converter from %s to UTF-8",
	                        encs[enc].iconv_name);
}

static int put_iconv(struct dec *d, int enc, const char *in, size_t n)
{
	char *ip = (char *)in;
	size_t il = n;
	int rc = open_cd(&d->cd[enc], enc);

	if (rc)
		return rc;
	iconv(d->cd[enc], NULL, NULL, NULL, NULL);
	while (il > 0) {
		/* UTF-8 needs at most 3 bytes per source byte for these sets */
		size_t extra = il > (SIZE_MAX - 16) / 3 ? il : il * 3 + 16;
		char *op;
		size_t ol, r;

		if ((rc = diana__buf_grow(&d->out, extra)))
			return rc;
		op = d->out.data + d->out.len;
		ol = d->out.cap - d->out.len - 1;
		r = iconv(d->cd[enc], &ip, &il, &op, &ol);
		d->out.len = (size_t)(op - d->out.data);
		d->out.data[d->out.len] = '\0';
		if (r == (size_t)-1 && errno != E2BIG)
			return undecodable(enc); /* EILSEQ, or EINVAL: truncated */
	}
	return 0;
}

static int convert(struct dec *d, int enc, const char *s, size_t n)
{
	switch (enc) {
	case ENC_ASCII:
		return diana__buf_put(&d->out, s, n);
	case ENC_LATIN1:
		return put_latin1(&d->out, (const unsigned char *)s, n);
	case ENC_UTF8:
		if (!utf8_valid((const unsigned char *)s, n))
			return undecodable(ENC_UTF8);
		return diana__buf_put(&d->out, s, n);
	default:
		return put_iconv(d, enc, s, n);
	}
}

static int flush(struct dec *d)
{
	int rc = 0;

	if (d->run.len)
		rc = convert(d, d->run_enc, d->run.data, d->run.len);
	d->run.len = 0;
	d->run_enc = ENC_ASCII;
	return rc;
}

/* Make `enc` the encoding of the pending run.  Pending plain ASCII is valid
 * in every run encoding, so it joins the new run instead of a flush. */
static int need(struct dec *d, int enc)
{
	int rc;

	if (d->run_enc == enc)
		return 0;
	if (d->run_enc != ENC_ASCII && (rc = flush(d)))
		return rc;
	d->run_enc = enc;
	return 0;
}

static int is_delim(unsigned char c, int is_pn)
{
	return (c < 0x20 && c != ESC) || c == '\\' || (is_pn && (c == '^' || c == '='));
}

/* Recognise the escape sequence at p[0] == ESC; returns its length or 0. */
static size_t escape_at(const unsigned char *p, size_t n, const char *charset, int *is_g1,
                        int *set)
{
	size_t i = 1, k;
	char shown[64];

	while (i < n && p[i] >= 0x20 && p[i] <= 0x2f)
		i++; /* intermediate bytes */
	printable(shown, sizeof(shown), charset ? charset : "", charset ? strlen(charset) : 0);
	if (i >= n || p[i] < 0x30 || p[i] > 0x7e) {
		diana__error_set(DIANA_EDICOM,
		                 "truncated escape sequence in text value (specific character set '%s')",
		                 shown);
		return 0;
	}
	i++;
	for (k = 0; k < sizeof(escapes) / sizeof(escapes[0]); k++) {
		size_t l = strlen(escapes[k].seq);
		if (l == i - 1 && memcmp(escapes[k].seq, p + 1, l) == 0) {
			*is_g1 = escapes[k].is_g1;
			*set = escapes[k].set;
			return i;
		}
	}
	diana__error_set(DIANA_EDICOM,
	                 "unknown escape sequence in text value (specific character set '%s')",
	                 shown);
	return 0;
}

static int decode_iso2022(struct dec *d, const struct term *first, const char *charset,
                          const unsigned char *p, size_t len, int is_pn)
{
	int g0 = first->g0, g1 = first->g1;
	size_t i = 0;
	int rc;

	while (i < len) {
		unsigned char c = p[i];

		if (c == ESC) {
			int is_g1 = 0, set = 0;
			size_t l = escape_at(p + i, len - i, charset, &is_g1, &set);
			if (!l)
				return DIANA_EDICOM;
			/* a double-byte G1 character must not straddle an escape */
			if ((d->run_enc == ENC_EUCKR || d->run_enc == ENC_GB2312) && (rc = flush(d)))
				return rc;
			if (is_g1)
				g1 = set;
			else
				g0 = set;
			i += l;
			continue;
		}
		if (c < 0x80) {
			if ((g0 == G0_JIS0208 || g0 == G0_JIS0212) && c >= 0x21 && c <= 0x7e) {
				unsigned char c2 = i + 1 < len ? p[i + 1] : 0;
				if (c2 < 0x21 || c2 > 0x7e)
					return diana__error_set(DIANA_EDICOM,
					        "incomplete %s character in text value",
					        g0 == G0_JIS0208 ? "ISO 2022 IR 87 (JIS X 0208)"
					                         : "ISO 2022 IR 159 (JIS X 0212)");
				if ((rc = need(d, ENC_EUCJP)))
					return rc;
				if (g0 == G0_JIS0212 && (rc = diana__buf_putc(&d->run, (char)0x8f)))
					return rc;
				if ((rc = diana__buf_putc(&d->run, (char)(c | 0x80))) ||
				    (rc = diana__buf_putc(&d->run, (char)(c2 | 0x80))))
					return rc;
				i += 2;
				continue;
			}
			/* ASCII, romaji read as ASCII, or a control/space/DEL */
			if ((rc = diana__buf_putc(&d->run, (char)c)))
				return rc;
			if (is_delim(c, is_pn)) {
				g0 = first->g0;
				g1 = first->g1;
			}
			i++;
			continue;
		}
		if ((rc = need(d, g1_enc[g1])))
			return rc;
		if (g1 == G1_KATAKANA) {
			if (c < 0xa1 || c > 0xdf)
				return undecodable(ENC_EUCJP);
			if ((rc = diana__buf_putc(&d->run, (char)0x8e)))
				return rc;
		}
		if ((rc = diana__buf_putc(&d->run, (char)c)))
			return rc;
		i++;
	}
	return flush(d);
}

static int finish(struct dec *d, char **out)
{
	char *s = diana__buf_detach(&d->out, NULL);

	if (!s)
		return DIANA_ENOMEM;
	*out = s;
	return 0;
}

int diana__charset_to_utf8(const char *charset, const char *bytes, size_t len, int is_pn,
                           char **out)
{
	const unsigned char *p = (const unsigned char *)bytes;
	const struct term *first;
	unsigned needs;
	int high = 0, esc = 0, rc;
	struct dec d;
	size_t i;

	if (out)
		*out = NULL;
	if (!out || (!bytes && len > 0))
		return diana__error_set(DIANA_EINVAL, "invalid argument");
	if ((rc = parse_charset(charset, 1, &first, &needs)))
		return rc;

	for (i = 0; i < len; i++) {
		if (p[i] >= 0x80)
			high = 1;
		else if (p[i] == ESC)
			esc = 1;
	}
	/* fast path: every set used here has ASCII (or romaji, read as ASCII)
	 * in G0 at the start and after each reset */
	if (!high && (!esc || first->standalone)) {
		*out = diana__strndup(len ? bytes : "", len);
		return *out ? 0 : DIANA_ENOMEM;
	}

	dec_init(&d);
	if (first->standalone) {
		rc = convert(&d, first->standalone, bytes, len);
	} else if (!esc && first->g0 == G0_ASCII && first->g1 == G1_NONE &&
	           utf8_valid(p, len)) {
		rc = convert(&d, ENC_UTF8, bytes, len); /* undeclared UTF-8 */
	} else {
		rc = decode_iso2022(&d, first, charset, p, len, is_pn);
	}
	if (!rc)
		rc = finish(&d, out);
	dec_done(&d);
	return rc;
}

int diana__charset_supported(const char *charset)
{
	const struct term *first;
	unsigned needs;
	int enc;

	if (parse_charset(charset, 0, &first, &needs))
		return 0;
	/* the terms are known; are their converters installed? */
	for (enc = 0; enc < ENC_COUNT; enc++) {
		if (needs & (1u << enc)) {
			iconv_t cd = iconv_open("UTF-8", encs[enc].iconv_name);
			if (cd == (iconv_t)-1)
				return 0;
			iconv_close(cd);
		}
	}
	return 1;
}
