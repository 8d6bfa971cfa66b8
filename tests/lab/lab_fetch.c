/*
 * diana-lab-fetch: fetch one instance of a study from the lab's PACS over
 * libdiana's HTTP layer, streamed into an atomic file, and check that it
 * parses. Used by examples/demo.sh until `diana get` exists (sessions).
 *
 *   diana-lab-fetch ACCESSION OUT.dcm     (env: DIANA_LAB_PACS_URL/USER/PASSWORD)
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <diana/diana.h>

#include "net/net.h"

static int die(const char *what)
{
	fprintf(stderr, "diana-lab-fetch: %s: %s\n", what, diana_error_message());
	return 2;
}

static int to_file(const void *data, size_t len, void *ud)
{
	return diana__atomic_write(ud, data, len);
}

int main(int argc, char **argv)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http_request q = { 0 };
	diana__http_response r;
	diana__atomic_file f;
	diana__http *h = NULL;
	diana_dataset *ds = NULL;
	cJSON *req, *query, *ans;
	char *body, path[256];
	int rc;

	if (argc != 3 || !getenv("DIANA_LAB_PACS_URL")) {
		fprintf(stderr, "usage: diana-lab-fetch ACCESSION OUT.dcm (with the lab's env)\n");
		return 1;
	}
	if (diana_init() < 0)
		return die("init");
	o.base_url = getenv("DIANA_LAB_PACS_URL");
	o.username = getenv("DIANA_LAB_PACS_USER");
	o.password = getenv("DIANA_LAB_PACS_PASSWORD");
	o.timeout_ms = 60000;
	if (diana__http_new(&h, &o) < 0)
		return die("client");

	req = cJSON_CreateObject();
	query = cJSON_CreateObject();
	cJSON_AddStringToObject(req, "Level", "Instance");
	cJSON_AddStringToObject(query, "AccessionNumber", argv[1]);
	cJSON_AddItemToObject(req, "Query", query);
	cJSON_AddNumberToObject(req, "Limit", 1);
	body = cJSON_PrintUnformatted(req);
	cJSON_Delete(req);
	q.method = "POST";
	q.path = "/tools/find";
	q.content_type = "application/json";
	q.body = body;
	q.body_len = strlen(body);
	rc = diana__http_perform(h, &q, &r);
	free(body);
	if (rc < 0)
		return die("find");
	ans = cJSON_Parse(r.body.data);
	diana__http_response_dispose(&r);
	if (!cJSON_IsArray(ans) || cJSON_GetArraySize(ans) < 1 ||
	    !cJSON_IsString(cJSON_GetArrayItem(ans, 0))) {
		fprintf(stderr, "diana-lab-fetch: no instance with that accession number\n");
		return 2;
	}
	snprintf(path, sizeof(path), "/instances/%s/file", cJSON_GetArrayItem(ans, 0)->valuestring);
	cJSON_Delete(ans);

	if (diana__atomic_open(&f, argv[2]) < 0)
		return die(argv[2]);
	memset(&q, 0, sizeof(q));
	q.path = path;
	q.accept = "application/dicom";
	q.sink = to_file;
	q.sink_user_data = &f;
	rc = diana__http_perform(h, &q, &r);
	diana__http_response_dispose(&r);
	if (rc < 0) {
		diana__atomic_abort(&f);
		return die("download");
	}
	if (diana__atomic_commit(&f) < 0)
		return die(argv[2]);
	if (diana_dataset_open(&ds, argv[2], NULL) < 0)
		return die(argv[2]);
	diana_dataset_free(ds);
	diana__http_free(h);
	diana_shutdown();
	printf("%s\n", argv[2]);
	return 0;
}
