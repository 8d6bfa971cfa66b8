/*
 * Tests of the standalone storage SCP (lib/net/dimse_scp.cpp) and of the
 * pipeline's storage SCP source (lib/pipeline/source_scp.c). Senders:
 * DCMTK's storescu/echoscu (package dcmtk) and libdiana's own DIMSE client.
 * Hermetic: everything on 127.0.0.1, ports chosen by the system.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <diana/diana.h>

#include "net/dimse.h"

#ifndef MODEL_PY
#error MODEL_PY must name tests/pipeline/model.py
#endif

static char g_tmp[256];

static void setup(void)
{
	cr_assert_gt(diana_init(), 0);
	snprintf(g_tmp, sizeof(g_tmp), "%s/diana-scp-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	cr_assert_not_null(mkdtemp(g_tmp));
}

static void teardown(void)
{
	char cmd[400];
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_tmp);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", g_tmp);
	diana_shutdown();
}

TestSuite(storescp, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------- helpers */

static const char *data_dir(void)
{
	const char *d = getenv("DIANA_TEST_DATA");
	cr_assert_not_null(d, "DIANA_TEST_DATA is not set");
	return d;
}

static char *data_file(const char *rel)
{
	static char bufs[16][512];
	static int next;
	char *b = bufs[next++ % 16];
	snprintf(b, 512, "%s/dicom/%s", data_dir(), rel);
	return b;
}

/* Run a program, its output to /dev/null; its exit status (or 128 + signal). */
static int run(const char *const *argv)
{
	pid_t pid = fork();
	int st = 0;
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		int nul = open("/dev/null", O_WRONLY);
		if (nul >= 0) {
			dup2(nul, 1);
			if (!getenv("DIANA_TEST_VERBOSE"))
				dup2(nul, 2);
		}
		execvp(argv[0], (char *const *)argv);
		_exit(127);
	}
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR) {
	}
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static int have_dcmtk(void)
{
	const char *const v[] = { "storescu", "--version", NULL };
	return run(v) == 0;
}

static diana__storescp *start_scp(const char *sub, const char *const *callers, int max_assoc)
{
	diana__storescp_options o = DIANA__STORESCP_OPTIONS_INIT;
	diana__storescp *scp = NULL;
	char dir[400];
	snprintf(dir, sizeof(dir), "%s/%s", g_tmp, sub);
	o.port = DIANA__DIMSE_ANY_PORT;
	o.aet = "SCPTEST";
	o.dir = dir;
	o.calling_aets = callers;
	o.max_associations = max_assoc;
	o.dimse_timeout_ms = 20000;
	cr_assert_eq(diana__storescp_new(&scp, &o), 0, "%s", diana_error_message());
	cr_assert_gt(diana__storescp_port(scp), 0);
	return scp;
}

static int storescu_x(int port, const char *aec, const char *aet, const char *xopt, const char *const *files,
                     size_t n)
{
	const char *argv[64];
	char ps[16];
	size_t k = 0, i;
	snprintf(ps, sizeof(ps), "%d", port);
	argv[k++] = "storescu";
	if (xopt) {
		argv[k++] = xopt; /* propose this (compressed) transfer syntax */
		argv[k++] = "-R";
	}
	argv[k++] = "-aec";
	argv[k++] = aec;
	argv[k++] = "-aet";
	argv[k++] = aet;
	argv[k++] = "127.0.0.1";
	argv[k++] = ps;
	for (i = 0; i < n && k < 62; i++)
		argv[k++] = files[i];
	argv[k] = NULL;
	return run(argv);
}

static int storescu(int port, const char *aec, const char *aet, const char *const *files, size_t n)
{
	return storescu_x(port, aec, aet, NULL, files, n);
}

static int echoscu(int port, const char *aec, const char *aet)
{
	char ps[16];
	snprintf(ps, sizeof(ps), "%d", port);
	const char *const argv[] = { "echoscu", "-aec", aec, "-aet", aet, "127.0.0.1", ps, NULL };
	return run(argv);
}

static char *get(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	if (diana_dataset_get(ds, key, &v) < 0)
		return NULL;
	return v;
}

/* Every element's path, VR and value (as raw bytes; sequences and encapsulated
   pixel data by their items' content) into one text. */
struct dump {
	const diana_dataset *ds;
	FILE *f;
};

static int dump_el(const diana_element *e, void *ud)
{
	struct dump *d = ud;
	uint8_t *b = NULL;
	size_t len = 0, i;
	unsigned long h = 5381;
	int rc;
	if (e->tag == 0xFFFCFFFCu)
		return 0; /* Data Set Trailing Padding: not content, senders may drop it */
	if (strcmp(e->vr, "SQ") == 0) {
		fprintf(d->f, "%s SQ %u\n", e->path, e->vm);
		return 0;
	}
	rc = diana_dataset_get_bytes(d->ds, e->path, &b, &len);
	for (i = 0; i < len; i++)
		h = h * 33 + b[i];
	fprintf(d->f, "%s %s rc=%d len=%zu h=%lx\n", e->path, e->vr, rc, len, h);
	diana_free(b);
	diana_error_clear();
	return 0;
}

static char *content_of(const char *path)
{
	diana_dataset *ds = NULL;
	char *text = NULL;
	size_t sz = 0;
	struct dump d;
	cr_assert_eq(diana_dataset_open(&ds, path, NULL), 0, "%s: %s", path, diana_error_message());
	d.ds = ds;
	d.f = open_memstream(&text, &sz);
	cr_assert_not_null(d.f);
	cr_assert_eq(diana_dataset_foreach(ds, 0, dump_el, &d), 0);
	fclose(d.f);
	diana_dataset_free(ds);
	return text;
}

/* The file landed at dir/<study>/<sop>.dcm, mode 0600, with the same
   dataset as the source, and (same_ts) in the same transfer syntax. */
static void check_landed(const char *dir, const char *src, int same_ts)
{
	diana_dataset *ds = NULL;
	char *study, *sop, *ts, path[1024], *a, *b;
	diana_dataset *rx = NULL;
	char *rts;
	struct stat st;
	cr_assert_eq(diana_dataset_open(&ds, src, NULL), 0, "%s", diana_error_message());
	study = get(ds, "StudyInstanceUID");
	sop = get(ds, "SOPInstanceUID");
	ts = get(ds, "TransferSyntaxUID");
	cr_assert(study && sop && ts);
	snprintf(path, sizeof(path), "%s/%s/%s.dcm", dir, study, sop);
	cr_assert_eq(stat(path, &st), 0, "%s did not land", src);
	cr_assert_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(diana_dataset_open(&rx, path, NULL), 0, "%s", diana_error_message());
	rts = get(rx, "TransferSyntaxUID");
	if (same_ts)
		cr_assert_str_eq(rts, ts, "%s: transfer syntax changed", src);
	diana_free(rts);
	diana_dataset_free(rx);
	a = content_of(src);
	b = content_of(path);
	if (strcmp(a, b) != 0 && getenv("DIANA_TEST_VERBOSE"))
		fprintf(stderr, "--- sent\n%s--- received\n%s", a, b);
	cr_assert_str_eq(a, b, "%s: dataset content differs", src);
	free(a);
	free(b);
	diana_free(study);
	diana_free(sop);
	diana_free(ts);
	diana_dataset_free(ds);
}

static size_t count_files(const char *dir, int depth)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	size_t n = 0;
	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		char p[1024];
		struct stat st;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		if (lstat(p, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode))
			n += depth < 4 ? count_files(p, depth + 1) : 0;
		else
			n++;
	}
	closedir(d);
	return n;
}

static diana__dimse *client(int port, const char *called)
{
	diana__dimse_options o = DIANA__DIMSE_OPTIONS_INIT;
	diana__dimse *d = NULL;
	o.host = "127.0.0.1";
	o.port = port;
	o.called_aet = called;
	o.calling_aet = "DIANATEST";
	cr_assert_eq(diana__dimse_new(&d, &o), 0, "%s", diana_error_message());
	return d;
}

/* A copy of `src` with other UIDs (dcmodify). */
static void copy_with_uids(const char *src, const char *dst, const char *study, const char *sop)
{
	char cmd[2048];
	snprintf(cmd, sizeof(cmd), "cp '%s' '%s' && chmod 0600 '%s'", src, dst, dst);
	cr_assert_eq(system(cmd), 0);
	char m1[256], m2[256];
	snprintf(m1, sizeof(m1), "(0020,000D)=%s", study);
	snprintf(m2, sizeof(m2), "(0008,0018)=%s", sop);
	const char *const argv[] = { "dcmodify", "-nb", "-ie", "-m", m1, "-m", m2, dst, NULL };
	cr_assert_eq(run(argv), 0, "dcmodify failed");
}

static const char *const k_files[] = {
	"ct/CT_small.dcm",
	"transfer_syntax/implicit_vr_le/MR_small_implicit.dcm",
	"transfer_syntax/explicit_vr_be/ExplVR_BigEnd.dcm",
	"transfer_syntax/deflated/image_dfl.dcm",
	"transfer_syntax/jpeg_baseline/SC_rgb_jpeg_dcmtk.dcm",
	"transfer_syntax/jpeg_extended/JPGExtended.dcm",
	"transfer_syntax/jpeg_lossless/JPEG-LL.dcm",
	"transfer_syntax/jpeg_ls/CT0012_jpeg_ls_80_bot.dcm",
	"transfer_syntax/jpeg2000/JPEG2000.dcm",
};
#define NFILES (sizeof(k_files) / sizeof(k_files[0]))

/* --------------------------------------------------------------- tests */

Test(storescp, storescu_files_land_unchanged)
{
	/* storescu proposes the uncompressed syntaxes and converts to the one accepted */
	const char *plain[4] = { data_file(k_files[0]), data_file(k_files[1]), data_file(k_files[2]),
		                     data_file(k_files[3]) };
	/* and one compressed syntax when asked: then the file is sent as it is */
	const char *jpeg8[1] = { data_file(k_files[4]) }, *jpegll[1] = { data_file(k_files[6]) };
	char dir[400];
	size_t i;
	if (!have_dcmtk())
		cr_skip_test("storescu (dcmtk) not installed");
	diana__storescp *scp = start_scp("in", NULL, 0);
	int port = diana__storescp_port(scp);
	snprintf(dir, sizeof(dir), "%s/in", g_tmp);
	cr_assert_eq(storescu(port, "SCPTEST", "STORESCU", plain, 4), 0);
	for (i = 0; i < 4; i++)
		check_landed(dir, plain[i], i == 0);
	cr_assert_eq(storescu_x(port, "SCPTEST", "STORESCU", "-xy", jpeg8, 1), 0);
	check_landed(dir, jpeg8[0], 1);
	cr_assert_eq(storescu_x(port, "SCPTEST", "STORESCU", "-xs", jpegll, 1), 0);
	check_landed(dir, jpegll[0], 1);
	cr_assert_eq(diana__storescp_received(scp), 6);
	/* nothing else: no partial file left behind */
	cr_assert_eq(count_files(dir, 0), 6);
	diana__storescp_free(scp);
}

Test(storescp, diana_store_and_echo)
{
	/* libdiana's client sends every file in its own transfer syntax */
	const char *paths[NFILES];
	diana__dimse_result res;
	char dir[400];
	size_t i;
	diana__storescp *scp = start_scp("in", NULL, 0);
	diana__dimse *d = client(diana__storescp_port(scp), "SCPTEST");
	snprintf(dir, sizeof(dir), "%s/in", g_tmp);
	for (i = 0; i < NFILES; i++)
		paths[i] = data_file(k_files[i]);
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	memset(&res, 0, sizeof(res));
	cr_assert_eq(diana__dimse_store(d, paths, NFILES, NULL, NULL, &res), 0, "%s", diana_error_message());
	cr_assert_eq(res.completed, NFILES);
	cr_assert_eq(res.failed, 0);
	for (i = 0; i < NFILES; i++)
		check_landed(dir, paths[i], 1);
	/* the same again (a resend) replaces the files */
	cr_assert_eq(diana__dimse_store(d, paths, NFILES, NULL, NULL, &res), 0, "%s", diana_error_message());
	cr_assert_eq(count_files(dir, 0), NFILES);
	cr_assert_eq(diana__storescp_received(scp), 2 * NFILES);
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	diana__dimse_free(d);
	if (have_dcmtk())
		cr_assert_eq(echoscu(diana__storescp_port(scp), "SCPTEST", "ECHOSCU"), 0);
	diana__storescp_free(scp);
}

Test(storescp, wrong_called_aet_is_rejected)
{
	diana__storescp *scp = start_scp("in", NULL, 0);
	diana__dimse *d = client(diana__storescp_port(scp), "NOTUS");
	cr_assert_eq(diana__dimse_echo(d), DIANA_EAUTH);
	cr_assert(strstr(diana_error_message(), "called AE title not recognized"), "%s", diana_error_message());
	diana__dimse_free(d);
	if (have_dcmtk())
		cr_assert_neq(echoscu(diana__storescp_port(scp), "NOTUS", "ECHOSCU"), 0);
	diana__storescp_free(scp);
}

Test(storescp, calling_aet_allow_list)
{
	const char *const allowed[] = { "GOOD", "DIANATEST", NULL };
	diana__storescp *scp = start_scp("in", allowed, 0);
	diana__dimse *d = client(diana__storescp_port(scp), "SCPTEST");
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	diana__dimse_free(d);
	if (have_dcmtk()) {
		cr_assert_eq(echoscu(diana__storescp_port(scp), "SCPTEST", "GOOD"), 0);
		cr_assert_neq(echoscu(diana__storescp_port(scp), "SCPTEST", "BAD"), 0);
	}
	diana__storescp_free(scp);
}

Test(storescp, association_limit)
{
	diana__storescp *scp = start_scp("in", NULL, 1);
	int port = diana__storescp_port(scp), i, rc = -1;
	diana__dimse *a = client(port, "SCPTEST"), *b = client(port, "SCPTEST");
	cr_assert_eq(diana__dimse_echo(a), 0, "%s", diana_error_message()); /* stays open */
	cr_assert_eq(diana__dimse_echo(b), DIANA_EAUTH);
	cr_assert(strstr(diana_error_message(), "local limit exceeded"), "%s", diana_error_message());
	diana__dimse_free(a); /* released: room again */
	for (i = 0; i < 50 && rc != 0; i++) {
		rc = diana__dimse_echo(b);
		if (rc != 0)
			usleep(100000);
	}
	cr_assert_eq(rc, 0, "%s", diana_error_message());
	diana__dimse_free(b);
	diana__storescp_free(scp);
}

Test(storescp, silent_connection_blocks_nobody)
{
	diana__storescp *scp = start_scp("in", NULL, 0);
	struct sockaddr_in a;
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	memset(&a, 0, sizeof(a));
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)diana__storescp_port(scp));
	cr_assert_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	usleep(200000);
	diana__dimse *d = client(diana__storescp_port(scp), "SCPTEST");
	int64_t t0 = diana__now_ms();
	cr_assert_eq(diana__dimse_echo(d), 0, "%s", diana_error_message());
	cr_assert_lt(diana__now_ms() - t0, 2000);
	diana__dimse_free(d);
	diana__storescp_free(scp); /* does not wait for the silent peer's timeout either */
	close(fd);
}

struct sender {
	int port;
	const char *paths[8];
	size_t n;
	int rc;
	char msg[256];
};

static void *send_thread(void *arg)
{
	struct sender *s = arg;
	diana__dimse_options o = DIANA__DIMSE_OPTIONS_INIT;
	diana__dimse *d = NULL;
	diana__dimse_result res;
	o.host = "127.0.0.1";
	o.port = s->port;
	o.called_aet = "SCPTEST";
	s->rc = diana__dimse_new(&d, &o);
	if (s->rc == 0)
		s->rc = diana__dimse_store(d, s->paths, s->n, NULL, NULL, &res);
	if (s->rc < 0)
		snprintf(s->msg, sizeof(s->msg), "%s", diana_error_message());
	diana__dimse_free(d);
	return NULL;
}

Test(storescp, parallel_senders)
{
	enum { NT = 4, PER = 5 };
	struct sender s[NT];
	pthread_t t[NT];
	char src[NT][PER][512], dir[400];
	int i, j;
	if (!have_dcmtk())
		cr_skip_test("dcmodify (dcmtk) not installed");
	diana__storescp *scp = start_scp("in", NULL, NT);
	snprintf(dir, sizeof(dir), "%s/in", g_tmp);
	cr_assert_eq(mkdir(strcat(strcpy(src[0][0], g_tmp), "/src"), 0700), 0);
	for (i = 0; i < NT; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].port = diana__storescp_port(scp);
		for (j = 0; j < PER; j++) {
			char study[64], sop[64];
			snprintf(src[i][j], sizeof(src[i][j]), "%s/src/%d-%d.dcm", g_tmp, i, j);
			snprintf(study, sizeof(study), "1.2.826.0.1.3680043.9.7777.%d", i + 1);
			snprintf(sop, sizeof(sop), "1.2.826.0.1.3680043.9.7777.%d.%d", i + 1, j + 1);
			copy_with_uids(data_file(k_files[0]), src[i][j], study, sop);
			s[i].paths[j] = src[i][j];
		}
		s[i].n = PER;
	}
	for (i = 0; i < NT; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, send_thread, &s[i]), 0);
	for (i = 0; i < NT; i++)
		pthread_join(t[i], NULL);
	for (i = 0; i < NT; i++)
		cr_assert_eq(s[i].rc, 0, "sender %d: %s", i, s[i].msg);
	for (i = 0; i < NT; i++)
		for (j = 0; j < PER; j++)
			check_landed(dir, src[i][j], 1);
	cr_assert_eq(diana__storescp_received(scp), NT * PER);
	diana__storescp_free(scp);
}

Test(storescp, bad_uids_stay_inside)
{
	char bad1[512], bad2[512], good[512], dir[400], outside[512];
	const char *paths[3];
	diana__dimse_result res;
	struct stat st;
	if (!have_dcmtk())
		cr_skip_test("dcmodify (dcmtk) not installed");
	diana__storescp *scp = start_scp("in/deep", NULL, 0);
	snprintf(dir, sizeof(dir), "%s/in/deep", g_tmp);
	snprintf(bad1, sizeof(bad1), "%s/bad1.dcm", g_tmp);
	snprintf(bad2, sizeof(bad2), "%s/bad2.dcm", g_tmp);
	snprintf(good, sizeof(good), "%s/good.dcm", g_tmp);
	/* a SOP Instance UID that climbs out, a Study Instance UID that does */
	copy_with_uids(data_file(k_files[0]), bad1, "1.2.3.4", "../../../escaped");
	copy_with_uids(data_file(k_files[0]), bad2, "../../..", "1.2.3.4.5");
	copy_with_uids(data_file(k_files[0]), good, "1.2.3.4", "1.2.3.4.6");
	paths[0] = bad1;
	paths[1] = bad2;
	paths[2] = good;
	diana__dimse *d = client(diana__storescp_port(scp), "SCPTEST");
	memset(&res, 0, sizeof(res));
	cr_assert_eq(diana__dimse_store(d, paths, 3, NULL, NULL, &res), DIANA_EPACS);
	cr_assert_eq(res.failed, 2);
	cr_assert_eq(res.completed, 1);
	cr_assert_eq(res.status, 0xC000, "status 0x%04X", res.status);
	diana__dimse_free(d);
	check_landed(dir, good, 1);
	cr_assert_eq(count_files(g_tmp, 0), 4); /* the three sources and the good one */
	snprintf(outside, sizeof(outside), "%s/escaped.dcm", g_tmp);
	cr_assert_neq(stat(outside, &st), 0);
	diana__storescp_free(scp);
}

Test(storescp, bad_options)
{
	diana__storescp_options o = DIANA__STORESCP_OPTIONS_INIT;
	diana__storescp *scp = (diana__storescp *)1;
	cr_assert_eq(diana__storescp_new(&scp, &o), DIANA_EINVAL);
	cr_assert_null(scp);
	o.dir = g_tmp;
	o.port = 70000;
	cr_assert_eq(diana__storescp_new(&scp, &o), DIANA_EINVAL);
	o.port = DIANA__DIMSE_ANY_PORT;
	o.aet = "A TITLE MUCH TOO LONG";
	cr_assert_eq(diana__storescp_new(&scp, &o), DIANA_EINVAL);
	diana__storescp_free(NULL);
}

/* ------------------------------------------------------- the pipeline */

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

static int jsonl_lines(const char *path, char **last)
{
	FILE *f = fopen(path, "r");
	char line[8192];
	int n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f)) {
		n++;
		if (last) {
			free(*last);
			*last = strdup(line);
		}
	}
	fclose(f);
	return n;
}

Test(storescp, pipeline_from_storescu)
{
	diana_pipeline_options po = DIANA_PIPELINE_OPTIONS_INIT;
	diana_pipeline *p = NULL;
	char cfg[4096], jsonl[400], state[400], srcdir[400], ct[3][512], *last = NULL;
	const char *paths[4];
	int port = free_port(), i, lines = 0;
	uint32_t n;
	if (!have_dcmtk())
		cr_skip_test("storescu (dcmtk) not installed");
	snprintf(jsonl, sizeof(jsonl), "%s/results.jsonl", g_tmp);
	snprintf(state, sizeof(state), "%s/state", g_tmp);
	snprintf(srcdir, sizeof(srcdir), "%s/src", g_tmp);
	cr_assert_eq(mkdir(srcdir, 0700), 0);
	/* a CT study of three instances, and an MR study the filter leaves out */
	for (i = 0; i < 3; i++) {
		char sop[64];
		snprintf(ct[i], sizeof(ct[i]), "%s/ct%d.dcm", srcdir, i);
		snprintf(sop, sizeof(sop), "1.2.826.0.1.3680043.9.7778.1.%d", i + 1);
		copy_with_uids(data_file(k_files[0]), ct[i], "1.2.826.0.1.3680043.9.7778.1", sop);
		paths[i] = ct[i];
	}
	paths[3] = data_file(k_files[1]);
	snprintf(cfg, sizeof(cfg),
	         "{\"source\": {\"listen\": {\"port\": %d, \"aet\": \"PIPE\", \"quiet_s\": 1}},"
	         " \"state\": \"%s\","
	         " \"filter\": {\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}]},"
	         " \"model\": {\"command\": [\"%s\"], \"timeout_s\": 60, \"name\": \"counter\"},"
	         " \"sinks\": [{\"type\": \"jsonl\", \"path\": \"%s\"}]}",
	         port, state, MODEL_PY, jsonl);
	po.config_json = cfg;
	cr_assert_eq(diana_pipeline_new(&p, &po), 0, "%s", diana_error_message());
	cr_assert_eq(storescu(port, "PIPE", "MODALITY", paths, 4), 0);
	/* quiet for 1 s, then handled */
	for (i = 0; i < 100 && lines == 0; i++) {
		cr_assert_eq(diana_pipeline_run_once(p, &n), 0, "%s", diana_error_message());
		lines = jsonl_lines(jsonl, &last);
		if (!lines)
			usleep(100000);
	}
	cr_assert_eq(lines, 1);
	cJSON *rec = cJSON_Parse(last);
	cr_assert_not_null(rec);
	cr_assert_str_eq(cJSON_GetObjectItem(rec, "study_instance_uid")->valuestring, "1.2.826.0.1.3680043.9.7778.1");
	cr_assert_eq(cJSON_GetObjectItem(rec, "instances")->valueint, 3);
	cr_assert_str_eq(cJSON_GetObjectItem(cJSON_GetObjectItem(rec, "result"), "summary")->valuestring,
	                 "no hemorrhage (3 images)");
	cJSON_Delete(rec);
	/* the MR study was handled too (filtered out): nothing left in incoming */
	for (i = 0; i < 30; i++) {
		char inc[450];
		diana_pipeline_run_once(p, &n);
		snprintf(inc, sizeof(inc), "%s/incoming", state);
		if (count_files(inc, 0) == 0)
			break;
		usleep(100000);
	}
	/* the same study again: not repeated */
	cr_assert_eq(storescu(port, "PIPE", "MODALITY", paths, 3), 0);
	usleep(1200000);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(diana_pipeline_run_once(p, &n), 0, "%s", diana_error_message());
		usleep(100000);
	}
	cr_assert_eq(jsonl_lines(jsonl, NULL), 1);
	diana_pipeline_free(p);
	/* and not after a restart either */
	cr_assert_eq(diana_pipeline_new(&p, &po), 0, "%s", diana_error_message());
	cr_assert_eq(storescu(port, "PIPE", "MODALITY", paths, 3), 0);
	usleep(1200000);
	for (i = 0; i < 5; i++) {
		cr_assert_eq(diana_pipeline_run_once(p, &n), 0, "%s", diana_error_message());
		usleep(100000);
	}
	cr_assert_eq(jsonl_lines(jsonl, NULL), 1);
	diana_pipeline_free(p);
	free(last);
}

Test(storescp, pipeline_listen_config_errors)
{
	diana_pipeline_options po = DIANA_PIPELINE_OPTIONS_INIT;
	diana_pipeline *p = NULL;
	char cfg[2048];
	const char *bad[] = { "{\"port\": 70000}", "{\"aet\": \"X\"}", "{\"port\": 0, \"what\": 1}",
		                  "{\"port\": 0, \"calling_aets\": \"ONE\"}", "{\"port\": 0, \"quiet_s\": -1}" };
	size_t i;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(cfg, sizeof(cfg),
		         "{\"source\": {\"listen\": %s}, \"state\": \"%s/state\","
		         " \"model\": {\"command\": [\"%s\"]}, \"sinks\": [{\"type\": \"jsonl\", \"path\": \"%s/r.jsonl\"}]}",
		         bad[i], g_tmp, MODEL_PY, g_tmp);
		po.config_json = cfg;
		cr_assert_eq(diana_pipeline_new(&p, &po), DIANA_EINVAL, "%s", bad[i]);
		cr_assert(strstr(diana_error_message(), "source.listen"), "%s", diana_error_message());
	}
	/* port 0: any free port */
	snprintf(cfg, sizeof(cfg),
	         "{\"source\": {\"listen\": {\"port\": 0, \"calling_aets\": [\"A\"]}}, \"state\": \"%s/state\","
	         " \"model\": {\"command\": [\"%s\"]}, \"sinks\": [{\"type\": \"jsonl\", \"path\": \"%s/r.jsonl\"}]}",
	         g_tmp, MODEL_PY, g_tmp);
	po.config_json = cfg;
	cr_assert_eq(diana_pipeline_new(&p, &po), 0, "%s", diana_error_message());
	diana_pipeline_free(p);
}
