/*
 * libdiana - file helpers: bounded reads, atomic creation.
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
