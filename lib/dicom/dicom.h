/*
 * libdiana - internal interface of lib/dicom (GDCM lives only here).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DICOM_H
#define DIANA_DICOM_H

#include <stddef.h>
#include <stdint.h>

#include <diana/dataset.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Called by diana_init()/diana_shutdown(): route GDCM's trace streams to
 *  the log (the reader and writer also do it on first use; the routing
 *  stays after shutdown, see gdcm_trace.cpp). */
int diana__dicom_global_init(void) DIANA_NOEXCEPT;
void diana__dicom_global_shutdown(void) DIANA_NOEXCEPT;

/**
 * Convert `len` bytes of a text value to UTF-8.
 * `charset` is the raw Specific Character Set value (may hold several
 * values separated by '\'; NULL or "" = default repertoire).
 * `is_pn` selects Person Name rules ('^' and '=' reset code extensions);
 * every value delimiter '\' resets them as well.
 * Returns 0 with a NUL-terminated malloc'd string, or DIANA_EDICOM /
 * DIANA_ENOMEM. Bytes that cannot be decoded are a DIANA_EDICOM error.
 */
int diana__charset_to_utf8(const char *charset, const char *bytes, size_t len, int is_pn,
                           char **out) DIANA_NOEXCEPT;

/** True when a Specific Character Set value is supported. */
int diana__charset_supported(const char *charset) DIANA_NOEXCEPT;

/* ---- the data dictionary (dict_c.cpp) ---- */

/** Tag of a public keyword ("PatientName"): 0, DIANA_ENOTFOUND, DIANA_EINVAL. */
int diana__dict_lookup(const char *keyword, uint32_t *tag) DIANA_NOEXCEPT;
/** Keyword of a public tag, "" for private, group length or unknown tags (static storage). */
const char *diana__dict_keyword(uint32_t tag) DIANA_NOEXCEPT;
/** The dictionary VR of a tag ("UN" when unknown; "LO" for private creators; US for US/SS). */
void diana__dict_vr(uint32_t tag, char vr[3]) DIANA_NOEXCEPT;

#ifdef __cplusplus
}
#endif

#endif /* DIANA_DICOM_H */
