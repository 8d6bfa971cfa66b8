/*
 * libdiana - diana_session: opening by URI, the public entry points (argument
 * checks, cancellation, timing) and what the kinds share: temporary files,
 * delivery of received instances, keeping them, retrieve into a folder.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "session.h"
#include "../net/net.h"

/* Kinds written in their own files; until one is linked, its weak fallback answers. */
__attribute__((weak)) int diana__dicomweb_open(diana_session *s, const diana__uri *u)
{
	(void)s;
	(void)u;
	return diana__error_set(DIANA_EUNSUPPORTED, "DICOMweb sessions are not built in this library");
}

__attribute__((weak)) int diana__folder_open(diana_session *s, const char *dir)
{
	(void)s;
	(void)dir;
	return diana__error_set(DIANA_EUNSUPPORTED, "folder sessions are not built in this library");
}

int diana_session_options_init(diana_session_options *opts, uint32_t version)
{
	static const diana_session_options defaults = DIANA_SESSION_OPTIONS_INIT;

	if (!opts)
		return diana__error_set(DIANA_EINVAL, "options: NULL");
	if (version != DIANA_SESSION_OPTIONS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "session options version %u is not supported",
		                        (unsigned)version);
	*opts = defaults;
	return 0;
}

static void settings_dispose(diana__session_settings *st)
{
	free(st->username);
	if (st->password) {
		memset(st->password, 0, strlen(st->password));
		free(st->password);
	}
	free(st->netrc_file);
	free(st->ca_file);
	free(st->calling_aet);
	free(st->temp_dir);
	memset(st, 0, sizeof(*st));
}

static int dup_opt(char **dst, const char *src)
{
	if (!src)
		return 0;
	*dst = diana__strdup(src);
	return *dst ? 0 : DIANA_ENOMEM;
}

static int settings_init(diana__session_settings *st, const diana_session_options *o)
{
	memset(st, 0, sizeof(*st));
	st->connect_timeout_ms = 10000;
	st->retries = 3;
	st->retry_delay_ms = 200;
	if (!o)
		return 0;
	if (o->version < 1 || o->version > DIANA_SESSION_OPTIONS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "session options version %u is not supported",
		                        (unsigned)o->version);
	if (o->connect_timeout_ms < 0 || o->timeout_ms < 0 || o->retry_delay_ms < 0 || o->retries < -1)
		return diana__error_set(DIANA_EINVAL, "session options: negative timeout or retries");
	if (o->local_port < -1 || o->local_port > 65535)
		return diana__error_set(DIANA_EINVAL, "session options: local_port out of range");
	if (o->retrieve < DIANA_RETRIEVE_DEFAULT || o->retrieve > DIANA_RETRIEVE_MOVE)
		return diana__error_set(DIANA_EINVAL, "session options: unknown retrieve method %d", o->retrieve);
	if (dup_opt(&st->username, o->username) || dup_opt(&st->password, o->password) ||
	    dup_opt(&st->netrc_file, o->netrc_file) || dup_opt(&st->ca_file, o->ca_file) ||
	    dup_opt(&st->calling_aet, o->calling_aet) || dup_opt(&st->temp_dir, o->temp_dir))
		return DIANA_ENOMEM;
	st->insecure = o->insecure ? 1 : 0;
	if (o->connect_timeout_ms)
		st->connect_timeout_ms = o->connect_timeout_ms;
	st->timeout_ms = o->timeout_ms;
	if (o->retries == -1)
		st->retries = -1;
	else if (o->retries > 0)
		st->retries = o->retries;
	if (o->retry_delay_ms)
		st->retry_delay_ms = o->retry_delay_ms;
	st->local_port = o->local_port;
	st->retrieve = o->retrieve;
	return 0;
}

/* the URI as shown in logs and diana_session_uri(): credentials and secrets dropped */
static char *redact_uri(const diana__uri *u, const char *raw)
{
	diana__buf b = DIANA__BUF_INIT;
	int v6 = u->host && strchr(u->host, ':') != NULL;

	(void)raw;
	diana__buf_printf(&b, "%s://%s%s%s", u->scheme, v6 ? "[" : "", u->host ? u->host : "", v6 ? "]" : "");
	if (u->port)
		diana__buf_printf(&b, ":%d", u->port);
	diana__buf_puts(&b, u->path ? u->path : "");
	if (u->query) {
		/* keep only parameters known to carry no secret */
		const char *p = u->query;
		int first = 1;
		while (*p) {
			size_t len = strcspn(p, "&;");
			if ((len > 9 && strncmp(p, "modality=", 9) == 0) || (len > 4 && strncmp(p, "aet=", 4) == 0) ||
			    (len > 5 && strncmp(p, "port=", 5) == 0) || (len > 5 && strncmp(p, "bind=", 5) == 0)) {
				diana__buf_putc(&b, first ? '?' : '&');
				diana__buf_put(&b, p, len);
				first = 0;
			}
			p += len;
			if (*p)
				p++;
		}
	}
	if (b.oom) {
		diana__buf_dispose(&b);
		diana__error_oom();
		return NULL;
	}
	return diana__buf_detach(&b, NULL);
}

static void free_raw(char *raw)
{
	if (raw) {
		memset(raw, 0, strlen(raw)); /* it may hold a password */
		free(raw);
	}
}

static int is_scheme(const char *s, const char *a)
{
	return strcmp(s, a) == 0;
}

int diana_session_open(diana_session **out, const char *uri, const diana_session_options *opts)
{
	diana_session *s;
	diana__uri u;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "diana_session_open: NULL out");
	*out = NULL;
	if (!uri || !*uri)
		return diana__error_set(DIANA_EINVAL, "diana_session_open: empty URI");
	s = diana__calloc(1, sizeof(*s));
	if (!s)
		return DIANA_ENOMEM;
	atomic_init(&s->cancelled, 0);
	rc = settings_init(&s->set, opts);
	if (rc < 0)
		goto fail;
	s->raw_uri = diana__strdup(uri);
	if (!s->raw_uri) {
		rc = DIANA_ENOMEM;
		goto fail;
	}

	if (!strstr(uri, "://") || strncmp(uri, "file://", 7) == 0) {
		/* a plain path or file:///dir (percent escapes decoded) */
		const char *dir = uri;
		char *decoded = NULL;
		if (strncmp(uri, "file://", 7) == 0) {
			rc = diana__uri_parse(uri, &u);
			if (rc < 0)
				goto fail;
			if (u.host && *u.host && strcmp(u.host, "localhost") != 0) {
				diana__uri_dispose(&u);
				rc = diana__error_set(DIANA_EINVAL, "file URI: only local folders (file:///dir)");
				goto fail;
			}
			{
				/* decode the path */
				size_t n = strlen(u.path), i, j = 0;
				decoded = diana__malloc(n + 1);
				if (!decoded) {
					diana__uri_dispose(&u);
					rc = DIANA_ENOMEM;
					goto fail;
				}
				for (i = 0; i < n; i++) {
					if (u.path[i] == '%' && i + 2 < n && isxdigit((unsigned char)u.path[i + 1]) &&
					    isxdigit((unsigned char)u.path[i + 2])) {
						char h[3] = { u.path[i + 1], u.path[i + 2], 0 };
						decoded[j++] = (char)strtol(h, NULL, 16);
						i += 2;
					} else {
						decoded[j++] = u.path[i];
					}
				}
				decoded[j] = '\0';
			}
			diana__uri_dispose(&u);
			dir = decoded;
			if (!*dir) {
				free(decoded);
				rc = diana__error_set(DIANA_EINVAL, "file URI: no folder (file:///dir)");
				goto fail;
			}
		}
		s->kind = DIANA_SESSION_FOLDER;
		s->uri = diana__malloc(strlen(dir) + 8);
		if (!s->uri) {
			free(decoded);
			rc = DIANA_ENOMEM;
			goto fail;
		}
		snprintf(s->uri, strlen(dir) + 8, "file://%s", dir);
		rc = diana__folder_open(s, dir);
		free(decoded);
		if (rc < 0)
			goto fail;
		*out = s;
		return 0;
	}

	rc = diana__uri_parse(uri, &u);
	if (rc < 0)
		goto fail;
	if (!u.host || !*u.host) {
		diana__uri_dispose(&u);
		rc = diana__error_set(DIANA_EINVAL, "session URI: no host");
		goto fail;
	}
	s->uri = redact_uri(&u, uri);
	if (!s->uri) {
		diana__uri_dispose(&u);
		rc = DIANA_ENOMEM;
		goto fail;
	}
	if (is_scheme(u.scheme, "orthanc+http") || is_scheme(u.scheme, "orthanc+https") ||
	    is_scheme(u.scheme, "orthanc")) {
		s->kind = DIANA_SESSION_ORTHANC;
		rc = diana__orthanc_open(s, &u);
	} else if (is_scheme(u.scheme, "dicom")) {
		s->kind = DIANA_SESSION_DIMSE;
		rc = diana__dimse_session_open(s, &u);
	} else if (is_scheme(u.scheme, "dicomweb+http") || is_scheme(u.scheme, "dicomweb+https") ||
	           is_scheme(u.scheme, "dicomweb")) {
		s->kind = DIANA_SESSION_DICOMWEB;
		rc = diana__dicomweb_open(s, &u);
	} else {
		rc = diana__error_set(DIANA_EUNSUPPORTED,
		                      "session URI: unknown scheme '%.20s' (orthanc+http, orthanc+https, dicom, "
		                      "dicomweb+http, dicomweb+https, file)",
		                      u.scheme);
	}
	diana__uri_dispose(&u);
	if (rc < 0)
		goto fail;
	diana__log(DIANA_LOG_DEBUG, "session", "opened %s", s->uri);
	*out = s;
	return 0;
fail:
	if (s->ops && s->ops->free)
		s->ops->free(s);
	settings_dispose(&s->set);
	free(s->uri);
	free_raw(s->raw_uri);
	free(s);
	return rc;
}

void diana_session_free(diana_session *s)
{
	if (!s)
		return;
	if (s->ops && s->ops->free)
		s->ops->free(s);
	settings_dispose(&s->set);
	free(s->uri);
	free_raw(s->raw_uri);
	free(s);
}

int diana_session_kind(const diana_session *s)
{
	if (!s)
		return diana__error_set(DIANA_EINVAL, "diana_session_kind: NULL session");
	return s->kind;
}

const char *diana_session_uri(const diana_session *s)
{
	return s ? s->uri : NULL;
}

void diana_session_cancel(diana_session *s)
{
	if (!s)
		return;
	atomic_store(&s->cancelled, 1);
	if (s->ops && s->ops->cancel)
		s->ops->cancel(s);
}

int diana__session_cancelled(diana_session *s)
{
	if (atomic_load(&s->cancelled)) {
		diana__error_set(DIANA_ECANCELLED, "cancelled");
		return 1;
	}
	return 0;
}

/* every operation: check, run, clear the cancel flag */
#define CHECK_SESSION(s, what)                                                               \
	do {                                                                                     \
		if (!(s) || !(s)->ops)                                                               \
			return diana__error_set(DIANA_EINVAL, what ": NULL session");                      \
	} while (0)

static int finish(diana_session *s, int rc)
{
	atomic_store(&s->cancelled, 0);
	return rc;
}

int diana_session_echo(diana_session *s)
{
	CHECK_SESSION(s, "diana_session_echo");
	if (diana__session_cancelled(s))
		return finish(s, DIANA_ECANCELLED);
	return finish(s, s->ops->echo(s));
}

int diana_session_find(diana_session *s, int level, const char *const *keys, size_t nkeys,
                       diana_find_fn fn, void *user_data, size_t *count)
{
	diana__keys k;
	int rc;

	if (count)
		*count = 0;
	CHECK_SESSION(s, "diana_session_find");
	if (!fn)
		return diana__error_set(DIANA_EINVAL, "diana_session_find: NULL callback");
	if (!diana__level_name(level))
		return diana__error_set(DIANA_EINVAL, "diana_session_find: unknown level %d", level);
	rc = diana__keys_parse(keys, nkeys, &k);
	if (rc < 0)
		return rc;
	/* the level's UID (patient: PatientID) always comes back */
	rc = diana__keys_add_return(&k, diana__level_uid_tag(level));
	if (rc == 0 && diana__session_cancelled(s))
		rc = DIANA_ECANCELLED;
	if (rc == 0)
		rc = s->ops->find(s, level, &k, fn, user_data, count);
	diana__keys_dispose(&k);
	return finish(s, rc);
}

static int valid_uid(const char *u)
{
	size_t n = 0;
	if (!u || !*u)
		return 0;
	for (; *u; u++, n++) {
		if (!((*u >= '0' && *u <= '9') || *u == '.'))
			return 0;
	}
	return n <= 64;
}

static int count_one(const diana_dataset *ds, void *ud)
{
	(void)ds;
	(void)ud;
	return 0;
}

/*
 * A retrieve that delivered nothing: PACSes answer an unknown UID with
 * success and no sub-operation, or with a failure such as 0xC000. A C-FIND
 * (or the kind's find) on the same UIDs tells "not found" from a failure.
 */
static int not_found_or(diana_session *s, int rc, const char *study, const char *series, const char *sop)
{
	char msg[512];
	diana__keys k = { 0 };
	size_t count = 0;
	int level = sop ? DIANA_LEVEL_INSTANCE : series ? DIANA_LEVEL_SERIES : DIANA_LEVEL_STUDY;
	const char *what = sop ? "instance" : series ? "series" : "study";
	int frc;

	snprintf(msg, sizeof(msg), "%s", rc < 0 && diana_error_message() ? diana_error_message() : "");
	frc = diana__keys_set(&k, 0x0020000D, study);
	if (frc == 0 && series)
		frc = diana__keys_set(&k, 0x0020000E, series);
	if (frc == 0 && sop)
		frc = diana__keys_set(&k, 0x00080018, sop);
	if (frc == 0 && s->ops->find)
		frc = s->ops->find(s, level, &k, count_one, NULL, &count);
	diana__keys_dispose(&k);
	if (frc == 0 && count == 0)
		return diana__error_set(DIANA_ENOTFOUND, "retrieve: no such %s", what);
	if (rc < 0)
		return diana__error_set(rc, "%s", msg);
	return diana__error_set(DIANA_EPACS, "retrieve: the %s exists but no instance came back", what);
}

int diana_session_retrieve(diana_session *s, const char *study_uid, const char *series_uid,
                           const char *sop_uid, diana_instance_fn fn, void *user_data,
                           diana_transfer_stats *stats)
{
	diana_transfer_stats local = DIANA_TRANSFER_STATS_INIT;
	int64_t t0;
	int rc;

	CHECK_SESSION(s, "diana_session_retrieve");
	if (stats && stats->version != DIANA_TRANSFER_STATS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "transfer stats version %u is not supported",
		                        (unsigned)stats->version);
	if (!fn)
		return diana__error_set(DIANA_EINVAL, "diana_session_retrieve: NULL callback");
	if (!valid_uid(study_uid) || (series_uid && !valid_uid(series_uid)) ||
	    (sop_uid && !valid_uid(sop_uid)))
		return diana__error_set(DIANA_EINVAL, "diana_session_retrieve: UIDs must be 1-64 digits and dots");
	if (sop_uid && !series_uid)
		return diana__error_set(DIANA_EINVAL, "diana_session_retrieve: an instance needs its series UID");
	if (!s->ops->retrieve)
		return diana__error_set(DIANA_EUNSUPPORTED, "%s sessions cannot retrieve", s->ops->name);
	if (diana__session_cancelled(s))
		return finish(s, DIANA_ECANCELLED);
	t0 = diana__now_ms();
	rc = s->ops->retrieve(s, study_uid, series_uid, sop_uid, fn, user_data, &local);
	if ((rc == 0 || rc == DIANA_EPACS) && local.instances == 0)
		rc = not_found_or(s, rc, study_uid, series_uid, sop_uid);
	local.elapsed_ms = diana__now_ms() - t0;
	if (stats)
		*stats = local;
	diana__log(DIANA_LOG_DEBUG, "session", "retrieve: %llu instances, %llu bytes, %lld ms (rc %d)",
	           (unsigned long long)local.instances, (unsigned long long)local.bytes,
	           (long long)local.elapsed_ms, rc);
	return finish(s, rc);
}

int diana_session_store(diana_session *s, const char *const *paths, size_t n, diana_store_fn fn,
                        void *user_data, diana_transfer_stats *stats)
{
	diana_transfer_stats local = DIANA_TRANSFER_STATS_INIT;
	int64_t t0;
	size_t i;
	int rc;

	CHECK_SESSION(s, "diana_session_store");
	if (stats && stats->version != DIANA_TRANSFER_STATS_VERSION)
		return diana__error_set(DIANA_EUNSUPPORTED, "transfer stats version %u is not supported",
		                        (unsigned)stats->version);
	if (n && !paths)
		return diana__error_set(DIANA_EINVAL, "diana_session_store: NULL paths");
	for (i = 0; i < n; i++) {
		if (!paths[i] || !*paths[i])
			return diana__error_set(DIANA_EINVAL, "diana_session_store: path %zu is empty", i);
	}
	if (!s->ops->store)
		return diana__error_set(DIANA_EUNSUPPORTED, "%s sessions cannot store", s->ops->name);
	if (diana__session_cancelled(s))
		return finish(s, DIANA_ECANCELLED);
	t0 = diana__now_ms();
	rc = n ? s->ops->store(s, paths, n, fn, user_data, &local) : 0;
	local.elapsed_ms = diana__now_ms() - t0;
	if (stats)
		*stats = local;
	return finish(s, rc);
}

int diana_session_changes(diana_session *s, int64_t since, uint32_t limit, diana_change_fn fn,
                          void *user_data, int64_t *last, int *done)
{
	CHECK_SESSION(s, "diana_session_changes");
	if (!last)
		return diana__error_set(DIANA_EINVAL, "diana_session_changes: NULL last");
	*last = since < 0 ? 0 : since;
	if (done)
		*done = 0;
	if (since < -1)
		return diana__error_set(DIANA_EINVAL, "diana_session_changes: since must be >= -1");
	if (since >= 0 && !fn)
		return diana__error_set(DIANA_EINVAL, "diana_session_changes: NULL callback");
	if (!s->ops->changes)
		return diana__error_set(DIANA_EUNSUPPORTED, "%s sessions have no change log", s->ops->name);
	if (diana__session_cancelled(s))
		return finish(s, DIANA_ECANCELLED);
	return finish(s, s->ops->changes(s, since, limit, fn, user_data, last, done));
}

/* ------------------------------------------------------- temporary files */

int diana__temp_file(const char *dir, char **path)
{
	const char *d = dir;
	size_t n;
	char *p;
	int fd;

	*path = NULL;
	if (!d || !*d)
		d = getenv("TMPDIR");
	if (!d || !*d)
		d = "/tmp";
	n = strlen(d) + 32;
	p = diana__malloc(n);
	if (!p)
		return DIANA_ENOMEM;
	snprintf(p, n, "%s/diana-XXXXXX.part", d);
	fd = mkostemps(p, 5, O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		free(p);
		return diana__error_errno(e, "temporary file");
	}
	*path = p;
	return fd;
}

/* read the three UIDs of a file's header (no pixel data) */
static int header_uids(const char *path, char **sop, char **cls, char **ts, char **study, char **series)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	int rc;

	o.flags = DIANA_OPEN_SKIP_PIXELS | DIANA_OPEN_LENIENT;
	rc = diana_dataset_open(&ds, path, &o);
	if (rc < 0)
		return rc;
	if (sop)
		diana_dataset_get(ds, "SOPInstanceUID", sop);
	if (cls)
		diana_dataset_get(ds, "SOPClassUID", cls);
	if (ts)
		diana_dataset_get(ds, "TransferSyntaxUID", ts);
	if (study)
		diana_dataset_get(ds, "StudyInstanceUID", study);
	if (series)
		diana_dataset_get(ds, "SeriesInstanceUID", series);
	diana_dataset_free(ds);
	diana_error_clear();
	return 0;
}

int diana__deliver_temp(diana_session *s, const char *path, const char *sop_uid,
                        const char *sop_class_uid, const char *ts_uid, diana_instance_fn fn,
                        void *user_data, diana_transfer_stats *stats)
{
	diana_instance inst;
	char *sop = NULL, *cls = NULL, *ts = NULL;
	struct stat st;
	int rc;

	memset(&inst, 0, sizeof(inst));
	if (stat(path, &st) != 0) {
		rc = diana__error_errno(errno, "received instance");
		unlink(path);
		return rc;
	}
	if (!sop_uid || !*sop_uid || !sop_class_uid || !*sop_class_uid || !ts_uid || !*ts_uid) {
		rc = header_uids(path, (!sop_uid || !*sop_uid) ? &sop : NULL,
		                 (!sop_class_uid || !*sop_class_uid) ? &cls : NULL,
		                 (!ts_uid || !*ts_uid) ? &ts : NULL, NULL, NULL);
		if (rc < 0) {
			unlink(path);
			return diana__error_set(rc, "received instance is not readable DICOM: %s",
			                        diana_error_message());
		}
	}
	inst.version = DIANA_INSTANCE_VERSION;
	inst.path = path;
	inst.sop_instance_uid = sop ? sop : (sop_uid ? sop_uid : "");
	inst.sop_class_uid = cls ? cls : (sop_class_uid ? sop_class_uid : "");
	inst.transfer_syntax_uid = ts ? ts : (ts_uid ? ts_uid : "");
	inst.size = (uint64_t)st.st_size;
	inst.temporary = 1;
	stats->instances++;
	stats->bytes += inst.size;
	rc = fn(&inst, user_data);
	unlink(path); /* kept instances were renamed away: ENOENT then */
	free(sop);
	free(cls);
	free(ts);
	if (rc != 0) {
		if (rc > 0 || diana_error_code() == 0)
			return diana__error_set(DIANA_EUSER, "the instance callback stopped the retrieve");
		return rc < 0 ? rc : DIANA_EUSER;
	}
	if (diana__session_cancelled(s))
		return DIANA_ECANCELLED;
	return 0;
}

static int copy_atomic(const char *src, const char *dest)
{
	diana__atomic_file f;
	char buf[1 << 16];
	int fd, rc;

	fd = open(src, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return diana__error_errno(errno, "instance");
	rc = diana__atomic_open(&f, dest);
	if (rc < 0) {
		close(fd);
		return rc;
	}
	for (;;) {
		ssize_t r = read(fd, buf, sizeof(buf));
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = diana__error_errno(errno, "instance");
			break;
		}
		if (r == 0)
			break;
		rc = diana__atomic_write(&f, buf, (size_t)r);
		if (rc < 0)
			break;
	}
	close(fd);
	if (rc < 0) {
		diana__atomic_abort(&f);
		return rc;
	}
	return diana__atomic_commit(&f);
}

int diana_instance_keep(const diana_instance *inst, const char *dest)
{
	if (!inst || !inst->path || !dest || !*dest)
		return diana__error_set(DIANA_EINVAL, "diana_instance_keep: NULL argument");
	if (inst->temporary) {
		if (rename(inst->path, dest) == 0)
			return 0;
		if (errno != EXDEV) {
			int e = errno;
			return diana__error_errno(e, "keeping a retrieved instance");
		}
	}
	return copy_atomic(inst->path, dest);
}

/* ------------------------------------------------ retrieve into a folder */

struct to_folder {
	const char *dir;
};

static int to_folder_cb(const diana_instance *inst, void *ud)
{
	struct to_folder *tf = ud;
	char *study = NULL, *series = NULL, *sop = NULL, *path = NULL;
	size_t n;
	int rc;

	rc = header_uids(inst->path, &sop, NULL, NULL, &study, &series);
	if (rc < 0)
		return rc;
	if (!valid_uid(study) || !valid_uid(series) || !valid_uid(sop)) {
		rc = diana__error_set(DIANA_EDICOM, "retrieved instance without valid Study/Series/SOP Instance UIDs");
		goto out;
	}
	n = strlen(tf->dir) + strlen(study) + strlen(series) + strlen(sop) + 8;
	path = diana__malloc(n);
	if (!path) {
		rc = DIANA_ENOMEM;
		goto out;
	}
	snprintf(path, n, "%s/%s/%s", tf->dir, study, series);
	rc = diana__mkdir_p(path);
	if (rc == 0) {
		snprintf(path, n, "%s/%s/%s/%s.dcm", tf->dir, study, series, sop);
		rc = diana_instance_keep(inst, path);
	}
out:
	free(study);
	free(series);
	free(sop);
	free(path);
	return rc;
}

int diana_session_retrieve_to_folder(diana_session *s, const char *study_uid, const char *series_uid,
                                     const char *sop_uid, const char *dir, diana_transfer_stats *stats)
{
	struct to_folder tf;
	char *d;
	size_t n;
	int rc;

	if (!dir || !*dir)
		return diana__error_set(DIANA_EINVAL, "diana_session_retrieve_to_folder: no folder");
	d = diana__strdup(dir);
	if (!d)
		return DIANA_ENOMEM;
	n = strlen(d);
	while (n > 1 && d[n - 1] == '/')
		d[--n] = '\0';
	rc = diana__mkdir_p(d);
	if (rc < 0) {
		free(d);
		return rc;
	}
	tf.dir = d;
	rc = diana_session_retrieve(s, study_uid, series_uid, sop_uid, to_folder_cb, &tf, stats);
	free(d);
	return rc;
}

/* ------------------------------------------------------------------ HTTP */

void diana__session_http_options(const diana_session *s, const char *base_url, const diana__uri *u,
                                 struct diana__http_options *o)
{
	diana__http_options def = DIANA__HTTP_OPTIONS_INIT;

	*o = def;
	o->base_url = base_url;
	o->username = s->set.username ? s->set.username : (u ? u->user : NULL);
	o->password = s->set.password ? s->set.password : (u ? u->password : NULL);
	o->netrc_file = s->set.netrc_file;
	o->ca_file = s->set.ca_file;
	o->insecure = s->set.insecure;
	o->connect_timeout_ms = s->set.connect_timeout_ms;
	o->timeout_ms = s->set.timeout_ms;
	o->retries = s->set.retries;
	o->retry_delay_ms = s->set.retry_delay_ms;
}

/* ------------------------------------------------------- clones, caches */

int diana__session_clone(const diana_session *s, const char *temp_dir, diana_session **out)
{
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;

	*out = NULL;
	if (!s || !s->raw_uri)
		return diana__error_set(DIANA_EINVAL, "session clone: NULL session");
	o.username = s->set.username;
	o.password = s->set.password;
	o.netrc_file = s->set.netrc_file;
	o.ca_file = s->set.ca_file;
	o.insecure = s->set.insecure;
	o.connect_timeout_ms = s->set.connect_timeout_ms;
	o.timeout_ms = s->set.timeout_ms;
	o.retries = s->set.retries;
	o.retry_delay_ms = s->set.retry_delay_ms;
	o.calling_aet = s->set.calling_aet;
	o.local_port = s->set.local_port;
	o.retrieve = s->set.retrieve;
	o.temp_dir = temp_dir ? temp_dir : s->set.temp_dir;
	return diana_session_open(out, s->raw_uri, &o);
}

int diana__session_evict(diana_session *s, const char *study_uid)
{
	if (!s || !s->ops || !s->ops->evict || !study_uid)
		return 0;
	return s->ops->evict(s, study_uid);
}

int diana__session_has_cache(const diana_session *s)
{
	return s && s->ops && s->ops->evict != NULL && s->kind == DIANA_SESSION_ORTHANC &&
	       s->impl != NULL && diana__orthanc_has_modality(s);
}
