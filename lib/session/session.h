/*
 * libdiana - internal interface of lib/session: the kinds of session behind
 * one vtable, and what they share (URI parsing, query keys, temporary
 * files). Not installed; `diana__` names may change at any time.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_SESSION_PRIV_H
#define DIANA_SESSION_PRIV_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <diana/session.h>

#include "../core/core.h"

/* ------------------------------------------------------------------ URIs */

/** A parsed URI; every string malloc'd (percent-decoded where it says so), or NULL. */
typedef struct diana__uri {
	char *scheme;   /* lower case: "orthanc+http", "dicom", "file", ... */
	char *user;     /* percent-decoded */
	char *password; /* percent-decoded; never logged */
	char *host;     /* without brackets for IPv6 literals */
	int port;       /* 0 when absent */
	char *path;     /* as written (not decoded), "" when absent */
	char *query;    /* after '?', without '#fragment', or NULL */
} diana__uri;

/** Parse "scheme://[user[:pass]@]host[:port][/path][?query]". DIANA_EINVAL with one line. */
int diana__uri_parse(const char *text, diana__uri *out);
void diana__uri_dispose(diana__uri *u);
/**
 * The value of query parameter `name` (percent-decoded, malloc'd) into
 * *out; 0 found, DIANA_ENOTFOUND absent, DIANA_ENOMEM.
 */
int diana__uri_param(const diana__uri *u, const char *name, char **out);
/**
 * Check that every query parameter is one of `known` (NULL-terminated):
 * DIANA_EINVAL naming the first unknown one, so that typos do not pass.
 */
int diana__uri_check_params(const diana__uri *u, const char *const *known);
/** Percent-encode for a URL path segment or query value (RFC 3986 unreserved kept). */
char *diana__url_escape(const char *s);

/* ------------------------------------------------------------ query keys */

/** One parsed query key: "Name=Value" or "Name". */
typedef struct diana__key {
	uint32_t tag;
	char vr[3];         /* from the dictionary; "UN" for unknown/private */
	const char *keyword; /* dictionary keyword, "" for private/unknown (static storage) */
	char *value;        /* UTF-8, "" for a return key */
} diana__key;

typedef struct diana__keys {
	diana__key *v;
	size_t n;
} diana__keys;

/**
 * Parse `n` "Name=Value" strings (diana_session_find()) into keys: DIANA_EINVAL
 * naming the bad key (never its value). Duplicate names: the last wins.
 */
int diana__keys_parse(const char *const *keys, size_t n, diana__keys *out);
void diana__keys_dispose(diana__keys *k);
/** The key for `tag`, or NULL. */
const diana__key *diana__keys_get(const diana__keys *k, uint32_t tag);
/** Add a return key (no-op when present). */
int diana__keys_add_return(diana__keys *k, uint32_t tag);
/** Add or replace a matching key. */
int diana__keys_set(diana__keys *k, uint32_t tag, const char *value);

/**
 * Build a dataset from the keys (DICOM JSON with the dictionary VRs; a
 * value with '\' is several values; numbers for IS/DS/US... when they
 * parse, else DIANA_EINVAL). Used for DIMSE identifiers and for answers.
 */
int diana__keys_to_dataset(const diana__keys *k, diana_dataset **out);

/**
 * Build an answer dataset from a JSON object mapping tags ("0010,0010" or
 * "00100010") or keywords to strings (Orthanc's "short"/"simplify" forms;
 * arrays of objects are sequences). Unknown keywords are skipped.
 */
struct cJSON;
int diana__answer_from_tag_strings(const struct cJSON *obj, diana_dataset **out);

/** DICOM matching of one value against a key value (wildcards, ranges, UID lists). */
int diana__key_matches(const diana__key *key, const char *value);

/** "STUDY", "SERIES"... for a level (Query/Retrieve Level), NULL if invalid. */
const char *diana__level_name(int level);
/** The UID tag of a level: 0020000D, 0020000E, 00080018; patient: 00100020. */
uint32_t diana__level_uid_tag(int level);

/* ------------------------------------------------------- temporary files */

/**
 * Create a temporary file (mode 0600) in `dir` (NULL: $TMPDIR or /tmp),
 * named diana-XXXXXX.part; *path is malloc'd. Returns an fd or a negative code.
 */
int diana__temp_file(const char *dir, char **path);

/* --------------------------------------------------------------- vtable */

typedef struct diana__session_ops {
	const char *name; /* "orthanc", "dicom", "dicomweb", "folder" */
	int (*echo)(diana_session *s);
	int (*find)(diana_session *s, int level, const diana__keys *keys, diana_find_fn fn,
	            void *user_data, size_t *count);
	/* stats: always non-NULL here, zeroed by the caller; elapsed_ms set by the caller */
	int (*retrieve)(diana_session *s, const char *study_uid, const char *series_uid,
	                const char *sop_uid, diana_instance_fn fn, void *user_data,
	                diana_transfer_stats *stats);
	int (*store)(diana_session *s, const char *const *paths, size_t n, diana_store_fn fn,
	             void *user_data, diana_transfer_stats *stats);
	int (*changes)(diana_session *s, int64_t since, uint32_t limit, diana_change_fn fn,
	               void *user_data, int64_t *last, int *done);
	/* extra cancel work (e.g. DIMSE C-CANCEL); the flag is already set; may be NULL */
	void (*cancel)(diana_session *s);
	void (*free)(diana_session *s);
	/* drop a study from a cache (Orthanc helper with a modality); NULL: nothing to do */
	int (*evict)(diana_session *s, const char *study_uid);
} diana__session_ops;

/** Options with defaults applied and strings owned by the session. */
typedef struct diana__session_settings {
	char *username, *password, *netrc_file, *ca_file, *calling_aet, *temp_dir;
	int insecure;
	int64_t connect_timeout_ms, timeout_ms, retry_delay_ms;
	int retries;      /* already mapped: -1 none, else count */
	int local_port;   /* 0 none, -1 any */
	int retrieve;
} diana__session_settings;

struct diana_session {
	const diana__session_ops *ops;
	int kind;
	char *uri;          /* without credentials */
	char *raw_uri;      /* as given (credentials included: never logged), for clones */
	diana__session_settings set;
	atomic_int cancelled;
	void *impl;         /* the kind's own state */
};

/**
 * A new session like `s` (same URI and settings; a folder is indexed
 * again), with `temp_dir` instead of s's when not NULL. For one session
 * per worker thread.
 */
int diana__session_clone(const diana_session *s, const char *temp_dir, diana_session **out);

/**
 * Drop a study from the session's cache once it is safely stored elsewhere:
 * an Orthanc reached with ?modality= deletes its copy. 0 when there is
 * nothing to drop (other kinds, or the study is not there).
 */
int diana__session_evict(diana_session *s, const char *study_uid);

/** True when the session reaches a remote PACS through a cache that evict() empties. */
int diana__session_has_cache(const diana_session *s);

/** True when cancellation was asked (sets DIANA_ECANCELLED when so). */
int diana__session_cancelled(diana_session *s);

/** Open functions of each kind: fill s->ops, s->impl. `u` is parsed already. */
int diana__orthanc_open(diana_session *s, const diana__uri *u);
/**
 * The Study Instance UID of an Orthanc resource ("Study", "Series",
 * "Instance" and its Orthanc ID, as in a change): for change feeds.
 */
int diana__orthanc_study_uid(diana_session *s, const char *resource_type, const char *id, char uid[65]);
/** Study and Series Instance UIDs and Modality of an Orthanc series (by its Orthanc ID). */
int diana__orthanc_series_info(diana_session *s, const char *id, char study_uid[65], char series_uid[65],
                               char modality[17]);
/** True when an Orthanc session reaches a PACS through ?modality=. */
int diana__orthanc_has_modality(const diana_session *s);
int diana__dimse_session_open(diana_session *s, const diana__uri *u);
int diana__dicomweb_open(diana_session *s, const diana__uri *u);
int diana__folder_open(diana_session *s, const char *dir);

/**
 * Common HTTP options for the session's settings and a base URL (used by
 * orthanc and dicomweb). `http_opts` is a diana__http_options (lib/net/net.h).
 */
struct diana__http_options;
void diana__session_http_options(const diana_session *s, const char *base_url,
                                 const diana__uri *u, struct diana__http_options *http_opts);

/**
 * Hand one received file to the user's callback as a temporary instance
 * and remove it afterwards unless kept; fills the UIDs from the file
 * header when the caller does not know them. Updates stats.
 */
int diana__deliver_temp(diana_session *s, const char *path, const char *sop_uid,
                        const char *sop_class_uid, const char *ts_uid, diana_instance_fn fn,
                        void *user_data, diana_transfer_stats *stats);

#endif /* DIANA_SESSION_PRIV_H */
