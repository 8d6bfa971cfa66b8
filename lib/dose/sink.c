/*
 * libdiana - dose sinks: Splunk HTTP Event Collector and JSON Lines.
 *
 * The HEC sink talks to libcurl itself: lib/net's client (diana__http)
 * offers no request headers beyond Content-Type/Accept and basic auth, and
 * HEC wants "Authorization: Splunk <token>" (see doc/dose.md). It keeps the
 * same rules as lib/net: one easy handle (keep-alive), TLS verification
 * always on, retries with exponential backoff on connection errors and 5xx
 * only, no path, body or credential in any message.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "dose_priv.h"

enum sink_kind { SINK_HEC, SINK_JSONL };

struct diana_dose_sink {
	enum sink_kind kind;
	uint64_t delivered;
	/* JSONL */
	int fd;
	/* HEC */
	CURL *curl;
	char *url;        /* {base}/services/collector/event */
	char *host_port;  /* for messages */
	char *auth;       /* "Authorization: Splunk <token>" (wiped on free) */
	char *index, *sourcetype, *source, *host;
	char *ca_file;
	uint32_t batch_events, batch_bytes;
	int retries;
	int64_t retry_delay_ms, timeout_ms;
	diana__buf batch;  /* concatenated events */
	uint32_t queued;
	char errbuf[CURL_ERROR_SIZE];
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

static int read_token(const char *path, char **out)
{
	uint8_t *data = NULL;
	size_t len = 0;
	int rc = diana__file_read(path, 65536, &data, &len);
	char *tok;
	if (rc < 0)
		return rc;
	if (len && data[len - 1] == '\n')
		len--;
	if (len && data[len - 1] == '\r')
		len--;
	tok = diana__strndup((const char *)data, len);
	memset(data, 0, len);
	free(data);
	if (!tok)
		return diana__error_oom();
	*out = tok;
	return 0;
}

static const char *host_of(const char *url, size_t *len)
{
	const char *p = strstr(url, "://"), *at, *end;
	p = p ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	*len = (size_t)(end - p);
	return p;
}

DIANA_API int diana_dose_sink_new_hec(diana_dose_sink **out, const diana_dose_hec_options *opts)
{
	diana_dose_sink *s;
	char *token = NULL;
	const char *h;
	size_t hlen, i, n;
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
	n = strlen(opts->url);
	while (n > 0 && opts->url[n - 1] == '/')
		n--;
	if (diana__buf_put(&b, opts->url, n) || diana__buf_puts(&b, "/services/collector/event")) {
		diana__buf_dispose(&b);
		diana_dose_sink_free(s);
		return diana__error_oom();
	}
	s->url = diana__buf_detach(&b, NULL);
	h = host_of(opts->url, &hlen);
	s->host_port = diana__strndup(h, hlen);
	if (!s->auth || !s->url || !s->host_port || dup_opt(opts->index, &s->index) ||
	    dup_opt(opts->sourcetype ? opts->sourcetype : "diana:dose", &s->sourcetype) ||
	    dup_opt(opts->source ? opts->source : "libdiana", &s->source) || dup_opt(opts->ca_file, &s->ca_file)) {
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
	s->retries = opts->retries < 0 ? 0 : opts->retries;
	s->retry_delay_ms = opts->retry_delay_ms > 0 ? opts->retry_delay_ms : 500;
	s->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 30000;
	s->curl = curl_easy_init();
	if (!s->curl) {
		diana_dose_sink_free(s);
		return diana__error_set(DIANA_ENOMEM, "cannot create an HTTP handle");
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

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *ud)
{
	diana__buf *b = ud;
	size_t n = size * nmemb;
	if (b->len < 65536 && diana__buf_put(b, ptr, n))
		return 0;
	return n;
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0) {
	}
}

static int map_curl(diana_dose_sink *s, CURLcode c)
{
	int code;
	const char *why = s->errbuf[0] ? s->errbuf : curl_easy_strerror(c);
	switch (c) {
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_COULDNT_RESOLVE_PROXY:
	case CURLE_COULDNT_CONNECT:
		code = DIANA_ECONNECT;
		break;
	case CURLE_OPERATION_TIMEDOUT:
		code = DIANA_ETIMEDOUT;
		break;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ISSUER_ERROR:
		code = DIANA_ETLS;
		break;
	case CURLE_OUT_OF_MEMORY:
		code = DIANA_ENOMEM;
		break;
	default:
		code = DIANA_EIO;
		break;
	}
	return diana__error_set(code, "HEC POST %s: %s", s->host_port, why);
}

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
	int64_t delay = s->retry_delay_ms;
	int attempt;

	for (attempt = 0;; attempt++) {
		struct curl_slist *headers = NULL, *tmp;
		diana__buf body = DIANA__BUF_INIT;
		CURLcode c;
		long status = 0;
		int retry, rc;
		CURL *h = s->curl;

		curl_easy_reset(h);
		s->errbuf[0] = '\0';
		headers = curl_slist_append(NULL, "Content-Type: application/json");
		tmp = headers ? curl_slist_append(headers, "Expect:") : NULL;
		tmp = tmp ? curl_slist_append(tmp, s->auth) : NULL;
		if (!tmp) {
			curl_slist_free_all(headers);
			return diana__error_oom();
		}
		headers = tmp;
		curl_easy_setopt(h, CURLOPT_URL, s->url);
		curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
		curl_easy_setopt(h, CURLOPT_ERRORBUFFER, s->errbuf);
		curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
		curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, (long)s->timeout_ms);
		curl_easy_setopt(h, CURLOPT_USERAGENT, "libdiana/" DIANA_VERSION_STRING);
		curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
		curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
		curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
		if (s->ca_file)
			curl_easy_setopt(h, CURLOPT_CAINFO, s->ca_file);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
		curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)s->batch.len);
		curl_easy_setopt(h, CURLOPT_POSTFIELDS, s->batch.data ? s->batch.data : "");
		curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
		curl_easy_setopt(h, CURLOPT_WRITEDATA, &body);

		c = curl_easy_perform(h);
		curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
		curl_easy_setopt(h, CURLOPT_HTTPHEADER, NULL);
		curl_slist_free_all(headers);

		if (c == CURLE_OK && status >= 200 && status < 300) {
			diana__buf_dispose(&body);
			diana__log(DIANA_LOG_DEBUG, "dose", "HEC %s: %u events delivered (attempt %d)", s->host_port,
			           (unsigned)s->queued, attempt + 1);
			return 0;
		}
		if (c != CURLE_OK) {
			retry = c == CURLE_COULDNT_CONNECT || c == CURLE_SEND_ERROR || c == CURLE_RECV_ERROR ||
			        c == CURLE_GOT_NOTHING || c == CURLE_PARTIAL_FILE || c == CURLE_OPERATION_TIMEDOUT;
			rc = map_curl(s, c);
		} else {
			int hc = hec_code(&body);
			retry = status >= 500;
			rc = diana__error_set(status == 401 || status == 403 ? DIANA_EAUTH
			                      : status == 404                 ? DIANA_ENOTFOUND
			                                                      : DIANA_EPACS,
			                      "HEC POST %s: HTTP status %ld (HEC code %d)", s->host_port, status, hc);
		}
		diana__buf_dispose(&body);
		if (!retry || attempt >= s->retries)
			return rc;
		diana__log(DIANA_LOG_INFO, "dose", "HEC %s: attempt %d failed (%s), retrying in %lld ms",
		           s->host_port, attempt + 1, diana_error_message(), (long long)delay);
		sleep_ms(delay);
		if (delay < 60000)
			delay *= 2;
	}
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
		if (sink->queued && sink->curl && hec_flush(sink) < 0)
			diana__log(DIANA_LOG_WARNING, "dose", "HEC sink freed with %u undelivered events: %s",
			           (unsigned)sink->queued, diana_error_message());
	}
	if (sink->curl)
		curl_easy_cleanup(sink->curl);
	wipe(sink->auth);
	free(sink->auth);
	free(sink->url);
	free(sink->host_port);
	free(sink->index);
	free(sink->sourcetype);
	free(sink->source);
	free(sink->host);
	free(sink->ca_file);
	diana__buf_dispose(&sink->batch);
	free(sink);
}
