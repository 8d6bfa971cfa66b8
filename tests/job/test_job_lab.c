/*
 * Lab test: retrieval jobs (include/diana/job.h) against the real Orthanc
 * PACS and helper of tests/lab, through the helper (DIANA's setup:
 * orthanc+http://helper?modality=pacs), de-identifying while streaming.
 *
 * Data: 5 CT studies (4 slices) and 10 radiographs from synth.py, plus one
 * accession number the PACS does not know. Checked against the manifest and
 * the files themselves: outcome counts, one file per instance (unique SOP
 * Instance UIDs), the OUT/<PID>/<ACC>/<series>/<sop>.dcm layout, one key
 * row per study, report.csv without original accession numbers, the leak
 * scanner over every output, the helper emptied; a rerun skips everything
 * without querying; kill -9 of a running job then a rerun completes it
 * without duplicates; the helper killed mid-job gives a clear error and a
 * rerun (helper back) completes; the query rate limit spaces C-FINDs.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <criterion/hooks.h>
#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <diana/diana.h>

#define N_CT 5
#define CT_SLICES 4
#define N_XR 10
#define N_STUDIES (N_CT + N_XR)
#define N_INSTANCES (N_CT * CT_SLICES + N_XR)

static const char *env(const char *name)
{
	const char *v = getenv(name);
	cr_assert_not_null(v, "%s is not set: run through tests/lab/with-lab.sh", name);
	return v;
}

static char data_dir[512], secret[600];

ReportHook(PRE_ALL)(struct criterion_test_set *set)
{
	char cmd[2048];
	const char *tmp = getenv("DIANA_LAB_TMP"), *tools = getenv("DIANA_LAB_TOOLS"),
	           *lab = getenv("DIANA_LAB_DIR"), *py = getenv("PYTHON");
	(void)set;
	if (!tmp || !tools || !lab)
		return;
	snprintf(data_dir, sizeof(data_dir), "%s/job-data", tmp);
	snprintf(cmd, sizeof(cmd),
	         "%s '%s/synth.py' --out '%s' --ct %d --ct-slices %d --ct-size 128x128 --xr %d --xr-size 64x64 "
	         "--prefix JOB --quiet && '%s/seed.sh' '%s' >/dev/null",
	         py ? py : "/usr/bin/python3", tools, data_dir, N_CT, CT_SLICES, N_XR, lab, data_dir);
	if (system(cmd) != 0)
		fprintf(stderr, "job lab: seeding failed: %s\n", cmd);
}

static void setup(void)
{
	FILE *f;
	cr_assert_eq(diana_init(), 1);
	snprintf(data_dir, sizeof(data_dir), "%s/job-data", env("DIANA_LAB_TMP"));
	snprintf(secret, sizeof(secret), "%s/job-secret", env("DIANA_LAB_TMP"));
	f = fopen(secret, "w");
	cr_assert_not_null(f);
	fputs("job lab test secret: 0123456789abcdef0123456789abcdef\n", f);
	fclose(f);
	chmod(secret, 0600);
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(job, .init = setup, .fini = teardown, .timeout = 300);

/* --- helpers ------------------------------------------------------------------- */

static const char *helper_uri(void)
{
	static char u[512];
	snprintf(u, sizeof(u), "orthanc+http://%s:%s@%s?modality=pacs", env("DIANA_LAB_HELPER_USER"),
	         env("DIANA_LAB_HELPER_PASSWORD"), env("DIANA_LAB_HELPER_URL") + 7);
	return u;
}

static diana_session *open_helper(int64_t timeout_ms)
{
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_session *s = NULL;
	o.timeout_ms = timeout_ms;
	o.connect_timeout_ms = 3000;
	o.retries = -1;
	cr_assert_eq(diana_session_open(&s, helper_uri(), &o), 0, "%s", diana_error_message());
	return s;
}

static diana_profile *profile(const char *key)
{
	diana_profile_options o = DIANA_PROFILE_OPTIONS_INIT;
	diana_profile *p = NULL;
	o.secret_file = secret;
	o.key_file = key;
	cr_assert_eq(diana_profile_new(&p, &o), 0, "%s", diana_error_message());
	return p;
}

/* accession list: the manifest's accessions (all, or the first `limit`) + NOPE-404 */
static void write_list(const char *path, int limit, int unknown)
{
	char m[600], line[1024];
	FILE *in, *out;
	int n = 0;
	snprintf(m, sizeof(m), "%s/manifest.csv", data_dir);
	in = fopen(m, "r");
	out = fopen(path, "w");
	cr_assert(in && out);
	fputs("AccessionNumber\n", out);
	while (fgets(line, sizeof(line), in)) {
		if (strncmp(line, "JOB-", 4) != 0)
			continue;
		line[strcspn(line, ",")] = 0;
		if (limit && n >= limit)
			break;
		fprintf(out, "%s\n", line);
		n++;
	}
	if (unknown)
		fputs("# an accession the PACS does not know\nNOPE-404\n", out);
	fclose(in);
	fclose(out);
}

/* files under dir (not .diana), their SOP Instance UIDs; counts duplicates */
struct census {
	size_t files, dup, depth_bad;
	char *sops[400];
};

static void walk(const char *dir, int depth, struct census *c)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	cr_assert_not_null(d, "%s", dir);
	while ((e = readdir(d)) != NULL) {
		char p[1400];
		struct stat sb;
		if (e->d_name[0] == '.')
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, e->d_name);
		cr_assert_eq(stat(p, &sb), 0);
		if (S_ISDIR(sb.st_mode)) {
			walk(p, depth + 1, c);
		} else if (strstr(e->d_name, ".dcm")) {
			diana_dataset *ds = NULL;
			char *sop = NULL;
			size_t i;
			if (depth != 3)
				c->depth_bad++;
			cr_assert_eq(diana_dataset_open(&ds, p, NULL), 0, "%s: %s", p, diana_error_message());
			cr_assert_eq(diana_dataset_get(ds, "SOPInstanceUID", &sop), 0);
			diana_dataset_free(ds);
			for (i = 0; i < c->files; i++) {
				if (strcmp(c->sops[i], sop) == 0)
					c->dup++;
			}
			if (c->files < 400)
				c->sops[c->files++] = sop;
			else
				diana_free(sop);
		}
	}
	closedir(d);
}

static void census_free(struct census *c)
{
	size_t i;
	for (i = 0; i < c->files; i++)
		diana_free(c->sops[i]);
}

static size_t count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	size_t n = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		n++;
	fclose(f);
	return n;
}

static int file_contains(const char *path, const char *needle)
{
	FILE *f = fopen(path, "r");
	char line[4096];
	int hit = 0;
	if (!f)
		return 0;
	while (fgets(line, sizeof(line), f))
		if (strstr(line, needle))
			hit = 1;
	fclose(f);
	return hit;
}

/* log capture: times of the job's queries */
static int64_t query_ms[200];
static int nqueries;

static int64_t mono_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void on_log(int level, const char *domain, const char *msg, void *ud)
{
	(void)level;
	(void)ud;
	if (strcmp(domain, "job") == 0 && strncmp(msg, "query:", 6) == 0 && nqueries < 200)
		query_ms[nqueries++] = mono_ms();
}

static void capture_queries(void)
{
	nqueries = 0;
	diana_log_set_handler(on_log, NULL);
	diana_log_set_level(DIANA_LOG_DEBUG);
}

static int run_job(const char *out, const char *list, const char *key, int workers, double qps, diana_job_stats *st)
{
	diana_session *s = open_helper(60000);
	diana_profile *p = profile(key);
	diana_job_options o = DIANA_JOB_OPTIONS_INIT;
	diana_job *j = NULL;
	size_t added = 0;
	int rc;

	o.out_dir = out;
	o.profile = p;
	o.workers = workers;
	o.retries = 1;
	o.retry_delay_ms = 500;
	o.max_queries_per_s = qps;
	cr_assert_eq(diana_job_new(&j, s, &o), 0, "%s", diana_error_message());
	cr_assert_eq(diana_job_add_accessions_file(j, list, &added), 0, "%s", diana_error_message());
	rc = diana_job_run(j);
	if (st) {
		st->version = DIANA_JOB_STATS_VERSION;
		cr_assert_eq(diana_job_stats_get(j, st), 0);
	}
	diana_job_free(j);
	diana_profile_free(p);
	diana_session_free(s);
	return rc;
}

static void scan_clean(const char *out, const char *key, size_t expect_files)
{
	diana_scanner *sc = NULL;
	char cmd[1200], line[1500];
	size_t n = 0;
	FILE *f;
	cr_assert_eq(diana_scanner_new(&sc), 0);
	cr_assert_eq(diana_scanner_add_key_file(sc, key), 0, "%s", diana_error_message());
	snprintf(cmd, sizeof(cmd), "find '%s' -name '*.dcm' -not -path '*/.diana/*'", out);
	f = popen(cmd, "r");
	while (fgets(line, sizeof(line), f)) {
		char *report = NULL;
		int rc;
		line[strcspn(line, "\n")] = 0;
		rc = diana_scanner_scan_file(sc, line, &report);
		cr_expect_eq(rc, 0, "%s: %s %s", line, diana_error_message(), report ? report : "");
		diana_free(report);
		n++;
	}
	pclose(f);
	cr_expect_eq(n, expect_files);
	diana_scanner_free(sc);
}

static int ignore_answer(const diana_dataset *ds, void *ud)
{
	(void)ds;
	(void)ud;
	return 0;
}

/* studies the helper's own store holds for an accession */
static size_t helper_has_study(const char *acc)
{
	diana_session *s = NULL;
	char k[96], uri[512];
	const char *keys[1];
	size_t count = 0;
	snprintf(uri, sizeof(uri), "orthanc+http://%s:%s@%s", env("DIANA_LAB_HELPER_USER"),
	         env("DIANA_LAB_HELPER_PASSWORD"), env("DIANA_LAB_HELPER_URL") + 7);
	cr_assert_eq(diana_session_open(&s, uri, NULL), 0);
	snprintf(k, sizeof(k), "AccessionNumber=%s", acc);
	keys[0] = k;
	cr_assert_eq(diana_session_find(s, DIANA_LEVEL_STUDY, keys, 1, ignore_answer, NULL, &count), 0, "%s",
	             diana_error_message());
	diana_session_free(s);
	return count;
}

/* --- tests ----------------------------------------------------------------------- */

Test(job, pull_resume_and_rerun)
{
	char out[600], list[600], key[600], report[700];
	diana_job_stats st;
	struct census c = { 0 };
	int rc;

	snprintf(out, sizeof(out), "%s/job-out", env("DIANA_LAB_TMP"));
	snprintf(list, sizeof(list), "%s/job-list.txt", env("DIANA_LAB_TMP"));
	snprintf(key, sizeof(key), "%s/job-key.csv", env("DIANA_LAB_TMP"));
	write_list(list, 0, 1);

	rc = run_job(out, list, key, 2, 0, &st);
	cr_expect_eq(rc, DIANA_EPACS, "an unknown accession makes the run fail: %d %s", rc, diana_error_message());
	cr_expect_eq(st.items, N_STUDIES + 1);
	cr_expect_eq(st.ok, N_STUDIES);
	cr_expect_eq(st.unknown, 1);
	cr_expect_eq(st.failed, 0);
	cr_expect_eq(st.instances, N_INSTANCES);
	walk(out, 0, &c);
	cr_expect_eq(c.files, N_INSTANCES, "%zu files", c.files);
	cr_expect_eq(c.dup, 0);
	cr_expect_eq(c.depth_bad, 0, "OUT/<PID>/<ACC>/<series>/<sop>.dcm");
	census_free(&c);
	cr_expect_eq(count_lines(key), N_STUDIES + 1, "one key row per study (+ header)");
	snprintf(report, sizeof(report), "%s/report.csv", out);
	cr_expect_eq(count_lines(report), N_STUDIES + 2);
	cr_expect(file_contains(report, ",unknown,"));
	cr_expect(!file_contains(report, "NOPE-404"), "no original accession in OUT");
	cr_expect(!file_contains(report, "JOB-CT-001"), "no original accession in OUT");
	scan_clean(out, key, N_INSTANCES);
	cr_expect_eq(helper_has_study("JOB-CT-001"), 0, "the helper is a cache: emptied once written");

	/* rerun: every item skipped, no query at all, nothing new */
	capture_queries();
	rc = run_job(out, list, key, 2, 0, &st);
	diana_log_set_handler(NULL, NULL);
	cr_expect_eq(rc, DIANA_EPACS, "the unknown item is asked for again");
	cr_expect_eq(st.skipped, N_STUDIES);
	cr_expect_eq(st.instances, 0);
	cr_expect_eq(nqueries, 1, "only the unknown accession is queried again (%d queries)", nqueries);
	memset(&c, 0, sizeof(c));
	walk(out, 0, &c);
	cr_expect_eq(c.files, N_INSTANCES);
	census_free(&c);
	cr_expect_eq(count_lines(key), N_STUDIES + 1);
}

Test(job, kill9_then_rerun_completes)
{
	char out[600], list[600], key[600], journal[700];
	diana_job_stats st;
	struct census c = { 0 };
	pid_t pid;
	int status, i;

	snprintf(out, sizeof(out), "%s/job-kill", env("DIANA_LAB_TMP"));
	snprintf(list, sizeof(list), "%s/job-kill.txt", env("DIANA_LAB_TMP"));
	snprintf(key, sizeof(key), "%s/job-kill-key.csv", env("DIANA_LAB_TMP"));
	snprintf(journal, sizeof(journal), "%s/.diana/journal.jsonl", out);
	write_list(list, 0, 0);
	fflush(NULL);
	pid = fork();
	cr_assert_geq(pid, 0);
	if (pid == 0) {
		/* the child: a slow job (2 studies per second at most) */
		diana_session *s = open_helper(60000);
		diana_profile *p = profile(key);
		diana_job_options o = DIANA_JOB_OPTIONS_INIT;
		diana_job *j = NULL;
		o.out_dir = out;
		o.profile = p;
		o.max_studies_per_min = 120;
		if (diana_job_new(&j, s, &o) == 0 && diana_job_add_accessions_file(j, list, NULL) == 0)
			diana_job_run(j);
		_exit(0);
	}
	/* kill it once a few studies are journaled */
	for (i = 0; i < 600 && count_lines(journal) < 6; i++)
		usleep(50000);
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	cr_assert(WIFSIGNALED(status), "the job was killed mid-run");
	cr_expect_lt(count_lines(journal), 2 * N_STUDIES, "killed before the end");

	cr_expect_eq(run_job(out, list, key, 1, 0, &st), 0, "%s", diana_error_message());
	cr_expect_eq(st.ok + st.skipped, N_STUDIES);
	cr_expect_gt(st.skipped, 0);
	walk(out, 0, &c);
	cr_expect_eq(c.files, N_INSTANCES, "%zu files", c.files);
	cr_expect_eq(c.dup, 0, "no duplicate SOP Instance UID");
	census_free(&c);
	cr_expect_eq(count_lines(key), N_STUDIES + 1, "one key row per study");
	scan_clean(out, key, N_INSTANCES);
}

static void restart_helper(void)
{
	char cmd[2048];
	const char *state = getenv("DIANA_LAB_STATE");
	char st[256];
	int i;
	if (!state) {
		snprintf(st, sizeof(st), "/tmp/diana-lab-%u", (unsigned)getuid());
		state = st;
	}
	snprintf(cmd, sizeof(cmd),
	         "env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME='%s' LANG=C.UTF-8 ORTHANC_LAB_TMP='%s' TCP_NODELAY=1 "
	         "LD_PRELOAD='%s' DIANA_BINDSHIM_STRICT=1 /usr/sbin/Orthanc --no-jobs '%s/helper.json' "
	         "</dev/null >>'%s/helper.log' 2>&1 & echo $! >'%s/helper.pid'",
	         env("DIANA_LAB_TMP"), env("DIANA_LAB_TMP"), env("DIANA_BINDSHIM"), env("DIANA_LAB_CONFIG"),
	         env("DIANA_LAB_TMP"), state);
	cr_assert_eq(system(cmd), 0);
	for (i = 0; i < 100; i++) {
		diana_session *s = open_helper(2000);
		int rc = diana_session_echo(s);
		diana_session_free(s);
		if (rc == 0)
			return;
		usleep(100000);
	}
	cr_assert_fail("the helper did not come back");
}

Test(job, helper_killed_mid_job)
{
	char out[600], list[600], key[600], journal[700], report[700];
	diana_session *s;
	diana_profile *p;
	diana_job_options o = DIANA_JOB_OPTIONS_INIT;
	diana_job_stats st = DIANA_JOB_STATS_INIT;
	diana_job *j = NULL;
	struct census c = { 0 };
	pid_t helper = (pid_t)atol(env("DIANA_LAB_HELPER_PID"));
	int i, rc;

	snprintf(out, sizeof(out), "%s/job-helper", env("DIANA_LAB_TMP"));
	snprintf(list, sizeof(list), "%s/job-helper.txt", env("DIANA_LAB_TMP"));
	snprintf(key, sizeof(key), "%s/job-helper-key.csv", env("DIANA_LAB_TMP"));
	snprintf(journal, sizeof(journal), "%s/.diana/journal.jsonl", out);
	snprintf(report, sizeof(report), "%s/report.csv", out);
	write_list(list, 0, 0);
	s = open_helper(5000);
	p = profile(key);
	o.out_dir = out;
	o.profile = p;
	o.max_studies_per_min = 120;
	o.retries = 1;
	o.retry_delay_ms = 300;
	cr_assert_eq(diana_job_new(&j, s, &o), 0);
	cr_assert_eq(diana_job_add_accessions_file(j, list, NULL), 0);
	cr_assert_eq(diana_job_start(j), 0);
	for (i = 0; i < 600 && count_lines(journal) < 4; i++)
		usleep(50000);
	cr_assert_eq(kill(helper, SIGKILL), 0, "kill the helper (pid %d)", (int)helper);
	rc = diana_job_wait(j);
	cr_expect_eq(rc, DIANA_EPACS, "failed items: %d %s", rc, diana_error_message());
	cr_expect_eq(diana_job_stats_get(j, &st), 0);
	cr_expect_gt(st.failed, 0);
	cr_expect(file_contains(report, ",failed,"));
	cr_expect(file_contains(report, "onnect"), "the reason names the connection");
	diana_job_free(j);
	diana_profile_free(p);
	diana_session_free(s);

	restart_helper();
	cr_expect_eq(run_job(out, list, key, 2, 0, &st), 0, "%s", diana_error_message());
	cr_expect_eq(st.ok + st.skipped, N_STUDIES);
	walk(out, 0, &c);
	cr_expect_eq(c.files, N_INSTANCES);
	cr_expect_eq(c.dup, 0);
	census_free(&c);
	cr_expect_eq(count_lines(key), N_STUDIES + 1);
}

Test(job, query_rate_limit)
{
	char out[600], list[600], key[600];
	diana_job_stats st;
	int i;

	snprintf(out, sizeof(out), "%s/job-rate", env("DIANA_LAB_TMP"));
	snprintf(list, sizeof(list), "%s/job-rate.txt", env("DIANA_LAB_TMP"));
	snprintf(key, sizeof(key), "%s/job-rate-key.csv", env("DIANA_LAB_TMP"));
	write_list(list, 6, 0);
	capture_queries();
	cr_expect_eq(run_job(out, list, key, 3, 4.0, &st), 0, "%s", diana_error_message());
	diana_log_set_handler(NULL, NULL);
	cr_assert_geq(nqueries, 6);
	for (i = 1; i < nqueries; i++)
		cr_expect_geq(query_ms[i] - query_ms[i - 1], 240, "queries %d and %d only %lld ms apart (limit 4/s)", i - 1,
		              i, (long long)(query_ms[i] - query_ms[i - 1]));
}

Test(job, bad_options)
{
	diana_session *s = open_helper(5000);
	diana_job_options o = DIANA_JOB_OPTIONS_INIT;
	diana_job *j = NULL;
	char out[600];
	snprintf(out, sizeof(out), "%s/job-bad", env("DIANA_LAB_TMP"));
	o.out_dir = out;
	cr_expect_eq(diana_job_new(&j, s, &o), DIANA_EINVAL, "no profile and no NO_ANONYMIZE");
	cr_expect(strstr(diana_error_message(), "profile") != NULL);
	o.flags = DIANA_JOB_NO_ANONYMIZE;
	o.window = "25:00-07:00";
	cr_expect_eq(diana_job_new(&j, s, &o), DIANA_EINVAL);
	o.window = "19:00-07:00";
	cr_assert_eq(diana_job_new(&j, s, &o), 0);
	cr_expect_eq(diana_job_add_accession(j, "A*"), DIANA_EINVAL, "no wildcards in accession numbers");
	cr_expect_eq(diana_job_add_accession(j, ""), DIANA_EINVAL);
	cr_expect_eq(diana_job_add_study_uid(j, "1.2.x"), DIANA_EINVAL);
	cr_expect_eq(diana_job_add_patient(j, "P1", "2024-01-01", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_job_add_accession(j, "JOB-XR-001"), 0);
	cr_expect_eq(diana_job_add_accession(j, "JOB-XR-001"), 0, "a duplicate is accepted and added once");
	diana_job_free(j);
	diana_session_free(s);
}

Test(job, no_anonymize_and_dry_run)
{
	diana_session *s = open_helper(60000);
	diana_job_options o = DIANA_JOB_OPTIONS_INIT;
	diana_job_stats st = DIANA_JOB_STATS_INIT;
	diana_job *j = NULL;
	char out[600], path[900];
	struct stat sb;

	snprintf(out, sizeof(out), "%s/job-dry", env("DIANA_LAB_TMP"));
	o.out_dir = out;
	o.flags = DIANA_JOB_NO_ANONYMIZE | DIANA_JOB_DRY_RUN;
	cr_assert_eq(diana_job_new(&j, s, &o), 0, "%s", diana_error_message());
	cr_assert_eq(diana_job_add_accession(j, "JOB-CT-002"), 0);
	cr_expect_eq(diana_job_run(j), 0, "%s", diana_error_message());
	cr_expect_eq(diana_job_stats_get(j, &st), 0);
	cr_expect_eq(st.ok, 1);
	cr_expect_eq(st.instances, 0);
	diana_job_free(j);
	cr_expect_neq(stat(out, &sb), 0, "a dry run writes nothing");

	snprintf(out, sizeof(out), "%s/job-plain", env("DIANA_LAB_TMP"));
	o.flags = DIANA_JOB_NO_ANONYMIZE;
	cr_assert_eq(diana_job_new(&j, s, &o), 0, "%s", diana_error_message());
	cr_assert_eq(diana_job_add_accession(j, "JOB-XR-002"), 0);
	cr_expect_eq(diana_job_run(j), 0, "%s", diana_error_message());
	diana_job_free(j);
	/* files as received, named by the original accession */
	snprintf(path, sizeof(path), "find '%s' -path '*/JOB-XR-002/*' -name '*.dcm' | grep -q .", out);
	cr_expect_eq(system(path), 0);
	diana_session_free(s);
}
