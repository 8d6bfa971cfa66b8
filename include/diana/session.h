/*
 * libdiana - sessions: one handle for an Orthanc server (REST), a PACS over
 * DIMSE, a DICOMweb server or a folder of DICOM files. Echo, find,
 * retrieve, store, changes. See doc/session.md.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_SESSION_H
#define DIANA_SESSION_H

#include <diana/common.h>
#include <diana/dataset.h>

DIANA_BEGIN_DECL

/**
 * A session: where images live, opened from a URI. Opaque.
 *
 * Thread safety: a session may move between threads but must not be used
 * by two threads at once, except diana_session_cancel() (any thread, any
 * time). Callbacks run on the calling thread. Sessions are independent:
 * several threads may each use their own (one per worker).
 */
typedef struct diana_session diana_session;

/** Kinds of session (diana_session_kind()). */
typedef enum diana_session_kind_t {
	DIANA_SESSION_ORTHANC = 1,  /**< orthanc+http(s)://: an Orthanc server's REST API */
	DIANA_SESSION_DIMSE = 2,    /**< dicom://: a PACS over DIMSE (C-ECHO/FIND/GET/MOVE/STORE) */
	DIANA_SESSION_DICOMWEB = 3, /**< dicomweb+http(s)://: QIDO-RS, WADO-RS, STOW-RS */
	DIANA_SESSION_FOLDER = 4    /**< file:// or a plain path: a folder of DICOM files */
} diana_session_kind_t;

/** Query/retrieve levels. */
typedef enum diana_level_t {
	DIANA_LEVEL_PATIENT = 0,
	DIANA_LEVEL_STUDY = 1,
	DIANA_LEVEL_SERIES = 2,
	DIANA_LEVEL_INSTANCE = 3
} diana_level_t;

/** How a dicom:// session retrieves (diana_session_options.retrieve). */
typedef enum diana_retrieve_method_t {
	DIANA_RETRIEVE_DEFAULT = 0, /**< C-GET, or C-MOVE when the URI or options name a local port */
	DIANA_RETRIEVE_GET = 1,     /**< C-GET: no inbound port needed */
	DIANA_RETRIEVE_MOVE = 2     /**< C-MOVE to the session's own storage SCP (needs local_port) */
} diana_retrieve_method_t;

#define DIANA_SESSION_OPTIONS_VERSION 1

/**
 * Options of diana_session_open(); every field may stay 0/NULL. Values set
 * here win over the same settings in the URI. Initialise with
 * DIANA_SESSION_OPTIONS_INIT or diana_session_options_init().
 */
typedef struct diana_session_options {
	uint32_t version;           /**< DIANA_SESSION_OPTIONS_VERSION */
	const char *username;       /**< HTTP basic auth user (else the URI's, else netrc_file) */
	const char *password;       /**< HTTP basic auth password; never logged */
	const char *netrc_file;     /**< a .netrc file with credentials for the host */
	const char *ca_file;        /**< CA bundle for TLS verification (default: the system's) */
	int insecure;               /**< 1: do not verify TLS peers (default 0: verify) */
	int64_t connect_timeout_ms; /**< TCP/TLS connect (DIMSE: also A-ASSOCIATE); 0: 10000 */
	int64_t timeout_ms;         /**< HTTP: whole request, 0: none (aborted after 60 s without a
	                                 byte); DIMSE: longest silence of the peer, 0: 60000 */
	int retries;                /**< HTTP retries on connection errors and 5xx (never 4xx):
	                                 0: 3, -1: none */
	int64_t retry_delay_ms;     /**< first backoff delay, doubled each retry; 0: 200 */
	const char *calling_aet;    /**< dicom://: our AE title (else ?aet=, else "DIANA") */
	int local_port;             /**< dicom://: port of our storage SCP for C-MOVE (else &port=);
	                                 -1: any free port */
	int retrieve;               /**< dicom://: a diana_retrieve_method_t */
	const char *temp_dir;       /**< where retrieved instances land before the callback sees
	                                 them; default $TMPDIR or /tmp. Same file system as the
	                                 final folder makes diana_instance_keep() a rename */
} diana_session_options;

#define DIANA_SESSION_OPTIONS_INIT \
	{ DIANA_SESSION_OPTIONS_VERSION, NULL, NULL, NULL, NULL, 0, 0, 0, 0, 0, NULL, 0, 0, NULL }

/**
 * Initialise `opts` to defaults for `version` (normally
 * DIANA_SESSION_OPTIONS_VERSION). DIANA_EUNSUPPORTED for an unknown version.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_session_options_init(diana_session_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Open a session (`opts` may be NULL). URIs:
 *
 * - `orthanc+http(s)://[user:pass@]host:port[/path][?modality=NAME]`: an
 *   Orthanc server. Without `modality`, its own store. With it, the remote
 *   PACS that Orthanc knows as NAME, reached through Orthanc: find is
 *   C-FIND through /modalities/NAME/query; retrieve is C-MOVE of the study
 *   into that Orthanc, then each instance fetched over keep-alive HTTP.
 * - `dicom://CALLED_AET@host:port?aet=CALLING_AET[&port=LOCAL_PORT]`: a PACS
 *   over DIMSE (DCMTK). Retrieve by C-GET, or by C-MOVE to a built-in
 *   storage SCP on LOCAL_PORT (bound on 127.0.0.1 unless &bind=ADDR).
 * - `dicomweb+http(s)://[user:pass@]host:port/path`: a DICOMweb server
 *   (QIDO-RS, WADO-RS, STOW-RS) at that base URL (e.g. ".../dicom-web").
 * - `file:///dir` or a plain path: a folder of DICOM files, indexed on
 *   open (headers only), usable as a source and as a destination.
 *
 * User names and passwords in URIs are percent-decoded; they never appear
 * in logs, errors or diana_session_uri(). Nothing is sent over the network
 * before the first operation.
 * Errors: DIANA_EINVAL (malformed URI or options, one line naming the
 * problem), DIANA_EUNSUPPORTED (scheme or options version), DIANA_ENOTFOUND
 * (folder missing), DIANA_EIO (dicom: the local port cannot be bound),
 * DIANA_ENOMEM. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_session_open(diana_session **out, const char *uri,
                                 const diana_session_options *opts) DIANA_NOEXCEPT;

/**
 * Close a session: releases associations and connections, stops a storage
 * SCP. NULL is a no-op. Since: 0.1
 */
DIANA_API void diana_session_free(diana_session *session) DIANA_NOEXCEPT;

/** The session's kind (diana_session_kind_t), or DIANA_EINVAL. Since: 0.1 */
DIANA_API int diana_session_kind(const diana_session *session) DIANA_NOEXCEPT;

/**
 * The session's URI without credentials (safe to log), borrowed until the
 * session is freed; NULL for a NULL session. Since: 0.1
 */
DIANA_API const char *diana_session_uri(const diana_session *session) DIANA_NOEXCEPT;

/**
 * Ask the running operation (or the next one) to stop: it returns
 * DIANA_ECANCELLED soon (DIMSE: after C-CANCEL). Cleared when an operation
 * returns. Thread safety: any thread, any time (also from a signal
 * handler). Since: 0.1
 */
DIANA_API void diana_session_cancel(diana_session *session) DIANA_NOEXCEPT;

/**
 * Check that the other side answers: C-ECHO (dicom), GET /system (orthanc;
 * with a modality also C-ECHO from Orthanc to it), a QIDO-RS study query
 * with limit=1 (dicomweb), the folder readable (folder).
 * Errors: DIANA_ECONNECT, DIANA_ETIMEDOUT, DIANA_EAUTH, DIANA_ETLS,
 * DIANA_EPACS, DIANA_ENOTFOUND, DIANA_ECANCELLED. Since: 0.1
 */
DIANA_API int diana_session_echo(diana_session *session) DIANA_NOEXCEPT;

/**
 * One answer of diana_session_find(), borrowed for the duration of the
 * call. Return 0 to go on, non-zero to stop (DIMSE: C-CANCEL; the find
 * then returns DIANA_EUSER).
 */
typedef int (*diana_find_fn)(const diana_dataset *answer, void *user_data);

/**
 * Query at `level` (diana_level_t) with `nkeys` keys, each "Name=Value"
 * (a matching key) or "Name" / "Name=" (a return key), where Name is a
 * keyword ("PatientName") or a tag ("0010,0020", "00100020"). Values use
 * DICOM matching (PS3.4 C.2.2.2): `*` and `?` wildcards, date/time ranges
 * ("20240101-20240131"), UID lists separated by '\'. Keys that identify
 * the level's parents may be needed (e.g. StudyInstanceUID for a series
 * query on DIMSE and DICOMweb). QueryRetrieveLevel and the UID of the level
 * are always returned; answers carry the keys asked for where the server
 * knows them.
 * Each answer is handed to `fn` as a dataset (UTF-8 through the dataset
 * API). `count` (optional) receives the number of answers delivered.
 * Orthanc's own store and folders match on the attributes they index
 * (Orthanc: its main DICOM tags; folder: every top-level text element).
 * Errors: DIANA_EINVAL (bad key), DIANA_EUNSUPPORTED (level not queryable
 * here), the network errors of diana_session_echo(), DIANA_EUSER (callback
 * stopped), DIANA_EDICOM (malformed answers). Since: 0.1
 */
DIANA_API int diana_session_find(diana_session *session, int level, const char *const *keys,
                                 size_t nkeys, diana_find_fn fn, void *user_data,
                                 size_t *count) DIANA_NOEXCEPT;

/** A retrieved instance, as handed to a diana_instance_fn. */
typedef struct diana_instance {
	uint32_t version;                /**< DIANA_INSTANCE_VERSION of the library */
	const char *path;                /**< a Part 10 file holding the instance, as received */
	const char *sop_instance_uid;    /**< may be "" when the protocol did not tell */
	const char *sop_class_uid;       /**< may be "" */
	const char *transfer_syntax_uid; /**< may be "" */
	uint64_t size;                   /**< bytes of the file */
	int temporary;                   /**< 1: `path` is a temporary file removed after the
	                                      callback unless diana_instance_keep() moved it;
	                                      0: a file of a folder session (never changed) */
} diana_instance;

#define DIANA_INSTANCE_VERSION 1

/** Called once per retrieved instance; non-zero stops the retrieve (DIANA_EUSER). */
typedef int (*diana_instance_fn)(const diana_instance *instance, void *user_data);

/**
 * Keep a retrieved instance at `dest` (its folder must exist): a rename
 * when the instance is a temporary file on the same file system, else a
 * copy; either way `dest` appears atomically with mode 0600 (a copy is
 * fsync'd), replacing a file already there. Only valid inside the
 * callback. Errors: DIANA_EINVAL, DIANA_ENOTFOUND, DIANA_EIO, DIANA_ENOSPC.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_instance_keep(const diana_instance *instance, const char *dest) DIANA_NOEXCEPT;

#define DIANA_TRANSFER_STATS_VERSION 1

/** Outcome of a retrieve or a store; set `version`, the library fills the rest. */
typedef struct diana_transfer_stats {
	uint32_t version;     /**< DIANA_TRANSFER_STATS_VERSION, set by the caller */
	uint64_t instances;   /**< instances handed to the callback (store: stored) */
	uint64_t bytes;       /**< their bytes */
	uint32_t failed;      /**< sub-operations or files that failed */
	uint32_t warnings;    /**< ... completed with a warning */
	uint32_t status;      /**< final DIMSE status (0 when not DIMSE) or HTTP status */
	int64_t elapsed_ms;   /**< wall time of the operation */
} diana_transfer_stats;

#define DIANA_TRANSFER_STATS_INIT { DIANA_TRANSFER_STATS_VERSION, 0, 0, 0, 0, 0, 0 }

/**
 * Retrieve a study (`series_uid` and `sop_uid` NULL), a series (`sop_uid`
 * NULL) or one instance. Instances are streamed, one at a time, to files
 * handed to `fn` (never a whole study in memory); the callback may keep
 * them with diana_instance_keep(). `stats` is optional.
 * Orthanc with a modality: C-MOVE into that Orthanc first (the study stays
 * there, as in a cache). dicom://: C-GET or C-MOVE per the options.
 * DICOMweb: WADO-RS multipart, parsed as a stream. Folder: the indexed
 * files (not temporary).
 * Errors: DIANA_ENOTFOUND (nothing matched), DIANA_EPACS (a failure
 * status: "status 0xA801", some sub-operations failed: `stats` has the
 * counts), DIANA_EUSER, the network errors, DIANA_EIO, DIANA_ENOSPC.
 * Since: 0.1
 */
DIANA_API int diana_session_retrieve(diana_session *session, const char *study_uid,
                                     const char *series_uid, const char *sop_uid,
                                     diana_instance_fn fn, void *user_data,
                                     diana_transfer_stats *stats) DIANA_NOEXCEPT;

/**
 * Retrieve into `dir` (created if missing) as
 * dir/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm, each
 * file atomic, replacing files already there (a rerun completes a partial
 * folder). Errors: those of diana_session_retrieve(). Since: 0.1
 */
DIANA_API int diana_session_retrieve_to_folder(diana_session *session, const char *study_uid,
                                               const char *series_uid, const char *sop_uid,
                                               const char *dir,
                                               diana_transfer_stats *stats) DIANA_NOEXCEPT;

/**
 * Per-file outcome of diana_session_store(): `status` 0 or a negative
 * DIANA_E* code (the error message is set on the calling thread); return
 * non-zero to stop.
 */
typedef int (*diana_store_fn)(size_t index, const char *path, int status, void *user_data);

/**
 * Send `n` DICOM files: C-STORE (dicom), POST /instances (orthanc, its own
 * store; with a modality, stored into Orthanc then sent on with
 * /modalities/NAME/store), STOW-RS (dicomweb), or copied into the folder's
 * layout (folder). Every file is read before being sent (a file that is
 * not DICOM fails alone). A failing file does not stop the others: the
 * call then returns the first error, `stats` has the counts. `fn` is
 * optional. Since: 0.1
 */
DIANA_API int diana_session_store(diana_session *session, const char *const *paths, size_t n,
                                  diana_store_fn fn, void *user_data,
                                  diana_transfer_stats *stats) DIANA_NOEXCEPT;

/** One entry of Orthanc's change log, borrowed for the call. */
typedef struct diana_change {
	uint32_t version;          /**< DIANA_CHANGE_VERSION of the library */
	int64_t seq;               /**< sequence number (increasing, with gaps) */
	const char *change_type;   /**< "NewInstance", "StableStudy", ... */
	const char *resource_type; /**< "Instance", "Series", "Study", "Patient" */
	const char *id;            /**< Orthanc identifier of the resource */
	const char *path;          /**< REST path of the resource, "/studies/<id>" */
	const char *date;          /**< "YYYYMMDDTHHMMSS" */
} diana_change;

#define DIANA_CHANGE_VERSION 1

/** Called per change, in order; non-zero stops (DIANA_EUSER; *last is the last one seen). */
typedef int (*diana_change_fn)(const diana_change *change, void *user_data);

/**
 * Read Orthanc's change log after sequence number `since` (0: from the
 * start; -1: only learn the current last number, calling `fn` never),
 * paging with since=Last until done or until `limit` changes were
 * delivered (0: no limit). Sequence numbers may jump (deleted changes):
 * that is not an error. `*last` (required) receives the number to pass as
 * `since` next time; `*done` (optional) 1 when the end was reached.
 * Orthanc sessions only (else DIANA_EUNSUPPORTED). Since: 0.1
 */
DIANA_API int diana_session_changes(diana_session *session, int64_t since, uint32_t limit,
                                    diana_change_fn fn, void *user_data, int64_t *last,
                                    int *done) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_SESSION_H */
