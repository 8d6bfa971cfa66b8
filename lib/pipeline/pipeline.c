/*
 * libdiana - prospective pipelines: configuration, the watch loop, one
 * study's way (detect -> filter -> retrieve -> model -> spool -> deliver),
 * exactly-once state (cursor, history, spool) and latency. See
 * doc/pipeline.md.
 *
 * State folder ("state" in the configuration, default ./diana-state):
 *   cursor.json     the source position (Orthanc /changes sequence number)
 *   history.jsonl   keyed hashes of the studies handled (never repeated)
 *   spool/          deliveries not yet made, one JSON file each (retried)
 *   work/           the study in hand (removed afterwards)
 * A study is recorded in history and its deliveries are spooled (durably)
 * before the cursor moves past it, so a restart neither misses nor repeats
 * a study; a delivery is removed from the spool only once made.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include <diana/dose.h>

#include "pipeline_int.h"
#include "filter.h"
#include "sr.h"
#include "../deid/deid.h"
#include "../session/session.h"

#define MAX_SINKS 8

enum { SRC_CHANGES = 1, SRC_POLL = 2, SRC_SCP = 3, SRC_FOLDER = 4 };

/* until source_scp.c is linked in */
__attribute__((weak)) int diana__scp_source_new(diana_pipeline *p, const cJSON *listen, const char *spool_dir,
                                                diana__scp_source **out)
{
	(void)p;
	(void)listen;
	(void)spool_dir;
	*out = NULL;
	return diana__error_set(DIANA_EUNSUPPORTED, "source.listen: a storage SCP source is not built in");
}

__attribute__((weak)) int diana__scp_source_poll(diana__scp_source *s, uint32_t *handled)
{
	(void)s;
	*handled = 0;
	return DIANA_EUNSUPPORTED;
}

__attribute__((weak)) void diana__scp_source_free(diana__scp_source *s)
{
	(void)s;
}

typedef struct spool_entry {
	char file[128];
	int sink;
	int attempts;
	int64_t next_ms;
} spool_entry;

struct diana_pipeline {
	/* configuration */
	char *base_dir;            /* relative paths resolve here */
	char *source_uri;
	char *events;              /* "StableStudy" or "StableSeries" */
	int start_now;             /* first run: from the current end of the feed */
	int64_t poll_ms;
	char *state_dir, *work_dir, *spool_dir;
	diana__filter *filter;
	diana__command_model cmd;
	int have_cmd;
	diana_model_fn model;
	void *model_ud;
	char *model_name;
	diana_profile *profile;    /* de-identify before the model (optional) */
	diana__sink sinks[MAX_SINKS];
	int nsinks;
	/* runtime */
	diana_session *source;
	int source_kind;           /* SRC_CHANGES, SRC_POLL, SRC_SCP */
	struct poll_cfg {
		int64_t lookback_ms, quiet_ms;
		char **keys;           /* extra "Name=Value" matching keys */
		size_t nkeys;
	} poll;
	struct pending_study {
		char uid[65];
		long count;
		int64_t changed_ms;
	} *pend;
	size_t npend, cappend;
	cJSON *listen;
	diana__scp_source *scp;
	char *inbox;               /* folder source: the watched folder */
	char *inbox_staging;       /* its files, moved here by study */
	int64_t inbox_quiet_ms;
	char **modalities;         /* StableSeries: only series of these modalities */
	size_t nmodalities;
	int builtin_dose;          /* model: the built-in RDSR parser */
	int64_t cursor;
	int cursor_loaded;
	atomic_int stop;
	pthread_mutex_t lock;      /* stats */
	diana_pipeline_stats st;
	int64_t *lat_pipe, *lat_total;
	size_t nlat, caplat;
	uint64_t seq;
	pthread_t thread;
	int thread_started, thread_rc, running;
	char **history;            /* hash set of handled studies */
	size_t hcap, hn;
};

/* ------------------------------------------------------------ small helpers */

static int64_t wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static char *join_path(const char *base, const char *p)
{
	size_t n;
	char *out;
	if (!p)
		return NULL;
	if (p[0] == '/' || !base)
		return diana__strdup(p);
	n = strlen(base) + strlen(p) + 2;
	out = diana__malloc(n);
	if (out)
		snprintf(out, n, "%s/%s", base, p);
	return out;
}

/* read a secret file: regular, closed to group and others, trailing line ends cut */
static int read_secret(const char *path, const char *what, char **out, size_t *len)
{
	uint8_t *data = NULL;
	size_t n = 0;
	int rc;

	rc = diana__secret_file_read(path, what, 1 << 16, &data, &n);
	if (rc < 0)
		return rc;
	/* the helper cut one line end; URLs, tokens and HMAC keys lose them all */
	while (n > 0 && (data[n - 1] == '\n' || data[n - 1] == '\r'))
		n--;
	data[n] = '\0';
	*out = (char *)data;
	if (len)
		*len = n;
	return 0;
}

/* ------------------------------------------------------------ history */

static uint64_t hstr(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211ull;
	return h;
}

static int history_has(const diana_pipeline *p, const char *id)
{
	size_t i;
	if (!p->hcap)
		return 0;
	for (i = hstr(id) & (p->hcap - 1); p->history[i]; i = (i + 1) & (p->hcap - 1))
		if (strcmp(p->history[i], id) == 0)
			return 1;
	return 0;
}

static int history_add_mem(diana_pipeline *p, const char *id)
{
	size_t i;
	if (history_has(p, id))
		return 0;
	if ((p->hn + 1) * 2 > p->hcap) {
		size_t ncap = p->hcap ? p->hcap * 2 : 256, k;
		char **nv = calloc(ncap, sizeof(*nv));
		if (!nv)
			return diana__error_oom();
		for (k = 0; k < p->hcap; k++) {
			if (!p->history[k])
				continue;
			for (i = hstr(p->history[k]) & (ncap - 1); nv[i]; i = (i + 1) & (ncap - 1)) {
			}
			nv[i] = p->history[k];
		}
		free(p->history);
		p->history = nv;
		p->hcap = ncap;
	}
	for (i = hstr(id) & (p->hcap - 1); p->history[i]; i = (i + 1) & (p->hcap - 1)) {
	}
	p->history[i] = diana__strdup(id);
	if (!p->history[i])
		return DIANA_ENOMEM;
	p->hn++;
	return 0;
}

static int append_durable(const char *path, const char *line)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600), rc = 0;
	size_t n = strlen(line);
	if (fd < 0)
		return diana__error_errno(errno, "pipeline state");
	if (write(fd, line, n) != (ssize_t)n)
		rc = diana__error_errno(errno ? errno : EIO, "pipeline state");
	if (rc == 0 && fdatasync(fd) != 0)
		rc = diana__error_errno(errno, "pipeline state");
	close(fd);
	return rc;
}

static int study_key(const diana_pipeline *p, const char *uid, char out[65])
{
	if (p->profile)
		return diana__profile_hash_hex(p->profile, "diana-pipeline-study:", uid, out);
	{
		unsigned char md[32];
		unsigned int len = 0;
		int i;
		EVP_Digest(uid, strlen(uid), md, &len, EVP_sha256(), NULL);
		for (i = 0; i < 32; i++)
			snprintf(out + 2 * i, 3, "%02x", md[i]);
	}
	return 0;
}

static int history_load(diana_pipeline *p)
{
	char path[4200];
	uint8_t *data = NULL;
	size_t len = 0, i, start = 0;
	int rc;

	snprintf(path, sizeof(path), "%s/history.jsonl", p->state_dir);
	rc = diana__file_read(path, (uint64_t)1 << 30, &data, &len);
	if (rc == DIANA_ENOTFOUND) {
		diana_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	for (i = 0; i < len; i++) {
		if (data[i] != '\n')
			continue;
		{
			cJSON *e = cJSON_ParseWithLength((const char *)data + start, i - start);
			const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "study"));
			if (id)
				rc = history_add_mem(p, id);
			cJSON_Delete(e);
		}
		start = i + 1;
		if (rc < 0)
			break;
	}
	free(data);
	return rc;
}

/* ------------------------------------------------------------ cursor */

static int cursor_load(diana_pipeline *p)
{
	char path[4200];
	uint8_t *data = NULL;
	size_t len = 0;
	cJSON *j;
	int rc;

	snprintf(path, sizeof(path), "%s/cursor.json", p->state_dir);
	rc = diana__file_read(path, 4096, &data, &len);
	if (rc == DIANA_ENOTFOUND) {
		diana_error_clear();
		return 0;
	}
	if (rc < 0)
		return rc;
	j = cJSON_ParseWithLength((const char *)data, len);
	free(data);
	if (!cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "last"))) {
		cJSON_Delete(j);
		return diana__error_set(DIANA_EINVAL, "the cursor file is damaged (%s): remove it to start from now",
		                        "cursor.json");
	}
	p->cursor = (int64_t)cJSON_GetObjectItemCaseSensitive(j, "last")->valuedouble;
	p->cursor_loaded = 1;
	cJSON_Delete(j);
	return 0;
}

static int cursor_save(diana_pipeline *p, int64_t last)
{
	char path[4200], text[64];
	snprintf(path, sizeof(path), "%s/cursor.json", p->state_dir);
	snprintf(text, sizeof(text), "{\"last\":%lld}\n", (long long)last);
	p->cursor = last;
	return diana__write_file_atomic(path, text, strlen(text));
}

/* ------------------------------------------------------------ configuration */

static const char *jstr(const cJSON *o, const char *k)
{
	return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, k));
}

static int check_keys(const cJSON *o, const char *where, const char *const *known)
{
	const cJSON *it;
	cJSON_ArrayForEach(it, o)
	{
		size_t i;
		int ok = 0;
		for (i = 0; known[i]; i++)
			if (it->string && strcmp(it->string, known[i]) == 0)
				ok = 1;
		if (!ok)
			return diana__error_set(DIANA_EINVAL, "%s.%.40s: unknown key", where, it->string ? it->string : "?");
	}
	return 0;
}

/* a value given inline ("url") or by file reference ("url_file") */
static int secret_value(diana_pipeline *p, const cJSON *o, const char *key, const char *where, int required,
                        char **out, size_t *len)
{
	char file_key[64], *path;
	const char *inline_v = jstr(o, key), *file_v;
	int rc;

	*out = NULL;
	snprintf(file_key, sizeof(file_key), "%s_file", key);
	file_v = jstr(o, file_key);
	if (inline_v && file_v)
		return diana__error_set(DIANA_EINVAL, "%s: give %s or %s, not both", where, key, file_key);
	if (inline_v) {
		*out = diana__strdup(inline_v);
		if (len)
			*len = strlen(inline_v);
		return *out ? 0 : DIANA_ENOMEM;
	}
	if (!file_v)
		return required ? diana__error_set(DIANA_EINVAL, "%s.%s: missing", where, key) : 0;
	path = join_path(p->base_dir, file_v);
	if (!path)
		return DIANA_ENOMEM;
	{
		char what[96];
		snprintf(what, sizeof(what), "%s.%s", where, file_key);
		rc = read_secret(path, what, out, len);
	}
	free(path);
	return rc;
}

static int parse_sink(diana_pipeline *p, const cJSON *o, int index)
{
	static const char *const known[] = { "type", "url", "url_file", "secret", "secret_file", "header", "path",
		                                 "uri", "model_name", "series_description", "timeout_s", "token",
		                                 "token_file", "index", "sourcetype", "ca_file", NULL };
	diana__sink *s = &p->sinks[index];
	char where[32];
	const char *type = jstr(o, "type");
	const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "timeout_s");
	int rc;

	snprintf(where, sizeof(where), "sinks[%d]", index);
	if (!cJSON_IsObject(o))
		return diana__error_set(DIANA_EINVAL, "%s: not an object", where);
	if ((rc = check_keys(o, where, known)) < 0)
		return rc;
	if (!type)
		return diana__error_set(DIANA_EINVAL, "%s.type: missing", where);
	s->name = diana__strdup(type);
	if (cJSON_IsNumber(t))
		s->timeout_ms = (int64_t)(t->valuedouble * 1000);
	if (strcmp(type, "slack") == 0 || strcmp(type, "webhook") == 0) {
		s->type = strcmp(type, "slack") == 0 ? SINK_SLACK : SINK_WEBHOOK;
		rc = secret_value(p, o, "url", where, 1, &s->url, NULL);
		if (rc < 0)
			return rc;
		if (strncmp(s->url, "https://", 8) != 0 && strncmp(s->url, "http://", 7) != 0)
			return diana__error_set(DIANA_EINVAL, "%s.url: must be http(s)://", where);
		if (s->type == SINK_WEBHOOK) {
			char *sec = NULL;
			size_t n = 0;
			rc = secret_value(p, o, "secret", where, 0, &sec, &n);
			if (rc < 0)
				return rc;
			s->secret = (uint8_t *)sec;
			s->secret_len = n;
			if (jstr(o, "header"))
				s->header = diana__strdup(jstr(o, "header"));
		}
	} else if (strcmp(type, "splunk") == 0) {
		char *tok = NULL;
		size_t n = 0;
		s->type = SINK_SPLUNK;
		rc = secret_value(p, o, "url", where, 1, &s->url, NULL);
		if (rc < 0)
			return rc;
		rc = secret_value(p, o, "token", where, 1, &tok, &n);
		if (rc < 0)
			return rc;
		s->secret = (uint8_t *)tok;
		s->secret_len = n;
		if (jstr(o, "index"))
			s->index = diana__strdup(jstr(o, "index"));
		if (jstr(o, "sourcetype"))
			s->sourcetype = diana__strdup(jstr(o, "sourcetype"));
		if (jstr(o, "ca_file"))
			s->ca_file = join_path(p->base_dir, jstr(o, "ca_file"));
	} else if (strcmp(type, "jsonl") == 0) {
		s->type = SINK_JSONL;
		if (!jstr(o, "path"))
			return diana__error_set(DIANA_EINVAL, "%s.path: missing", where);
		s->path = join_path(p->base_dir, jstr(o, "path"));
	} else if (strcmp(type, "sr") == 0) {
		diana_session *probe = NULL;
		s->type = SINK_SR;
		rc = secret_value(p, o, "uri", where, 1, &s->sr_uri, NULL);
		if (rc < 0)
			return rc;
		rc = diana_session_open(&probe, s->sr_uri, NULL); /* checks the URI now */
		diana_session_free(probe);
		if (rc < 0)
			return diana__error_set(rc, "%s.uri: %s", where, diana_error_message());
		s->model_name = diana__strdup(jstr(o, "model_name") ? jstr(o, "model_name") : "model");
		if (jstr(o, "series_description"))
			s->series_description = diana__strdup(jstr(o, "series_description"));
	} else {
		return diana__error_set(DIANA_EINVAL, "%s.type: unknown sink '%.20s' (slack, webhook, jsonl, sr, splunk)", where, type);
	}
	return 0;
}

static int parse_config(diana_pipeline *p, const cJSON *c, int have_c_model)
{
	static const char *const known[] = { "source", "filter", "model", "sinks", "state", "anonymize", "name", NULL };
	static const char *const src_known[] = { "uri", "uri_file", "events", "cursor", "poll_s", "start", "poll",
		                                     "listen", "modalities", "folder", "quiet_s", NULL };
	static const char *const poll_known[] = { "lookback_min", "quiet_s", "keys", NULL };
	static const char *const model_known[] = { "command", "timeout_s", "name", "builtin", NULL };
	static const char *const anon_known[] = { "secret_file", "options", "key", NULL };
	const cJSON *src, *m, *sinks, *it, *anon;
	char *uri = NULL;
	int rc, i;

	if (!cJSON_IsObject(c))
		return diana__error_set(DIANA_EINVAL, "configuration: not a JSON object");
	if ((rc = check_keys(c, "configuration", known)) < 0)
		return rc;
	/* source */
	src = cJSON_GetObjectItemCaseSensitive(c, "source");
	if (!cJSON_IsObject(src))
		return diana__error_set(DIANA_EINVAL, "source: missing");
	if ((rc = check_keys(src, "source", src_known)) < 0)
		return rc;
	p->listen = cJSON_GetObjectItemCaseSensitive(src, "listen")
	                ? cJSON_Duplicate(cJSON_GetObjectItemCaseSensitive(src, "listen"), 1)
	                : NULL;
	if (jstr(src, "folder")) {
		const cJSON *q = cJSON_GetObjectItemCaseSensitive(src, "quiet_s");
		if (p->listen || jstr(src, "uri") || jstr(src, "uri_file"))
			return diana__error_set(DIANA_EINVAL, "source: give one of uri, listen, folder");
		p->inbox = join_path(p->base_dir, jstr(src, "folder"));
		if (!p->inbox)
			return DIANA_ENOMEM;
		p->inbox_quiet_ms = cJSON_IsNumber(q) ? (int64_t)(q->valuedouble * 1000) : 10000;
		p->source_kind = SRC_FOLDER;
	}
	rc = secret_value(p, src, "uri", "source", p->listen == NULL && p->inbox == NULL, &uri, NULL);
	if (rc < 0)
		return rc;
	if (uri && p->listen)
		return diana__error_set(DIANA_EINVAL, "source: give uri or listen, not both");
	p->source_uri = uri;
	if (!p->inbox)
		p->source_kind = p->listen ? SRC_SCP
		                           : (cJSON_GetObjectItemCaseSensitive(src, "poll") ? SRC_POLL : SRC_CHANGES);
	if (p->source_kind == SRC_POLL) {
		const cJSON *pc = cJSON_GetObjectItemCaseSensitive(src, "poll"), *lb, *q, *ks, *k;
		if (!cJSON_IsObject(pc))
			return diana__error_set(DIANA_EINVAL, "source.poll: an object");
		if ((rc = check_keys(pc, "source.poll", poll_known)) < 0)
			return rc;
		lb = cJSON_GetObjectItemCaseSensitive(pc, "lookback_min");
		q = cJSON_GetObjectItemCaseSensitive(pc, "quiet_s");
		p->poll.lookback_ms = cJSON_IsNumber(lb) ? (int64_t)(lb->valuedouble * 60000) : 24 * 3600 * 1000;
		p->poll.quiet_ms = cJSON_IsNumber(q) ? (int64_t)(q->valuedouble * 1000) : 60000;
		ks = cJSON_GetObjectItemCaseSensitive(pc, "keys");
		if (ks && !cJSON_IsObject(ks))
			return diana__error_set(DIANA_EINVAL, "source.poll.keys: an object of matching keys");
		p->poll.keys = calloc((size_t)cJSON_GetArraySize(ks) + 1, sizeof(char *));
		if (!p->poll.keys)
			return diana__error_oom();
		cJSON_ArrayForEach(k, ks)
		{
			diana__buf b = DIANA__BUF_INIT;
			if (!cJSON_IsString(k))
				return diana__error_set(DIANA_EINVAL, "source.poll.keys.%.40s: a string", k->string);
			diana__buf_printf(&b, "%s=%s", k->string, k->valuestring);
			p->poll.keys[p->poll.nkeys++] = diana__buf_detach(&b, NULL);
		}
	}
	p->events = diana__strdup(jstr(src, "events") ? jstr(src, "events") : "StableStudy");
	if (strcmp(p->events, "StableStudy") != 0 && strcmp(p->events, "StableSeries") != 0)
		return diana__error_set(DIANA_EINVAL, "source.events: StableStudy or StableSeries");
	{
		const cJSON *mods = cJSON_GetObjectItemCaseSensitive(src, "modalities"), *mo;
		if (mods) {
			if (!cJSON_IsArray(mods) || strcmp(p->events, "StableSeries") != 0)
				return diana__error_set(DIANA_EINVAL, "source.modalities: an array, with \"events\": \"StableSeries\"");
			p->modalities = calloc((size_t)cJSON_GetArraySize(mods) + 1, sizeof(char *));
			if (!p->modalities)
				return diana__error_oom();
			cJSON_ArrayForEach(mo, mods)
			{
				if (!cJSON_IsString(mo))
					return diana__error_set(DIANA_EINVAL, "source.modalities: strings");
				p->modalities[p->nmodalities++] = diana__strdup(mo->valuestring);
			}
		}
	}
	p->poll_ms = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(src, "poll_s"))
	                 ? (int64_t)(cJSON_GetObjectItemCaseSensitive(src, "poll_s")->valuedouble * 1000)
	                 : 2000;
	if (p->poll_ms < 100)
		p->poll_ms = 100;
	p->start_now = !(jstr(src, "start") && strcmp(jstr(src, "start"), "beginning") == 0);
	/* state */
	p->state_dir = join_path(p->base_dir, jstr(c, "state") ? jstr(c, "state")
	                                                      : (jstr(src, "cursor") ? jstr(src, "cursor") : "diana-state"));
	if (!p->state_dir)
		return DIANA_ENOMEM;
	/* filter */
	rc = diana__filter_new(cJSON_GetObjectItemCaseSensitive(c, "filter"), &p->filter);
	if (rc < 0)
		return rc;
	/* model */
	m = cJSON_GetObjectItemCaseSensitive(c, "model");
	if (m) {
		const cJSON *cmd = cJSON_GetObjectItemCaseSensitive(m, "command"), *t;
		size_t n = 0;
		if ((rc = check_keys(m, "model", model_known)) < 0)
			return rc;
		p->model_name = diana__strdup(jstr(m, "name") ? jstr(m, "name") : (jstr(m, "builtin") ? jstr(m, "builtin") : "model"));
		if (jstr(m, "builtin")) {
			if (strcmp(jstr(m, "builtin"), "dose") != 0)
				return diana__error_set(DIANA_EINVAL, "model.builtin: unknown model (dose)");
			if (cmd)
				return diana__error_set(DIANA_EINVAL, "model: give command or builtin, not both");
			p->builtin_dose = 1;
		}
		if (cmd) {
			if (!cJSON_IsArray(cmd) || cJSON_GetArraySize(cmd) < 1)
				return diana__error_set(DIANA_EINVAL, "model.command: a non-empty array of strings");
			p->cmd.argv = calloc((size_t)cJSON_GetArraySize(cmd) + 1, sizeof(char *));
			if (!p->cmd.argv)
				return diana__error_oom();
			cJSON_ArrayForEach(it, cmd)
			{
				if (!cJSON_IsString(it))
					return diana__error_set(DIANA_EINVAL, "model.command[%zu]: not a string", n);
				/* a relative program path with a slash resolves against the configuration */
				p->cmd.argv[n] = (n == 0 && strchr(it->valuestring, '/') && it->valuestring[0] != '/')
				                     ? join_path(p->base_dir, it->valuestring)
				                     : diana__strdup(it->valuestring);
				if (!p->cmd.argv[n++])
					return DIANA_ENOMEM;
			}
			t = cJSON_GetObjectItemCaseSensitive(m, "timeout_s");
			p->cmd.timeout_ms = cJSON_IsNumber(t) ? (int64_t)(t->valuedouble * 1000) : 600000;
			p->have_cmd = 1;
		}
	}
	if (!p->model_name)
		p->model_name = diana__strdup("model");
	if (!p->have_cmd && !have_c_model && !p->builtin_dose)
		return diana__error_set(DIANA_EINVAL, "model.command: missing (or give a model callback)");
	/* de-identification before the model */
	anon = cJSON_GetObjectItemCaseSensitive(c, "anonymize");
	if (anon && !cJSON_IsFalse(anon)) {
		diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
		char *secret = NULL, *key = NULL;
		const cJSON *opts;
		if (!cJSON_IsObject(anon))
			return diana__error_set(DIANA_EINVAL, "anonymize: an object or false");
		if ((rc = check_keys(anon, "anonymize", anon_known)) < 0)
			return rc;
		if (!jstr(anon, "secret_file"))
			return diana__error_set(DIANA_EINVAL, "anonymize.secret_file: missing");
		secret = join_path(p->base_dir, jstr(anon, "secret_file"));
		key = jstr(anon, "key") ? join_path(p->base_dir, jstr(anon, "key")) : NULL;
		po.secret_file = secret;
		po.key_file = key;
		opts = cJSON_GetObjectItemCaseSensitive(anon, "options");
		cJSON_ArrayForEach(it, opts)
		{
			uint32_t bit;
			if (!cJSON_IsString(it) || diana_deid_option_from_name(it->valuestring, &bit) < 0) {
				free(secret);
				free(key);
				return diana__error_set(DIANA_EINVAL, "anonymize.options: unknown option");
			}
			po.options |= bit;
		}
		rc = diana_profile_new(&p->profile, &po);
		free(secret);
		free(key);
		if (rc < 0)
			return diana__error_set(rc, "anonymize: %s", diana_error_message());
	}
	/* sinks */
	sinks = cJSON_GetObjectItemCaseSensitive(c, "sinks");
	if (!cJSON_IsArray(sinks) || cJSON_GetArraySize(sinks) < 1)
		return diana__error_set(DIANA_EINVAL, "sinks: a non-empty array");
	if (cJSON_GetArraySize(sinks) > MAX_SINKS)
		return diana__error_set(DIANA_EINVAL, "sinks: at most %d", MAX_SINKS);
	i = 0;
	cJSON_ArrayForEach(it, sinks)
	{
		rc = parse_sink(p, it, i);
		p->nsinks = i + 1;
		if (rc < 0)
			return rc;
		i++;
	}
	return 0;
}

int diana_pipeline_options_init(diana_pipeline_options *o, uint32_t version)
{
	static const diana_pipeline_options def = DIANA_PIPELINE_OPTIONS_INIT;
	if (!o)
		return diana__error_set(DIANA_EINVAL, "options: NULL");
	if (version != DIANA_PIPELINE_OPTIONS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "pipeline options version %u is not supported", (unsigned)version);
	*o = def;
	return 0;
}

int diana_pipeline_new(diana_pipeline **out, const diana_pipeline_options *o)
{
	diana_pipeline *p;
	cJSON *c = NULL;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "diana_pipeline_new: NULL out");
	*out = NULL;
	if (!o || (!o->config_json && !o->config_path))
		return diana__error_set(DIANA_EINVAL, "diana_pipeline_new: a configuration is required");
	if (o->version < 1 || o->version > DIANA_PIPELINE_OPTIONS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "pipeline options version %u is not supported", (unsigned)o->version);
	p = diana__calloc(1, sizeof(*p));
	if (!p)
		return DIANA_ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	atomic_init(&p->stop, 0);
	p->st.version = DIANA_PIPELINE_STATS_VERSION;
	p->st.last_detect_ms = p->st.last_retrieved_ms = p->st.last_model_ms = p->st.last_delivered_ms = -1;
	p->st.median_pipeline_ms = p->st.median_total_ms = -1;
	p->model = o->model;
	p->model_ud = o->model_user_data;
	if (o->config_path) {
		uint8_t *data = NULL;
		size_t len = 0;
		char *slash;
		rc = diana__file_read(o->config_path, 1 << 20, &data, &len);
		if (rc < 0)
			goto fail;
		c = cJSON_ParseWithLength((const char *)data, len);
		free(data);
		p->base_dir = diana__strdup(o->config_path);
		if (!p->base_dir) {
			rc = DIANA_ENOMEM;
			goto fail;
		}
		slash = strrchr(p->base_dir, '/');
		if (slash && slash != p->base_dir)
			*slash = '\0';
		else if (slash)
			slash[1] = '\0';
		else
			strcpy(p->base_dir, ".");
	} else {
		c = cJSON_Parse(o->config_json);
	}
	if (!c) {
		rc = diana__error_set(DIANA_EINVAL, "configuration: not valid JSON");
		goto fail;
	}
	rc = parse_config(p, c, o->model != NULL);
	cJSON_Delete(c);
	c = NULL;
	if (rc < 0)
		goto fail;
	/* state */
	{
		size_t n = strlen(p->state_dir) + 16;
		p->work_dir = diana__malloc(n);
		p->spool_dir = diana__malloc(n);
		if (!p->work_dir || !p->spool_dir) {
			rc = DIANA_ENOMEM;
			goto fail;
		}
		snprintf(p->work_dir, n, "%s/work", p->state_dir);
		snprintf(p->spool_dir, n, "%s/spool", p->state_dir);
	}
	if ((rc = diana__mkdir_p(p->work_dir)) < 0 || (rc = diana__mkdir_p(p->spool_dir)) < 0)
		goto fail;
	diana__rm_tree_contents(p->work_dir); /* a study in hand when we were stopped is done again */
	if ((rc = cursor_load(p)) < 0 || (rc = history_load(p)) < 0)
		goto fail;
	if (p->source_uri) {
		diana_session_options so = DIANA_SESSION_OPTIONS_INIT;
		so.temp_dir = p->work_dir;
		so.timeout_ms = 120000;
		rc = diana_session_open(&p->source, p->source_uri, &so);
		if (rc < 0) {
			rc = diana__error_set(rc, "source.uri: %s", diana_error_message());
			goto fail;
		}
		if (p->source_kind == SRC_CHANGES && diana_session_kind(p->source) != DIANA_SESSION_ORTHANC) {
			rc = diana__error_set(DIANA_EINVAL,
			                      "source: a change feed needs an orthanc+http(s):// URI (or use \"poll\")");
			goto fail;
		}
	} else if (p->inbox) {
		struct stat sb;
		size_t n = strlen(p->state_dir) + 16;
		if (stat(p->inbox, &sb) != 0 || !S_ISDIR(sb.st_mode)) {
			rc = diana__error_set(DIANA_ENOTFOUND, "source.folder: no such folder");
			goto fail;
		}
		p->inbox_staging = diana__malloc(n);
		if (!p->inbox_staging) {
			rc = DIANA_ENOMEM;
			goto fail;
		}
		snprintf(p->inbox_staging, n, "%s/inbox", p->state_dir);
		if ((rc = diana__mkdir_p(p->inbox_staging)) < 0)
			goto fail;
	} else {
		rc = diana__scp_source_new(p, p->listen, p->spool_dir, &p->scp);
		if (rc < 0) {
			rc = diana__error_set(rc, "source.listen: %s", diana_error_message());
			goto fail;
		}
	}
	*out = p;
	return 0;
fail:
	cJSON_Delete(c);
	diana_pipeline_free(p);
	return rc;
}

void diana_pipeline_free(diana_pipeline *p)
{
	int i;
	size_t k;
	if (!p)
		return;
	if (p->thread_started) {
		diana_pipeline_stop(p);
		diana_pipeline_wait(p);
	}
	diana_session_free(p->source);
	diana__scp_source_free(p->scp);
	cJSON_Delete(p->listen);
	free(p->inbox);
	free(p->inbox_staging);
	if (p->poll.keys) {
		for (k = 0; k < p->poll.nkeys; k++)
			free(p->poll.keys[k]);
		free(p->poll.keys);
	}
	free(p->pend);
	if (p->modalities) {
		for (k = 0; k < p->nmodalities; k++)
			free(p->modalities[k]);
		free(p->modalities);
	}
	diana__filter_free(p->filter);
	for (i = 0; i < p->nsinks; i++)
		diana__sink_dispose(&p->sinks[i]);
	if (p->cmd.argv) {
		for (k = 0; p->cmd.argv[k]; k++)
			free(p->cmd.argv[k]);
		free(p->cmd.argv);
	}
	diana_profile_free(p->profile);
	for (k = 0; k < p->hcap; k++)
		free(p->history[k]);
	free(p->history);
	free(p->lat_pipe);
	free(p->lat_total);
	free(p->base_dir);
	if (p->source_uri) {
		memset(p->source_uri, 0, strlen(p->source_uri));
		free(p->source_uri);
	}
	free(p->events);
	free(p->model_name);
	free(p->state_dir);
	free(p->work_dir);
	free(p->spool_dir);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

/* ------------------------------------------------------------ model output */

int diana_model_output_set(diana_model_output *out, const char *json)
{
	cJSON *j;
	if (!out || !json)
		return diana__error_set(DIANA_EINVAL, "diana_model_output_set: NULL argument");
	j = cJSON_Parse(json);
	if (!cJSON_IsObject(j)) {
		cJSON_Delete(j);
		return diana__error_set(DIANA_EINVAL, "a model result must be a JSON object");
	}
	cJSON_Delete(j);
	free(out->json);
	out->json = diana__strdup(json);
	return out->json ? 0 : DIANA_ENOMEM;
}

/* ------------------------------------------------------------ spool */

static int spool_write(diana_pipeline *p, int sink, const char *body, char *name, size_t cap)
{
	char path[4400];
	cJSON *j = cJSON_CreateObject();
	char *text;
	int rc;

	snprintf(name, cap, "%lld-%llu-%d.json", (long long)wall_ms(), (unsigned long long)++p->seq, sink);
	if (!j || !cJSON_AddNumberToObject(j, "sink", sink) || !cJSON_AddStringToObject(j, "body", body) ||
	    !cJSON_AddStringToObject(j, "id", name)) {
		cJSON_Delete(j);
		return diana__error_oom();
	}
	text = cJSON_PrintUnformatted(j);
	cJSON_Delete(j);
	if (!text)
		return diana__error_oom();
	snprintf(path, sizeof(path), "%s/%s", p->spool_dir, name);
	rc = diana__write_file_atomic(path, text, strlen(text));
	cJSON_free(text);
	return rc;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* try every spooled delivery whose time has come; returns the number still pending */
static uint64_t spool_flush(diana_pipeline *p, int64_t *delivered_at)
{
	static __thread int64_t backoff_until;
	DIR *d = opendir(p->spool_dir);
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0, i;
	uint64_t pending = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL) {
		if (!strstr(e->d_name, ".json") || e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nv = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*nv));
			if (!nv)
				break;
			names = nv;
		}
		names[n++] = diana__strdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n; i++) {
		char path[4400];
		uint8_t *data = NULL;
		size_t len = 0;
		cJSON *j;
		diana__delivery dl;
		int sink, rc;

		if (!names[i])
			continue;
		snprintf(path, sizeof(path), "%s/%s", p->spool_dir, names[i]);
		if (diana__now_ms() < backoff_until) {
			pending++;
			continue;
		}
		if (diana__file_read(path, 64 << 20, &data, &len) < 0) {
			pending++;
			continue;
		}
		j = cJSON_ParseWithLength((const char *)data, len);
		free(data);
		memset(&dl, 0, sizeof(dl));
		sink = cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(j, "sink"))
		           ? (int)cJSON_GetObjectItemCaseSensitive(j, "sink")->valuedouble
		           : -1;
		if (!j || sink < 0 || sink >= p->nsinks || !jstr(j, "body")) {
			diana__log(DIANA_LOG_WARNING, "pipeline", "spool: dropping a damaged entry");
			unlink(path);
			cJSON_Delete(j);
			continue;
		}
		snprintf(dl.id, sizeof(dl.id), "%.39s", names[i]);
		dl.sink = sink;
		dl.body = (char *)jstr(j, "body");
		rc = diana__sink_deliver(&p->sinks[sink], &dl);
		if (rc == 0 || rc == DIANA_EINVAL) {
			if (rc == DIANA_EINVAL)
				diana__log(DIANA_LOG_ERROR, "pipeline", "%s: dropped: %s", p->sinks[sink].name, diana_error_message());
			else
				diana__log(DIANA_LOG_INFO, "pipeline", "%s: delivered", p->sinks[sink].name);
			if (p->sinks[sink].type == SINK_SR && rc == 0)
				unlink(dl.body); /* the SR file */
			unlink(path);
			pthread_mutex_lock(&p->lock);
			if (rc == 0)
				p->st.delivered++;
			pthread_mutex_unlock(&p->lock);
			if (delivered_at)
				*delivered_at = wall_ms();
		} else {
			/* the receiver is away: back off (capped), keep the entry */
			diana__log(DIANA_LOG_WARNING, "pipeline", "%s: delivery failed, will retry: %s", p->sinks[sink].name,
			           diana_error_message());
			backoff_until = diana__now_ms() + 1000;
			pending++;
		}
		cJSON_Delete(j);
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	pthread_mutex_lock(&p->lock);
	p->st.pending = pending;
	pthread_mutex_unlock(&p->lock);
	return pending;
}

/* ------------------------------------------------------------ one study */

typedef struct retrieved {
	char *dir;
	uint32_t n;
	diana_profile *profile;
	int fail;
} retrieved;

static int keep_cb(const diana_instance *inst, void *ud)
{
	retrieved *r = ud;
	char path[4400];
	int rc;
	if (r->profile) {
		char *outp = NULL;
		rc = diana_anonymize_into(r->profile, inst->path, r->dir, DIANA_ANON_NO_SYNC | DIANA_ANON_NO_WRITEBACK,
		                          &outp, NULL);
		diana_free(outp);
		if (rc == 1)
			return 0;
	} else {
		snprintf(path, sizeof(path), "%s/%06u.dcm", r->dir, r->n);
		rc = diana_instance_keep(inst, path);
	}
	if (rc < 0)
		return rc;
	r->n++;
	return 0;
}

/* the first DICOM file under dir (depth-first), its header */
static int first_header(const char *dir, int depth, diana_dataset **out)
{
	DIR *d;
	struct dirent *e;
	int rc = DIANA_ENOTFOUND;
	char **names = NULL;
	size_t n = 0, cap = 0, i;

	if (depth > 6 || !(d = opendir(dir)))
		return DIANA_ENOTFOUND;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (n == cap) {
			char **nv = realloc(names, (cap = cap ? cap * 2 : 16) * sizeof(*nv));
			if (!nv)
				break;
			names = nv;
		}
		names[n++] = diana__strdup(e->d_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof(*names), cmp_names);
	for (i = 0; i < n && rc < 0; i++) {
		char p[4400];
		struct stat sb;
		if (!names[i])
			continue;
		snprintf(p, sizeof(p), "%s/%s", dir, names[i]);
		if (stat(p, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			rc = first_header(p, depth + 1, out);
		} else {
			diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
			o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
			rc = diana_dataset_open(out, p, &o);
		}
	}
	for (i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* exam end: the latest of acquisition/content date+time in the header, epoch ms; -1 unknown */
static int64_t exam_end(const diana_dataset *h)
{
	static const char *const pairs[][2] = { { "AcquisitionDate", "AcquisitionTime" },
		                                    { "ContentDate", "ContentTime" },
		                                    { "SeriesDate", "SeriesTime" },
		                                    { "StudyDate", "StudyTime" } };
	size_t i;
	for (i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
		char *d = NULL, *t = NULL;
		struct tm tm;
		int ok = diana_dataset_get(h, pairs[i][0], &d) == 0 && diana_dataset_get(h, pairs[i][1], &t) == 0 && d &&
		         t && strlen(d) >= 8 && strlen(t) >= 4;
		int64_t v = -1;
		if (ok) {
			memset(&tm, 0, sizeof(tm));
			tm.tm_year = atoi((char[]){ d[0], d[1], d[2], d[3], 0 }) - 1900;
			tm.tm_mon = atoi((char[]){ d[4], d[5], 0 }) - 1;
			tm.tm_mday = atoi((char[]){ d[6], d[7], 0 });
			tm.tm_hour = atoi((char[]){ t[0], t[1], 0 });
			tm.tm_min = atoi((char[]){ t[2], t[3], 0 });
			tm.tm_sec = strlen(t) >= 6 ? atoi((char[]){ t[4], t[5], 0 }) : 0;
			tm.tm_isdst = -1;
			v = (int64_t)mktime(&tm) * 1000;
		}
		diana_free(d);
		diana_free(t);
		diana_error_clear();
		if (v > 0)
			return v;
	}
	return -1;
}

static int64_t median(int64_t *v, size_t n)
{
	int64_t *c;
	size_t i, j;
	int64_t m;
	if (n == 0)
		return -1;
	c = malloc(n * sizeof(*c));
	if (!c)
		return -1;
	memcpy(c, v, n * sizeof(*c));
	for (i = 1; i < n; i++) /* insertion sort: n is small */
		for (j = i; j > 0 && c[j - 1] > c[j]; j--) {
			int64_t t = c[j];
			c[j] = c[j - 1];
			c[j - 1] = t;
		}
	m = c[n / 2];
	free(c);
	return m;
}

static void add_latency(diana_pipeline *p, const diana__latency *l)
{
	pthread_mutex_lock(&p->lock);
	if (p->nlat == p->caplat) {
		size_t ncap = p->caplat ? p->caplat * 2 : 64;
		int64_t *a = realloc(p->lat_pipe, ncap * sizeof(*a)), *b;
		if (a)
			p->lat_pipe = a;
		b = realloc(p->lat_total, ncap * sizeof(*b));
		if (b)
			p->lat_total = b;
		if (a && b)
			p->caplat = ncap;
	}
	if (p->nlat < p->caplat) {
		p->lat_pipe[p->nlat] = l->delivered_ms - l->detect_ms;
		p->lat_total[p->nlat] = l->exam_end_ms > 0 ? l->delivered_ms - l->exam_end_ms : l->delivered_ms - l->detect_ms;
		p->nlat++;
	}
	{
		int64_t base = l->exam_end_ms > 0 ? l->exam_end_ms : l->detect_ms;
		p->st.last_detect_ms = l->detect_ms - base;
		p->st.last_retrieved_ms = l->retrieved_ms - base;
		p->st.last_model_ms = l->model_ms - base;
		p->st.last_delivered_ms = l->delivered_ms - base;
	}
	p->st.median_pipeline_ms = median(p->lat_pipe, p->nlat);
	p->st.median_total_ms = median(p->lat_total, p->nlat);
	pthread_mutex_unlock(&p->lock);
}

static int process_dir(diana_pipeline *p, const char *key, char *dir, size_t dircap, uint32_t ninst,
                       diana__latency lat, int64_t arrival_ms, const char *uid);
static int handle_study(diana_pipeline *p, const char *uid, const char *series_uid, int64_t detect_ms,
                        int64_t arrival_ms);

/* handle one study; 0 when handled (processed, filtered out or failed for good), <0 to try again later */
static int handle_study(diana_pipeline *p, const char *uid, const char *series_uid, int64_t detect_ms,
                        int64_t arrival_ms)
{
	char key[65], dir[4300];
	retrieved r;
	diana__latency lat;
	diana_transfer_stats ts = DIANA_TRANSFER_STATS_INIT;
	int rc;

	rc = study_key(p, series_uid ? series_uid : uid, key);
	if (rc < 0)
		return rc;
	if (history_has(p, key))
		return 0; /* handled before (e.g. StableStudy again after late instances) */
	pthread_mutex_lock(&p->lock);
	p->st.seen++;
	pthread_mutex_unlock(&p->lock);
	memset(&lat, 0, sizeof(lat));
	lat.detect_ms = detect_ms;
	/* the study into work/<key>/ (de-identified when configured) */
	snprintf(dir, sizeof(dir), "%s/%.16s", p->work_dir, key);
	diana__rm_tree_contents(dir);
	if ((rc = diana__mkdir_p(dir)) < 0)
		return rc;
	memset(&r, 0, sizeof(r));
	r.dir = dir;
	r.profile = p->profile;
	rc = diana_session_retrieve(p->source, uid, series_uid, NULL, keep_cb, &r, &ts);
	if (rc < 0) {
		diana__log(DIANA_LOG_WARNING, "pipeline", "retrieve failed: %s", diana_error_message());
		pthread_mutex_lock(&p->lock);
		p->st.retrieve_failures++;
		pthread_mutex_unlock(&p->lock);
		diana__rm_tree_contents(dir);
		rmdir(dir);
		return rc == DIANA_ENOTFOUND ? 0 : rc; /* gone: nothing to do; else again later */
	}
	lat.retrieved_ms = wall_ms();
	return process_dir(p, key, dir, sizeof(dir), r.n, lat, arrival_ms, uid);
}

/* a study already in a local folder (a storage SCP source): moved into work/ and processed */
int diana__pipeline_handle_dir(diana_pipeline *p, const char *uid, const char *src_dir, int64_t detect_ms,
                               int64_t arrival_ms)
{
	char key[65], dir[4300];
	diana__latency lat;
	uint32_t n = 0;
	int rc;

	rc = study_key(p, uid, key);
	if (rc < 0)
		return rc;
	if (history_has(p, key)) {
		diana__rm_tree_contents(src_dir);
		rmdir(src_dir);
		return 0;
	}
	pthread_mutex_lock(&p->lock);
	p->st.seen++;
	pthread_mutex_unlock(&p->lock);
	memset(&lat, 0, sizeof(lat));
	lat.detect_ms = detect_ms;
	snprintf(dir, sizeof(dir), "%s/%.16s", p->work_dir, key);
	diana__rm_tree_contents(dir);
	rmdir(dir);
	if (p->profile) {
		/* de-identify file by file into the work folder */
		DIR *d = opendir(src_dir);
		struct dirent *e;
		if ((rc = diana__mkdir_p(dir)) < 0)
			return rc;
		while (d && (e = readdir(d)) != NULL) {
			char in[4400], *outp = NULL;
			if (e->d_name[0] == '.')
				continue;
			snprintf(in, sizeof(in), "%s/%s", src_dir, e->d_name);
			if (diana_anonymize_into(p->profile, in, dir, DIANA_ANON_NO_SYNC | DIANA_ANON_NO_WRITEBACK, &outp,
			                         NULL) == 0)
				n++;
			diana_free(outp);
		}
		if (d)
			closedir(d);
		diana__rm_tree_contents(src_dir);
		rmdir(src_dir);
	} else {
		DIR *d;
		struct dirent *e;
		if (rename(src_dir, dir) != 0)
			return diana__error_errno(errno, "moving a received study into the work folder");
		if ((d = opendir(dir)) != NULL) {
			while ((e = readdir(d)) != NULL)
				if (e->d_name[0] != '.')
					n++;
			closedir(d);
		}
	}
	lat.retrieved_ms = wall_ms();
	return process_dir(p, key, dir, sizeof(dir), n, lat, arrival_ms, uid);
}

/* the built-in dose model: every radiation dose report of the folder parsed (doc/dose.md) */
static void dose_walk(const char *dir, int depth, cJSON *docs, int *others)
{
	DIR *d;
	struct dirent *e;
	if (depth > 6 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)) != NULL) {
		char path[4400];
		struct stat sb;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			dose_walk(path, depth + 1, docs, others);
		} else {
			char *json = NULL;
			if (diana_dose_from_file(&json, path, NULL) == 0) {
				cJSON *doc = cJSON_Parse(json);
				if (doc)
					cJSON_AddItemToArray(docs, doc);
			} else {
				(*others)++;
				diana_error_clear();
			}
			diana_free(json);
		}
	}
	closedir(d);
}

static int dose_model(const char *dir, char **result)
{
	cJSON *r = cJSON_CreateObject(), *docs;
	char summary[96];
	int others = 0;

	if (!r || !(docs = cJSON_AddArrayToObject(r, "dose"))) {
		cJSON_Delete(r);
		return diana__error_oom();
	}
	dose_walk(dir, 0, docs, &others);
	snprintf(summary, sizeof(summary), "%d radiation dose report%s", cJSON_GetArraySize(docs),
	         cJSON_GetArraySize(docs) == 1 ? "" : "s");
	cJSON_AddStringToObject(r, "summary", summary);
	*result = cJSON_PrintUnformatted(r);
	cJSON_Delete(r);
	return *result ? 0 : diana__error_oom();
}

static int process_dir(diana_pipeline *p, const char *key, char *dir, size_t dircap, uint32_t ninst,
                       diana__latency lat, int64_t arrival_ms, const char *uid)
{
	char *result = NULL;
	diana_dataset *h = NULL;
	cJSON *rec = NULL;
	int rc, match, i, model_ok = 0;
	retrieved r;

	memset(&r, 0, sizeof(r));
	r.n = ninst;
	rc = first_header(dir, 0, &h);
	if (rc < 0) {
		diana__rm_tree_contents(dir);
		rmdir(dir);
		return rc;
	}
	lat.exam_end_ms = exam_end(h);
	if (lat.exam_end_ms < 0)
		lat.exam_end_ms = arrival_ms;
	match = diana__filter_match(p->filter, h);
	if (match < 0)
		diana__log(DIANA_LOG_WARNING, "pipeline", "the filter cannot read this study (%s): skipped for good",
		           diana_error_message());
	if (match <= 0) {
		/* not for this pipeline (or unreadable for the filter): remember it, so it is never looked at again */
		char line[160];
		snprintf(line, sizeof(line), "{\"study\":\"%s\",\"status\":\"%s\"}\n", key,
		         match < 0 ? "filter-error" : "filtered");
		{
			char hp[4300];
			snprintf(hp, sizeof(hp), "%s/history.jsonl", p->state_dir);
			rc = append_durable(hp, line);
		}
		if (rc == 0)
			rc = history_add_mem(p, key);
		diana_dataset_free(h);
		snprintf(dir, dircap, "%s/%.16s", p->work_dir, key);
		diana__rm_tree_contents(dir);
		rmdir(dir);
		return rc;
	}
	pthread_mutex_lock(&p->lock);
	p->st.matched++;
	pthread_mutex_unlock(&p->lock);
	/* the model */
	{
		char *acc = NULL, *suid = NULL;
		diana_dataset_get(h, "AccessionNumber", &acc);
		diana_dataset_get(h, "StudyInstanceUID", &suid);
		diana_error_clear();
		if (p->builtin_dose) {
			rc = dose_model(dir, &result);
		} else if (p->model) {
			diana_model_input in;
			diana_model_output mo = { NULL };
			memset(&in, 0, sizeof(in));
			in.version = DIANA_MODEL_INPUT_VERSION;
			in.study_dir = dir;
			in.header = h;
			in.study_uid = suid ? suid : uid;
			in.instances = r.n;
			rc = p->model(&in, &mo, p->model_ud);
			if (rc == 0 && !mo.json)
				rc = diana__error_set(DIANA_EUSER, "the model returned no result");
			else if (rc != 0)
				rc = diana__error_set(DIANA_EUSER, "the model failed (%d)", rc);
			result = mo.json;
		} else {
			rc = diana__model_command(&p->cmd, dir, &result);
		}
		lat.model_ms = wall_ms();
		rec = cJSON_CreateObject();
		cJSON_AddStringToObject(rec, "model", p->model_name);
		cJSON_AddStringToObject(rec, "study_instance_uid", suid ? suid : uid);
		cJSON_AddStringToObject(rec, "accession", acc ? acc : "");
		cJSON_AddNumberToObject(rec, "instances", r.n);
		if (rc == 0) {
			cJSON *res = cJSON_Parse(result);
			cJSON_AddItemToObject(rec, "result", res ? res : cJSON_CreateObject());
			model_ok = 1;
		} else {
			cJSON_AddStringToObject(rec, "error", diana_error_message());
			diana__log(DIANA_LOG_WARNING, "pipeline", "model failed: %s", diana_error_message());
		}
		diana_free(acc);
		diana_free(suid);
	}
	pthread_mutex_lock(&p->lock);
	if (model_ok)
		p->st.processed++;
	else
		p->st.model_failures++;
	pthread_mutex_unlock(&p->lock);
	/* record: latency so far (delivery time is filled by the JSONL sink's own line) */
	{
		cJSON *l = cJSON_AddObjectToObject(rec, "latency_ms");
		int64_t base = lat.exam_end_ms > 0 ? lat.exam_end_ms : lat.detect_ms;
		char iso[32];
		time_t t = (time_t)(base / 1000);
		struct tm tm;
		gmtime_r(&t, &tm);
		strftime(iso, sizeof(iso), "%Y-%m-%dT%H:%M:%SZ", &tm);
		cJSON_AddStringToObject(rec, "exam_end", iso);
		cJSON_AddNumberToObject(l, "detected", (double)(lat.detect_ms - base));
		cJSON_AddNumberToObject(l, "retrieved", (double)(lat.retrieved_ms - base));
		cJSON_AddNumberToObject(l, "model", (double)(lat.model_ms - base));
		cJSON_AddNumberToObject(l, "total", (double)(lat.model_ms - base));
	}
	/* spool one delivery per sink (model failures are reported to jsonl/webhook sinks only) */
	for (i = 0; i < p->nsinks && rc >= -1000; i++) {
		char name[128], *body = NULL;
		int src;
		if (!model_ok && (p->sinks[i].type == SINK_SLACK || p->sinks[i].type == SINK_SR))
			continue;
		if (p->sinks[i].type == SINK_SR) {
			uint8_t *sr = NULL;
			size_t srlen = 0;
			diana__sr_options so = { p->sinks[i].model_name, p->sinks[i].series_description, NULL };
			char srpath[4400];
			src = diana__sr_build(h, cJSON_GetObjectItemCaseSensitive(rec, "result"), &so, &sr, &srlen);
			if (src < 0) {
				diana__log(DIANA_LOG_ERROR, "pipeline", "sr: %s", diana_error_message());
				continue;
			}
			snprintf(srpath, sizeof(srpath), "%s/sr-%lld-%llu.dcm", p->spool_dir, (long long)wall_ms(),
			         (unsigned long long)++p->seq);
			src = diana__write_file_atomic(srpath, sr, srlen);
			diana_free(sr);
			if (src < 0)
				return src;
			body = diana__strdup(srpath);
		} else {
			body = diana__sink_payload(&p->sinks[i], rec);
		}
		if (!body)
			return diana__error_oom();
		src = spool_write(p, i, body, name, sizeof(name));
		free(body);
		if (src < 0) {
			cJSON_Delete(rec);
			free(result);
			diana_dataset_free(h);
			return src;
		}
	}
	/* handled: history (durable) before the cursor moves */
	{
		char hp[4300], line[160];
		snprintf(hp, sizeof(hp), "%s/history.jsonl", p->state_dir);
		snprintf(line, sizeof(line), "{\"study\":\"%s\",\"status\":\"%s\"}\n", key, model_ok ? "processed" : "model-failed");
		rc = append_durable(hp, line);
		if (rc == 0)
			rc = history_add_mem(p, key);
	}
	cJSON_Delete(rec);
	free(result);
	diana_dataset_free(h);
	snprintf(dir, dircap, "%s/%.16s", p->work_dir, key);
	diana__rm_tree_contents(dir);
	rmdir(dir);
	if (rc < 0)
		return rc;
	/* deliver now */
	lat.delivered_ms = -1;
	spool_flush(p, &lat.delivered_ms);
	if (model_ok) {
		if (lat.delivered_ms < 0)
			lat.delivered_ms = wall_ms();
		add_latency(p, &lat);
	}
	return 0;
}

/* ------------------------------------------------------------ the source */

struct change_ctx {
	diana_pipeline *p;
	int64_t last_done;   /* the cursor may move to here */
	int error;
	uint32_t handled;
};

static int on_change(const diana_change *c, void *ud)
{
	struct change_ctx *x = ud;
	diana_pipeline *p = x->p;
	char uid[65], series[65];
	int rc, with_series = 0;

	if (atomic_load(&p->stop))
		return 1;
	if (strcmp(c->change_type, p->events) != 0) {
		x->last_done = c->seq;
		return 0;
	}
	if (strcmp(c->resource_type, "Series") == 0 && strcmp(p->events, "StableSeries") == 0) {
		char mod[17];
		rc = diana__orthanc_series_info(p->source, c->id, uid, series, mod);
		if (rc == 0 && p->nmodalities) {
			size_t k;
			int want = 0;
			for (k = 0; k < p->nmodalities; k++)
				if (strcmp(p->modalities[k], mod) == 0)
					want = 1;
			if (!want) {
				x->last_done = c->seq; /* not a series of interest: nothing retrieved */
				return 0;
			}
		}
		with_series = 1;
	} else {
		rc = diana__orthanc_study_uid(p->source, c->resource_type, c->id, uid);
	}
	if (rc == DIANA_ENOTFOUND) { /* deleted meanwhile */
		diana_error_clear();
		x->last_done = c->seq;
		return 0;
	}
	if (rc < 0) {
		x->error = rc;
		return 1;
	}
	{
		/* the change's date is Orthanc's local time: the arrival, for studies without times */
		int64_t arrival = wall_ms();
		struct tm tm;
		memset(&tm, 0, sizeof(tm));
		if (strlen(c->date) >= 15 && sscanf(c->date, "%4d%2d%2dT%2d%2d%2d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
		                                    &tm.tm_hour, &tm.tm_min, &tm.tm_sec) == 6) {
			tm.tm_year -= 1900;
			tm.tm_mon -= 1;
			tm.tm_isdst = -1;
			arrival = (int64_t)mktime(&tm) * 1000;
		}
		rc = handle_study(p, uid, with_series ? series : NULL, wall_ms(), arrival);
	}
	if (rc < 0) {
		x->error = rc;
		return 1; /* the cursor stays before this change: tried again next poll */
	}
	x->handled++;
	x->last_done = c->seq;
	/* the cursor moves after each handled study */
	if (cursor_save(p, x->last_done) < 0) {
		x->error = diana_error_code();
		return 1;
	}
	return 0;
}

static int poll_once(diana_pipeline *p, uint32_t *handled)
{
	struct change_ctx x;
	int64_t last = 0;
	int done = 0, rc;

	if (handled)
		*handled = 0;
	if (!p->cursor_loaded) {
		if (p->start_now) {
			rc = diana_session_changes(p->source, -1, 0, NULL, NULL, &last, NULL);
			if (rc < 0)
				return rc;
		}
		rc = cursor_save(p, p->start_now ? last : 0);
		if (rc < 0)
			return rc;
		p->cursor_loaded = 1;
	}
	spool_flush(p, NULL);
	memset(&x, 0, sizeof(x));
	x.p = p;
	x.last_done = p->cursor;
	rc = diana_session_changes(p->source, p->cursor, 0, on_change, &x, &last, &done);
	if (handled)
		*handled = x.handled;
	if (x.error < 0) {
		diana__log(DIANA_LOG_WARNING, "pipeline", "will retry: %s", diana_error_message());
		if (x.last_done != p->cursor)
			cursor_save(p, x.last_done);
		return x.error;
	}
	if (rc < 0 && rc != DIANA_EUSER)
		return rc;
	/* changes of other types up to the end are done too */
	if (rc == 0 && x.last_done != p->cursor)
		return cursor_save(p, x.last_done);
	if (rc == 0 && last > p->cursor && !atomic_load(&p->stop))
		return cursor_save(p, last);
	return 0;
}

/* ---- C-FIND polling: studies of the look-back window, complete once their count is quiet */

struct poll_answer {
	diana_pipeline *p;
	int64_t now;
	char (*uids)[65];
	long *counts;
	size_t n, cap;
};

static int on_poll_answer(const diana_dataset *ds, void *ud)
{
	struct poll_answer *a = ud;
	char *uid = NULL, *cnt = NULL;
	if (diana_dataset_get(ds, "StudyInstanceUID", &uid) == 0 && uid && *uid && strlen(uid) <= 64) {
		if (a->n == a->cap) {
			size_t ncap = a->cap ? a->cap * 2 : 32;
			void *u = realloc(a->uids, ncap * sizeof(*a->uids)), *c;
			if (u)
				a->uids = u;
			c = realloc(a->counts, ncap * sizeof(*a->counts));
			if (c)
				a->counts = c;
			if (u && c)
				a->cap = ncap;
		}
		if (a->n < a->cap) {
			snprintf(a->uids[a->n], 65, "%s", uid);
			a->counts[a->n] = diana_dataset_get(ds, "NumberOfStudyRelatedInstances", &cnt) == 0 && cnt
			                      ? strtol(cnt, NULL, 10)
			                      : -1;
			a->n++;
		}
	}
	diana_free(uid);
	diana_free(cnt);
	diana_error_clear();
	return 0;
}

static int poll_find(diana_pipeline *p, uint32_t *handled)
{
	struct poll_answer a;
	const char **keys;
	char date[96];
	time_t from = (time_t)((wall_ms() - p->poll.lookback_ms) / 1000), to = time(NULL);
	struct tm tf, tt;
	size_t i, k, nk = 0;
	int rc;

	memset(&a, 0, sizeof(a));
	a.p = p;
	localtime_r(&from, &tf);
	localtime_r(&to, &tt);
	snprintf(date, sizeof(date), "StudyDate=%04d%02d%02d-%04d%02d%02d", tf.tm_year + 1900, tf.tm_mon + 1,
	         tf.tm_mday, tt.tm_year + 1900, tt.tm_mon + 1, tt.tm_mday);
	keys = calloc(p->poll.nkeys + 3, sizeof(*keys));
	if (!keys)
		return diana__error_oom();
	keys[nk++] = date;
	keys[nk++] = "NumberOfStudyRelatedInstances";
	for (k = 0; k < p->poll.nkeys; k++)
		keys[nk++] = p->poll.keys[k];
	rc = diana_session_find(p->source, DIANA_LEVEL_STUDY, keys, nk, on_poll_answer, &a, NULL);
	free(keys);
	if (rc < 0) {
		free(a.uids);
		free(a.counts);
		return rc;
	}
	for (i = 0; i < a.n && !atomic_load(&p->stop); i++) {
		char key[65];
		struct pending_study *ps = NULL;
		if (study_key(p, a.uids[i], key) < 0 || history_has(p, key))
			continue;
		for (k = 0; k < p->npend; k++)
			if (strcmp(p->pend[k].uid, a.uids[i]) == 0)
				ps = &p->pend[k];
		if (!ps) {
			if (p->npend == p->cappend) {
				size_t ncap = p->cappend ? p->cappend * 2 : 16;
				struct pending_study *nv = realloc(p->pend, ncap * sizeof(*nv));
				if (!nv)
					break;
				p->pend = nv;
				p->cappend = ncap;
			}
			ps = &p->pend[p->npend++];
			snprintf(ps->uid, sizeof(ps->uid), "%s", a.uids[i]);
			ps->count = a.counts[i];
			ps->changed_ms = diana__now_ms();
			continue;
		}
		if (ps->count != a.counts[i]) {
			ps->count = a.counts[i];
			ps->changed_ms = diana__now_ms();
			continue;
		}
		if (diana__now_ms() - ps->changed_ms < p->poll.quiet_ms)
			continue;
		/* quiet long enough: complete */
		rc = handle_study(p, ps->uid, NULL, wall_ms(), wall_ms() - (diana__now_ms() - ps->changed_ms));
		if (rc < 0)
			break;
		if (handled)
			(*handled)++;
		*ps = p->pend[--p->npend];
	}
	free(a.uids);
	free(a.counts);
	return rc < 0 ? rc : 0;
}

/* ---- a watched folder: files settled for quiet_s are taken (moved) and grouped by study; a
   study is handled once nothing was added to it for quiet_s */

static int64_t mtime_ms(const struct stat *sb)
{
	return (int64_t)sb->st_mtim.tv_sec * 1000 + sb->st_mtim.tv_nsec / 1000000;
}

static void inbox_take(diana_pipeline *p, const char *dir, int depth)
{
	DIR *d;
	struct dirent *e;
	if (depth > 8 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)) != NULL) {
		char path[4400], dst[4400];
		struct stat sb;
		diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
		diana_dataset *ds = NULL;
		char *uid = NULL, *sop = NULL;
		if (e->d_name[0] == '.')
			continue; /* hidden and temporary files (writers' atomic renames) */
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (lstat(path, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			inbox_take(p, path, depth + 1);
			continue;
		}
		if (!S_ISREG(sb.st_mode) || wall_ms() - mtime_ms(&sb) < p->inbox_quiet_ms)
			continue; /* still being written */
		o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
		if (diana_dataset_open(&ds, path, &o) == 0 && diana_dataset_get(ds, "StudyInstanceUID", &uid) == 0 &&
		    diana_dataset_get(ds, "SOPInstanceUID", &sop) == 0 && uid && sop && strlen(uid) <= 64 &&
		    strlen(sop) <= 64 && strspn(uid, "0123456789.") == strlen(uid) &&
		    strspn(sop, "0123456789.") == strlen(sop) && *uid && *sop) {
			snprintf(dst, sizeof(dst), "%s/%s", p->inbox_staging, uid);
			if (mkdir(dst, 0700) == 0 || errno == EEXIST) {
				snprintf(dst + strlen(dst), sizeof(dst) - strlen(dst), "/%s.dcm", sop);
				if (rename(path, dst) != 0)
					diana__log(DIANA_LOG_WARNING, "pipeline", "folder source: cannot take a file (%s)",
					           strerror(errno));
				else {
					/* the study folder's time says when it last grew */
					char sdir[4400];
					snprintf(sdir, sizeof(sdir), "%s/%s", p->inbox_staging, uid);
					utimensat(AT_FDCWD, sdir, NULL, 0);
				}
			}
		} else {
			diana__log(DIANA_LOG_DEBUG, "pipeline", "folder source: a file that is not DICOM stays");
		}
		diana_free(uid);
		diana_free(sop);
		diana_dataset_free(ds);
		diana_error_clear();
	}
	closedir(d);
}

static int poll_folder(diana_pipeline *p, uint32_t *handled)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	inbox_take(p, p->inbox, 0);
	if (!(d = opendir(p->inbox_staging)))
		return diana__error_errno(errno, "folder source");
	while ((e = readdir(d)) != NULL && rc == 0 && !atomic_load(&p->stop)) {
		char sdir[4400];
		struct stat sb;
		if (e->d_name[0] == '.')
			continue;
		snprintf(sdir, sizeof(sdir), "%s/%s", p->inbox_staging, e->d_name);
		if (stat(sdir, &sb) != 0 || !S_ISDIR(sb.st_mode) || wall_ms() - mtime_ms(&sb) < p->inbox_quiet_ms)
			continue;
		rc = diana__pipeline_handle_dir(p, e->d_name, sdir, wall_ms(), mtime_ms(&sb));
		if (rc == 0 && handled)
			(*handled)++;
	}
	closedir(d);
	return rc;
}

int diana_pipeline_run_once(diana_pipeline *p, uint32_t *studies)
{
	uint32_t n = 0;
	int rc;
	if (!p)
		return diana__error_set(DIANA_EINVAL, "NULL pipeline");
	switch (p->source_kind) {
	case SRC_POLL:
		spool_flush(p, NULL);
		rc = poll_find(p, &n);
		break;
	case SRC_SCP:
		spool_flush(p, NULL);
		rc = diana__scp_source_poll(p->scp, &n);
		break;
	case SRC_FOLDER:
		spool_flush(p, NULL);
		rc = poll_folder(p, &n);
		break;
	default:
		return poll_once(p, studies);
	}
	if (studies)
		*studies = n;
	return rc;
}

int diana_pipeline_run(diana_pipeline *p)
{
	int64_t next = 0;
	int rc = 0;

	if (!p)
		return diana__error_set(DIANA_EINVAL, "NULL pipeline");
	p->running = 1;
	diana__log(DIANA_LOG_INFO, "pipeline", "watching %s",
	           p->source ? diana_session_uri(p->source) : (p->inbox ? "a folder" : "a storage SCP"));
	while (!atomic_load(&p->stop)) {
		if (diana__now_ms() >= next) {
			rc = diana_pipeline_run_once(p, NULL);
			if (rc == DIANA_EIO || rc == DIANA_ENOSPC) {
				/* the state cannot be written: going on would repeat studies */
				p->running = 0;
				return rc;
			}
			next = diana__now_ms() + p->poll_ms;
		}
		usleep(50000);
	}
	p->running = 0;
	atomic_store(&p->stop, 0);
	return 0;
}

static void *pipeline_thread(void *arg)
{
	diana_pipeline *p = arg;
	p->thread_rc = diana_pipeline_run(p);
	return NULL;
}

int diana_pipeline_start(diana_pipeline *p)
{
	if (!p)
		return diana__error_set(DIANA_EINVAL, "NULL pipeline");
	if (p->thread_started || p->running)
		return diana__error_set(DIANA_EEXISTS, "the pipeline is already running");
	if (pthread_create(&p->thread, NULL, pipeline_thread, p) != 0)
		return diana__error_set(DIANA_ENOMEM, "cannot start the pipeline thread");
	p->thread_started = 1;
	return 0;
}

void diana_pipeline_stop(diana_pipeline *p)
{
	if (p)
		atomic_store(&p->stop, 1);
}

int diana_pipeline_wait(diana_pipeline *p)
{
	if (!p || !p->thread_started)
		return diana__error_set(DIANA_EINVAL, "the pipeline was not started");
	pthread_join(p->thread, NULL);
	p->thread_started = 0;
	return p->thread_rc;
}

int diana_pipeline_stats_get(diana_pipeline *p, diana_pipeline_stats *st)
{
	if (!p || !st)
		return diana__error_set(DIANA_EINVAL, "diana_pipeline_stats_get: NULL argument");
	if (st->version != DIANA_PIPELINE_STATS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "pipeline stats version %u is not supported", (unsigned)st->version);
	pthread_mutex_lock(&p->lock);
	*st = p->st;
	pthread_mutex_unlock(&p->lock);
	return 0;
}
