/*
 * diana - the pull command: a retrieval job (include/diana/job.h) from the
 * command line. Accession numbers in, de-identified files, a key and a
 * report out; resumable; a progress bar on a terminal.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "session_opts.h"

/* the default of --ms-per-instance: PERF.md, a CT slice through the Orthanc helper */
#define DEFAULT_MS_PER_INSTANCE 10.0
/* received bytes per second assumed by the estimate when the PACS tells sizes (PERF.md: ~60 MB/s) */
#define ESTIMATE_BYTES_PER_S 60e6
/* redraw the progress bar at most every ... ms */
#define BAR_INTERVAL_MS 200

void pull_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s pull [OPTIONS] URI --accessions FILE -o OUTDIR\n"
	        "\n"
	        "Retrieve the studies of a list of accession numbers from a PACS, de-identify\n"
	        "them while they stream in, and write them as\n"
	        "OUTDIR/<pseudo PatientID>/<pseudo AccessionNumber>/<Series>/<SOP>.dcm, with\n"
	        "OUTDIR/report.csv (one row per accession: status and reason, no original\n"
	        "accession numbers) and a journal (OUTDIR/.diana/) that makes the job\n"
	        "resumable: run the same command again after an interruption (Ctrl-C, kill,\n"
	        "power cut, network failure) and it finishes the job without asking the PACS\n"
	        "again for complete studies and without duplicates.\n"
	        "\n"
	        "URI is where the studies are, typically a PACS through the Orthanc helper:\n"
	        "  orthanc+http://USER:PASS@HOST:PORT?modality=NAME\n"
	        "\n"
	        "Options:\n"
	        "  --accessions FILE   accession numbers, one per line (or the first column of a\n"
	        "                      CSV; '#' comments and an AccessionNumber header skipped)\n"
	        "  -o, --out OUTDIR    output folder (created; an earlier run's folder resumes)\n"
	        "  --secret-file FILE  the project secret (>= 32 bytes, mode 0600) that keys the\n"
	        "                      pseudonyms; required unless --no-anonymize\n"
	        "  --key KEY.csv       append one row per study to this key file (originals ->\n"
	        "                      pseudonyms) and write KEY.report.csv beside it (mode 0600:\n"
	        "                      index, original and pseudonymous accession number,\n"
	        "                      status, reason)\n"
	        "  --option NAME       a de-identification option (repeatable):\n"
	        "                      retain-safe-private, retain-uids, retain-device-identity,\n"
	        "                      retain-institution-identity,\n"
	        "                      retain-patient-characteristics, retain-long-full-dates,\n"
	        "                      retain-long-modified-dates, clean-descriptors,\n"
	        "                      clean-structured-content, clean-graphics\n"
	        "  --date-shift-days N with retain-long-modified-dates: shifts in [-N, -1] days\n"
	        "  --no-anonymize      write the files as received (patient data!)\n"
	        "  -j, --jobs N        studies retrieved in parallel (default 1, at most 64)\n"
	        "  --max-studies-per-minute N  studies started per minute (default: no limit)\n"
	        "  --max-queries-per-second N  queries (C-FIND, QIDO-RS) per second\n"
	        "  --max-mb-per-second N       received megabytes per second\n"
	        "  --window HH:MM-HH:MM        start work only in this local time window\n"
	        "                              (e.g. 19:00-07:00)\n"
	        "  --retries N         attempts after a failed study (default 3; 0: none)\n"
	        "  --retry-delay SECONDS  first backoff delay, doubled each time (default 5)\n"
	        "  --keep-in-helper    through an Orthanc helper: leave the studies there\n"
	        "                      (default: deleted from the helper once written)\n"
	        "  --dry-run           only query: print the studies and instances of each\n"
	        "                      accession and an estimate of the time; write nothing\n"
	        "  --ms-per-instance MS  the estimate's time per instance (default %.0f)\n"
	        "  -q, --quiet         no progress bar and no per-study lines, only the summary\n"
	        "  -h, --help          show this help\n"
	        "\n" SESSION_OPTIONS_HELP_HEAD
	        "  --http-retries N    HTTP retries on connection errors and 5xx (default 3)\n"
	        SESSION_OPTIONS_HELP_TAIL
	        "\n"
	        "Output: when stderr is a terminal, a progress bar there (studies done/total,\n"
	        "images, MB/s, ETA); one line per finished accession on stdout (on the terminal\n"
	        "only those that are unknown or failed):\n"
	        "  INDEX/TOTAL STATUS PSEUDO-ACCESSION INSTANCES/EXPECTED instances MB [REASON]\n"
	        "(STATUS: ok, skipped, unknown, failed; the original accession number is never\n"
	        "printed when de-identifying), then a summary line.\n"
	        "\n"
	        "The --dry-run estimate is (sum of the instances the PACS announces) x MS, or the\n"
	        "announced bytes at 60 MB/s when that is longer, and at least the studies divided\n"
	        "by --max-studies-per-minute (and the bytes by --max-mb-per-second). MS defaults\n"
	        "to %.0f ms, a CT slice through the Orthanc helper (a 10-MB radiograph takes about\n"
	        "150 ms): give the ms/image of an earlier run's summary for a better figure.\n"
	        "\n"
	        "Examples:\n"
	        "  %s pull 'orthanc+http://diana:pw@127.0.0.1:8042?modality=pacs' \\\n"
	        "      --accessions list.txt --secret-file project.secret --key key.csv -o out\n"
	        "  %s pull URI --accessions list.txt --secret-file s --dry-run -o out\n"
	        "\n"
	        "Exit status: 0 every accession ok or skipped, 1 usage error, 2 some accession\n"
	        "unknown or failed (see OUTDIR/report.csv), or the job stopped (one line on\n"
	        "stderr; rerun to finish).\n",
	        progname, DEFAULT_MS_PER_INSTANCE, DEFAULT_MS_PER_INSTANCE, progname, progname);
}

/* ------------------------------------------------------------- state */

struct row {
	uint64_t index;
	int status;
	char *accession; /* original: only for KEY.report.csv */
	char *pseudo;
	char *reason;
};

struct pull {
	diana_job *job;
	const char *outdir;
	const char *key_file;
	int deid, dry, tty, stdout_tty, quiet;
	uint64_t total;
	pthread_mutex_t lock; /* the two callbacks and the bar */
	/* per-status counts seen in on_study, and dry-run sums */
	uint64_t seen[4];
	uint64_t studies, expected, announced_bytes;
	/* progress bar */
	int bar_shown;
	int64_t last_draw_ms;
	diana_job_progress last;
	/* rows of KEY.report.csv */
	struct row *rows;
	size_t nrows, caprows;
	/* signals */
	pthread_t sig_thread;
	sigset_t sigs;
	volatile int stopping;
	volatile int interrupted;
};

static int64_t now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static const char *status_name(int s)
{
	switch (s) {
	case DIANA_STUDY_OK: return "ok";
	case DIANA_STUDY_SKIPPED: return "skipped";
	case DIANA_STUDY_UNKNOWN: return "unknown";
	case DIANA_STUDY_FAILED: return "failed";
	default: return "?";
	}
}

static void fmt_duration(char *buf, size_t n, double sec)
{
	long s = sec < 0 ? 0 : (long)(sec + 0.5);
	if (s >= 86400)
		snprintf(buf, n, "%ldd%02ldh", s / 86400, s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, n, "%ldh%02ldm", s / 3600, s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, n, "%ldm%02lds", s / 60, s % 60);
	else if (sec < 9.95)
		snprintf(buf, n, "%.1fs", sec < 0 ? 0.0 : sec);
	else
		snprintf(buf, n, "%lds", s);
}

/* ------------------------------------------------------ progress bar */

static void bar_draw(struct pull *p, const diana_job_progress *g)
{
	char bar[21], eta[32];
	uint64_t total = g->items_total ? g->items_total : p->total;
	uint64_t done = g->items_done, worked;
	double sec = g->elapsed_ms / 1000.0;
	size_t i, fill = total ? (size_t)(done * 20 / total) : 0;

	for (i = 0; i < 20; i++)
		bar[i] = i < fill ? '#' : '-';
	bar[20] = '\0';
	/* ETA from the items that were worked on (skipped ones cost nothing) */
	worked = done > p->seen[DIANA_STUDY_SKIPPED] ? done - p->seen[DIANA_STUDY_SKIPPED] : 0;
	if (g->stage == DIANA_JOB_STAGE_WAIT)
		snprintf(eta, sizeof eta, "waiting");
	else if (g->stage == DIANA_JOB_STAGE_DONE || done >= total)
		snprintf(eta, sizeof eta, "done");
	else if (worked == 0 || sec <= 0)
		snprintf(eta, sizeof eta, "ETA --");
	else {
		char d[24];
		fmt_duration(d, sizeof d, sec / (double)worked * (double)(total - done));
		snprintf(eta, sizeof eta, "ETA %s", d);
	}
	fprintf(stderr, "\r\033[K[%s] %llu/%llu studies  %llu images  %.1f MB/s  %s", bar,
	        (unsigned long long)done, (unsigned long long)total, (unsigned long long)g->instances,
	        sec > 0 ? g->bytes / 1e6 / sec : 0.0, eta);
	fflush(stderr);
	p->bar_shown = 1;
}

static void bar_clear(struct pull *p)
{
	if (p->bar_shown) {
		fputs("\r\033[K", stderr);
		fflush(stderr);
	}
}

static int on_progress(const diana_job_progress *g, void *ud)
{
	struct pull *p = ud;
	int64_t t;

	if (!p->tty || p->quiet)
		return 0;
	pthread_mutex_lock(&p->lock);
	p->last = *g;
	p->last.current = NULL;
	t = now_ms();
	if (g->stage == DIANA_JOB_STAGE_DONE || t - p->last_draw_ms >= BAR_INTERVAL_MS) {
		bar_draw(p, g);
		p->last_draw_ms = t;
	}
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* ----------------------------------------------------- study lines */

static char *dup_or_empty(const char *s)
{
	return strdup(s ? s : "");
}

/* the pseudonymous accession of `accession` from the key file, when the job did not tell */
static char *pseudo_from_key(const char *key_file, const char *accession)
{
	char *row = NULL, *res = NULL;
	const char *k = "\"PseudoAccessionNumber\":\"", *v, *e;

	if (!key_file || !accession || !*accession)
		return NULL;
	if (diana_key_lookup(key_file, "OriginalAccessionNumber", accession, &row) < 0)
		return NULL;
	v = strstr(row, k);
	if (v) {
		v += strlen(k);
		e = strchr(v, '"');
		if (e && !memchr(v, '\\', (size_t)(e - v))) {
			res = malloc((size_t)(e - v) + 1);
			if (res) {
				memcpy(res, v, (size_t)(e - v));
				res[e - v] = '\0';
			}
		}
	}
	diana_free(row);
	diana_error_clear();
	return res;
}

static int on_study(const diana_job_study *s, void *ud)
{
	struct pull *p = ud;
	const char *who;
	char *pseudo = NULL;
	int st = s->status >= 0 && s->status <= 3 ? s->status : DIANA_STUDY_FAILED;
	int print;

	pthread_mutex_lock(&p->lock);
	p->seen[st]++;
	p->studies += s->studies;
	p->expected += s->expected;
	p->announced_bytes += s->bytes;
	if (p->deid) {
		if (s->pseudo_accession && *s->pseudo_accession)
			pseudo = strdup(s->pseudo_accession);
		else if (!p->dry)
			pseudo = pseudo_from_key(p->key_file, s->accession);
		who = pseudo && *pseudo ? pseudo : "-";
	} else {
		who = s->accession && *s->accession ? s->accession : "-";
	}
	/* a row for KEY.report.csv */
	if (p->key_file && !p->dry) {
		if (p->nrows == p->caprows) {
			size_t cap = p->caprows ? p->caprows * 2 : 256;
			struct row *nr = realloc(p->rows, cap * sizeof *nr);
			if (nr) {
				p->rows = nr;
				p->caprows = cap;
			}
		}
		if (p->nrows < p->caprows) {
			struct row *r = &p->rows[p->nrows++];
			r->index = s->index;
			r->status = st;
			r->accession = dup_or_empty(s->accession);
			r->pseudo = dup_or_empty(pseudo);
			r->reason = dup_or_empty(s->reason);
		}
	}
	/* with the bar on the terminal, only the unknown and failed lines go there too */
	print = !p->quiet && (!p->tty || !p->stdout_tty || st == DIANA_STUDY_UNKNOWN || st == DIANA_STUDY_FAILED);
	if (print) {
		const char *reason = s->reason && *s->reason ? s->reason : "";
		if (p->stdout_tty)
			bar_clear(p);
		if (p->dry)
			printf("%llu/%llu %s %s %u %s, %llu instance%s%s%s\n", (unsigned long long)s->index,
			       (unsigned long long)p->total,
			       st == DIANA_STUDY_OK || st == DIANA_STUDY_SKIPPED ? "found" : status_name(st), who,
			       (unsigned)s->studies, s->studies == 1 ? "study" : "studies",
			       (unsigned long long)s->expected, s->expected == 1 ? "" : "s", *reason ? " " : "", reason);
		else
			printf("%llu/%llu %s %s %llu/%llu instances %.1f MB%s%s\n", (unsigned long long)s->index,
			       (unsigned long long)p->total, status_name(st), who, (unsigned long long)s->instances,
			       (unsigned long long)s->expected, s->bytes / 1e6, *reason ? " " : "", reason);
		fflush(stdout);
		if (p->tty && p->stdout_tty && p->bar_shown)
			bar_draw(p, &p->last);
	}
	free(pseudo);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

/* --------------------------------------------------- KEY.report.csv */

static char *report_path(const char *key)
{
	size_t n = strlen(key);
	char *r = malloc(n + sizeof ".report.csv");
	if (!r)
		return NULL;
	memcpy(r, key, n + 1);
	if (n > 4 && strcmp(key + n - 4, ".csv") == 0)
		r[n - 4] = '\0';
	strcat(r, ".report.csv");
	return r;
}

static void csv_field(FILE *f, const char *v, int last)
{
	if (strpbrk(v, ",\"\r\n")) {
		fputc('"', f);
		for (; *v; v++) {
			if (*v == '"')
				fputc('"', f);
			fputc(*v, f);
		}
		fputc('"', f);
	} else {
		fputs(v, f);
	}
	fputs(last ? "\r\n" : ",", f);
}

static int cmp_row(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	return x->index < y->index ? -1 : x->index > y->index;
}

/* write PATH atomically with mode 0600: a temporary file beside it, fsync, rename */
static int write_key_report(struct pull *p, const char *path)
{
	size_t n = strlen(path), i;
	char *tmp = malloc(n + 16);
	FILE *f = NULL;
	int fd = -1, ok = 0;

	if (!tmp)
		return -1;
	snprintf(tmp, n + 16, "%s.tmp%ld", path, (long)getpid());
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || fchmod(fd, 0600) < 0)
		goto out;
	f = fdopen(fd, "w");
	if (!f)
		goto out;
	fd = -1;
	qsort(p->rows, p->nrows, sizeof *p->rows, cmp_row);
	fputs("Index,OriginalAccessionNumber,PseudoAccessionNumber,Status,Reason\r\n", f);
	for (i = 0; i < p->nrows; i++) {
		char idx[24];
		snprintf(idx, sizeof idx, "%llu", (unsigned long long)p->rows[i].index);
		csv_field(f, idx, 0);
		csv_field(f, p->rows[i].accession, 0);
		csv_field(f, p->rows[i].pseudo, 0);
		csv_field(f, status_name(p->rows[i].status), 0);
		csv_field(f, p->rows[i].reason, 1);
	}
	if (fflush(f) != 0 || fsync(fileno(f)) != 0)
		goto out;
	if (fclose(f) != 0) {
		f = NULL;
		goto out;
	}
	f = NULL;
	if (rename(tmp, path) != 0)
		goto out;
	ok = 1;
out:
	if (!ok)
		fprintf(stderr, "%s pull: %s: %s\n", progname, path, strerror(errno));
	if (f)
		fclose(f);
	if (fd >= 0)
		close(fd);
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok ? 0 : -1;
}

/* ----------------------------------------------------------- signals */

/* SIGINT/SIGTERM/SIGHUP cancel the job (it stops soon; a rerun finishes it); a second one exits at once. */
static void *signal_thread(void *arg)
{
	struct pull *p = arg;
	for (;;) {
		int sig = 0;
		if (sigwait(&p->sigs, &sig) != 0)
			continue;
		if (sig == SIGUSR1) {
			if (p->stopping)
				return NULL;
			continue;
		}
		if (p->interrupted++ == 0) {
			static const char msg[] = "\ndiana pull: stopping (interrupt again to quit at once); "
			                          "rerun the same command to finish the job\n";
			if (write(STDERR_FILENO, msg, sizeof msg - 1) < 0) {
				/* nothing to do */
			}
			diana_job_cancel(p->job);
		} else {
			_exit(130);
		}
	}
}

/* ------------------------------------------------------------ parsing */

static int parse_rate(const char *opt, const char *v, double *out)
{
	char *end;
	double d;
	errno = 0;
	d = strtod(v, &end);
	if (*end || end == v || errno || !(d > 0) || d > 1e9) {
		char msg[96];
		snprintf(msg, sizeof msg, "%s takes a positive number", opt);
		return usage_error("pull", msg);
	}
	*out = d;
	return 0;
}

static int valid_window(const char *w)
{
	int h1, m1, h2, m2, n = 0;
	if (strlen(w) != 11)
		return 0;
	if (sscanf(w, "%2d:%2d-%2d:%2d%n", &h1, &m1, &h2, &m2, &n) != 4 || n != 11)
		return 0;
	return h1 >= 0 && h1 <= 23 && m1 >= 0 && m1 <= 59 && h2 >= 0 && h2 <= 23 && m2 >= 0 && m2 <= 59 &&
	       w[2] == ':' && w[5] == '-' && w[8] == ':';
}

/* -------------------------------------------------------------- main */

int cmd_pull(int argc, char **argv)
{
	enum {
		OPT_ACCESSIONS = OPT_SESSION_END,
		OPT_SECRET,
		OPT_KEY,
		OPT_OPTION,
		OPT_SHIFT,
		OPT_NO_ANON,
		OPT_MAX_STUDIES,
		OPT_MAX_QUERIES,
		OPT_MAX_MB,
		OPT_WINDOW,
		OPT_JOB_RETRIES,
		OPT_RETRY_DELAY,
		OPT_KEEP,
		OPT_DRY,
		OPT_MS_PER
	};
	static const struct option longopts[] = {
		SESSION_LONGOPTS_NO_RETRIES,
		{ "http-retries", required_argument, NULL, OPT_RETRIES },
		{ "accessions", required_argument, NULL, OPT_ACCESSIONS },
		{ "out", required_argument, NULL, 'o' },
		{ "output", required_argument, NULL, 'o' },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "option", required_argument, NULL, OPT_OPTION },
		{ "date-shift-days", required_argument, NULL, OPT_SHIFT },
		{ "no-anonymize", no_argument, NULL, OPT_NO_ANON },
		{ "jobs", required_argument, NULL, 'j' },
		{ "max-studies-per-minute", required_argument, NULL, OPT_MAX_STUDIES },
		{ "max-queries-per-second", required_argument, NULL, OPT_MAX_QUERIES },
		{ "max-mb-per-second", required_argument, NULL, OPT_MAX_MB },
		{ "window", required_argument, NULL, OPT_WINDOW },
		{ "retries", required_argument, NULL, OPT_JOB_RETRIES },
		{ "retry-delay", required_argument, NULL, OPT_RETRY_DELAY },
		{ "keep-in-helper", no_argument, NULL, OPT_KEEP },
		{ "dry-run", no_argument, NULL, OPT_DRY },
		{ "ms-per-instance", required_argument, NULL, OPT_MS_PER },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	diana_session_options so = DIANA_SESSION_OPTIONS_INIT;
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	diana_job_options jo = DIANA_JOB_OPTIONS_INIT;
	diana_job_stats st = DIANA_JOB_STATS_INIT;
	diana_session *session = NULL;
	diana_profile *profile = NULL;
	const char *accessions = NULL, *uri;
	char *key_report = NULL, *end;
	double ms_per = DEFAULT_MS_PER_INSTANCE, d;
	int no_anon = 0, options_given = 0, c, rc, status = EXIT_FAIL, sig_started = 0;
	long v;
	size_t count = 0, i;
	sigset_t oldmask;
	struct pull p;

	memset(&p, 0, sizeof p);
	pthread_mutex_init(&p.lock, NULL);
	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:j:q", longopts, NULL)) != -1) {
		uint32_t bit;
		switch (c) {
		case 'h':
			pull_help(stdout);
			return 0;
		case OPT_ACCESSIONS: accessions = optarg; continue;
		case 'o': jo.out_dir = optarg; continue;
		case OPT_SECRET: po.secret_file = optarg; options_given = 1; continue;
		case OPT_KEY: po.key_file = optarg; options_given = 1; continue;
		case OPT_OPTION:
			if (diana_deid_option_from_name(optarg, &bit) < 0)
				return usage_error("pull", "unknown --option (see --help)");
			po.options |= bit;
			options_given = 1;
			continue;
		case OPT_SHIFT:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 36500)
				return usage_error("pull", "--date-shift-days takes 1..36500");
			po.date_shift_max_days = (int32_t)v;
			options_given = 1;
			continue;
		case OPT_NO_ANON: no_anon = 1; continue;
		case 'j':
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 1 || v > 64)
				return usage_error("pull", "-j takes 1..64");
			jo.workers = (int)v;
			continue;
		case OPT_MAX_STUDIES:
			if (parse_rate("--max-studies-per-minute", optarg, &jo.max_studies_per_min))
				return EXIT_USAGE;
			continue;
		case OPT_MAX_QUERIES:
			if (parse_rate("--max-queries-per-second", optarg, &jo.max_queries_per_s))
				return EXIT_USAGE;
			continue;
		case OPT_MAX_MB:
			if (parse_rate("--max-mb-per-second", optarg, &jo.max_mb_per_s))
				return EXIT_USAGE;
			continue;
		case OPT_WINDOW:
			if (!valid_window(optarg))
				return usage_error("pull", "--window takes HH:MM-HH:MM (e.g. 19:00-07:00)");
			jo.window = optarg;
			continue;
		case OPT_JOB_RETRIES:
			errno = 0;
			v = strtol(optarg, &end, 10);
			if (errno || *end || end == optarg || v < 0 || v > 100)
				return usage_error("pull", "--retries takes 0..100");
			jo.retries = v == 0 ? -1 : (int)v;
			continue;
		case OPT_RETRY_DELAY:
			if (parse_rate("--retry-delay", optarg, &d))
				return EXIT_USAGE;
			jo.retry_delay_ms = (int64_t)(d * 1000 + 0.5);
			if (jo.retry_delay_ms < 1)
				jo.retry_delay_ms = 1;
			continue;
		case OPT_KEEP: jo.flags |= DIANA_JOB_KEEP_IN_HELPER; continue;
		case OPT_DRY: jo.flags |= DIANA_JOB_DRY_RUN; continue;
		case OPT_MS_PER:
			if (parse_rate("--ms-per-instance", optarg, &ms_per))
				return EXIT_USAGE;
			continue;
		case 'q': p.quiet = 1; continue;
		default:
			break;
		}
		rc = session_option("pull", c, optarg, &so);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc == 0)
			return usage_error("pull", "unknown option");
	}
	if (optind != argc - 1)
		return usage_error("pull", "exactly one URI expected");
	uri = argv[optind];
	if (!accessions)
		return usage_error("pull", "--accessions FILE is required");
	if (!jo.out_dir)
		return usage_error("pull", "-o OUTDIR is required");
	if (no_anon && options_given)
		return usage_error("pull", "--no-anonymize excludes --secret-file, --key, --option and --date-shift-days");
	if (!no_anon && !po.secret_file)
		return usage_error("pull", "--secret-file is required (there is no default secret), or --no-anonymize");

	p.deid = !no_anon;
	p.dry = (jo.flags & DIANA_JOB_DRY_RUN) != 0;
	p.tty = isatty(STDERR_FILENO);
	p.stdout_tty = isatty(STDOUT_FILENO);
	p.outdir = jo.out_dir;
	if (p.dry)
		po.key_file = NULL; /* a dry run writes nothing, not even an empty key file */
	p.key_file = po.key_file;
	if (po.key_file) {
		key_report = report_path(po.key_file);
		if (!key_report) {
			fprintf(stderr, "%s pull: out of memory\n", progname);
			return EXIT_FAIL;
		}
	}

	/* signals go to one thread that cancels the job; every thread started from here on inherits the mask */
	sigemptyset(&p.sigs);
	sigaddset(&p.sigs, SIGINT);
	sigaddset(&p.sigs, SIGTERM);
	sigaddset(&p.sigs, SIGHUP);
	sigaddset(&p.sigs, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &p.sigs, &oldmask);

	if (no_anon) {
		jo.flags |= DIANA_JOB_NO_ANONYMIZE;
	} else {
		if (diana_profile_new(&profile, &po) < 0) {
			status = fail("profile");
			goto out;
		}
		jo.profile = profile;
	}
	if (open_session(&session, uri, &so)) {
		status = EXIT_FAIL;
		goto out;
	}
	jo.progress = on_progress;
	jo.progress_user_data = &p;
	jo.on_study = on_study;
	jo.study_user_data = &p;
	if (diana_job_new(&p.job, session, &jo) < 0) {
		status = fail(jo.out_dir);
		goto out;
	}
	if (diana_job_add_accessions_file(p.job, accessions, &count) < 0) {
		status = fail(accessions);
		goto out;
	}
	if (diana_job_stats_get(p.job, &st) == 0 && st.items)
		p.total = st.items;
	else
		p.total = count;
	if (p.total == 0) {
		fprintf(stderr, "%s pull: %s: no accession numbers\n", progname, accessions);
		status = EXIT_FAIL;
		goto out;
	}
	if (pthread_create(&p.sig_thread, NULL, signal_thread, &p) == 0)
		sig_started = 1;

	rc = diana_job_run(p.job);
	if (rc < 0 && rc != DIANA_EPACS && rc != DIANA_ECANCELLED)
		fail("pull"); /* before other calls replace the thread's message */
	st.version = DIANA_JOB_STATS_VERSION;
	diana_job_stats_get(p.job, &st);
	if (p.tty && !p.quiet && p.bar_shown) {
		if (p.last.stage != DIANA_JOB_STAGE_DONE)
			bar_draw(&p, &p.last);
		fputc('\n', stderr);
	}

	if (key_report && p.nrows && write_key_report(&p, key_report) < 0)
		rc = rc < 0 ? rc : DIANA_EIO;

	/* summary */
	if (p.dry) {
		double est = (double)p.expected * ms_per;
		char buf[32];
		if (p.announced_bytes && p.announced_bytes / ESTIMATE_BYTES_PER_S * 1000.0 > est)
			est = p.announced_bytes / ESTIMATE_BYTES_PER_S * 1000.0;
		if (jo.max_studies_per_min > 0 && p.studies / jo.max_studies_per_min * 60000.0 > est)
			est = p.studies / jo.max_studies_per_min * 60000.0;
		if (jo.max_mb_per_s > 0 && p.announced_bytes / (jo.max_mb_per_s * 1e6) * 1000.0 > est)
			est = p.announced_bytes / (jo.max_mb_per_s * 1e6) * 1000.0;
		fmt_duration(buf, sizeof buf, est / 1000.0);
		printf("dry run: %llu of %llu accession numbers found (%llu unknown, %llu failed): %llu studies, "
		       "%llu instances; estimate %s (%llu instances x %.0f ms%s); nothing written\n",
		       (unsigned long long)(p.seen[DIANA_STUDY_OK] + p.seen[DIANA_STUDY_SKIPPED]),
		       (unsigned long long)p.total, (unsigned long long)p.seen[DIANA_STUDY_UNKNOWN],
		       (unsigned long long)p.seen[DIANA_STUDY_FAILED], (unsigned long long)p.studies,
		       (unsigned long long)p.expected, buf, (unsigned long long)p.expected, ms_per,
		       jo.window ? "; work starts only inside the window" : "");
	} else {
		double sec = st.elapsed_ms / 1000.0;
		printf("%llu ok, %llu skipped, %llu unknown, %llu failed of %llu; %llu instances, %.1f MB in %.1f s "
		       "(%.1f ms/image, %.1f MB/s) -> %s\n",
		       (unsigned long long)st.ok, (unsigned long long)st.skipped, (unsigned long long)st.unknown,
		       (unsigned long long)st.failed, (unsigned long long)(st.items ? st.items : p.total),
		       (unsigned long long)st.instances, st.bytes / 1e6, sec, st.ms_per_instance,
		       sec > 0 ? st.bytes / 1e6 / sec : 0.0, jo.out_dir);
		if (key_report && p.nrows)
			printf("key: %s (report with the original accession numbers: %s)\n", po.key_file, key_report);
	}
	fflush(stdout);

	if (rc == 0) {
		status = 0;
	} else if (rc == DIANA_EPACS && p.dry) {
		fprintf(stderr, "%s pull: %llu unknown, %llu failed\n", progname,
		        (unsigned long long)p.seen[DIANA_STUDY_UNKNOWN], (unsigned long long)p.seen[DIANA_STUDY_FAILED]);
		status = EXIT_FAIL;
	} else if (rc == DIANA_EPACS) {
		fprintf(stderr, "%s pull: %llu unknown, %llu failed: see %s/report.csv\n", progname,
		        (unsigned long long)st.unknown, (unsigned long long)st.failed, jo.out_dir);
		status = EXIT_FAIL;
	} else if (rc == DIANA_ECANCELLED) {
		fprintf(stderr, "%s pull: interrupted; rerun the same command to finish the job\n", progname);
		status = EXIT_FAIL;
	} else {
		status = EXIT_FAIL; /* the error line was printed */
	}

out:
	if (sig_started) {
		p.stopping = 1;
		pthread_kill(p.sig_thread, SIGUSR1);
		pthread_join(p.sig_thread, NULL);
	}
	diana_job_free(p.job);
	diana_session_free(session);
	diana_profile_free(profile);
	pthread_sigmask(SIG_SETMASK, &oldmask, NULL);
	for (i = 0; i < p.nrows; i++) {
		free(p.rows[i].accession);
		free(p.rows[i].pseudo);
		free(p.rows[i].reason);
	}
	free(p.rows);
	free(key_report);
	pthread_mutex_destroy(&p.lock);
	return status;
}
