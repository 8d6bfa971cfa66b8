/*
 * libdiana - the storage SCP source of a pipeline: studies are sent to us
 * (C-STORE) and land in <state>/incoming/<StudyInstanceUID>/; a study is
 * complete once no instance of it arrived for "quiet_s" seconds, and is
 * then handed to diana__pipeline_handle_dir(). The SCP itself lives in
 * lib/net (dimse_scp.cpp) and is reached through lib/net/dimse.h, the same
 * exception to the layering as the HTTP sinks. See doc/pipeline-scp.md.
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

#include "pipeline_int.h"
#include "../net/dimse.h"

struct diana__scp_source {
	diana_pipeline *p;
	diana__storescp *scp;
	char *dir;          /* <state>/incoming */
	int64_t quiet_ms;
};

static const char *const listen_known[] = { "aet", "port", "bind", "quiet_s", "calling_aets",
	                                        "max_associations", NULL };

static int uid_name_ok(const char *s)
{
	size_t n = strlen(s), i;
	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || s[i] == '.'))
			return 0;
	return 1;
}

static int64_t mtime_ms(const struct stat *st)
{
	return (int64_t)st->st_mtim.tv_sec * 1000 + st->st_mtim.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_REALTIME, &t);
	return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

int diana__scp_source_new(diana_pipeline *p, const cJSON *listen, const char *spool_dir, diana__scp_source **out)
{
	diana__storescp_options o = DIANA__STORESCP_OPTIONS_INIT;
	const cJSON *it, *port, *quiet, *callers, *maxa;
	const char **aets = NULL;
	diana__scp_source *s;
	char *slash;
	size_t n;
	int rc;

	*out = NULL;
	if (!cJSON_IsObject(listen))
		return diana__error_set(DIANA_EINVAL, "an object");
	cJSON_ArrayForEach(it, listen)
	{
		int k, known = 0;
		for (k = 0; listen_known[k]; k++)
			known = known || (it->string && strcmp(it->string, listen_known[k]) == 0);
		if (!known)
			return diana__error_set(DIANA_EINVAL, "unknown key '%.40s'", it->string ? it->string : "");
	}
	port = cJSON_GetObjectItemCaseSensitive(listen, "port");
	if (!cJSON_IsNumber(port) || port->valuedouble < 0 || port->valuedouble > 65535 ||
	    port->valuedouble != (double)(int)port->valuedouble)
		return diana__error_set(DIANA_EINVAL, "port: 1..65535, or 0 for any free port");
	o.port = port->valueint == 0 ? DIANA__DIMSE_ANY_PORT : port->valueint;
	it = cJSON_GetObjectItemCaseSensitive(listen, "aet");
	if (it && !cJSON_IsString(it))
		return diana__error_set(DIANA_EINVAL, "aet: a string");
	o.aet = it ? it->valuestring : "DIANA";
	it = cJSON_GetObjectItemCaseSensitive(listen, "bind");
	if (it && !cJSON_IsString(it))
		return diana__error_set(DIANA_EINVAL, "bind: a string");
	o.bind = it ? it->valuestring : NULL;
	quiet = cJSON_GetObjectItemCaseSensitive(listen, "quiet_s");
	if (quiet && (!cJSON_IsNumber(quiet) || quiet->valuedouble < 0 || quiet->valuedouble > 86400))
		return diana__error_set(DIANA_EINVAL, "quiet_s: seconds, 0..86400");
	maxa = cJSON_GetObjectItemCaseSensitive(listen, "max_associations");
	if (maxa && (!cJSON_IsNumber(maxa) || maxa->valueint < 1 || maxa->valueint > 256))
		return diana__error_set(DIANA_EINVAL, "max_associations: 1..256");
	o.max_associations = maxa ? maxa->valueint : 0;
	callers = cJSON_GetObjectItemCaseSensitive(listen, "calling_aets");
	if (callers) {
		size_t k = 0;
		if (!cJSON_IsArray(callers))
			return diana__error_set(DIANA_EINVAL, "calling_aets: an array of AE titles");
		aets = calloc((size_t)cJSON_GetArraySize(callers) + 1, sizeof(char *));
		if (!aets)
			return diana__error_oom();
		cJSON_ArrayForEach(it, callers)
		{
			if (!cJSON_IsString(it)) {
				free(aets);
				return diana__error_set(DIANA_EINVAL, "calling_aets: an array of AE titles");
			}
			aets[k++] = it->valuestring;
		}
		o.calling_aets = aets;
	}

	s = diana__calloc(1, sizeof(*s));
	if (!s) {
		free(aets);
		return DIANA_ENOMEM;
	}
	s->p = p;
	s->quiet_ms = quiet ? (int64_t)(quiet->valuedouble * 1000) : 10000;
	/* <state>/incoming, next to <state>/spool */
	n = strlen(spool_dir) + 16;
	s->dir = diana__malloc(n);
	if (!s->dir) {
		free(aets);
		free(s);
		return DIANA_ENOMEM;
	}
	snprintf(s->dir, n, "%s", spool_dir);
	slash = strrchr(s->dir, '/');
	if (slash)
		snprintf(slash + 1, n - (size_t)(slash + 1 - s->dir), "incoming");
	else
		snprintf(s->dir, n, "incoming");
	o.dir = s->dir;
	rc = diana__storescp_new(&s->scp, &o);
	free(aets);
	if (rc < 0) {
		diana__scp_source_free(s);
		return rc;
	}
	diana__log(DIANA_LOG_INFO, "pipeline", "storage SCP %s on %s port %d, a study is complete after %lld ms of quiet",
	           o.aet, o.bind ? o.bind : "127.0.0.1", diana__storescp_port(s->scp), (long long)s->quiet_ms);
	*out = s;
	return 0;
}

/* Newest modification time (epoch ms) among the files of a study folder; -1 when empty. */
static int64_t newest_ms(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int64_t newest = -1;
	struct stat st;
	if (!d)
		return -1;
	while ((e = readdir(d)) != NULL) {
		if (e->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(d), e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 && mtime_ms(&st) > newest)
			newest = mtime_ms(&st);
	}
	closedir(d);
	return newest;
}

int diana__scp_source_poll(diana__scp_source *s, uint32_t *handled)
{
	DIR *d;
	struct dirent *e;
	int rc = 0;

	if (handled)
		*handled = 0;
	if (!s)
		return diana__error_set(DIANA_EINVAL, "no storage SCP source");
	d = opendir(s->dir);
	if (!d)
		return diana__error_errno(errno, "the storage SCP folder");
	while ((e = readdir(d)) != NULL) {
		char path[4200];
		struct stat st;
		int64_t newest, now;
		if (e->d_name[0] == '.' || !uid_name_ok(e->d_name))
			continue;
		snprintf(path, sizeof(path), "%s/%s", s->dir, e->d_name);
		if (lstat(path, &st) != 0 || !S_ISDIR(st.st_mode))
			continue;
		newest = newest_ms(path);
		now = wall_ms();
		if (newest < 0) {
			/* an empty folder left behind: gone once it has been quiet too */
			if (now - mtime_ms(&st) >= s->quiet_ms)
				rmdir(path);
			continue;
		}
		if (now - newest < s->quiet_ms || diana__storescp_active(s->scp, e->d_name))
			continue;
		rc = diana__pipeline_handle_dir(s->p, e->d_name, path, now, newest);
		if (rc < 0)
			break; /* again at the next poll */
		if (handled)
			(*handled)++;
	}
	closedir(d);
	return rc < 0 ? rc : 0;
}

void diana__scp_source_free(diana__scp_source *s)
{
	if (!s)
		return;
	diana__storescp_free(s->scp);
	free(s->dir);
	free(s);
}
