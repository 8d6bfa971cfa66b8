/*
 * libdiana - DICOMweb sessions (dicomweb+http(s)://[user:pass@]host:port/path):
 * QIDO-RS find, WADO-RS retrieve, STOW-RS store, echo, over libdiana's HTTP
 * client (one keep-alive connection per session). See doc/session-dicomweb.md.
 *
 * - find: GET {base}/studies | /series | /instances, or the hierarchical
 *   forms when the parents' UIDs are given as single UIDs; matching keys
 *   become query parameters (tag numbers, UID lists with ','), return keys
 *   includefield=, fuzzymatching=false, paged with limit/offset. Answers are
 *   DICOM JSON, narrowed to the keys asked for (plus QueryRetrieveLevel).
 * - retrieve: GET {base}/studies/{uid}[/series/{uid}[/instances/{uid}]] with
 *   Accept: multipart/related; type="application/dicom"; the body is parsed
 *   as a stream (lib/net/multipart.c) and each part lands in a temporary
 *   file handed to the callback as soon as the part ends.
 * - store: POST {base}/studies, a multipart/related body per file (or per
 *   batch, DW_STOW_BATCH_FILES); the DICOM JSON answer
 *   (ReferencedSOPSequence / FailedSOPSequence) gives each file's outcome.
 * - echo: QIDO-RS studies?limit=1.
 *
 * PHI rule: paths and query strings carry UIDs, accession numbers and
 * names; they never reach errors or logs (the HTTP layer logs host and
 * status only), and neither do answer values.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "session.h"
#include "../net/multipart.h"
#include "../net/net.h"

/* QIDO-RS page size (limit=); a short page ends the query */
#define DW_PAGE 500
/*
 * STOW-RS: files per request, bytes per request (a larger file goes alone).
 * One file per request by default: each file's outcome is then exact even
 * from a server that rejects a whole request without per-instance detail,
 * and only one file is in memory (diana__http has no streaming upload).
 * Batches measured no faster against Orthanc 1.10.1 (doc/session-dicomweb.md).
 */
#ifndef DW_STOW_BATCH_FILES
#define DW_STOW_BATCH_FILES 1
#endif
#ifndef DW_STOW_BATCH_BYTES
#define DW_STOW_BATCH_BYTES ((size_t)32 << 20)
#endif
/* bytes of a received part buffered before write() */
#define DW_WRITE_BUF ((size_t)256 << 10)

#define ACCEPT_JSON "application/dicom+json"
#define ACCEPT_DICOM_ANY "multipart/related; type=\"application/dicom\"; transfer-syntax=*"
#define ACCEPT_DICOM "multipart/related; type=\"application/dicom\""

typedef struct dicomweb {
	diana__http *http;
	int no_ts_any; /* the server refused transfer-syntax=* once: ask without it */
} dicomweb;

static dicomweb *impl(diana_session *s)
{
	return (dicomweb *)s->impl;
}

/* ------------------------------------------------------------- helpers */

static void tag_hex(uint32_t tag, char out[9])
{
	snprintf(out, 9, "%08X", (unsigned)tag);
}

/* prefix the current error message (copied first: the message buffer is also the output) */
static int prefixed(int code, const char *prefix)
{
	char msg[256];
	snprintf(msg, sizeof(msg), "%s", diana_error_message());
	return diana__error_set(code, "%s: %s", prefix, msg);
}

/* a single UID usable in a path: digits and dots only */
static int single_uid(const diana__key *k)
{
	const char *p;
	if (!k || !k->value || !*k->value || strlen(k->value) > 64)
		return 0;
	for (p = k->value; *p; p++)
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return 0;
	return 1;
}

/*
 * Percent-encode a QIDO-RS query value, leaving literal what RFC 3986 allows
 * in a query (unreserved, sub-delims but & + =, ':', '@', '/', '?') and '^'
 * (PN component separator): Orthanc 1.10.1's DICOMweb plugin does not
 * percent-decode query values, so "DOE^J*" must go as is to match there.
 */
static char *query_escape(const char *s)
{
	static const char hex[] = "0123456789ABCDEF";
	diana__buf b = DIANA__BUF_INIT;

	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (isalnum(c) || strchr("-._~!$'()*,;:@/?^", c)) {
			diana__buf_putc(&b, (char)c);
		} else {
			char e[3] = { '%', hex[c >> 4], hex[c & 15] };
			diana__buf_put(&b, e, 3);
		}
	}
	if (b.oom) {
		diana__buf_dispose(&b);
		diana__error_oom();
		return NULL;
	}
	return b.data ? diana__buf_detach(&b, NULL) : diana__strdup("");
}

/* a GET whose answer is DICOM JSON (or nothing: 204) */
static int dw_get_json(diana_session *s, const char *path, const char *what, cJSON **out)
{
	diana__http_request req = { 0 };
	diana__http_response resp;
	int rc;

	*out = NULL;
	if (diana__session_cancelled(s))
		return DIANA_ECANCELLED;
	req.method = "GET";
	req.path = path;
	req.accept = ACCEPT_JSON;
	rc = diana__http_perform(impl(s)->http, &req, &resp);
	if (rc == 0 && resp.body.len > 0) {
		*out = cJSON_ParseWithLength(resp.body.data, resp.body.len);
		if (!*out)
			rc = diana__error_set(DIANA_EPACS, "%s: the answer is not JSON (HTTP %ld)", what,
			                      resp.status);
		else if (!cJSON_IsArray(*out))
			rc = diana__error_set(DIANA_EPACS, "%s: the answer is not a JSON array", what);
	} else if (rc == 0) {
		*out = cJSON_CreateArray(); /* 204 No Content: no match */
		if (!*out)
			rc = diana__error_oom();
	}
	if (rc < 0) {
		cJSON_Delete(*out);
		*out = NULL;
	}
	diana__http_response_dispose(&resp);
	return rc;
}

/* ----------------------------------------------------------------- echo */

static int dw_echo(diana_session *s)
{
	cJSON *a = NULL;
	int rc = dw_get_json(s, "studies?limit=1", "QIDO-RS", &a);
	cJSON_Delete(a);
	if (rc == DIANA_ENOTFOUND)
		return diana__error_set(DIANA_ENOTFOUND, "no QIDO-RS service at this URL (HTTP 404)");
	return rc;
}

/* ----------------------------------------------------------------- find */

/* the query path and parameters; *used_* tell which keys went into the path */
static int build_query(int level, const diana__keys *keys, diana__buf *q, uint32_t *path_tags,
                       size_t *npath)
{
	const diana__key *st = diana__keys_get(keys, 0x0020000D);
	const diana__key *se = diana__keys_get(keys, 0x0020000E);
	size_t i;
	int sep;

	*npath = 0;
	if (level == DIANA_LEVEL_STUDY) {
		diana__buf_puts(q, "studies");
	} else if (level == DIANA_LEVEL_SERIES) {
		if (single_uid(st)) {
			diana__buf_printf(q, "studies/%s/series", st->value);
			path_tags[(*npath)++] = 0x0020000D;
		} else {
			diana__buf_puts(q, "series");
		}
	} else {
		if (single_uid(st) && single_uid(se)) {
			diana__buf_printf(q, "studies/%s/series/%s/instances", st->value, se->value);
			path_tags[(*npath)++] = 0x0020000D;
			path_tags[(*npath)++] = 0x0020000E;
		} else if (single_uid(st)) {
			diana__buf_printf(q, "studies/%s/instances", st->value);
			path_tags[(*npath)++] = 0x0020000D;
		} else {
			diana__buf_puts(q, "instances");
		}
	}
	sep = '?';
	for (i = 0; i < keys->n; i++) {
		const diana__key *k = &keys->v[i];
		char hex[9];
		size_t j;
		int in_path = 0;

		for (j = 0; j < *npath; j++)
			in_path |= path_tags[j] == k->tag;
		if (in_path || k->tag == 0x00080052) /* QueryRetrieveLevel: the path says it */
			continue;
		tag_hex(k->tag, hex);
		if (!k->value || !*k->value) {
			diana__buf_printf(q, "%cincludefield=%s", sep, hex);
		} else {
			char *v = diana__strdup(k->value), *e;
			if (!v)
				return DIANA_ENOMEM;
			if (strcmp(k->vr, "UI") == 0) {
				/* PS3.18: a UID list is comma-separated in QIDO-RS */
				char *p;
				for (p = v; *p; p++)
					if (*p == '\\')
						*p = ',';
			}
			e = query_escape(v);
			free(v);
			if (!e)
				return DIANA_ENOMEM;
			diana__buf_printf(q, "%c%s=%s", sep, hex, e);
			free(e);
		}
		sep = '&';
	}
	diana__buf_printf(q, "%cfuzzymatching=false", sep);
	return q->oom ? diana__error_oom() : 0;
}

static int tag_of_member(const char *name, uint32_t *tag)
{
	char *end;
	unsigned long v;
	if (!name || strlen(name) != 8)
		return -1;
	v = strtoul(name, &end, 16);
	if (*end)
		return -1;
	*tag = (uint32_t)v;
	return 0;
}

/* one QIDO-RS answer object -> the dataset handed to the callback */
static int answer_dataset(cJSON *obj, int level, const diana__keys *keys, const uint32_t *path_tags,
                          size_t npath, diana_dataset **out)
{
	cJSON *it = obj->child, *el, *vals;
	char *text;
	size_t j;
	int rc;

	*out = NULL;
	if (!cJSON_IsObject(obj))
		return diana__error_set(DIANA_EPACS, "QIDO-RS: an answer is not a JSON object");
	/* keep what was asked; JSON text is UTF-8 whatever 00080005 says: drop it */
	while (it) {
		cJSON *next = it->next;
		uint32_t tag;
		if (tag_of_member(it->string, &tag) < 0 || tag == 0x00080005 || tag == 0x00080052 ||
		    !diana__keys_get(keys, tag))
			cJSON_DeleteItemFromObjectCaseSensitive(obj, it->string);
		it = next;
	}
	/* a parent UID given in the path comes back even when the server leaves it out */
	for (j = 0; j < npath; j++) {
		char hex[9];
		const diana__key *k = diana__keys_get(keys, path_tags[j]);
		tag_hex(path_tags[j], hex);
		if (k && !cJSON_GetObjectItemCaseSensitive(obj, hex)) {
			if (!(el = cJSON_AddObjectToObject(obj, hex)) || !cJSON_AddStringToObject(el, "vr", "UI") ||
			    !(vals = cJSON_AddArrayToObject(el, "Value")))
				return diana__error_oom();
			cJSON_AddItemToArray(vals, cJSON_CreateString(k->value));
		}
	}
	if (!(el = cJSON_AddObjectToObject(obj, "00080052")) || !cJSON_AddStringToObject(el, "vr", "CS") ||
	    !(vals = cJSON_AddArrayToObject(el, "Value")))
		return diana__error_oom();
	cJSON_AddItemToArray(vals, cJSON_CreateString(diana__level_name(level)));
	text = cJSON_PrintUnformatted(obj);
	if (!text)
		return diana__error_oom();
	rc = diana_dataset_from_json(out, text, 0);
	cJSON_free(text);
	if (rc < 0)
		return prefixed(rc == DIANA_ENOMEM ? rc : DIANA_EDICOM, "QIDO-RS: an answer is not valid DICOM JSON");
	return 0;
}

/* the level UID of an answer (to detect a server that ignores offset) */
static const char *answer_uid(const cJSON *obj, int level)
{
	char hex[9];
	const cJSON *v;
	tag_hex(diana__level_uid_tag(level), hex);
	v = cJSON_GetObjectItemCaseSensitive(obj, hex);
	v = cJSON_GetObjectItemCaseSensitive(v, "Value");
	return cJSON_GetStringValue(cJSON_GetArrayItem(v, 0));
}

static int dw_find(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn, void *ud,
                   size_t *count)
{
	diana__buf q = DIANA__BUF_INIT;
	uint32_t path_tags[2];
	size_t npath = 0, offset = 0;
	char prev_first[80] = "";
	int rc;

	if (level == DIANA_LEVEL_PATIENT)
		return diana__error_set(DIANA_EUNSUPPORTED,
		                        "QIDO-RS has no patient level (study, series, instance)");
	rc = build_query(level, keys, &q, path_tags, &npath);
	if (rc < 0) {
		diana__buf_dispose(&q);
		return rc;
	}
	for (;;) {
		diana__buf page = DIANA__BUF_INIT;
		cJSON *arr = NULL, *obj;
		const char *first;
		int n;

		if (diana__buf_printf(&page, "%s&limit=%d&offset=%zu", q.data, DW_PAGE, offset)) {
			rc = diana__error_oom();
			break;
		}
		rc = dw_get_json(s, page.data, "QIDO-RS", &arr);
		diana__buf_dispose(&page);
		if (rc == DIANA_ENOTFOUND && npath > 0) {
			/* some servers answer 404 for the children of an unknown study: no match */
			diana_error_clear();
			rc = 0;
			break;
		}
		if (rc < 0) {
			if (rc == DIANA_ENOTFOUND)
				rc = diana__error_set(DIANA_ENOTFOUND, "QIDO-RS: HTTP 404 (no QIDO-RS service at "
				                                       "this URL?)");
			break;
		}
		n = cJSON_GetArraySize(arr);
		first = n > 0 ? answer_uid(cJSON_GetArrayItem(arr, 0), level) : NULL;
		if (offset > 0 && first && prev_first[0] && strcmp(first, prev_first) == 0) {
			/* the same page again: the server ignores offset */
			diana__log(DIANA_LOG_WARNING, "session", "QIDO-RS: the server ignores offset; "
			                                         "answers may be incomplete");
			cJSON_Delete(arr);
			break;
		}
		snprintf(prev_first, sizeof(prev_first), "%s", first ? first : "");
		cJSON_ArrayForEach(obj, arr)
		{
			diana_dataset *ds = NULL;
			rc = answer_dataset(obj, level, keys, path_tags, npath, &ds);
			if (rc < 0)
				break;
			rc = fn(ds, ud);
			diana_dataset_free(ds);
			if (rc != 0) {
				rc = rc < 0 && diana_error_code() == rc
				         ? rc
				         : diana__error_set(DIANA_EUSER, "the find callback stopped the query");
				break;
			}
			if (count)
				(*count)++;
		}
		cJSON_Delete(arr);
		if (rc != 0 || n < DW_PAGE)
			break;
		offset += (size_t)n;
	}
	diana__buf_dispose(&q);
	return rc;
}

/* ------------------------------------------------------------- retrieve */

struct wado {
	diana_session *s;
	diana_instance_fn fn;
	void *ud;
	diana_transfer_stats *stats;
	diana__http_response *resp;
	diana__multipart *mp;
	int fd;           /* the current part's temporary file, -1 */
	char *path;
	char ts[80];      /* the part's transfer-syntax parameter, "" */
	int64_t expect;   /* the part's Content-Length, -1 */
	uint64_t written;
	char *buf;        /* write buffer */
	size_t blen;
	int single;       /* the answer is one bare application/dicom body, not multipart */
};

static int flush_part(struct wado *w)
{
	const char *p = w->buf;
	size_t len = w->blen;
	while (len > 0) {
		ssize_t n = write(w->fd, p, len);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return diana__error_errno(errno, "writing a received instance");
		}
		p += n;
		len -= (size_t)n;
	}
	w->blen = 0;
	return 0;
}

static void drop_part(struct wado *w)
{
	if (w->fd >= 0)
		close(w->fd);
	w->fd = -1;
	if (w->path) {
		unlink(w->path);
		free(w->path);
		w->path = NULL;
	}
}

static int on_part_begin(const diana__multipart_part *part, void *ud)
{
	struct wado *w = ud;
	char type[64];
	size_t n = strcspn(part->content_type, "; \t");

	snprintf(type, sizeof(type), "%.*s", (int)(n < sizeof(type) ? n : sizeof(type) - 1),
	         part->content_type);
	/* an untyped part of multipart/related; type="application/dicom" is of that type */
	if (type[0] && strcasecmp(type, "application/dicom") != 0)
		return diana__error_set(DIANA_EPACS, "WADO-RS: part %zu is '%.40s', not application/dicom",
		                        part->index, type);
	w->ts[0] = '\0';
	diana__header_param(part->content_type, "transfer-syntax", w->ts, sizeof(w->ts));
	w->expect = part->content_length;
	w->written = 0;
	w->blen = 0;
	w->fd = diana__temp_file(w->s->set.temp_dir, &w->path);
	if (w->fd < 0) {
		int rc = w->fd;
		w->fd = -1;
		return rc;
	}
	return 0;
}

static int on_part_data(const void *data, size_t len, void *ud)
{
	struct wado *w = ud;
	int rc;

	w->written += len;
	if (w->blen + len > DW_WRITE_BUF && w->blen > 0 && (rc = flush_part(w)) < 0)
		return rc;
	if (len >= DW_WRITE_BUF) {
		const char *p = data;
		while (len > 0) {
			ssize_t n = write(w->fd, p, len);
			if (n < 0) {
				if (errno == EINTR)
					continue;
				return diana__error_errno(errno, "writing a received instance");
			}
			p += n;
			len -= (size_t)n;
		}
		return 0;
	}
	memcpy(w->buf + w->blen, data, len);
	w->blen += len;
	return 0;
}

static int on_part_end(void *ud)
{
	struct wado *w = ud;
	char *path;
	int rc = flush_part(w);

	if (rc == 0 && w->expect >= 0 && (uint64_t)w->expect != w->written)
		rc = diana__error_set(DIANA_EPACS, "WADO-RS: part %zu has %llu bytes, its Content-Length "
		                                   "says %lld", w->mp ? diana__multipart_parts(w->mp) - 1 : 0,
		                      (unsigned long long)w->written, (long long)w->expect);
	if (rc == 0 && close(w->fd) != 0)
		rc = diana__error_errno(errno, "writing a received instance");
	else if (rc != 0)
		close(w->fd);
	w->fd = -1;
	if (rc < 0) {
		drop_part(w);
		return rc;
	}
	path = w->path;
	w->path = NULL;
	/* the callback sees the instance now, while the next part arrives in the socket */
	rc = diana__deliver_temp(w->s, path, NULL, NULL, w->ts[0] ? w->ts : NULL, w->fn, w->ud, w->stats);
	free(path);
	return rc;
}

static int wado_sink(const void *data, size_t len, void *ud)
{
	struct wado *w = ud;
	int rc;

	if (diana__session_cancelled(w->s))
		return DIANA_ECANCELLED;
	if (w->single)
		return on_part_data(data, len, w);
	if (!w->mp && strncasecmp(w->resp->content_type, "application/dicom", 17) == 0 &&
	    strchr("; \t", w->resp->content_type[17])) {
		/* not what PS3.18 says, but unambiguous: one instance as the whole body */
		diana__multipart_part part = { 0, w->resp->content_type, "", -1 };
		w->single = 1;
		if ((rc = on_part_begin(&part, w)) < 0)
			return rc;
		return on_part_data(data, len, w);
	}
	if (!w->mp) {
		static const diana__multipart_callbacks cb = { on_part_begin, on_part_data, on_part_end };
		char boundary[DIANA__MULTIPART_BOUNDARY_MAX + 1];
		rc = diana__multipart_boundary(w->resp->content_type, NULL, 0, boundary);
		if (rc < 0)
			return prefixed(rc, "WADO-RS");
		rc = diana__multipart_new(&w->mp, boundary, &cb, w);
		if (rc < 0)
			return rc;
	}
	return diana__multipart_feed(w->mp, data, len);
}

static int dw_retrieve(diana_session *s, const char *study, const char *series, const char *sop,
                       diana_instance_fn fn, void *ud, diana_transfer_stats *st)
{
	dicomweb *d = impl(s);
	diana__buf path = DIANA__BUF_INIT;
	int attempt, rc = 0;

	diana__buf_printf(&path, "studies/%s", study);
	if (series)
		diana__buf_printf(&path, "/series/%s", series);
	if (sop)
		diana__buf_printf(&path, "/instances/%s", sop);
	if (path.oom)
		return diana__error_oom();

	for (attempt = 0; attempt < 2; attempt++) {
		diana__http_request req = { 0 };
		diana__http_response resp;
		struct wado w;

		memset(&w, 0, sizeof(w));
		w.s = s;
		w.fn = fn;
		w.ud = ud;
		w.stats = st;
		w.resp = &resp;
		w.fd = -1;
		w.buf = diana__malloc(DW_WRITE_BUF);
		if (!w.buf) {
			rc = DIANA_ENOMEM;
			break;
		}
		req.method = "GET";
		req.path = path.data;
		req.accept = d->no_ts_any ? ACCEPT_DICOM : ACCEPT_DICOM_ANY;
		req.sink = wado_sink;
		req.sink_user_data = &w;
		rc = diana__http_perform(d->http, &req, &resp);
		st->status = (uint32_t)resp.status;
		if (rc == 0) {
			if (w.single) {
				rc = on_part_end(&w);
			} else if (w.mp) {
				rc = diana__multipart_finish(w.mp);
				if (rc < 0)
					rc = prefixed(rc, "WADO-RS");
			} else if (resp.status == 204) {
				rc = diana__error_set(DIANA_ENOTFOUND, "WADO-RS: no instance matched (HTTP 204)");
			} else {
				/* 2xx without a body: what was it? */
				char b[DIANA__MULTIPART_BOUNDARY_MAX + 1];
				rc = diana__multipart_boundary(resp.content_type, NULL, 0, b);
				rc = rc < 0 ? prefixed(rc, "WADO-RS")
				            : diana__error_set(DIANA_EPACS, "WADO-RS: empty multipart answer");
			}
		} else if (rc == DIANA_ENOTFOUND && resp.status == 404) {
			rc = diana__error_set(DIANA_ENOTFOUND, "WADO-RS: no such %s (HTTP 404)",
			                      sop ? "instance" : series ? "series" : "study");
		}
		drop_part(&w);
		diana__multipart_free(w.mp);
		free(w.buf);
		/* a server that refuses transfer-syntax=* (406/400 before any byte): once more without */
		if (rc < 0 && !d->no_ts_any && st->instances == 0 &&
		    (resp.status == 406 || resp.status == 400 || resp.status == 415)) {
			d->no_ts_any = 1;
			diana__http_response_dispose(&resp);
			diana__log(DIANA_LOG_INFO, "session", "WADO-RS: HTTP %ld for transfer-syntax=*, "
			                                      "asking without it", resp.status);
			continue;
		}
		diana__http_response_dispose(&resp);
		break;
	}
	diana__buf_dispose(&path);
	return rc;
}

/* ---------------------------------------------------------------- store */

struct stow_file {
	size_t index;
	size_t len;
	char *sop; /* SOP Instance UID read from the file */
};

struct stow {
	diana__buf body;
	char boundary[64];
	struct stow_file files[DW_STOW_BATCH_FILES];
	size_t n;
};

static int new_boundary(char out[64])
{
	uint8_t r[16];
	size_t i;
	if (getrandom(r, sizeof(r), 0) != (ssize_t)sizeof(r)) {
		uint64_t x = (uint64_t)diana__now_ms() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)out;
		for (i = 0; i < sizeof(r); i++) {
			x = x * 6364136223846793005ull + 1442695040888963407ull;
			r[i] = (uint8_t)(x >> 56);
		}
	}
	memcpy(out, "diana-stow-", 11);
	for (i = 0; i < sizeof(r); i++)
		snprintf(out + 11 + 2 * i, 3, "%02x", r[i]);
	return 0;
}

/* read a file for STOW: Part 10, its SOP Instance UID */
static int stow_read(const char *path, uint8_t **data, size_t *len, char **sop)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	int rc;

	*data = NULL;
	*sop = NULL;
	rc = diana__file_read(path, (uint64_t)4 << 30, data, len);
	if (rc < 0)
		return rc;
	if (*len < 132 || memcmp(*data + 128, "DICM", 4) != 0) {
		rc = diana__error_set(DIANA_EDICOM, "not a DICOM Part 10 file (no DICM prefix)");
	} else {
		o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
		rc = diana_dataset_open_memory(&ds, *data, *len, &o);
		if (rc == 0 && diana_dataset_get(ds, "SOPInstanceUID", sop) < 0)
			rc = diana__error_set(DIANA_EDICOM, "the file has no SOP Instance UID");
		diana_dataset_free(ds);
	}
	if (rc < 0) {
		free(*data);
		*data = NULL;
		diana_free(*sop);
		*sop = NULL;
	}
	return rc;
}

/* the item of `seq` (a DICOM JSON sequence element) whose 00081155 is `sop` */
static const cJSON *find_ref(const cJSON *answer, const char *seq, const char *sop)
{
	const cJSON *items = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(answer, seq),
	                                                       "Value");
	const cJSON *it;
	cJSON_ArrayForEach(it, items)
	{
		const cJSON *u = cJSON_GetObjectItemCaseSensitive(
		    cJSON_GetObjectItemCaseSensitive(it, "00081155"), "Value");
		const char *v = cJSON_GetStringValue(cJSON_GetArrayItem(u, 0));
		if (v && strcmp(v, sop) == 0)
			return it;
	}
	return NULL;
}

static int us_value(const cJSON *item, const char *tag, int *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(item, tag), "Value");
	const cJSON *x = cJSON_GetArrayItem(v, 0);
	if (cJSON_IsNumber(x)) {
		*out = x->valueint;
		return 1;
	}
	return 0;
}

/* POST the batch; report each file. Returns 0, or a code that stops the store (callback) */
static int stow_flush(diana_session *s, struct stow *b, const char *const *paths, diana_store_fn fn,
                      void *ud, diana_transfer_stats *st, int *first)
{
	diana__http_request req = { 0 };
	diana__http_response resp;
	char ctype[160];
	cJSON *answer = NULL;
	size_t i;
	int rc, stop = 0;

	if (b->n == 0)
		return 0;
	if (diana__buf_printf(&b->body, "--%s--\r\n", b->boundary))
		return diana__error_oom();
	snprintf(ctype, sizeof(ctype), "multipart/related; type=\"application/dicom\"; boundary=%s",
	         b->boundary);
	req.method = "POST";
	req.path = "studies";
	req.content_type = ctype;
	req.accept = ACCEPT_JSON;
	req.body = b->body.data;
	req.body_len = b->body.len;
	rc = diana__http_perform(impl(s)->http, &req, &resp);
	if (resp.status)
		st->status = (uint32_t)resp.status;
	if (resp.status && resp.body.len > 0)
		answer = cJSON_ParseWithLength(resp.body.data, resp.body.len);
	if (cJSON_IsArray(answer)) { /* some servers wrap the answer in an array */
		cJSON *o = cJSON_DetachItemFromArray(answer, 0);
		cJSON_Delete(answer);
		answer = o;
	}
	{
		/* the transport's message, for files without a verdict */
		char why[200];
		int code = rc;
		snprintf(why, sizeof(why), "%s", rc < 0 ? diana_error_message() : "");
		for (i = 0; i < b->n; i++) {
			struct stow_file *f = &b->files[i];
			const cJSON *failed = answer ? find_ref(answer, "00081198", f->sop) : NULL;
			const cJSON *ok = answer ? find_ref(answer, "00081199", f->sop) : NULL;
			int status = 0, reason = 0;

			if (failed) {
				if (us_value(failed, "00081197", &reason))
					status = diana__error_set(DIANA_EPACS, "STOW-RS: the server refused the "
					                                       "instance (failure reason 0x%04X)",
					                          (unsigned)reason);
				else
					status = diana__error_set(DIANA_EPACS, "STOW-RS: the server refused the instance");
			} else if (ok) {
				if (us_value(ok, "00081196", &reason))
					st->warnings++;
			} else if (code < 0 && resp.status == 0) {
				status = diana__error_set(code, "%s", why); /* no answer at all */
			} else if (code < 0) {
				status = diana__error_set(code == DIANA_EAUTH ? code : DIANA_EPACS,
				                          "STOW-RS: HTTP %ld, the instance is not acknowledged",
				                          resp.status);
			} else if (answer && (cJSON_GetObjectItemCaseSensitive(answer, "00081199") ||
			                      cJSON_GetObjectItemCaseSensitive(answer, "00081198"))) {
				status = diana__error_set(DIANA_EPACS, "STOW-RS: the answer does not list the "
				                                       "instance");
			} /* else: 2xx without a usable answer body: stored */
			if (status == 0) {
				st->instances++;
				st->bytes += f->len;
			} else {
				st->failed++;
				if (!*first)
					*first = status;
			}
			if (!stop && fn && fn(f->index, paths[f->index], status, ud) != 0)
				stop = 1;
		}
	}
	cJSON_Delete(answer);
	diana__http_response_dispose(&resp);
	for (i = 0; i < b->n; i++)
		diana_free(b->files[i].sop);
	b->n = 0;
	diana__buf_dispose(&b->body);
	if (stop)
		return diana__error_set(DIANA_EUSER, "the store callback stopped the transfer");
	return 0;
}

static int dw_store(diana_session *s, const char *const *paths, size_t n, diana_store_fn fn, void *ud,
                    diana_transfer_stats *st)
{
	struct stow b;
	int first = 0, rc = 0;
	size_t i;

	memset(&b, 0, sizeof(b));
	new_boundary(b.boundary);
	for (i = 0; i < n && rc == 0; i++) {
		uint8_t *data = NULL;
		size_t len = 0;
		char *sop = NULL;
		int frc;

		if (diana__session_cancelled(s)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		frc = stow_read(paths[i], &data, &len, &sop);
		if (frc == 0 && b.n > 0 &&
		    (b.body.len + len > DW_STOW_BATCH_BYTES ||
		     memmem(data, len, b.boundary, strlen(b.boundary)))) {
			rc = stow_flush(s, &b, paths, fn, ud, st, &first);
			if (rc < 0) {
				free(data);
				diana_free(sop);
				break;
			}
		}
		if (frc == 0) {
			while (memmem(data, len, b.boundary, strlen(b.boundary)))
				new_boundary(b.boundary);
			if (diana__buf_printf(&b.body, "--%s\r\nContent-Type: application/dicom\r\n\r\n",
			                      b.boundary) ||
			    diana__buf_put(&b.body, data, len) || diana__buf_puts(&b.body, "\r\n")) {
				free(data);
				diana_free(sop);
				rc = diana__error_oom();
				break;
			}
			b.files[b.n].index = i;
			b.files[b.n].len = len;
			b.files[b.n].sop = sop;
			b.n++;
			free(data);
			if (b.n == DW_STOW_BATCH_FILES)
				rc = stow_flush(s, &b, paths, fn, ud, st, &first);
			continue;
		}
		/* a file that cannot be sent: report it in order, after the files before it */
		{
			char why[256];
			snprintf(why, sizeof(why), "%s", diana_error_message());
			rc = stow_flush(s, &b, paths, fn, ud, st, &first);
			if (rc < 0)
				break;
			st->failed++;
			frc = diana__error_set(frc, "%s", why);
			if (!first)
				first = frc;
			if (fn && fn(i, paths[i], frc, ud) != 0)
				rc = diana__error_set(DIANA_EUSER, "the store callback stopped the transfer");
		}
	}
	if (rc == 0)
		rc = stow_flush(s, &b, paths, fn, ud, st, &first);
	for (i = 0; i < b.n; i++)
		diana_free(b.files[i].sop);
	diana__buf_dispose(&b.body);
	if (rc < 0)
		return rc;
	if (first)
		return diana__error_set(first, "%u of %zu files could not be stored (first: %s)",
		                        (unsigned)st->failed, n, diana_strerror(first));
	return 0;
}

/* ----------------------------------------------------------------- open */

static void dw_free(diana_session *s)
{
	dicomweb *d = impl(s);
	if (!d)
		return;
	diana__http_free(d->http);
	free(d);
	s->impl = NULL;
}

static const diana__session_ops dicomweb_ops = {
	"dicomweb", dw_echo, dw_find, dw_retrieve, dw_store, NULL, NULL, dw_free, NULL,
};

int diana__dicomweb_open(diana_session *s, const diana__uri *u)
{
	static const char *const known[] = { NULL };
	diana__http_options o;
	diana__buf base = DIANA__BUF_INIT;
	dicomweb *d;
	size_t n;
	int rc, tls;

	rc = diana__uri_check_params(u, known);
	if (rc < 0)
		return rc;
	if (!u->host || !*u->host)
		return diana__error_set(DIANA_EINVAL, "dicomweb URI: no host");
	tls = strcmp(u->scheme, "dicomweb+https") == 0;
	diana__buf_printf(&base, "%s://%s%s%s", tls ? "https" : "http", strchr(u->host, ':') ? "[" : "",
	                  u->host, strchr(u->host, ':') ? "]" : "");
	if (u->port > 0)
		diana__buf_printf(&base, ":%d", u->port);
	if (u->path && *u->path) {
		if (u->path[0] != '/')
			diana__buf_putc(&base, '/');
		diana__buf_puts(&base, u->path);
	}
	if (base.oom) {
		diana__buf_dispose(&base);
		return diana__error_oom();
	}
	n = base.len;
	while (n > 0 && base.data[n - 1] == '/')
		base.data[--n] = '\0';
	base.len = n;

	d = diana__calloc(1, sizeof(*d));
	if (!d) {
		diana__buf_dispose(&base);
		return DIANA_ENOMEM;
	}
	diana__session_http_options(s, base.data, u, &o);
	rc = diana__http_new(&d->http, &o);
	diana__buf_dispose(&base);
	if (rc < 0) {
		free(d);
		return rc;
	}
	s->impl = d;
	s->ops = &dicomweb_ops;
	return 0;
}
