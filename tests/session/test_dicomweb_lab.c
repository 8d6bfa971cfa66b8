/*
 * Lab test: DICOMweb sessions (lib/session/dicomweb.c) against the real
 * Orthanc "PACS" of tests/lab with its DICOMweb plugin (run through
 * with-lab.sh). Before the tests, synthetic studies are generated and
 * uploaded (synth.py, seed.sh, accessions DWEB-*).
 *
 * Checked through the public API (diana_session_*): echo; QIDO-RS find by
 * AccessionNumber (values equal to the seed, Latin-1 names as UTF-8, only
 * the keys asked for), by wildcard PatientName, by StudyDate range, UID
 * lists, series and instance levels (the SOP Instance UIDs of the seeded
 * files); WADO-RS retrieve of a study (every SOP Instance UID Orthanc's own
 * REST API lists for it, each file byte-identical to GET
 * /instances/{id}/file), of a series and of one instance; a callback that
 * stops (no temporary file left); STOW-RS store (per-file status, a non-DICOM
 * file fails alone) then find; wrong password -> DIANA_EAUTH; closed port
 * -> DIANA_ECONNECT within a second or two; unknown study ->
 * DIANA_ENOTFOUND; changes -> DIANA_EUNSUPPORTED; no credentials in
 * diana_session_uri(). A WADO-RS vs GET /instances/{id}/file speed line
 * is printed (informative).
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <diana/diana.h>

#include "net/net.h"

#define PREFIX "DWEB"
#define CT_SLICES 12

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set: run through tests/lab/with-lab.sh", name);
	return v;
}

/* --- the seeded data (manifest.csv of synth.py) ------------------------------ */

struct study {
	char acc[32], pid[64], uid[80], mod[8], name[128], date[16], charset[32];
	int n;
};

static char data_dir[512], store_dir[512];
static struct study seeded[16];
static int nseeded;

static void read_manifest(void)
{
	char path[600], line[1024];
	FILE *f;
	snprintf(path, sizeof(path), "%s/manifest.csv", data_dir);
	f = fopen(path, "r");
	cr_assert_not_null(f, "%s: seeding failed?", path);
	nseeded = 0;
	while (fgets(line, sizeof(line), f) && nseeded < 16) {
		/* accession,patient_id,study_uid,instances,modality,patient_name,study_date,charset,bytes */
		char *fld[9] = { 0 }, *p = line;
		struct study *s = &seeded[nseeded];
		int k = 0;
		line[strcspn(line, "\r\n")] = 0;
		while (k < 9 && p) {
			fld[k++] = p;
			p = strchr(p, ',');
			if (p)
				*p++ = 0;
		}
		if (k < 8 || strncmp(fld[0], PREFIX, strlen(PREFIX)) != 0)
			continue;
		snprintf(s->acc, sizeof(s->acc), "%s", fld[0]);
		snprintf(s->pid, sizeof(s->pid), "%s", fld[1]);
		snprintf(s->uid, sizeof(s->uid), "%s", fld[2]);
		s->n = atoi(fld[3]);
		snprintf(s->mod, sizeof(s->mod), "%s", fld[4]);
		snprintf(s->name, sizeof(s->name), "%s", fld[5]);
		snprintf(s->date, sizeof(s->date), "%s", fld[6]);
		snprintf(s->charset, sizeof(s->charset), "%s", fld[7]);
		nseeded++;
	}
	fclose(f);
	cr_assert_geq(nseeded, 4, "manifest has %d " PREFIX " studies", nseeded);
}

static const struct study *by_acc(const char *acc)
{
	int i;
	for (i = 0; i < nseeded; i++)
		if (strcmp(seeded[i].acc, acc) == 0)
			return &seeded[i];
	cr_assert_fail("%s not seeded", acc);
	return NULL;
}

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char cmd[2048];
	const char *tmp = getenv("DIANA_LAB_TMP"), *tools = getenv("DIANA_LAB_TOOLS"),
	           *lab = getenv("DIANA_LAB_DIR"), *py = getenv("PYTHON");
	(void)set;
	if (!tmp || !tools || !lab)
		return;
	snprintf(cmd, sizeof(cmd),
	         "%s '%s/synth.py' --out '%s/dweb-data' --ct 2 --ct-slices %d --xr 3 --xr-size 256x256 "
	         "--prefix " PREFIX " --quiet && '%s/seed.sh' '%s/dweb-data' >/dev/null && "
	         "%s '%s/synth.py' --out '%s/dweb-store' --ct 1 --ct-slices 3 --prefix DWSTO --quiet",
	         py ? py : "/usr/bin/python3", tools, tmp, CT_SLICES, lab, tmp,
	         py ? py : "/usr/bin/python3", tools, tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "dicomweb lab: seeding failed: %s\n", cmd);
}

static void setup(void)
{
	const char *tmp = env("DIANA_LAB_TMP");
	cr_assert_eq(diana_init(), 1);
	snprintf(data_dir, sizeof(data_dir), "%s/dweb-data", tmp);
	snprintf(store_dir, sizeof(store_dir), "%s/dweb-store", tmp);
	read_manifest();
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(dicomweb, .init = setup, .fini = teardown, .timeout = 120);

/* --- sessions ----------------------------------------------------------------- */

static void uri_for(char *out, size_t cap, const char *user, const char *password, int port)
{
	const char *url = env("DIANA_LAB_PACS_URL"); /* http://127.0.0.1:18042 */
	const char *hostport = strstr(url, "://") + 3;
	if (port)
		snprintf(out, cap, "dicomweb+http://%s:%s@127.0.0.1:%d/dicom-web", user, password, port);
	else
		snprintf(out, cap, "dicomweb+http://%s:%s@%s/dicom-web/", user, password, hostport);
}

static diana_session *open_with(const char *password, int port, const diana_session_options *o)
{
	char uri[512];
	diana_session *s = NULL;
	uri_for(uri, sizeof(uri), env("DIANA_LAB_PACS_USER"), password, port);
	cr_assert_eq(diana_session_open(&s, uri, o), 0, "%s", diana_error_message());
	return s;
}

static diana_session *pacs(void)
{
	return open_with(env("DIANA_LAB_PACS_PASSWORD"), 0, NULL);
}

/* --- find helpers ---------------------------------------------------------------- */

struct answers {
	int n;
	int stop_after;
	const char *key;       /* collect this key's value per answer */
	char values[64][128];
	int extra_keys;        /* answers with a key outside `allowed` */
	const char *const *allowed;
};

static int count_keys(uint32_t tag, const char *vr, const char *value, void *ud)
{
	(void)vr;
	(void)value;
	(void)tag;
	(*(int *)ud)++;
	return 0;
}

static int collect(const diana_dataset *ds, void *ud)
{
	struct answers *a = ud;
	if (a->key && a->n < 64) {
		char *v = NULL;
		cr_assert_eq(diana_dataset_get(ds, a->key, &v), 0, "%s: %s", a->key, diana_error_message());
		snprintf(a->values[a->n], sizeof(a->values[0]), "%s", v);
		diana_free(v);
	}
	if (a->allowed) {
		int total = 0, known = 0;
		const char *const *k;
		(void)count_keys;
		for (k = a->allowed; *k; k++) {
			char *v = NULL;
			if (diana_dataset_get(ds, *k, &v) == 0)
				known++;
			diana_free(v);
		}
		{
			char *json = NULL;
			const char *p;
			cr_assert_eq(diana_dataset_to_json(ds, 0, &json), 0);
			for (p = json; (p = strstr(p, "\"vr\"")); p++)
				total++;
			diana_free(json);
		}
		if (total != known)
			a->extra_keys++;
	}
	a->n++;
	return a->stop_after && a->n >= a->stop_after ? 1 : 0;
}

static int find(diana_session *s, int level, const char *const *keys, size_t n, struct answers *a)
{
	size_t count = 0;
	int rc = diana_session_find(s, level, keys, n, collect, a, &count);
	if (rc == 0)
		cr_assert_eq((int)count, a->n);
	return rc;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(a, b);
}

/* SOP Instance UIDs of the seeded files of one accession, sorted */
static int seeded_uids(const char *dir_root, const char *acc, char uids[][80], int max)
{
	char dir[700], path[1000];
	struct dirent *e;
	DIR *dp;
	int n = 0;
	snprintf(dir, sizeof(dir), "%s/%s", dir_root, acc);
	dp = opendir(dir);
	cr_assert_not_null(dp, "%s", dir);
	while ((e = readdir(dp)) && n < max) {
		diana_dataset *ds = NULL;
		char *v = NULL;
		if (!strstr(e->d_name, ".dcm"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		cr_assert_eq(diana_dataset_open(&ds, path, NULL), 0, "%s", diana_error_message());
		cr_assert_eq(diana_dataset_get(ds, "SOPInstanceUID", &v), 0);
		snprintf(uids[n++], 80, "%s", v);
		diana_free(v);
		diana_dataset_free(ds);
	}
	closedir(dp);
	qsort(uids, (size_t)n, 80, cmp_str);
	return n;
}

/* --- the PACS's own REST API: an independent listing ------------------------------ */

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

static char *rest_get(diana__http *h, const char *method, const char *path, const char *body,
                      size_t *len)
{
	diana__http_request q = { 0 };
	diana__http_response r;
	char *out;
	q.method = method;
	q.path = path;
	q.body = body;
	q.body_len = body ? strlen(body) : 0;
	cr_assert_eq(diana__http_perform(h, &q, &r), 0, "%s %s: %s", method, path, diana_error_message());
	if (len)
		*len = r.body.len;
	out = diana__buf_detach(&r.body, NULL);
	diana__http_response_dispose(&r);
	return out;
}

/* Orthanc instance IDs and SOP UIDs of a study, from GET /studies/{id}/instances */
struct rest_inst {
	char id[64];
	char sop[80];
};

static int rest_instances(diana__http *h, const char *study_uid, struct rest_inst *out, int max)
{
	char path[200], *ans, *p;
	int n = 0;
	ans = rest_get(h, "POST", "/tools/lookup", study_uid, NULL);
	p = strstr(ans, "\"ID\"");
	cr_assert_not_null(p, "lookup: %s", ans);
	p = strchr(p + 4, '"');
	snprintf(path, sizeof(path), "/studies/%.*s/instances", (int)strcspn(p + 1, "\""), p + 1);
	free(ans);
	ans = rest_get(h, "GET", path, NULL, NULL);
	/* [{ "ID": "...", "MainDicomTags": { ... "SOPInstanceUID": "..." ...}, ...}, ...] */
	for (p = ans; n < max && (p = strstr(p, "\"SOPInstanceUID\"")); n++) {
		char *q = strchr(p + 16, '"');
		snprintf(out[n].sop, sizeof(out[n].sop), "%.*s", (int)strcspn(q + 1, "\""), q + 1);
		p = q + 1;
	}
	{
		int k = 0;
		/* instance IDs: the "ID" members at the top level of each object, in order */
		char *r = ans;
		while (k < n && (r = strstr(r, "\"ID\" : \""))) {
			r += 8;
			snprintf(out[k].id, sizeof(out[k].id), "%.*s", (int)strcspn(r, "\""), r);
			k++;
		}
		cr_assert_eq(k, n, "parsed %d IDs for %d instances", k, n);
	}
	free(ans);
	return n;
}

/* ================================================================== tests */

Test(dicomweb, echo_kind_and_uri_without_credentials)
{
	diana_session *s = pacs();
	const char *uri = diana_session_uri(s);
	cr_assert_eq(diana_session_kind(s), DIANA_SESSION_DICOMWEB);
	cr_assert_null(strstr(uri, env("DIANA_LAB_PACS_PASSWORD")), "%s", uri);
	cr_assert_not_null(strstr(uri, "127.0.0.1"), "%s", uri);
	cr_assert_eq(diana_session_echo(s), 0, "%s", diana_error_message());
	cr_assert_eq(diana_session_echo(s), 0, "%s", diana_error_message());
	diana_session_free(s);
}

Test(dicomweb, find_study_by_accession_values_match_the_seed)
{
	const struct study *ct = by_acc(PREFIX "-CT-001");
	static const char *const allowed[] = { "AccessionNumber", "PatientName", "PatientID",
		                                   "StudyDate", "StudyDescription", "StudyInstanceUID",
		                                   "QueryRetrieveLevel", "NumberOfStudyRelatedInstances",
		                                   "SpecificCharacterSet", NULL };
	const char *keys[] = { "AccessionNumber=" PREFIX "-CT-001", "PatientName", "PatientID", "StudyDate",
		                   "StudyDescription", "NumberOfStudyRelatedInstances" };
	struct answers a = { 0 };
	diana_session *s = pacs();
	char *v = NULL;
	a.allowed = allowed;
	a.key = "StudyInstanceUID";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 6, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	cr_assert_str_eq(a.values[0], ct->uid);
	cr_assert_eq(a.extra_keys, 0, "answers carry keys not asked for");

	/* the same answer through another key, to check values */
	memset(&a, 0, sizeof(a));
	a.key = "PatientID";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 6, &a), 0);
	cr_assert_str_eq(a.values[0], ct->pid);
	memset(&a, 0, sizeof(a));
	a.key = "NumberOfStudyRelatedInstances";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 6, &a), 0);
	cr_assert_eq(atoi(a.values[0]), CT_SLICES);
	memset(&a, 0, sizeof(a));
	a.key = "QueryRetrieveLevel";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 6, &a), 0);
	cr_assert_str_eq(a.values[0], "STUDY");
	memset(&a, 0, sizeof(a));
	a.key = "StudyDate";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 6, &a), 0);
	cr_assert_str_eq(a.values[0], ct->date);
	(void)v;
	diana_session_free(s);
}

Test(dicomweb, latin1_names_come_back_as_utf8)
{
	/* the seed's ISO_IR 100 studies: their names must come back exactly (DICOM JSON is UTF-8) */
	diana_session *s = pacs();
	int i, checked = 0;
	for (i = 0; i < nseeded; i++) {
		char key[64];
		const char *keys[2];
		struct answers a = { 0 };
		if (strcmp(seeded[i].charset, "ISO_IR 100") != 0 && strcmp(seeded[i].charset, "") != 0)
			continue;
		snprintf(key, sizeof(key), "AccessionNumber=%s", seeded[i].acc);
		keys[0] = key;
		keys[1] = "PatientName";
		a.key = "PatientName";
		cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 2, &a), 0, "%s", diana_error_message());
		cr_assert_eq(a.n, 1);
		cr_assert_str_eq(a.values[0], seeded[i].name, "%s", seeded[i].acc);
		checked++;
	}
	cr_assert_gt(checked, 0);
	diana_session_free(s);
}

Test(dicomweb, find_wildcard_name_date_range_and_uid_list)
{
	const struct study *ct = by_acc(PREFIX "-CT-001");
	diana_session *s = pacs();
	char key[200], key2[200], prefix[8];
	const char *keys[3];
	struct answers a = { 0 };
	int i, want = 0;
	char lo[16] = "99999999", hi[16] = "00000000";

	/* wildcard PatientName: the first 4 letters of the CT patient's name */
	snprintf(prefix, sizeof(prefix), "%.4s", ct->name);
	snprintf(key, sizeof(key), "PatientName=%s*", prefix);
	for (i = 0; i < nseeded; i++)
		if (strncmp(seeded[i].name, prefix, 4) == 0)
			want++;
	keys[0] = key;
	keys[1] = "AccessionNumber=" PREFIX "-*";
	a.key = "StudyInstanceUID";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 2, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, want, "%d answers, %d seeded", a.n, want);

	/* a date range covering the CT studies only */
	for (i = 0; i < nseeded; i++) {
		if (strcmp(seeded[i].mod, "CT") != 0)
			continue;
		if (strcmp(seeded[i].date, lo) < 0)
			snprintf(lo, sizeof(lo), "%s", seeded[i].date);
		if (strcmp(seeded[i].date, hi) > 0)
			snprintf(hi, sizeof(hi), "%s", seeded[i].date);
	}
	want = 0;
	for (i = 0; i < nseeded; i++)
		if (strcmp(seeded[i].date, lo) >= 0 && strcmp(seeded[i].date, hi) <= 0)
			want++;
	cr_assert_gt(want, 0);
	snprintf(key, sizeof(key), "StudyDate=%s-%s", lo, hi);
	memset(&a, 0, sizeof(a));
	a.key = "StudyDate";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 2, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, want, "date range: %d answers, %d seeded", a.n, want);
	for (i = 0; i < a.n; i++)
		cr_assert(strcmp(a.values[i], lo) >= 0 && strcmp(a.values[i], hi) <= 0, "%s", a.values[i]);

	/* a list of two UIDs (DICOM '\' becomes QIDO's ',') */
	snprintf(key2, sizeof(key2), "StudyInstanceUID=%s\\%s", seeded[0].uid, seeded[1].uid);
	keys[0] = key2;
	memset(&a, 0, sizeof(a));
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 1, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 2);

	/* no match: 0 answers, rc 0 */
	keys[0] = "AccessionNumber=NO-SUCH-ACCESSION";
	memset(&a, 0, sizeof(a));
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 1, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 0);

	/* callback stops: DIANA_EUSER */
	keys[0] = "AccessionNumber=" PREFIX "-*";
	memset(&a, 0, sizeof(a));
	a.stop_after = 1;
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 1, collect, &a, NULL), DIANA_EUSER);
	cr_assert_eq(a.n, 1);

	/* patient level: not in QIDO-RS */
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_PATIENT, keys, 1, collect, &a, NULL),
	             DIANA_EUNSUPPORTED);
	diana_session_free(s);
}

Test(dicomweb, find_series_and_instance_levels)
{
	const struct study *ct = by_acc(PREFIX "-CT-001");
	diana_session *s = pacs();
	char key[128], key2[256], seeded_sop[64][80];
	const char *keys[3];
	struct answers a = { 0 };
	int i, n;

	snprintf(key, sizeof(key), "StudyInstanceUID=%s", ct->uid);
	keys[0] = key;
	keys[1] = "Modality";
	a.key = "SeriesInstanceUID";
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, keys, 2, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	snprintf(key2, sizeof(key2), "SeriesInstanceUID=%s", a.values[0]);
	memset(&a, 0, sizeof(a));
	a.key = "StudyInstanceUID"; /* a parent UID given in the path comes back */
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, keys, 2, &a), 0);
	cr_assert_str_eq(a.values[0], ct->uid);
	memset(&a, 0, sizeof(a));
	a.key = "QueryRetrieveLevel";
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, keys, 2, &a), 0);
	cr_assert_str_eq(a.values[0], "SERIES");

	/* the series of an unknown study: no answer, no error */
	keys[0] = "StudyInstanceUID=1.2.3.999";
	memset(&a, 0, sizeof(a));
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, keys, 2, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 0);

	/* series without the study UID: /series?AccessionNumber=... */
	keys[0] = "AccessionNumber=" PREFIX "-CT-00*";
	keys[1] = "Modality=CT";
	memset(&a, 0, sizeof(a));
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, keys, 2, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 2, "two CT studies, one series each");

	/* instances of the series: the seeded SOP Instance UIDs */
	n = seeded_uids(data_dir, ct->acc, seeded_sop, 64);
	cr_assert_eq(n, CT_SLICES);
	keys[0] = key;
	keys[1] = key2;
	keys[2] = "InstanceNumber";
	memset(&a, 0, sizeof(a));
	a.key = "SOPInstanceUID";
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, keys, 3, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, n);
	qsort(a.values, (size_t)a.n, sizeof(a.values[0]), cmp_str);
	for (i = 0; i < n; i++)
		cr_assert_str_eq(a.values[i], seeded_sop[i]);

	/* instances of the study (no series UID) and with no UID at all */
	memset(&a, 0, sizeof(a));
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, keys, 1, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, n);
	keys[0] = "AccessionNumber=" PREFIX "-CT-001";
	memset(&a, 0, sizeof(a));
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, keys, 1, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, n);
	diana_session_free(s);
}

/* --- retrieve -------------------------------------------------------------------- */

struct got {
	int n;
	int stop_after;
	char sop[64][80];
	char dir[600];
	uint64_t bytes;
	int bad_path;
	diana_session *cancel; /* cancel this session at the first instance */
};

static int on_instance(const diana_instance *inst, void *ud)
{
	struct got *g = ud;
	char dest[800];
	struct stat st;
	if (stat(inst->path, &st) != 0 || (uint64_t)st.st_size != inst->size || !inst->temporary)
		g->bad_path++;
	if (g->n < 64) {
		snprintf(g->sop[g->n], sizeof(g->sop[0]), "%s", inst->sop_instance_uid);
		if (g->dir[0]) {
			snprintf(dest, sizeof(dest), "%s/%s.dcm", g->dir, inst->sop_instance_uid);
			cr_assert_eq(diana_instance_keep(inst, dest), 0, "%s", diana_error_message());
		}
	}
	g->bytes += inst->size;
	g->n++;
	if (g->cancel)
		diana_session_cancel(g->cancel);
	return g->stop_after && g->n >= g->stop_after ? 1 : 0;
}

static void make_dir(char *out, size_t cap, const char *name)
{
	snprintf(out, cap, "%s/%s", env("DIANA_LAB_TMP"), name);
	mkdir(out, 0700);
}

static int files_in(const char *dir)
{
	DIR *dp = opendir(dir);
	struct dirent *e;
	int n = 0;
	cr_assert_not_null(dp, "%s", dir);
	while ((e = readdir(dp)))
		if (e->d_name[0] != '.')
			n++;
	closedir(dp);
	return n;
}

static int same_file(const char *path, const char *data, size_t len)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	size_t n;
	int same;
	if (!f)
		return 0;
	buf = malloc(len + 1);
	n = fread(buf, 1, len + 1, f);
	fclose(f);
	same = n == len && memcmp(buf, data, len) == 0;
	free(buf);
	return same;
}

Test(dicomweb, retrieve_study_equals_the_pacs_listing_byte_for_byte)
{
	const struct study *ct = by_acc(PREFIX "-CT-002");
	diana_transfer_stats stats = DIANA_TRANSFER_STATS_INIT;
	struct rest_inst ri[64];
	struct got g;
	diana__http *h = pacs_rest();
	diana_session *s = pacs();
	char listed[64][80];
	int n, i;

	memset(&g, 0, sizeof(g));
	make_dir(g.dir, sizeof(g.dir), "dweb-retrieved-study");
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, on_instance, &g, &stats), 0, "%s",
	             diana_error_message());
	n = rest_instances(h, ct->uid, ri, 64);
	cr_assert_eq(n, CT_SLICES);
	cr_assert_eq(g.n, n, "%d retrieved, the PACS lists %d", g.n, n);
	cr_assert_eq(g.bad_path, 0);
	cr_assert_eq(stats.instances, (uint64_t)n);
	cr_assert_eq(stats.bytes, g.bytes);
	cr_assert_eq(stats.status, 200);
	for (i = 0; i < n; i++)
		snprintf(listed[i], 80, "%s", ri[i].sop);
	qsort(listed, (size_t)n, 80, cmp_str);
	qsort(g.sop, (size_t)g.n, 80, cmp_str);
	for (i = 0; i < n; i++)
		cr_assert_str_eq(g.sop[i], listed[i]);
	/* every file identical to the PACS's own copy */
	for (i = 0; i < n; i++) {
		char path[200], file[800];
		size_t len = 0;
		char *data;
		snprintf(path, sizeof(path), "/instances/%.63s/file", ri[i].id);
		data = rest_get(h, "GET", path, NULL, &len);
		snprintf(file, sizeof(file), "%s/%s.dcm", g.dir, ri[i].sop);
		cr_assert(same_file(file, data, len), "%s differs from GET /instances/{id}/file", file);
		free(data);
	}
	diana__http_free(h);
	diana_session_free(s);
}

Test(dicomweb, retrieve_series_and_one_instance)
{
	const struct study *ct = by_acc(PREFIX "-CT-001");
	char key[128];
	const char *keys[2];
	struct answers a = { 0 };
	struct got g;
	diana_session *s = pacs();
	char series[80], seeded_sop[64][80];
	int n, i;

	snprintf(key, sizeof(key), "StudyInstanceUID=%s", ct->uid);
	keys[0] = key;
	a.key = "SeriesInstanceUID";
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, keys, 1, &a), 0);
	cr_assert_eq(a.n, 1);
	snprintf(series, sizeof(series), "%.79s", a.values[0]);

	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, ct->uid, series, NULL, on_instance, &g, NULL), 0, "%s",
	             diana_error_message());
	n = seeded_uids(data_dir, ct->acc, seeded_sop, 64);
	cr_assert_eq(g.n, n);
	qsort(g.sop, (size_t)g.n, 80, cmp_str);
	for (i = 0; i < n; i++)
		cr_assert_str_eq(g.sop[i], seeded_sop[i]);

	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, ct->uid, series, seeded_sop[3], on_instance, &g, NULL), 0,
	             "%s", diana_error_message());
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.sop[0], seeded_sop[3]);
	diana_session_free(s);
}

Test(dicomweb, retrieve_unknown_is_enotfound)
{
	const struct study *ct = by_acc(PREFIX "-CT-001");
	struct got g;
	diana_session *s = pacs();
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.2.3.4.5.6.7", NULL, NULL, on_instance, &g, NULL),
	             DIANA_ENOTFOUND);
	cr_assert_str_not_empty(diana_error_message());
	cr_assert_eq(diana_session_retrieve(s, ct->uid, "1.2.3.4", NULL, on_instance, &g, NULL),
	             DIANA_ENOTFOUND);
	cr_assert_eq(g.n, 0);
	/* the session is still usable */
	cr_assert_eq(diana_session_echo(s), 0, "%s", diana_error_message());
	diana_session_free(s);
}

Test(dicomweb, retrieve_stopped_by_callback_leaves_no_temporary_file)
{
	const struct study *ct = by_acc(PREFIX "-CT-001");
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	char tmpdir[600];
	struct got g;
	diana_session *s;

	make_dir(tmpdir, sizeof(tmpdir), "dweb-temp");
	o.temp_dir = tmpdir;
	s = open_with(env("DIANA_LAB_PACS_PASSWORD"), 0, &o);
	memset(&g, 0, sizeof(g));
	g.stop_after = 2;
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, on_instance, &g, NULL), DIANA_EUSER);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(files_in(tmpdir), 0, "temporary files left behind");
	/* diana_session_cancel() from the callback: DIANA_ECANCELLED at once */
	memset(&g, 0, sizeof(g));
	g.cancel = s;
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, on_instance, &g, NULL), DIANA_ECANCELLED,
	             "%s", diana_error_message());
	cr_assert_eq(g.n, 1);
	cr_assert_eq(files_in(tmpdir), 0, "temporary files left behind");
	/* and a full retrieve afterwards, through the same session */
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, on_instance, &g, NULL), 0, "%s",
	             diana_error_message());
	cr_assert_eq(g.n, CT_SLICES);
	cr_assert_eq(files_in(tmpdir), 0, "temporary files left behind");
	diana_session_free(s);
}

/* --- store ------------------------------------------------------------------------ */

struct stored {
	int n;
	int status[16];
	char msg[16][256];
};

static int on_stored(size_t index, const char *path, int status, void *ud)
{
	struct stored *st = ud;
	(void)path;
	cr_assert_lt(index, 16u);
	cr_assert_eq((int)index, st->n, "in order");
	st->status[index] = status;
	snprintf(st->msg[index], sizeof(st->msg[0]), "%s", status ? diana_error_message() : "");
	st->n++;
	return 0;
}

Test(dicomweb, store_then_find)
{
	diana_transfer_stats stats = DIANA_TRANSFER_STATS_INIT;
	char files[4][800], notdicom[800];
	const char *paths[5];
	struct stored st;
	struct answers a = { 0 };
	const char *keys[2] = { "AccessionNumber=DWSTO-CT-001", "NumberOfStudyRelatedInstances" };
	diana_session *s = pacs();
	FILE *f;
	int i;

	for (i = 0; i < 3; i++)
		snprintf(files[i], sizeof(files[i]), "%s/DWSTO-CT-001/%d.dcm", store_dir, i + 1);
	snprintf(notdicom, sizeof(notdicom), "%s/not-dicom.dcm", store_dir);
	f = fopen(notdicom, "w");
	cr_assert_not_null(f);
	fputs("this is not a DICOM file", f);
	fclose(f);
	paths[0] = files[0];
	paths[1] = notdicom;
	paths[2] = files[1];
	paths[3] = files[2];

	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 1, &a), 0);
	cr_assert_eq(a.n, 0, "not stored yet");

	memset(&st, 0, sizeof(st));
	cr_assert_eq(diana_session_store(s, paths, 4, on_stored, &st, &stats), DIANA_EDICOM);
	cr_assert_eq(st.n, 4);
	cr_assert_eq(st.status[0], 0, "%s", st.msg[0]);
	cr_assert_eq(st.status[1], DIANA_EDICOM);
	cr_assert_str_not_empty(st.msg[1]);
	cr_assert_eq(st.status[2], 0, "%s", st.msg[2]);
	cr_assert_eq(st.status[3], 0, "%s", st.msg[3]);
	cr_assert_eq(stats.instances, 3);
	cr_assert_eq(stats.failed, 1);
	cr_assert_eq(stats.status, 200);

	memset(&a, 0, sizeof(a));
	a.key = "NumberOfStudyRelatedInstances";
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, keys, 2, &a), 0, "%s", diana_error_message());
	cr_assert_eq(a.n, 1);
	cr_assert_eq(atoi(a.values[0]), 3);

	/* again: already there, still acknowledged */
	memset(&st, 0, sizeof(st));
	cr_assert_eq(diana_session_store(s, paths + 2, 2, on_stored, &st, NULL), 0, "%s",
	             diana_error_message());
	cr_assert_eq(st.status[0], 0, "%s", st.msg[0]);
	cr_assert_eq(st.status[1], 0, "%s", st.msg[1]);
	diana_session_free(s);
}

/* --- errors ------------------------------------------------------------------------ */

Test(dicomweb, wrong_password_is_eauth)
{
	diana_session *s = open_with("not-the-password", 0, NULL);
	const char *keys[1] = { "AccessionNumber=" PREFIX "-CT-001" };
	struct answers a = { 0 };
	struct got g;
	cr_assert_eq(diana_session_echo(s), DIANA_EAUTH, "%s", diana_error_message());
	cr_assert_null(strstr(diana_error_message(), "not-the-password"));
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 1, collect, &a, NULL), DIANA_EAUTH);
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, by_acc(PREFIX "-CT-001")->uid, NULL, NULL, on_instance, &g,
	                                    NULL),
	             DIANA_EAUTH);
	diana_session_free(s);
}

static int free_port(void)
{
	struct sockaddr_in a;
	socklen_t len = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM, 0), port;
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	cr_assert_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	cr_assert_eq(getsockname(fd, (struct sockaddr *)&a, &len), 0);
	port = ntohs(a.sin_port);
	close(fd);
	return port;
}

Test(dicomweb, closed_port_is_econnect_quickly)
{
	diana_session *s = open_with(env("DIANA_LAB_PACS_PASSWORD"), free_port(), NULL);
	int64_t t0 = diana__now_ms();
	cr_assert_eq(diana_session_echo(s), DIANA_ECONNECT, "%s", diana_error_message());
	/* default retries with backoff: 0.2 + 0.4 + 0.8 s */
	cr_assert_lt(diana__now_ms() - t0, 3000);
	diana_session_free(s);
}

Test(dicomweb, changes_unsupported_and_bad_uri)
{
	diana_session *s = pacs();
	int64_t last = 0;
	diana_session *t = NULL;
	cr_assert_eq(diana_session_changes(s, 0, 0, NULL, NULL, &last, NULL), DIANA_EINVAL);
	cr_assert_eq(diana_session_changes(s, -1, 0, NULL, NULL, &last, NULL), DIANA_EUNSUPPORTED);
	diana_session_free(s);
	cr_assert_eq(diana_session_open(&t, "dicomweb+http://127.0.0.1:18042/dicom-web?modality=x", NULL),
	             DIANA_EINVAL);
	cr_assert_null(t);
}

/* --- speed (informative) ----------------------------------------------------------- */

static int count_only(const diana_instance *inst, void *ud)
{
	(void)inst;
	(*(int *)ud)++;
	return 0;
}

Test(dicomweb, speed_wado_vs_instance_files)
{
	const struct study *ct = by_acc(PREFIX "-CT-002");
	struct rest_inst ri[64];
	diana__http *h = pacs_rest();
	diana_session *s = pacs();
	diana_transfer_stats stats = DIANA_TRANSFER_STATS_INIT;
	int64_t t0, t_wado = 0, t_rest = 0;
	uint64_t bytes = 0;
	int n, i, k, got = 0;

	n = rest_instances(h, ct->uid, ri, 64);
	for (k = 0; k < 3; k++) {
		t0 = diana__now_ms();
		cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, count_only, &got, &stats), 0);
		t_wado += diana__now_ms() - t0;
		t0 = diana__now_ms();
		for (i = 0; i < n; i++) {
			char path[200];
			size_t len = 0;
			snprintf(path, sizeof(path), "/instances/%.63s/file", ri[i].id);
			free(rest_get(h, "GET", path, NULL, &len));
			if (k == 0)
				bytes += len;
		}
		t_rest += diana__now_ms() - t0;
	}
	cr_assert_eq(got, 3 * n);
	cr_log_info("WADO-RS study (%d x %.0f KB, to temp files + callback): %.1f ms/run; "
	            "GET /instances/{id}/file x %d (in memory): %.1f ms/run",
	            n, (double)bytes / n / 1024, t_wado / 3.0, n, t_rest / 3.0);
	fprintf(stderr, "dicomweb speed: WADO-RS %.1f MB/s, GET /instances/{id}/file %.1f MB/s "
	        "(%d instances, %.1f MB, 3 runs)\n",
	        t_wado ? (double)bytes * 3 / 1048576.0 / (t_wado / 1000.0) : 0,
	        t_rest ? (double)bytes * 3 / 1048576.0 / (t_rest / 1000.0) : 0, n, bytes / 1048576.0);
	diana__http_free(h);
	diana_session_free(s);
}
