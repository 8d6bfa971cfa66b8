/*
 * Lab test: diana_session (public API) against the real Orthanc servers of
 * tests/lab (run through with-lab.sh): the PACS's own store over REST
 * (orthanc+http://), the PACS reached through the helper Orthanc
 * (orthanc+http://helper?modality=pacs: C-FIND, C-MOVE into the helper,
 * instances over HTTP), and the PACS over DIMSE (dicom://, C-GET and C-MOVE
 * to our own storage SCP). Synthetic studies are generated and uploaded
 * first; expected values come from synth.py's manifest and from the PACS's
 * REST API (independent of the code under test).
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <diana/diana.h>

#include "net/net.h"

#define CALLING "DIANA_S"
#define SCP_PORT 14290
#define CT_ACC "SESS-CT-001"
#define CT2_ACC "SESS-CT-002"
#define CT_SLICES 7

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set: run through tests/lab/with-lab.sh", name);
	return v;
}

/* --- seeded data ---------------------------------------------------------- */

struct study {
	char acc[32], pid[64], uid[80], name[128];
	int n;
};

static char data_dir[512];

static void manifest(const char *acc, struct study *s)
{
	char path[600], line[1024];
	FILE *f;
	snprintf(path, sizeof(path), "%s/manifest.csv", data_dir);
	f = fopen(path, "r");
	cr_assert_not_null(f, "no manifest %s", path);
	while (fgets(line, sizeof(line), f)) {
		char *fld[9] = { 0 }, *p = line;
		int k = 0;
		line[strcspn(line, "\r\n")] = 0;
		while (k < 9 && p) {
			fld[k++] = p;
			p = strchr(p, ',');
			if (p)
				*p++ = 0;
		}
		if (k < 8 || strcmp(fld[0], acc) != 0)
			continue;
		snprintf(s->acc, sizeof(s->acc), "%s", fld[0]);
		snprintf(s->pid, sizeof(s->pid), "%s", fld[1]);
		snprintf(s->uid, sizeof(s->uid), "%s", fld[2]);
		s->n = atoi(fld[3]);
		snprintf(s->name, sizeof(s->name), "%s", fld[5]);
		fclose(f);
		return;
	}
	fclose(f);
	cr_assert_fail("accession %s not in the manifest", acc);
}

/* --- independent REST access to the servers -------------------------------- */

static cJSON *rest(const char *who, const char *method, const char *path, const char *body)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;
	diana__http_request q = { 0 };
	diana__http_response r;
	char k[64];
	cJSON *j;

	snprintf(k, sizeof(k), "DIANA_LAB_%s_URL", who);
	o.base_url = env(k);
	snprintf(k, sizeof(k), "DIANA_LAB_%s_USER", who);
	o.username = env(k);
	snprintf(k, sizeof(k), "DIANA_LAB_%s_PASSWORD", who);
	o.password = env(k);
	o.timeout_ms = 60000;
	cr_assert_eq(diana__http_new(&h, &o), 0, "%s", diana_error_message());
	q.method = method;
	q.path = path;
	q.body = body;
	q.body_len = body ? strlen(body) : 0;
	q.content_type = body ? "application/json" : NULL;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "%s %s: %s", method, path, diana_error_message());
	j = r.body.data ? cJSON_ParseWithLength(r.body.data, r.body.len) : NULL;
	diana__http_response_dispose(&r);
	diana__http_free(h);
	return j;
}

/* SOP Instance UIDs of a study in a server, sorted, '\n'-joined (malloc'd) */
static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *join_sorted(char **v, size_t n)
{
	size_t i, len = 1;
	char *out;
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++)
		len += strlen(v[i]) + 1;
	out = calloc(1, len);
	for (i = 0; i < n; i++) {
		strcat(out, v[i]);
		strcat(out, "\n");
	}
	return out;
}

static char *server_sops(const char *who, const char *study_uid, size_t *count)
{
	cJSON *look, *list;
	const cJSON *it;
	char path[200], *v[1000];
	size_t n = 0;
	const char *id;

	snprintf(path, sizeof(path), "{\"Level\":\"Study\",\"Query\":{\"StudyInstanceUID\":\"%s\"}}", study_uid);
	look = rest(who, "POST", "/tools/find", path);
	cr_assert(cJSON_GetArraySize(look) == 1, "study not in %s", who);
	id = cJSON_GetArrayItem(look, 0)->valuestring;
	snprintf(path, sizeof(path), "/studies/%s/instances", id);
	list = rest(who, "GET", path, NULL);
	cJSON_ArrayForEach(it, list)
	{
		const cJSON *t = cJSON_GetObjectItem(cJSON_GetObjectItem(it, "MainDicomTags"), "SOPInstanceUID");
		v[n++] = strdup(t->valuestring);
	}
	cJSON_Delete(look);
	cJSON_Delete(list);
	*count = n;
	{
		char *s = join_sorted(v, n);
		size_t i;
		for (i = 0; i < n; i++)
			free(v[i]);
		return s;
	}
}

static void delete_study_from(const char *who, const char *study_uid)
{
	cJSON *look;
	char body[200], path[200];
	snprintf(body, sizeof(body), "{\"Level\":\"Study\",\"Query\":{\"StudyInstanceUID\":\"%s\"}}", study_uid);
	look = rest(who, "POST", "/tools/find", body);
	if (cJSON_GetArraySize(look) == 1) {
		snprintf(path, sizeof(path), "/studies/%s", cJSON_GetArrayItem(look, 0)->valuestring);
		cJSON_Delete(rest(who, "DELETE", path, NULL));
	}
	cJSON_Delete(look);
}

/* --- URIs ------------------------------------------------------------------------ */

static char uri_buf[4][512];

/* orthanc+http://USER:PASSWORD@host:port from DIANA_LAB_<WHO>_URL */
static void orthanc_uri(char *buf, size_t len, const char *who, const char *query)
{
	char k[64], user[64], pass[64];
	const char *url;
	snprintf(k, sizeof(k), "DIANA_LAB_%s_URL", who);
	url = env(k);
	cr_assert(strncmp(url, "http://", 7) == 0, "%s", url);
	snprintf(k, sizeof(k), "DIANA_LAB_%s_USER", who);
	snprintf(user, sizeof(user), "%s", env(k));
	snprintf(k, sizeof(k), "DIANA_LAB_%s_PASSWORD", who);
	snprintf(pass, sizeof(pass), "%s", env(k));
	snprintf(buf, len, "orthanc+http://%s:%s@%s%s", user, pass, url + 7, query ? query : "");
}

static const char *pacs_uri(void) /* the PACS's own store */
{
	orthanc_uri(uri_buf[0], sizeof(uri_buf[0]), "PACS", NULL);
	return uri_buf[0];
}

static const char *helper_uri(const char *query) /* the helper, optionally ?modality=pacs */
{
	orthanc_uri(uri_buf[1], sizeof(uri_buf[1]), "HELPER", query);
	return uri_buf[1];
}

static const char *dicom_uri(const char *extra)
{
	snprintf(uri_buf[2], sizeof(uri_buf[2]), "dicom://%s@%s:%s?aet=%s%s", env("DIANA_LAB_PACS_AET"),
	         env("DIANA_LAB_PACS_HOST"), env("DIANA_LAB_PACS_DICOM_PORT"), CALLING, extra ? extra : "");
	return uri_buf[2];
}

static diana_session *open_uri(const char *uri)
{
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_session *s = NULL;
	o.timeout_ms = 60000;
	o.connect_timeout_ms = 5000;
	cr_assert_eq(diana_session_open(&s, uri, &o), 0, "open: %s", diana_error_message());
	return s;
}

/* --- fixtures ---------------------------------------------------------------- */

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char cmd[2048];
	const char *tmp = getenv("DIANA_LAB_TMP"), *tools = getenv("DIANA_LAB_TOOLS"),
	           *lab = getenv("DIANA_LAB_DIR"), *py = getenv("PYTHON");
	(void)set;
	if (!tmp || !tools || !lab)
		return;
	snprintf(data_dir, sizeof(data_dir), "%s/session-data", tmp);
	snprintf(cmd, sizeof(cmd),
	         "%s '%s/synth.py' --out '%s' --ct 2 --ct-slices %d --xr 2 --xr-size 256x256 --prefix SESS --quiet && "
	         "'%s/seed.sh' '%s' >/dev/null && "
	         "%s '%s/synth.py' --out '%s/session-store' --ct 1 --ct-slices 3 --prefix SSTORE --quiet",
	         py ? py : "/usr/bin/python3", tools, data_dir, CT_SLICES, lab, data_dir,
	         py ? py : "/usr/bin/python3", tools, tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "session lab: seeding failed: %s\n", cmd);
}

static void setup(void)
{
	char body[256];
	cr_assert_eq(diana_init(), 1);
	snprintf(data_dir, sizeof(data_dir), "%s/session-data", env("DIANA_LAB_TMP"));
	/* the PACS answers DIMSE queries only from known AE titles */
	snprintf(body, sizeof(body), "{\"AET\":\"%s\",\"Host\":\"127.0.0.1\",\"Port\":%d}", CALLING, SCP_PORT);
	cJSON_Delete(rest("PACS", "PUT", "/modalities/session-test", body));
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(session, .init = setup, .fini = teardown, .timeout = 180);

/* --- find ------------------------------------------------------------------------ */

struct answers {
	int n;
	char vals[16][4][160];
	const char *keys[4];
};

static int collect(const diana_dataset *ds, void *ud)
{
	struct answers *a = ud;
	int k;
	if (a->n >= 16)
		return 0;
	for (k = 0; k < 4 && a->keys[k]; k++) {
		char *v = NULL;
		if (diana_dataset_get(ds, a->keys[k], &v) == 0) {
			snprintf(a->vals[a->n][k], sizeof(a->vals[0][0]), "%s", v);
			diana_free(v);
		} else {
			snprintf(a->vals[a->n][k], sizeof(a->vals[0][0]), "<absent>");
		}
	}
	a->n++;
	return 0;
}

static void check_study_find(const char *uri)
{
	struct study st;
	struct answers a = { 0, { { { 0 } } }, { "PatientID", "StudyInstanceUID", "NumberOfStudyRelatedInstances",
		                                       "PatientName" } };
	char acc[64];
	const char *keys[] = { acc, "PatientID", "PatientName", "NumberOfStudyRelatedInstances" };
	diana_session *s;
	size_t count = 0;

	manifest(CT_ACC, &st);
	snprintf(acc, sizeof(acc), "AccessionNumber=%s", CT_ACC);
	s = open_uri(uri);
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 4, collect, &a, &count), 0, "%s: %s", uri,
	             diana_error_message());
	cr_assert_eq(count, 1);
	cr_assert_eq(a.n, 1);
	cr_expect_str_eq(a.vals[0][0], st.pid);
	cr_expect_str_eq(a.vals[0][1], st.uid);
	cr_expect_eq(atoi(a.vals[0][2]), st.n, "NumberOfStudyRelatedInstances %s, want %d", a.vals[0][2], st.n);
	cr_expect_str_eq(a.vals[0][3], st.name);
	diana_session_free(s);
}

Test(session, find_study_own_store)
{
	check_study_find(pacs_uri());
}

Test(session, find_study_through_helper)
{
	check_study_find(helper_uri("?modality=pacs"));
}

Test(session, find_study_dimse)
{
	check_study_find(dicom_uri(NULL));
}

static void check_wildcards(const char *uri)
{
	struct answers a = { 0, { { { 0 } } }, { "AccessionNumber", NULL, NULL, NULL } };
	const char *keys[] = { "AccessionNumber=SESS-CT-*", "StudyDate" };
	diana_session *s = open_uri(uri);
	size_t count = 0;
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 2, collect, &a, &count), 0, "%s",
	             diana_error_message());
	cr_expect_eq(count, 2, "%s: %zu answers", uri, count);
	diana_session_free(s);
}

Test(session, find_wildcards)
{
	check_wildcards(pacs_uri());
	check_wildcards(helper_uri("?modality=pacs"));
	check_wildcards(dicom_uri(NULL));
}

static void check_lower_levels(const char *uri)
{
	struct study st;
	struct answers a = { 0, { { { 0 } } }, { "SeriesInstanceUID", "StudyInstanceUID", NULL, NULL } };
	char key[128];
	const char *keys[] = { key, "Modality" };
	diana_session *s = open_uri(uri);
	size_t count = 0;

	manifest(CT_ACC, &st);
	snprintf(key, sizeof(key), "StudyInstanceUID=%s", st.uid);
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_SERIES, keys, 2, collect, &a, &count), 0, "%s: %s", uri,
	             diana_error_message());
	cr_expect_eq(count, 1, "%s: %zu series", uri, count);
	cr_expect_str_eq(a.vals[0][1], st.uid);
	a.n = 0;
	count = 0;
	a.keys[0] = "SOPInstanceUID";
	a.keys[1] = "SeriesInstanceUID";
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_INSTANCE, keys, 1, collect, &a, &count), 0, "%s: %s", uri,
	             diana_error_message());
	cr_expect_eq(count, (size_t)st.n, "%s: %zu instances, want %d", uri, count, st.n);
	cr_expect_neq(strcmp(a.vals[0][1], "<absent>"), 0, "%s: the series UID comes back", uri);
	diana_session_free(s);
}

Test(session, find_series_and_instances)
{
	check_lower_levels(pacs_uri());
	check_lower_levels(dicom_uri(NULL));
}

Test(session, find_bad_keys)
{
	const char *bad[] = { "NoSuchKeyword=1" };
	struct answers a = { 0, { { { 0 } } }, { NULL, NULL, NULL, NULL } };
	diana_session *s = open_uri(pacs_uri());
	cr_expect_eq(diana_session_find(s, DIANA_LEVEL_STUDY, bad, 1, collect, &a, NULL), DIANA_EINVAL);
	cr_expect(strstr(diana_error_message(), "NoSuchKeyword") != NULL, "%s", diana_error_message());
	cr_expect_eq(diana_session_find(s, 7, NULL, 0, collect, &a, NULL), DIANA_EINVAL);
	diana_session_free(s);
}

/* --- retrieve -------------------------------------------------------------------- */

struct got {
	char *v[200];
	size_t n;
	uint64_t bytes;
	int stop_after;
	diana_session *cancel;
};

static int on_instance(const diana_instance *inst, void *ud)
{
	struct got *g = ud;
	diana_dataset *ds = NULL;
	char *sop = NULL;
	struct stat sb;

	cr_assert_eq(inst->version, DIANA_INSTANCE_VERSION);
	cr_assert_eq(inst->temporary, 1);
	cr_assert_eq(stat(inst->path, &sb), 0);
	cr_assert_eq((uint64_t)sb.st_size, inst->size);
	cr_assert_eq(sb.st_mode & 077, 0, "temporary instance files are private");
	/* the file is a whole DICOM object whose UID is the one announced */
	cr_assert_eq(diana_dataset_open(&ds, inst->path, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_get(ds, "SOPInstanceUID", &sop), 0);
	cr_expect_str_eq(sop, inst->sop_instance_uid);
	diana_dataset_free(ds);
	g->v[g->n++] = sop;
	g->bytes += inst->size;
	if (g->cancel && (int)g->n == g->stop_after)
		diana_session_cancel(g->cancel);
	else if (g->stop_after && (int)g->n == g->stop_after)
		return 1;
	return 0;
}

static char *got_joined(struct got *g)
{
	char *s = join_sorted(g->v, g->n);
	size_t i;
	for (i = 0; i < g->n; i++)
		diana_free(g->v[i]);
	g->n = 0;
	return s;
}

static void check_retrieve(const char *uri, const char *acc)
{
	struct study st;
	struct got g = { { 0 }, 0, 0, 0, NULL };
	diana_transfer_stats ts = DIANA_TRANSFER_STATS_INIT;
	diana_session *s = open_uri(uri);
	char *want, *have;
	size_t n = 0;

	manifest(acc, &st);
	cr_assert_eq(diana_session_retrieve(s, st.uid, NULL, NULL, on_instance, &g, &ts), 0, "%s: %s", uri,
	             diana_error_message());
	cr_expect_eq(ts.instances, (uint64_t)st.n, "%s: %llu instances", uri, (unsigned long long)ts.instances);
	cr_expect_eq(ts.bytes, g.bytes);
	cr_expect_eq(ts.failed, 0);
	want = server_sops("PACS", st.uid, &n);
	cr_assert_eq(n, (size_t)st.n);
	have = got_joined(&g);
	cr_expect_str_eq(have, want, "%s: the SOP Instance UIDs retrieved are the PACS's", uri);
	free(want);
	free(have);
	diana_session_free(s);
}

Test(session, retrieve_own_store)
{
	check_retrieve(pacs_uri(), CT_ACC);
}

Test(session, retrieve_through_helper)
{
	struct study st;
	size_t n = 0;
	char *h;
	manifest(CT2_ACC, &st);
	delete_study_from("HELPER", st.uid);
	check_retrieve(helper_uri("?modality=pacs"), CT2_ACC);
	/* it went through the helper, which now has the study (a cache) */
	h = server_sops("HELPER", st.uid, &n);
	cr_expect_eq(n, (size_t)st.n);
	free(h);
}

Test(session, retrieve_dimse_get)
{
	check_retrieve(dicom_uri(NULL), CT_ACC);
}

Test(session, retrieve_dimse_move)
{
	char extra[64];
	snprintf(extra, sizeof(extra), "&port=%d", SCP_PORT);
	check_retrieve(dicom_uri(extra), CT_ACC);
}

Test(session, retrieve_series_and_instance)
{
	struct study st;
	struct got g = { { 0 }, 0, 0, 0, NULL };
	struct answers a = { 0, { { { 0 } } }, { "SeriesInstanceUID", "SOPInstanceUID", NULL, NULL } };
	char key[128];
	const char *keys[] = { key };
	diana_session *s = open_uri(pacs_uri());
	char *have;
	size_t i;

	manifest(CT_ACC, &st);
	snprintf(key, sizeof(key), "StudyInstanceUID=%s", st.uid);
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_INSTANCE, keys, 1, collect, &a, NULL), 0);
	cr_assert_gt(a.n, 1);
	cr_assert_eq(diana_session_retrieve(s, st.uid, a.vals[0][0], NULL, on_instance, &g, NULL), 0, "%s",
	             diana_error_message());
	cr_expect_eq(g.n, (size_t)st.n); /* one series per synthetic CT */
	free(got_joined(&g));
	for (i = 0; i < 2; i++) {
		diana_session *t = i ? open_uri(dicom_uri(NULL)) : s;
		cr_assert_eq(diana_session_retrieve(t, st.uid, a.vals[1][0], a.vals[1][1], on_instance, &g, NULL), 0,
		             "%s", diana_error_message());
		cr_expect_eq(g.n, 1);
		have = got_joined(&g);
		cr_expect(strncmp(have, a.vals[1][1], strlen(a.vals[1][1])) == 0);
		free(have);
		if (i)
			diana_session_free(t);
	}
	diana_session_free(s);
}

Test(session, retrieve_unknown_study)
{
	struct got g = { { 0 }, 0, 0, 0, NULL };
	const char *uris[3];
	int i;
	uris[0] = pacs_uri();
	uris[1] = helper_uri("?modality=pacs");
	uris[2] = dicom_uri(NULL);
	for (i = 0; i < 3; i++) {
		diana_session *s = open_uri(uris[i]);
		int rc = diana_session_retrieve(s, "1.2.3.4.5.6.7.8.9", NULL, NULL, on_instance, &g, NULL);
		cr_expect_eq(rc, DIANA_ENOTFOUND, "%s: %d %s", uris[i], rc, diana_error_message());
		cr_expect_eq(g.n, 0);
		diana_session_free(s);
	}
}

Test(session, retrieve_stopped_by_callback_and_cancel)
{
	struct study st;
	struct got g = { { 0 }, 0, 0, 2, NULL };
	const char *uris[2];
	int i;
	manifest(CT_ACC, &st);
	uris[0] = pacs_uri();
	uris[1] = dicom_uri(NULL);
	for (i = 0; i < 2; i++) {
		diana_session *s = open_uri(uris[i]);
		g.cancel = NULL;
		cr_expect_eq(diana_session_retrieve(s, st.uid, NULL, NULL, on_instance, &g, NULL), DIANA_EUSER,
		             "%s: %s", uris[i], diana_error_message());
		cr_expect_eq(g.n, 2);
		free(got_joined(&g));
		g.cancel = s;
		cr_expect_eq(diana_session_retrieve(s, st.uid, NULL, NULL, on_instance, &g, NULL), DIANA_ECANCELLED,
		             "%s: %s", uris[i], diana_error_message());
		cr_expect_lt(g.n, (size_t)st.n);
		free(got_joined(&g));
		/* the flag is cleared: the session works again */
		cr_expect_eq(diana_session_echo(s), 0, "%s", diana_error_message());
		diana_session_free(s);
	}
}

static size_t count_files(const char *dir)
{
	char cmd[700], line[64];
	FILE *p;
	snprintf(cmd, sizeof(cmd), "find '%s' -type f | wc -l", dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(line, sizeof(line), p));
	pclose(p);
	return (size_t)atol(line);
}

Test(session, retrieve_to_folder_twice)
{
	struct study st;
	diana_transfer_stats ts = DIANA_TRANSFER_STATS_INIT;
	char dir[600], one[800];
	diana_session *s = open_uri(pacs_uri());
	struct stat sb;

	manifest(CT_ACC, &st);
	snprintf(dir, sizeof(dir), "%s/session-get", env("DIANA_LAB_TMP"));
	cr_assert_eq(diana_session_retrieve_to_folder(s, st.uid, NULL, NULL, dir, &ts), 0, "%s",
	             diana_error_message());
	cr_expect_eq(count_files(dir), (size_t)st.n);
	cr_assert_eq(diana_session_retrieve_to_folder(s, st.uid, NULL, NULL, dir, &ts), 0);
	cr_expect_eq(count_files(dir), (size_t)st.n, "a rerun replaces, never duplicates");
	snprintf(one, sizeof(one), "%s/%s", dir, st.uid);
	cr_expect_eq(stat(one, &sb), 0, "DIR/<StudyInstanceUID>/ exists");
	diana_session_free(s);
}

/* --- store ----------------------------------------------------------------------- */

static size_t list_files(const char *dir, char **out, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	cr_assert_not_null(d, "%s", dir);
	while ((e = readdir(d)) != NULL && n < max) {
		char p[1200];
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		out[n++] = strdup(p);
	}
	closedir(d);
	return n;
}

static int store_status[16];
static int on_store(size_t i, const char *path, int status, void *ud)
{
	(void)path;
	(void)ud;
	if (i < 16)
		store_status[i] = status;
	return 0;
}

static void check_store(const char *uri, const char *find_uri, int expect_warning_ok)
{
	char dir[600], *files[8], bad[700];
	const char *paths[9];
	diana_transfer_stats ts = DIANA_TRANSFER_STATS_INIT;
	struct answers a = { 0, { { { 0 } } }, { "AccessionNumber", NULL, NULL, NULL } };
	const char *keys[] = { "AccessionNumber=SSTORE-CT-001" };
	diana_session *s;
	size_t n, i, count = 0;
	FILE *f;
	int rc;

	(void)expect_warning_ok;
	snprintf(dir, sizeof(dir), "%s/session-store/SSTORE-CT-001", env("DIANA_LAB_TMP"));
	n = list_files(dir, files, 8);
	cr_assert_eq(n, 3);
	snprintf(bad, sizeof(bad), "%s/not-dicom.dcm", env("DIANA_LAB_TMP"));
	f = fopen(bad, "w");
	fputs("this is not DICOM\n", f);
	fclose(f);
	for (i = 0; i < n; i++)
		paths[i] = files[i];
	paths[n] = bad;
	memset(store_status, 0, sizeof(store_status));
	s = open_uri(uri);
	rc = diana_session_store(s, paths, n + 1, on_store, NULL, &ts);
	cr_expect_lt(rc, 0, "%s: a bad file makes the call fail", uri);
	cr_expect_eq(ts.instances, n, "%s: %llu stored", uri, (unsigned long long)ts.instances);
	cr_expect_eq(ts.failed, 1);
	for (i = 0; i < n; i++)
		cr_expect_eq(store_status[i], 0, "%s: file %zu status %d", uri, i, store_status[i]);
	cr_expect_lt(store_status[n], 0);
	diana_session_free(s);
	s = open_uri(find_uri);
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 1, collect, &a, &count), 0, "%s",
	             diana_error_message());
	cr_expect_eq(count, 1, "%s: the stored study is found", find_uri);
	diana_session_free(s);
	for (i = 0; i < n; i++)
		free(files[i]);
}

Test(session, store_orthanc_and_dimse)
{
	char *h;
	size_t n = 0;
	cJSON *look;
	/* into the helper's own store */
	check_store(helper_uri(NULL), helper_uri(NULL), 1);
	/* through the helper to the PACS (C-STORE by Orthanc) */
	check_store(helper_uri("?modality=pacs"), pacs_uri(), 1);
	look = rest("PACS", "POST", "/tools/find", "{\"Level\":\"Study\",\"Query\":{\"AccessionNumber\":\"SSTORE-CT-001\"}}");
	cr_assert_eq(cJSON_GetArraySize(look), 1);
	cJSON_Delete(look);
	/* and directly by C-STORE (after removing it from the PACS) */
	look = rest("PACS", "POST", "/tools/find",
	            "{\"Level\":\"Study\",\"Expand\":true,\"Query\":{\"AccessionNumber\":\"SSTORE-CT-001\"}}");
	{
		const char *uid = cJSON_GetObjectItem(cJSON_GetObjectItem(cJSON_GetArrayItem(look, 0), "MainDicomTags"),
		                                      "StudyInstanceUID")
		                      ->valuestring;
		char u[80];
		snprintf(u, sizeof(u), "%s", uid);
		cJSON_Delete(look);
		delete_study_from("PACS", u);
		check_store(dicom_uri(NULL), pacs_uri(), 0);
		h = server_sops("PACS", u, &n);
		cr_expect_eq(n, 3);
		free(h);
	}
}

/* --- echo, changes, errors -------------------------------------------------------- */

Test(session, echo_all_kinds)
{
	const char *uris[3];
	int i;
	uris[0] = pacs_uri();
	uris[1] = helper_uri("?modality=pacs");
	uris[2] = dicom_uri(NULL);
	for (i = 0; i < 3; i++) {
		diana_session *s = open_uri(uris[i]);
		cr_expect_eq(diana_session_echo(s), 0, "%s: %s", uris[i], diana_error_message());
		/* no credentials in the URI shown */
		cr_expect_null(strstr(diana_session_uri(s), "secret"), "%s", diana_session_uri(s));
		diana_session_free(s);
	}
}

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

Test(session, errors_are_clear_and_quick)
{
	char uri[512];
	diana_session *s;
	int64_t t0;
	int rc;

	/* wrong password */
	snprintf(uri, sizeof(uri), "orthanc+http://%s:wrong-password@%s", env("DIANA_LAB_PACS_USER"),
	         env("DIANA_LAB_PACS_URL") + 7);
	s = open_uri(uri);
	cr_expect_eq(diana_session_echo(s), DIANA_EAUTH, "%s", diana_error_message());
	cr_expect_null(strstr(diana_error_message(), "wrong-password"));
	diana_session_free(s);
	/* nothing listens */
	s = open_uri("orthanc+http://u:p@127.0.0.1:1");
	t0 = now_ms();
	cr_expect_eq(diana_session_echo(s), DIANA_ECONNECT, "%s", diana_error_message());
	cr_expect_lt(now_ms() - t0, 10000);
	diana_session_free(s);
	s = open_uri("dicom://NOBODY@127.0.0.1:1");
	cr_expect_eq(diana_session_echo(s), DIANA_ECONNECT, "%s", diana_error_message());
	diana_session_free(s);
	/* an unknown modality on the helper */
	s = open_uri(helper_uri("?modality=nope"));
	cr_expect_eq(diana_session_echo(s), DIANA_ENOTFOUND, "%s", diana_error_message());
	diana_session_free(s);
	/* a called AE title the PACS does not answer to */
	snprintf(uri, sizeof(uri), "dicom://WRONG_AET@%s:%s?aet=%s", env("DIANA_LAB_PACS_HOST"),
	         env("DIANA_LAB_PACS_DICOM_PORT"), CALLING);
	s = open_uri(uri);
	rc = diana_session_echo(s);
	cr_expect_eq(rc, DIANA_EAUTH, "%d %s", rc, diana_error_message());
	diana_session_free(s);
	/* malformed URIs */
	cr_expect_eq(diana_session_open(&s, "orthanc+http://host:99999", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_session_open(&s, "dicom://127.0.0.1:104", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_session_open(&s, "gopher://x:1", NULL), DIANA_EUNSUPPORTED);
	cr_expect_eq(diana_session_open(&s, "orthanc+http://h:1?modalty=x", NULL), DIANA_EINVAL);
	cr_expect(strstr(diana_error_message(), "modalty") != NULL);
}

struct changes {
	int n;
	int new_instances;
	int64_t prev;
	int ordered;
};

static int on_change(const diana_change *c, void *ud)
{
	struct changes *ch = ud;
	if (c->seq <= ch->prev)
		ch->ordered = 0;
	ch->prev = c->seq;
	ch->n++;
	if (strcmp(c->change_type, "NewInstance") == 0 && strcmp(c->resource_type, "Instance") == 0 &&
	    strncmp(c->path, "/instances/", 11) == 0)
		ch->new_instances++;
	return 0;
}

Test(session, changes_feed)
{
	struct changes ch = { 0, 0, 0, 1 };
	diana_session *s = open_uri(pacs_uri());
	int64_t last = 0, last2 = 0;
	int done = 0;
	struct study st;

	manifest(CT_ACC, &st);
	cr_assert_eq(diana_session_changes(s, -1, 0, NULL, NULL, &last, &done), 0, "%s", diana_error_message());
	cr_expect_gt(last, 0, "the seeded PACS has changes");
	/* from the start: at least one NewInstance per seeded instance, in order, paging */
	cr_assert_eq(diana_session_changes(s, 0, 0, on_change, &ch, &last2, &done), 0, "%s", diana_error_message());
	cr_expect_eq(done, 1);
	cr_expect(ch.ordered);
	cr_expect_geq(ch.new_instances, st.n);
	cr_expect_geq(last2, last);
	/* a limit stops early and resumes where it stopped: nothing repeated */
	{
		struct changes a = { 0, 0, 0, 1 }, b = { 0, 0, 0, 1 };
		int64_t l1 = 0, l2 = 0;
		cr_assert_eq(diana_session_changes(s, 0, 7, on_change, &a, &l1, &done), 0);
		cr_expect_eq(a.n, 7);
		cr_expect_eq(done, 0);
		cr_assert_eq(diana_session_changes(s, l1, 0, on_change, &b, &l2, &done), 0);
		cr_expect_eq(a.n + b.n, ch.n);
		cr_expect_gt(b.prev, a.prev);
	}
	diana_session_free(s);
	/* other kinds have no change log */
	s = open_uri(dicom_uri(NULL));
	cr_expect_eq(diana_session_changes(s, 0, 0, on_change, &ch, &last, NULL), DIANA_EUNSUPPORTED);
	diana_session_free(s);
}
