/*
 * libdiana - streaming MIME multipart parser (RFC 2046 5.1), see multipart.h.
 *
 * The delimiter is CRLF "--" boundary. The parser starts as if a CRLF had
 * just been seen, so that a body opening with "--boundary" (no preamble)
 * matches. Boundaries cannot contain CR, so CR occurs in the delimiter only
 * at its first byte: a partial match that fails is all data, and the byte
 * that broke it is examined again as a possible start; no backtracking
 * table is needed, and the bytes of a failed partial match are replayed
 * from the delimiter itself (they may have arrived in an earlier chunk).
 * Outside a partial match the body is scanned with memchr for CR.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "multipart.h"

#define HEADERS_MAX (64u * 1024u)

enum state { ST_PREAMBLE, ST_AFTER_DELIM, ST_HEADERS, ST_BODY, ST_EPILOGUE, ST_ERROR };

struct diana__multipart {
	diana__multipart_callbacks cb;
	void *ud;
	char delim[DIANA__MULTIPART_BOUNDARY_MAX + 5]; /* CR LF - - boundary */
	size_t dlen;
	size_t matched;  /* bytes of delim matched at the end of the input so far */
	enum state st;
	int ad;          /* sub-state after a delimiter: 0 start, 1 "-", 2 padding, 3 CR */
	int rc;          /* sticky error or stop code */
	size_t parts;    /* parts ended */
	size_t begun;    /* parts begun */
	diana__buf hdr;  /* header lines of the current part, '\n'-separated */
	int line_start;  /* the next header byte starts a line */
};

/* ------------------------------------------------------------ parameters */

static const char *skip_ws(const char *p)
{
	while (*p == ' ' || *p == '\t')
		p++;
	return p;
}

int diana__header_param(const char *value, const char *name, char *out, size_t cap)
{
	const char *p;
	size_t nlen = strlen(name);

	if (!value)
		return DIANA_ENOTFOUND;
	p = strchr(value, ';');
	while (p && *p) {
		const char *n, *ne;
		int match;
		size_t k = 0;

		p = skip_ws(p + 1);
		n = p;
		while (*p && *p != '=' && *p != ';')
			p++;
		ne = p;
		while (ne > n && (ne[-1] == ' ' || ne[-1] == '\t'))
			ne--;
		match = (size_t)(ne - n) == nlen && strncasecmp(n, name, nlen) == 0;
		if (*p != '=')
			continue; /* a parameter without value: skip it */
		p = skip_ws(p + 1);
		if (*p == '"') {
			p++;
			while (*p && *p != '"') {
				if (*p == '\\' && p[1])
					p++;
				if (match && cap && k + 1 < cap)
					out[k++] = *p;
				p++;
			}
			if (*p == '"')
				p++;
			while (*p && *p != ';')
				p++;
		} else {
			const char *v = p, *ve;
			while (*p && *p != ';')
				p++;
			ve = p;
			while (ve > v && (ve[-1] == ' ' || ve[-1] == '\t' || ve[-1] == '\r' || ve[-1] == '\n'))
				ve--;
			if (match)
				for (; v < ve; v++)
					if (cap && k + 1 < cap)
						out[k++] = *v;
		}
		if (match) {
			if (cap)
				out[k] = '\0';
			return 0;
		}
	}
	return DIANA_ENOTFOUND;
}

int diana__multipart_boundary(const char *content_type, char *type, size_t cap,
                              char boundary[DIANA__MULTIPART_BOUNDARY_MAX + 1])
{
	char t[128], b[DIANA__MULTIPART_BOUNDARY_MAX + 2];
	const char *p, *e;
	size_t n, i;

	boundary[0] = '\0';
	if (type && cap)
		type[0] = '\0';
	if (!content_type || !*content_type)
		return diana__error_set(DIANA_EPACS, "the answer has no Content-Type (multipart expected)");
	p = skip_ws(content_type);
	e = p + strcspn(p, ";");
	while (e > p && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	n = (size_t)(e - p);
	if (n >= sizeof(t))
		n = sizeof(t) - 1;
	for (i = 0; i < n; i++)
		t[i] = (char)tolower((unsigned char)p[i]);
	t[n] = '\0';
	if (type && cap)
		snprintf(type, cap, "%s", t);
	if (strncmp(t, "multipart/", 10) != 0)
		return diana__error_set(DIANA_EPACS, "the answer is %s, not multipart",
		                        *t ? t : "of no media type");
	if (diana__header_param(content_type, "boundary", b, sizeof(b)) != 0 || !*b)
		return diana__error_set(DIANA_EPACS, "multipart answer without a boundary");
	n = strlen(b);
	if (n > DIANA__MULTIPART_BOUNDARY_MAX || strpbrk(b, "\r\n"))
		return diana__error_set(DIANA_EPACS, "multipart boundary too long or invalid");
	memcpy(boundary, b, n + 1);
	return 0;
}

/* ---------------------------------------------------------------- parser */

int diana__multipart_new(diana__multipart **out, const char *boundary,
                         const diana__multipart_callbacks *cb, void *user_data)
{
	diana__multipart *m;
	size_t n;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	n = boundary ? strlen(boundary) : 0;
	if (n == 0 || n > DIANA__MULTIPART_BOUNDARY_MAX || strpbrk(boundary, "\r\n"))
		return diana__error_set(DIANA_EINVAL, "invalid multipart boundary");
	m = diana__calloc(1, sizeof(*m));
	if (!m)
		return DIANA_ENOMEM;
	if (cb)
		m->cb = *cb;
	m->ud = user_data;
	memcpy(m->delim, "\r\n--", 4);
	memcpy(m->delim + 4, boundary, n);
	m->dlen = n + 4;
	m->matched = 2; /* as if the body began after a CRLF */
	m->st = ST_PREAMBLE;
	*out = m;
	return 0;
}

void diana__multipart_free(diana__multipart *m)
{
	if (!m)
		return;
	diana__buf_dispose(&m->hdr);
	free(m);
}

size_t diana__multipart_parts(const diana__multipart *m)
{
	return m ? m->parts : 0;
}

int diana__multipart_in_part(const diana__multipart *m)
{
	return m && m->begun > m->parts;
}

static int fail(diana__multipart *m, int rc)
{
	m->rc = rc;
	m->st = ST_ERROR;
	return rc;
}

static int bad(diana__multipart *m, const char *why)
{
	return fail(m, diana__error_set(DIANA_EPACS, "malformed multipart answer: %s (part %zu)", why,
	                                m->begun));
}

/* a callback's return value as the parser's */
static int cb_rc(diana__multipart *m, int rc)
{
	if (rc > 0)
		rc = diana__error_set(DIANA_EUSER, "multipart parsing stopped by the receiver");
	return fail(m, rc);
}

static int emit(diana__multipart *m, const void *p, size_t n)
{
	int rc;
	if (m->st != ST_BODY || n == 0 || !m->cb.data)
		return 0;
	rc = m->cb.data(p, n, m->ud);
	return rc ? cb_rc(m, rc) : 0;
}

/*
 * Scan for the delimiter (preamble: bytes dropped; body: bytes emitted).
 * *used receives the bytes consumed; returns 1 when a whole delimiter was
 * consumed, 0 when the input ran out, or a negative code. A partial match
 * that began in this chunk and fails stays part of the current run of data
 * (one emit per run, not one per CR); one that began in an earlier chunk is
 * replayed from the delimiter.
 */
static int scan(diana__multipart *m, const uint8_t *p, size_t len, size_t *used)
{
	size_t i = 0, run = 0; /* [run, ...): data not emitted yet */
	size_t ms = SIZE_MAX;  /* where the partial match began in this chunk; MAX: earlier */
	int rc;

	while (i < len) {
		if (m->matched == 0) {
			const uint8_t *q = memchr(p + i, '\r', len - i);
			if (!q) {
				i = len;
				break;
			}
			i = (size_t)(q - p);
			ms = i++;
			m->matched = 1;
			continue;
		}
		if (p[i] == (uint8_t)m->delim[m->matched]) {
			i++;
			if (++m->matched == m->dlen) {
				/* the data before the delimiter (none when it began in an earlier chunk) */
				if (ms != SIZE_MAX && (rc = emit(m, p + run, ms - run)) != 0)
					return rc;
				m->matched = 0;
				*used = i;
				return 1;
			}
			continue;
		}
		/* a failed partial match: its bytes were data; p[i] is examined again */
		if (ms == SIZE_MAX) {
			if ((rc = emit(m, m->delim, m->matched)) != 0)
				return rc;
			run = i;
		}
		m->matched = 0;
	}
	if (m->matched > 0) {
		/* a partial match runs into the next chunk: emit up to its start */
		if (ms != SIZE_MAX && (rc = emit(m, p + run, ms - run)) != 0)
			return rc;
	} else if ((rc = emit(m, p + run, len - run)) != 0) {
		return rc;
	}
	*used = len;
	return 0;
}

static char *trim(char *s)
{
	char *e;
	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = '\0';
	return s;
}

/* the blank line after a part's headers: parse them, call begin */
static int headers_done(diana__multipart *m)
{
	diana__multipart_part part;
	char *line, *next;
	int rc;

	memset(&part, 0, sizeof(part));
	part.index = m->begun;
	part.content_type = "";
	part.content_location = "";
	part.content_length = -1;
	if (m->hdr.oom)
		return fail(m, diana__error_oom());
	for (line = m->hdr.data; line && *line; line = next) {
		char *colon, *name, *value;
		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		else
			next = line + strlen(line);
		colon = strchr(line, ':');
		if (!colon)
			return bad(m, "part header without ':'");
		*colon = '\0';
		name = trim(line);
		value = trim(colon + 1);
		if (!*name)
			return bad(m, "part header without a name");
		if (strcasecmp(name, "Content-Type") == 0)
			part.content_type = value;
		else if (strcasecmp(name, "Content-Location") == 0)
			part.content_location = value;
		else if (strcasecmp(name, "Content-Length") == 0) {
			char *end;
			long long v = strtoll(value, &end, 10);
			if (end != value && *end == '\0' && v >= 0)
				part.content_length = v;
		}
	}
	m->begun++;
	m->st = ST_BODY;
	m->matched = 0;
	if (m->cb.begin && (rc = m->cb.begin(&part, m->ud)) != 0)
		return cb_rc(m, rc);
	diana__buf_dispose(&m->hdr);
	return 0;
}

/* header bytes; *used receives the bytes consumed (up to the end of the headers) */
static int headers(diana__multipart *m, const uint8_t *p, size_t len, size_t *used)
{
	size_t i = 0;

	while (i < len) {
		const uint8_t *nl = memchr(p + i, '\n', len - i);
		size_t n = nl ? (size_t)(nl - (p + i)) : len - i;
		int empty;

		if (m->line_start && n > 0 && (p[i] == ' ' || p[i] == '\t') && m->hdr.len > 0) {
			/* folded continuation: joins the previous line */
			m->hdr.data[m->hdr.len - 1] = ' ';
			m->hdr.len--;
		}
		if (m->hdr.len + n + 1 > HEADERS_MAX)
			return bad(m, "part headers longer than 64 KiB");
		if (n && diana__buf_put(&m->hdr, p + i, n))
			return fail(m, diana__error_oom());
		if (n)
			m->line_start = 0;
		i += n;
		if (!nl)
			break;
		i++; /* the LF */
		/* the line that just ended: empty (or just CR) ends the headers */
		empty = m->line_start ||
		        (m->hdr.len > 0 && m->hdr.data[m->hdr.len - 1] == '\r' &&
		         (m->hdr.len == 1 || m->hdr.data[m->hdr.len - 2] == '\n'));
		if (empty) {
			if (m->hdr.len > 0 && m->hdr.data[m->hdr.len - 1] == '\r')
				m->hdr.data[--m->hdr.len] = '\0';
			if (m->hdr.len > 0 && m->hdr.data[m->hdr.len - 1] == '\n')
				m->hdr.data[--m->hdr.len] = '\0';
			*used = i;
			return headers_done(m);
		}
		if (m->hdr.data[m->hdr.len - 1] == '\r')
			m->hdr.len--;
		if (diana__buf_putc(&m->hdr, '\n'))
			return fail(m, diana__error_oom());
		m->line_start = 1;
	}
	*used = len;
	return 0;
}

int diana__multipart_feed(diana__multipart *m, const void *data, size_t len)
{
	const uint8_t *p = data;
	int rc;

	if (!m)
		return diana__error_set(DIANA_EINVAL, "NULL multipart parser");
	if (m->st == ST_ERROR)
		return m->rc;
	while (len > 0) {
		size_t used = 0;
		switch (m->st) {
		case ST_PREAMBLE:
		case ST_BODY:
			rc = scan(m, p, len, &used);
			if (rc < 0)
				return rc;
			if (rc == 1) {
				if (m->st == ST_BODY) {
					m->parts++;
					if (m->cb.end && (rc = m->cb.end(m->ud)) != 0)
						return cb_rc(m, rc);
				}
				m->st = ST_AFTER_DELIM;
				m->ad = 0;
			}
			break;
		case ST_AFTER_DELIM: {
			uint8_t c = *p;
			used = 1;
			if (m->ad == 0 && c == '-')
				m->ad = 1;
			else if (m->ad == 1 && c == '-')
				m->st = ST_EPILOGUE;
			else if ((m->ad == 0 || m->ad == 2) && (c == ' ' || c == '\t'))
				m->ad = 2;
			else if ((m->ad == 0 || m->ad == 2) && c == '\r')
				m->ad = 3;
			else if (m->ad != 1 && c == '\n') {
				m->st = ST_HEADERS;
				m->line_start = 1;
				diana__buf_dispose(&m->hdr);
			} else
				return bad(m, "unexpected bytes after a boundary");
			break;
		}
		case ST_HEADERS:
			rc = headers(m, p, len, &used);
			if (rc < 0)
				return rc;
			break;
		case ST_EPILOGUE:
			used = len;
			break;
		case ST_ERROR:
		default:
			return m->rc;
		}
		p += used;
		len -= used;
	}
	return 0;
}

int diana__multipart_finish(diana__multipart *m)
{
	if (!m)
		return diana__error_set(DIANA_EINVAL, "NULL multipart parser");
	switch (m->st) {
	case ST_EPILOGUE:
		return 0;
	case ST_ERROR:
		return m->rc;
	case ST_PREAMBLE:
		return fail(m, diana__error_set(DIANA_EPACS,
		                                "malformed multipart answer: no boundary found"));
	default:
		return fail(m, diana__error_set(DIANA_EPACS,
		                                "multipart answer truncated (in part %zu)", m->begun));
	}
}
