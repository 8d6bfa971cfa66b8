/*
 * libdiana - buffers, strings, base64, memory.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/evp.h>

#include "core.h"

DIANA_API void diana_free(void *ptr)
{
	free(ptr);
}

void *diana__malloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p)
		diana__error_oom();
	return p;
}

void *diana__calloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size ? size : 1);
	if (!p)
		diana__error_oom();
	return p;
}

char *diana__strndup(const char *s, size_t n)
{
	char *p = diana__malloc(n + 1);
	if (!p)
		return NULL;
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

char *diana__strdup(const char *s)
{
	return diana__strndup(s, strlen(s));
}

int diana__buf_grow(diana__buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	if (b->oom)
		return DIANA_ENOMEM;
	if (extra > SIZE_MAX - b->len - 1)
		goto oom;
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		cap = cap > SIZE_MAX / 2 ? need : cap * 2;
	p = realloc(b->data, cap);
	if (!p)
		goto oom;
	b->data = p;
	b->cap = cap;
	return 0;
oom:
	b->oom = 1;
	return diana__error_oom();
}

int diana__buf_put(diana__buf *b, const void *data, size_t len)
{
	int rc = diana__buf_grow(b, len);
	if (rc)
		return rc;
	if (len)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int diana__buf_puts(diana__buf *b, const char *s)
{
	return diana__buf_put(b, s, strlen(s));
}

int diana__buf_putc(diana__buf *b, char c)
{
	return diana__buf_put(b, &c, 1);
}

int diana__buf_printf(diana__buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, rc;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return diana__error_set(DIANA_EINVAL, "invalid format");
	rc = diana__buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	va_start(ap, fmt);
	vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

char *diana__buf_detach(diana__buf *b, size_t *len)
{
	char *p;

	if (b->oom) {
		diana__buf_dispose(b);
		diana__error_oom();
		return NULL;
	}
	if (!b->data) {
		if (diana__buf_grow(b, 0))
			return NULL;
		b->data[0] = '\0';
	}
	p = b->data;
	if (len)
		*len = b->len;
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void diana__buf_dispose(diana__buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
	b->oom = 0;
}

char *diana__base64_encode(const uint8_t *data, size_t len, size_t *out_len)
{
	size_t n;
	char *out;
	size_t done = 0, o = 0;

	if (len > (SIZE_MAX / 4) * 3 - 3) {
		diana__error_oom();
		return NULL;
	}
	n = 4 * ((len + 2) / 3);
	out = diana__malloc(n + 1);
	if (!out)
		return NULL;
	/* EVP_EncodeBlock takes an int length: go in chunks (multiple of 3) */
	while (done < len) {
		size_t chunk = len - done;
		if (chunk > 3u * (1u << 28))
			chunk = 3u * (1u << 28);
		o += (size_t)EVP_EncodeBlock((unsigned char *)out + o, data + done, (int)chunk);
		done += chunk;
	}
	out[o] = '\0';
	if (out_len)
		*out_len = o;
	return out;
}

static int b64val(int c)
{
	if (c >= 'A' && c <= 'Z') return c - 'A';
	if (c >= 'a' && c <= 'z') return c - 'a' + 26;
	if (c >= '0' && c <= '9') return c - '0' + 52;
	if (c == '+') return 62;
	if (c == '/') return 63;
	return -1;
}

int diana__base64_decode(const char *text, size_t len, uint8_t **out, size_t *out_len)
{
	uint8_t *buf;
	size_t i, o = 0;
	uint32_t acc = 0;
	int bits = 0, pad = 0;

	*out = NULL;
	*out_len = 0;
	buf = diana__malloc(len / 4 * 3 + 3);
	if (!buf)
		return DIANA_ENOMEM;
	for (i = 0; i < len; i++) {
		int c = (unsigned char)text[i], v;
		if (c == ' ' || c == '\n' || c == '\r' || c == '\t')
			continue;
		if (c == '=') {
			pad++;
			continue;
		}
		v = b64val(c);
		if (v < 0 || pad) {
			free(buf);
			return diana__error_set(DIANA_EINVAL, "invalid base64 data");
		}
		acc = (acc << 6) | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			buf[o++] = (uint8_t)(acc >> bits);
			acc &= (1u << bits) - 1;
		}
	}
	if (bits >= 6 || pad > 2) {
		free(buf);
		return diana__error_set(DIANA_EINVAL, "invalid base64 data");
	}
	*out = buf;
	*out_len = o;
	return 0;
}

int64_t diana__now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void diana__decimal128(const uint8_t be[16], char out[40])
{
	uint32_t limb[4];
	char digits[40];
	size_t nd = 0;

	/* 4 limbs of 32 bits, to decimal by long division by 10^9: nine digits a pass */
	for (int i = 0; i < 4; i++)
		limb[i] = ((uint32_t)be[4 * i] << 24) | ((uint32_t)be[4 * i + 1] << 16) |
		          ((uint32_t)be[4 * i + 2] << 8) | be[4 * i + 3];
	for (;;) {
		uint64_t rem = 0;
		int zero = 1;
		for (int i = 0; i < 4; i++) {
			uint64_t cur = (rem << 32) | limb[i];
			limb[i] = (uint32_t)(cur / 1000000000u);
			rem = cur % 1000000000u;
			if (limb[i])
				zero = 0;
		}
		for (int k = 0; k < 9; k++) {
			digits[nd++] = (char)('0' + rem % 10);
			rem /= 10;
			if (zero && !rem)
				break; /* no leading zeros in the most significant group */
		}
		if (zero)
			break;
	}
	for (size_t i = 0; i < nd; i++)
		out[i] = digits[nd - 1 - i];
	out[nd] = 0;
}
