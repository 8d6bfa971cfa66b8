/*
 * Tests of the key file (lib/deid/scan/keyfile.c) and diana_key_lookup().
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "deid/deid.h"
#include "deid/scan/keyfile.h"

static char tmpdir[256];
static char kpath[300];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/diana-keyfile-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	snprintf(kpath, sizeof kpath, "%s/key.csv", tmpdir);
}

static void teardown(void)
{
	char cmd[300];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(keyfile, .init = setup, .fini = teardown, .timeout = 120);

static const char *HEADER =
	"OriginalPatientName,OriginalPatientID,OriginalPatientBirthDate,OriginalAccessionNumber,"
	"OriginalStudyInstanceUID,OriginalStudyDate,PseudoPatientName,PseudoPatientID,"
	"PseudoPatientBirthDate,PseudoAccessionNumber,PseudoStudyInstanceUID,PseudoStudyDate\r\n";

static char *slurp(const char *path, size_t *len)
{
	uint8_t *data = NULL;
	size_t n = 0;
	cr_assert_eq(diana__file_read(path, 0, &data, &n), 0, "%s", diana_error_message());
	if (len)
		*len = n;
	return (char *)data;
}

static void spit(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* a row for study `n` */
static void row_for(int n, char buf[12][64], const char *fields[12])
{
	int i;
	for (i = 0; i < 12; i++) {
		snprintf(buf[i], 64, "F%d-%d", i, n);
		fields[i] = buf[i];
	}
	snprintf(buf[4], 64, "1.2.3.%d", n);
	fields[4] = buf[4];
}

struct collected {
	int rows;
	char studies[4096][64];
	char last[12][256];
};

static int collect(const char *const *fields, void *ud)
{
	struct collected *c = ud;
	int i;
	if (c->rows < 4096)
		snprintf(c->studies[c->rows], 64, "%s", fields[4]);
	for (i = 0; i < 12; i++)
		snprintf(c->last[i], 256, "%s", fields[i]);
	c->rows++;
	return 0;
}

static struct collected *read_all(const char *path, int expect_rc)
{
	struct collected *c = calloc(1, sizeof *c);
	int rc = diana__keyfile_read(path, collect, c);
	cr_assert_eq(rc, expect_rc, "read: %d %s", rc, diana_error_message());
	return c;
}

/* every study of 0..n-1 exactly once */
static void assert_each_once(const struct collected *c, int n)
{
	char *seen = calloc((size_t)n, 1);
	int i;
	cr_assert_eq(c->rows, n, "rows: %d, expected %d", c->rows, n);
	for (i = 0; i < c->rows; i++) {
		int k;
		cr_assert_eq(sscanf(c->studies[i], "1.2.3.%d", &k), 1);
		cr_assert(k >= 0 && k < n);
		cr_assert_eq(seen[k], 0, "study %d listed twice", k);
		seen[k] = 1;
	}
	free(seen);
}

Test(keyfile, created_0600_with_header)
{
	diana__keyfile *k = NULL;
	struct stat st;
	mode_t old = umask(0);
	char *text;

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0, "%s", diana_error_message());
	umask(old);
	cr_assert_eq(stat(kpath, &st), 0);
	cr_assert_eq(st.st_mode & 0777, 0600, "mode %o", (unsigned)(st.st_mode & 0777));
	text = slurp(kpath, NULL);
	cr_assert_str_eq(text, HEADER);
	free(text);
	diana__keyfile_close(k);
	/* reopening an existing key file keeps it as it is */
	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	diana__keyfile_close(k);
	text = slurp(kpath, NULL);
	cr_assert_str_eq(text, HEADER);
	free(text);
}

Test(keyfile, one_row_per_study)
{
	diana__keyfile *k = NULL;
	char buf[12][64];
	const char *f[12];
	struct collected *c;

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	row_for(1, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	cr_assert_eq(diana__keyfile_append(k, f), 0);
	row_for(2, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	diana__keyfile_close(k);
	/* studies are loaded on open */
	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	row_for(1, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 0);
	row_for(3, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	diana__keyfile_close(k);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 3);
	cr_assert_str_eq(c->studies[0], "1.2.3.1");
	cr_assert_str_eq(c->studies[2], "1.2.3.3");
	cr_assert_str_eq(c->last[11], "F11-3");
	free(c);
}

Test(keyfile, rows_of_another_writer_are_seen_before_appending)
{
	diana__keyfile *a = NULL, *b = NULL;
	char buf[12][64];
	const char *f[12];
	struct collected *c;

	cr_assert_eq(diana__keyfile_open(&a, kpath), 0);
	cr_assert_eq(diana__keyfile_open(&b, kpath), 0);
	row_for(7, buf, f);
	cr_assert_eq(diana__keyfile_append(b, f), 1);
	/* a loaded the file before b wrote: the tail is re-read under the lock */
	cr_assert_eq(diana__keyfile_append(a, f), 0);
	diana__keyfile_close(a);
	diana__keyfile_close(b);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 1);
	free(c);
}

Test(keyfile, refuses_bad_rows)
{
	diana__keyfile *k = NULL;
	char buf[12][64];
	const char *f[12];
	char *text;

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	row_for(1, buf, f);
	f[4] = "";
	cr_assert_eq(diana__keyfile_append(k, f), DIANA_EINVAL);
	f[4] = NULL;
	cr_assert_eq(diana__keyfile_append(k, f), DIANA_EINVAL);
	row_for(1, buf, f);
	f[0] = "bad \xC3\x28 utf8";
	cr_assert_eq(diana__keyfile_append(k, f), DIANA_EINVAL);
	cr_assert_null(strstr(diana_error_message(), "bad"), "no value in errors");
	row_for(1, buf, f);
	f[3] = NULL; /* NULL = empty */
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	diana__keyfile_close(k);
	text = slurp(kpath, NULL);
	cr_assert_not_null(strstr(text, "F2-1,,1.2.3.1,"));
	free(text);
}

static const char *nasty[12] = {
	"DOE^JOHN, \"JR\"",              /* comma and quotes */
	"line1\nline2\r\nline3",         /* line breaks */
	"19710203",
	" spaces around ",
	"1.2.840.99.1",
	"\"",
	"MÜLLER^JÜRGEN",                /* UTF-8 */
	"ΠΑΠΑΔΟΠΟΥΛΟΥ^ΕΛΕΝΗ",
	"山田^太郎=やまだ^たろう",
	"",
	"a,b,c",
	"trailing\r",
};

Test(keyfile, quoting_round_trip)
{
	diana__keyfile *k = NULL;
	struct collected *c;
	char *text;
	int i;

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	cr_assert_eq(diana__keyfile_append(k, nasty), 1);
	cr_assert_eq(diana__keyfile_append(k, nasty), 0);
	diana__keyfile_close(k);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 1);
	for (i = 0; i < 12; i++)
		cr_assert_str_eq(c->last[i], nasty[i], "field %d", i);
	free(c);
	text = slurp(kpath, NULL);
	/* RFC 4180: quotes doubled inside a quoted field */
	cr_assert_not_null(strstr(text, "\"DOE^JOHN, \"\"JR\"\"\""));
	cr_assert_not_null(strstr(text, ",\"\"\"\","));
	cr_assert_not_null(strstr(text, ",\"a,b,c\","));
	free(text);
	/* Python's csv module reads it back the same way */
	{
		char cmd[1024];
		snprintf(cmd, sizeof cmd,
		         "/usr/bin/python3 -c 'import csv,sys; r=list(csv.reader(open(sys.argv[1], "
		         "newline=\"\", encoding=\"utf-8\"))); assert len(r)==2 and len(r[1])==12, r; "
		         "assert r[1][0]==\"DOE^JOHN, \\\"JR\\\"\", r[1][0]; "
		         "assert r[1][1]==\"line1\\nline2\\r\\nline3\", r[1][1]' '%s'",
		         kpath);
		cr_assert_eq(system(cmd), 0);
	}
}

Test(keyfile, reads_lf_and_bom)
{
	struct collected *c;
	char text[2048];
	char *p;

	snprintf(text, sizeof text, "\xEF\xBB\xBF%s", HEADER);
	p = strstr(text, "\r\n");
	memmove(p, p + 1, strlen(p + 1) + 1); /* LF line end */
	strcat(text, "a,b,c,d,1.2.3,f,g,h,i,j,k,l\n");
	spit(kpath, text);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 1);
	cr_assert_str_eq(c->last[0], "a");
	cr_assert_str_eq(c->last[11], "l");
	free(c);
}

Test(keyfile, refuses_foreign_files)
{
	diana__keyfile *k = (diana__keyfile *)1;
	char *text;
	struct collected *c;

	spit(kpath, "name,id,date\r\nx,y,z\r\n");
	cr_assert_eq(diana__keyfile_open(&k, kpath), DIANA_EINVAL);
	cr_assert_null(k);
	c = read_all(kpath, DIANA_EINVAL);
	free(c);
	text = slurp(kpath, NULL);
	cr_assert_str_eq(text, "name,id,date\r\nx,y,z\r\n", "a foreign file is never modified");
	free(text);

	/* our header, but a row with another number of fields */
	{
		char buf[2048];
		snprintf(buf, sizeof buf, "%sa,b,c\r\n", HEADER);
		spit(kpath, buf);
	}
	c = read_all(kpath, DIANA_EINVAL);
	free(c);
	cr_assert_eq(diana__keyfile_open(&k, kpath), DIANA_EINVAL);

	/* not CSV: text after a closing quote */
	{
		char buf[2048];
		snprintf(buf, sizeof buf, "%s\"a\"x,b,c,d,e,f,g,h,i,j,k,l\r\n", HEADER);
		spit(kpath, buf);
	}
	c = read_all(kpath, DIANA_EINVAL);
	free(c);

	/* a folder, a missing file */
	cr_assert_eq(diana__keyfile_open(&k, tmpdir), DIANA_EINVAL);
	c = read_all("/nonexistent/key.csv", DIANA_ENOTFOUND);
	free(c);
	cr_assert_eq(diana__keyfile_open(&k, "/nonexistent/dir/key.csv"), DIANA_ENOTFOUND);
}

Test(keyfile, torn_last_row_ignored_and_repaired)
{
	diana__keyfile *k = NULL;
	char buf[12][64];
	const char *f[12];
	struct collected *c;
	char text[4096], *after;
	size_t len;

	/* a complete row, then a row cut inside a quoted field holding a line break */
	snprintf(text, sizeof text,
	         "%sA,B,C,D,1.2.3.1,F,G,H,I,J,K,L\r\n"
	         "\"X\nY\",B,C,D,1.2.3.2,F,\"partial",
	         HEADER);
	spit(kpath, text);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 1, "the torn row is ignored on read");
	free(c);

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0, "%s", diana_error_message());
	after = slurp(kpath, &len);
	snprintf(text, sizeof text, "%sA,B,C,D,1.2.3.1,F,G,H,I,J,K,L\r\n", HEADER);
	cr_assert_str_eq(after, text, "open for append cuts the torn row");
	free(after);
	/* the torn row's study was never listed: it can be written now */
	row_for(2, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	diana__keyfile_close(k);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 2);
	cr_assert_str_eq(c->studies[1], "1.2.3.2");
	free(c);
}

Test(keyfile, torn_row_of_another_writer_repaired_under_the_lock)
{
	diana__keyfile *k = NULL;
	char buf[12][64];
	const char *f[12];
	struct collected *c;
	FILE *fp;

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	row_for(1, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	/* another process crashes in the middle of its row */
	fp = fopen(kpath, "ab");
	fputs("P,Q,R,S,1.2.3.9,T,U", fp);
	fclose(fp);
	row_for(2, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), 1);
	diana__keyfile_close(k);
	c = read_all(kpath, 0);
	cr_assert_eq(c->rows, 2);
	cr_assert_str_eq(c->studies[0], "1.2.3.1");
	cr_assert_str_eq(c->studies[1], "1.2.3.2");
	free(c);
}

Test(keyfile, torn_header_repaired)
{
	diana__keyfile *k = NULL;
	char *text;
	struct collected *c;

	spit(kpath, "OriginalPatientName,OriginalPat");
	c = read_all(kpath, 0); /* nothing to read yet */
	cr_assert_eq(c->rows, 0);
	free(c);
	cr_assert_eq(diana__keyfile_open(&k, kpath), 0, "%s", diana_error_message());
	diana__keyfile_close(k);
	text = slurp(kpath, NULL);
	cr_assert_str_eq(text, HEADER);
	free(text);
	/* an empty file (creator crashed before the header) too */
	spit(kpath, "");
	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	diana__keyfile_close(k);
	text = slurp(kpath, NULL);
	cr_assert_str_eq(text, HEADER);
	free(text);
}

Test(keyfile, replaced_file_is_an_error)
{
	diana__keyfile *k = NULL;
	char buf[12][64];
	const char *f[12];

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	cr_assert_eq(unlink(kpath), 0);
	row_for(1, buf, f);
	cr_assert_eq(diana__keyfile_append(k, f), DIANA_EIO);
	diana__keyfile_close(k);
}

/* --- concurrency ---------------------------------------------------------- */

#define NSTUDIES 120
#define NTHREADS 8

struct thr {
	diana__keyfile *k; /* shared handle, or NULL: open one */
	int seed;
	int written;
	int err;
};

static void *append_all(void *arg)
{
	struct thr *t = arg;
	diana__keyfile *k = t->k;
	int order[NSTUDIES], i;

	if (!k && diana__keyfile_open(&k, kpath) != 0) {
		t->err = 1;
		return NULL;
	}
	for (i = 0; i < NSTUDIES; i++)
		order[i] = i;
	srand((unsigned)t->seed);
	for (i = NSTUDIES - 1; i > 0; i--) {
		int j = rand() % (i + 1), x = order[i];
		order[i] = order[j];
		order[j] = x;
	}
	for (i = 0; i < NSTUDIES; i++) {
		char buf[12][64];
		const char *f[12];
		int rc;
		row_for(order[i], buf, f);
		rc = diana__keyfile_append(k, f);
		if (rc < 0)
			t->err = 1;
		else
			t->written += rc;
	}
	if (!t->k)
		diana__keyfile_close(k);
	return NULL;
}

static void run_threads(int shared)
{
	pthread_t th[NTHREADS];
	struct thr t[NTHREADS];
	diana__keyfile *k = NULL;
	struct collected *c;
	int i, written = 0;

	if (shared)
		cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	for (i = 0; i < NTHREADS; i++) {
		t[i].k = k;
		t[i].seed = i + 1;
		t[i].written = 0;
		t[i].err = 0;
		cr_assert_eq(pthread_create(&th[i], NULL, append_all, &t[i]), 0);
	}
	for (i = 0; i < NTHREADS; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(t[i].err, 0);
		written += t[i].written;
	}
	diana__keyfile_close(k);
	cr_assert_eq(written, NSTUDIES, "appends that reported a new row: %d", written);
	c = read_all(kpath, 0);
	assert_each_once(c, NSTUDIES);
	free(c);
}

Test(keyfile, eight_threads_one_handle)
{
	run_threads(1);
}

Test(keyfile, eight_threads_own_handles)
{
	run_threads(0);
}

Test(keyfile, processes_append_concurrently)
{
	pid_t pids[4];
	struct collected *c;
	int i, status;

	for (i = 0; i < 4; i++) {
		pids[i] = fork();
		cr_assert_neq(pids[i], -1);
		if (pids[i] == 0) {
			/* two threads with own handles in each process */
			pthread_t th[2];
			struct thr t[2];
			int j, bad = 0;
			for (j = 0; j < 2; j++) {
				t[j].k = NULL;
				t[j].seed = 100 + i * 2 + j;
				t[j].written = 0;
				t[j].err = 0;
				pthread_create(&th[j], NULL, append_all, &t[j]);
			}
			for (j = 0; j < 2; j++) {
				pthread_join(th[j], NULL);
				bad |= t[j].err;
			}
			_exit(bad ? 1 : 0);
		}
	}
	for (i = 0; i < 4; i++) {
		cr_assert_eq(waitpid(pids[i], &status, 0), pids[i]);
		cr_assert(WIFEXITED(status) && WEXITSTATUS(status) == 0);
	}
	c = read_all(kpath, 0);
	assert_each_once(c, NSTUDIES);
	free(c);
}

/* --- diana_key_lookup ------------------------------------------------------ */

Test(keyfile, lookup)
{
	diana__keyfile *k = NULL;
	char buf[12][64];
	const char *f[12];
	char *json = (char *)1;
	cJSON *o;
	int i;

	cr_assert_eq(diana__keyfile_open(&k, kpath), 0);
	for (i = 0; i < 5; i++) {
		row_for(i, buf, f);
		cr_assert_eq(diana__keyfile_append(k, f), 1);
	}
	cr_assert_eq(diana__keyfile_append(k, nasty), 1);
	diana__keyfile_close(k);

	cr_assert_eq(diana_key_lookup(kpath, "PseudoPatientID", "F7-3", &json), 0, "%s",
	             diana_error_message());
	o = cJSON_Parse(json);
	cr_assert_not_null(o);
	cr_assert_eq(cJSON_GetArraySize(o), 12);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "OriginalStudyInstanceUID")->valuestring, "1.2.3.3");
	cr_assert_str_eq(cJSON_GetObjectItem(o, "PseudoStudyDate")->valuestring, "F11-3");
	cJSON_Delete(o);
	diana_free(json);

	/* quoted fields come back exactly */
	cr_assert_eq(diana_key_lookup(kpath, "PseudoPatientName", nasty[6], &json), 0);
	o = cJSON_Parse(json);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "OriginalPatientID")->valuestring, nasty[1]);
	cr_assert_str_eq(cJSON_GetObjectItem(o, "OriginalPatientName")->valuestring, nasty[0]);
	cJSON_Delete(o);
	diana_free(json);

	cr_assert_eq(diana_key_lookup(kpath, "PseudoPatientID", "nope", &json), DIANA_ENOTFOUND);
	cr_assert_null(json);
	cr_assert_null(strstr(diana_error_message(), "nope"), "no value in errors");
	cr_assert_eq(diana_key_lookup(kpath, "PatientID", "F1-3", &json), DIANA_EINVAL);
	cr_assert_eq(diana_key_lookup(kpath, NULL, "F1-3", &json), DIANA_EINVAL);
	cr_assert_eq(diana_key_lookup("/nonexistent/key.csv", "PseudoPatientID", "x", &json), DIANA_ENOTFOUND);
	spit(kpath, "name,id\r\n");
	cr_assert_eq(diana_key_lookup(kpath, "PseudoPatientID", "x", &json), DIANA_EINVAL);
}
