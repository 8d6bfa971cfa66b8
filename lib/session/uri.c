/*
 * libdiana - URI parsing for sessions (RFC 3986 subset: what session URIs use).
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "session.h"

static int hexval(int c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c = tolower(c);
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* percent-decode [s, s+n) into a new string; NULL + DIANA_EINVAL on a bad escape or NUL */
static char *pct_decode(const char *s, size_t n, const char *what, int plus_is_space)
{
	char *out = diana__malloc(n + 1);
	size_t i, j = 0;

	if (!out)
		return NULL;
	for (i = 0; i < n; i++) {
		if (s[i] == '%') {
			int h, l;
			if (i + 2 >= n) {
				free(out);
				diana__error_set(DIANA_EINVAL, "session URI: bad percent escape in the %s", what);
				return NULL;
			}
			h = hexval((unsigned char)s[i + 1]);
			l = hexval((unsigned char)s[i + 2]);
			if (h < 0 || l < 0 || (h == 0 && l == 0)) {
				free(out);
				diana__error_set(DIANA_EINVAL, "session URI: bad percent escape in the %s", what);
				return NULL;
			}
			out[j++] = (char)(h * 16 + l);
			i += 2;
		} else if (plus_is_space && s[i] == '+') {
			out[j++] = ' ';
		} else {
			out[j++] = s[i];
		}
	}
	out[j] = '\0';
	return out;
}

void diana__uri_dispose(diana__uri *u)
{
	if (!u)
		return;
	free(u->scheme);
	free(u->user);
	if (u->password) {
		memset(u->password, 0, strlen(u->password));
		free(u->password);
	}
	free(u->host);
	free(u->path);
	free(u->query);
	memset(u, 0, sizeof(*u));
}

int diana__uri_parse(const char *text, diana__uri *u)
{
	const char *p, *auth, *auth_end, *at, *hostp, *hend, *q;
	size_t i;

	memset(u, 0, sizeof(*u));
	if (!text || !*text)
		return diana__error_set(DIANA_EINVAL, "session URI: empty");
	for (i = 0; text[i]; i++) {
		if ((unsigned char)text[i] < 0x21 || (unsigned char)text[i] == 0x7F)
			return diana__error_set(DIANA_EINVAL, "session URI: contains spaces or control characters");
	}
	p = strstr(text, "://");
	if (!p || p == text)
		return diana__error_set(DIANA_EINVAL, "session URI: no scheme (expected scheme://...)");
	for (q = text; q < p; q++) {
		if (!isalnum((unsigned char)*q) && *q != '+' && *q != '-' && *q != '.')
			return diana__error_set(DIANA_EINVAL, "session URI: bad character in the scheme");
	}
	u->scheme = diana__strndup(text, (size_t)(p - text));
	if (!u->scheme)
		return DIANA_ENOMEM;
	for (i = 0; u->scheme[i]; i++)
		u->scheme[i] = (char)tolower((unsigned char)u->scheme[i]);

	auth = p + 3;
	auth_end = auth + strcspn(auth, "/?#");
	/* userinfo: up to the last '@' of the authority */
	at = NULL;
	for (q = auth; q < auth_end; q++) {
		if (*q == '@')
			at = q;
	}
	hostp = auth;
	if (at) {
		const char *colon = memchr(auth, ':', (size_t)(at - auth));
		if (colon) {
			u->user = pct_decode(auth, (size_t)(colon - auth), "user name", 0);
			if (!u->user)
				goto fail;
			u->password = pct_decode(colon + 1, (size_t)(at - colon - 1), "password", 0);
			if (!u->password)
				goto fail;
		} else {
			u->user = pct_decode(auth, (size_t)(at - auth), "user name", 0);
			if (!u->user)
				goto fail;
		}
		hostp = at + 1;
	}
	if (*hostp == '[') {
		hend = memchr(hostp, ']', (size_t)(auth_end - hostp));
		if (!hend) {
			diana__error_set(DIANA_EINVAL, "session URI: unterminated IPv6 address");
			goto fail;
		}
		u->host = diana__strndup(hostp + 1, (size_t)(hend - hostp - 1));
		hend++;
	} else {
		hend = hostp;
		while (hend < auth_end && *hend != ':')
			hend++;
		u->host = diana__strndup(hostp, (size_t)(hend - hostp));
	}
	if (!u->host)
		goto fail;
	if (hend < auth_end) {
		char *end;
		long port;
		if (*hend != ':') {
			diana__error_set(DIANA_EINVAL, "session URI: unexpected text after the host");
			goto fail;
		}
		errno = 0;
		port = strtol(hend + 1, &end, 10);
		if (end != auth_end || end == hend + 1 || errno || port < 1 || port > 65535) {
			diana__error_set(DIANA_EINVAL, "session URI: the port must be a number 1-65535");
			goto fail;
		}
		u->port = (int)port;
	}
	q = auth_end + strcspn(auth_end, "?#");
	u->path = diana__strndup(auth_end, (size_t)(q - auth_end));
	if (!u->path)
		goto fail;
	if (*q == '?') {
		const char *e = q + 1 + strcspn(q + 1, "#");
		u->query = diana__strndup(q + 1, (size_t)(e - q - 1));
		if (!u->query)
			goto fail;
	}
	return 0;
fail:
	{
		int code = diana_error_code();
		diana__uri_dispose(u);
		return code < 0 ? code : DIANA_EINVAL;
	}
}

/* iterate over "a=b&c=d": calls fn(name, nlen, value, vlen) */
static int each_param(const diana__uri *u, int (*fn)(const char *, size_t, const char *, size_t, void *),
                      void *ud)
{
	const char *p = u->query;

	if (!p)
		return 0;
	while (*p) {
		size_t len = strcspn(p, "&;");
		const char *eq = memchr(p, '=', len);
		if (len > 0) {
			int rc = eq ? fn(p, (size_t)(eq - p), eq + 1, len - (size_t)(eq - p) - 1, ud)
			            : fn(p, len, p + len, 0, ud);
			if (rc)
				return rc;
		}
		p += len;
		if (*p)
			p++;
	}
	return 0;
}

struct find_param {
	const char *name;
	const char *value;
	size_t vlen;
	int found;
};

static int find_cb(const char *n, size_t nlen, const char *v, size_t vlen, void *ud)
{
	struct find_param *f = ud;
	if (strlen(f->name) == nlen && strncmp(n, f->name, nlen) == 0) {
		f->value = v;
		f->vlen = vlen;
		f->found = 1;
	}
	return 0;
}

int diana__uri_param(const diana__uri *u, const char *name, char **out)
{
	struct find_param f = { name, NULL, 0, 0 };

	*out = NULL;
	each_param(u, find_cb, &f);
	if (!f.found)
		return DIANA_ENOTFOUND;
	*out = pct_decode(f.value, f.vlen, "query", 1);
	return *out ? 0 : diana_error_code();
}

struct check_param {
	const char *const *known;
};

static int check_cb(const char *n, size_t nlen, const char *v, size_t vlen, void *ud)
{
	struct check_param *c = ud;
	size_t i;
	(void)v;
	(void)vlen;
	for (i = 0; c->known[i]; i++) {
		if (strlen(c->known[i]) == nlen && strncmp(n, c->known[i], nlen) == 0)
			return 0;
	}
	return diana__error_set(DIANA_EINVAL, "session URI: unknown parameter '%.*s'",
	                        (int)(nlen > 32 ? 32 : nlen), n);
}

int diana__uri_check_params(const diana__uri *u, const char *const *known)
{
	struct check_param c = { known };
	return each_param(u, check_cb, &c);
}

char *diana__url_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	diana__buf b = { 0 };

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
			if (diana__buf_putc(&b, (char)c) < 0)
				goto oom;
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			if (diana__buf_put(&b, e, 3) < 0)
				goto oom;
		}
	}
	if (!b.data)
		return diana__strdup("");
	return diana__buf_detach(&b, NULL);
oom:
	diana__buf_dispose(&b);
	return NULL;
}
