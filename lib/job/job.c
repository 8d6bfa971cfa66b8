/*
 * libdiana - retrieval jobs: work list -> find -> retrieve -> de-identify
 * while streaming -> atomic files -> verify -> journal; N workers, each
 * with its own session; PACS protection (query, study and byte rates, a
 * time window, backoff); a report. See doc/job.md.
 *
 * Layout of out_dir:
 *   <PatientID>/<AccessionNumber>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
 *       (the de-identified values; the originals with DIANA_JOB_NO_ANONYMIZE)
 *   report.csv       one row per work item (no original accession numbers
 *                    when de-identifying: its pseudonym and its position)
 *   .diana/          journal.jsonl (keyed hashes only), work-N/ temporary files
 *
 * Durability: instances are written without fsync each (renamed into place
 * whole); at the end of a study one syncfs() makes them durable, and only
 * then is the study journaled done. A crash before that loses nothing but
 * time: the rerun fetches the study again and replaces the same files.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <diana/job.h>

#include "../core/core.h"
#include "../deid/deid.h"
#include "../session/session.h"
#include "journal.h"

enum { ITEM_ACCESSION = 1, ITEM_STUDY_UID = 2, ITEM_PATIENT = 3 };

typedef struct item {
	int kind;
	char *a, *b, *c; /* accession | study uid | patient id, date from, date to */
	char id[65];     /* journal id (keyed hash) */
	/* outcome (report) */
	int status;
	int error;
	char reason[160];
	char pseudo_acc[17];
	char pseudo_pid[72];
	uint32_t studies;
	uint64_t instances, expected, bytes;
	int finished;
} item;

typedef struct limiter {
	pthread_mutex_t lock;
	double interval_ms; /* per unit; 0: no limit */
	double next_ms;     /* monotonic time the next unit may go */
} limiter;

struct diana_job {
	diana_session *source;
	diana_job_options o;
	char *out_dir, *state_dir, *window;
	int win_start, win_end; /* minutes of the day; -1: always */
	item *items;
	size_t n, cap;
	diana__journal *journal;

	pthread_mutex_t lock; /* stats, next item, sessions, report */
	pthread_mutex_t cb_lock;
	pthread_mutex_t dest_lock;
	size_t next;
	diana_job_stats st;
	int64_t t0;
	atomic_int cancelled;
	int fatal; /* first error that stops the whole job */
	diana_session **sessions; /* of the running workers (for cancel) */
	int nsessions;
	int running;
	pthread_t thread;
	int thread_started;
	int thread_rc;
	limiter queries, studies, bytes;
	uint64_t done_items;
	/* helper eviction in the background: studies safely written are deleted from the
	   Orthanc helper by one thread with its own session, so workers never wait on it */
	pthread_mutex_t ev_lock;
	pthread_cond_t ev_cond;
	char (*ev_queue)[65];
	size_t ev_n, ev_cap;
	int ev_stop, ev_started;
	pthread_t ev_thread;
	diana_session *ev_session;
};

typedef struct worker {
	diana_job *job;
	int index;
	diana_session *s;
	char *tmp_dir;  /* session temp files */
	char *staging;  /* de-identified files before their final place */
	char last_dir[1024];
} worker;

/* ------------------------------------------------------------ small helpers */

static int64_t now_ms(void)
{
	return diana__now_ms();
}

static int cancelled(diana_job *j)
{
	return atomic_load(&j->cancelled);
}

/* sleep up to `ms`, waking early on cancel; returns DIANA_ECANCELLED then */
static int nap(diana_job *j, int64_t ms)
{
	while (ms > 0) {
		struct timespec ts;
		int64_t step = ms > 200 ? 200 : ms;
		if (cancelled(j))
			return DIANA_ECANCELLED;
		ts.tv_sec = (time_t)(step / 1000);
		ts.tv_nsec = (long)(step % 1000) * 1000000L;
		nanosleep(&ts, NULL);
		ms -= step;
	}
	return cancelled(j) ? DIANA_ECANCELLED : 0;
}

static void limiter_init(limiter *l, double per_unit_ms)
{
	pthread_mutex_init(&l->lock, NULL);
	l->interval_ms = per_unit_ms;
	l->next_ms = 0;
}

/* take `units`; waits while the rate is exceeded */
static int limiter_take(diana_job *j, limiter *l, double units)
{
	double now, wait;

	if (l->interval_ms <= 0)
		return 0;
	pthread_mutex_lock(&l->lock);
	now = (double)now_ms();
	if (l->next_ms < now)
		l->next_ms = now;
	wait = l->next_ms - now;
	l->next_ms += l->interval_ms * units;
	pthread_mutex_unlock(&l->lock);
	return nap(j, (int64_t)wait);
}

/* a path component from a value: A-Z a-z 0-9 . _ -, never "", "." or ".." */
static void component(const char *v, char *out, size_t cap)
{
	size_t i = 0, dots = 0;

	for (; v && *v && i + 1 < cap && i < 64; v++) {
		char c = *v;
		if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' ||
		    c == '_' || c == '-')
			out[i++] = c;
		else
			out[i++] = '_';
		if (c == '.')
			dots++;
	}
	out[i] = '\0';
	if (i == 0 || dots == i)
		snprintf(out, cap, "unknown");
}

static void sha256_hex(const char *data, char out[65])
{
	unsigned char md[32];
	unsigned int len = 0;
	int i;
	EVP_Digest(data, strlen(data), md, &len, EVP_sha256(), NULL);
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* the journal's name for a thing: keyed when de-identifying */
static int name_of(const diana_job *j, const char *prefix, const char *value, char out[65])
{
	if (j->o.profile)
		return diana__profile_hash_hex(j->o.profile, prefix, value, out);
	{
		diana__buf b = DIANA__BUF_INIT;
		diana__buf_printf(&b, "%s%s", prefix, value);
		if (b.oom) {
			diana__buf_dispose(&b);
			return diana__error_oom();
		}
		sha256_hex(b.data, out);
		diana__buf_dispose(&b);
	}
	return 0;
}

static int transient(int code)
{
	switch (code) {
	case DIANA_ECONNECT:
	case DIANA_ETIMEDOUT:
	case DIANA_EPACS:
	case DIANA_EAUTH:
	case DIANA_EIO:
	case DIANA_EDICOM:
		return 1;
	default:
		return 0;
	}
}

/* ------------------------------------------------------------ options, lists */

int diana_job_options_init(diana_job_options *opts, uint32_t version)
{
	static const diana_job_options def = DIANA_JOB_OPTIONS_INIT;
	if (!opts)
		return diana__error_set(DIANA_EINVAL, "options: NULL");
	if (version != DIANA_JOB_OPTIONS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "job options version %u is not supported", (unsigned)version);
	*opts = def;
	return 0;
}

static int parse_window(const char *w, int *start, int *end)
{
	int h1, m1, h2, m2;
	char tail;
	if (sscanf(w, "%d:%d-%d:%d%c", &h1, &m1, &h2, &m2, &tail) != 4 || h1 < 0 || h1 > 23 || h2 < 0 ||
	    h2 > 24 || m1 < 0 || m1 > 59 || m2 < 0 || m2 > 59 || (h2 == 24 && m2 != 0))
		return diana__error_set(DIANA_EINVAL, "time window must be HH:MM-HH:MM (e.g. 19:00-07:00)");
	*start = h1 * 60 + m1;
	*end = h2 * 60 + m2;
	if (*start == *end)
		return diana__error_set(DIANA_EINVAL, "time window is empty");
	return 0;
}

int diana_job_new(diana_job **out, diana_session *source, const diana_job_options *o)
{
	diana_job *j;
	size_t n;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "diana_job_new: NULL out");
	*out = NULL;
	if (!source || !o)
		return diana__error_set(DIANA_EINVAL, "diana_job_new: a source session and options are required");
	if (o->version < 1 || o->version > DIANA_JOB_OPTIONS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "job options version %u is not supported", (unsigned)o->version);
	if (!o->out_dir || !*o->out_dir)
		return diana__error_set(DIANA_EINVAL, "diana_job_new: out_dir is required");
	if (!o->profile && !(o->flags & DIANA_JOB_NO_ANONYMIZE))
		return diana__error_set(DIANA_EINVAL,
		                        "diana_job_new: a de-identification profile is required (or DIANA_JOB_NO_ANONYMIZE)");
	if (o->workers < 0 || o->workers > 64)
		return diana__error_set(DIANA_EINVAL, "diana_job_new: workers must be 1-64");
	if (o->max_queries_per_s < 0 || o->max_studies_per_min < 0 || o->max_mb_per_s < 0 || o->retries < -1 ||
	    o->retry_delay_ms < 0)
		return diana__error_set(DIANA_EINVAL, "diana_job_new: negative limits");
	if (o->flags & ~(uint32_t)(DIANA_JOB_NO_ANONYMIZE | DIANA_JOB_DRY_RUN | DIANA_JOB_KEEP_IN_HELPER))
		return diana__error_set(DIANA_EINVAL, "diana_job_new: unknown flags");
	j = diana__calloc(1, sizeof(*j));
	if (!j)
		return DIANA_ENOMEM;
	j->source = source;
	j->o = *o;
	j->win_start = j->win_end = -1;
	pthread_mutex_init(&j->lock, NULL);
	pthread_mutex_init(&j->cb_lock, NULL);
	pthread_mutex_init(&j->dest_lock, NULL);
	pthread_mutex_init(&j->ev_lock, NULL);
	pthread_cond_init(&j->ev_cond, NULL);
	atomic_init(&j->cancelled, 0);
	if (j->o.workers == 0)
		j->o.workers = 1;
	if (j->o.retries == 0)
		j->o.retries = 3;
	else if (j->o.retries < 0)
		j->o.retries = 0;
	if (j->o.retry_delay_ms == 0)
		j->o.retry_delay_ms = 5000;
	if (o->flags & DIANA_JOB_NO_ANONYMIZE)
		j->o.profile = NULL;
	limiter_init(&j->queries, o->max_queries_per_s > 0 ? 1000.0 / o->max_queries_per_s : 0);
	limiter_init(&j->studies, o->max_studies_per_min > 0 ? 60000.0 / o->max_studies_per_min : 0);
	limiter_init(&j->bytes, o->max_mb_per_s > 0 ? 1000.0 / (o->max_mb_per_s * 1e6) : 0);
	rc = 0;
	if (o->window && *o->window) {
		rc = parse_window(o->window, &j->win_start, &j->win_end);
		if (rc == 0 && !(j->window = diana__strdup(o->window)))
			rc = DIANA_ENOMEM;
	}
	j->out_dir = diana__strdup(o->out_dir);
	if (rc == 0 && !j->out_dir)
		rc = DIANA_ENOMEM;
	if (rc == 0) {
		n = strlen(j->out_dir);
		while (n > 1 && j->out_dir[n - 1] == '/')
			j->out_dir[--n] = '\0';
		j->state_dir = diana__malloc(n + 8);
		if (!j->state_dir)
			rc = DIANA_ENOMEM;
		else
			snprintf(j->state_dir, n + 8, "%s/.diana", j->out_dir);
	}
	if (rc == 0 && !(o->flags & DIANA_JOB_DRY_RUN)) {
		rc = diana__mkdir_p(j->state_dir);
		if (rc == 0)
			rc = diana__journal_open_file(&j->journal, j->state_dir);
	}
	j->o.out_dir = NULL;
	j->o.window = NULL;
	if (rc < 0) {
		diana_job_free(j);
		return rc;
	}
	*out = j;
	return 0;
}

void diana_job_free(diana_job *j)
{
	size_t i;
	if (!j)
		return;
	if (j->thread_started) {
		diana_job_cancel(j);
		diana_job_wait(j);
	}
	diana__journal_free(j->journal);
	for (i = 0; i < j->n; i++) {
		free(j->items[i].a);
		free(j->items[i].b);
		free(j->items[i].c);
	}
	free(j->items);
	free(j->out_dir);
	free(j->state_dir);
	free(j->window);
	pthread_mutex_destroy(&j->lock);
	pthread_mutex_destroy(&j->cb_lock);
	pthread_mutex_destroy(&j->dest_lock);
	pthread_mutex_destroy(&j->ev_lock);
	pthread_cond_destroy(&j->ev_cond);
	free(j->ev_queue);
	pthread_mutex_destroy(&j->queries.lock);
	pthread_mutex_destroy(&j->studies.lock);
	pthread_mutex_destroy(&j->bytes.lock);
	free(j);
}

static int check_text(const char *v, size_t max, const char *what)
{
	size_t n;
	if (!v || !*v)
		return diana__error_set(DIANA_EINVAL, "%s is empty", what);
	n = strlen(v);
	if (n > max)
		return diana__error_set(DIANA_EINVAL, "%s is longer than %zu characters", what, max);
	for (; *v; v++) {
		if ((unsigned char)*v < 0x20 || *v == '\\' || *v == '*' || *v == '?')
			return diana__error_set(DIANA_EINVAL, "%s holds a control character, '\\' or a wildcard", what);
	}
	return 0;
}

static int add_item(diana_job *j, int kind, const char *a, const char *b, const char *c)
{
	item *it;
	diana__buf key = DIANA__BUF_INIT;
	size_t i;
	int rc;

	if (j->running)
		return diana__error_set(DIANA_EINVAL, "the job is running");
	diana__buf_printf(&key, "%d|%s|%s|%s", kind, a, b ? b : "", c ? c : "");
	if (key.oom) {
		diana__buf_dispose(&key);
		return diana__error_oom();
	}
	if (j->n == j->cap) {
		size_t ncap = j->cap ? j->cap * 2 : 64;
		item *nv = realloc(j->items, ncap * sizeof(*nv));
		if (!nv) {
			diana__buf_dispose(&key);
			return diana__error_oom();
		}
		j->items = nv;
		j->cap = ncap;
	}
	it = &j->items[j->n];
	memset(it, 0, sizeof(*it));
	rc = name_of(j, "diana-job-item:", key.data, it->id);
	diana__buf_dispose(&key);
	if (rc < 0)
		return rc;
	for (i = 0; i < j->n; i++) {
		if (strcmp(j->items[i].id, it->id) == 0)
			return 1; /* a duplicate: added once */
	}
	it->kind = kind;
	it->a = diana__strdup(a);
	it->b = b ? diana__strdup(b) : NULL;
	it->c = c ? diana__strdup(c) : NULL;
	if (!it->a || (b && !it->b) || (c && !it->c)) {
		free(it->a);
		free(it->b);
		free(it->c);
		return DIANA_ENOMEM;
	}
	if (kind == ITEM_ACCESSION && j->o.profile)
		diana__profile_pseudo_id(j->o.profile, a, it->pseudo_acc);
	j->n++;
	return 0;
}

int diana_job_add_accession(diana_job *j, const char *acc)
{
	int rc;
	if (!j)
		return diana__error_set(DIANA_EINVAL, "NULL job");
	if ((rc = check_text(acc, 64, "accession number")) < 0)
		return rc;
	rc = add_item(j, ITEM_ACCESSION, acc, NULL, NULL);
	return rc < 0 ? rc : 0;
}

int diana_job_add_study_uid(diana_job *j, const char *uid)
{
	const char *p;
	int rc;
	if (!j)
		return diana__error_set(DIANA_EINVAL, "NULL job");
	if (!uid || !*uid || strlen(uid) > 64)
		return diana__error_set(DIANA_EINVAL, "a Study Instance UID has 1-64 characters");
	for (p = uid; *p; p++) {
		if (!((*p >= '0' && *p <= '9') || *p == '.'))
			return diana__error_set(DIANA_EINVAL, "a Study Instance UID holds digits and dots only");
	}
	rc = add_item(j, ITEM_STUDY_UID, uid, NULL, NULL);
	return rc < 0 ? rc : 0;
}

static int check_date(const char *d)
{
	int i;
	if (!d || !*d)
		return 0;
	for (i = 0; i < 8; i++) {
		if (d[i] < '0' || d[i] > '9')
			return diana__error_set(DIANA_EINVAL, "dates are YYYYMMDD");
	}
	return d[8] ? diana__error_set(DIANA_EINVAL, "dates are YYYYMMDD") : 0;
}

int diana_job_add_patient(diana_job *j, const char *pid, const char *from, const char *to)
{
	int rc;
	if (!j)
		return diana__error_set(DIANA_EINVAL, "NULL job");
	if ((rc = check_text(pid, 64, "patient ID")) < 0 || (rc = check_date(from)) < 0 || (rc = check_date(to)) < 0)
		return rc;
	rc = add_item(j, ITEM_PATIENT, pid, from && *from ? from : NULL, to && *to ? to : NULL);
	return rc < 0 ? rc : 0;
}

int diana_job_add_accessions_file(diana_job *j, const char *path, size_t *count)
{
	uint8_t *data = NULL;
	size_t len = 0, i, start = 0, line = 0, added = 0;
	int rc;

	if (count)
		*count = 0;
	if (!j || !path)
		return diana__error_set(DIANA_EINVAL, "diana_job_add_accessions_file: NULL argument");
	rc = diana__file_read(path, (uint64_t)256 << 20, &data, &len);
	if (rc < 0)
		return rc;
	for (i = 0; i <= len; i++) {
		char buf[256];
		size_t n, k;
		if (i < len && data[i] != '\n')
			continue;
		line++;
		n = i - start;
		if (n >= sizeof(buf)) {
			free(data);
			return diana__error_set(DIANA_EINVAL, "%s: line %zu is too long", "accession list", line);
		}
		memcpy(buf, data + start, n);
		buf[n] = '\0';
		start = i + 1;
		/* first column; trim; strip quotes and a UTF-8 BOM */
		buf[strcspn(buf, ",;\t\r")] = '\0';
		k = 0;
		if (line == 1 && (unsigned char)buf[0] == 0xEF && (unsigned char)buf[1] == 0xBB &&
		    (unsigned char)buf[2] == 0xBF)
			k = 3;
		while (buf[k] == ' ' || buf[k] == '"')
			k++;
		n = strlen(buf + k);
		while (n > 0 && (buf[k + n - 1] == ' ' || buf[k + n - 1] == '"'))
			n--;
		buf[k + n] = '\0';
		if (!buf[k] || buf[k] == '#')
			continue;
		if (line == 1 && (strcasecmp(buf + k, "AccessionNumber") == 0 || strcasecmp(buf + k, "accession") == 0))
			continue;
		if (check_text(buf + k, 64, "accession number") < 0) {
			free(data);
			return diana__error_set(DIANA_EINVAL, "accession list line %zu: not an accession number", line);
		}
		rc = add_item(j, ITEM_ACCESSION, buf + k, NULL, NULL);
		if (rc < 0) {
			free(data);
			return rc;
		}
		if (rc == 0)
			added++;
	}
	free(data);
	if (count)
		*count = added;
	return 0;
}

/* -------------------------------------------------------------- callbacks */

static int report_progress(worker *w, int stage, const char *current)
{
	diana_job *j = w->job;
	diana_job_progress p;
	int rc = 0;

	if (!j->o.progress)
		return 0;
	memset(&p, 0, sizeof(p));
	p.version = DIANA_JOB_PROGRESS_VERSION;
	p.stage = stage;
	pthread_mutex_lock(&j->lock);
	p.items_done = j->done_items;
	p.items_total = j->n;
	p.instances = j->st.instances;
	p.bytes = j->st.bytes;
	pthread_mutex_unlock(&j->lock);
	p.elapsed_ms = now_ms() - j->t0;
	p.current = current ? current : "";
	pthread_mutex_lock(&j->cb_lock);
	rc = j->o.progress(&p, j->o.progress_user_data);
	pthread_mutex_unlock(&j->cb_lock);
	if (rc != 0)
		diana_job_cancel(j);
	return rc;
}

static void finish_item(worker *w, item *it)
{
	diana_job *j = w->job;
	diana_job_study s;

	pthread_mutex_lock(&j->lock);
	it->finished = 1;
	j->done_items++;
	switch (it->status) {
	case DIANA_STUDY_OK:
		j->st.ok++;
		break;
	case DIANA_STUDY_SKIPPED:
		j->st.skipped++;
		break;
	case DIANA_STUDY_UNKNOWN:
		j->st.unknown++;
		break;
	default:
		j->st.failed++;
		break;
	}
	pthread_mutex_unlock(&j->lock);
	if (it->status == DIANA_STUDY_FAILED)
		diana__log(DIANA_LOG_WARNING, "job", "item %zu failed: %s", (size_t)(it - j->items) + 1, it->reason);
	if (j->o.on_study) {
		memset(&s, 0, sizeof(s));
		s.version = DIANA_JOB_STUDY_VERSION;
		s.index = (uint64_t)(it - j->items) + 1;
		s.status = it->status;
		s.error = it->error;
		s.reason = it->reason;
		s.accession = it->kind == ITEM_ACCESSION ? it->a : "";
		s.pseudo_accession = it->pseudo_acc;
		s.pseudo_patient_id = it->pseudo_pid;
		s.studies = it->studies;
		s.instances = it->instances;
		s.expected = it->expected;
		s.bytes = it->bytes;
		pthread_mutex_lock(&j->cb_lock);
		if (j->o.on_study(&s, j->o.study_user_data) != 0)
			atomic_store(&j->cancelled, 1);
		pthread_mutex_unlock(&j->cb_lock);
	}
	report_progress(w, DIANA_JOB_STAGE_QUERY, "");
}

/* ------------------------------------------------------------------- find */

typedef struct found {
	char uid[72];
	uint64_t expected; /* 0: unknown */
} found;

typedef struct found_list {
	found *v;
	size_t n, cap;
} found_list;

static int on_found(const diana_dataset *ds, void *ud)
{
	found_list *l = ud;
	char *uid = NULL, *n = NULL;
	found *f;

	if (diana_dataset_get(ds, "StudyInstanceUID", &uid) < 0 || !uid || !*uid || strlen(uid) > 64) {
		diana_free(uid);
		diana_error_clear();
		return 0; /* an answer without a usable UID cannot be retrieved */
	}
	if (l->n == l->cap) {
		size_t ncap = l->cap ? l->cap * 2 : 4;
		found *nv = realloc(l->v, ncap * sizeof(*nv));
		if (!nv) {
			diana_free(uid);
			return diana__error_oom();
		}
		l->v = nv;
		l->cap = ncap;
	}
	f = &l->v[l->n++];
	memset(f, 0, sizeof(*f));
	snprintf(f->uid, sizeof(f->uid), "%s", uid);
	diana_free(uid);
	if (diana_dataset_get(ds, "NumberOfStudyRelatedInstances", &n) == 0 && n)
		f->expected = strtoull(n, NULL, 10);
	diana_free(n);
	diana_error_clear();
	return 0;
}

static int count_cb(const diana_dataset *ds, void *ud)
{
	(void)ds;
	(void)ud;
	return 0;
}

static int find_studies(worker *w, item *it, found_list *out)
{
	diana_job *j = w->job;
	const char *keys[6];
	char k1[96], k2[48];
	size_t nk = 0;
	int rc;

	switch (it->kind) {
	case ITEM_ACCESSION:
		snprintf(k1, sizeof(k1), "AccessionNumber=%s", it->a);
		keys[nk++] = k1;
		break;
	case ITEM_STUDY_UID:
		snprintf(k1, sizeof(k1), "StudyInstanceUID=%s", it->a);
		keys[nk++] = k1;
		break;
	default:
		snprintf(k1, sizeof(k1), "PatientID=%s", it->a);
		keys[nk++] = k1;
		if (it->b || it->c) {
			snprintf(k2, sizeof(k2), "StudyDate=%s-%s", it->b ? it->b : "", it->c ? it->c : "");
			keys[nk++] = k2;
		}
		break;
	}
	if (it->kind != ITEM_STUDY_UID)
		keys[nk++] = "StudyInstanceUID";
	keys[nk++] = "NumberOfStudyRelatedInstances";
	rc = limiter_take(j, &j->queries, 1);
	if (rc < 0)
		return rc;
	diana__log(DIANA_LOG_DEBUG, "job", "query: study level (worker %d)", w->index);
	return diana_session_find(w->s, DIANA_LEVEL_STUDY, keys, nk, on_found, out, NULL);
}

/* the instance count when the study answer did not carry it */
static int count_instances(worker *w, const char *uid, uint64_t *n)
{
	diana_job *j = w->job;
	char k[96];
	const char *keys[2];
	size_t count = 0;
	int rc;

	snprintf(k, sizeof(k), "StudyInstanceUID=%s", uid);
	keys[0] = k;
	keys[1] = "SOPInstanceUID";
	rc = limiter_take(j, &j->queries, 1);
	if (rc < 0)
		return rc;
	diana__log(DIANA_LOG_DEBUG, "job", "query: instance level (worker %d)", w->index);
	rc = diana_session_find(w->s, DIANA_LEVEL_INSTANCE, keys, 2, count_cb, NULL, &count);
	*n = count;
	return rc;
}

/* --------------------------------------------------------------- retrieve */

typedef struct study_ctx {
	worker *w;
	item *it;
	char **sops; /* SOP Instance UIDs written (a study's, for the completeness check) */
	size_t nsops, capsops;
	char **paths; /* written files (for a destination session) */
	size_t npaths, cappaths;
	uint64_t bytes;
	int fatal;     /* an output error: stop the job */
	int deid_fail; /* an instance could not be de-identified: no retry helps */
	char reason[160];
} study_ctx;

static int add_str(char ***v, size_t *n, size_t *cap, const char *s)
{
	if (*n == *cap) {
		size_t ncap = *cap ? *cap * 2 : 64;
		char **nv = realloc(*v, ncap * sizeof(*nv));
		if (!nv)
			return diana__error_oom();
		*v = nv;
		*cap = ncap;
	}
	(*v)[*n] = diana__strdup(s);
	if (!(*v)[*n])
		return DIANA_ENOMEM;
	(*n)++;
	return 0;
}

static void study_ctx_dispose(study_ctx *c)
{
	size_t i;
	for (i = 0; i < c->nsops; i++)
		free(c->sops[i]);
	for (i = 0; i < c->npaths; i++)
		free(c->paths[i]);
	free(c->sops);
	free(c->paths);
	c->sops = c->paths = NULL;
	c->nsops = c->npaths = c->capsops = c->cappaths = 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static size_t unique_count(char **v, size_t n)
{
	size_t i, u = 0;
	qsort(v, n, sizeof(*v), cmp_str);
	for (i = 0; i < n; i++) {
		if (i == 0 || strcmp(v[i], v[i - 1]) != 0)
			u++;
	}
	return u;
}

static int output_path(study_ctx *c, const char *pid, const char *acc, const char *series, const char *sop,
                       char *path, size_t cap)
{
	worker *w = c->w;
	char cp[72], ca[72], cs[72], co[72];
	int rc;

	component(pid, cp, sizeof(cp));
	component(acc, ca, sizeof(ca));
	component(series, cs, sizeof(cs));
	component(sop, co, sizeof(co));
	if ((size_t)snprintf(path, cap, "%s/%s/%s/%s", w->job->out_dir, cp, ca, cs) >= cap)
		return diana__error_set(DIANA_EINVAL, "output path too long");
	if (strcmp(path, w->last_dir) != 0) {
		rc = diana__mkdir_p(path);
		if (rc < 0)
			return rc;
		snprintf(w->last_dir, sizeof(w->last_dir), "%s", path);
	}
	snprintf(path + strlen(path), cap - strlen(path), "/%s.dcm", co);
	return 0;
}

static int write_error(study_ctx *c, int rc)
{
	/* the output side failed (disk full, permissions): the job stops */
	c->fatal = rc;
	snprintf(c->reason, sizeof(c->reason), "writing the output: %s", diana_error_message());
	return rc;
}

static int on_instance(const diana_instance *inst, void *ud)
{
	study_ctx *c = ud;
	worker *w = c->w;
	diana_job *j = w->job;
	char path[2048];
	int rc;

	if (j->o.profile) {
		char *outp = NULL;
		diana_deid_result *res = NULL;
		const char *pid, *acc, *series, *sop;

		rc = diana_anonymize_into(j->o.profile, inst->path, w->staging, DIANA_ANON_NO_SYNC, &outp, &res);
		if (rc == 1)
			return 0; /* a DICOMDIR: nothing to keep */
		if (rc < 0) {
			if (rc == DIANA_EIO || rc == DIANA_ENOSPC)
				return write_error(c, rc);
			c->deid_fail = 1;
			snprintf(c->reason, sizeof(c->reason), "an instance could not be de-identified: %s",
			         diana_error_message());
			return rc;
		}
		pid = diana_deid_result_get(res, "PatientID");
		acc = diana_deid_result_get(res, "AccessionNumber");
		series = diana_deid_result_get(res, "SeriesInstanceUID");
		sop = diana_deid_result_get(res, "SOPInstanceUID");
		if (!acc || !*acc)
			acc = c->it->pseudo_acc[0] ? c->it->pseudo_acc : "noaccession";
		if (pid && !c->it->pseudo_pid[0])
			snprintf(c->it->pseudo_pid, sizeof(c->it->pseudo_pid), "%s", pid);
		rc = output_path(c, pid, acc, series, sop, path, sizeof(path));
		if (rc == 0 && rename(outp, path) != 0)
			rc = diana__error_errno(errno, "moving a de-identified file into place");
		if (rc < 0)
			unlink(outp);
		/* the original SOP Instance UID counts for completeness */
		if (rc == 0)
			rc = add_str(&c->sops, &c->nsops, &c->capsops, inst->sop_instance_uid);
		diana_free(outp);
		diana_deid_result_free(res);
		if (rc < 0)
			return write_error(c, rc);
	} else {
		diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
		diana_dataset *ds = NULL;
		char *pid = NULL, *acc = NULL, *series = NULL, *sop = NULL;

		o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
		rc = diana_dataset_open(&ds, inst->path, &o);
		if (rc < 0) {
			snprintf(c->reason, sizeof(c->reason), "a received instance is not readable: %s",
			         diana_error_message());
			return rc;
		}
		diana_dataset_get(ds, "PatientID", &pid);
		diana_dataset_get(ds, "AccessionNumber", &acc);
		diana_dataset_get(ds, "SeriesInstanceUID", &series);
		diana_dataset_get(ds, "SOPInstanceUID", &sop);
		diana_dataset_free(ds);
		diana_error_clear();
		if (pid && !c->it->pseudo_pid[0])
			snprintf(c->it->pseudo_pid, sizeof(c->it->pseudo_pid), "%s", pid);
		rc = output_path(c, pid, acc && *acc ? acc : "noaccession", series, sop, path, sizeof(path));
		if (rc == 0)
			rc = diana_instance_keep(inst, path);
		if (rc == 0)
			rc = add_str(&c->sops, &c->nsops, &c->capsops, sop ? sop : inst->sop_instance_uid);
		diana_free(pid);
		diana_free(acc);
		diana_free(series);
		diana_free(sop);
		if (rc < 0)
			return write_error(c, rc);
	}
	if (j->o.dest && add_str(&c->paths, &c->npaths, &c->cappaths, path) < 0)
		return write_error(c, DIANA_ENOMEM);
	c->bytes += inst->size;
	pthread_mutex_lock(&j->lock);
	j->st.instances++;
	j->st.bytes += inst->size;
	pthread_mutex_unlock(&j->lock);
	if (report_progress(w, DIANA_JOB_STAGE_RETRIEVE, c->it->pseudo_acc[0] ? c->it->pseudo_acc : "") != 0)
		return diana__error_set(DIANA_ECANCELLED, "cancelled by the progress callback");
	rc = limiter_take(j, &j->bytes, (double)inst->size);
	if (rc < 0)
		return rc;
	return 0;
}

/* ------------------------------------------------------- helper eviction */

static void evict_later(diana_job *j, const char *uid)
{
	pthread_mutex_lock(&j->ev_lock);
	if (j->ev_n == j->ev_cap) {
		size_t ncap = j->ev_cap ? j->ev_cap * 2 : 16;
		void *nv = realloc(j->ev_queue, ncap * sizeof(*j->ev_queue));
		if (nv) {
			j->ev_queue = nv;
			j->ev_cap = ncap;
		}
	}
	if (j->ev_n < j->ev_cap) {
		snprintf(j->ev_queue[j->ev_n], 65, "%.64s", uid);
		j->ev_n++;
		pthread_cond_signal(&j->ev_cond);
	} else {
		diana__log(DIANA_LOG_WARNING, "job", "out of memory: a study stays in the helper");
	}
	pthread_mutex_unlock(&j->ev_lock);
}

static void *evictor_main(void *arg)
{
	diana_job *j = arg;

	for (;;) {
		char uid[65];
		pthread_mutex_lock(&j->ev_lock);
		while (j->ev_n == 0 && !j->ev_stop)
			pthread_cond_wait(&j->ev_cond, &j->ev_lock);
		if (j->ev_n == 0 && j->ev_stop) {
			pthread_mutex_unlock(&j->ev_lock);
			break;
		}
		/* oldest first */
		snprintf(uid, sizeof(uid), "%s", j->ev_queue[0]);
		memmove(j->ev_queue, j->ev_queue + 1, (j->ev_n - 1) * sizeof(*j->ev_queue));
		j->ev_n--;
		pthread_mutex_unlock(&j->ev_lock);
		if (diana__session_evict(j->ev_session, uid) < 0) {
			diana__log(DIANA_LOG_WARNING, "job", "could not delete a study from the helper: %s",
			           diana_error_message());
			diana_error_clear();
		}
	}
	return NULL;
}

static void evictor_start(diana_job *j)
{
	j->ev_started = 0;
	j->ev_stop = 0;
	if ((j->o.flags & (DIANA_JOB_KEEP_IN_HELPER | DIANA_JOB_DRY_RUN)) || !diana__session_has_cache(j->source))
		return;
	if (diana__session_clone(j->source, NULL, &j->ev_session) < 0) {
		diana__log(DIANA_LOG_WARNING, "job", "no eviction session: studies stay in the helper (%s)",
		           diana_error_message());
		diana_error_clear();
		return;
	}
	if (pthread_create(&j->ev_thread, NULL, evictor_main, j) != 0) {
		diana_session_free(j->ev_session);
		j->ev_session = NULL;
		return;
	}
	j->ev_started = 1;
}

/* drain the queue (every study written is evicted, also after a cancel) and stop */
static void evictor_stop(diana_job *j)
{
	if (!j->ev_started)
		return;
	pthread_mutex_lock(&j->ev_lock);
	j->ev_stop = 1;
	pthread_cond_signal(&j->ev_cond);
	pthread_mutex_unlock(&j->ev_lock);
	pthread_join(j->ev_thread, NULL);
	diana_session_free(j->ev_session);
	j->ev_session = NULL;
	j->ev_started = 0;
}

/* one study of an item: retrieve, verify, sync, journal, forward, evict */
static int do_study(worker *w, item *it, const found *f, int *skipped)
{
	diana_job *j = w->job;
	diana_transfer_stats ts = DIANA_TRANSFER_STATS_INIT;
	study_ctx c;
	char sid[65];
	uint64_t expected = f->expected, got;
	int rc;

	*skipped = 0;
	rc = name_of(j, "diana-job-study:", f->uid, sid);
	if (rc < 0)
		return rc;
	if (diana__journal_is_done(j->journal, sid)) {
		*skipped = 1;
		return 0;
	}
	if (expected == 0) {
		rc = count_instances(w, f->uid, &expected);
		if (rc < 0) {
			snprintf(it->reason, sizeof(it->reason), "counting the instances: %s", diana_error_message());
			return rc;
		}
	}
	rc = limiter_take(j, &j->studies, 1);
	if (rc < 0)
		return rc;
	memset(&c, 0, sizeof(c));
	c.w = w;
	c.it = it;
	w->last_dir[0] = '\0';
	report_progress(w, DIANA_JOB_STAGE_RETRIEVE, it->pseudo_acc);
	rc = diana_session_retrieve(w->s, f->uid, NULL, NULL, on_instance, &c, &ts);
	got = c.nsops ? unique_count(c.sops, c.nsops) : 0;
	it->expected += expected;
	if (rc < 0) {
		if (c.fatal) {
			pthread_mutex_lock(&j->lock);
			if (!j->fatal)
				j->fatal = c.fatal;
			pthread_mutex_unlock(&j->lock);
			diana_job_cancel(j);
		}
		if (c.reason[0])
			snprintf(it->reason, sizeof(it->reason), "%s", c.reason);
		else
			snprintf(it->reason, sizeof(it->reason), "retrieve: %s", diana_error_message());
		study_ctx_dispose(&c);
		return c.deid_fail ? DIANA_EDICOM * 100 : rc; /* x100: not worth a retry */
	}
	if (got < expected) {
		snprintf(it->reason, sizeof(it->reason), "incomplete: %llu of %llu instances",
		         (unsigned long long)got, (unsigned long long)expected);
		study_ctx_dispose(&c);
		return diana__error_set(DIANA_EPACS, "%s", it->reason);
	}
	/* durable before journaled */
	rc = diana_anonymize_sync(j->out_dir);
	if (rc == 0 && j->o.dest) {
		diana_transfer_stats ds = DIANA_TRANSFER_STATS_INIT;
		pthread_mutex_lock(&j->dest_lock);
		rc = diana_session_store(j->o.dest, (const char *const *)c.paths, c.npaths, NULL, NULL, &ds);
		pthread_mutex_unlock(&j->dest_lock);
		if (rc < 0)
			snprintf(it->reason, sizeof(it->reason), "storing to the destination: %s", diana_error_message());
	}
	if (rc == 0) {
		char extra[96];
		snprintf(extra, sizeof(extra), "\"kind\":\"study\",\"instances\":%llu", (unsigned long long)got);
		rc = diana__journal_done(j->journal, sid, extra);
		if (rc < 0) {
			pthread_mutex_lock(&j->lock);
			if (!j->fatal)
				j->fatal = rc;
			pthread_mutex_unlock(&j->lock);
			diana_job_cancel(j);
			snprintf(it->reason, sizeof(it->reason), "journal: %s", diana_error_message());
		}
	}
	if (rc == 0) {
		it->instances += got;
		it->bytes += c.bytes;
		pthread_mutex_lock(&j->lock);
		j->st.studies++;
		pthread_mutex_unlock(&j->lock);
		if (j->ev_started)
			evict_later(j, f->uid);
	}
	study_ctx_dispose(&c);
	return rc;
}

static int in_window(const diana_job *j)
{
	time_t t;
	struct tm tm;
	int m;
	if (j->win_start < 0)
		return 1;
	t = time(NULL);
	localtime_r(&t, &tm);
	m = tm.tm_hour * 60 + tm.tm_min;
	if (j->win_start < j->win_end)
		return m >= j->win_start && m < j->win_end;
	return m >= j->win_start || m < j->win_end;
}

static void process_item(worker *w, item *it)
{
	diana_job *j = w->job;
	int64_t delay = j->o.retry_delay_ms;
	int attempt, rc = 0;

	it->status = DIANA_STUDY_FAILED;
	it->reason[0] = '\0';
	if (!(j->o.flags & DIANA_JOB_DRY_RUN) && diana__journal_is_done(j->journal, it->id)) {
		it->status = DIANA_STUDY_SKIPPED;
		finish_item(w, it);
		return;
	}
	while (!in_window(j)) {
		report_progress(w, DIANA_JOB_STAGE_WAIT, "");
		if (nap(j, 20000) < 0)
			break;
	}
	for (attempt = 0; attempt <= j->o.retries; attempt++) {
		found_list fl = { NULL, 0, 0 };
		size_t k;
		int all_skipped = 1;

		if (cancelled(j)) {
			rc = DIANA_ECANCELLED;
			break;
		}
		if (attempt > 0) {
			diana__log(DIANA_LOG_INFO, "job", "item %zu: retry %d in %lld ms", (size_t)(it - j->items) + 1,
			           attempt, (long long)delay);
			report_progress(w, DIANA_JOB_STAGE_WAIT, it->pseudo_acc);
			if (nap(j, delay) < 0) {
				rc = DIANA_ECANCELLED;
				break;
			}
			delay *= 2;
		}
		report_progress(w, DIANA_JOB_STAGE_QUERY, it->pseudo_acc);
		it->instances = it->expected = it->bytes = 0;
		it->studies = 0;
		rc = find_studies(w, it, &fl);
		if (rc < 0) {
			snprintf(it->reason, sizeof(it->reason), "query: %s", diana_error_message());
			free(fl.v);
			if (rc == DIANA_ECANCELLED || !transient(rc))
				break;
			continue;
		}
		if (fl.n == 0) {
			free(fl.v);
			it->status = DIANA_STUDY_UNKNOWN;
			snprintf(it->reason, sizeof(it->reason), "no study found");
			rc = 0;
			break;
		}
		it->studies = (uint32_t)fl.n;
		if (j->o.flags & DIANA_JOB_DRY_RUN) {
			for (k = 0; k < fl.n && rc == 0; k++) {
				uint64_t e = fl.v[k].expected;
				if (e == 0)
					rc = count_instances(w, fl.v[k].uid, &e);
				it->expected += e;
			}
			free(fl.v);
			if (rc < 0) {
				snprintf(it->reason, sizeof(it->reason), "query: %s", diana_error_message());
				if (rc == DIANA_ECANCELLED || !transient(rc))
					break;
				continue;
			}
			it->status = DIANA_STUDY_OK;
			break;
		}
		for (k = 0; k < fl.n; k++) {
			int skipped = 0;
			rc = do_study(w, it, &fl.v[k], &skipped);
			if (rc < 0)
				break;
			if (!skipped)
				all_skipped = 0;
		}
		free(fl.v);
		if (rc == DIANA_EDICOM * 100) {
			rc = DIANA_EDICOM;
			break; /* de-identification refused an instance: a retry cannot help */
		}
		if (rc == 0) {
			char extra[64];
			snprintf(extra, sizeof(extra), "\"kind\":\"item\",\"studies\":%u", (unsigned)it->studies);
			rc = diana__journal_done(j->journal, it->id, extra);
			if (rc < 0) {
				snprintf(it->reason, sizeof(it->reason), "journal: %s", diana_error_message());
				pthread_mutex_lock(&j->lock);
				if (!j->fatal)
					j->fatal = rc;
				pthread_mutex_unlock(&j->lock);
				diana_job_cancel(j);
				break;
			}
			it->status = all_skipped ? DIANA_STUDY_SKIPPED : DIANA_STUDY_OK;
			it->reason[0] = '\0';
			break;
		}
		if (rc == DIANA_ECANCELLED || cancelled(j) || !transient(rc))
			break;
	}
	if (rc == DIANA_ECANCELLED || (rc < 0 && cancelled(j))) {
		/* interrupted: not finished, not reported as failed */
		return;
	}
	if (it->status == DIANA_STUDY_FAILED) {
		it->error = rc < 0 ? rc : DIANA_ERROR;
		if (!it->reason[0])
			snprintf(it->reason, sizeof(it->reason), "%s", diana_strerror(it->error));
	}
	finish_item(w, it);
}

static void *worker_main(void *arg)
{
	worker *w = arg;
	diana_job *j = w->job;

	for (;;) {
		size_t i;
		if (cancelled(j))
			break;
		pthread_mutex_lock(&j->lock);
		i = j->next < j->n ? j->next++ : j->n;
		pthread_mutex_unlock(&j->lock);
		if (i >= j->n)
			break;
		process_item(w, &j->items[i]);
	}
	return NULL;
}

/* ------------------------------------------------------------------ report */

static const char *status_name(int s)
{
	switch (s) {
	case DIANA_STUDY_OK:
		return "ok";
	case DIANA_STUDY_SKIPPED:
		return "skipped";
	case DIANA_STUDY_UNKNOWN:
		return "unknown";
	default:
		return "failed";
	}
}

static void csv_field(diana__buf *b, const char *v)
{
	const char *p;
	diana__buf_putc(b, '"');
	for (p = v; *p; p++) {
		if (*p == '"')
			diana__buf_putc(b, '"');
		diana__buf_putc(b, (*p == '\n' || *p == '\r') ? ' ' : *p);
	}
	diana__buf_putc(b, '"');
}

static int write_report(diana_job *j)
{
	diana__buf b = DIANA__BUF_INIT;
	char *path;
	size_t i, n;
	int rc;

	diana__buf_puts(&b, "index,accession,status,reason,studies,instances,expected\n");
	for (i = 0; i < j->n; i++) {
		const item *it = &j->items[i];
		const char *shown;
		char num[96];
		if (j->o.profile)
			shown = it->kind == ITEM_ACCESSION ? it->pseudo_acc : ""; /* never the original */
		else
			shown = it->kind == ITEM_ACCESSION ? it->a : "";
		diana__buf_printf(&b, "%zu,", i + 1);
		csv_field(&b, shown);
		diana__buf_printf(&b, ",%s,", it->finished ? status_name(it->status) : "not done");
		csv_field(&b, it->finished ? it->reason : "interrupted: run the job again");
		snprintf(num, sizeof(num), ",%u,%llu,%llu\n", (unsigned)it->studies, (unsigned long long)it->instances,
		         (unsigned long long)it->expected);
		diana__buf_puts(&b, num);
	}
	if (b.oom) {
		diana__buf_dispose(&b);
		return diana__error_oom();
	}
	n = strlen(j->out_dir) + 16;
	path = diana__malloc(n);
	if (!path) {
		diana__buf_dispose(&b);
		return DIANA_ENOMEM;
	}
	snprintf(path, n, "%s/report.csv", j->out_dir);
	rc = diana__write_file_atomic(path, b.data, b.len);
	free(path);
	diana__buf_dispose(&b);
	return rc;
}

/* ------------------------------------------------------------------- run */

static int make_worker(diana_job *j, worker *w, int index)
{
	size_t n = strlen(j->state_dir) + 32;
	int rc;

	memset(w, 0, sizeof(*w));
	w->job = j;
	w->index = index;
	w->tmp_dir = diana__malloc(n);
	w->staging = diana__malloc(n);
	if (!w->tmp_dir || !w->staging)
		return DIANA_ENOMEM;
	snprintf(w->tmp_dir, n, "%s/work-%d", j->state_dir, index);
	snprintf(w->staging, n, "%s/work-%d/deid", j->state_dir, index);
	if (!(j->o.flags & DIANA_JOB_DRY_RUN)) {
		diana__rm_tree_contents(w->tmp_dir);
		rc = diana__mkdir_p(w->staging);
		if (rc < 0)
			return rc;
	}
	/* its own session, with temporary files on the output's file system (renames, not copies) */
	return diana__session_clone(j->source, (j->o.flags & DIANA_JOB_DRY_RUN) ? NULL : w->tmp_dir, &w->s);
}

static void dispose_worker(worker *w)
{
	diana_session_free(w->s);
	if (w->staging) {
		diana__rm_tree_contents(w->staging);
		rmdir(w->staging);
	}
	if (w->tmp_dir)
		rmdir(w->tmp_dir);
	free(w->tmp_dir);
	free(w->staging);
}

int diana_job_run(diana_job *j)
{
	worker *ws;
	pthread_t *th;
	int nw, i, rc = 0;
	size_t k;

	if (!j)
		return diana__error_set(DIANA_EINVAL, "NULL job");
	pthread_mutex_lock(&j->lock);
	if (j->running) {
		pthread_mutex_unlock(&j->lock);
		return diana__error_set(DIANA_EEXISTS, "the job is already running");
	}
	j->running = 1;
	j->next = 0;
	j->done_items = 0;
	j->fatal = 0;
	memset(&j->st, 0, sizeof(j->st));
	j->st.version = DIANA_JOB_STATS_VERSION;
	j->st.items = j->n;
	j->t0 = now_ms();
	for (k = 0; k < j->n; k++)
		j->items[k].finished = 0;
	pthread_mutex_unlock(&j->lock);

	nw = j->o.workers;
	if ((size_t)nw > j->n)
		nw = j->n ? (int)j->n : 1;
	ws = diana__calloc((size_t)nw, sizeof(*ws));
	th = diana__calloc((size_t)nw, sizeof(*th));
	j->sessions = diana__calloc((size_t)nw, sizeof(*j->sessions));
	if (!ws || !th || !j->sessions) {
		rc = DIANA_ENOMEM;
		goto out;
	}
	for (i = 0; i < nw; i++) {
		rc = make_worker(j, &ws[i], i);
		if (rc < 0)
			goto out;
		pthread_mutex_lock(&j->lock);
		j->sessions[i] = ws[i].s;
		j->nsessions = i + 1;
		pthread_mutex_unlock(&j->lock);
	}
	evictor_start(j);
	diana__log(DIANA_LOG_INFO, "job", "%zu work items, %d workers, from %s", j->n, nw, diana_session_uri(j->source));
	for (i = 0; i < nw; i++) {
		if (pthread_create(&th[i], NULL, worker_main, &ws[i]) != 0) {
			rc = diana__error_set(DIANA_ENOMEM, "cannot start a worker thread");
			diana_job_cancel(j);
			nw = i;
			break;
		}
	}
	for (i = 0; i < nw; i++)
		pthread_join(th[i], NULL);
	evictor_stop(j);
out:
	pthread_mutex_lock(&j->lock);
	j->nsessions = 0;
	pthread_mutex_unlock(&j->lock);
	if (ws) {
		for (i = 0; i < j->o.workers && i < (int)(j->n ? j->n : 1); i++)
			dispose_worker(&ws[i]);
	}
	free(ws);
	free(th);
	free(j->sessions);
	j->sessions = NULL;
	pthread_mutex_lock(&j->lock);
	j->st.elapsed_ms = now_ms() - j->t0;
	j->st.ms_per_instance = j->st.instances ? (double)j->st.elapsed_ms / (double)j->st.instances : 0;
	pthread_mutex_unlock(&j->lock);
	if (!(j->o.flags & DIANA_JOB_DRY_RUN)) {
		int wrc = write_report(j);
		if (wrc < 0 && rc == 0)
			rc = wrc;
	}
	if (rc == 0 && j->fatal)
		rc = diana__error_set(j->fatal, "the job stopped: %s", diana_strerror(j->fatal));
	if (rc == 0 && cancelled(j))
		rc = diana__error_set(DIANA_ECANCELLED, "the job was cancelled; run it again to finish");
	if (rc == 0 && (j->st.failed || j->st.unknown))
		rc = diana__error_set(DIANA_EPACS, "%llu work items failed and %llu are unknown (see report.csv)",
		                      (unsigned long long)j->st.failed, (unsigned long long)j->st.unknown);
	{
		diana_job_progress p;
		memset(&p, 0, sizeof(p));
		if (j->o.progress) {
			p.version = DIANA_JOB_PROGRESS_VERSION;
			p.stage = DIANA_JOB_STAGE_DONE;
			p.items_done = j->done_items;
			p.items_total = j->n;
			p.instances = j->st.instances;
			p.bytes = j->st.bytes;
			p.elapsed_ms = j->st.elapsed_ms;
			p.current = "";
			pthread_mutex_lock(&j->cb_lock);
			j->o.progress(&p, j->o.progress_user_data);
			pthread_mutex_unlock(&j->cb_lock);
		}
	}
	diana__log(DIANA_LOG_INFO, "job", "done: %llu ok, %llu skipped, %llu unknown, %llu failed, %llu instances",
	           (unsigned long long)j->st.ok, (unsigned long long)j->st.skipped, (unsigned long long)j->st.unknown,
	           (unsigned long long)j->st.failed, (unsigned long long)j->st.instances);
	pthread_mutex_lock(&j->lock);
	j->running = 0;
	pthread_mutex_unlock(&j->lock);
	atomic_store(&j->cancelled, 0);
	return rc;
}

static void *job_thread(void *arg)
{
	diana_job *j = arg;
	j->thread_rc = diana_job_run(j);
	return NULL;
}

int diana_job_start(diana_job *j)
{
	if (!j)
		return diana__error_set(DIANA_EINVAL, "NULL job");
	if (j->thread_started || j->running)
		return diana__error_set(DIANA_EEXISTS, "the job is already running");
	if (pthread_create(&j->thread, NULL, job_thread, j) != 0)
		return diana__error_set(DIANA_ENOMEM, "cannot start the job thread");
	j->thread_started = 1;
	return 0;
}

int diana_job_wait(diana_job *j)
{
	if (!j)
		return diana__error_set(DIANA_EINVAL, "NULL job");
	if (!j->thread_started)
		return diana__error_set(DIANA_EINVAL, "the job was not started");
	pthread_join(j->thread, NULL);
	j->thread_started = 0;
	if (j->thread_rc < 0)
		return diana__error_set(j->thread_rc, "%s", diana_strerror(j->thread_rc));
	return j->thread_rc;
}

void diana_job_cancel(diana_job *j)
{
	int i;
	if (!j)
		return;
	atomic_store(&j->cancelled, 1);
	pthread_mutex_lock(&j->lock);
	for (i = 0; i < j->nsessions; i++) {
		if (j->sessions && j->sessions[i])
			diana_session_cancel(j->sessions[i]);
	}
	pthread_mutex_unlock(&j->lock);
}

int diana_job_stats_get(const diana_job *j, diana_job_stats *st)
{
	diana_job *m = (diana_job *)j;
	if (!j || !st)
		return diana__error_set(DIANA_EINVAL, "diana_job_stats_get: NULL argument");
	if (st->version != DIANA_JOB_STATS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "job stats version %u is not supported", (unsigned)st->version);
	pthread_mutex_lock(&m->lock);
	*st = m->st;
	st->version = DIANA_JOB_STATS_VERSION;
	st->items = m->n;
	if (m->running) {
		st->elapsed_ms = now_ms() - m->t0;
		st->ms_per_instance = st->instances ? (double)st->elapsed_ms / (double)st->instances : 0;
	}
	pthread_mutex_unlock(&m->lock);
	return 0;
}
