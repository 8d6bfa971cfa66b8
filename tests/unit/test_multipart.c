/*
 * Unit tests of the streaming multipart parser (lib/net/multipart.c):
 * Content-Type boundary parameters (quoted or not), several parts with
 * their headers, a preamble and an epilogue, part bodies full of near
 * delimiters, the input split at every byte position, byte by byte and
 * in random chunks, empty parts, bare-LF header lines, transport padding,
 * callbacks that stop, and malformed input -> DIANA_EPACS with one line.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <diana/diana.h>

#include "net/multipart.h"

#define MAXP 16

struct coll {
	int nparts;
	char ctype[MAXP][128];
	char cloc[MAXP][128];
	long long clen[MAXP];
	diana__buf body[MAXP];
	int ended[MAXP];
	int stop_at_begin; /* 1-based part index, 0: never */
	int stop_rc;
	int in_part;
	int order_error;
	size_t calls; /* data callbacks */
};

static int on_begin(const diana__multipart_part *p, void *ud)
{
	struct coll *c = ud;
	if (c->in_part || (int)p->index != c->nparts || c->nparts >= MAXP)
		c->order_error = 1;
	c->in_part = 1;
	snprintf(c->ctype[c->nparts], sizeof(c->ctype[0]), "%s", p->content_type);
	snprintf(c->cloc[c->nparts], sizeof(c->cloc[0]), "%s", p->content_location);
	c->clen[c->nparts] = (long long)p->content_length;
	c->nparts++;
	if (c->stop_at_begin && c->nparts == c->stop_at_begin)
		return c->stop_rc;
	return 0;
}

static int on_data(const void *d, size_t n, void *ud)
{
	struct coll *c = ud;
	if (!c->in_part || n == 0)
		c->order_error = 1;
	c->calls++;
	return diana__buf_put(&c->body[c->nparts - 1], d, n);
}

static int on_end(void *ud)
{
	struct coll *c = ud;
	if (!c->in_part)
		c->order_error = 1;
	c->in_part = 0;
	c->ended[c->nparts - 1] = 1;
	return 0;
}

static const diana__multipart_callbacks CB = { on_begin, on_data, on_end };

static void coll_dispose(struct coll *c)
{
	int i;
	for (i = 0; i < MAXP; i++)
		diana__buf_dispose(&c->body[i]);
	memset(c, 0, sizeof(*c));
}

/* feed `body` in chunks: sizes from `chunks` (cycled), 0-terminated; NULL = whole */
static int parse(const char *boundary, const void *body, size_t len, const size_t *chunks,
                 struct coll *c)
{
	diana__multipart *m = NULL;
	const char *p = body;
	size_t off = 0, k = 0;
	int rc;

	cr_assert_eq(diana__multipart_new(&m, boundary, &CB, c), 0, "%s", diana_error_message());
	while (off < len) {
		size_t n = chunks ? chunks[k] : len;
		if (chunks && !chunks[++k])
			k = 0;
		if (n > len - off)
			n = len - off;
		rc = diana__multipart_feed(m, p + off, n);
		if (rc) {
			diana__multipart_free(m);
			return rc;
		}
		off += n;
	}
	rc = diana__multipart_finish(m);
	diana__multipart_free(m);
	return rc;
}

/* -------------------------------------------------------------- the body */

static const char BOUNDARY[] = "DianaBoundary-1234";

/* part bodies with near-delimiters and CR/LF everywhere */
static const char P0[] = "first\r\n--DianaBoundary-123\r\n--DianaBoundar\r\r\n\r\n-";
static const char P2[] = "\r\n--DianaBoundary-123 is not it?\r\n-\r-\n--\r";

static size_t build_body(char *out, size_t cap, const uint8_t *bin, size_t binlen)
{
	size_t n = 0;
#define ADD(s, l)                                      \
	do {                                               \
		cr_assert_lt(n + (l), cap);                    \
		memcpy(out + n, (s), (l));                     \
		n += (l);                                      \
	} while (0)
#define ADDS(s) ADD(s, strlen(s))
	ADDS("This is a preamble.\r\n--DianaBoundary-12 not a delimiter\r\n");
	ADDS("--DianaBoundary-1234\r\n");
	ADDS("Content-Type: application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n");
	ADDS("Content-Location: /studies/1/series/2/instances/3\r\n");
	ADDS("Content-Length: 49\r\n\r\n");
	ADD(P0, sizeof(P0) - 1);
	ADDS("\r\n--DianaBoundary-1234 \t\r\n");        /* transport padding */
	ADDS("content-type:application/dicom\r\n\r\n"); /* binary part */
	ADD(bin, binlen);
	ADDS("\r\n--DianaBoundary-1234\r\n");
	ADDS("Content-Type: text/plain;\r\n charset=utf-8\r\n\r\n"); /* folded header */
	ADD(P2, sizeof(P2) - 1);
	ADDS("\r\n--DianaBoundary-1234\r\n\r\n");         /* no headers, empty body */
	ADDS("\r\n--DianaBoundary-1234--\r\nepilogue\r\n--DianaBoundary-1234\r\nignored");
	return n;
}

static uint8_t bin[600];
static char body[4096];
static size_t body_len;

static void init_body(void)
{
	size_t i;
	uint32_t x = 12345;
	for (i = 0; i < sizeof(bin); i++) {
		x = x * 1103515245u + 12345u;
		bin[i] = (uint8_t)(x >> 16);
	}
	/* a few near delimiters inside the binary part */
	memcpy(bin + 10, "\r\n--DianaBoundary-123", 21);
	memcpy(bin + 100, "\r\r\n\r\n--", 7);
	bin[sizeof(bin) - 1] = '\r';
	body_len = build_body(body, sizeof(body), bin, sizeof(bin));
}

static void check(struct coll *c)
{
	cr_assert_eq(c->order_error, 0);
	cr_assert_eq(c->nparts, 4);
	cr_assert_str_eq(c->ctype[0], "application/dicom; transfer-syntax=1.2.840.10008.1.2.1");
	cr_assert_str_eq(c->cloc[0], "/studies/1/series/2/instances/3");
	cr_assert_eq(c->clen[0], 49);
	cr_assert_eq(c->body[0].len, sizeof(P0) - 1);
	cr_assert_eq(memcmp(c->body[0].data, P0, sizeof(P0) - 1), 0);
	cr_assert_str_eq(c->ctype[1], "application/dicom");
	cr_assert_eq(c->clen[1], -1);
	cr_assert_eq(c->body[1].len, sizeof(bin));
	cr_assert_eq(memcmp(c->body[1].data, bin, sizeof(bin)), 0);
	cr_assert_str_eq(c->ctype[2], "text/plain; charset=utf-8");
	cr_assert_eq(c->body[2].len, sizeof(P2) - 1);
	cr_assert_eq(memcmp(c->body[2].data, P2, sizeof(P2) - 1), 0);
	cr_assert_str_eq(c->ctype[3], "");
	cr_assert_eq(c->body[3].len, 0);
	cr_assert(c->ended[0] && c->ended[1] && c->ended[2] && c->ended[3]);
}

TestSuite(multipart, .init = init_body, .timeout = 60);

Test(multipart, whole)
{
	struct coll c = { 0 };
	cr_assert_eq(parse(BOUNDARY, body, body_len, NULL, &c), 0, "%s", diana_error_message());
	check(&c);
	coll_dispose(&c);
}

Test(multipart, split_at_every_position)
{
	size_t cut;
	for (cut = 1; cut < body_len; cut++) {
		size_t chunks[3] = { cut, body_len, 0 };
		struct coll c = { 0 };
		int rc = parse(BOUNDARY, body, body_len, chunks, &c);
		cr_assert_eq(rc, 0, "cut at %zu: %s", cut, diana_error_message());
		check(&c);
		coll_dispose(&c);
	}
}

Test(multipart, split_twice_around_every_delimiter_byte)
{
	/* two cuts: every pair within a window around each byte position (step 1..7) */
	size_t a, step;
	for (step = 1; step <= 7; step++)
		for (a = 1; a + step < body_len; a++) {
			size_t chunks[4] = { a, step, body_len, 0 };
			struct coll c = { 0 };
			int rc = parse(BOUNDARY, body, body_len, chunks, &c);
			cr_assert_eq(rc, 0, "cuts %zu+%zu: %s", a, step, diana_error_message());
			check(&c);
			coll_dispose(&c);
		}
}

Test(multipart, byte_by_byte_and_random_chunks)
{
	size_t one[2] = { 1, 0 };
	struct coll c = { 0 };
	unsigned seed;
	cr_assert_eq(parse(BOUNDARY, body, body_len, one, &c), 0, "%s", diana_error_message());
	check(&c);
	coll_dispose(&c);
	for (seed = 1; seed <= 200; seed++) {
		size_t chunks[33];
		int i;
		srand(seed);
		for (i = 0; i < 32; i++)
			chunks[i] = 1 + (size_t)(rand() % 97);
		chunks[32] = 0;
		cr_assert_eq(parse(BOUNDARY, body, body_len, chunks, &c), 0, "seed %u: %s", seed,
		             diana_error_message());
		check(&c);
		coll_dispose(&c);
	}
}

Test(multipart, no_preamble_lf_headers_many_parts)
{
	diana__buf b = DIANA__BUF_INIT;
	struct coll c = { 0 };
	int i;
	/* begins directly with the boundary; header lines end with a bare LF */
	for (i = 0; i < 12; i++)
		cr_assert_eq(diana__buf_printf(&b, "%s--xyz\r\nContent-Type: a/b%d\n\npart %d",
		                               i ? "\r\n" : "", i, i), 0);
	cr_assert_eq(diana__buf_puts(&b, "\r\n--xyz--"), 0);
	for (i = 1; i < (int)b.len; i++) {
		size_t chunks[3] = { (size_t)i, b.len, 0 };
		char want[32];
		int k;
		cr_assert_eq(parse("xyz", b.data, b.len, chunks, &c), 0, "%d: %s", i,
		             diana_error_message());
		cr_assert_eq(c.nparts, 12);
		for (k = 0; k < 12; k++) {
			snprintf(want, sizeof(want), "part %d", k);
			cr_assert_eq(c.body[k].len, strlen(want), "part %d", k);
			cr_assert_eq(memcmp(c.body[k].data, want, strlen(want)), 0);
			snprintf(want, sizeof(want), "a/b%d", k);
			cr_assert_str_eq(c.ctype[k], want);
		}
		coll_dispose(&c);
	}
	diana__buf_dispose(&b);
}

Test(multipart, leading_crlf_before_first_boundary)
{
	static const char b[] = "\r\n--q\r\n\r\nA\r\n--q--";
	struct coll c = { 0 };
	cr_assert_eq(parse("q", b, sizeof(b) - 1, NULL, &c), 0, "%s", diana_error_message());
	cr_assert_eq(c.nparts, 1);
	cr_assert_eq(c.body[0].len, 1);
	coll_dispose(&c);
}

/* ---------------------------------------------------------- content type */

Test(multipart, boundary_parameter)
{
	char b[DIANA__MULTIPART_BOUNDARY_MAX + 1], t[64], v[64];

	cr_assert_eq(diana__multipart_boundary(
	                 "multipart/related; type=\"application/dicom\"; boundary=abc-123", t,
	                 sizeof(t), b), 0);
	cr_assert_str_eq(b, "abc-123");
	cr_assert_str_eq(t, "multipart/related");
	cr_assert_eq(diana__multipart_boundary(
	                 "Multipart/Related;BOUNDARY=\"a b:c;\\\"d\" ; type=application/dicom", t,
	                 sizeof(t), b), 0);
	cr_assert_str_eq(b, "a b:c;\"d");
	cr_assert_str_eq(t, "multipart/related");
	cr_assert_eq(diana__multipart_boundary("multipart/related; type=\"x;boundary=no\"; boundary=yes",
	                                       NULL, 0, b), 0);
	cr_assert_str_eq(b, "yes");

	cr_assert_eq(diana__multipart_boundary("application/dicom+json", t, sizeof(t), b), DIANA_EPACS);
	cr_assert_str_eq(t, "application/dicom+json");
	cr_assert_not_null(strstr(diana_error_message(), "not multipart"));
	cr_assert_eq(diana__multipart_boundary("multipart/related; type=x", t, sizeof(t), b), DIANA_EPACS);
	cr_assert_eq(diana__multipart_boundary("multipart/related; boundary=\"\"", t, sizeof(t), b),
	             DIANA_EPACS);
	cr_assert_eq(diana__multipart_boundary("", t, sizeof(t), b), DIANA_EPACS);
	cr_assert_eq(diana__multipart_boundary(NULL, t, sizeof(t), b), DIANA_EPACS);

	cr_assert_eq(diana__header_param("application/dicom; transfer-syntax=1.2.840.10008.1.2.1 ",
	                                 "Transfer-Syntax", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "1.2.840.10008.1.2.1");
	cr_assert_eq(diana__header_param("application/dicom", "transfer-syntax", v, sizeof(v)),
	             DIANA_ENOTFOUND);
	cr_assert_eq(diana__header_param("a/b; flag; x=1", "x", v, sizeof(v)), 0);
	cr_assert_str_eq(v, "1");
}

/* ------------------------------------------------------------ bad input */

static void expect_bad(const char *what, const char *b, int want)
{
	struct coll c = { 0 };
	size_t one[2] = { 1, 0 };
	int rc = parse("q", b, strlen(b), NULL, &c);
	cr_assert_eq(rc, want, "%s: rc %d", what, rc);
	cr_assert_str_not_empty(diana_error_message());
	cr_assert_null(strchr(diana_error_message(), '\n'), "one line");
	coll_dispose(&c);
	/* the same byte by byte */
	rc = parse("q", b, strlen(b), one, &c);
	cr_assert_eq(rc, want, "%s (bytewise): rc %d", what, rc);
	coll_dispose(&c);
}

Test(multipart, bad_input)
{
	expect_bad("garbage after boundary", "--q\r\n\r\nA\r\n--qX\r\n\r\nB\r\n--q--", DIANA_EPACS);
	expect_bad("one dash", "--q\r\n\r\nA\r\n--q-\r\n", DIANA_EPACS);
	expect_bad("CR without LF", "--q\r\r\n\r\nA\r\n--q--", DIANA_EPACS);
	expect_bad("truncated in body", "--q\r\n\r\nAAAA", DIANA_EPACS);
	expect_bad("truncated in delimiter", "--q\r\n\r\nAAAA\r\n--", DIANA_EPACS);
	expect_bad("truncated in headers", "--q\r\nContent-Type: a", DIANA_EPACS);
	expect_bad("truncated after delimiter", "--q\r\n\r\nA\r\n--q", DIANA_EPACS);
	expect_bad("no boundary", "just some text, not multipart at all", DIANA_EPACS);
	expect_bad("empty", "", DIANA_EPACS);
	expect_bad("header without colon", "--q\r\nContent-Type a/b\r\n\r\nA\r\n--q--", DIANA_EPACS);
	expect_bad("header without name", "--q\r\n: a/b\r\n\r\nA\r\n--q--", DIANA_EPACS);

	{ /* 70 KB of headers */
		diana__buf b = DIANA__BUF_INIT;
		struct coll c = { 0 };
		int i;
		diana__buf_puts(&b, "--q\r\n");
		for (i = 0; i < 2000; i++)
			diana__buf_puts(&b, "X-Filler: 0123456789012345678901234567890123\r\n");
		diana__buf_puts(&b, "\r\nA\r\n--q--");
		cr_assert_eq(parse("q", b.data, b.len, NULL, &c), DIANA_EPACS);
		cr_assert_not_null(strstr(diana_error_message(), "64 KiB"));
		coll_dispose(&c);
		diana__buf_dispose(&b);
	}
	{ /* the error is sticky */
		diana__multipart *m = NULL;
		struct coll c = { 0 };
		cr_assert_eq(diana__multipart_new(&m, "q", &CB, &c), 0);
		cr_assert_eq(diana__multipart_feed(m, "--qZ", 4), DIANA_EPACS);
		cr_assert_eq(diana__multipart_feed(m, "\r\n", 2), DIANA_EPACS);
		cr_assert_eq(diana__multipart_finish(m), DIANA_EPACS);
		diana__multipart_free(m);
		coll_dispose(&c);
	}
	{
		diana__multipart *m = NULL;
		cr_assert_eq(diana__multipart_new(&m, "", &CB, NULL), DIANA_EINVAL);
		cr_assert_null(m);
		cr_assert_eq(diana__multipart_new(&m, "a\r\nb", &CB, NULL), DIANA_EINVAL);
	}
}

Test(multipart, callback_stops)
{
	struct coll c = { 0 };
	c.stop_at_begin = 2;
	c.stop_rc = 1;
	cr_assert_eq(parse(BOUNDARY, body, body_len, NULL, &c), DIANA_EUSER);
	cr_assert_eq(c.nparts, 2);
	coll_dispose(&c);
	c.stop_at_begin = 1;
	c.stop_rc = DIANA_EIO;
	cr_assert_eq(parse(BOUNDARY, body, body_len, NULL, &c), DIANA_EIO);
	cr_assert_eq(c.nparts, 1);
	coll_dispose(&c);
}

Test(multipart, large_part_streamed_in_pieces)
{
	/* 8 MB part of CR-rich data fed in 16 KB chunks: data arrives in pieces */
	size_t n = 8u << 20, i, off = 0;
	char *b = malloc(n + 64);
	diana__multipart *m = NULL;
	struct coll c = { 0 };
	cr_assert_not_null(b);
	memcpy(b, "--q\r\n\r\n", 7);
	for (i = 0; i < n; i++)
		b[7 + i] = (i % 7 == 0) ? '\r' : (i % 11 == 0) ? '\n' : (i % 13 == 0 ? '-' : 'q');
	memcpy(b + 7 + n, "\r\n--q--\r\n", 9);
	cr_assert_eq(diana__multipart_new(&m, "q", &CB, &c), 0);
	while (off < n + 16) {
		size_t k = n + 16 - off < 16384 ? n + 16 - off : 16384;
		cr_assert_eq(diana__multipart_feed(m, b + off, k), 0, "%s", diana_error_message());
		off += k;
	}
	cr_assert_eq(diana__multipart_finish(m), 0, "%s", diana_error_message());
	cr_assert_eq(diana__multipart_parts(m), 1);
	cr_assert_eq(c.body[0].len, n);
	cr_assert_eq(memcmp(c.body[0].data, b + 7, n), 0);
	/* CRs inside the data do not split it: about one piece per chunk */
	cr_assert_leq(c.calls, 2 * ((n + 16) / 16384 + 1), "%zu data callbacks", c.calls);
	diana__multipart_free(m);
	coll_dispose(&c);
	free(b);
}
