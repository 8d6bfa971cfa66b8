/*
 * libdiana - pipeline sinks: Slack incoming webhooks, generic webhooks
 * (JSON POST with an optional HMAC-SHA256 signature), JSONL files, DICOM SR
 * stored to a session. The pipeline spools every delivery first and calls
 * diana__sink_deliver() until it succeeds.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <diana/dose.h>

#include "pipeline_int.h"
#include "../net/net.h"

void diana__sink_dispose(diana__sink *s)
{
	if (!s)
		return;
	free(s->name);
	if (s->url) {
		memset(s->url, 0, strlen(s->url));
		free(s->url);
	}
	if (s->secret) {
		memset(s->secret, 0, s->secret_len);
		free(s->secret);
	}
	free(s->header);
	free(s->path);
	free(s->sr_uri);
	free(s->model_name);
	free(s->series_description);
	free(s->index);
	free(s->sourcetype);
	free(s->ca_file);
	memset(s, 0, sizeof(*s));
}

/* "****1234": only the last 4 characters, as DIANA's bot did */
static void mask(const char *v, char *out, size_t cap)
{
	size_t n = v ? strlen(v) : 0;
	if (n == 0) {
		snprintf(out, cap, "(none)");
		return;
	}
	snprintf(out, cap, "****%s", n > 4 ? v + n - 4 : v);
}

static const char *rstr(const cJSON *o, const char *k)
{
	const char *v = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
	return v ? v : "";
}

/* the Slack message: text + blocks; no patient data but the masked accession */
static char *slack_payload(const cJSON *rec)
{
	const cJSON *result = cJSON_GetObjectItemCaseSensitive(rec, "result");
	const cJSON *lat = cJSON_GetObjectItemCaseSensitive(rec, "latency_ms");
	const char *summary = rstr(result, "summary");
	char masked[32], text[1200], lat_text[160] = "";
	cJSON *msg, *blocks, *b, *t;
	char *out;

	mask(rstr(rec, "accession"), masked, sizeof(masked));
	if (cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(lat, "total")))
		snprintf(lat_text, sizeof(lat_text), " (%.1f min after the exam)",
		         cJSON_GetObjectItemCaseSensitive(lat, "total")->valuedouble / 60000.0);
	snprintf(text, sizeof(text), "%s result for accession %s%s: %.900s", rstr(rec, "model"), masked, lat_text,
	         *summary ? summary : "(no summary)");
	msg = cJSON_CreateObject();
	cJSON_AddStringToObject(msg, "text", text);
	blocks = cJSON_AddArrayToObject(msg, "blocks");
	b = cJSON_CreateObject();
	cJSON_AddStringToObject(b, "type", "section");
	t = cJSON_AddObjectToObject(b, "text");
	cJSON_AddStringToObject(t, "type", "mrkdwn");
	{
		char md[1400];
		snprintf(md, sizeof(md), "*%s* — accession `%s`%s\n%.1000s", rstr(rec, "model"), masked, lat_text,
		         *summary ? summary : "(no summary)");
		cJSON_AddStringToObject(t, "text", md);
	}
	cJSON_AddItemToArray(blocks, b);
	out = cJSON_PrintUnformatted(msg);
	cJSON_Delete(msg);
	return out;
}

char *diana__sink_payload(const diana__sink *s, const cJSON *record)
{
	switch (s->type) {
	case SINK_SLACK:
		return slack_payload(record);
	case SINK_SPLUNK: {
		/* the dose documents of the built-in dose model, as a JSON array */
		const cJSON *docs = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(record, "result"), "dose");
		return cJSON_IsArray(docs) ? cJSON_PrintUnformatted(docs) : diana__strdup("[]");
	}
	default:
		return cJSON_PrintUnformatted(record);
	}
}

static int http_post(const diana__sink *s, const char *url, const char *body, const char *extra_header_name,
                     const char *extra_header, const char *delivery_id)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;
	diana__http_request q = { 0 };
	diana__http_response r;
	char base[2048];
	const char *slash;
	int rc;

	/* split "scheme://host[:port]" and the path (the client takes a base and a path) */
	slash = strstr(url, "://");
	slash = slash ? strchr(slash + 3, '/') : NULL;
	if (!slash)
		slash = url + strlen(url);
	if ((size_t)(slash - url) >= sizeof(base))
		return diana__error_set(DIANA_EINVAL, "%s: URL too long", s->name);
	memcpy(base, url, (size_t)(slash - url));
	base[slash - url] = '\0';
	o.base_url = base;
	o.timeout_ms = s->timeout_ms > 0 ? s->timeout_ms : 30000;
	o.connect_timeout_ms = 10000;
	o.retries = -1; /* the pipeline's spool retries, with its own backoff */
	rc = diana__http_new(&h, &o);
	if (rc < 0)
		return rc;
	q.method = "POST";
	q.path = *slash ? slash : "/";
	q.content_type = "application/json";
	q.body = body;
	q.body_len = strlen(body);
	q.extra_headers[0] = NULL;
	if (extra_header_name && extra_header) {
		static __thread char line[512];
		snprintf(line, sizeof(line), "%s: %s", extra_header_name, extra_header);
		q.extra_headers[0] = line;
	}
	if (delivery_id) {
		static __thread char idline[96];
		snprintf(idline, sizeof(idline), "X-Diana-Delivery: %s", delivery_id);
		q.extra_headers[q.extra_headers[0] ? 1 : 0] = idline;
	}
	rc = diana__http_perform(h, &q, &r);
	if (rc < 0 && r.status >= 400 && r.status < 500 && r.status != 408 && r.status != 429)
		rc = diana__error_set(DIANA_EINVAL, "%s: the receiver refused the message (HTTP %ld)", s->name, r.status);
	diana__http_response_dispose(&r);
	diana__http_free(h);
	return rc;
}

static int append_line(const char *path, const char *line)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), rc = 0;
	size_t n = strlen(line), off = 0;
	char *buf;

	if (fd < 0)
		return diana__error_errno(errno, "JSONL sink");
	buf = malloc(n + 1);
	if (!buf) {
		close(fd);
		return diana__error_oom();
	}
	memcpy(buf, line, n);
	buf[n] = '\n';
	while (off < n + 1) {
		ssize_t w = write(fd, buf + off, n + 1 - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = diana__error_errno(errno, "JSONL sink");
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fdatasync(fd) != 0)
		rc = diana__error_errno(errno, "JSONL sink");
	close(fd);
	free(buf);
	return rc;
}

static int store_sr(const diana__sink *s, const char *path)
{
	diana_session *dst = NULL;
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	const char *paths[1] = { path };
	int rc;

	rc = diana_session_open(&dst, s->sr_uri, NULL);
	if (rc < 0)
		return rc;
	rc = diana_session_store(dst, paths, 1, NULL, NULL, &st);
	diana_session_free(dst);
	return rc;
}

static int splunk(const diana__sink *s, const char *body)
{
	diana_dose_hec_options o = DIANA_DOSE_HEC_OPTIONS_INIT;
	diana_dose_sink *hec = NULL;
	cJSON *docs = cJSON_Parse(body);
	const cJSON *doc;
	uint64_t n = 0;
	int rc;

	if (!cJSON_IsArray(docs)) {
		cJSON_Delete(docs);
		return diana__error_set(DIANA_EINVAL, "splunk: the spooled entry is not a list of dose documents");
	}
	if (cJSON_GetArraySize(docs) == 0) {
		cJSON_Delete(docs);
		return 0; /* nothing to send for this study */
	}
	o.url = s->url;
	o.token = (const char *)s->secret;
	o.index = s->index;
	o.sourcetype = s->sourcetype;
	o.ca_file = s->ca_file;
	o.retries = 0; /* the spool retries */
	if (s->timeout_ms > 0)
		o.timeout_ms = s->timeout_ms;
	rc = diana_dose_sink_new_hec(&hec, &o);
	cJSON_ArrayForEach(doc, docs)
	{
		char *text;
		if (rc < 0)
			break;
		text = cJSON_PrintUnformatted(doc);
		if (!text) {
			rc = diana__error_oom();
			break;
		}
		rc = diana_dose_sink_add(hec, text);
		cJSON_free(text);
		n++;
	}
	if (rc == 0)
		rc = diana_dose_sink_flush(hec);
	if (rc == 0 && diana_dose_sink_delivered(hec) < n)
		rc = diana__error_set(DIANA_EPACS, "splunk: not every event was accepted");
	diana_dose_sink_free(hec);
	cJSON_Delete(docs);
	return rc;
}

int diana__sink_deliver(const diana__sink *s, const diana__delivery *d)
{
	switch (s->type) {
	case SINK_SLACK:
		return http_post(s, s->url, d->body, NULL, NULL, NULL);
	case SINK_WEBHOOK:
		if (s->secret) {
			unsigned char mac[32];
			unsigned int len = 0;
			char hex[80] = "sha256=";
			int i;
			if (!HMAC(EVP_sha256(), s->secret, (int)s->secret_len, (const unsigned char *)d->body,
			          strlen(d->body), mac, &len))
				return diana__error_set(DIANA_ERROR, "webhook: HMAC failed");
			for (i = 0; i < 32; i++)
				snprintf(hex + 7 + 2 * i, 3, "%02x", mac[i]);
			return http_post(s, s->url, d->body, s->header ? s->header : "X-Diana-Signature", hex, d->id);
		}
		return http_post(s, s->url, d->body, NULL, NULL, d->id);
	case SINK_JSONL:
		return append_line(s->path, d->body);
	case SINK_SR:
		return store_sr(s, d->body);
	case SINK_SPLUNK:
		return splunk(s, d->body);
	default:
		return diana__error_set(DIANA_EINVAL, "unknown sink");
	}
}
