/*
 * libdiana - internal interface of lib/net (libcurl lives only here).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_NET_H
#define DIANA_NET_H

#include <stddef.h>
#include <stdint.h>

#include "../core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Called by diana_init()/diana_shutdown(): curl_global_init/cleanup. */
int diana__net_global_init(void);
void diana__net_global_shutdown(void);
/** True when libcurl was built with TLS. */
int diana__net_has_tls(void);

/*
 * HTTP client: one handle = one libcurl easy handle, so connections are
 * kept alive and reused across requests. Not synchronised: one thread at a
 * time per handle. Credentials are never logged.
 */
typedef struct diana__http diana__http;

typedef struct diana__http_options {
	const char *base_url;       /* "http://host:port[/prefix]", no trailing slash needed */
	const char *username;       /* basic auth; NULL: none (or netrc) */
	const char *password;
	const char *netrc_file;     /* optional .netrc for credentials */
	const char *ca_file;        /* optional CA bundle */
	int insecure;               /* 1: do not verify TLS peers (default 0) */
	int64_t connect_timeout_ms; /* default 10000 */
	int64_t timeout_ms;         /* whole request; default 0 = none */
	int64_t low_speed_timeout_ms; /* abort when < 1 byte/s for this long; default 60000 */
	int retries;                /* retries on connection errors and 5xx; default 3 (-1: none) */
	int64_t retry_delay_ms;     /* first backoff delay, doubled each time; default 200 */
} diana__http_options;

#define DIANA__HTTP_OPTIONS_INIT { NULL, NULL, NULL, NULL, NULL, 0, 10000, 0, 60000, 3, 200 }

int diana__http_new(diana__http **out, const diana__http_options *opts);
void diana__http_free(diana__http *http);

/** Receives body bytes as they arrive; return non-zero to abort (DIANA_EUSER). */
typedef int (*diana__http_sink_fn)(const void *data, size_t len, void *user_data);

typedef struct diana__http_request {
	const char *method;       /* "GET", "POST", "PUT", "DELETE" */
	const char *path;         /* appended to base_url; may carry a query string */
	const char *content_type; /* of the request body, or NULL */
	const char *accept;       /* Accept header, or NULL */
	const void *body;         /* request body, or NULL */
	size_t body_len;
	diana__http_sink_fn sink; /* stream the response body here; NULL: collect in response */
	void *sink_user_data;
	const char *extra_headers[4]; /* "Name: value" lines, NULL-terminated if fewer; never logged */
} diana__http_request;

typedef struct diana__http_response {
	long status;             /* HTTP status (0 when no answer) */
	char content_type[256];  /* response Content-Type, "" if none */
	diana__buf body;         /* the body, when no sink was given */
	int attempts;            /* attempts made */
	long new_connections;    /* connections opened by the last attempt (0 = reused) */
} diana__http_response;

/**
 * Perform one request, retrying (with exponential backoff) on connection
 * errors and 5xx answers — never on 4xx, and never once body bytes were
 * handed to a sink. Returns 0 for a 2xx answer; otherwise a code:
 * DIANA_ECONNECT, DIANA_ETIMEDOUT, DIANA_ETLS, DIANA_EAUTH (401/403),
 * DIANA_ENOTFOUND (404), DIANA_EPACS (other statuses), DIANA_EUSER (sink).
 * `resp` is filled in every case (status, body) and must be disposed with
 * diana__http_response_dispose().
 */
int diana__http_perform(diana__http *http, const diana__http_request *req,
                        diana__http_response *resp);
void diana__http_response_dispose(diana__http_response *resp);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_NET_H */
