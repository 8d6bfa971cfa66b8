/*
 * libdiana - common definitions: export macros, library lifetime, errors,
 * logging, memory.
 * SPDX-License-Identifier: MIT
 *
 * Conventions used by every libdiana header (see doc/api.md):
 *
 *  - Fallible functions return int: 0 on success, a negative DIANA_E* code
 *    on failure. Output parameters come first and are named `out`; on
 *    failure `*out` is set to NULL (or left untouched for plain values).
 *  - An object returned through `T **out` belongs to the caller and is
 *    released with its own diana_T_free(); every _free(NULL) is a no-op.
 *    Memory that libdiana hands out as `char **` or `uint8_t **` is released
 *    with diana_free().
 *  - Options structs begin with `uint32_t version`; initialise them with the
 *    *_INIT macro or the *_init() function. Passing NULL means defaults.
 *    Fields are only ever appended.
 *  - Strings are NUL-terminated UTF-8; paths are passed to the OS unchanged.
 *  - Thread safety: unless a function says otherwise, a handle is not
 *    internally synchronised. A handle may move between threads but must not
 *    be used by two threads at once. Functions without a handle are safe.
 *  - No error message or log line ever contains a DICOM element value
 *    (names, IDs, dates, UIDs): libdiana handles patient data.
 */
#ifndef DIANA_COMMON_H
#define DIANA_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include <diana/version.h>

#ifdef __cplusplus
#define DIANA_BEGIN_DECL extern "C" {
#define DIANA_END_DECL }
#else
#define DIANA_BEGIN_DECL
#define DIANA_END_DECL
#endif

/** Marks a public declaration as exported from libdiana.so. */
#if defined(DIANA_STATIC)
#define DIANA_API extern
#elif defined(__GNUC__) && __GNUC__ >= 4
#define DIANA_API extern __attribute__((visibility("default")))
#else
#define DIANA_API extern
#endif

/** `noexcept` on declarations seen from C++ (libdiana never throws). */
#if defined(__cplusplus) && __cplusplus >= 201103L
#define DIANA_NOEXCEPT noexcept
#else
#define DIANA_NOEXCEPT
#endif

DIANA_BEGIN_DECL

/* ------------------------------------------------------------------------ */
/* Error codes                                                               */
/* ------------------------------------------------------------------------ */

/**
 * Return codes. Values are stable: they are never renumbered nor reused.
 * New codes are only appended (more negative).
 */
typedef enum diana_error_t {
	DIANA_OK = 0,            /**< success */
	DIANA_ERROR = -1,        /**< a failure without a more specific code */
	DIANA_EINVAL = -2,       /**< invalid argument (NULL handle, bad key, ...) */
	DIANA_ENOMEM = -3,       /**< out of memory */
	DIANA_EUNSUPPORTED = -4, /**< unsupported options version, VR, protocol operation */
	DIANA_ENOTFOUND = -5,    /**< the thing asked for does not exist */
	DIANA_EIO = -6,          /**< file system or stream error */
	DIANA_EDICOM = -7,       /**< malformed or nonconformant DICOM data */
	DIANA_ETIMEDOUT = -8,    /**< a network or process timeout expired */
	DIANA_ECANCELLED = -9,   /**< the operation was cancelled */
	DIANA_EAUTH = -10,       /**< credentials refused (HTTP 401/403, association rejected) */
	DIANA_ETLS = -11,        /**< TLS handshake or certificate verification failed */
	DIANA_ECONNECT = -12,    /**< host unreachable, connection refused, name lookup failed */
	DIANA_EPACS = -13,       /**< the remote side answered with an error status */
	DIANA_EUSER = -14,       /**< a user callback asked to stop */
	DIANA_ENOTINIT = -15,    /**< diana_init() has not been called */
	DIANA_EEXISTS = -16,     /**< the target already exists */
	DIANA_ELEAK = -17,       /**< the leak scanner found protected data in an output */
	DIANA_ENOSPC = -18       /**< no space left on the device */
} diana_error_t;

/**
 * Code of the last error raised on the calling thread, or DIANA_OK.
 *
 * A successful call does not clear it: read it right after a call returned
 * a negative value. Thread safety: safe (per thread). Since: 0.1
 */
DIANA_API int diana_error_code(void) DIANA_NOEXCEPT;

/**
 * One-line message of the last error raised on the calling thread; "" when
 * there is none. Never NULL. Borrowed: valid until the next libdiana call on
 * this thread. The text never contains DICOM element values.
 * Thread safety: safe (per thread). Since: 0.1
 */
DIANA_API const char *diana_error_message(void) DIANA_NOEXCEPT;

/** Forget the calling thread's last error. Thread safety: safe. Since: 0.1 */
DIANA_API void diana_error_clear(void) DIANA_NOEXCEPT;

/**
 * Static English description of an error code ("unknown error" for values
 * libdiana does not know). Thread safety: safe. Since: 0.1
 */
DIANA_API const char *diana_strerror(int code) DIANA_NOEXCEPT;

/* ------------------------------------------------------------------------ */
/* Library lifetime and version                                              */
/* ------------------------------------------------------------------------ */

/**
 * Initialise libdiana: global libcurl set-up and routing of GDCM's own
 * diagnostics into the libdiana log. Reference counted: call it once per
 * user of the library and pair every call with diana_shutdown().
 *
 * Returns the new reference count (>= 1), or a negative error code.
 * Note: GDCM's trace streams are process-global; while libdiana is
 * initialised they are redirected to the libdiana log (debug level).
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_init(void) DIANA_NOEXCEPT;

/**
 * Release one reference taken by diana_init(). When the count reaches zero
 * the global state is released. Returns the remaining count (>= 0), or
 * DIANA_ENOTINIT when the library was not initialised.
 * Thread safety: safe, but no other libdiana call may run concurrently with
 * the final shutdown. Since: 0.1
 */
DIANA_API int diana_shutdown(void) DIANA_NOEXCEPT;

/**
 * Version of the library actually loaded (which may differ from the
 * DIANA_VERSION_* macros of the headers compiled against). Any output may
 * be NULL. Returns 0. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_version(int *major, int *minor, int *patch) DIANA_NOEXCEPT;

/** The loaded library's version as a static string, e.g. "0.1.0". Since: 0.1 */
DIANA_API const char *diana_version_string(void) DIANA_NOEXCEPT;

/** Features compiled into the loaded library (bitmask of DIANA_FEATURE_*). */
typedef enum diana_feature_t {
	DIANA_FEATURE_THREADS = 1u << 0, /**< thread-safe build (always set) */
	DIANA_FEATURE_HTTPS = 1u << 1,   /**< libcurl with TLS support */
	DIANA_FEATURE_ICONV = 1u << 2    /**< character set conversion available */
} diana_feature_t;

/** Bitmask of DIANA_FEATURE_* values. Thread safety: safe. Since: 0.1 */
DIANA_API uint32_t diana_features(void) DIANA_NOEXCEPT;

/* ------------------------------------------------------------------------ */
/* Logging                                                                   */
/* ------------------------------------------------------------------------ */

/** Log levels; a message is delivered when its level <= the set level. */
typedef enum diana_log_level_t {
	DIANA_LOG_NONE = 0,
	DIANA_LOG_ERROR = 1,
	DIANA_LOG_WARNING = 2,
	DIANA_LOG_INFO = 3,
	DIANA_LOG_DEBUG = 4
} diana_log_level_t;

/**
 * Log handler. `domain` names the module ("core", "dicom", "http", ...);
 * `message` is one pre-formatted line without a trailing newline. Both are
 * borrowed for the duration of the call. The handler may be called from any
 * thread, concurrently, and must not call back into libdiana.
 */
typedef void (*diana_log_fn)(int level, const char *domain, const char *message,
                             void *user_data);

/**
 * Install a process-wide log handler (NULL: none). libdiana is silent by
 * default; when the environment variable DIANA_DEBUG is set (and the process
 * is not set-uid), messages up to DIANA_LOG_DEBUG go to stderr until a
 * handler is installed. Log text never contains DICOM element values.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API void diana_log_set_handler(diana_log_fn fn, void *user_data) DIANA_NOEXCEPT;

/**
 * Set the highest level delivered to the handler (default DIANA_LOG_WARNING
 * once a handler is installed). Returns the previous level.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_log_set_level(int level) DIANA_NOEXCEPT;

/* ------------------------------------------------------------------------ */
/* Memory                                                                    */
/* ------------------------------------------------------------------------ */

/**
 * Release memory that libdiana returned to the caller (strings, buffers).
 * NULL is a no-op. Never use free() on it (different allocators).
 * Thread safety: safe. Since: 0.1
 */
DIANA_API void diana_free(void *ptr) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_COMMON_H */
