/*
 * Unit tests of the HTTP client (lib/net/http.c) against a local,
 * controllable HTTP/1.1 server (tests/unit/httpd.py) on 127.0.0.1:
 * keep-alive reuse, retries and backoff on 5xx, none on 4xx, status
 * mapping, basic auth, timeouts, streaming sinks, request bodies.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "net/net.h"

static pid_t server_pid = -1;
static char base_url[64];

static void start_server(void)
{
	char portfile[64], port[16] = { 0 };
	const char *script = getenv("DIANA_TEST_HTTPD");
	FILE *f = NULL;
	int i;

	cr_assert_not_null(script, "DIANA_TEST_HTTPD is not set");
	cr_assert_eq(diana_init(), 1);
	snprintf(portfile, sizeof(portfile), "/tmp/diana-httpd-%d.port", (int)getpid());
	unlink(portfile);
	server_pid = fork();
	cr_assert_neq(server_pid, -1);
	if (server_pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execl("/usr/bin/python3", "python3", script, portfile, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && !(f = fopen(portfile, "r")); i++)
		usleep(25000);
	cr_assert_not_null(f, "test server did not start");
	cr_assert_not_null(fgets(port, sizeof(port), f));
	fclose(f);
	unlink(portfile);
	snprintf(base_url, sizeof(base_url), "http://127.0.0.1:%s", port);
}

static void stop_server(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
	diana_shutdown();
}

TestSuite(http, .init = start_server, .fini = stop_server, .timeout = 60);

static diana__http *client(int retries, int64_t timeout_ms)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;

	o.base_url = base_url;
	o.retries = retries;
	o.retry_delay_ms = 50;
	o.timeout_ms = timeout_ms;
	cr_assert_eq(diana__http_new(&h, &o), 0, "%s", diana_error_message());
	return h;
}

static int get(diana__http *h, const char *path, diana__http_response *r)
{
	diana__http_request q = { 0 };
	q.method = "GET";
	q.path = path;
	return diana__http_perform(h, &q, r);
}

static long hits(diana__http *h, const char *path)
{
	diana__http_response r;
	char p[128];
	long n;

	snprintf(p, sizeof(p), "/count%s", path);
	cr_assert_eq(get(h, p, &r), 0);
	n = strtol(r.body.data, NULL, 10);
	diana__http_response_dispose(&r);
	return n;
}

Test(http, get_and_keep_alive)
{
	diana__http *h = client(0, 0);
	diana__http_response r;
	int i;

	cr_assert_eq(get(h, "/ok", &r), 0, "%s", diana_error_message());
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.body.data, "hello");
	cr_assert_str_eq(r.content_type, "text/plain");
	cr_assert_eq(r.new_connections, 1);
	diana__http_response_dispose(&r);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(get(h, "ok", &r), 0); /* path without leading '/' too */
		cr_assert_eq(r.new_connections, 0, "connection was not reused");
		diana__http_response_dispose(&r);
	}
	diana__http_free(h);
}

Test(http, retries_5xx_with_backoff_then_succeeds)
{
	diana__http *h = client(3, 0);
	diana__http_response r;
	int64_t t0 = diana__now_ms(), dt;

	cr_assert_eq(get(h, "/flaky/a/2", &r), 0, "%s", diana_error_message());
	dt = diana__now_ms() - t0;
	cr_assert_eq(r.status, 200);
	cr_assert_eq(r.attempts, 3);
	cr_assert_str_eq(r.body.data, "recovered");
	/* two waits: 50 ms then 100 ms */
	cr_assert_geq(dt, 150, "backoff too short: %lld ms", (long long)dt);
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

Test(http, gives_up_after_retries)
{
	diana__http *h = client(2, 0);
	diana__http_response r;

	cr_assert_eq(get(h, "/status/503", &r), DIANA_EPACS);
	cr_assert_eq(r.status, 503);
	cr_assert_eq(r.attempts, 3);
	diana__http_response_dispose(&r);
	cr_assert_eq(hits(h, "/status/503"), 3);
	cr_assert(strstr(diana_error_message(), "HTTP status 503") != NULL, "%s", diana_error_message());
	diana__http_free(h);
}

Test(http, never_retries_4xx_and_maps_statuses)
{
	diana__http *h = client(3, 0);
	diana__http_response r;

	cr_assert_eq(get(h, "/status/404", &r), DIANA_ENOTFOUND);
	cr_assert_eq(r.attempts, 1);
	cr_assert_str_eq(r.body.data, "status body"); /* error body kept for the caller */
	diana__http_response_dispose(&r);
	cr_assert_eq(get(h, "/status/400", &r), DIANA_EPACS);
	cr_assert_eq(r.status, 400);
	diana__http_response_dispose(&r);
	cr_assert_eq(get(h, "/status/403", &r), DIANA_EAUTH);
	diana__http_response_dispose(&r);
	cr_assert_eq(hits(h, "/status/400"), 1);
	cr_assert_eq(hits(h, "/status/404"), 1);
	diana__http_free(h);
}

Test(http, error_text_has_no_path)
{
	diana__http *h = client(0, 0);
	diana__http_response r;

	/* paths can carry identifiers (accession numbers in a query) */
	cr_assert_eq(get(h, "/status/404?AccessionNumber=SECRET-123", &r), DIANA_ENOTFOUND);
	cr_assert(strstr(diana_error_message(), "SECRET") == NULL, "%s", diana_error_message());
	cr_assert(strstr(diana_error_message(), "404") != NULL, "%s", diana_error_message());
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

Test(http, basic_auth)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = client(0, 0), *a = NULL;
	diana__http_response r;

	cr_assert_eq(get(h, "/auth", &r), DIANA_EAUTH);
	cr_assert_eq(r.status, 401);
	diana__http_response_dispose(&r);
	o.base_url = base_url;
	o.username = "user";
	o.password = "secret";
	cr_assert_eq(diana__http_new(&a, &o), 0);
	cr_assert_eq(get(a, "/auth", &r), 0);
	cr_assert_str_eq(r.body.data, "welcome");
	diana__http_response_dispose(&r);
	diana__http_free(a);
	o.password = "wrong";
	cr_assert_eq(diana__http_new(&a, &o), 0);
	cr_assert_eq(get(a, "/auth", &r), DIANA_EAUTH);
	cr_assert(strstr(diana_error_message(), "wrong") == NULL);
	diana__http_response_dispose(&r);
	diana__http_free(a);
	diana__http_free(h);
}

Test(http, total_timeout)
{
	diana__http *h = client(0, 300);
	diana__http_response r;
	int64_t t0 = diana__now_ms();

	cr_assert_eq(get(h, "/slow/3000", &r), DIANA_ETIMEDOUT);
	cr_assert_lt(diana__now_ms() - t0, 2500);
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

Test(http, refused_connection_is_econnect)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;
	diana__http_response r;

	o.base_url = "http://127.0.0.1:1";
	o.retries = 1;
	o.retry_delay_ms = 10;
	cr_assert_eq(diana__http_new(&h, &o), 0);
	cr_assert_eq(get(h, "/ok", &r), DIANA_ECONNECT);
	cr_assert_eq(r.attempts, 2);
	cr_assert(strstr(diana_error_message(), "127.0.0.1:1") != NULL, "%s", diana_error_message());
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

struct sink_state {
	size_t total;
	uint32_t sum;
	size_t stop_after;
};

static int sink(const void *data, size_t len, void *ud)
{
	struct sink_state *s = ud;
	const uint8_t *p = data;
	size_t i;
	for (i = 0; i < len; i++)
		s->sum = s->sum * 31 + p[i];
	s->total += len;
	return s->stop_after && s->total >= s->stop_after ? 1 : 0;
}

Test(http, streams_large_body_to_sink)
{
	diana__http *h = client(0, 0);
	diana__http_request q = { 0 };
	diana__http_response r;
	struct sink_state s = { 0, 0, 0 };
	uint32_t want = 0;
	size_t i;

	for (i = 0; i < 5000000; i++)
		want = want * 31 + (uint8_t)(i % 65536 % 256);
	q.path = "/big/5000000";
	q.sink = sink;
	q.sink_user_data = &s;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0);
	cr_assert_eq(s.total, 5000000);
	cr_assert_eq(s.sum, want);
	cr_assert_eq(r.body.len, 0, "a streamed body must not be buffered");
	diana__http_response_dispose(&r);

	s.total = 0;
	s.stop_after = 100000;
	cr_assert_eq(diana__http_perform(h, &q, &r), DIANA_EUSER);
	cr_assert_eq(r.attempts, 1);
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

Test(http, post_put_delete_with_bodies)
{
	diana__http *h = client(0, 0);
	diana__http_request q = { 0 };
	diana__http_response r;
	static uint8_t body[3000000];
	size_t i;

	for (i = 0; i < sizeof(body); i++)
		body[i] = (uint8_t)(i * 13);
	q.method = "POST";
	q.path = "/echo";
	q.content_type = "application/dicom";
	q.body = body;
	q.body_len = sizeof(body);
	cr_assert_eq(diana__http_perform(h, &q, &r), 0);
	cr_assert_eq(r.body.len, sizeof(body));
	cr_assert(memcmp(r.body.data, body, sizeof(body)) == 0);
	diana__http_response_dispose(&r);

	memset(&q, 0, sizeof(q));
	q.path = "/method";
	q.method = "PUT";
	q.body = "x";
	q.body_len = 1;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0);
	cr_assert_str_eq(r.body.data, "PUT");
	diana__http_response_dispose(&r);
	q.method = "DELETE";
	q.body = NULL;
	q.body_len = 0;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0);
	cr_assert_str_eq(r.body.data, "DELETE");
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

Test(http, bad_arguments)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = (diana__http *)1;

	cr_assert_eq(diana__http_new(&h, NULL), DIANA_EINVAL);
	cr_assert_null(h);
	o.base_url = "ftp://example.org";
	cr_assert_eq(diana__http_new(&h, &o), DIANA_EINVAL);
	cr_assert_eq(diana__http_new(NULL, &o), DIANA_EINVAL);
	diana__http_free(NULL);
}
