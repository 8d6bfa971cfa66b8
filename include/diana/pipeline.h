/*
 * libdiana - prospective pipelines: watch a source for new studies, filter
 * them, run a model, deliver the result (Slack, webhook, JSONL, DICOM SR),
 * exactly once, with latency. See doc/pipeline.md.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_PIPELINE_H
#define DIANA_PIPELINE_H

#include <diana/common.h>
#include <diana/dataset.h>
#include <diana/profile.h>

DIANA_BEGIN_DECL

/**
 * A pipeline: source + filter + model + sinks, configured from JSON
 * (doc/pipeline.md). Opaque. diana_pipeline_run() blocks until
 * diana_pipeline_stop(); diana_pipeline_start()/diana_pipeline_wait() run it
 * in a background thread. stop, stats: any thread.
 */
typedef struct diana_pipeline diana_pipeline;

/** What a model sees (borrowed for the call). */
typedef struct diana_model_input {
	uint32_t version;            /**< DIANA_MODEL_INPUT_VERSION of the library */
	const char *study_dir;       /**< a folder holding the study's files (de-identified when the
	                                  pipeline de-identifies), one file per instance */
	const diana_dataset *header; /**< one instance's header (patient, study, series attributes) */
	const char *study_uid;       /**< Study Instance UID as in the files */
	uint32_t instances;          /**< files in study_dir */
} diana_model_input;

#define DIANA_MODEL_INPUT_VERSION 1

/** Where a model puts its result. Opaque; valid during the model call only. */
typedef struct diana_model_output diana_model_output;

/**
 * Set the model's result: a JSON object (copied; see doc/pipeline.md for the
 * keys sinks use: "summary", "items"). DIANA_EINVAL when not a JSON object.
 * Since: 0.1
 */
DIANA_API int diana_model_output_set(diana_model_output *out, const char *json) DIANA_NOEXCEPT;

/**
 * A model as a C function: return 0 after diana_model_output_set(), or
 * non-zero for a failure (reported; the pipeline goes on with the next
 * study). Called on the pipeline's thread.
 */
typedef int (*diana_model_fn)(const diana_model_input *in, diana_model_output *out, void *user_data);

#define DIANA_PIPELINE_OPTIONS_VERSION 1

/** Options of diana_pipeline_new(). Initialise with DIANA_PIPELINE_OPTIONS_INIT. */
typedef struct diana_pipeline_options {
	uint32_t version;          /**< DIANA_PIPELINE_OPTIONS_VERSION */
	const char *config_json;   /**< the configuration (JSON text), or NULL with config_path */
	const char *config_path;   /**< a configuration file; relative paths in it resolve against its folder */
	diana_model_fn model;      /**< a C model (instead of the configuration's "model") */
	void *model_user_data;
} diana_pipeline_options;

#define DIANA_PIPELINE_OPTIONS_INIT { DIANA_PIPELINE_OPTIONS_VERSION, NULL, NULL, NULL, NULL }

/** Initialise `opts` for `version`; DIANA_EUNSUPPORTED for an unknown version. Since: 0.1 */
DIANA_API int diana_pipeline_options_init(diana_pipeline_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Create a pipeline from its configuration: checks everything (source URI,
 * filter, model, sinks, files) and opens the state (cursor, spool), so that
 * a bad configuration fails here with one line naming the key
 * ("sinks[1].url: missing"), not later. Secrets given by file reference
 * ("url_file", "secret_file") are read now.
 * Errors: DIANA_EINVAL, DIANA_EUNSUPPORTED, DIANA_ENOTFOUND, DIANA_EIO,
 * DIANA_EAUTH (a secret file others may read), DIANA_ENOMEM.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_pipeline_new(diana_pipeline **out, const diana_pipeline_options *opts) DIANA_NOEXCEPT;

/** Release a pipeline (stops and waits for a started one first). NULL is a no-op. Since: 0.1 */
DIANA_API void diana_pipeline_free(diana_pipeline *p) DIANA_NOEXCEPT;

/**
 * Run until diana_pipeline_stop(): poll the source, and for each new study
 * filter, retrieve, run the model, deliver; retry pending deliveries. The
 * study in hand is finished before it returns. Returns 0 after a stop, or
 * an error that makes going on pointless (the state folder unwritable).
 * Since: 0.1
 */
DIANA_API int diana_pipeline_run(diana_pipeline *p) DIANA_NOEXCEPT;

/**
 * Handle what the source has now (and retry pending deliveries) once, then
 * return: for cron-style use and tests. `*studies` (optional) receives the
 * number of studies handled. Since: 0.1
 */
DIANA_API int diana_pipeline_run_once(diana_pipeline *p, uint32_t *studies) DIANA_NOEXCEPT;

/** Run in a background thread; DIANA_EEXISTS when already running. Since: 0.1 */
DIANA_API int diana_pipeline_start(diana_pipeline *p) DIANA_NOEXCEPT;

/**
 * Ask the pipeline to stop after the study in hand. Any thread; also
 * async-signal-safe (a SIGTERM handler may call it). Since: 0.1
 */
DIANA_API void diana_pipeline_stop(diana_pipeline *p) DIANA_NOEXCEPT;

/** Wait for a started pipeline; returns what diana_pipeline_run() returned. Since: 0.1 */
DIANA_API int diana_pipeline_wait(diana_pipeline *p) DIANA_NOEXCEPT;

/** Counters and latencies of a pipeline (since it was created). */
typedef struct diana_pipeline_stats {
	uint32_t version;          /**< DIANA_PIPELINE_STATS_VERSION, set by the caller */
	uint64_t seen;             /**< new studies the source reported */
	uint64_t matched;          /**< ... that passed the filter */
	uint64_t processed;        /**< ... whose model ran successfully */
	uint64_t model_failures;   /**< model errors and timeouts */
	uint64_t retrieve_failures; /**< studies that could not be retrieved */
	uint64_t delivered;        /**< deliveries made (one per sink and study) */
	uint64_t pending;          /**< deliveries waiting to be retried */
	/* latencies of the last processed study, ms from the end of the exam
	   (latest acquisition/content time, else arrival); -1 when unknown */
	int64_t last_detect_ms;     /**< ... to detection */
	int64_t last_retrieved_ms;  /**< ... to the study retrieved */
	int64_t last_model_ms;      /**< ... to the model's result */
	int64_t last_delivered_ms;  /**< ... to the first delivery */
	int64_t median_pipeline_ms; /**< median over processed studies: detection -> delivery */
	int64_t median_total_ms;    /**< median over processed studies: exam end -> delivery */
} diana_pipeline_stats;

#define DIANA_PIPELINE_STATS_VERSION 1
#define DIANA_PIPELINE_STATS_INIT { DIANA_PIPELINE_STATS_VERSION, 0, 0, 0, 0, 0, 0, 0, -1, -1, -1, -1, -1, -1 }

/** Current counters. Any thread. Since: 0.1 */
DIANA_API int diana_pipeline_stats_get(diana_pipeline *p, diana_pipeline_stats *stats) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_PIPELINE_H */
