/*
 * libdiana - file helpers: bounded reads, secret files, atomic creation.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <dirent.h>
#include <openssl/crypto.h>

#include "core.h"

int diana__file_read(const char *path, uint64_t max_size, uint8_t **out, size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap, n = 0;
	int fd, rc;

	*out = NULL;
	*len = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return diana__error_errno(errno, "cannot open file");
	if (fstat(fd, &st) < 0) {
		rc = diana__error_errno(errno, "cannot stat file");
		goto fail;
	}
	if (S_ISDIR(st.st_mode)) {
		rc = diana__error_set(DIANA_EIO, "is a directory");
		goto fail;
	}
	if (max_size && (uint64_t)st.st_size > max_size) {
		rc = diana__error_set(DIANA_EINVAL, "file larger than the limit of %llu bytes",
		                      (unsigned long long)max_size);
		goto fail;
	}
	cap = st.st_size > 0 ? (size_t)st.st_size : 65536;
	buf = diana__malloc(cap + 1);
	if (!buf) {
		rc = DIANA_ENOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t r;
		if (n == cap) {
			uint8_t *p;
			if (max_size && n >= max_size) {
				/* exactly max_size bytes is fine: look for the end of file */
				char probe;
				ssize_t got;
				do
					got = read(fd, &probe, 1);
				while (got < 0 && errno == EINTR);
				if (got == 0)
					break;
				if (got < 0) {
					rc = diana__error_errno(errno, "cannot read file");
					goto fail;
				}
				rc = diana__error_set(DIANA_EINVAL, "file larger than the limit of %llu bytes",
				                      (unsigned long long)max_size);
				goto fail;
			}
			p = realloc(buf, cap * 2 + 1);
			if (!p) {
				rc = diana__error_oom();
				goto fail;
			}
			buf = p;
			cap *= 2;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			rc = diana__error_errno(errno, "cannot read file");
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
fail:
	free(buf);
	close(fd);
	return rc;
}

/*
 * Secret and token files. One reader for the project secret (lib/deid), the
 * pipeline's secret files and the HEC token file (lib/dose). The descriptor
 * is checked, not the path (no stat/open race); every copy of the bytes is
 * cleansed before it is freed; no message carries the content.
 */

/* "<what>: " in front of a message, or nothing */
#define SECRET_PFX(what) ((what) ? (what) : ""), ((what) ? ": " : "")

static int secret_errno(int errnum, const char *what, const char *doing)
{
	char msg[256];

	snprintf(msg, sizeof msg, "%s%s%s", SECRET_PFX(what), doing);
	return diana__error_errno(errnum, msg);
}

static int secret_too_large(const char *what, size_t max)
{
	if (max >= (1u << 20) && max % (1u << 20) == 0)
		return diana__error_set(DIANA_EINVAL, "%s%slarger than %zu MiB", SECRET_PFX(what), max >> 20);
	if (max >= 1024 && max % 1024 == 0)
		return diana__error_set(DIANA_EINVAL, "%s%slarger than %zu KiB", SECRET_PFX(what), max >> 10);
	return diana__error_set(DIANA_EINVAL, "%s%slarger than %zu bytes", SECRET_PFX(what), max);
}

static void secret_dispose(uint8_t *buf, size_t size)
{
	if (buf) {
		OPENSSL_cleanse(buf, size);
		free(buf);
	}
}

/* strict: the file must be regular and closed to group and others */
static int secret_read(const char *path, const char *what, size_t max, int strict, uint8_t **out,
                       size_t *len)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t cap = 0, n = 0;
	int fd, rc;

	*out = NULL;
	*len = 0;
	/* O_NONBLOCK: a FIFO named as a private secret is refused, not waited on */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | (strict ? O_NONBLOCK : 0));
	if (fd < 0)
		return secret_errno(errno, what, "cannot open");
	if (fstat(fd, &st) < 0) {
		rc = secret_errno(errno, what, "cannot stat");
		goto fail;
	}
	if (!strict && S_ISDIR(st.st_mode)) {
		rc = diana__error_set(DIANA_EIO, "%s%sis a directory", SECRET_PFX(what));
		goto fail;
	}
	if (strict && !S_ISREG(st.st_mode)) {
		rc = diana__error_set(DIANA_EINVAL, "%s%snot a regular file", SECRET_PFX(what));
		goto fail;
	}
	if (strict && (st.st_mode & (S_IRWXG | S_IRWXO))) {
		rc = diana__error_set(DIANA_EAUTH, "%s%saccessible by group or others (mode %03o): chmod 600 it",
		                      SECRET_PFX(what), (unsigned)(st.st_mode & 0777));
		goto fail;
	}
	if (st.st_size < 0 || (uint64_t)st.st_size > max) {
		rc = secret_too_large(what, max);
		goto fail;
	}
	/* the size is a first guess: read to the end (pipes have none), bounded by max */
	cap = st.st_size > 0 ? (size_t)st.st_size : (max < 4096 ? max : 4096);
	buf = diana__malloc(cap + 1);
	if (!buf) {
		rc = DIANA_ENOMEM;
		goto fail;
	}
	for (;;) {
		ssize_t r;

		if (n == cap) {
			uint8_t *bigger;
			size_t ncap;

			if (n >= max) {
				/* exactly max bytes is fine: look for the end of the file */
				uint8_t probe = 0;
				do
					r = read(fd, &probe, 1);
				while (r < 0 && errno == EINTR);
				OPENSSL_cleanse(&probe, 1);
				if (r == 0)
					break;
				rc = r < 0 ? secret_errno(errno, what, "cannot read") : secret_too_large(what, max);
				goto fail;
			}
			ncap = cap > max / 2 ? max : cap * 2;
			bigger = diana__malloc(ncap + 1);
			if (!bigger) {
				rc = DIANA_ENOMEM;
				goto fail;
			}
			memcpy(bigger, buf, n);
			secret_dispose(buf, cap + 1);
			buf = bigger;
			cap = ncap;
		}
		r = read(fd, buf + n, cap - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			rc = secret_errno(errno, what, "cannot read");
			goto fail;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	/* exactly one line end (LF or CR LF), so that echo and editors change nothing */
	if (n && buf[n - 1] == '\n') {
		n--;
		if (n && buf[n - 1] == '\r')
			n--;
	}
	buf[n] = 0;
	*out = buf;
	*len = n;
	return 0;
fail:
	secret_dispose(buf, buf ? cap + 1 : 0);
	close(fd);
	return rc;
}

#undef SECRET_PFX

int diana__secret_file_read(const char *path, const char *what, size_t max, uint8_t **out, size_t *len)
{
	return secret_read(path, what, max, 1, out, len);
}

int diana__secret_file_read_any(const char *path, const char *what, size_t max, uint8_t **out, size_t *len)
{
	return secret_read(path, what, max, 0, out, len);
}

static char *dir_of(const char *path)
{
	char *copy = diana__strdup(path), *d, *res;
	if (!copy)
		return NULL;
	d = dirname(copy);
	res = diana__strdup(d);
	free(copy);
	return res;
}

int diana__atomic_open(diana__atomic_file *f, const char *path)
{
	char *copy, *base, *dir;
	size_t n;
	int fd;

	f->fd = -1;
	f->path = f->tmp_path = NULL;
	copy = diana__strdup(path);
	dir = dir_of(path);
	if (!copy || !dir) {
		free(copy);
		free(dir);
		return DIANA_ENOMEM;
	}
	base = basename(copy);
	n = strlen(dir) + strlen(base) + 32;
	f->tmp_path = diana__malloc(n);
	f->path = diana__strdup(path);
	if (!f->tmp_path || !f->path) {
		free(copy);
		free(dir);
		free(f->tmp_path);
		free(f->path);
		f->tmp_path = f->path = NULL;
		return DIANA_ENOMEM;
	}
	snprintf(f->tmp_path, n, "%s/.%s.tmp-XXXXXX", dir, base);
	free(copy);
	free(dir);
	fd = mkostemp(f->tmp_path, O_CLOEXEC);
	if (fd < 0) {
		int rc = diana__error_errno(errno, "cannot create temporary file");
		free(f->tmp_path);
		free(f->path);
		f->tmp_path = f->path = NULL;
		return rc;
	}
	f->fd = fd;
	return 0;
}

int diana__atomic_write(diana__atomic_file *f, const void *data, size_t len)
{
	const char *p = data;

	while (len) {
		ssize_t w = write(f->fd, p, len);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			return diana__error_errno(errno, "cannot write file");
		}
		p += w;
		len -= (size_t)w;
	}
	return 0;
}

void diana__atomic_abort(diana__atomic_file *f)
{
	if (f->fd >= 0)
		close(f->fd);
	if (f->tmp_path)
		unlink(f->tmp_path);
	free(f->tmp_path);
	free(f->path);
	f->fd = -1;
	f->tmp_path = f->path = NULL;
}

int diana__atomic_commit(diana__atomic_file *f)
{
	char *dir;
	int rc, dfd;

	if (fsync(f->fd) < 0) {
		rc = diana__error_errno(errno, "cannot flush file");
		diana__atomic_abort(f);
		return rc;
	}
	if (close(f->fd) < 0) {
		f->fd = -1;
		rc = diana__error_errno(errno, "cannot close file");
		diana__atomic_abort(f);
		return rc;
	}
	f->fd = -1;
	if (rename(f->tmp_path, f->path) < 0) {
		rc = diana__error_errno(errno, "cannot rename file into place");
		diana__atomic_abort(f);
		return rc;
	}
	dir = dir_of(f->path);
	if (dir) {
		dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (dfd >= 0) {
			fsync(dfd);
			close(dfd);
		}
		free(dir);
	}
	free(f->tmp_path);
	free(f->path);
	f->tmp_path = f->path = NULL;
	return 0;
}

int diana__write_file_atomic(const char *path, const void *data, size_t len)
{
	diana__atomic_file f;
	int rc = diana__atomic_open(&f, path);
	if (rc)
		return rc;
	rc = diana__atomic_write(&f, data, len);
	if (rc) {
		diana__atomic_abort(&f);
		return rc;
	}
	return diana__atomic_commit(&f);
}

int diana__mkdir_p(const char *path)
{
	char buf[4096], *p;
	size_t n = path ? strlen(path) : 0;

	if (n == 0 || n >= sizeof(buf))
		return diana__error_set(DIANA_EINVAL, "folder path empty or too long");
	memcpy(buf, path, n + 1);
	for (p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, 0700) != 0 && errno != EEXIST)
			return diana__error_errno(errno, "creating a folder");
		*p = '/';
	}
	if (mkdir(buf, 0700) != 0 && errno != EEXIST)
		return diana__error_errno(errno, "creating a folder");
	return 0;
}

static void rm_contents(const char *dir, int depth)
{
	DIR *d;
	struct dirent *e;

	if (depth > 8 || !(d = opendir(dir)))
		return;
	while ((e = readdir(d)) != NULL) {
		char p[4096];
		struct stat sb;
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		if ((size_t)snprintf(p, sizeof(p), "%s/%s", dir, e->d_name) >= sizeof(p) || lstat(p, &sb) != 0)
			continue;
		if (S_ISDIR(sb.st_mode)) {
			rm_contents(p, depth + 1);
			rmdir(p);
		} else {
			unlink(p);
		}
	}
	closedir(d);
}

void diana__rm_tree_contents(const char *dir)
{
	rm_contents(dir, 0);
}
