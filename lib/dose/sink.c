/*
 * libdiana - dose sinks: Splunk HTTP Event Collector and JSON Lines.
 *
 * HEC goes through lib/net's HTTP client (one handle: keep-alive, TLS
 * verification always on, retries with exponential backoff on connection
 * errors and 5xx only, no path, body or credential in any message); the
 * token travels as the extra request header "Authorization: Splunk <token>".
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dose_priv.h"
#include "../net/net.h"

enum sink_kind { SINK_HEC, SINK_JSONL };

struct diana_dose_sink {
	enum sink_kind kind;
	uint64_t delivered;
	/* JSONL */
	int fd;
	/* HEC */
	diana__http *http;
	char *auth;       /* "Authorization: Splunk <token>" (wiped on free) */
	char *index, *sourcetype, *source, *host;
	uint32_t batch_events, batch_bytes;
	diana__buf batch;  /* concatenated events */
	uint32_t queued;
};

static void wipe(char *s)
{
	if (s) {
		volatile char *p = s;
		while (*p)
			*p++ = 0;
	}
}

DIANA_API int diana_dose_hec_options_init(diana_dose_hec_options *opts, uint32_t version)
{
	static const diana_dose_hec_options init = DIANA_DOSE_HEC_OPTIONS_INIT;
	int rc;
	if (!opts)
		return diana__error_set(DIANA_EINVAL, "options are NULL");
	if ((rc = diana__check_version(version, DIANA_DOSE_HEC_OPTIONS_VERSION, "diana_dose_hec_options")) < 0)
		return rc;
	*opts = init;
	opts->version = version;
	return 0;
}

static int dup_opt(const char *s, char **out)
{
	*out = NULL;
	if (!s)
		return 0;
	*out = diana__strdup(s);
	return *out ? 0 : diana__error_oom();
}

/* the token file: any mode and kind of file (a pipe too), at most 64 KiB, one line end cut */
static int read_token(const char *path, char **out)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = diana__secret_file_read_any(path, "the HEC token file", 65536, &data, &len);
	if (rc < 0)
		return rc;
	/* the helper cut "\n" or "\r\n"; a lone "\r" at the end always went too */
	if (len && data[len - 1] == '\r')
		data[--len] = 0;
	*out = (char *)data;
	return 0;
}

DIANA_API int diana_dose_sink_new_hec(diana_dose_sink **out, const diana_dose_hec_options *opts)
{
	diana_dose_sink *s;
	diana__http_options ho = DIANA__HTTP_OPTIONS_INIT;
	char *token = NULL;
	size_t i, n;
	diana__buf b = DIANA__BUF_INIT;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	if (!opts)
		return diana__error_set(DIANA_EINVAL, "a HEC sink needs options (url, token)");
	if ((rc = diana__check_version(opts->version, DIANA_DOSE_HEC_OPTIONS_VERSION, "diana_dose_hec_options")) < 0)
		return rc;
	if (!opts->url || (strncmp(opts->url, "http://", 7) && strncmp(opts->url, "https://", 8)))
		return diana__error_set(DIANA_EINVAL, "HEC URL must start with http:// or https://");
	if (opts->batch_events > 10000)
		return diana__error_set(DIANA_EINVAL, "batch_events must be at most 10000");
	if (opts->token) {
		if ((rc = dup_opt(opts->token, &token)) < 0)
			return rc;
	} else if (opts->token_file) {
		if ((rc = read_token(opts->token_file, &token)) < 0)
			return rc;
	} else {
		return diana__error_set(DIANA_EINVAL, "a HEC sink needs a token or a token file");
	}
	n = strlen(token);
	for (i = 0; i < n; i++) {
		if ((unsigned char)token[i] < 0x21 || token[i] == 0x7f) {
			wipe(token);
			free(token);
			return diana__error_set(DIANA_EINVAL, "the HEC token contains spaces or control characters");
		}
	}
	if (n == 0) {
		free(token);
		return diana__error_set(DIANA_EINVAL, "the HEC token is empty");
	}

	s = diana__calloc(1, sizeof(*s));
	if (!s) {
		wipe(token);
		free(token);
		return DIANA_ENOMEM;
	}
	s->kind = SINK_HEC;
	s->fd = -1;
	rc = diana__buf_printf(&b, "Authorization: Splunk %s", token);
	wipe(token);
	free(token);
	if (rc) {
		diana__buf_dispose(&b);
		diana_dose_sink_free(s);
		return diana__error_oom();
	}
	s->auth = diana__buf_detach(&b, NULL);
	if (!s->auth || dup_opt(opts->index, &s->index) ||
	    dup_opt(opts->sourcetype ? opts->sourcetype : "diana:dose", &s->sourcetype) ||
	    dup_opt(opts->source ? opts->source : "libdiana", &s->source)) {
		diana_dose_sink_free(s);
		return diana__error_oom();
	}
	if (opts->host) {
		if (dup_opt(opts->host, &s->host)) {
			diana_dose_sink_free(s);
			return DIANA_ENOMEM;
		}
	} else {
		char name[256];
		if (gethostname(name, sizeof(name)) != 0)
			strcpy(name, "localhost");
		name[sizeof(name) - 1] = '\0';
		if (dup_opt(name, &s->host)) {
			diana_dose_sink_free(s);
			return DIANA_ENOMEM;
		}
	}
	s->batch_events = opts->batch_events ? opts->batch_events : 100;
	s->batch_bytes = opts->batch_bytes ? opts->batch_bytes : (1u << 20);
	ho.base_url = opts->url;
	ho.ca_file = opts->ca_file;
	ho.retries = opts->retries < 0 ? -1 : opts->retries;
	ho.retry_delay_ms = opts->retry_delay_ms > 0 ? opts->retry_delay_ms : 500;
	ho.timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	if ((rc = diana__http_new(&s->http, &ho)) < 0) {
		diana_dose_sink_free(s);
		return rc;
	}
	*out = s;
	return 0;
}

DIANA_API int diana_dose_sink_new_jsonl(diana_dose_sink **out, const char *path)
{
	diana_dose_sink *s;
	int fd;
	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	if (!path || !*path)
		return diana__error_set(DIANA_EINVAL, "a JSONL sink needs a path");
	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0)
		return diana__error_errno(errno, path);
	s = diana__calloc(1, sizeof(*s));
	if (!s) {
		close(fd);
		return DIANA_ENOMEM;
	}
	s->kind = SINK_JSONL;
	s->fd = fd;
	*out = s;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* HEC delivery                                                            */
/* ---------------------------------------------------------------------- */

/* HEC's error body is {"text":"...","code":N}: keep the number only */
static int hec_code(const diana__buf *body)
{
	cJSON *j = body->data ? cJSON_Parse(body->data) : NULL;
	const cJSON *c = j ? cJSON_GetObjectItemCaseSensitive(j, "code") : NULL;
	int code = cJSON_IsNumber(c) ? c->valueint : -1;
	cJSON_Delete(j);
	return code;
}

static int hec_post(diana_dose_sink *s)
{
	diana__http_request q;
	diana__http_response resp;
	int rc;

	memset(&q, 0, sizeof(q));
	q.method = "POST";
	q.path = "services/collector/event";
	q.content_type = "application/json";
	q.body = s->batch.data ? s->batch.data : "";
	q.body_len = s->batch.len;
	q.extra_headers[0] = s->auth;
	rc = diana__http_perform(s->http, &q, &resp);
	if (rc < 0 && resp.status >= 400) {
		/* add HEC's own error number (never its text: it may quote data) */
		char msg[256];
		int hc = hec_code(&resp.body);
		snprintf(msg, sizeof(msg), "%s", diana_error_message());
		if (hc >= 0)
			diana__error_set(rc, "HEC %s (HEC code %d)", msg, hc);
		else
			diana__error_set(rc, "HEC %s", msg);
	} else if (rc == 0) {
		diana__log(DIANA_LOG_DEBUG, "dose", "HEC: %u events delivered (attempt %d)", (unsigned)s->queued,
		           resp.attempts);
	}
	diana__http_response_dispose(&resp);
	return rc;
}

static int hec_flush(diana_dose_sink *s)
{
	int rc;
	if (!s->queued)
		return 0;
	if ((rc = hec_post(s)) < 0)
		return rc;
	s->delivered += s->queued;
	s->queued = 0;
	diana__buf_dispose(&s->batch);
	return 0;
}

/* {"time":..,"host":..,"source":..,"sourcetype":..,"index":..,"event":doc} */
static int hec_event(diana_dose_sink *s, cJSON *doc, char **out)
{
	cJSON *ev = cJSON_CreateObject();
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(doc, "time");
	int ok;
	if (!ev)
		return diana__error_oom();
	ok = (!cJSON_IsNumber(t) || cJSON_AddNumberToObject(ev, "time", t->valuedouble)) &&
	     cJSON_AddStringToObject(ev, "host", s->host) && cJSON_AddStringToObject(ev, "source", s->source) &&
	     cJSON_AddStringToObject(ev, "sourcetype", s->sourcetype) &&
	     (!s->index || cJSON_AddStringToObject(ev, "index", s->index));
	if (!ok) {
		cJSON_Delete(ev);
		return diana__error_oom();
	}
	cJSON_AddItemReferenceToObject(ev, "event", doc);
	*out = cJSON_PrintUnformatted(ev);
	cJSON_Delete(ev); /* the reference does not own doc */
	return *out ? 0 : diana__error_oom();
}

static int write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return diana__error_errno(errno, "JSONL sink");
		}
		p += w;
		n -= (size_t)w;
	}
	return 0;
}

DIANA_API int diana_dose_sink_add(diana_dose_sink *sink, const char *json)
{
	cJSON *doc;
	char *line = NULL;
	int rc;

	if (!sink || !json)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	doc = cJSON_Parse(json);
	if (!cJSON_IsObject(doc)) {
		cJSON_Delete(doc);
		return diana__error_set(DIANA_EINVAL, "a dose document must be a JSON object");
	}
	if (sink->kind == SINK_JSONL) {
		size_t n;
		line = cJSON_PrintUnformatted(doc);
		cJSON_Delete(doc);
		if (!line)
			return diana__error_oom();
		/* one write per line: O_APPEND keeps concurrent writers' lines whole */
		n = strlen(line);
		{
			char *l2 = realloc(line, n + 2);
			if (!l2) {
				free(line);
				return diana__error_oom();
			}
			line = l2;
		}
		line[n] = '\n';
		line[n + 1] = '\0';
		rc = write_all(sink->fd, line, n + 1);
		free(line);
		if (rc == 0)
			sink->delivered++;
		return rc;
	}
	rc = hec_event(sink, doc, &line);
	cJSON_Delete(doc);
	if (rc < 0)
		return rc;
	rc = diana__buf_puts(&sink->batch, line);
	free(line);
	if (rc)
		return diana__error_oom();
	sink->queued++;
	if (sink->queued >= sink->batch_events || sink->batch.len >= sink->batch_bytes)
		return hec_flush(sink);
	return 0;
}

DIANA_API int diana_dose_sink_flush(diana_dose_sink *sink)
{
	if (!sink)
		return diana__error_set(DIANA_EINVAL, "sink is NULL");
	if (sink->kind == SINK_JSONL) {
		if (fsync(sink->fd) != 0)
			return diana__error_errno(errno, "JSONL sink");
		return 0;
	}
	return hec_flush(sink);
}

DIANA_API uint64_t diana_dose_sink_delivered(const diana_dose_sink *sink)
{
	return sink ? sink->delivered : 0;
}

DIANA_API void diana_dose_sink_free(diana_dose_sink *sink)
{
	if (!sink)
		return;
	if (sink->kind == SINK_JSONL && sink->fd >= 0) {
		if (fsync(sink->fd) != 0)
			diana__log(DIANA_LOG_WARNING, "dose", "JSONL sink: fsync failed");
		close(sink->fd);
	} else if (sink->kind == SINK_HEC) {
		if (sink->queued && sink->http && hec_flush(sink) < 0)
			diana__log(DIANA_LOG_WARNING, "dose", "HEC sink freed with %u undelivered events: %s",
			           (unsigned)sink->queued, diana_error_message());
	}
	diana__http_free(sink->http);
	wipe(sink->auth);
	free(sink->auth);
	free(sink->index);
	free(sink->sourcetype);
	free(sink->source);
	free(sink->host);
	diana__buf_dispose(&sink->batch);
	free(sink);
}
