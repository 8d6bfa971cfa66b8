/*
 * libdiana - the journal of retrieval jobs, behind an internal interface so
 * that the same job can later run as N workers on several machines sharing
 * a database (the scale-out path): today one implementation, an
 * append-only JSON-lines file in the output folder.
 *
 * Entries name work items and studies by keyed hashes (HMAC under the
 * project secret when de-identifying, SHA-256 otherwise): the journal holds
 * no patient data. Only "done" is final: failed or interrupted work is
 * simply absent and done again by the next run.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_JOB_JOURNAL_H
#define DIANA_JOB_JOURNAL_H

#include <stdint.h>

typedef struct diana__journal diana__journal;

typedef struct diana__journal_ops {
	/* 1 when `id` was recorded done, else 0 */
	int (*is_done)(diana__journal *j, const char *id);
	/* record `id` as done, durably (returns when on disk); `extra_json`: an
	   object's members without braces (no patient data), or NULL */
	int (*done)(diana__journal *j, const char *id, const char *extra_json);
	void (*free)(diana__journal *j);
} diana__journal_ops;

struct diana__journal {
	const diana__journal_ops *ops;
};

/**
 * Open (create) the file journal `dir`/journal.jsonl (mode 0600). Entries of
 * earlier runs are loaded; a torn last line (a crash during a write) is cut
 * off. Thread-safe.
 */
int diana__journal_open_file(diana__journal **out, const char *dir);

static inline int diana__journal_is_done(diana__journal *j, const char *id)
{
	return j->ops->is_done(j, id);
}

static inline int diana__journal_done(diana__journal *j, const char *id, const char *extra_json)
{
	return j->ops->done(j, id, extra_json);
}

static inline void diana__journal_free(diana__journal *j)
{
	if (j)
		j->ops->free(j);
}

#endif /* DIANA_JOB_JOURNAL_H */
