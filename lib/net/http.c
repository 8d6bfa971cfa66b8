/*
 * libdiana - HTTP client over libcurl: one easy handle per client so that
 * connections are kept alive, timeouts, basic auth / netrc, TLS
 * verification on by default, retries with exponential backoff on
 * connection errors and 5xx answers (never on 4xx).
 *
 * PHI rule: request paths may carry identifiers (accession numbers in a
 * query, Orthanc IDs derived from patient IDs), so neither paths nor bodies
 * appear in errors or logs; only the method, host and status do.
 * SPDX-License-Identifier: MIT
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "net.h"

struct diana__http {
	CURL *curl;
	char *base_url;  /* without trailing '/' */
	char *host;      /* "host:port" for messages */
	char *username;
	char *password;
	char *netrc_file;
	char *ca_file;
	int insecure;
	int64_t connect_timeout_ms;
	int64_t timeout_ms;
	int64_t low_speed_timeout_ms;
	int retries;
	int64_t retry_delay_ms;
	char errbuf[CURL_ERROR_SIZE];
};

int diana__net_global_init(void)
{
	CURLcode c = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (c != CURLE_OK)
		return diana__error_set(DIANA_ERROR, "libcurl initialisation failed: %s",
		                        curl_easy_strerror(c));
	return 0;
}

void diana__net_global_shutdown(void)
{
	curl_global_cleanup();
}

int diana__net_has_tls(void)
{
	const curl_version_info_data *v = curl_version_info(CURLVERSION_NOW);
	return v && (v->features & CURL_VERSION_SSL) != 0;
}

static char *dup_or_null(const char *s, int *oom)
{
	char *p;
	if (!s)
		return NULL;
	p = diana__strdup(s);
	if (!p)
		*oom = 1;
	return p;
}

/* "scheme://[user@]host:port/..." -> "host:port" (for messages only) */
static char *host_of(const char *url)
{
	const char *p = strstr(url, "://"), *end, *at;
	p = p ? p + 3 : url;
	end = p + strcspn(p, "/?#");
	at = memchr(p, '@', (size_t)(end - p));
	if (at)
		p = at + 1;
	return diana__strndup(p, (size_t)(end - p));
}

int diana__http_new(diana__http **out, const diana__http_options *opts)
{
	diana__http *h;
	size_t n;
	int oom = 0;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "out is NULL");
	*out = NULL;
	if (!opts || !opts->base_url || !*opts->base_url)
		return diana__error_set(DIANA_EINVAL, "an HTTP client needs a base URL");
	if (strncmp(opts->base_url, "http://", 7) && strncmp(opts->base_url, "https://", 8))
		return diana__error_set(DIANA_EINVAL, "base URL must start with http:// or https://");

	h = diana__calloc(1, sizeof(*h));
	if (!h)
		return DIANA_ENOMEM;
	h->base_url = dup_or_null(opts->base_url, &oom);
	h->host = h->base_url ? host_of(h->base_url) : NULL;
	h->username = dup_or_null(opts->username, &oom);
	h->password = dup_or_null(opts->password, &oom);
	h->netrc_file = dup_or_null(opts->netrc_file, &oom);
	h->ca_file = dup_or_null(opts->ca_file, &oom);
	if (oom || !h->host) {
		diana__http_free(h);
		return diana__error_oom();
	}
	n = strlen(h->base_url);
	while (n > 0 && h->base_url[n - 1] == '/')
		h->base_url[--n] = '\0';
	h->insecure = opts->insecure;
	h->connect_timeout_ms = opts->connect_timeout_ms > 0 ? opts->connect_timeout_ms : 10000;
	h->timeout_ms = opts->timeout_ms > 0 ? opts->timeout_ms : 0;
	h->low_speed_timeout_ms = opts->low_speed_timeout_ms > 0 ? opts->low_speed_timeout_ms : 60000;
	h->retries = opts->retries < 0 ? 0 : opts->retries;
	h->retry_delay_ms = opts->retry_delay_ms > 0 ? opts->retry_delay_ms : 200;

	h->curl = curl_easy_init();
	if (!h->curl) {
		diana__http_free(h);
		return diana__error_set(DIANA_ENOMEM, "cannot create an HTTP handle");
	}
	*out = h;
	return 0;
}

void diana__http_free(diana__http *h)
{
	if (!h)
		return;
	if (h->curl)
		curl_easy_cleanup(h->curl);
	if (h->password) {
		/* credentials do not linger in freed memory */
		volatile char *p = h->password;
		while (*p)
			*p++ = 0;
	}
	free(h->base_url);
	free(h->host);
	free(h->username);
	free(h->password);
	free(h->netrc_file);
	free(h->ca_file);
	free(h);
}

void diana__http_response_dispose(diana__http_response *resp)
{
	if (!resp)
		return;
	diana__buf_dispose(&resp->body);
}

struct xfer {
	const diana__http_request *req;
	diana__http_response *resp;
	int delivered; /* bytes went to the sink: no retry possible */
	int sink_rc;   /* non-zero when the sink stopped the transfer */
};

static size_t on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nmemb;

	/* only a 2xx body goes to the sink; error bodies are collected */
	if (x->req->sink && x->resp->status >= 200 && x->resp->status < 300) {
		int rc = x->req->sink(ptr, n, x->req->sink_user_data);
		x->delivered = 1;
		if (rc) {
			x->sink_rc = rc;
			return 0; /* aborts with CURLE_WRITE_ERROR */
		}
		return n;
	}
	if (x->resp->body.len < (1u << 20) || !x->req->sink) {
		if (diana__buf_put(&x->resp->body, ptr, n))
			return 0;
	}
	return n;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *ud)
{
	struct xfer *x = ud;
	size_t n = size * nitems;

	/* status line of each response (there may be several: 100, redirects) */
	if (n > 9 && strncmp(buf, "HTTP/", 5) == 0) {
		const char *sp = memchr(buf, ' ', n);
		if (sp)
			x->resp->status = strtol(sp + 1, NULL, 10);
		x->resp->content_type[0] = '\0';
	} else if (n > 13 && strncasecmp(buf, "content-type:", 13) == 0) {
		const char *v = buf + 13;
		size_t len = n - 13;
		while (len && (*v == ' ' || *v == '\t')) {
			v++;
			len--;
		}
		while (len && (v[len - 1] == '\r' || v[len - 1] == '\n' || v[len - 1] == ' '))
			len--;
		if (len >= sizeof(x->resp->content_type))
			len = sizeof(x->resp->content_type) - 1;
		memcpy(x->resp->content_type, v, len);
		x->resp->content_type[len] = '\0';
	}
	return n;
}

static int setup(diana__http *h, const diana__http_request *req, struct xfer *x,
                 struct curl_slist **headers, diana__buf *url)
{
	CURL *c = h->curl;
	const char *path = req->path ? req->path : "";
	const char *method = req->method ? req->method : "GET";

	curl_easy_reset(c); /* keeps the connection cache */
	diana__buf_dispose(url);
	if (diana__buf_puts(url, h->base_url) ||
	    (*path && *path != '/' && diana__buf_putc(url, '/')) || diana__buf_puts(url, path))
		return DIANA_ENOMEM;

	curl_easy_setopt(c, CURLOPT_URL, url->data);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, h->errbuf);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)h->connect_timeout_ms);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)h->timeout_ms);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, (long)((h->low_speed_timeout_ms + 999) / 1000));
	curl_easy_setopt(c, CURLOPT_USERAGENT, "libdiana/" DIANA_VERSION_STRING);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, h->insecure ? 0L : 1L);
	curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, h->insecure ? 0L : 2L);
	if (h->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, h->ca_file);
	if (h->username) {
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(c, CURLOPT_USERNAME, h->username);
		curl_easy_setopt(c, CURLOPT_PASSWORD, h->password ? h->password : "");
	} else if (h->netrc_file) {
		curl_easy_setopt(c, CURLOPT_NETRC, (long)CURL_NETRC_OPTIONAL);
		curl_easy_setopt(c, CURLOPT_NETRC_FILE, h->netrc_file);
		curl_easy_setopt(c, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
	}
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, x);

	*headers = NULL;
	/* no 100-continue round trip before large uploads */
	*headers = curl_slist_append(*headers, "Expect:");
	if (req->content_type) {
		diana__buf hb = DIANA__BUF_INIT;
		struct curl_slist *tmp;
		if (diana__buf_printf(&hb, "Content-Type: %s", req->content_type))
			return DIANA_ENOMEM;
		tmp = curl_slist_append(*headers, hb.data);
		diana__buf_dispose(&hb);
		if (!tmp)
			return diana__error_oom();
		*headers = tmp;
	}
	if (req->accept) {
		diana__buf hb = DIANA__BUF_INIT;
		struct curl_slist *tmp;
		if (diana__buf_printf(&hb, "Accept: %s", req->accept))
			return DIANA_ENOMEM;
		tmp = curl_slist_append(*headers, hb.data);
		diana__buf_dispose(&hb);
		if (!tmp)
			return diana__error_oom();
		*headers = tmp;
	}
	{
		size_t k;
		for (k = 0; k < sizeof(req->extra_headers) / sizeof(req->extra_headers[0]) && req->extra_headers[k]; k++) {
			struct curl_slist *tmp = curl_slist_append(*headers, req->extra_headers[k]);
			if (!tmp)
				return diana__error_oom();
			*headers = tmp;
		}
	}
	if (!*headers)
		return diana__error_oom();
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *headers);

	if (strcmp(method, "GET") == 0) {
		curl_easy_setopt(c, CURLOPT_HTTPGET, 1L);
	} else if (strcmp(method, "HEAD") == 0) {
		curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
	} else {
		if (strcmp(method, "POST") != 0)
			curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		if (req->body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
			curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
			curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body ? req->body : "");
		}
	}
	return 0;
}

static int is_retryable_curl(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return 1;
	default:
		return 0;
	}
}

static int map_curl_error(diana__http *h, const char *method, CURLcode c)
{
	const char *why = h->errbuf[0] ? h->errbuf : curl_easy_strerror(c);
	int code;

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
	case CURLE_SSL_PINNEDPUBKEYNOTMATCH:
	case CURLE_SSL_INVALIDCERTSTATUS:
		code = DIANA_ETLS;
		break;
	case CURLE_OUT_OF_MEMORY:
		code = DIANA_ENOMEM;
		break;
	case CURLE_LOGIN_DENIED:
		code = DIANA_EAUTH;
		break;
	default:
		code = DIANA_EIO;
		break;
	}
	/* curl's error text names the host and port at most, never the path */
	return diana__error_set(code, "%s %s: %s", method, h->host, why);
}

static int map_status(diana__http *h, const char *method, long status)
{
	int code;

	if (status == 401 || status == 403)
		code = DIANA_EAUTH;
	else if (status == 404)
		code = DIANA_ENOTFOUND;
	else
		code = DIANA_EPACS;
	return diana__error_set(code, "%s %s: HTTP status %ld", method, h->host, status);
}

static void sleep_ms(int64_t ms)
{
	struct timespec ts;
	ts.tv_sec = (time_t)(ms / 1000);
	ts.tv_nsec = (long)(ms % 1000) * 1000000L;
	while (nanosleep(&ts, &ts) != 0) {
	}
}

int diana__http_perform(diana__http *h, const diana__http_request *req, diana__http_response *resp)
{
	const char *method;
	diana__buf url = DIANA__BUF_INIT;
	int64_t delay;
	int attempt, rc = 0;

	if (!h || !req || !resp)
		return diana__error_set(DIANA_EINVAL, "NULL argument to an HTTP request");
	memset(resp, 0, sizeof(*resp));
	method = req->method ? req->method : "GET";
	delay = h->retry_delay_ms;

	for (attempt = 0;; attempt++) {
		struct curl_slist *headers = NULL;
		struct xfer x = { req, resp, 0, 0 };
		CURLcode c;
		int retry = 0;

		diana__buf_dispose(&resp->body);
		resp->status = 0;
		resp->content_type[0] = '\0';
		h->errbuf[0] = '\0';
		rc = setup(h, req, &x, &headers, &url);
		if (rc) {
			curl_slist_free_all(headers);
			break;
		}
		resp->attempts = attempt + 1;
		c = curl_easy_perform(h->curl);
		curl_slist_free_all(headers);
		if (c == CURLE_OK) {
			long status = 0;
			curl_easy_getinfo(h->curl, CURLINFO_RESPONSE_CODE, &status);
			curl_easy_getinfo(h->curl, CURLINFO_NUM_CONNECTS, &resp->new_connections);
			resp->status = status;
			if (status >= 200 && status < 300) {
				rc = 0;
				break;
			}
			rc = map_status(h, method, status);
			retry = status >= 500 && !x.delivered;
		} else if (x.sink_rc) {
			rc = x.sink_rc < 0 ? x.sink_rc
			                   : diana__error_set(DIANA_EUSER, "transfer stopped by the receiver");
			break;
		} else if (resp->body.oom) {
			rc = diana__error_oom();
			break;
		} else {
			rc = map_curl_error(h, method, c);
			retry = is_retryable_curl(c) && !x.delivered;
		}
		if (!retry || attempt >= h->retries)
			break;
		diana__log(DIANA_LOG_INFO, "http", "%s %s failed (%s), retry %d of %d in %lld ms",
		           method, h->host, diana_strerror(rc), attempt + 1, h->retries,
		           (long long)delay);
		sleep_ms(delay);
		delay = delay * 2 > 30000 ? 30000 : delay * 2;
	}
	diana__buf_dispose(&url);
	return rc;
}
