/*
 * Lab test: libdiana's HTTP layer against the real Orthanc "PACS" and
 * "helper" started by tests/lab/with-lab.sh (env DIANA_LAB_*): upload a
 * DICOM file, read it back byte for byte (buffered and streamed to an
 * atomic file), keep-alive reuse, authentication and error mapping.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <diana/diana.h>

#include "net/net.h"

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set: run through tests/lab/with-lab.sh", name);
	return v;
}

static void setup(void)
{
	cr_assert_eq(diana_init(), 1);
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(lab_http, .init = setup, .fini = teardown, .timeout = 60);

static diana__http *pacs_client(const char *password)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;

	o.base_url = env("DIANA_LAB_PACS_URL");
	o.username = env("DIANA_LAB_PACS_USER");
	o.password = password ? password : env("DIANA_LAB_PACS_PASSWORD");
	o.timeout_ms = 30000;
	cr_assert_eq(diana__http_new(&h, &o), 0, "%s", diana_error_message());
	return h;
}

static void read_sample(uint8_t **data, size_t *len)
{
	char path[1024];
	snprintf(path, sizeof(path), "%s/dicom/ct/CT_small.dcm", env("DIANA_TEST_DATA"));
	cr_assert_eq(diana__file_read(path, 0, data, len), 0, "%s: %s", path, diana_error_message());
}

/* POST /instances, returns the Orthanc instance ID (malloc'd) */
static char *upload(diana__http *h, const uint8_t *data, size_t len)
{
	diana__http_request q = { 0 };
	diana__http_response r;
	cJSON *j, *id, *status;
	char *res;

	q.method = "POST";
	q.path = "/instances";
	q.content_type = "application/dicom";
	q.body = data;
	q.body_len = len;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "%s", diana_error_message());
	cr_assert_eq(r.status, 200);
	j = cJSON_Parse(r.body.data);
	cr_assert_not_null(j, "answer is not JSON");
	id = cJSON_GetObjectItemCaseSensitive(j, "ID");
	status = cJSON_GetObjectItemCaseSensitive(j, "Status");
	cr_assert(cJSON_IsString(id));
	cr_assert(cJSON_IsString(status));
	cr_assert(strcmp(status->valuestring, "Success") == 0 ||
	          strcmp(status->valuestring, "AlreadyStored") == 0,
	          "status %s", status->valuestring);
	res = strdup(id->valuestring);
	cJSON_Delete(j);
	diana__http_response_dispose(&r);
	return res;
}

Test(lab_http, upload_and_read_back_identical)
{
	diana__http *h = pacs_client(NULL);
	diana__http_request q = { 0 };
	diana__http_response r;
	uint8_t *data;
	size_t len;
	char *id, path[256];

	read_sample(&data, &len);
	id = upload(h, data, len);

	snprintf(path, sizeof(path), "/instances/%s/file", id);
	q.path = path;
	q.accept = "application/dicom";
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "%s", diana_error_message());
	cr_assert_eq(r.status, 200);
	cr_assert_str_eq(r.content_type, "application/dicom");
	cr_assert_eq(r.new_connections, 0, "keep-alive connection not reused");
	cr_assert_eq(r.body.len, len);
	cr_assert(memcmp(r.body.data, data, len) == 0, "file changed on the round trip");
	diana__http_response_dispose(&r);

	/* uploading the same file again: AlreadyStored, same ID */
	{
		char *again = upload(h, data, len);
		cr_assert_str_eq(again, id);
		free(again);
	}
	free(id);
	free(data);
	diana__http_free(h);
}

struct file_sink {
	diana__atomic_file f;
	size_t bytes;
	int calls;
};

static int to_file(const void *data, size_t len, void *ud)
{
	struct file_sink *s = ud;
	s->bytes += len;
	s->calls++;
	return diana__atomic_write(&s->f, data, len);
}

Test(lab_http, stream_to_atomic_file_then_parse)
{
	diana__http *h = pacs_client(NULL);
	diana__http_request q = { 0 };
	diana__http_response r;
	struct file_sink s = { 0 };
	diana_dataset *orig = NULL, *copy = NULL;
	char dir[] = "/tmp/diana-lab-XXXXXX", out[128], path[256];
	char *a = NULL, *b = NULL;
	uint8_t *data;
	size_t len;
	char *id;

	read_sample(&data, &len);
	id = upload(h, data, len);
	cr_assert_not_null(mkdtemp(dir));
	snprintf(out, sizeof(out), "%s/instance.dcm", dir);
	cr_assert_eq(diana__atomic_open(&s.f, out), 0);
	snprintf(path, sizeof(path), "/instances/%s/file", id);
	q.path = path;
	q.sink = to_file;
	q.sink_user_data = &s;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "%s", diana_error_message());
	cr_assert_eq(r.body.len, 0, "streamed body was buffered");
	cr_assert_eq(s.bytes, len);
	cr_assert_eq(access(out, F_OK), -1, "file visible before commit");
	cr_assert_eq(diana__atomic_commit(&s.f), 0);
	diana__http_response_dispose(&r);

	cr_assert_eq(diana_dataset_open_memory(&orig, data, len, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_open(&copy, out, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_get(orig, "SOPInstanceUID", &a), 0);
	cr_assert_eq(diana_dataset_get(copy, "SOPInstanceUID", &b), 0);
	cr_assert_str_eq(a, b);
	diana_free(a);
	diana_free(b);
	diana_dataset_free(orig);
	diana_dataset_free(copy);
	unlink(out);
	rmdir(dir);
	free(id);
	free(data);
	diana__http_free(h);
}

Test(lab_http, authentication_and_errors)
{
	diana__http *bad = pacs_client("not-the-password"), *good = pacs_client(NULL);
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *anon = NULL;
	diana__http_request q = { 0 };
	diana__http_response r;

	q.path = "/system";
	cr_assert_eq(diana__http_perform(bad, &q, &r), DIANA_EAUTH);
	cr_assert_eq(r.status, 401);
	cr_assert_eq(r.attempts, 1, "4xx must not be retried");
	cr_assert(strstr(diana_error_message(), "not-the-password") == NULL);
	diana__http_response_dispose(&r);

	o.base_url = env("DIANA_LAB_PACS_URL");
	cr_assert_eq(diana__http_new(&anon, &o), 0);
	cr_assert_eq(diana__http_perform(anon, &q, &r), DIANA_EAUTH);
	diana__http_response_dispose(&r);

	cr_assert_eq(diana__http_perform(good, &q, &r), 0, "%s", diana_error_message());
	cr_assert(strstr(r.body.data, "\"DicomAet\" : \"HOSP_PACS\"") != NULL ||
	          strstr(r.body.data, "\"DicomAet\":\"HOSP_PACS\"") != NULL, "%s", r.body.data);
	diana__http_response_dispose(&r);

	q.path = "/instances/00000000-00000000-00000000-00000000-00000000/file";
	cr_assert_eq(diana__http_perform(good, &q, &r), DIANA_ENOTFOUND);
	cr_assert_eq(r.status, 404);
	diana__http_response_dispose(&r);

	diana__http_free(bad);
	diana__http_free(good);
	diana__http_free(anon);
}

Test(lab_http, helper_echoes_pacs)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;
	diana__http_request q = { 0 };
	diana__http_response r;

	o.base_url = env("DIANA_LAB_HELPER_URL");
	o.username = env("DIANA_LAB_HELPER_USER");
	o.password = env("DIANA_LAB_HELPER_PASSWORD");
	cr_assert_eq(diana__http_new(&h, &o), 0);
	q.method = "POST";
	q.path = "/modalities/pacs/echo";
	q.content_type = "application/json";
	q.body = "{}";
	q.body_len = 2;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "%s", diana_error_message());
	cr_assert_eq(r.status, 200);
	diana__http_response_dispose(&r);
	diana__http_free(h);
}
