/*
 * libdiana - de-identification: PS3.15 Annex E confidentiality profiles,
 * keyed deterministic pseudonyms, key file, leak scanner.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_PROFILE_H
#define DIANA_PROFILE_H

#include <diana/common.h>
#include <diana/dataset.h>
#include <diana/scan.h>

DIANA_BEGIN_DECL

/**
 * A de-identification profile: the Basic Application Level Confidentiality
 * Profile of PS3.15 Table E.1-1 (built into the library from the standard's
 * table), a set of options, per-attribute overrides, and the project secret
 * that keys every pseudonym. Opaque.
 *
 * Thread safety: once configured (options and overrides set), a profile may
 * be used by several threads at once to de-identify different inputs; the
 * key file is appended under a lock. Configuration calls are not
 * synchronised.
 */
typedef struct diana_profile diana_profile;

/**
 * The standard options of PS3.15 Table E.1-1 (bitmask). How each one is
 * applied (and what "clean" means for each kind of value) is described in
 * doc/deid.md; DIANA_DEID_RETAIN_LONG_FULL_DATES and
 * DIANA_DEID_RETAIN_LONG_MODIFIED_DATES exclude each other.
 */
typedef enum diana_deid_option_t {
	DIANA_DEID_RETAIN_SAFE_PRIVATE = 1u << 0,
	DIANA_DEID_RETAIN_UIDS = 1u << 1,
	DIANA_DEID_RETAIN_DEVICE_IDENTITY = 1u << 2,
	DIANA_DEID_RETAIN_INSTITUTION_IDENTITY = 1u << 3,
	DIANA_DEID_RETAIN_PATIENT_CHARACTERISTICS = 1u << 4,
	DIANA_DEID_RETAIN_LONG_FULL_DATES = 1u << 5,
	DIANA_DEID_RETAIN_LONG_MODIFIED_DATES = 1u << 6,
	DIANA_DEID_CLEAN_DESCRIPTORS = 1u << 7,
	DIANA_DEID_CLEAN_STRUCTURED_CONTENT = 1u << 8,
	DIANA_DEID_CLEAN_GRAPHICS = 1u << 9
} diana_deid_option_t;

/**
 * Option bit for a name: "retain-safe-private", "retain-uids",
 * "retain-device-identity", "retain-institution-identity",
 * "retain-patient-characteristics", "retain-long-full-dates",
 * "retain-long-modified-dates", "clean-descriptors",
 * "clean-structured-content", "clean-graphics" (case-insensitive; '_' and
 * ' ' accepted for '-'). Returns 0 and sets *out, or DIANA_EINVAL.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_deid_option_from_name(const char *name, uint32_t *out) DIANA_NOEXCEPT;

/** Name of one option bit ("retain-uids", ...), NULL if not exactly one known bit. Since: 0.1 */
DIANA_API const char *diana_deid_option_name(uint32_t option) DIANA_NOEXCEPT;

#define DIANA_PROFILE_OPTIONS_VERSION 1

/** Options of diana_profile_new(). Initialise with DIANA_PROFILE_OPTIONS_INIT. */
typedef struct diana_profile_options {
	uint32_t version;            /**< DIANA_PROFILE_OPTIONS_VERSION */
	uint32_t options;            /**< DIANA_DEID_* bitmask */
	const char *secret_file;     /**< file holding the project secret (>= 32 bytes); required unless `secret` is set */
	const uint8_t *secret;       /**< the secret itself (>= 32 bytes), copied; alternative to secret_file */
	size_t secret_len;
	const char *key_file;        /**< CSV key file to append one row per study to, or NULL */
	int32_t date_shift_max_days; /**< with RETAIN_LONG_MODIFIED_DATES: shifts lie in [-max, -1] days; 0 = default 365, at most 36500 */
} diana_profile_options;

#define DIANA_PROFILE_OPTIONS_INIT { DIANA_PROFILE_OPTIONS_VERSION, 0, NULL, NULL, 0, NULL, 0 }

/**
 * Initialise `opts` for `version`. Returns DIANA_EUNSUPPORTED for an
 * unknown version. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_profile_options_init(diana_profile_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Create a profile. There is no default secret: without a secret of at
 * least 32 bytes this fails with DIANA_EINVAL (opts NULL included). A secret
 * file must be a regular file of at most 1 MiB that neither group nor others
 * may read or write (DIANA_EAUTH otherwise); its whole content is the
 * secret, except one trailing newline (LF or CR LF). When `key_file` is set
 * it is created with mode 0600 if missing, and studies already listed in it
 * are not listed again.
 * Errors: DIANA_EINVAL (no or short secret, unknown option bits, both
 * Retain Long options, date_shift_max_days out of range), DIANA_EAUTH,
 * DIANA_ENOTFOUND / DIANA_EIO (files), DIANA_EUNSUPPORTED, DIANA_ENOMEM.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_profile_new(diana_profile **out, const diana_profile_options *opts) DIANA_NOEXCEPT;

/** Release a profile (flushes and closes its key file). NULL is a no-op. Since: 0.1 */
DIANA_API void diana_profile_free(diana_profile *profile) DIANA_NOEXCEPT;

/** Per-attribute override actions. */
typedef enum diana_deid_action_t {
	DIANA_ACTION_DEFAULT = 0, /**< drop an override: back to the profile's action */
	DIANA_ACTION_KEEP = 1,    /**< keep the value unchanged */
	DIANA_ACTION_REMOVE = 2,  /**< remove the element */
	DIANA_ACTION_EMPTY = 3,   /**< keep the element with an empty value */
	DIANA_ACTION_REPLACE = 4  /**< replace the value with the given text */
} diana_deid_action_t;

/**
 * Override the action for one attribute, wherever it occurs (top level and
 * inside sequences). `key` is a keyword or a tag as in diana_dataset_get()
 * (no paths; private tags are matched as written, block included); `value`
 * is the replacement text for DIANA_ACTION_REPLACE (UTF-8, one line, at most
 * 1024 bytes), NULL otherwise. Overrides win over the profile and its
 * options. A replacement applies to text VRs only, and must be ASCII unless
 * the dataset's character set is ISO_IR 192 (else diana_anonymize_*() fail
 * with DIANA_EINVAL). The file meta (0002,xxxx), group lengths, pixel data
 * and the attributes the engine writes itself ((0012,0062), (0012,0063),
 * (0012,0064), (0028,0303)) cannot be overridden.
 * Errors: DIANA_EINVAL. Thread safety: handle. Since: 0.1
 */
DIANA_API int diana_profile_set_action(diana_profile *profile, const char *key, int action,
                                       const char *value) DIANA_NOEXCEPT;

/**
 * The result of de-identifying one object: the pseudonyms it received and
 * its key row. Opaque; read with diana_deid_result_get().
 */
typedef struct diana_deid_result diana_deid_result;

/**
 * One field of a result, or NULL when absent. Fields:
 * "PatientID", "PatientName", "PatientBirthDate", "AccessionNumber",
 * "StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate"
 * (the values as written, UTF-8), and the same names prefixed with
 * "Original" (e.g. "OriginalPatientID") for the key row. The originals are
 * patient data: never log them. The string is borrowed until
 * the result is freed. Thread safety: safe on a const result. Since: 0.1
 */
DIANA_API const char *diana_deid_result_get(const diana_deid_result *result, const char *field) DIANA_NOEXCEPT;

/** Release a result. NULL is a no-op. Since: 0.1 */
DIANA_API void diana_deid_result_free(diana_deid_result *result) DIANA_NOEXCEPT;

/**
 * De-identify a dataset in place: every element, file meta and sequences
 * at any depth included, is kept, removed, emptied, dummied, cleaned or
 * replaced by a keyed pseudonym as the profile says (doc/deid.md). Adds
 * Patient Identity Removed (0012,0062) = YES, De-identification Method
 * (0012,0063), De-identification Method Code Sequence (0012,0064, PS3.16
 * CID 7050 codes of the profile and each option; those of an earlier
 * de-identification are kept, but for Retain options this run does not
 * apply), Longitudinal Temporal Information Modified
 * (0028,0303), and the pseudonymous Patient ID when the object had none.
 * When the profile has a key file, one row per study is appended to it.
 * On success, and when `result` is not NULL, `*result` receives the result
 * (free with diana_deid_result_free()). Pixel data and the transfer syntax
 * are left as they are.
 * Errors: DIANA_EINVAL, DIANA_EDICOM (the object cannot be de-identified
 * safely, e.g. a text value that cannot be decoded), DIANA_EIO (key file),
 * DIANA_ENOMEM. On failure the dataset is in an unspecified state: discard it.
 * Thread safety: safe with a configured profile. Since: 0.1
 */
DIANA_API int diana_anonymize_dataset(diana_profile *profile, diana_dataset *ds,
                                      diana_deid_result **result) DIANA_NOEXCEPT;

/**
 * De-identify a DICOM file into `out_path` (written atomically: a failure
 * never leaves a partial file). The input is opened strictly (see
 * dataset.h). Errors as diana_anonymize_dataset() plus those of
 * diana_dataset_open() and diana_dataset_save().
 * Thread safety: safe with a configured profile. Since: 0.1
 */
DIANA_API int diana_anonymize_file(diana_profile *profile, const char *in_path, const char *out_path,
                                   diana_deid_result **result) DIANA_NOEXCEPT;

/**
 * De-identify a DICOM file held in memory; `*out` (release with
 * diana_free()) receives the de-identified Part 10 bytes.
 * Thread safety: safe with a configured profile. Since: 0.1
 */
DIANA_API int diana_anonymize_memory(diana_profile *profile, const uint8_t *data, size_t len,
                                     uint8_t **out, size_t *out_len,
                                     diana_deid_result **result) DIANA_NOEXCEPT;

/** Flags of diana_anonymize_into(). */
typedef enum diana_anon_flag_t {
	/**
	 * Do not fsync each output (nor its folder): the rename still makes it
	 * appear whole, and one diana_anonymize_sync() after the last file
	 * makes the whole run durable. Much faster for many files; after a
	 * power loss before that sync, outputs may be empty: run again (the
	 * outputs are the same bytes).
	 */
	DIANA_ANON_NO_SYNC = 1u << 0,
	/**
	 * With DIANA_ANON_NO_SYNC: do not start writing the output to disk
	 * either. By default a DIANA_ANON_NO_SYNC output is handed to the
	 * kernel's writeback at once (sync_file_range(), asynchronous), so
	 * that the final diana_anonymize_sync() finds little left to write and
	 * the disk works while the next files are de-identified. For scratch
	 * outputs that are never synced (a model's work folder, a tmpfs), this
	 * flag saves that work. Since: 0.1
	 */
	DIANA_ANON_NO_WRITEBACK = 1u << 1
} diana_anon_flag_t;

/**
 * De-identify a DICOM file into the folder tree
 * `out_dir`/<PatientID>/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm
 * named by the new values (each component reduced to A-Z a-z 0-9 . _ -,
 * "unknown" when empty; an object without SOP Instance UID, not a stored
 * image, is named "nouid-" and 32 hex digits of a keyed hash of its input's
 * absolute path, so that two such inputs never overwrite each other),
 * creating the folders (mode 0700) as needed. The
 * input is opened strictly; the output is written to a temporary name and
 * renamed into place (never a partial file), fsync'd unless
 * DIANA_ANON_NO_SYNC. `flags`: DIANA_ANON_* bits.
 * Returns 0 when written, with `*out_path` (if not NULL; release with
 * diana_free()) the output's path and `*result` (if not NULL) the result;
 * 1 when the input is a DICOMDIR (a media directory, not an object to
 * de-identify): nothing is written, the outputs are NULL; a negative code
 * on failure, as diana_anonymize_file().
 * Thread safety: safe with a configured profile. Since: 0.1
 */
DIANA_API int diana_anonymize_into(diana_profile *profile, const char *in_path, const char *out_dir,
                                   uint32_t flags, char **out_path,
                                   diana_deid_result **result) DIANA_NOEXCEPT;

/**
 * Make everything written under `path` durable (syncfs() of its file
 * system), after diana_anonymize_into() with DIANA_ANON_NO_SYNC.
 * Errors: DIANA_EINVAL, DIANA_ENOTFOUND, DIANA_EIO.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_anonymize_sync(const char *path) DIANA_NOEXCEPT;

/**
 * Tell a leak scanner that the outputs were made with `profile`: its
 * options and overrides, as diana_scanner_set_options() and
 * diana_scanner_set_action(), and its secret: for every person name added
 * afterwards, the sham name the engine writes for it is the engine's (an
 * output value equal to it is not a finding, though it may share a word
 * with a protected name). The scanner keeps its own copy of the secret;
 * the key file is not used. Must be called before values are added.
 * Errors: DIANA_EINVAL, DIANA_ENOMEM.
 * Thread safety: handle (the scanner); the profile is only read. Since: 0.1
 */
DIANA_API int diana_scanner_set_profile(diana_scanner *scanner, const diana_profile *profile) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_PROFILE_H */
