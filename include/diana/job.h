/*
 * libdiana - retrieval jobs: a work list of accession numbers (or study
 * UIDs, or patients and date ranges) -> de-identified flat DICOM files, a
 * key file and a report; resumable, gentle on the PACS. See doc/job.md.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_JOB_H
#define DIANA_JOB_H

#include <diana/common.h>
#include <diana/profile.h>
#include <diana/session.h>

DIANA_BEGIN_DECL

/**
 * A retrieval job. Opaque. Configure it (work list, options) from one
 * thread, then run it: diana_job_run() blocks; diana_job_start() runs it in
 * the background until diana_job_wait(). diana_job_cancel() and
 * diana_job_stats() may be called from any thread at any time.
 */
typedef struct diana_job diana_job;

/** Stages reported to the progress callback. */
typedef enum diana_job_stage_t {
	DIANA_JOB_STAGE_QUERY = 1,    /**< finding the studies of a work item */
	DIANA_JOB_STAGE_RETRIEVE = 2, /**< receiving and de-identifying instances */
	DIANA_JOB_STAGE_WAIT = 3,     /**< waiting: outside the time window, rate limit, backoff */
	DIANA_JOB_STAGE_DONE = 4      /**< the job has ended */
} diana_job_stage_t;

/** Progress, as handed to diana_job_progress_fn (borrowed for the call). */
typedef struct diana_job_progress {
	uint32_t version;         /**< DIANA_JOB_PROGRESS_VERSION of the library */
	int stage;                /**< diana_job_stage_t of the reporting worker */
	uint64_t items_done;      /**< work items finished (any outcome) */
	uint64_t items_total;     /**< work items in the job */
	uint64_t instances;       /**< instances written so far (this run) */
	uint64_t bytes;           /**< bytes received so far (this run) */
	int64_t elapsed_ms;       /**< since the job started */
	const char *current;      /**< the study in hand: its pseudonymous accession number
	                               when de-identifying, else the accession ("" if none) */
} diana_job_progress;

#define DIANA_JOB_PROGRESS_VERSION 1

/** Called from worker threads (serialised by the job: one call at a time). Return non-zero to cancel the job. */
typedef int (*diana_job_progress_fn)(const diana_job_progress *progress, void *user_data);

/** Outcomes of a work item / study. */
typedef enum diana_study_status_t {
	DIANA_STUDY_OK = 0,      /**< every expected instance written (and journaled) */
	DIANA_STUDY_SKIPPED = 1, /**< already complete in an earlier run: not asked for again */
	DIANA_STUDY_UNKNOWN = 2, /**< the PACS knows no study for this item */
	DIANA_STUDY_FAILED = 3   /**< failed after the retries (see `reason`) */
} diana_study_status_t;

/** One finished work item, as handed to diana_job_study_fn (borrowed for the call). */
typedef struct diana_job_study {
	uint32_t version;            /**< DIANA_JOB_STUDY_VERSION of the library */
	uint64_t index;              /**< position of the item in the work list, from 1 */
	int status;                  /**< diana_study_status_t */
	int error;                   /**< DIANA_E* code of a failure, else 0 */
	const char *reason;          /**< one line, no patient data ("" when ok) */
	const char *accession;       /**< the item as given (patient data: never log it) */
	const char *pseudo_accession; /**< its pseudonym when de-identifying, else "" */
	const char *pseudo_patient_id; /**< "" when unknown or not de-identifying */
	uint32_t studies;            /**< studies the item matched */
	uint64_t instances;          /**< instances written */
	uint64_t expected;           /**< instances the PACS announced */
	uint64_t bytes;              /**< bytes received */
} diana_job_study;

#define DIANA_JOB_STUDY_VERSION 1

/** Called once per finished work item, from worker threads (serialised). Return non-zero to cancel the job. */
typedef int (*diana_job_study_fn)(const diana_job_study *study, void *user_data);

/** Flags of diana_job_options. */
typedef enum diana_job_flag_t {
	DIANA_JOB_NO_ANONYMIZE = 1u << 0,  /**< write the files as received (no profile needed); explicit on purpose */
	DIANA_JOB_DRY_RUN = 1u << 1,       /**< only query: count studies and instances, write nothing */
	DIANA_JOB_KEEP_IN_HELPER = 1u << 2 /**< through an Orthanc helper: do not delete studies from it once written */
} diana_job_flag_t;

#define DIANA_JOB_OPTIONS_VERSION 1

/** Options of diana_job_new(). Initialise with DIANA_JOB_OPTIONS_INIT. */
typedef struct diana_job_options {
	uint32_t version;            /**< DIANA_JOB_OPTIONS_VERSION */
	uint32_t flags;              /**< diana_job_flag_t bits */
	const char *out_dir;         /**< destination folder (created; required) */
	diana_profile *profile;      /**< de-identification profile (required unless DIANA_JOB_NO_ANONYMIZE);
	                                  its key file gets one row per study; borrowed, must outlive the job */
	diana_session *dest;         /**< optional: also store each completed study there; borrowed */
	int workers;                 /**< studies retrieved in parallel, each with its own session; 0: 1 (max 64) */
	double max_queries_per_s;    /**< queries (C-FIND, QIDO, /tools/find) per second over all workers; 0: no limit */
	double max_studies_per_min;  /**< studies started per minute over all workers; 0: no limit */
	double max_mb_per_s;         /**< received MB/s over all workers; 0: no limit */
	const char *window;          /**< "HH:MM-HH:MM" local time when work may start (e.g. "19:00-07:00"); NULL: always */
	int retries;                 /**< attempts after a failure of a study (connection, refused association,
	                                  0xA7xx/0xC0xx, HTTP 5xx, incomplete); 0: 3; -1: none */
	int64_t retry_delay_ms;      /**< first backoff delay, doubled each time; 0: 5000 */
	diana_job_progress_fn progress;
	void *progress_user_data;
	diana_job_study_fn on_study;
	void *study_user_data;
} diana_job_options;

#define DIANA_JOB_OPTIONS_INIT \
	{ DIANA_JOB_OPTIONS_VERSION, 0, NULL, NULL, NULL, 0, 0, 0, 0, NULL, 0, 0, NULL, NULL, NULL, NULL }

/** Initialise `opts` for `version`; DIANA_EUNSUPPORTED for an unknown version. Since: 0.1 */
DIANA_API int diana_job_options_init(diana_job_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Create a job reading from `source` (borrowed: it must outlive the job;
 * workers beyond the first use their own copies of it). Creates `out_dir`
 * and opens its journal (out_dir/.diana/journal.jsonl): a job over a
 * folder with a journal resumes it. Without DIANA_JOB_NO_ANONYMIZE a
 * profile is required (DIANA_EINVAL otherwise).
 * Errors: DIANA_EINVAL, DIANA_EUNSUPPORTED, DIANA_EIO, DIANA_ENOSPC,
 * DIANA_ENOMEM. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_job_new(diana_job **out, diana_session *source, const diana_job_options *opts) DIANA_NOEXCEPT;

/** Release a job (waits for a started job to end first, cancelling it). NULL is a no-op. Since: 0.1 */
DIANA_API void diana_job_free(diana_job *job) DIANA_NOEXCEPT;

/** Add an accession number to the work list. Errors: DIANA_EINVAL (empty, too long, control characters). Since: 0.1 */
DIANA_API int diana_job_add_accession(diana_job *job, const char *accession) DIANA_NOEXCEPT;

/** Add a Study Instance UID to the work list. Errors: DIANA_EINVAL (not a UID). Since: 0.1 */
DIANA_API int diana_job_add_study_uid(diana_job *job, const char *study_uid) DIANA_NOEXCEPT;

/**
 * Add a patient's studies in a date range ("YYYYMMDD" each, either may be
 * NULL for an open end) to the work list. Since: 0.1
 */
DIANA_API int diana_job_add_patient(diana_job *job, const char *patient_id, const char *date_from,
                                    const char *date_to) DIANA_NOEXCEPT;

/**
 * Add the accession numbers of a file: one per line (the first
 * comma/semicolon/tab separated column of CSV), blank lines and lines
 * starting with '#' ignored, a header line "AccessionNumber" (any case)
 * skipped, duplicates added once. `*count` (optional) receives the number
 * added. Errors: DIANA_ENOTFOUND, DIANA_EIO, DIANA_EINVAL (a bad line: its
 * number is in the message, never its text). Since: 0.1
 */
DIANA_API int diana_job_add_accessions_file(diana_job *job, const char *path, size_t *count) DIANA_NOEXCEPT;

/**
 * Run the job to its end: every work item is skipped (complete in the
 * journal), retrieved and written, or reported as unknown or failed
 * (out_dir/report.csv, rewritten at the end). Returns 0 when every item is
 * ok or skipped; DIANA_EPACS when some failed or were unknown (the report
 * has them); DIANA_ECANCELLED; or an error that stopped the job (DIANA_EIO,
 * DIANA_ENOSPC, ...). Rerunning the same job after any stop finishes it
 * without duplicates. Since: 0.1
 */
DIANA_API int diana_job_run(diana_job *job) DIANA_NOEXCEPT;

/** Run the job in a background thread; DIANA_EEXISTS when it already runs. Since: 0.1 */
DIANA_API int diana_job_start(diana_job *job) DIANA_NOEXCEPT;

/** Wait for a started job to end; returns what diana_job_run() would have. Since: 0.1 */
DIANA_API int diana_job_wait(diana_job *job) DIANA_NOEXCEPT;

/**
 * Ask the job to stop soon: no new study is started, the ones in hand are
 * interrupted (their files stay, the journal does not count them done).
 * Thread safety: any thread, any time. Since: 0.1
 */
DIANA_API void diana_job_cancel(diana_job *job) DIANA_NOEXCEPT;

/** Counters of a job (this run). */
typedef struct diana_job_stats {
	uint32_t version;        /**< DIANA_JOB_STATS_VERSION, set by the caller */
	uint64_t items;          /**< work items */
	uint64_t ok;             /**< items fully written in this run */
	uint64_t skipped;        /**< items complete from an earlier run */
	uint64_t unknown;        /**< items the PACS does not know */
	uint64_t failed;         /**< items that failed */
	uint64_t studies;        /**< studies written in this run */
	uint64_t instances;      /**< instances written in this run */
	uint64_t bytes;          /**< bytes received in this run */
	int64_t elapsed_ms;      /**< wall time so far */
	double ms_per_instance;  /**< elapsed_ms / instances (0 when none) */
} diana_job_stats;

#define DIANA_JOB_STATS_VERSION 1
#define DIANA_JOB_STATS_INIT { DIANA_JOB_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 }

/** Current counters. Thread safety: any thread, any time. Since: 0.1 */
DIANA_API int diana_job_stats_get(const diana_job *job, diana_job_stats *stats) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_JOB_H */
