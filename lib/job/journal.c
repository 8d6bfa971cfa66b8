/*
 * libdiana - the file journal of retrieval jobs: dir/journal.jsonl, one JSON
 * object per line {"v":1,"id":"<hex>","status":"done",...}, appended with
 * O_APPEND and fdatasync'd before done() returns.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../core/core.h"
#include "journal.h"

typedef struct file_journal {
	diana__journal base;
	int fd;
	pthread_mutex_t lock;
	char **ids; /* open addressing hash set of done ids */
	size_t cap, n;
} file_journal;

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603ull;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ull;
	}
	return h;
}

static int set_has(const file_journal *f, const char *id)
{
	size_t i;
	if (!f->cap)
		return 0;
	for (i = hash_str(id) & (f->cap - 1); f->ids[i]; i = (i + 1) & (f->cap - 1)) {
		if (strcmp(f->ids[i], id) == 0)
			return 1;
	}
	return 0;
}

static int set_add(file_journal *f, const char *id)
{
	size_t i;
	char *copy;

	if (set_has(f, id))
		return 0;
	if ((f->n + 1) * 2 > f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 256, k;
		char **nv = calloc(ncap, sizeof(*nv));
		if (!nv)
			return diana__error_oom();
		for (k = 0; k < f->cap; k++) {
			if (f->ids[k]) {
				for (i = hash_str(f->ids[k]) & (ncap - 1); nv[i]; i = (i + 1) & (ncap - 1)) {
				}
				nv[i] = f->ids[k];
			}
		}
		free(f->ids);
		f->ids = nv;
		f->cap = ncap;
	}
	copy = diana__strdup(id);
	if (!copy)
		return DIANA_ENOMEM;
	for (i = hash_str(id) & (f->cap - 1); f->ids[i]; i = (i + 1) & (f->cap - 1)) {
	}
	f->ids[i] = copy;
	f->n++;
	return 0;
}

static int fj_is_done(diana__journal *j, const char *id)
{
	file_journal *f = (file_journal *)j;
	int r;
	pthread_mutex_lock(&f->lock);
	r = set_has(f, id);
	pthread_mutex_unlock(&f->lock);
	return r;
}

static int fj_done(diana__journal *j, const char *id, const char *extra)
{
	file_journal *f = (file_journal *)j;
	diana__buf b = DIANA__BUF_INIT;
	char when[32];
	time_t now = time(NULL);
	struct tm tm;
	size_t off = 0;
	int rc = 0;

	gmtime_r(&now, &tm);
	strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	diana__buf_printf(&b, "{\"v\":1,\"id\":\"%s\",\"status\":\"done\",\"time\":\"%s\"%s%s}\n", id, when,
	                  extra && *extra ? "," : "", extra ? extra : "");
	if (b.oom) {
		diana__buf_dispose(&b);
		return diana__error_oom();
	}
	pthread_mutex_lock(&f->lock);
	/* one write(2) per entry with O_APPEND: entries never interleave */
	while (off < b.len) {
		ssize_t w = write(f->fd, b.data + off, b.len - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			rc = diana__error_errno(errno, "writing the job journal");
			break;
		}
		off += (size_t)w;
	}
	if (rc == 0 && fdatasync(f->fd) != 0)
		rc = diana__error_errno(errno, "syncing the job journal");
	if (rc == 0)
		rc = set_add(f, id);
	pthread_mutex_unlock(&f->lock);
	diana__buf_dispose(&b);
	return rc;
}

static void fj_free(diana__journal *j)
{
	file_journal *f = (file_journal *)j;
	size_t i;
	if (!f)
		return;
	if (f->fd >= 0)
		close(f->fd);
	for (i = 0; i < f->cap; i++)
		free(f->ids[i]);
	free(f->ids);
	pthread_mutex_destroy(&f->lock);
	free(f);
}

static const diana__journal_ops file_ops = { fj_is_done, fj_done, fj_free };

/* load entries; cut a torn tail */
static int load(file_journal *f, const char *path)
{
	uint8_t *data = NULL;
	size_t len = 0, start = 0, i, good = 0;
	int rc;

	rc = diana__file_read(path, (uint64_t)1 << 32, &data, &len);
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
			const char *id = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "id"));
			const char *st = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(e, "status"));
			if (id && st && strcmp(st, "done") == 0)
				rc = set_add(f, id);
			cJSON_Delete(e);
			if (rc < 0) {
				free(data);
				return rc;
			}
		}
		start = i + 1;
		good = start;
	}
	free(data);
	if (good < len) {
		diana__log(DIANA_LOG_WARNING, "job", "journal: cutting a torn last entry (%zu bytes)", len - good);
		if (truncate(path, (off_t)good) != 0)
			return diana__error_errno(errno, "repairing the job journal");
	}
	return 0;
}

int diana__journal_open_file(diana__journal **out, const char *dir)
{
	file_journal *f;
	char *path;
	size_t n;
	int rc;

	*out = NULL;
	f = diana__calloc(1, sizeof(*f));
	if (!f)
		return DIANA_ENOMEM;
	f->base.ops = &file_ops;
	f->fd = -1;
	pthread_mutex_init(&f->lock, NULL);
	n = strlen(dir) + 32;
	path = diana__malloc(n);
	if (!path) {
		fj_free(&f->base);
		return DIANA_ENOMEM;
	}
	snprintf(path, n, "%s/journal.jsonl", dir);
	rc = load(f, path);
	if (rc == 0) {
		f->fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
		if (f->fd < 0)
			rc = diana__error_errno(errno, "opening the job journal");
	}
	free(path);
	if (rc < 0) {
		fj_free(&f->base);
		return rc;
	}
	*out = &f->base;
	return 0;
}
