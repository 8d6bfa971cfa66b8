/*
 * Unit test of DICOMweb sessions (lib/session/dicomweb.c) against an
 * awkward local server (tests/session/fake_dicomweb.py) that does what
 * Orthanc does not: QIDO-RS pages (1234 answers in pages of 500) and a
 * server that ignores offset; WADO-RS with a quoted boundary full of odd
 * characters, a preamble and an epilogue, written in 1..7-byte pieces
 * around every delimiter; a body cut in the middle of a part; a part of
 * the wrong type; a wrong Content-Length; a server that refuses
 * transfer-syntax=* (406); a multipart without parts; STOW-RS answers with
 * a warning, a failure reason and an instance not listed (HTTP 202).
 * Every retrieve leaves its temporary folder empty.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <diana/diana.h>

static pid_t server_pid = -1;
static int port;
static char tmpdir[256];
static char files[3][600];
static char sops[3][80];

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set", name);
	return v;
}

static void start(void)
{
	char portfile[300], buf[16] = { 0 };
	const char *data = env("DIANA_TEST_DATA");
	const char *script = env("DIANA_FAKE_DICOMWEB");
	FILE *f = NULL;
	int i;

	cr_assert_eq(diana_init(), 1);
	snprintf(files[0], sizeof(files[0]), "%s/dicom/ct/CT_small.dcm", data);
	snprintf(files[1], sizeof(files[1]), "%s/dicom/mr/MR_small.dcm", data);
	snprintf(files[2], sizeof(files[2]), "%s/dicom/ct/eCT_CT0012_2frame.dcm", data);
	for (i = 0; i < 3; i++) {
		diana_dataset *ds = NULL;
		char *v = NULL;
		diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
		o.flags = DIANA_OPEN_LENIENT | DIANA_OPEN_SKIP_PIXELS;
		cr_assert_eq(diana_dataset_open(&ds, files[i], &o), 0, "%s: %s", files[i],
		             diana_error_message());
		cr_assert_eq(diana_dataset_get(ds, "SOPInstanceUID", &v), 0);
		snprintf(sops[i], sizeof(sops[i]), "%s", v);
		diana_free(v);
		diana_dataset_free(ds);
	}
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/diana-dweb-fake-%d", (int)getpid());
	mkdir(tmpdir, 0700);
	snprintf(portfile, sizeof(portfile), "%s/port", tmpdir);
	server_pid = fork();
	cr_assert_neq(server_pid, -1);
	if (server_pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execl("/usr/bin/python3", "python3", script, portfile, files[0], files[1], files[2],
		      (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 400 && !(f = fopen(portfile, "r")); i++)
		usleep(25000);
	cr_assert_not_null(f, "fake server did not start");
	cr_assert_not_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	unlink(portfile);
	port = atoi(buf);
}

static void stop(void)
{
	if (server_pid > 0) {
		kill(server_pid, SIGTERM);
		waitpid(server_pid, NULL, 0);
		server_pid = -1;
	}
	rmdir(tmpdir);
	diana_shutdown();
}

TestSuite(dwfake, .init = start, .fini = stop, .timeout = 60);

static diana_session *open_base(const char *base)
{
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_session *s = NULL;
	char uri[300];
	o.temp_dir = tmpdir;
	o.retries = -1;
	snprintf(uri, sizeof(uri), "dicomweb+http://127.0.0.1:%d/%s", port, base);
	cr_assert_eq(diana_session_open(&s, uri, &o), 0, "%s", diana_error_message());
	return s;
}

static int files_in_tmp(void)
{
	DIR *d = opendir(tmpdir);
	struct dirent *e;
	int n = 0;
	cr_assert_not_null(d);
	while ((e = readdir(d)))
		if (e->d_name[0] != '.')
			n++;
	closedir(d);
	return n;
}

/* --- QIDO-RS paging ------------------------------------------------------------ */

struct seen {
	int n;
	int bad;
};

static int on_answer(const diana_dataset *ds, void *ud)
{
	struct seen *s = ud;
	char *v = NULL, want[64];
	snprintf(want, sizeof(want), "1.2.840.99.%d", s->n);
	if (diana_dataset_get(ds, "StudyInstanceUID", &v) != 0 || strcmp(v, want) != 0)
		s->bad++;
	diana_free(v);
	/* only the keys asked for: AccessionNumber was, PatientName was not */
	if (diana_dataset_get(ds, "PatientName", &v) == 0)
		s->bad++;
	diana_free(v);
	s->n++;
	return 0;
}

static int requests(void)
{
	char cmd[200], buf[32] = { 0 };
	FILE *p;
	snprintf(cmd, sizeof(cmd), "curl -s http://127.0.0.1:%d/count", port);
	p = popen(cmd, "r");
	cr_assert_not_null(p);
	cr_assert_not_null(fgets(buf, sizeof(buf), p));
	pclose(p);
	return atoi(buf);
}

Test(dwfake, qido_pages_until_a_short_page)
{
	diana_session *s = open_base("dw");
	const char *keys[1] = { "AccessionNumber" };
	struct seen seen = { 0 };
	size_t count = 0;
	int before = requests();
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 1, on_answer, &seen, &count), 0, "%s",
	             diana_error_message());
	cr_assert_eq(seen.n, 1234);
	cr_assert_eq(count, 1234);
	cr_assert_eq(seen.bad, 0);
	cr_assert_eq(requests() - before, 3, "pages of 500: 500 + 500 + 234");
	diana_session_free(s);
}

Test(dwfake, qido_server_ignoring_offset_is_detected)
{
	diana_session *s = open_base("noofs");
	const char *keys[1] = { "AccessionNumber" };
	struct seen seen = { 0 };
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 1, on_answer, &seen, NULL), 0, "%s",
	             diana_error_message());
	cr_assert_eq(seen.n, 500, "the first page once, not forever");
	diana_session_free(s);
}

/* --- WADO-RS --------------------------------------------------------------------- */

struct got {
	int n;
	char sop[8][80];
	int same[8];
};

static int same_bytes(const char *a, const char *b)
{
	FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
	int ca, cb, same = fa && fb;
	while (same) {
		ca = fgetc(fa);
		cb = fgetc(fb);
		if (ca != cb)
			same = 0;
		if (ca == EOF || cb == EOF)
			break;
	}
	if (fa)
		fclose(fa);
	if (fb)
		fclose(fb);
	return same;
}

static int on_instance(const diana_instance *inst, void *ud)
{
	struct got *g = ud;
	if (g->n < 8) {
		snprintf(g->sop[g->n], sizeof(g->sop[0]), "%s", inst->sop_instance_uid);
		g->same[g->n] = g->n < 3 && same_bytes(inst->path, files[g->n]);
	}
	g->n++;
	return 0;
}

Test(dwfake, wado_trickled_odd_boundary_preamble_epilogue)
{
	diana_session *s = open_base("dw");
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	struct got g;
	int i;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.1", NULL, NULL, on_instance, &g, &st), 0, "%s",
	             diana_error_message());
	cr_assert_eq(g.n, 3);
	for (i = 0; i < 3; i++) {
		cr_assert_str_eq(g.sop[i], sops[i]);
		cr_assert(g.same[i], "part %d differs from %s", i, files[i]);
	}
	cr_assert_eq(st.instances, 3);
	cr_assert_eq(st.status, 200);
	cr_assert_eq(files_in_tmp(), 0);
	diana_session_free(s);
}

Test(dwfake, wado_truncated_body_is_epacs_after_the_complete_parts)
{
	diana_session *s = open_base("dw");
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	struct got g;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.2", NULL, NULL, on_instance, &g, &st), DIANA_EPACS);
	cr_assert_not_null(strstr(diana_error_message(), "truncated"), "%s", diana_error_message());
	cr_assert_eq(g.n, 1);
	cr_assert_eq(st.instances, 1);
	cr_assert_eq(files_in_tmp(), 0, "the partial part was not removed");
	diana_session_free(s);
}

Test(dwfake, wado_wrong_part_type_and_length_are_epacs)
{
	diana_session *s = open_base("dw");
	struct got g;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.3", NULL, NULL, on_instance, &g, NULL), DIANA_EPACS);
	cr_assert_not_null(strstr(diana_error_message(), "application/json"), "%s",
	                   diana_error_message());
	cr_assert_eq(g.n, 1);
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.4", NULL, NULL, on_instance, &g, NULL), DIANA_EPACS);
	cr_assert_not_null(strstr(diana_error_message(), "Content-Length"), "%s", diana_error_message());
	cr_assert_eq(g.n, 0);
	cr_assert_eq(files_in_tmp(), 0);
	diana_session_free(s);
}

Test(dwfake, wado_without_transfer_syntax_any_after_406)
{
	diana_session *s = open_base("dw");
	struct got g;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.5", NULL, NULL, on_instance, &g, NULL), 0, "%s",
	             diana_error_message());
	cr_assert_eq(g.n, 3);
	cr_assert(g.same[0] && g.same[1] && g.same[2]);
	diana_session_free(s);
}

Test(dwfake, wado_parts_without_headers_are_dicom)
{
	diana_session *s = open_base("dw");
	struct got g;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.9", NULL, NULL, on_instance, &g, NULL), 0, "%s",
	             diana_error_message());
	cr_assert_eq(g.n, 3);
	cr_assert(g.same[0] && g.same[1] && g.same[2]);
	diana_session_free(s);
}

Test(dwfake, wado_bare_application_dicom_body_is_one_instance)
{
	diana_session *s = open_base("dw");
	struct got g;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.8", NULL, NULL, on_instance, &g, NULL), 0, "%s",
	             diana_error_message());
	cr_assert_eq(g.n, 1);
	cr_assert_str_eq(g.sop[0], sops[1]);
	cr_assert_eq(files_in_tmp(), 0);
	diana_session_free(s);
}

Test(dwfake, wado_no_part_and_404_are_enotfound)
{
	diana_session *s = open_base("dw");
	struct got g;
	memset(&g, 0, sizeof(g));
	cr_assert_eq(diana_session_retrieve(s, "1.6", NULL, NULL, on_instance, &g, NULL), DIANA_ENOTFOUND);
	cr_assert_eq(diana_session_retrieve(s, "1.7", NULL, NULL, on_instance, &g, NULL), DIANA_ENOTFOUND);
	cr_assert_eq(g.n, 0);
	diana_session_free(s);
}

/* --- STOW-RS ---------------------------------------------------------------------- */

struct stored {
	int n;
	int status[8];
	char msg[8][256];
};

static int on_stored(size_t index, const char *path, int status, void *ud)
{
	struct stored *st = ud;
	(void)path;
	cr_assert_eq((int)index, st->n);
	st->status[index] = status;
	snprintf(st->msg[index], sizeof(st->msg[0]), "%s", status ? diana_error_message() : "");
	st->n++;
	return 0;
}

Test(dwfake, stow_answer_gives_each_file_its_outcome)
{
	diana_session *s = open_base("dw");
	diana_transfer_stats ts = DIANA_TRANSFER_STATS_INIT;
	const char *paths[3] = { files[0], files[1], files[2] };
	struct stored st;
	memset(&st, 0, sizeof(st));
	cr_assert_eq(diana_session_store(s, paths, 3, on_stored, &st, &ts), DIANA_EPACS);
	cr_assert_eq(st.n, 3);
	cr_assert_eq(st.status[0], 0, "%s", st.msg[0]);
	cr_assert_eq(st.status[1], DIANA_EPACS);
	cr_assert_not_null(strstr(st.msg[1], "0xA700"), "%s", st.msg[1]);
	cr_assert_eq(st.status[2], DIANA_EPACS);
	cr_assert_not_null(strstr(st.msg[2], "does not list"), "%s", st.msg[2]);
	cr_assert_eq(ts.instances, 1);
	cr_assert_eq(ts.failed, 2);
	cr_assert_eq(ts.warnings, 1);
	cr_assert_eq(ts.status, 202);
	diana_session_free(s);
}
