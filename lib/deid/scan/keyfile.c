/*
 * libdiana - the key file: CSV (RFC 4180, UTF-8) linking original
 * identifiers to their pseudonyms, one row per study.
 *
 * Concurrency: every change of the file happens under flock(LOCK_EX) on the
 * descriptor (other processes, and other handles of this process) and a
 * mutex (threads sharing a handle). A row is one write() on an O_APPEND
 * descriptor followed by fsync(). Before appending, the bytes other writers
 * added since we last looked are parsed (so a study is never listed twice)
 * and a torn last row (a crash in the middle of a write) is cut off.
 * Readers take no lock: they ignore a last row without its line end.
 *
 * No value of the file ever goes into an error message or a log line.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "../../core/core.h"
#include "../deid.h"
#include "keyfile.h"
#include "scanutil.h"

const char *const diana__key_columns[DIANA__KEY_NFIELDS] = {
	"OriginalPatientName",     "OriginalPatientID",      "OriginalPatientBirthDate",
	"OriginalAccessionNumber", "OriginalStudyInstanceUID", "OriginalStudyDate",
	"PseudoPatientName",       "PseudoPatientID",        "PseudoPatientBirthDate",
	"PseudoAccessionNumber",   "PseudoStudyInstanceUID", "PseudoStudyDate",
};

#define STUDY_COLUMN 4
#define MAX_FIELD (1u << 20) /* a longer field is not a key file */

/* ------------------------------------------------------------------------ */
/* CSV parser (streaming)                                                    */
/* ------------------------------------------------------------------------ */

enum { CSV_FIELD_START, CSV_UNQUOTED, CSV_QUOTED, CSV_QUOTE_IN_QUOTED, CSV_CR_AFTER_QUOTE };

/* Called for every complete record; non-zero stops the parse (returned). */
typedef int (*csv_record_fn)(char **fields, size_t n, uint64_t record_no, void *user_data);

typedef struct csv_parser {
	diana__buf field;
	char *fields[DIANA__KEY_NFIELDS + 1];
	size_t nfields;
	int state;
	int in_record;           /* bytes of an unfinished record were seen */
	int bom_checked;
	uint64_t offset;         /* absolute offset of the next byte */
	uint64_t last_complete;  /* offset just after the last complete record */
	uint64_t records;        /* complete records so far (header included) */
	csv_record_fn fn;
	void *user_data;
} csv_parser;

static void csv_init(csv_parser *p, uint64_t offset, uint64_t records, csv_record_fn fn, void *ud)
{
	memset(p, 0, sizeof *p);
	p->offset = p->last_complete = offset;
	p->records = records;
	p->bom_checked = offset > 0;
	p->fn = fn;
	p->user_data = ud;
}

static void csv_clear_fields(csv_parser *p)
{
	size_t i;
	for (i = 0; i < p->nfields; i++)
		free(p->fields[i]);
	p->nfields = 0;
}

static void csv_dispose(csv_parser *p)
{
	csv_clear_fields(p);
	diana__buf_dispose(&p->field);
}

static int csv_malformed(const csv_parser *p)
{
	return diana__error_set(DIANA_EINVAL, "key file: line %llu is not valid CSV",
	                        (unsigned long long)p->records + 1);
}

static int csv_end_field(csv_parser *p)
{
	char *f;
	size_t len;

	if (p->nfields >= DIANA__KEY_NFIELDS + 1) {
		return diana__error_set(DIANA_EINVAL, "key file: line %llu has more than %d fields",
		                        (unsigned long long)p->records + 1, DIANA__KEY_NFIELDS);
	}
	if (p->field.oom)
		return DIANA_ENOMEM;
	if (!p->field.data && diana__buf_put(&p->field, "", 0) < 0)
		return DIANA_ENOMEM;
	f = diana__buf_detach(&p->field, &len);
	if (!f)
		return DIANA_ENOMEM;
	if (!diana__utf8_valid(f, len)) {
		free(f);
		return diana__error_set(DIANA_EINVAL, "key file: line %llu is not UTF-8",
		                        (unsigned long long)p->records + 1);
	}
	p->fields[p->nfields++] = f;
	return 0;
}

static int csv_end_record(csv_parser *p)
{
	int rc = csv_end_field(p);
	if (rc)
		return rc;
	p->state = CSV_FIELD_START;
	p->in_record = 0;
	p->last_complete = p->offset + 1; /* the '\n' being consumed */
	/* a blank line is no record */
	if (!(p->nfields == 1 && p->fields[0][0] == '\0')) {
		rc = p->fn(p->fields, p->nfields, p->records, p->user_data);
		p->records++;
	}
	csv_clear_fields(p);
	return rc;
}

static int csv_feed(csv_parser *p, const char *data, size_t len)
{
	size_t i = 0;
	int rc;

	if (!p->bom_checked && p->offset == 0) {
		/* a UTF-8 byte order mark (spreadsheet programs write one) */
		if (len >= 3 && memcmp(data, "\xEF\xBB\xBF", 3) == 0) {
			i = 3;
			p->offset = 3;
		}
		p->bom_checked = 1;
	}
	for (; i < len; i++, p->offset++) {
		char c = data[i];
		switch (p->state) {
		case CSV_FIELD_START:
			p->in_record = 1;
			if (c == '"') {
				p->state = CSV_QUOTED;
				break;
			}
			p->state = CSV_UNQUOTED;
			/* fall through */
		case CSV_UNQUOTED:
			if (c == ',') {
				if ((rc = csv_end_field(p)) != 0)
					return rc;
				p->state = CSV_FIELD_START;
			} else if (c == '\n') {
				if (p->field.len && p->field.data[p->field.len - 1] == '\r')
					p->field.data[--p->field.len] = '\0';
				if ((rc = csv_end_record(p)) != 0)
					return rc;
			} else {
				if (p->field.len >= MAX_FIELD)
					return csv_malformed(p);
				if (diana__buf_putc(&p->field, c) < 0)
					return DIANA_ENOMEM;
			}
			break;
		case CSV_QUOTED:
			if (c == '"') {
				p->state = CSV_QUOTE_IN_QUOTED;
			} else {
				if (p->field.len >= MAX_FIELD)
					return csv_malformed(p);
				if (diana__buf_putc(&p->field, c) < 0)
					return DIANA_ENOMEM;
			}
			break;
		case CSV_QUOTE_IN_QUOTED:
			if (c == '"') {
				if (diana__buf_putc(&p->field, '"') < 0)
					return DIANA_ENOMEM;
				p->state = CSV_QUOTED;
			} else if (c == ',') {
				if ((rc = csv_end_field(p)) != 0)
					return rc;
				p->state = CSV_FIELD_START;
			} else if (c == '\n') {
				if ((rc = csv_end_record(p)) != 0)
					return rc;
			} else if (c == '\r') {
				p->state = CSV_CR_AFTER_QUOTE;
			} else {
				return csv_malformed(p);
			}
			break;
		case CSV_CR_AFTER_QUOTE:
			if (c != '\n')
				return csv_malformed(p);
			if ((rc = csv_end_record(p)) != 0)
				return rc;
			break;
		default:
			return csv_malformed(p);
		}
	}
	return 0;
}

/* Parse fd from `offset` to its end. *torn = an unfinished record remains. */
static int csv_parse_fd(int fd, uint64_t offset, csv_parser *p, int *torn)
{
	char buf[65536];
	int rc = 0;

	*torn = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof buf, (off_t)offset);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return diana__error_errno(errno, "cannot read key file");
		}
		if (n == 0)
			break;
		offset += (uint64_t)n;
		rc = csv_feed(p, buf, (size_t)n);
		if (rc)
			return rc;
	}
	*torn = p->in_record || p->field.len > 0 || p->nfields > 0;
	return 0;
}

/* The header line as written. */
static int header_line(diana__buf *b)
{
	int i;
	for (i = 0; i < DIANA__KEY_NFIELDS; i++) {
		if (i)
			diana__buf_putc(b, ',');
		diana__buf_puts(b, diana__key_columns[i]);
	}
	diana__buf_puts(b, "\r\n");
	return b->oom ? DIANA_ENOMEM : 0;
}

static int check_header(char **fields, size_t n)
{
	size_t i;
	if (n != DIANA__KEY_NFIELDS)
		return diana__error_set(DIANA_EINVAL, "not a key file: unexpected header line");
	for (i = 0; i < n; i++) {
		if (strcmp(fields[i], diana__key_columns[i]) != 0)
			return diana__error_set(DIANA_EINVAL, "not a key file: unexpected header line");
	}
	return 0;
}

static int check_row(char **fields, size_t n, uint64_t record_no)
{
	if (n != DIANA__KEY_NFIELDS)
		return diana__error_set(DIANA_EINVAL, "key file: line %llu has %zu fields instead of %d",
		                        (unsigned long long)record_no + 1, n, DIANA__KEY_NFIELDS);
	return 0;
}

/*
 * When a file holds no complete record: is its content (torn header) a
 * prefix of our header line? Then it may be rewritten.
 */
static int is_header_prefix(int fd, uint64_t size)
{
	diana__buf h = DIANA__BUF_INIT;
	char buf[512];
	ssize_t n;
	int ok = 0;

	if (header_line(&h) == 0 && size <= h.len && size <= sizeof buf) {
		do
			n = pread(fd, buf, (size_t)size, 0);
		while (n < 0 && errno == EINTR);
		ok = n == (ssize_t)size && memcmp(buf, h.data, (size_t)size) == 0;
	}
	diana__buf_dispose(&h);
	return ok;
}

/* ------------------------------------------------------------------------ */
/* reading                                                                   */
/* ------------------------------------------------------------------------ */

struct read_ctx {
	diana__keyfile_row_fn fn;
	void *user_data;
	int stopped;
};

static int read_record(char **fields, size_t n, uint64_t record_no, void *user_data)
{
	struct read_ctx *ctx = user_data;
	int rc;

	if (record_no == 0)
		return check_header(fields, n);
	if ((rc = check_row(fields, n, record_no)) != 0)
		return rc;
	rc = ctx->fn((const char *const *)fields, ctx->user_data);
	if (rc)
		ctx->stopped = 1;
	return rc;
}

int diana__keyfile_read(const char *path, diana__keyfile_row_fn fn, void *user_data)
{
	struct read_ctx ctx = { fn, user_data, 0 };
	csv_parser p;
	struct stat st;
	int fd, rc, torn;

	if (!path || !fn)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return diana__error_errno(errno, "cannot open key file");
	if (fstat(fd, &st) < 0) {
		rc = diana__error_errno(errno, "cannot stat key file");
		close(fd);
		return rc;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return diana__error_set(DIANA_EINVAL, "key file is not a regular file");
	}
	csv_init(&p, 0, 0, read_record, &ctx);
	rc = csv_parse_fd(fd, 0, &p, &torn);
	if (rc == 0 && p.records == 0 && torn && !is_header_prefix(fd, (uint64_t)st.st_size))
		rc = diana__error_set(DIANA_EINVAL, "not a key file: unexpected header line");
	/* a torn last row (crash during an append) is ignored */
	csv_dispose(&p);
	close(fd);
	return rc;
}

/* ------------------------------------------------------------------------ */
/* appending                                                                 */
/* ------------------------------------------------------------------------ */

struct diana__keyfile {
	pthread_mutex_t mu;
	int fd;
	dev_t dev;
	ino_t ino;
	char *path;
	uint64_t end;     /* bytes parsed so far (always after a complete record) */
	uint64_t records; /* complete records parsed (header included) */
	diana__strmap studies;
};

static int lock_fd(int fd)
{
	while (flock(fd, LOCK_EX) < 0) {
		if (errno != EINTR)
			return diana__error_errno(errno, "cannot lock key file");
	}
	return 0;
}

static void unlock_fd(int fd)
{
	(void)flock(fd, LOCK_UN);
}

static int load_record(char **fields, size_t n, uint64_t record_no, void *user_data)
{
	diana__keyfile *k = user_data;
	int rc;

	if (record_no == 0)
		return check_header(fields, n);
	if ((rc = check_row(fields, n, record_no)) != 0)
		return rc;
	if (!fields[STUDY_COLUMN][0])
		return 0; /* not ours: we never write a row without a study */
	rc = diana__strmap_put(&k->studies, fields[STUDY_COLUMN], strlen(fields[STUDY_COLUMN]), 1, NULL);
	return rc < 0 ? rc : 0;
}

static int write_all_once(int fd, const char *data, size_t len, uint64_t size_before)
{
	ssize_t n;

	do
		n = write(fd, data, len);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)len)
		return 0;
	/* never leave a partial row behind: we hold the lock, cut it off */
	{
		int err = n < 0 ? errno : ENOSPC;
		if (ftruncate(fd, (off_t)size_before) < 0) {
			/* readers and the next writer still ignore/repair the torn row */
		}
		return diana__error_errno(err, "cannot write key file");
	}
}

/*
 * Under the lock: bring k up to date with the file (rows other writers
 * added), cut off a torn last row, write the header into an empty file.
 */
static int sync_locked(diana__keyfile *k)
{
	struct stat st, pst;
	csv_parser p;
	int rc, torn;

	if (fstat(k->fd, &st) < 0)
		return diana__error_errno(errno, "cannot stat key file");
	if (stat(k->path, &pst) < 0 || pst.st_dev != k->dev || pst.st_ino != k->ino)
		return diana__error_set(DIANA_EIO, "key file was removed or replaced while open");
	if ((uint64_t)st.st_size < k->end) {
		/* shrunk behind our back: start over */
		diana__strmap_dispose(&k->studies);
		k->end = 0;
		k->records = 0;
	}
	if ((uint64_t)st.st_size == k->end && k->records > 0)
		return 0;

	csv_init(&p, k->end, k->records, load_record, k);
	rc = csv_parse_fd(k->fd, k->end, &p, &torn);
	if (rc == 0) {
		if (p.records == 0) {
			/* no header yet: empty file, or a header cut by a crash */
			if (st.st_size > 0 && !is_header_prefix(k->fd, (uint64_t)st.st_size)) {
				rc = diana__error_set(DIANA_EINVAL, "not a key file: unexpected header line");
			} else {
				diana__buf h = DIANA__BUF_INIT;
				if (st.st_size > 0 && ftruncate(k->fd, 0) < 0)
					rc = diana__error_errno(errno, "cannot repair key file");
				else if ((rc = header_line(&h)) == 0 &&
				         (rc = write_all_once(k->fd, h.data, h.len, 0)) == 0 &&
				         fsync(k->fd) < 0)
					rc = diana__error_errno(errno, "cannot flush key file");
				if (rc == 0) {
					p.last_complete = h.len;
					p.records = 1;
					torn = 0;
				}
				diana__buf_dispose(&h);
			}
		} else if (torn) {
			/* a row cut by a crash: remove it before appending after it */
			if (ftruncate(k->fd, (off_t)p.last_complete) < 0 || fsync(k->fd) < 0)
				rc = diana__error_errno(errno, "cannot repair key file");
			else
				diana__log(DIANA_LOG_WARNING, "deid", "key file: removed an incomplete last row");
		}
	}
	if (rc == 0) {
		k->end = p.last_complete;
		k->records = p.records;
	}
	csv_dispose(&p);
	return rc;
}

static int fsync_parent(const char *path)
{
	char *copy = diana__strdup(path);
	int fd, rc = 0;

	if (!copy)
		return DIANA_ENOMEM;
	fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0) {
		if (fsync(fd) < 0 && errno != EINVAL)
			rc = diana__error_errno(errno, "cannot flush key file folder");
		close(fd);
	}
	free(copy);
	return rc;
}

int diana__keyfile_open(diana__keyfile **out, const char *path)
{
	diana__keyfile *k;
	struct stat st;
	int rc, created = 0;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	*out = NULL;
	if (!path || !*path)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	k = diana__calloc(1, sizeof *k);
	if (!k)
		return DIANA_ENOMEM;
	k->fd = -1;
	k->path = diana__strdup(path);
	if (!k->path) {
		free(k);
		return DIANA_ENOMEM;
	}
	pthread_mutex_init(&k->mu, NULL);

	for (;;) {
		k->fd = open(path, O_RDWR | O_APPEND | O_CLOEXEC);
		if (k->fd >= 0 || errno != ENOENT)
			break;
		/* create it; O_EXCL: if another process wins the race, open theirs */
		k->fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
		if (k->fd >= 0) {
			created = 1;
			break;
		}
		if (errno != EEXIST)
			break;
	}
	if (k->fd < 0) {
		rc = errno == EISDIR ? diana__error_set(DIANA_EINVAL, "key file is not a regular file")
		                     : diana__error_errno(errno, "cannot open key file");
		goto fail;
	}
	if (fstat(k->fd, &st) < 0) {
		rc = diana__error_errno(errno, "cannot stat key file");
		goto fail;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = diana__error_set(DIANA_EINVAL, "key file is not a regular file");
		goto fail;
	}
	if (st.st_mode & 077)
		diana__log(DIANA_LOG_WARNING, "deid", "key file is accessible by group or others (mode %03o)",
		           (unsigned)(st.st_mode & 0777));
	k->dev = st.st_dev;
	k->ino = st.st_ino;
	{
		/* later checks that the file is still there must not depend on the cwd */
		char *abs = realpath(path, NULL);
		if (abs) {
			free(k->path);
			k->path = abs;
		}
	}
	if (created && (rc = fsync_parent(path)) != 0)
		goto fail;

	if ((rc = lock_fd(k->fd)) != 0)
		goto fail;
	rc = sync_locked(k);
	unlock_fd(k->fd);
	if (rc)
		goto fail;
	*out = k;
	return 0;
fail:
	diana__keyfile_close(k);
	return rc;
}

static void put_field(diana__buf *b, const char *s)
{
	size_t len = strlen(s);
	int quote = len > 0 && (s[0] == ' ' || s[len - 1] == ' ');
	const char *p;

	if (!quote && strpbrk(s, ",\"\r\n"))
		quote = 1;
	if (!quote) {
		diana__buf_put(b, s, len);
		return;
	}
	diana__buf_putc(b, '"');
	for (p = s; *p; p++) {
		if (*p == '"')
			diana__buf_putc(b, '"');
		diana__buf_putc(b, *p);
	}
	diana__buf_putc(b, '"');
}

int diana__keyfile_append(diana__keyfile *k, const char *const *fields)
{
	diana__buf row = DIANA__BUF_INIT;
	const char *study;
	int i, rc;

	if (!k || !fields)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	study = fields[STUDY_COLUMN];
	if (!study || !*study)
		return diana__error_set(DIANA_EINVAL, "key row without OriginalStudyInstanceUID");
	for (i = 0; i < DIANA__KEY_NFIELDS; i++) {
		const char *f = fields[i] ? fields[i] : "";
		if (!diana__utf8_valid(f, strlen(f)))
			return diana__error_set(DIANA_EINVAL, "key row field %s is not UTF-8",
			                        diana__key_columns[i]);
		if (i)
			diana__buf_putc(&row, ',');
		put_field(&row, f);
	}
	diana__buf_puts(&row, "\r\n");
	if (row.oom) {
		diana__buf_dispose(&row);
		return DIANA_ENOMEM;
	}

	pthread_mutex_lock(&k->mu);
	if (diana__strmap_get(&k->studies, study, strlen(study))) {
		rc = 0; /* listed already (by us or found at open) */
		goto out;
	}
	if ((rc = lock_fd(k->fd)) != 0)
		goto out;
	rc = sync_locked(k);
	if (rc == 0 && diana__strmap_get(&k->studies, study, strlen(study)))
		rc = 0; /* another writer listed it meanwhile */
	else if (rc == 0 && (rc = write_all_once(k->fd, row.data, row.len, k->end)) == 0) {
		if (fsync(k->fd) < 0) {
			rc = diana__error_errno(errno, "cannot flush key file");
		} else {
			k->end += row.len;
			k->records++;
			rc = diana__strmap_put(&k->studies, study, strlen(study), 1, NULL);
			if (rc >= 0)
				rc = 1;
		}
	}
	unlock_fd(k->fd);
out:
	pthread_mutex_unlock(&k->mu);
	diana__buf_dispose(&row);
	return rc;
}

void diana__keyfile_close(diana__keyfile *k)
{
	if (!k)
		return;
	if (k->fd >= 0)
		close(k->fd);
	pthread_mutex_destroy(&k->mu);
	diana__strmap_dispose(&k->studies);
	free(k->path);
	free(k);
}

/* ------------------------------------------------------------------------ */
/* diana_key_lookup                                                          */
/* ------------------------------------------------------------------------ */

struct lookup_ctx {
	int column;
	const char *value;
	char *json;
	int err;
};

static int lookup_row(const char *const *fields, void *user_data)
{
	struct lookup_ctx *ctx = user_data;
	cJSON *obj;
	char *text;
	int i;

	if (strcmp(fields[ctx->column], ctx->value) != 0)
		return 0;
	obj = cJSON_CreateObject();
	if (!obj)
		goto oom;
	for (i = 0; i < DIANA__KEY_NFIELDS; i++) {
		if (!cJSON_AddStringToObject(obj, diana__key_columns[i], fields[i])) {
			cJSON_Delete(obj);
			goto oom;
		}
	}
	text = cJSON_PrintUnformatted(obj);
	cJSON_Delete(obj);
	if (!text)
		goto oom;
	ctx->json = diana__strdup(text);
	cJSON_free(text);
	if (!ctx->json)
		goto oom;
	return 1;
oom:
	ctx->err = diana__error_oom();
	return ctx->err;
}

DIANA_API int diana_key_lookup(const char *key_file, const char *column, const char *value,
                               char **row_json)
{
	struct lookup_ctx ctx = { -1, value, NULL, 0 };
	int i, rc;

	if (row_json)
		*row_json = NULL;
	if (!key_file || !column || !value || !row_json)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	for (i = 0; i < DIANA__KEY_NFIELDS; i++) {
		if (strcmp(column, diana__key_columns[i]) == 0)
			ctx.column = i;
	}
	if (ctx.column < 0)
		return diana__error_set(DIANA_EINVAL, "unknown key file column");
	rc = diana__keyfile_read(key_file, lookup_row, &ctx);
	if (rc < 0)
		return rc;
	if (!ctx.json)
		return diana__error_set(DIANA_ENOTFOUND, "no key file row has this %s",
		                        diana__key_columns[ctx.column]);
	*row_json = ctx.json;
	return 0;
}
