/*
 * Lab test: libdiana's DIMSE layer (lib/net/dimse.h, DCMTK) against the
 * real Orthanc "PACS" of tests/lab (run through with-lab.sh). Before the
 * tests, synthetic studies are generated and uploaded (synth.py, seed.sh)
 * and our AE title DIANA_T is registered in the PACS at runtime (REST
 * PUT /modalities/NAME): the PACS answers C-FIND/C-GET/C-MOVE only from
 * AE titles it knows, and resolves move destinations through that table.
 *
 * Checked: echo (one association for several operations), find at every
 * level in both models (values equal to the seeded ones), get and move of
 * a study (SOP Instance UIDs equal to the seeded ones, datasets byte
 * identical to the uploaded files), store then find, cancellation (C-CANCEL
 * by callback and by diana__dimse_cancel), and the error mapping: wrong
 * called AE title, unknown calling AE title, closed port, silent peer,
 * unknown move destination, unreadable files. No PHI in any error message;
 * nothing printed on stderr; SIGPIPE disposition untouched.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <diana/diana.h>

#include "net/dimse.h"
#include "net/net.h"

#define CALLING "DIANA_T"
#define CT_ACC "DIANA-CT-001"
#define CT_SLICES 12

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set: run through tests/lab/with-lab.sh", name);
	return v;
}

/* --- the seeded data (manifest.csv of synth.py) ------------------------------ */

struct study {
	char acc[32], pid[64], uid[80], name[128], charset[32];
	int n;
};

static char data_dir[512];

static int read_manifest(const char *acc, struct study *s)
{
	char path[600], line[1024];
	FILE *f;
	snprintf(path, sizeof(path), "%s/manifest.csv", data_dir);
	f = fopen(path, "r");
	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f)) {
		/* accession,patient_id,study_uid,instances,modality,patient_name,study_date,charset,bytes */
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
		snprintf(s->charset, sizeof(s->charset), "%s", fld[7]);
		fclose(f);
		return 0;
	}
	fclose(f);
	return -1;
}

static diana__http *pacs_rest(void)
{
	diana__http_options o = DIANA__HTTP_OPTIONS_INIT;
	diana__http *h = NULL;
	o.base_url = env("DIANA_LAB_PACS_URL");
	o.username = env("DIANA_LAB_PACS_USER");
	o.password = env("DIANA_LAB_PACS_PASSWORD");
	o.timeout_ms = 30000;
	cr_assert_eq(diana__http_new(&h, &o), 0, "%s", diana_error_message());
	return h;
}

/* PUT /modalities/NAME: the PACS learns AET@127.0.0.1:port */
static void register_modality(const char *name, const char *aet, int port)
{
	diana__http *h = pacs_rest();
	diana__http_request q = { 0 };
	diana__http_response r;
	char path[128], body[256];
	snprintf(path, sizeof(path), "/modalities/%s", name);
	snprintf(body, sizeof(body), "{\"AET\":\"%s\",\"Host\":\"127.0.0.1\",\"Port\":%d}", aet, port);
	q.method = "PUT";
	q.path = path;
	q.content_type = "application/json";
	q.body = body;
	q.body_len = strlen(body);
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "PUT %s: %s", path, diana_error_message());
	diana__http_response_dispose(&r);
	diana__http_free(h);
}

/* Once, before all tests (runner process): data, upload, our AE title. */
ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char cmd[2048];
	const char *tmp = getenv("DIANA_LAB_TMP"), *tools = getenv("DIANA_LAB_TOOLS"),
	           *lab = getenv("DIANA_LAB_DIR"), *py = getenv("PYTHON");
	(void)set;
	if (!tmp || !tools || !lab)
		return; /* the tests report the missing environment */
	snprintf(data_dir, sizeof(data_dir), "%s/dimse-data", tmp);
	snprintf(cmd, sizeof(cmd),
	         "%s '%s/synth.py' --out '%s' --ct 2 --ct-slices %d --xr 2 --xr-size 256x256 --quiet && "
	         "'%s/seed.sh' '%s' >/dev/null && "
	         "%s '%s/synth.py' --out '%s/store' --ct 1 --ct-slices 3 --prefix DSTORE --quiet",
	         py ? py : "/usr/bin/python3", tools, data_dir, CT_SLICES, lab, data_dir,
	         py ? py : "/usr/bin/python3", tools, tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "dimse lab: seeding failed: %s\n", cmd);
}

static void setup(void)
{
	const char *tmp = env("DIANA_LAB_TMP");
	cr_assert_eq(diana_init(), 1);
	snprintf(data_dir, sizeof(data_dir), "%s/dimse-data", tmp);
	register_modality("dimse-test", CALLING, 1); /* port fixed by the move tests */
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(dimse, .init = setup, .fini = teardown, .timeout = 120);

static diana__dimse_options pacs_opts(void)
{
	diana__dimse_options o = DIANA__DIMSE_OPTIONS_INIT;
	o.host = env("DIANA_LAB_PACS_HOST");
	o.port = atoi(env("DIANA_LAB_PACS_DICOM_PORT"));
	o.called_aet = env("DIANA_LAB_PACS_AET");
	o.calling_aet = CALLING;
	o.connect_timeout_ms = 5000;
	o.acse_timeout_ms = 10000;
	o.dimse_timeout_ms = 30000;
	return o;
}

static diana__dimse *pacs(void)
{
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	cr_assert_eq(diana__dimse_new(&d, &o), 0, "%s", diana_error_message());
	return d;
}

/* --- log capture --------------------------------------------------------------- */

struct logcap {
	int associations;
	int dcmtk;
	char last[512];
};
static struct logcap cap;

static void on_log(int level, const char *domain, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	if (strcmp(domain, "dimse") == 0 && strncmp(msg, "association with", 16) == 0 &&
	    strstr(msg, "accepted"))
		cap.associations++;
	if (strcmp(domain, "dcmtk") == 0)
		cap.dcmtk++;
	snprintf(cap.last, sizeof(cap.last), "[%s] %s", domain, msg);
}

static void capture_logs(void)
{
	memset(&cap, 0, sizeof(cap));
	diana_log_set_handler(on_log, NULL);
	diana_log_set_level(DIANA_LOG_DEBUG);
}

/* --- helpers --------------------------------------------------------------------- */

static char *get(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	int rc = diana_dataset_get(ds, key, &v);
	cr_assert_eq(rc, 0, "%s: %s", key, diana_error_message());
	return v;
}

static void assert_value(const diana_dataset *ds, const char *key, const char *want)
{
	char *v = get(ds, key);
	cr_assert_str_eq(v, want, "%s", key);
	diana_free(v);
}

struct answers {
	int n;
	int stop_after;
	char values[64][80]; /* one key's value per answer */
	const char *key;
	diana_dataset *first; /* a copy (JSON round trip) of the first answer */
};

static int collect(const diana_dataset *ds, void *ud)
{
	struct answers *a = ud;
	if (a->key && a->n < 64) {
		char *v = get(ds, a->key);
		snprintf(a->values[a->n], sizeof(a->values[0]), "%s", v);
		diana_free(v);
	}
	if (a->n == 0) {
		char *json = NULL;
		cr_assert_eq(diana_dataset_to_json(ds, 0, &json), 0, "%s", diana_error_message());
		cr_assert_eq(diana_dataset_from_json(&a->first, json, 0), 0, "%s", diana_error_message());
		diana_free(json);
	}
	a->n++;
	return a->stop_after && a->n >= a->stop_after ? 1 : 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* SOP Instance UIDs of the seeded files of one accession, sorted */
static int seeded_uids(const char *acc, char uids[][80], int max)
{
	char dir[700], path[1000];
	struct dirent *e;
	DIR *dp;
	int n = 0;
	snprintf(dir, sizeof(dir), "%s/%s", data_dir, acc);
	dp = opendir(dir);
	cr_assert_not_null(dp, "%s", dir);
	while ((e = readdir(dp)) && n < max) {
		diana_dataset *ds = NULL;
		char *v;
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cr_assert_eq(diana_dataset_open(&ds, path, NULL), 0, "%s", diana_error_message());
		v = get(ds, "SOPInstanceUID");
		snprintf(uids[n++], 80, "%s", v);
		diana_free(v);
		diana_dataset_free(ds);
	}
	closedir(dp);
	qsort(uids, (size_t)n, 80, cmp_str);
	return n;
}

static char *seeded_file(const char *acc, const char *sop_uid)
{
	char dir[700], path[1000];
	struct dirent *e;
	DIR *dp;
	char *found = NULL;
	snprintf(dir, sizeof(dir), "%s/%s", data_dir, acc);
	dp = opendir(dir);
	cr_assert_not_null(dp);
	while (!found && (e = readdir(dp))) {
		diana_dataset *ds = NULL;
		char *v;
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cr_assert_eq(diana_dataset_open(&ds, path, NULL), 0);
		v = get(ds, "SOPInstanceUID");
		if (strcmp(v, sop_uid) == 0)
			found = strdup(path);
		diana_free(v);
		diana_dataset_free(ds);
	}
	closedir(dp);
	return found;
}

/* Offset of the dataset after the file meta of a Part 10 file (needs (0002,0000)). */
static size_t dataset_offset(const uint8_t *b, size_t len)
{
	uint32_t gl;
	cr_assert_gt(len, 144u);
	cr_assert(memcmp(b + 128, "DICM", 4) == 0, "no DICM");
	cr_assert(b[132] == 2 && b[133] == 0 && b[134] == 0 && b[135] == 0, "no (0002,0000) first");
	cr_assert(b[136] == 'U' && b[137] == 'L');
	memcpy(&gl, b + 140, 4);
	return 144 + (size_t)gl;
}

struct received {
	int n;
	int stop_after;
	int cancel_after;
	diana__dimse *d;
	char uids[64][80];
	char paths[64][600];
	int identical;
	int kept; /* rename the first instance into keep_dir */
	char keep_dir[600];
	const char *acc;
	char ts[80];
	char calling[20];
};

static int on_instance(const diana__dimse_instance *in, void *ud)
{
	struct received *r = ud;
	uint8_t *a = NULL, *b = NULL;
	size_t la = 0, lb = 0, oa, ob;
	char *orig;
	struct stat st;

	cr_assert_lt(r->n, 64);
	cr_assert_eq(stat(in->path, &st), 0, "%s missing", in->path);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", st.st_mode & 0777);
	cr_assert_eq((uint64_t)st.st_size, in->size);
	snprintf(r->uids[r->n], 80, "%s", in->sop_instance_uid);
	snprintf(r->paths[r->n], 600, "%s", in->path);
	snprintf(r->ts, sizeof(r->ts), "%s", in->transfer_syntax_uid);
	snprintf(r->calling, sizeof(r->calling), "%s", in->calling_aet);
	cr_assert_str_eq(in->sop_class_uid, "1.2.840.10008.5.1.4.1.1.2");

	/* the dataset as uploaded, byte for byte (Orthanc keeps the file) */
	if (r->acc) {
		orig = seeded_file(r->acc, in->sop_instance_uid);
		cr_assert_not_null(orig, "received an instance that was not seeded");
		cr_assert_eq(diana__file_read(orig, 0, &a, &la), 0);
		cr_assert_eq(diana__file_read(in->path, 0, &b, &lb), 0);
		oa = dataset_offset(a, la);
		ob = dataset_offset(b, lb);
		if (la - oa == lb - ob && memcmp(a + oa, b + ob, la - oa) == 0)
			r->identical++;
		free(a);
		free(b);
		free(orig);
	}
	if (r->kept == 0 && r->keep_dir[0]) {
		char dst[700];
		snprintf(dst, sizeof(dst), "%s/kept.dcm", r->keep_dir);
		cr_assert_eq(rename(in->path, dst), 0);
		r->kept = 1;
	}
	r->n++;
	if (r->cancel_after && r->n >= r->cancel_after)
		diana__dimse_cancel(r->d);
	return r->stop_after && r->n >= r->stop_after ? 1 : 0;
}

static void assert_same_uids(struct received *r, const char *acc, int want)
{
	char seeded[64][80];
	int n = seeded_uids(acc, seeded, 64);
	cr_assert_eq(n, want);
	cr_assert_eq(r->n, want);
	qsort(r->uids, (size_t)r->n, 80, cmp_str);
	for (int i = 0; i < n; i++)
		cr_assert_str_eq(r->uids[i], seeded[i]);
}

static void assert_no_phi(const char *msg, const struct study *s)
{
	cr_assert(strstr(msg, s->acc) == NULL, "accession in: %s", msg);
	cr_assert(strstr(msg, s->pid) == NULL, "patient ID in: %s", msg);
	cr_assert(strstr(msg, s->uid) == NULL, "study UID in: %s", msg);
}

static struct study ct(void)
{
	struct study s;
	memset(&s, 0, sizeof(s));
	cr_assert_eq(read_manifest(CT_ACC, &s), 0, "no %s in %s/manifest.csv (seeding failed?)", CT_ACC,
	             data_dir);
	cr_assert_eq(s.n, CT_SLICES);
	return s;
}

/* --- tests ------------------------------------------------------------------------- */

Test(dimse, echo_keeps_one_association)
{
	diana__dimse *d = pacs();
	struct sigaction sa;
	capture_logs();
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	cr_assert_eq(cap.associations, 1, "one association expected, %d opened", cap.associations);
	/* closing then echoing again opens a new one */
	cr_assert_eq(diana__dimse_close(d), 0);
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	cr_assert_eq(cap.associations, 2);
	diana__dimse_free(d);
	/* DCMTK's network set-up must not have left SIGPIPE ignored */
	cr_assert_eq(sigaction(SIGPIPE, NULL, &sa), 0);
	cr_assert(sa.sa_handler == SIG_DFL, "SIGPIPE disposition changed");
	diana_log_set_handler(NULL, NULL);
}

Test(dimse, find_study_level_values_match_the_seed)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
	struct answers a = { 0 };
	char json[512], n[16];
	size_t count = 99;
	snprintf(json, sizeof(json),
	         "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"%s\"]},\"00100010\":{\"vr\":\"PN\"},"
	         "\"00100020\":{\"vr\":\"LO\"},\"0020000D\":{\"vr\":\"UI\"},\"00080061\":{\"vr\":\"CS\"},"
	         "\"00201208\":{\"vr\":\"IS\"}}",
	         s.acc);
	q.keys_json = json;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, &count), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	cr_assert_eq(count, 1);
	assert_value(a.first, "AccessionNumber", s.acc);
	assert_value(a.first, "PatientID", s.pid);
	assert_value(a.first, "StudyInstanceUID", s.uid);
	assert_value(a.first, "QueryRetrieveLevel", "STUDY");
	assert_value(a.first, "ModalitiesInStudy", "CT");
	snprintf(n, sizeof(n), "%d", s.n);
	assert_value(a.first, "NumberOfStudyRelatedInstances", n);
	{
		char *name = get(a.first, "PatientName");
		cr_assert_gt(strlen(name), 0);
		if (strcmp(s.charset, "ISO_IR 192") != 0) /* Latin-1 PACS: see tests/lab/README.md */
			cr_assert_str_eq(name, s.name);
		diana_free(name);
	}
	diana_dataset_free(a.first);
	diana__dimse_free(d);
}

Test(dimse, find_keys_as_dataset_and_no_match)
{
	diana__dimse *d = pacs();
	diana_dataset *keys = NULL;
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
	struct answers a = { 0 };
	size_t count = 99;
	const char *json = "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"NO-SUCH-ACCESSION\"]},"
	                   "\"0020000D\":{\"vr\":\"UI\"}}";
	cr_assert_eq(diana_dataset_from_json(&keys, json, 0), 0);
	q.keys = keys;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, &count), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 0);
	cr_assert_eq(count, 0);
	/* wildcard over the seeded XR studies, keys as a dataset */
	diana_dataset_free(keys);
	json = "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"DIANA-XR-*\"]},\"0020000D\":{\"vr\":\"UI\"}}";
	cr_assert_eq(diana_dataset_from_json(&keys, json, 0), 0);
	q.keys = keys;
	a.key = "AccessionNumber";
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, &count), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 2);
	qsort(a.values, 2, sizeof(a.values[0]), cmp_str);
	cr_assert_str_eq(a.values[0], "DIANA-XR-001");
	cr_assert_str_eq(a.values[1], "DIANA-XR-002");
	diana_dataset_free(a.first);
	diana_dataset_free(keys);
	diana__dimse_free(d);
}

Test(dimse, find_series_and_image_levels)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_SERIES, NULL, NULL };
	struct answers a = { 0 }, img = { 0 };
	char json[1024], n[16], *series;
	char seeded[64][80];

	snprintf(json, sizeof(json),
	         "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},\"0020000E\":{\"vr\":\"UI\"},"
	         "\"00080060\":{\"vr\":\"CS\"},\"00201209\":{\"vr\":\"IS\"}}",
	         s.uid);
	q.keys_json = json;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	assert_value(a.first, "QueryRetrieveLevel", "SERIES");
	assert_value(a.first, "Modality", "CT");
	snprintf(n, sizeof(n), "%d", s.n);
	assert_value(a.first, "NumberOfSeriesRelatedInstances", n);
	series = get(a.first, "SeriesInstanceUID");
	cr_assert_gt(strlen(series), 10);

	/* IMAGE level: every SOP Instance UID of the study, as seeded */
	snprintf(json, sizeof(json),
	         "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},"
	         "\"00080018\":{\"vr\":\"UI\"},\"00200013\":{\"vr\":\"IS\"}}",
	         s.uid, series);
	q.level = DIANA__DIMSE_LEVEL_IMAGE;
	q.keys_json = json;
	img.key = "SOPInstanceUID";
	cr_assert_eq(diana__dimse_find(d, &q, collect, &img, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(img.n, s.n);
	assert_value(img.first, "QueryRetrieveLevel", "IMAGE");
	qsort(img.values, (size_t)img.n, sizeof(img.values[0]), cmp_str);
	cr_assert_eq(seeded_uids(s.acc, seeded, 64), s.n);
	for (int i = 0; i < s.n; i++)
		cr_assert_str_eq(img.values[i], seeded[i]);
	diana_free(series);
	diana_dataset_free(a.first);
	diana_dataset_free(img.first);
	diana__dimse_free(d);
}

Test(dimse, find_patient_root)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	diana__dimse_query q = { DIANA__DIMSE_PATIENT_ROOT, DIANA__DIMSE_LEVEL_PATIENT, NULL, NULL };
	struct answers a = { 0 }, st = { 0 };
	char json[512];
	snprintf(json, sizeof(json),
	         "{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"%s\"]},\"00100010\":{\"vr\":\"PN\"},"
	         "\"00100030\":{\"vr\":\"DA\"}}",
	         s.pid);
	q.keys_json = json;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	assert_value(a.first, "QueryRetrieveLevel", "PATIENT");
	assert_value(a.first, "PatientID", s.pid);
	/* STUDY level under the patient */
	q.level = DIANA__DIMSE_LEVEL_STUDY;
	snprintf(json, sizeof(json),
	         "{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"%s\"]},\"0020000D\":{\"vr\":\"UI\"},"
	         "\"00080050\":{\"vr\":\"SH\"}}",
	         s.pid);
	st.key = "StudyInstanceUID";
	cr_assert_eq(diana__dimse_find(d, &q, collect, &st, NULL), 0, "%s", diana_error_message());
	cr_assert_geq(st.n, 1);
	{
		int found = 0;
		for (int i = 0; i < st.n; i++)
			found |= strcmp(st.values[i], s.uid) == 0;
		cr_assert(found, "study not listed under its patient");
	}
	/* the study root has no PATIENT level */
	q.root = DIANA__DIMSE_STUDY_ROOT;
	q.level = DIANA__DIMSE_LEVEL_PATIENT;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &st, NULL), DIANA_EINVAL);
	diana_dataset_free(a.first);
	diana_dataset_free(st.first);
	diana__dimse_free(d);
}

Test(dimse, find_stopped_by_callback_sends_cancel)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_IMAGE, NULL, NULL };
	struct answers a = { 0 };
	char json[512];
	size_t count = 0;
	snprintf(json, sizeof(json),
	         "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},\"00080018\":{\"vr\":\"UI\"}}", s.uid);
	q.keys_json = json;
	a.stop_after = 2;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, &count), DIANA_EUSER);
	cr_assert_eq(a.n, 2, "answers delivered after the callback said stop");
	cr_assert_eq(count, 2);
	/* the association survived the C-CANCEL */
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	a.stop_after = 0;
	a.n = 0;
	diana_dataset_free(a.first);
	a.first = NULL;
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, &count), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, s.n);
	diana_dataset_free(a.first);
	diana__dimse_free(d);
}

static diana__dimse_query study_query(const struct study *s, char *json, size_t len)
{
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
	snprintf(json, len, "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]}}", s->uid);
	q.keys_json = json;
	return q;
}

Test(dimse, get_study_instances_equal_the_seed)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	char json[256];
	diana__dimse_query q = study_query(&s, json, sizeof(json));
	diana__dimse_result res;
	struct received *r = calloc(1, sizeof(*r));
	char keep[] = "/tmp/diana-dimse-keep-XXXXXX", kept[700];
	struct stat st;

	cr_assert_not_null(mkdtemp(keep));
	snprintf(r->keep_dir, sizeof(r->keep_dir), "%s", keep);
	r->acc = s.acc;
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), 0, "%s", diana_error_message());
	assert_same_uids(r, s.acc, s.n);
	cr_assert_eq(r->identical, s.n, "%d of %d datasets differ from the uploaded files",
	             s.n - r->identical, s.n);
	cr_assert_eq(res.completed, (uint32_t)s.n);
	cr_assert_eq(res.failed, 0);
	cr_assert_eq(res.received, (uint32_t)s.n);
	cr_assert_eq(res.status, 0);
	cr_assert_str_eq(r->ts, "1.2.840.10008.1.2.1", "transcoded to %s", r->ts);
	/* temporary files are gone, except the one the callback renamed */
	for (int i = 0; i < r->n; i++)
		cr_assert_neq(access(r->paths[i], F_OK), 0, "%s left behind", r->paths[i]);
	snprintf(kept, sizeof(kept), "%s/kept.dcm", keep);
	cr_assert_eq(stat(kept, &st), 0);
	cr_assert_gt(st.st_size, 500000);
	unlink(kept);
	rmdir(keep);

	/* the same association serves a second C-GET and a C-FIND */
	memset(r, 0, sizeof(*r));
	capture_logs();
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), 0, "%s", diana_error_message());
	cr_assert_eq(r->n, s.n);
	cr_assert_eq(diana__dimse_echo(d), 0);
	cr_assert_eq(cap.associations, 0, "a new association was opened");
	diana_log_set_handler(NULL, NULL);
	free(r);
	diana__dimse_free(d);
}

Test(dimse, get_series_and_image_levels)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	struct received *r = calloc(1, sizeof(*r));
	char json[512], seeded[64][80];
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_IMAGE, NULL, NULL };
	diana__dimse_result res;
	struct answers a = { 0 };

	/* the series UID, then one image */
	snprintf(json, sizeof(json),
	         "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},\"0020000E\":{\"vr\":\"UI\"}}", s.uid);
	q.level = DIANA__DIMSE_LEVEL_SERIES;
	q.keys_json = json;
	a.key = "SeriesInstanceUID";
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	snprintf(json, sizeof(json),
	         "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"%s\"]}}",
	         s.uid, a.values[0]);
	r->acc = s.acc;
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), 0, "%s", diana_error_message());
	cr_assert_eq(r->n, s.n);
	cr_assert_eq(seeded_uids(s.acc, seeded, 64), s.n);
	snprintf(json, sizeof(json),
	         "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},"
	         "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"%s\"]}}",
	         s.uid, a.values[0], seeded[3]);
	q.level = DIANA__DIMSE_LEVEL_IMAGE;
	memset(r, 0, sizeof(*r));
	r->acc = s.acc;
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), 0, "%s", diana_error_message());
	cr_assert_eq(r->n, 1);
	cr_assert_str_eq(r->uids[0], seeded[3]);
	cr_assert_eq(r->identical, 1);
	diana_dataset_free(a.first);
	free(r);
	diana__dimse_free(d);
}

Test(dimse, get_stopped_by_callback_and_by_cancel)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	char json[256];
	diana__dimse_query q = study_query(&s, json, sizeof(json));
	diana__dimse_result res;
	struct received *r = calloc(1, sizeof(*r));

	r->stop_after = 2;
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), DIANA_EUSER);
	cr_assert_eq(r->n, 2, "instances delivered after the callback said stop");
	cr_assert_eq(res.received, 2);
	cr_assert_lt(res.completed, (uint32_t)s.n, "the PACS did not see the C-CANCEL");
	for (int i = 0; i < r->n; i++)
		cr_assert_neq(access(r->paths[i], F_OK), 0);

	/* diana__dimse_cancel (any thread; here from the callback) */
	memset(r, 0, sizeof(*r));
	r->d = d;
	r->cancel_after = 3;
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), DIANA_ECANCELLED);
	cr_assert_eq(r->n, 3);
	cr_assert(strstr(diana_error_message(), "cancel") != NULL, "%s", diana_error_message());

	/* a cancel before the call: nothing happens, the flag is consumed */
	diana__dimse_cancel(d);
	cr_assert_eq(diana__dimse_echo(d), DIANA_ECANCELLED);
	/* and the association still works */
	memset(r, 0, sizeof(*r));
	cr_assert_eq(diana__dimse_get(d, &q, on_instance, r, &res), 0, "%s", diana_error_message());
	cr_assert_eq(r->n, s.n);
	free(r);
	diana__dimse_free(d);
}

Test(dimse, move_into_our_scp)
{
	struct study s = ct();
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	char json[256];
	diana__dimse_query q = study_query(&s, json, sizeof(json));
	diana__dimse_result res;
	struct received *r = calloc(1, sizeof(*r));
	int port;

	o.scp_port = DIANA__DIMSE_ANY_PORT;
	cr_assert_eq(diana__dimse_new(&d, &o), 0, "%s", diana_error_message());
	port = diana__dimse_scp_port(d);
	cr_assert_gt(port, 0);
	register_modality("dimse-test", CALLING, port);
	r->acc = s.acc;
	cr_assert_eq(diana__dimse_move(d, &q, NULL, on_instance, r, &res), 0, "%s", diana_error_message());
	assert_same_uids(r, s.acc, s.n);
	cr_assert_eq(r->identical, s.n);
	cr_assert_eq(res.completed, (uint32_t)s.n);
	cr_assert_eq(res.received, (uint32_t)s.n);
	cr_assert_str_eq(r->calling, env("DIANA_LAB_PACS_AET"));
	/* twice on the same association and SCP */
	memset(r, 0, sizeof(*r));
	cr_assert_eq(diana__dimse_move(d, &q, NULL, on_instance, r, &res), 0, "%s", diana_error_message());
	cr_assert_eq(r->n, s.n);
	/* stopped by the callback: C-CANCEL, then the SCP drops what still comes */
	memset(r, 0, sizeof(*r));
	r->stop_after = 1;
	cr_assert_eq(diana__dimse_move(d, &q, NULL, on_instance, r, &res), DIANA_EUSER);
	cr_assert_eq(r->n, 1);
	cr_assert_eq(res.received, 1);
	memset(r, 0, sizeof(*r));
	cr_assert_eq(diana__dimse_move(d, &q, NULL, on_instance, r, &res), 0, "%s", diana_error_message());
	cr_assert_eq(r->n, s.n);
	free(r);
	diana__dimse_free(d);
	register_modality("dimse-test", CALLING, 1);
}

Test(dimse, move_to_a_third_party)
{
	/* the PACS knows the helper (DIANA_HELPER): a C-MOVE there needs no SCP of ours */
	struct study s = ct();
	diana__dimse *d = pacs();
	char json[256];
	diana__dimse_query q = study_query(&s, json, sizeof(json));
	diana__dimse_result res;
	cr_assert_eq(diana__dimse_move(d, &q, env("DIANA_LAB_HELPER_AET"), NULL, NULL, &res), 0, "%s",
	             diana_error_message());
	cr_assert_eq(res.completed, (uint32_t)s.n);
	cr_assert_eq(res.received, 0);
	/* our own SCP is not there */
	cr_assert_eq(diana__dimse_move(d, &q, NULL, NULL, NULL, &res), DIANA_EINVAL);
	diana__dimse_free(d);
}

Test(dimse, move_to_unknown_destination_is_epacs)
{
	struct study s = ct();
	diana__dimse *d = pacs();
	char json[256];
	diana__dimse_query q = study_query(&s, json, sizeof(json));
	diana__dimse_result res;
	int rc = diana__dimse_move(d, &q, "NOT_KNOWN", NULL, NULL, &res);
	const char *msg = diana_error_message();
	char hex[16];
	cr_assert_eq(rc, DIANA_EPACS, "%d: %s", rc, msg);
	/* the standard status is 0xA801 (Refused: Move Destination unknown);
	   Orthanc 1.10.1 answers 0xC000 (Failed: Unable to process) */
	cr_assert(res.status == 0xA801 || res.status == 0xC000, "status 0x%04x", res.status);
	snprintf(hex, sizeof(hex), "0x%04X", res.status);
	cr_assert(strstr(msg, hex) != NULL, "%s", msg);
	cr_assert(strstr(msg, "NOT_KNOWN") != NULL, "%s", msg);
	assert_no_phi(msg, &s);
	/* the association is still usable */
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	diana__dimse_free(d);
}

static int count_store(size_t index, const char *path, uint16_t status, void *ud)
{
	int *n = ud;
	(void)index;
	(void)path;
	cr_assert_eq(status, 0, "status 0x%04x", status);
	(*n)++;
	return 0;
}

Test(dimse, store_then_find)
{
	diana__dimse *d = pacs();
	char dir[600], *paths[8];
	char path_buf[8][1000];
	struct dirent *e;
	DIR *dp;
	size_t n = 0;
	int reported = 0;
	diana__dimse_result res;
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
	struct answers a = { 0 };

	snprintf(dir, sizeof(dir), "%s/store/DSTORE-CT-001", env("DIANA_LAB_TMP"));
	dp = opendir(dir);
	cr_assert_not_null(dp, "%s", dir);
	while ((e = readdir(dp)) && n < 8) {
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(path_buf[n], sizeof(path_buf[n]), "%s/%s", dir, e->d_name);
		paths[n] = path_buf[n];
		n++;
	}
	closedir(dp);
	cr_assert_eq(n, 3);
	cr_assert_eq(diana__dimse_store(d, (const char *const *)paths, n, count_store, &reported, &res), 0,
	             "%s", diana_error_message());
	cr_assert_eq(reported, 3);
	cr_assert_eq(res.completed, 3);
	cr_assert_eq(res.failed, 0);

	q.keys_json = "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"DSTORE-CT-001\"]},"
	              "\"00201208\":{\"vr\":\"IS\"}}";
	cr_assert_eq(diana__dimse_find(d, &q, collect, &a, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	assert_value(a.first, "NumberOfStudyRelatedInstances", "3");
	diana_dataset_free(a.first);

	/* unreadable input: refused before anything is sent */
	{
		const char *missing[] = { path_buf[0], "/nonexistent/file.dcm" };
		char notdicom[] = "/tmp/diana-dimse-notdicom-XXXXXX";
		int fd = mkstemp(notdicom);
		const char *bad[] = { notdicom };
		cr_assert_geq(fd, 0);
		cr_assert_eq(write(fd, "hello, this is not DICOM\n", 25), 25);
		close(fd);
		reported = 0;
		cr_assert_eq(diana__dimse_store(d, missing, 2, count_store, &reported, &res), DIANA_ENOTFOUND);
		cr_assert_eq(reported, 0);
		cr_assert_eq(diana__dimse_store(d, bad, 1, count_store, &reported, &res), DIANA_EDICOM);
		cr_assert_eq(reported, 0);
		unlink(notdicom);
	}
	diana__dimse_free(d);
}

Test(dimse, wrong_called_aet_is_eauth)
{
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	const char *msg;
	o.called_aet = "NOT_THE_PACS";
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	cr_assert_eq(diana__dimse_echo(d), DIANA_EAUTH);
	msg = diana_error_message();
	cr_assert(strstr(msg, "called AE title not recognized") != NULL, "%s", msg);
	cr_assert(strstr(msg, "NOT_THE_PACS") != NULL, "%s", msg);
	diana__dimse_free(d);
}

Test(dimse, unknown_calling_aet_cannot_find)
{
	struct study s = ct();
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
	char json[256];
	int rc;
	o.calling_aet = "STRANGER";
	snprintf(json, sizeof(json), "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"%s\"]}}", s.acc);
	q.keys_json = json;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	/* C-ECHO is allowed to anyone (DicomAlwaysAllowEcho), C-FIND is not */
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	rc = diana__dimse_find(d, &q, collect, &(struct answers){ 0 }, NULL);
	cr_assert(rc == DIANA_EPACS || rc == DIANA_EAUTH, "%d: %s", rc, diana_error_message());
	assert_no_phi(diana_error_message(), &s);
	diana__dimse_free(d);
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

Test(dimse, closed_port_is_econnect_fast)
{
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	int64_t t0;
	o.port = free_port();
	o.connect_timeout_ms = 3000;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	t0 = diana__now_ms();
	cr_assert_eq(diana__dimse_echo(d), DIANA_ECONNECT);
	cr_assert_lt(diana__now_ms() - t0, 1000, "refused connection took %lld ms",
	             (long long)(diana__now_ms() - t0));
	cr_assert(strstr(diana_error_message(), "127.0.0.1") != NULL, "%s", diana_error_message());
	diana__dimse_free(d);
}

Test(dimse, unreachable_or_unknown_host_is_econnect_within_the_timeout)
{
	/* 10.255.255.1: not routed here (ENETUNREACH at once) or black-holed
	   (the connect timeout expires): ECONNECT either way, in time */
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	int64_t t0, dt;
	o.host = "10.255.255.1";
	o.port = 104;
	o.connect_timeout_ms = 1500;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	t0 = diana__now_ms();
	cr_assert_eq(diana__dimse_echo(d), DIANA_ECONNECT, "%s", diana_error_message());
	dt = diana__now_ms() - t0;
	cr_assert_lt(dt, 3000, "took %lld ms", (long long)dt);
	cr_assert(strstr(diana_error_message(), "10.255.255.1") != NULL, "%s", diana_error_message());
	diana__dimse_free(d);
	o.host = "no-such-host.invalid";
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	cr_assert_eq(diana__dimse_echo(d), DIANA_ECONNECT, "%s", diana_error_message());
	diana__dimse_free(d);
}

Test(dimse, silent_peer_is_etimedout)
{
	/* a socket that listens but never speaks DICOM: the kernel accepts the
	   connection, the A-ASSOCIATE-RQ stays unanswered */
	struct sockaddr_in a;
	socklen_t l = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	int64_t t0, dt;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(listen(fd, 4), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &l), 0);
	o.port = ntohs(a.sin_port);
	o.acse_timeout_ms = 1000;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	t0 = diana__now_ms();
	cr_assert_eq(diana__dimse_echo(d), DIANA_ETIMEDOUT, "%s", diana_error_message());
	dt = diana__now_ms() - t0;
	cr_assert(dt >= 900 && dt < 4000, "timed out after %lld ms", (long long)dt);
	diana__dimse_free(d);
	close(fd);
}

Test(dimse, bad_options_are_einval)
{
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = (diana__dimse *)1;
	o.called_aet = "A_TITLE_LONGER_THAN_16";
	cr_assert_eq(diana__dimse_new(&d, &o), DIANA_EINVAL);
	cr_assert_null(d);
	o = pacs_opts();
	o.port = 0;
	cr_assert_eq(diana__dimse_new(&d, &o), DIANA_EINVAL);
	o = pacs_opts();
	o.max_pdu = 100;
	cr_assert_eq(diana__dimse_new(&d, &o), DIANA_EINVAL);
	o = pacs_opts();
	o.scp_port = DIANA__DIMSE_ANY_PORT;
	o.scp_bind = "not an address";
	cr_assert_eq(diana__dimse_new(&d, &o), DIANA_EINVAL);
	cr_assert_eq(diana__dimse_echo(NULL), DIANA_EINVAL);
	diana__dimse_free(NULL);
}

Test(dimse, scp_port_in_use_and_loopback_only)
{
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL, *d2 = NULL;
	char cmd[256];
	o.scp_port = DIANA__DIMSE_ANY_PORT;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	o.scp_port = diana__dimse_scp_port(d);
	cr_assert_eq(diana__dimse_new(&d2, &o), DIANA_EIO);
	cr_assert(strstr(diana_error_message(), "in use") != NULL, "%s", diana_error_message());
	/* listening on 127.0.0.1 only */
	snprintf(cmd, sizeof(cmd), "ss -ltnH 'sport = :%d' | grep -q '127.0.0.1:%d'", o.scp_port, o.scp_port);
	cr_assert_eq(system(cmd), 0, "SCP not on 127.0.0.1");
	snprintf(cmd, sizeof(cmd), "ss -ltnH 'sport = :%d' | grep -v -q '127.0.0.1:%d'", o.scp_port,
	         o.scp_port);
	cr_assert_neq(system(cmd), 0, "SCP listens beyond loopback");
	diana__dimse_free(d);
}

Test(dimse, nothing_on_stderr)
{
	/* DCMTK logs warnings and errors for these (rejected association,
	   refused connection, a peer that never answers): none may reach stderr */
	char path[] = "/tmp/diana-dimse-stderr-XXXXXX";
	int fd = mkstemp(path), saved = dup(2);
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	struct stat st;
	cr_assert_geq(fd, 0);
	fflush(stderr);
	dup2(fd, 2);
	o.called_aet = "NOT_THE_PACS";
	diana__dimse_new(&d, &o);
	diana__dimse_echo(d);
	diana__dimse_free(d);
	o = pacs_opts();
	o.port = free_port();
	diana__dimse_new(&d, &o);
	diana__dimse_echo(d);
	diana__dimse_free(d);
	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	cr_assert_eq(fstat(fd, &st), 0);
	cr_assert_eq(st.st_size, 0, "DCMTK wrote %lld bytes on stderr (%s)", (long long)st.st_size, path);
	close(fd);
	unlink(path);
}

/* --- an independent peer: DCMTK's storescp ----------------------------------------- */

/* storescp on 127.0.0.1 (bind shim), 1 s socket timeout: it drops idle associations */
static pid_t start_storescp(int port, const char *dir)
{
	char p[16];
	pid_t pid;
	snprintf(p, sizeof(p), "%d", port);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_WRONLY);
		dup2(null, 1);
		dup2(null, 2);
		setenv("LD_PRELOAD", env("DIANA_BINDSHIM"), 1);
		setenv("DIANA_BINDSHIM_STRICT", "1", 1);
		execlp("storescp", "storescp", "-aet", "DIANA_STORE", "-ts", "1", "+B", "+xa", "-od", dir, p,
		       (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 100; i++) { /* wait until it listens */
		struct sockaddr_in a;
		int fd = socket(AF_INET, SOCK_STREAM, 0), ok;
		memset(&a, 0, sizeof(a));
		a.sin_family = AF_INET;
		a.sin_port = htons((uint16_t)port);
		a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
		close(fd);
		if (ok)
			return pid;
		usleep(50000);
	}
	kill(pid, SIGTERM);
	cr_assert_fail("storescp did not start");
	return -1;
}

static void stop_storescp(pid_t pid)
{
	int st;
	kill(pid, SIGTERM);
	waitpid(pid, &st, 0);
}

Test(dimse, storescp_peer_reconnects_and_gets_identical_datasets)
{
	char dir[] = "/tmp/diana-dimse-scp-XXXXXX", src[700];
	int port = free_port(), reported = 0;
	pid_t pid;
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	diana__dimse_result res;
	struct dirent *e;
	DIR *dp;
	const char *paths[CT_SLICES];
	char buf[CT_SLICES][1000];
	size_t n = 0;
	struct study s = ct();

	cr_assert_not_null(mkdtemp(dir));
	pid = start_storescp(port, dir);
	o.port = port;
	o.called_aet = "DIANA_STORE";
	o.calling_aet = "DIANA_T";
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	capture_logs();
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	/* storescp aborts the idle association after 1 s: the next call reconnects */
	usleep(1600 * 1000);
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	cr_assert_eq(cap.associations, 2, "%d associations", cap.associations);
	diana_log_set_handler(NULL, NULL);
	/* no C-FIND there: a clear EUNSUPPORTED */
	{
		diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
		cr_assert_eq(diana__dimse_find(d, &q, collect, &(struct answers){ 0 }, NULL), DIANA_EUNSUPPORTED);
	}

	/* C-STORE of the seeded CT: storescp (+B) writes the datasets as received */
	snprintf(src, sizeof(src), "%s/%s", data_dir, s.acc);
	dp = opendir(src);
	cr_assert_not_null(dp);
	while ((e = readdir(dp)) && n < CT_SLICES) {
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(buf[n], sizeof(buf[n]), "%s/%s", src, e->d_name);
		paths[n] = buf[n];
		n++;
	}
	closedir(dp);
	cr_assert_eq(n, (size_t)s.n);
	cr_assert_eq(diana__dimse_store(d, paths, n, count_store, &reported, &res), 0, "%s", diana_error_message());
	cr_assert_eq(res.completed, (uint32_t)n);
	stop_storescp(pid);

	/* storescp names files CT.<SOP Instance UID> */
	for (size_t i = 0; i < n; i++) {
		diana_dataset *ds = NULL;
		char *uid, got[1200];
		uint8_t *a = NULL, *b = NULL;
		size_t la, lb, oa, ob;
		cr_assert_eq(diana_dataset_open(&ds, paths[i], NULL), 0);
		uid = get(ds, "SOPInstanceUID");
		snprintf(got, sizeof(got), "%s/CT.%s", dir, uid);
		cr_assert_eq(diana__file_read(paths[i], 0, &a, &la), 0);
		cr_assert_eq(diana__file_read(got, 0, &b, &lb), 0, "%s not received", got);
		oa = dataset_offset(a, la);
		ob = dataset_offset(b, lb);
		cr_assert_eq(la - oa, lb - ob, "dataset size differs");
		cr_assert(memcmp(a + oa, b + ob, la - oa) == 0, "dataset bytes differ");
		free(a);
		free(b);
		unlink(got);
		diana_free(uid);
		diana_dataset_free(ds);
	}
	rmdir(dir);
	diana__dimse_free(d);
}

struct killer {
	pid_t pid;
	int calls;
};

static int kill_peer(size_t index, const char *path, uint16_t status, void *ud)
{
	struct killer *k = ud;
	(void)index;
	(void)path;
	(void)status;
	if (++k->calls == 2) {
		int st;
		kill(k->pid, SIGKILL);
		waitpid(k->pid, &st, 0);
	}
	return 0;
}

Test(dimse, peer_killed_mid_store_is_econnect_no_sigpipe)
{
	char dir[] = "/tmp/diana-dimse-kill-XXXXXX", src[700];
	int port = free_port();
	struct killer k = { 0, 0 };
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	diana__dimse_result res;
	struct dirent *e;
	DIR *dp;
	const char *paths[CT_SLICES];
	char buf[CT_SLICES][1000];
	size_t n = 0;
	struct study s = ct();
	int64_t t0;
	int rc;

	cr_assert_not_null(mkdtemp(dir));
	k.pid = start_storescp(port, dir);
	o.port = port;
	o.called_aet = "DIANA_STORE";
	o.dimse_timeout_ms = 5000;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	snprintf(src, sizeof(src), "%s/%s", data_dir, s.acc);
	dp = opendir(src);
	cr_assert_not_null(dp);
	while ((e = readdir(dp)) && n < CT_SLICES) {
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(buf[n], sizeof(buf[n]), "%s/%s", src, e->d_name);
		paths[n] = buf[n];
		n++;
	}
	closedir(dp);
	/* SIGPIPE keeps its default disposition (terminate): a write to the dead
	   peer must not kill us */
	signal(SIGPIPE, SIG_DFL);
	t0 = diana__now_ms();
	rc = diana__dimse_store(d, paths, n, kill_peer, &k, &res);
	cr_assert_eq(rc, DIANA_ECONNECT, "%d: %s", rc, diana_error_message());
	cr_assert_lt(diana__now_ms() - t0, 4000, "no quick failure");
	cr_assert_eq(res.completed, 2, "%u completed", res.completed);
	cr_assert_eq(k.calls, 2);
	/* the handle is still usable (and reports the dead peer again) */
	cr_assert_eq(diana__dimse_echo(d), DIANA_ECONNECT);
	diana__dimse_free(d);
	{
		char cmd[700];
		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		cr_assert_eq(system(cmd), 0);
	}
}

Test(dimse, peer_silent_within_an_operation_is_etimedout)
{
	/* the lab PACS is this test run's own: freeze it for a moment */
	struct study s = ct();
	pid_t pacs_pid = (pid_t)atoi(env("DIANA_LAB_PACS_PID"));
	diana__dimse_options o = pacs_opts();
	diana__dimse *d = NULL;
	diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, NULL };
	char json[256];
	int64_t t0, dt;
	int rc;
	cr_assert_gt(pacs_pid, 1);
	o.dimse_timeout_ms = 1000;
	cr_assert_eq(diana__dimse_new(&d, &o), 0);
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message()); /* association up */
	snprintf(json, sizeof(json), "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"%s\"]}}", s.acc);
	q.keys_json = json;
	cr_assert_eq(kill(pacs_pid, SIGSTOP), 0);
	t0 = diana__now_ms();
	rc = diana__dimse_find(d, &q, collect, &(struct answers){ 0 }, NULL);
	dt = diana__now_ms() - t0;
	kill(pacs_pid, SIGCONT);
	cr_assert_eq(rc, DIANA_ETIMEDOUT, "%d: %s", rc, diana_error_message());
	cr_assert(dt >= 900 && dt < 3000, "timed out after %lld ms", (long long)dt);
	assert_no_phi(diana_error_message(), &s);
	/* the aborted association is replaced on the next call */
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	diana__dimse_free(d);
}
