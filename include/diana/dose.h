/*
 * libdiana - radiation dose monitoring: Radiation Dose Structured Reports
 * (RDSR, PS3.16 TID 10001 projection X-ray, TID 10011 CT, TID 10021
 * radiopharmaceutical) turned into one flat JSON document per report with
 * one object per irradiation event, and sinks that deliver those documents
 * to a Splunk HTTP Event Collector or a JSON Lines file. See doc/dose.md.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DOSE_H
#define DIANA_DOSE_H

#include <diana/common.h>
#include <diana/dataset.h>
#include <diana/profile.h>

DIANA_BEGIN_DECL

/** Flags of diana_dose_options.flags. */
typedef enum diana_dose_flag_t {
	DIANA_DOSE_PRETTY = 1u << 0 /**< indent the JSON output */
} diana_dose_flag_t;

#define DIANA_DOSE_OPTIONS_VERSION 1

/** Options of diana_dose_from_*(). Initialise with DIANA_DOSE_OPTIONS_INIT. */
typedef struct diana_dose_options {
	uint32_t version;       /**< DIANA_DOSE_OPTIONS_VERSION */
	uint32_t flags;         /**< DIANA_DOSE_* bitmask, default 0 */
	diana_profile *profile; /**< de-identify with this profile first (borrowed; NULL: no) */
} diana_dose_options;

#define DIANA_DOSE_OPTIONS_INIT { DIANA_DOSE_OPTIONS_VERSION, 0, NULL }

/**
 * Initialise `opts` to defaults for `version` (normally
 * DIANA_DOSE_OPTIONS_VERSION). Returns DIANA_EUNSUPPORTED for an unknown
 * version. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dose_options_init(diana_dose_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Turn a radiation dose report into a JSON document (doc/dose.md gives
 * every member): the report's identification at the top level
 * (sop_instance_uid, template, accession_number, study_instance_uid,
 * study_date/time, station, device, institution, patient_id, patient_age,
 * patient_sex, patient_size, patient_weight, "time" in epoch seconds),
 * "events" (one flat object per irradiation event, in document order,
 * keyed by irradiation_event_uid) and "totals" (the accumulated dose data).
 * Concepts are found by their coded concept names (DCM, SRT or SCT, LN);
 * measurements are {"value": number, "unit": "<UCUM code>"} as the report
 * gives them; coded values are {"code", "scheme", "meaning"}. A member the
 * report does not have is null: nothing is estimated or converted.
 *
 * With `opts->profile` set, a copy of the report is de-identified with that
 * profile (diana_anonymize_dataset()) and the copy is read: accession
 * number, patient ID, UIDs and dates carry the same keyed pseudonyms (and
 * date shifts) as the images de-identified with the same profile and
 * secret. The profile must include DIANA_DEID_CLEAN_STRUCTURED_CONTENT
 * (without it the basic profile replaces the concept names of the content
 * tree): DIANA_EINVAL otherwise. A profile with a key file gets the
 * study's row, as for an image. Use a date option (retain-long-modified-
 * dates) for monitoring: a report whose dates were removed (Longitudinal
 * Temporal Information Modified = REMOVED) has null dates and "time".
 *
 * On success `*out` is a NUL-terminated UTF-8 string to release with
 * diana_free(); on failure `*out` is NULL.
 * Errors: DIANA_EINVAL (NULL argument, bad options), DIANA_EUNSUPPORTED
 * (not a radiation dose report: another SR or another object, or an
 * unknown options version), DIANA_EDICOM (a dose report whose content tree
 * cannot be read), those of diana_anonymize_dataset(), DIANA_ENOMEM.
 * Error messages never carry element values.
 * Thread safety: safe on a const dataset (a profile may be shared).
 * Since: 0.1
 */
DIANA_API int diana_dose_from_dataset(char **out, const diana_dataset *ds,
                                      const diana_dose_options *opts) DIANA_NOEXCEPT;

/**
 * As diana_dose_from_dataset() on a DICOM file, opened with
 * DIANA_OPEN_LENIENT (vendors' dose reports often carry small defects;
 * truncated or unparsable files are still refused, DIANA_EDICOM).
 * Errors: those of diana_dataset_open() and diana_dose_from_dataset().
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dose_from_file(char **out, const char *path,
                                   const diana_dose_options *opts) DIANA_NOEXCEPT;

/**
 * As diana_dose_from_file() on a DICOM file held in memory (copied as
 * needed). Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dose_from_memory(char **out, const uint8_t *data, size_t len,
                                     const diana_dose_options *opts) DIANA_NOEXCEPT;

/**
 * A destination for dose documents: a Splunk HTTP Event Collector or a JSON
 * Lines file. Opaque. Documents are queued by diana_dose_sink_add() and
 * delivered in batches; diana_dose_sink_flush() delivers what is queued.
 * Not synchronised: one thread at a time per sink.
 */
typedef struct diana_dose_sink diana_dose_sink;

#define DIANA_DOSE_HEC_OPTIONS_VERSION 1

/** Options of diana_dose_sink_new_hec(). Initialise with DIANA_DOSE_HEC_OPTIONS_INIT. */
typedef struct diana_dose_hec_options {
	uint32_t version;       /**< DIANA_DOSE_HEC_OPTIONS_VERSION */
	const char *url;        /**< "https://splunk.example.org:8088" (http:// or https://); required */
	const char *token;      /**< the HEC token; or NULL and token_file */
	const char *token_file; /**< file whose content (one trailing newline removed) is the token */
	const char *index;      /**< Splunk index, NULL: the token's default index */
	const char *sourcetype; /**< NULL: "diana:dose" */
	const char *source;     /**< NULL: "libdiana" */
	const char *host;       /**< NULL: this machine's host name */
	const char *ca_file;    /**< CA bundle (PEM) to verify the server with; NULL: the system's */
	uint32_t batch_events;  /**< documents per request, 1..10000; 0 = 100 */
	uint32_t batch_bytes;   /**< request body size that triggers sending; 0 = 1 MiB */
	int32_t retries;        /**< retries after a connection error or 5xx answer; default 3 */
	int64_t retry_delay_ms; /**< first backoff delay, doubled each retry; default 500 */
	int64_t timeout_ms;     /**< whole request; default 30000 */
} diana_dose_hec_options;

#define DIANA_DOSE_HEC_OPTIONS_INIT \
	{ DIANA_DOSE_HEC_OPTIONS_VERSION, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, 0, 0, 3, 500, 30000 }

/**
 * Initialise `opts` for `version`. Returns DIANA_EUNSUPPORTED for an
 * unknown version. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dose_hec_options_init(diana_dose_hec_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Create a Splunk HTTP Event Collector sink. Each document becomes one
 * event {"time", "host", "source", "sourcetype", "index", "event"} where
 * "time" is the document's "time" member (study or first irradiation
 * datetime; omitted when the report has neither, then Splunk uses the
 * arrival time); events are concatenated into one body and POSTed to
 * {url}/services/collector/event with the header
 * "Authorization: Splunk <token>". TLS peers are always verified. Nothing
 * is sent before the first batch fills up or diana_dose_sink_flush().
 * The token is never logged nor put in an error message. On success
 * `*out` owns the sink (release with diana_dose_sink_free()); on failure
 * it is NULL.
 * Errors: DIANA_EINVAL (no URL, no token, a token with control characters,
 * batch_events out of range), DIANA_ENOTFOUND / DIANA_EIO (token file),
 * DIANA_EUNSUPPORTED, DIANA_ENOMEM. Requires diana_init().
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dose_sink_new_hec(diana_dose_sink **out,
                                      const diana_dose_hec_options *opts) DIANA_NOEXCEPT;

/**
 * Create a JSON Lines sink: each document is appended to `path` as one
 * line (created with mode 0600 when missing; existing lines are kept).
 * Lines are written by diana_dose_sink_add() (one write() per line, so
 * concurrent writers never interleave lines); diana_dose_sink_flush() and
 * diana_dose_sink_free() fsync the file. On success `*out` owns the sink
 * (release with diana_dose_sink_free()); on failure it is NULL.
 * Errors: DIANA_EINVAL, DIANA_ENOTFOUND, DIANA_EIO. Thread safety: safe.
 * Since: 0.1
 */
DIANA_API int diana_dose_sink_new_jsonl(diana_dose_sink **out, const char *path) DIANA_NOEXCEPT;

/**
 * Queue one document (as returned by diana_dose_from_*(); pretty or
 * compact) for delivery; a full batch is sent at once (HEC). When that
 * delivery fails the batch stays queued and the error is returned; the
 * next add or flush tries again.
 * Errors: DIANA_EINVAL (not a JSON object), the delivery errors of
 * diana_dose_sink_flush(), DIANA_ENOMEM.
 * Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_dose_sink_add(diana_dose_sink *sink, const char *json) DIANA_NOEXCEPT;

/**
 * Deliver everything queued and make it durable: HEC: POST the queued
 * events, retried with exponential backoff after connection errors and
 * 5xx answers (never after 4xx); JSONL: fsync the file.
 * Errors: DIANA_ECONNECT, DIANA_ETIMEDOUT, DIANA_ETLS, DIANA_EAUTH (401,
 * 403: token refused), DIANA_ENOTFOUND (404), DIANA_EPACS (other statuses,
 * e.g. 400 for an unknown index), DIANA_EIO, DIANA_ENOSPC.
 * Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_dose_sink_flush(diana_dose_sink *sink) DIANA_NOEXCEPT;

/**
 * Number of documents delivered by this sink so far (HEC: acknowledged by
 * a 2xx answer; JSONL: written). Thread safety: handle. Since: 0.1
 */
DIANA_API uint64_t diana_dose_sink_delivered(const diana_dose_sink *sink) DIANA_NOEXCEPT;

/**
 * Release a sink. Whatever is still queued is delivered first, best
 * effort (errors are only logged: call diana_dose_sink_flush() before to
 * know). NULL is a no-op. Thread safety: handle. Since: 0.1
 */
DIANA_API void diana_dose_sink_free(diana_dose_sink *sink) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_DOSE_H */
