/*
 * libdiana - tests of the folder kind of session (lib/session/folder.c)
 * through the public API (include/diana/session.h).
 *
 * Folders are made of synthetic studies (tests/tools/synth.py, run with
 * /usr/bin/python3: $DIANA_SYNTH) and copies of tests/data/dicom. The
 * expectations come from synth.py's manifest.csv and from the files
 * themselves, not from the index.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <criterion/criterion.h>
#include <diana/diana.h>

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK()                                                      \
	do {                                                                  \
		if (__lsan_do_recoverable_leak_check()) {                         \
			fprintf(stderr, "memory leaked during the test\n");           \
			abort();                                                      \
		}                                                                 \
	} while (0)
#else
#define LEAK_CHECK() ((void)0)
#endif

static char tmpdir[256];

static void run(const char *cmd)
{
	int rc = system(cmd);
	cr_assert_eq(rc, 0, "command failed (%d): %s", rc, cmd);
}

static void setup(void)
{
	cr_assert_gt(diana_init(), 0);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/diana-folder-test-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[600];
	diana_log_set_handler(NULL, NULL);
	snprintf(cmd, sizeof cmd, "chmod -R u+rwx '%s'; rm -rf '%s'", tmpdir, tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
	diana_shutdown();
	LEAK_CHECK();
}

TestSuite(folder, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static const char *path_in(const char *rel)
{
	static char buf[32][1024];
	static int i;
	i = (i + 1) % 32;
	snprintf(buf[i], sizeof buf[i], "%s/%s", tmpdir, rel);
	return buf[i];
}

/* synthetic studies into tmpdir/<sub>: 4 CT of 3 slices, 4 XR */
static void synth(const char *sub)
{
	const char *py = getenv("DIANA_SYNTH");
	char cmd[1024];
	cr_assert_not_null(py, "DIANA_SYNTH not set");
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 '%s' --out '%s' --ct 4 --ct-slices 3 --ct-size 16x16 --xr 4 "
	         "--xr-size 16x16 -q",
	         py, path_in(sub));
	run(cmd);
}

typedef struct study_row {
	char acc[32], pid[32], uid[80], modality[8], name[64], date[16];
	int instances;
} study_row;

static study_row rows[16];
static int nrows;

static void read_manifest(const char *sub)
{
	char p[1024], line[1024];
	FILE *f;
	snprintf(p, sizeof p, "%s/manifest.csv", path_in(sub));
	f = fopen(p, "r");
	cr_assert_not_null(f);
	nrows = 0;
	cr_assert_not_null(fgets(line, sizeof line, f)); /* header */
	while (fgets(line, sizeof line, f) && nrows < 16) {
		study_row *r = &rows[nrows++];
		char *save = NULL, *fld[9];
		int n = 0;
		for (char *t = strtok_r(line, ",\n", &save); t && n < 9; t = strtok_r(NULL, ",\n", &save))
			fld[n++] = t;
		cr_assert_geq(n, 7);
		snprintf(r->acc, sizeof r->acc, "%s", fld[0]);
		snprintf(r->pid, sizeof r->pid, "%s", fld[1]);
		snprintf(r->uid, sizeof r->uid, "%s", fld[2]);
		r->instances = atoi(fld[3]);
		snprintf(r->modality, sizeof r->modality, "%s", fld[4]);
		snprintf(r->name, sizeof r->name, "%s", fld[5]);
		snprintf(r->date, sizeof r->date, "%s", fld[6]);
	}
	fclose(f);
	cr_assert_eq(nrows, 8);
}

static const study_row *row_by_acc(const char *acc)
{
	for (int i = 0; i < nrows; i++)
		if (strcmp(rows[i].acc, acc) == 0)
			return &rows[i];
	cr_assert_fail("no manifest row");
	return NULL;
}

static diana_session *open_folder(const char *dir)
{
	diana_session *s = NULL;
	int rc = diana_session_open(&s, dir, NULL);
	cr_assert_eq(rc, 0, "open: %d %s", rc, diana_error_message());
	cr_assert_not_null(s);
	cr_assert_eq(diana_session_kind(s), DIANA_SESSION_FOLDER);
	return s;
}

/* answers kept as DICOM JSON, re-read on demand */
typedef struct answers {
	size_t n;
	char *json[512];
} answers;

static int collect(const diana_dataset *ds, void *user_data)
{
	answers *a = user_data;
	char *j = NULL;
	cr_assert_eq(diana_dataset_to_json(ds, 0, &j), 0);
	cr_assert_lt(a->n, 512);
	a->json[a->n++] = j;
	return 0;
}

static void answers_free(answers *a)
{
	for (size_t i = 0; i < a->n; i++)
		diana_free(a->json[i]);
	a->n = 0;
}

/* value of `key` in answer i ("" when absent); static buffer */
static const char *aget(const answers *a, size_t i, const char *key)
{
	static char buf[16][512];
	static int k;
	diana_dataset *ds = NULL;
	char *v = NULL;
	k = (k + 1) % 16;
	cr_assert_lt(i, a->n);
	cr_assert_eq(diana_dataset_from_json(&ds, a->json[i], 0), 0, "%s", diana_error_message());
	buf[k][0] = 0;
	if (diana_dataset_get(ds, key, &v) == 0) {
		snprintf(buf[k], sizeof buf[k], "%s", v);
		diana_free(v);
	}
	diana_dataset_free(ds);
	return buf[k];
}

static size_t find(diana_session *s, int level, answers *a, size_t nkeys, const char **keys)
{
	size_t count = 99999;
	int rc;
	memset(a, 0, sizeof *a);
	rc = diana_session_find(s, level, keys, nkeys, collect, a, &count);
	cr_assert_eq(rc, 0, "find: %d %s", rc, diana_error_message());
	cr_assert_eq(count, a->n);
	return a->n;
}

static int has_answer(const answers *a, const char *key, const char *value)
{
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(aget(a, i, key), value) == 0)
			return 1;
	return 0;
}

static char *file_get(const char *path, const char *key)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	char *v = NULL;
	o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
	if (diana_dataset_open(&ds, path, &o) != 0)
		return NULL;
	if (diana_dataset_get(ds, key, &v) != 0)
		v = NULL;
	diana_dataset_free(ds);
	return v;
}

/* SOP Instance UIDs of the regular files directly in `dir`, sorted */
static size_t sop_uids_of_dir(const char *dir, char **out, size_t max)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	cr_assert_not_null(d);
	while ((e = readdir(d))) {
		char p[1024];
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		char *u = file_get(p, "SOPInstanceUID");
		if (u) {
			cr_assert_lt(n, max);
			out[n++] = u;
		}
	}
	closedir(d);
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && strcmp(out[j - 1], out[j]) > 0; j--) {
			char *t = out[j];
			out[j] = out[j - 1];
			out[j - 1] = t;
		}
	return n;
}

typedef struct got {
	size_t n;
	char *uid[256];
	int all_permanent;
	int paths_exist;
} got;

static int on_instance(const diana_instance *in, void *user_data)
{
	got *g = user_data;
	struct stat st;
	cr_assert_lt(g->n, 256);
	g->uid[g->n++] = strdup(in->sop_instance_uid);
	if (in->temporary)
		g->all_permanent = 0;
	if (stat(in->path, &st) != 0 || (uint64_t)st.st_size != in->size)
		g->paths_exist = 0;
	cr_assert_str_not_empty(in->sop_class_uid);
	cr_assert_not_null(in->transfer_syntax_uid); /* "" for files without a file meta */
	return 0;
}

static void got_sort_free_check(got *g, char **want, size_t nwant)
{
	for (size_t i = 1; i < g->n; i++)
		for (size_t j = i; j > 0 && strcmp(g->uid[j - 1], g->uid[j]) > 0; j--) {
			char *t = g->uid[j];
			g->uid[j] = g->uid[j - 1];
			g->uid[j - 1] = t;
		}
	cr_assert_eq(g->n, nwant);
	for (size_t i = 0; i < nwant; i++)
		cr_assert_str_eq(g->uid[i], want[i]);
	for (size_t i = 0; i < g->n; i++)
		free(g->uid[i]);
	g->n = 0;
}

/* log capture */
static char loglines[64][1024];
static int nlog;

static void on_log(int level, const char *domain, const char *message, void *user_data)
{
	if (nlog < 64)
		snprintf(loglines[nlog++], sizeof loglines[0], "%s", message);
}

static const char *log_with(const char *needle)
{
	for (int i = 0; i < nlog; i++)
		if (strstr(loglines[i], needle))
			return loglines[i];
	return NULL;
}

static void write_text(const char *path, const char *text)
{
	FILE *f = fopen(path, "w");
	cr_assert_not_null(f);
	fputs(text, f);
	fclose(f);
}

static void copy_file(const char *from, const char *to)
{
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "cp '%s' '%s'", from, to);
	run(cmd);
}

static const char *data(const char *rel)
{
	static char buf[1024];
	const char *root = getenv("DIANA_TEST_DATA");
	cr_assert_not_null(root, "DIANA_TEST_DATA not set");
	snprintf(buf, sizeof buf, "%s/dicom/%s", root, rel);
	return buf;
}

/* ------------------------------------------------------------------------ */
/* open, echo                                                                */
/* ------------------------------------------------------------------------ */

Test(folder, missing_folder_is_enotfound)
{
	diana_session *s = NULL;
	cr_assert_eq(diana_session_open(&s, path_in("nope"), NULL), DIANA_ENOTFOUND);
	cr_assert_null(s);
	write_text(path_in("file"), "x");
	cr_assert_eq(diana_session_open(&s, path_in("file"), NULL), DIANA_ENOTFOUND);
	cr_assert_null(s);
}

static int on_change(const diana_change *c, void *user_data)
{
	return 0;
}

Test(folder, file_uri_and_echo)
{
	char uri[600];
	diana_session *s = NULL;
	mkdir(path_in("d"), 0700);
	snprintf(uri, sizeof uri, "file://%s", path_in("d"));
	cr_assert_eq(diana_session_open(&s, uri, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(diana_session_kind(s), DIANA_SESSION_FOLDER);
	cr_assert_eq(diana_session_echo(s), 0);
	cr_assert_eq(rmdir(path_in("d")), 0);
	cr_assert_eq(diana_session_echo(s), DIANA_ENOTFOUND);
	cr_assert_eq(diana_session_changes(s, 0, 0, on_change, NULL, &(int64_t){ 0 }, NULL),
	             DIANA_EUNSUPPORTED);
	diana_session_free(s);
}

Test(folder, empty_folder_finds_nothing)
{
	answers a;
	mkdir(path_in("empty"), 0700);
	diana_session *s = open_folder(path_in("empty"));
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 0, NULL), 0);
	got g = { 0, { 0 }, 1, 1 };
	cr_assert_eq(diana_session_retrieve(s, "1.2.3", NULL, NULL, on_instance, &g, NULL),
	             DIANA_ENOTFOUND);
	diana_session_free(s);
}

/* corrupt, non-DICOM, DICOMDIR and hidden files are skipped and counted;
 * a symbolic link loop does not hang; nothing in the log names a file */
Test(folder, skips_and_counts_what_is_not_an_instance)
{
	answers a;
	synth("src");
	read_manifest("src");
	copy_file(data("malformed/rtplan_truncated.dcm"), path_in("src/DIANA-CT-001/truncated.dcm"));
	copy_file(data("malformed/no_meta.dcm"), path_in("src/DIANA-CT-002/no_meta"));
	write_text(path_in("src/DIANA-CT-001/notes.txt"), "not DICOM at all\n");
	write_text(path_in("src/DIANA-CT-001/empty.dcm"), "");
	copy_file(data("dicomdir/pydicom_dicomdirtests/DICOMDIR"), path_in("src/DICOMDIR"));
	copy_file(data("dicomdir/pydicom_dicomdirtests/DICOMDIR-implicit"),
	          path_in("src/DICOMDIR-implicit"));
	copy_file(path_in("src/DIANA-CT-002/1.dcm"), path_in("src/.hidden.dcm"));
	cr_assert_eq(symlink("..", path_in("src/DIANA-CT-002/loop")), 0);
	cr_assert_eq(symlink("/nonexistent/x", path_in("src/dangling")), 0);
	cr_assert_eq(mkfifo(path_in("src/fifo"), 0600), 0);

	nlog = 0;
	diana_log_set_handler(on_log, NULL);
	diana_log_set_level(DIANA_LOG_DEBUG);
	diana_session *s = open_folder(path_in("src"));
	diana_log_set_handler(NULL, NULL);
	const char *line = log_with("folder indexed");
	cr_assert_not_null(line, "no index log line");
	/* manifest.csv, truncated.dcm, no_meta, notes.txt, empty.dcm */
	cr_assert_not_null(strstr(line, " 5 not DICOM"), "%s", line);
	/* one by name, one by content (the two others are hidden or by name) */
	cr_assert_not_null(strstr(line, " 2 DICOMDIR"), "%s", line);
	cr_assert_not_null(strstr(line, "16 instances, 8 studies"), "%s", line);
	for (int i = 0; i < nlog; i++) {
		cr_assert_null(strstr(loglines[i], tmpdir), "a path in the log: %s", loglines[i]);
		cr_assert_null(strstr(loglines[i], "DIANA-CT"), "a file name in the log: %s", loglines[i]);
		cr_assert_null(strstr(loglines[i], "MUSTERMANN"), "a name in the log: %s", loglines[i]);
		cr_assert_null(strstr(loglines[i], ".txt"), "a file name in the log: %s", loglines[i]);
	}

	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 0, NULL), 8);
	for (int i = 0; i < nrows; i++)
		cr_assert(has_answer(&a, "StudyInstanceUID", rows[i].uid));
	answers_free(&a);
	diana_session_free(s);
}

/* ------------------------------------------------------------------------ */
/* find                                                                      */
/* ------------------------------------------------------------------------ */

Test(folder, find_by_accession_with_counts)
{
	answers a;
	synth("src");
	read_manifest("src");
	diana_session *s = open_folder(path_in("src"));
	for (int i = 0; i < nrows; i++) {
		char acc[64], n[16];
		const char *keys[] = { acc, "NumberOfStudyRelatedInstances",
			                   "NumberOfStudyRelatedSeries", "ModalitiesInStudy", "PatientID",
			                   "PatientName", "StudyDate" };
		snprintf(acc, sizeof acc, "AccessionNumber=%.31s", rows[i].acc);
		cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 7, keys), 1, "%s", rows[i].acc);
		cr_assert_str_eq(aget(&a, 0, "StudyInstanceUID"), rows[i].uid);
		cr_assert_str_eq(aget(&a, 0, "AccessionNumber"), rows[i].acc);
		cr_assert_str_eq(aget(&a, 0, "QueryRetrieveLevel"), "STUDY");
		snprintf(n, sizeof n, "%d", rows[i].instances);
		cr_assert_str_eq(aget(&a, 0, "NumberOfStudyRelatedInstances"), n);
		cr_assert_str_eq(aget(&a, 0, "NumberOfStudyRelatedSeries"), "1");
		cr_assert_str_eq(aget(&a, 0, "ModalitiesInStudy"), rows[i].modality);
		cr_assert_str_eq(aget(&a, 0, "PatientID"), rows[i].pid);
		cr_assert_str_eq(aget(&a, 0, "PatientName"), rows[i].name);
		cr_assert_str_eq(aget(&a, 0, "StudyDate"), rows[i].date);
		answers_free(&a);
	}
	const char *none[] = { "AccessionNumber=NO-SUCH" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, none), 0);
	diana_session_free(s);
}

Test(folder, find_by_name_wildcard_date_range_uid_list)
{
	answers a;
	char list[300];
	synth("src");
	read_manifest("src");
	diana_session *s = open_folder(path_in("src"));

	/* wildcards: MUSTERMANN^ERIKA has CT-001 and XR-004 */
	const char *k1[] = { "PatientName=MUSTER*", "AccessionNumber" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 2, k1), 2);
	cr_assert(has_answer(&a, "AccessionNumber", "DIANA-CT-001"));
	cr_assert(has_answer(&a, "AccessionNumber", "DIANA-XR-004"));
	/* stable order: by date */
	cr_assert_str_eq(aget(&a, 0, "AccessionNumber"), "DIANA-CT-001");
	answers_free(&a);
	const char *k1b[] = { "PatientName=D?E^*" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, k1b), 1);
	cr_assert_str_eq(aget(&a, 0, "StudyInstanceUID"), row_by_acc("DIANA-CT-002")->uid);
	answers_free(&a);
	/* non-ASCII names (UTF-8 from ISO_IR 100 and ISO_IR 192 files) */
	const char *k1c[] = { "PatientName=MÜLLER*" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, k1c), 1);
	cr_assert_str_eq(aget(&a, 0, "StudyInstanceUID"), row_by_acc("DIANA-CT-003")->uid);
	answers_free(&a);

	/* date ranges, compared with the manifest */
	const char *ranges[] = { "20240302-20240304", "20240401-", "-20240301", "20240402" };
	for (int r = 0; r < 4; r++) {
		char key[64], lo[16] = "", hi[16] = "";
		const char *dash = strchr(ranges[r], '-');
		if (dash) {
			snprintf(lo, sizeof lo, "%.*s", (int)(dash - ranges[r]), ranges[r]);
			snprintf(hi, sizeof hi, "%s", dash + 1);
		} else {
			snprintf(lo, sizeof lo, "%s", ranges[r]);
			snprintf(hi, sizeof hi, "%s", ranges[r]);
		}
		size_t want = 0;
		for (int i = 0; i < nrows; i++)
			if ((!*lo || strcmp(rows[i].date, lo) >= 0) && (!*hi || strcmp(rows[i].date, hi) <= 0))
				want++;
		cr_assert_gt(want, 0);
		snprintf(key, sizeof key, "StudyDate=%s", ranges[r]);
		const char *k2[] = { key };
		cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, k2), want, "%s", key);
		for (size_t i = 0; i < a.n; i++) {
			const char *d = aget(&a, i, "StudyDate");
			cr_assert((!*lo || strcmp(d, lo) >= 0) && (!*hi || strcmp(d, hi) <= 0));
		}
		answers_free(&a);
	}

	/* UID lists */
	snprintf(list, sizeof list, "StudyInstanceUID=%s\\%s\\1.2.3.4", rows[1].uid, rows[6].uid);
	const char *k3[] = { list };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, k3), 2);
	cr_assert(has_answer(&a, "StudyInstanceUID", rows[1].uid));
	cr_assert(has_answer(&a, "StudyInstanceUID", rows[6].uid));
	answers_free(&a);

	/* several keys together; ModalitiesInStudy as a matching key */
	const char *k4[] = { "ModalitiesInStudy=DX", "PatientSex=F" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 2, k4), 4); /* all XR patients are female */
	for (size_t i = 0; i < a.n; i++) {
		const char *uid = aget(&a, i, "StudyInstanceUID");
		int dx = 0;
		for (int r = 0; r < nrows; r++)
			dx |= strcmp(rows[r].uid, uid) == 0 && strcmp(rows[r].modality, "DX") == 0;
		cr_assert(dx);
	}
	answers_free(&a);

	/* an attribute the index does not hold: read from the files */
	const char *k5[] = { "InstitutionName=*", "BodyPartExamined=CHEST", "Modality=CT" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 3, k5), 4);
	cr_assert_str_not_empty(aget(&a, 0, "InstitutionName"));
	answers_free(&a);
	diana_session_free(s);
}

Test(folder, patient_series_instance_levels)
{
	answers a;
	const study_row *ct = NULL;
	synth("src");
	read_manifest("src");
	ct = row_by_acc("DIANA-CT-003");
	diana_session *s = open_folder(path_in("src"));

	const char *kp[] = { "PatientID", "PatientName", "NumberOfPatientRelatedStudies",
		                 "NumberOfPatientRelatedInstances" };
	cr_assert_eq(find(s, DIANA_LEVEL_PATIENT, &a, 4, kp), 6);
	for (size_t i = 0; i < a.n; i++) {
		char pid[64];
		snprintf(pid, sizeof pid, "%s", aget(&a, i, "PatientID"));
		int studies = 0, inst = 0;
		for (int r = 0; r < nrows; r++)
			if (strcmp(rows[r].pid, pid) == 0) {
				studies++;
				inst += rows[r].instances;
			}
		cr_assert_eq(atoi(aget(&a, i, "NumberOfPatientRelatedStudies")), studies, "%s", pid);
		cr_assert_eq(atoi(aget(&a, i, "NumberOfPatientRelatedInstances")), inst, "%s", pid);
		cr_assert_str_eq(aget(&a, i, "QueryRetrieveLevel"), "PATIENT");
		if (i)
			cr_assert_lt(strcmp(aget(&a, i - 1, "PatientID"), pid), 0, "not sorted");
	}
	answers_free(&a);

	char key[128];
	snprintf(key, sizeof key, "StudyInstanceUID=%s", ct->uid);
	const char *ks[] = { key, "Modality", "SeriesNumber", "NumberOfSeriesRelatedInstances",
		                 "SeriesDescription" };
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, &a, 5, ks), 1);
	cr_assert_str_eq(aget(&a, 0, "Modality"), "CT");
	cr_assert_str_eq(aget(&a, 0, "NumberOfSeriesRelatedInstances"), "3");
	cr_assert_str_eq(aget(&a, 0, "StudyInstanceUID"), ct->uid);
	cr_assert_str_eq(aget(&a, 0, "QueryRetrieveLevel"), "SERIES");
	cr_assert_str_not_empty(aget(&a, 0, "SeriesInstanceUID"));
	answers_free(&a);

	const char *km[] = { "Modality=DX", "SeriesInstanceUID" };
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, &a, 2, km), 4);
	answers_free(&a);

	const char *ki[] = { key, "InstanceNumber", "SOPClassUID" };
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, &a, 3, ki), 3);
	char *want[3];
	cr_assert_eq(sop_uids_of_dir(path_in("src/DIANA-CT-003"), want, 3), 3);
	for (size_t i = 0; i < 3; i++) {
		char n[8];
		snprintf(n, sizeof n, "%zu", i + 1);
		cr_assert_str_eq(aget(&a, i, "InstanceNumber"), n, "not in instance order");
		cr_assert_str_eq(aget(&a, i, "SOPClassUID"), "1.2.840.10008.5.1.4.1.1.2");
		cr_assert_str_eq(aget(&a, i, "QueryRetrieveLevel"), "IMAGE");
	}
	for (size_t i = 0; i < 3; i++) {
		cr_assert(has_answer(&a, "SOPInstanceUID", want[i]));
		diana_free(want[i]);
	}
	answers_free(&a);
	const char *kn[] = { "InstanceNumber=2", "Modality=CT" };
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, &a, 2, kn), 4);
	answers_free(&a);
	diana_session_free(s);
}

/* a study with two series of two modalities: derived keys and matching on them */
Test(folder, two_modalities_in_a_study)
{
	answers a;
	char json[1024], key[128];
	diana_dataset *ds = NULL;
	synth("src");
	read_manifest("src");
	const study_row *ct = row_by_acc("DIANA-CT-001");
	snprintf(json, sizeof json,
	         "{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.88.22\"]},"
	         "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.999.1\"]},"
	         "\"00080060\":{\"vr\":\"CS\",\"Value\":[\"SR\"]},"
	         "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"%s\"]},"
	         "\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},"
	         "\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.999\"]},"
	         "\"00200011\":{\"vr\":\"IS\",\"Value\":[99]}}",
	         ct->pid, ct->uid);
	cr_assert_eq(diana_dataset_from_json(&ds, json, 0), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_save(ds, path_in("src/DIANA-CT-001/sr.dcm")), 0);
	diana_dataset_free(ds);
	diana_session *s = open_folder(path_in("src"));

	snprintf(key, sizeof key, "StudyInstanceUID=%s", ct->uid);
	const char *k1[] = { key, "ModalitiesInStudy", "NumberOfStudyRelatedSeries",
		                 "NumberOfStudyRelatedInstances", "SOPClassesInStudy" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 5, k1), 1);
	cr_assert_str_eq(aget(&a, 0, "ModalitiesInStudy"), "CT\\SR");
	cr_assert_str_eq(aget(&a, 0, "NumberOfStudyRelatedSeries"), "2");
	cr_assert_str_eq(aget(&a, 0, "NumberOfStudyRelatedInstances"), "4");
	cr_assert_str_eq(aget(&a, 0, "SOPClassesInStudy"),
	                 "1.2.840.10008.5.1.4.1.1.2\\1.2.840.10008.5.1.4.1.1.88.22");
	answers_free(&a);

	const char *k2[] = { "ModalitiesInStudy=SR", "AccessionNumber" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 2, k2), 1);
	cr_assert_str_eq(aget(&a, 0, "StudyInstanceUID"), ct->uid);
	answers_free(&a);
	const char *k3[] = { "ModalitiesInStudy=CT" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, k3), 4);
	answers_free(&a);

	/* series in SeriesNumber order; each with its own count */
	const char *k4[] = { key, "Modality", "NumberOfSeriesRelatedInstances" };
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, &a, 3, k4), 2);
	cr_assert_str_eq(aget(&a, 0, "Modality"), "CT");
	cr_assert_str_eq(aget(&a, 0, "NumberOfSeriesRelatedInstances"), "3");
	cr_assert_str_eq(aget(&a, 1, "Modality"), "SR");
	cr_assert_str_eq(aget(&a, 1, "NumberOfSeriesRelatedInstances"), "1");
	answers_free(&a);
	/* the patient has both studies of MUSTERMANN: 2 studies, 3 series, 5 instances */
	char pk[64];
	snprintf(pk, sizeof pk, "PatientID=%s", ct->pid);
	const char *k5[] = { pk, "NumberOfPatientRelatedStudies", "NumberOfPatientRelatedSeries",
		                 "NumberOfPatientRelatedInstances" };
	cr_assert_eq(find(s, DIANA_LEVEL_PATIENT, &a, 4, k5), 1);
	cr_assert_str_eq(aget(&a, 0, "NumberOfPatientRelatedStudies"), "2");
	cr_assert_str_eq(aget(&a, 0, "NumberOfPatientRelatedSeries"), "3");
	cr_assert_str_eq(aget(&a, 0, "NumberOfPatientRelatedInstances"), "5");
	answers_free(&a);
	diana_session_free(s);
}

static int stop_now(const diana_dataset *ds, void *user_data)
{
	(*(int *)user_data)++;
	return 1;
}

Test(folder, find_callback_stops)
{
	int calls = 0;
	size_t count = 0;
	synth("src");
	diana_session *s = open_folder(path_in("src"));
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, NULL, 0, stop_now, &calls, &count),
	             DIANA_EUSER);
	cr_assert_eq(calls, 1);
	diana_session_free(s);
}

/* ------------------------------------------------------------------------ */
/* retrieve                                                                  */
/* ------------------------------------------------------------------------ */

Test(folder, retrieve_study_series_instance)
{
	answers a;
	char *want[8];
	size_t nwant;
	synth("src");
	read_manifest("src");
	const study_row *ct = row_by_acc("DIANA-CT-002");
	diana_session *s = open_folder(path_in("src"));
	nwant = sop_uids_of_dir(path_in("src/DIANA-CT-002"), want, 8);
	cr_assert_eq(nwant, 3);

	got g = { 0, { 0 }, 1, 1 };
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, on_instance, &g, &st), 0, "%s",
	             diana_error_message());
	cr_assert(g.all_permanent);
	cr_assert(g.paths_exist);
	cr_assert_eq(st.instances, 3);
	cr_assert_gt(st.bytes, 0);
	got_sort_free_check(&g, want, nwant);

	char key[128];
	snprintf(key, sizeof key, "StudyInstanceUID=%s", ct->uid);
	const char *ks[] = { key };
	cr_assert_eq(find(s, DIANA_LEVEL_SERIES, &a, 1, ks), 1);
	char series[80];
	snprintf(series, sizeof series, "%s", aget(&a, 0, "SeriesInstanceUID"));
	answers_free(&a);
	cr_assert_eq(diana_session_retrieve(s, ct->uid, series, NULL, on_instance, &g, NULL), 0);
	got_sort_free_check(&g, want, nwant);
	cr_assert_eq(diana_session_retrieve(s, ct->uid, series, want[1], on_instance, &g, NULL), 0);
	got_sort_free_check(&g, want + 1, 1);
	/* a series of another study, an unknown instance */
	cr_assert_eq(diana_session_retrieve(s, row_by_acc("DIANA-CT-001")->uid, series, NULL,
	                                    on_instance, &g, NULL),
	             DIANA_ENOTFOUND);
	cr_assert_eq(diana_session_retrieve(s, ct->uid, series, "1.2.3", on_instance, &g, NULL),
	             DIANA_ENOTFOUND);
	cr_assert_eq(g.n, 0);

	/* retrieve_to_folder copies */
	cr_assert_eq(diana_session_retrieve_to_folder(s, ct->uid, NULL, NULL, path_in("out"), NULL),
	             0, "%s", diana_error_message());
	char p[1024];
	snprintf(p, sizeof p, "%s/%s/%s/%s.dcm", path_in("out"), ct->uid, series, want[0]);
	cr_assert_eq(access(p, R_OK), 0);
	for (size_t i = 0; i < nwant; i++)
		diana_free(want[i]);
	diana_session_free(s);
}

static int keep_into(const diana_instance *in, void *user_data)
{
	char p[1024];
	snprintf(p, sizeof p, "%s/%s.dcm", (const char *)user_data, in->sop_instance_uid);
	return diana_instance_keep(in, p);
}

static int stop_retrieve(const diana_instance *in, void *user_data)
{
	(*(int *)user_data)++;
	return 7;
}

static int cancel_after_first(const diana_instance *in, void *user_data)
{
	diana_session_cancel(user_data);
	return 0;
}

static int cancel_in_find(const diana_dataset *ds, void *user_data)
{
	diana_session_cancel(user_data);
	return 0;
}

Test(folder, cancel_stops_retrieve_and_find)
{
	answers a;
	synth("src");
	read_manifest("src");
	diana_session *s = open_folder(path_in("src"));
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	cr_assert_eq(diana_session_retrieve(s, row_by_acc("DIANA-CT-001")->uid, NULL, NULL,
	                                    cancel_after_first, s, &st),
	             DIANA_ECANCELLED);
	cr_assert_eq(st.instances, 1);
	size_t count = 0;
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, NULL, 0, cancel_in_find, s, &count),
	             DIANA_ECANCELLED);
	cr_assert_eq(count, 1);
	/* cleared when the operation returned: the session works again */
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 0, NULL), 8);
	answers_free(&a);
	diana_session_free(s);
}

Test(folder, retrieve_keep_copies_and_stop)
{
	int calls = 0;
	synth("src");
	read_manifest("src");
	const study_row *ct = row_by_acc("DIANA-CT-004");
	diana_session *s = open_folder(path_in("src"));
	mkdir(path_in("kept"), 0700);
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, keep_into, (void *)path_in("kept"), NULL),
	             0, "%s", diana_error_message());
	char *want[4], *kept[4];
	cr_assert_eq(sop_uids_of_dir(path_in("kept"), kept, 4), 3);
	cr_assert_eq(sop_uids_of_dir(path_in("src/DIANA-CT-004"), want, 4), 3, "source changed");
	for (int i = 0; i < 3; i++) {
		cr_assert_str_eq(kept[i], want[i]);
		diana_free(kept[i]);
		diana_free(want[i]);
	}
	cr_assert_eq(diana_session_retrieve(s, ct->uid, NULL, NULL, stop_retrieve, &calls, NULL),
	             DIANA_EUSER);
	cr_assert_eq(calls, 1);
	/* a file removed after indexing: the others still come, the error says so */
	got g = { 0, { 0 }, 1, 1 };
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	cr_assert_eq(unlink(path_in("src/DIANA-CT-004/2.dcm")), 0);
	cr_assert_lt(diana_session_retrieve(s, ct->uid, NULL, NULL, on_instance, &g, &st), 0);
	cr_assert_eq(g.n, 2);
	cr_assert_eq(st.failed, 1);
	for (size_t i = 0; i < g.n; i++)
		free(g.uid[i]);
	diana_session_free(s);
}

/* ------------------------------------------------------------------------ */
/* store                                                                     */
/* ------------------------------------------------------------------------ */

typedef struct store_log {
	int n;
	int status[16];
} store_log;

static int on_store(size_t index, const char *path, int status, void *user_data)
{
	store_log *l = user_data;
	cr_assert_eq((int)index, l->n);
	l->status[l->n++] = status;
	if (status)
		cr_assert_str_not_empty(diana_error_message());
	return 0;
}

static size_t count_files(const char *dir)
{
	char cmd[600];
	FILE *p;
	size_t n = 0;
	snprintf(cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_eq(fscanf(p, "%zu", &n), 1);
	pclose(p);
	return n;
}

Test(folder, store_into_empty_folder_then_find)
{
	answers a;
	synth("src");
	read_manifest("src");
	mkdir(path_in("dest"), 0700);
	diana_session *s = open_folder(path_in("dest"));
	const char *paths[] = { path_in("src/DIANA-CT-001/1.dcm"), path_in("src/DIANA-CT-001/2.dcm"),
		                    path_in("src/DIANA-CT-001/3.dcm"), path_in("src/DIANA-XR-002/1.dcm") };
	store_log l = { 0, { 0 } };
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	cr_assert_eq(diana_session_store(s, paths, 4, on_store, &l, &st), 0, "%s",
	             diana_error_message());
	cr_assert_eq(l.n, 4);
	cr_assert_eq(st.instances, 4);
	cr_assert_eq(st.failed, 0);
	cr_assert_eq(count_files(path_in("dest")), 4);

	/* the layout: <study>/<series>/<sop>.dcm, mode 0600, same bytes */
	const study_row *ct = row_by_acc("DIANA-CT-001");
	char *series = file_get(paths[0], "SeriesInstanceUID"), *sop = file_get(paths[0], "SOPInstanceUID");
	char p[1024], cmd[2200];
	struct stat sb;
	snprintf(p, sizeof p, "%s/%s/%s/%s.dcm", path_in("dest"), ct->uid, series, sop);
	cr_assert_eq(stat(p, &sb), 0);
	cr_assert_eq(sb.st_mode & 0777, 0600);
	snprintf(cmd, sizeof cmd, "cmp -s '%s' '%s'", p, paths[0]);
	run(cmd);

	const char *k[] = { "NumberOfStudyRelatedInstances", "AccessionNumber" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 2, k), 2);
	cr_assert(has_answer(&a, "StudyInstanceUID", ct->uid));
	cr_assert(has_answer(&a, "NumberOfStudyRelatedInstances", "3"));
	answers_free(&a);
	got g = { 0, { 0 }, 1, 1 };
	cr_assert_eq(diana_session_retrieve(s, ct->uid, series, sop, on_instance, &g, NULL), 0);
	cr_assert_eq(g.n, 1);
	free(g.uid[0]);
	diana_session_free(s);

	/* a new session indexes what was stored */
	s = open_folder(path_in("dest"));
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, &a, 0, NULL), 4);
	answers_free(&a);
	diana_session_free(s);
	diana_free(series);
	diana_free(sop);
}

Test(folder, store_twice_keeps_one_copy)
{
	answers a;
	synth("src");
	mkdir(path_in("dest"), 0700);
	diana_session *s = open_folder(path_in("dest"));
	const char *paths[] = { path_in("src/DIANA-XR-001/1.dcm"), path_in("src/DIANA-XR-001/1.dcm") };
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	cr_assert_eq(diana_session_store(s, paths, 2, NULL, NULL, &st), 0);
	cr_assert_eq(diana_session_store(s, paths, 1, NULL, NULL, NULL), 0);
	cr_assert_eq(count_files(path_in("dest")), 1);
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, &a, 0, NULL), 1);
	answers_free(&a);
	const char *k[] = { "NumberOfStudyRelatedInstances" };
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 1, k), 1);
	cr_assert_str_eq(aget(&a, 0, "NumberOfStudyRelatedInstances"), "1");
	answers_free(&a);
	diana_session_free(s);

	/* storing a folder's own files into itself: still one copy each */
	s = open_folder(path_in("src"));
	const char *own[] = { path_in("src/DIANA-XR-001/1.dcm") };
	cr_assert_eq(diana_session_store(s, own, 1, NULL, NULL, NULL), 0);
	cr_assert_eq(find(s, DIANA_LEVEL_INSTANCE, &a, 0, NULL), 16);
	answers_free(&a);
	diana_session_free(s);
}

Test(folder, a_bad_file_fails_alone)
{
	answers a;
	synth("src");
	mkdir(path_in("dest"), 0700);
	write_text(path_in("notdicom.dcm"), "hello, I am not DICOM\n");
	diana_session *s = open_folder(path_in("dest"));
	const char *paths[] = { path_in("src/DIANA-CT-001/1.dcm"), path_in("notdicom.dcm"),
		                    data("malformed/rtplan_truncated.dcm"), path_in("missing.dcm"),
		                    path_in("src/DIANA-XR-003/1.dcm") };
	store_log l = { 0, { 0 } };
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	cr_assert_eq(diana_session_store(s, paths, 5, on_store, &l, &st), DIANA_EDICOM);
	cr_assert_eq(l.n, 5);
	cr_assert_eq(l.status[0], 0);
	cr_assert_eq(l.status[1], DIANA_EDICOM);
	cr_assert_eq(l.status[2], DIANA_EDICOM);
	cr_assert_eq(l.status[3], DIANA_ENOTFOUND);
	cr_assert_eq(l.status[4], 0);
	cr_assert_eq(st.instances, 2);
	cr_assert_eq(st.failed, 3);
	cr_assert_eq(count_files(path_in("dest")), 2);
	cr_assert_eq(find(s, DIANA_LEVEL_STUDY, &a, 0, NULL), 2);
	answers_free(&a);
	diana_session_free(s);
}

/* a UID crafted to climb out of the folder is refused, nothing escapes */
Test(folder, crafted_uids_cannot_escape)
{
	static const char *const bad[] = { "../../escaped", "..", "1.2/../../escaped", "1.2.", "1..2",
		                               "/tmp/escaped",
		                               /* 65 characters */
		                               "1.234567890123456789012345678901234567890123456789012345678901234" };
	mkdir(path_in("dest"), 0700);
	diana_session *s = open_folder(path_in("dest"));
	for (size_t b = 0; b < sizeof bad / sizeof bad[0]; b++) {
		for (int which = 0; which < 3; which++) {
			char json[2048], file[64];
			const char *study = which == 0 ? bad[b] : "1.2.3";
			const char *series = which == 1 ? bad[b] : "1.2.3.4";
			const char *sop = which == 2 ? bad[b] : "1.2.3.4.5";
			snprintf(json, sizeof json,
			         "{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
			         "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},"
			         "\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},"
			         "\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"%s\"]}}",
			         sop, study, series);
			diana_dataset *ds = NULL;
			cr_assert_eq(diana_dataset_from_json(&ds, json, 0), 0, "%s", diana_error_message());
			snprintf(file, sizeof file, "crafted-%zu-%d.dcm", b, which);
			cr_assert_eq(diana_dataset_save(ds, path_in(file)), 0, "%s", diana_error_message());
			diana_dataset_free(ds);
			char *check = file_get(path_in(file), which == 0   ? "StudyInstanceUID"
			                                      : which == 1 ? "SeriesInstanceUID"
			                                                   : "SOPInstanceUID");
			cr_assert_not_null(check);
			cr_assert_str_eq(check, bad[b], "the crafted file does not hold the crafted UID");
			diana_free(check);
			const char *paths[] = { path_in(file) };
			store_log l = { 0, { 0 } };
			cr_assert_eq(diana_session_store(s, paths, 1, on_store, &l, NULL), DIANA_EDICOM,
			             "%s accepted", bad[b]);
			cr_assert_eq(l.status[0], DIANA_EDICOM);
		}
	}
	cr_assert_eq(count_files(path_in("dest")), 0);
	cr_assert_neq(access(path_in("escaped"), F_OK), 0);
	cr_assert_neq(access(path_in("escaped.dcm"), F_OK), 0);
	cr_assert_neq(access("/tmp/escaped.dcm", F_OK), 0);
	diana_session_free(s);
}

/* ------------------------------------------------------------------------ */
/* the corpus                                                                */
/* ------------------------------------------------------------------------ */

/* every study the files of tests/data/dicom name is found, with as many
 * instances as distinct SOP Instance UIDs the files hold */
Test(folder, corpus_copy, .timeout = 300)
{
	answers a;
	char cmd[2200];
	snprintf(cmd, sizeof cmd, "cp -r '%s' '%s'", data(""), path_in("corpus"));
	run(cmd);
	diana_session *s = open_folder(path_in("corpus"));
	const char *k[] = { "NumberOfStudyRelatedInstances" };
	size_t n = find(s, DIANA_LEVEL_STUDY, &a, 1, k);
	cr_assert_gt(n, 10);
	size_t total = 0;
	for (size_t i = 0; i < n; i++) {
		const char *uid = aget(&a, i, "StudyInstanceUID");
		got g = { 0, { 0 }, 1, 1 };
		cr_assert_eq(diana_session_retrieve(s, uid, NULL, NULL, on_instance, &g, NULL), 0);
		cr_assert_eq(g.n, (size_t)atoi(aget(&a, i, "NumberOfStudyRelatedInstances")));
		total += g.n;
		for (size_t j = 0; j < g.n; j++)
			free(g.uid[j]);
	}
	answers_free(&a);
	/* the same count from the files, read one by one here */
	snprintf(cmd, sizeof cmd, "find '%s' -type f ! -name 'DICOMDIR*' ! -name '.*'",
	         path_in("corpus"));
	FILE *p = popen(cmd, "r");
	char line[1024], *seen[512];
	size_t nseen = 0;
	cr_assert_not_null(p);
	while (fgets(line, sizeof line, p)) {
		line[strcspn(line, "\n")] = 0;
		char *sop = file_get(line, "SOPInstanceUID");
		char *study = file_get(line, "StudyInstanceUID");
		char *series = file_get(line, "SeriesInstanceUID");
		char *cls = file_get(line, "MediaStorageSOPClassUID");
		int dup = 0;
		if (sop && study && series && *sop && *study && *series &&
		    !(cls && strcmp(cls, "1.2.840.10008.1.3.10") == 0)) {
			for (size_t j = 0; j < nseen; j++)
				dup |= strcmp(seen[j], sop) == 0;
			if (!dup) {
				cr_assert_lt(nseen, 512);
				seen[nseen++] = strdup(sop);
			}
		}
		diana_free(sop);
		diana_free(study);
		diana_free(series);
		diana_free(cls);
	}
	pclose(p);
	cr_assert_eq(total, nseen);
	for (size_t j = 0; j < nseen; j++)
		free(seen[j]);
	diana_session_free(s);
}

static int count_only(const diana_dataset *ds, void *user_data)
{
	return 0;
}

/* Measurement, not a check: DIANA_FOLDER_BENCH=DIR indexes DIR and prints
 * the time (see doc/session-folder.md). */
Test(folder, bench_index, .timeout = 3600)
{
	const char *dir = getenv("DIANA_FOLDER_BENCH");
	struct timespec t0, t1;
	size_t count = 0;
	if (!dir || !*dir)
		cr_skip_test("DIANA_FOLDER_BENCH not set");
	clock_gettime(CLOCK_MONOTONIC, &t0);
	diana_session *s = open_folder(dir);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_INSTANCE, NULL, 0, count_only, NULL, &count), 0);
	fprintf(stderr, "folder bench: %zu instances indexed in %.3f s\n", count,
	        (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	diana_session_free(s);
}
