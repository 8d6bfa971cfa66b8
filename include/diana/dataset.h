/*
 * libdiana - DICOM datasets: read files and buffers, read values as UTF-8,
 * walk every element (sequences included), DICOM JSON (PS3.18 Annex F).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DATASET_H
#define DIANA_DATASET_H

#include <diana/common.h>

DIANA_BEGIN_DECL

/**
 * A parsed DICOM dataset with its file meta information. Opaque.
 * Created by diana_dataset_open(), diana_dataset_open_memory() or
 * diana_dataset_from_json(); released with diana_dataset_free().
 * Reading functions take a const handle and may be called from several
 * threads at once on the same dataset; nothing else may run concurrently.
 */
typedef struct diana_dataset diana_dataset;

/** Flags of diana_dataset_options.flags. */
typedef enum diana_open_flag_t {
	/**
	 * Accept nonconformant input that can still be parsed unambiguously
	 * (missing file meta elements, invalid IS/DS/UI values, non-standard
	 * VR bytes followed by a 2-byte length when the dictionary VR has one,
	 * file meta without preamble, non-zero delimiter lengths (read as 0),
	 * encapsulated pixel data in an implicit VR dataset, file meta elements
	 * inside the dataset). Without it such files fail with DIANA_EDICOM: a
	 * pipeline that de-identifies data must not guess. Truncated or
	 * unparsable data (lengths beyond the input, missing delimiters, a
	 * dataset not encoded as its transfer syntax says, duplicate elements,
	 * defects GDCM has to repair to read the data) is refused either way.
	 */
	DIANA_OPEN_LENIENT = 1u << 0,
	/** Stop reading before Pixel Data (7FE0,0010): faster header-only access. */
	DIANA_OPEN_SKIP_PIXELS = 1u << 1
} diana_open_flag_t;

#define DIANA_DATASET_OPTIONS_VERSION 1

/** Options of diana_dataset_open*(). Initialise with DIANA_DATASET_OPTIONS_INIT. */
typedef struct diana_dataset_options {
	uint32_t version;  /**< DIANA_DATASET_OPTIONS_VERSION */
	uint32_t flags;    /**< DIANA_OPEN_* bitmask, default 0 */
	uint64_t max_size; /**< refuse inputs larger than this many bytes (DIANA_EINVAL); also
	                        bounds the inflated size of a deflated dataset (2 GiB when 0);
	                        0 = no limit */
} diana_dataset_options;

#define DIANA_DATASET_OPTIONS_INIT { DIANA_DATASET_OPTIONS_VERSION, 0, 0 }

/**
 * Initialise `opts` to defaults for the given version (normally
 * DIANA_DATASET_OPTIONS_VERSION). Returns DIANA_EUNSUPPORTED for an unknown
 * version. Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dataset_options_init(diana_dataset_options *opts, uint32_t version) DIANA_NOEXCEPT;

/**
 * Parse a DICOM file: a Part 10 file (preamble, "DICM", file meta, dataset)
 * in any transfer syntax whose UID is under 1.2.840.10008.1.2 (deflated
 * datasets are inflated), or a raw dataset without preamble and file meta
 * that begins with a group 0008 element (Implicit or Explicit VR Little
 * Endian, or Explicit VR Big Endian, detected). On success `*out` owns the
 * dataset. GDCM reads the bytes; libdiana checks what it read (see
 * doc/dataset.md).
 *
 * Checked in both modes: every length against the bytes that remain and
 * against its enclosing item or sequence (before anything is allocated),
 * sequence, item and pixel data delimiters, VR bytes, duplicate tags,
 * length of binary numbers, nesting (at most 64 levels of sequences, fewer
 * on threads with small stacks; at most 6 levels of sequences of undefined
 * length inside one of defined length), odd value lengths inside sequences
 * of defined length, and GDCM's warnings: a file GDCM had to repair is
 * refused. Checked unless DIANA_OPEN_LENIENT: IS syntax and 32-bit range,
 * DS syntax, UI syntax and 64-byte limit, a Transfer Syntax UID in the file
 * meta, and Media Storage SOP Class and Instance UIDs both present or both
 * absent (old files carry neither). Elements out of tag order are sorted;
 * public elements stored with VR UN get their dictionary VR; private
 * elements of implicit VR data are UN; encapsulated Pixel Data has VR OB.
 *
 * GDCM writes diagnostics on stderr by itself: the first call that reads
 * or writes a dataset (or diana_init(), whichever comes first) routes
 * GDCM's trace streams, which are process-wide, to the libdiana log
 * (domain "gdcm", debug level) for the life of the process, and keeps
 * GDCM's warnings on; diana_init() is not required.
 *
 * Errors: DIANA_EINVAL (NULL argument, bad options, input larger than
 * max_size), DIANA_ENOTFOUND / DIANA_EIO (file), DIANA_EDICOM (malformed
 * data, one-line reason naming tags and offsets, never values),
 * DIANA_EUNSUPPORTED (options version), DIANA_ENOMEM.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dataset_open(diana_dataset **out, const char *path,
                                 const diana_dataset_options *opts) DIANA_NOEXCEPT;

/**
 * Parse a DICOM file held in memory. `data` is copied as needed and may be
 * released when the call returns. Errors as diana_dataset_open().
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dataset_open_memory(diana_dataset **out, const uint8_t *data, size_t len,
                                        const diana_dataset_options *opts) DIANA_NOEXCEPT;

/**
 * Build a dataset from DICOM JSON (PS3.18 Annex F): one JSON object, or an
 * array holding exactly one object. Text is stored as UTF-8 with Specific
 * Character Set "ISO_IR 192" when any value is not plain ASCII.
 * InlineBinary values are decoded; BulkDataURI values are not fetched (the
 * element is kept empty). Accepts what diana_dataset_to_json() writes,
 * including its choices beyond Annex F; IS/DS given as strings are kept as
 * text (they may be invalid, as exported from a LENIENT dataset).
 * Group 0002 elements (DIANA_JSON_META output) become the file meta; its
 * Transfer Syntax UID is used for saving when it suits the pixel data,
 * else Explicit VR Little Endian. `len` may be 0 when `json` is
 * NUL-terminated; only white space may follow the JSON value.
 * Errors: DIANA_EINVAL, DIANA_EDICOM (not valid DICOM JSON: unknown
 * members, wrong value types, numbers out of range for their VR, '\' in a
 * value of a multi-valued VR, invalid UTF-8...), DIANA_ENOMEM.
 * Thread safety: safe. Since: 0.1
 */
DIANA_API int diana_dataset_from_json(diana_dataset **out, const char *json, size_t len) DIANA_NOEXCEPT;

/** Release a dataset. NULL is a no-op. Since: 0.1 */
DIANA_API void diana_dataset_free(diana_dataset *ds) DIANA_NOEXCEPT;

/**
 * Read one element's value as UTF-8 text.
 *
 * `key` names the element: a keyword ("PatientName"), a tag ("0010,0010",
 * "(0010,0010)" or "00100010"), or a path through sequences with item
 * indexes ("ReferencedSeriesSequence[0].SeriesInstanceUID",
 * "00081115[0].0020000E"); an omitted index means [0], and the last
 * element of a path takes no index. File meta elements (group 0002) are
 * found too, at the top level.
 *
 * Text values are converted from the Specific Character Set of the dataset
 * (or of the enclosing sequence item when it has its own), including ISO
 * 2022 code extensions, to UTF-8. Padding is removed from each value:
 * trailing spaces (NULs for UI), and leading spaces where they are not
 * significant (AE, AS, CS, DA, DS, DT, IS, LO, SH, TM, UI); DS and IS keep
 * their text. Numeric binary VRs (US, SS, UL, SL, UV, SV, FL, FD) and AT
 * ("GGGGEEEE") are formatted as text, FL/FD as the shortest decimal that
 * reads back to the same value. Multiple values are joined with '\'. A
 * present but empty element gives "".
 *
 * On success `*out` is a string to release with diana_free().
 * Errors: DIANA_EINVAL (bad key or arguments), DIANA_ENOTFOUND (absent),
 * DIANA_EUNSUPPORTED (binary VR or sequence: use diana_dataset_get_bytes()),
 * DIANA_EDICOM (value cannot be decoded), DIANA_ENOMEM.
 * Thread safety: safe on a const dataset. Since: 0.1
 */
DIANA_API int diana_dataset_get(const diana_dataset *ds, const char *key, char **out) DIANA_NOEXCEPT;

/**
 * Read one element's raw value bytes, as stored (little endian for binary
 * VRs after parsing; no character set conversion). For encapsulated Pixel
 * Data the fragments are not joined: DIANA_EUNSUPPORTED.
 * On success `*out` (release with diana_free(); NULL for an empty value) and
 * `*len` are set. Errors as diana_dataset_get().
 * Thread safety: safe on a const dataset. Since: 0.1
 */
DIANA_API int diana_dataset_get_bytes(const diana_dataset *ds, const char *key,
                                      uint8_t **out, size_t *len) DIANA_NOEXCEPT;

#define DIANA_ELEMENT_VERSION 1

/** One element as seen by diana_dataset_foreach(). Filled by the library. */
typedef struct diana_element {
	uint32_t version;    /**< DIANA_ELEMENT_VERSION of the library */
	uint32_t tag;        /**< (group << 16) | element */
	char vr[4];          /**< two-letter VR, NUL-terminated ("UN" when unknown) */
	int32_t depth;       /**< 0 at top level, +1 inside each sequence item */
	uint32_t vm;         /**< number of values (items for SQ, 1 for binary VRs), 0 when empty */
	uint64_t length;     /**< value length in bytes (SQ: as encoded); UINT64_MAX if undefined */
	const char *keyword; /**< dictionary keyword, "" for private/unknown tags */
	const char *path;    /**< key usable with diana_dataset_get(), e.g. "00081115[0].0020000E" */
} diana_element;

/** Visitor of diana_dataset_foreach(); return non-zero to stop the walk. */
typedef int (*diana_element_fn)(const diana_element *element, void *user_data);

/** Flags of diana_dataset_foreach(). */
typedef enum diana_foreach_flag_t {
	DIANA_FOREACH_META = 1u << 0 /**< visit the file meta group (0002) first */
} diana_foreach_flag_t;

/**
 * Visit every element in tag order, depth first: a sequence element is
 * visited, then the elements of each of its items. The element and its
 * strings are borrowed for the duration of the callback only.
 * Returns 0 after a full walk; if the callback returns non-zero, the walk
 * stops and that value is returned when negative, DIANA_EUSER otherwise.
 * Thread safety: safe on a const dataset. Since: 0.1
 */
DIANA_API int diana_dataset_foreach(const diana_dataset *ds, uint32_t flags,
                                    diana_element_fn fn, void *user_data) DIANA_NOEXCEPT;

/** Flags of diana_dataset_to_json(). */
typedef enum diana_json_flag_t {
	DIANA_JSON_PRETTY = 1u << 0,  /**< indent the output */
	DIANA_JSON_NO_BULK = 1u << 1, /**< leave out values of binary VRs (OB, OW, OF, OD, OL, OV, UN) longer than 1024 bytes: the element keeps its "vr" only */
	DIANA_JSON_META = 1u << 2     /**< include the file meta group (0002); not part of Annex F */
} diana_json_flag_t;

/**
 * Export as DICOM JSON (PS3.18 Annex F): one object, keys "GGGGEEEE" in tag
 * order, "vr", "Value" (PN as {"Alphabetic","Ideographic","Phonetic"}
 * without empty groups, IS/DS and binary numbers as JSON numbers, AT as
 * "GGGGEEEE", SQ as an array of item objects), "InlineBinary" (base64,
 * little endian) for binary VRs. An empty element has no "Value"; an empty
 * value among several is null. Text is UTF-8.
 * Beyond Annex F: encapsulated Pixel Data is {"vr":"OB","InlineBinary":
 * item stream} - its Basic Offset Table item then one item per fragment,
 * tags and lengths included, without the Sequence Delimitation Item (as
 * pydicom holds it); FL/FD values that are not finite are the strings
 * "NaN", "Infinity", "-Infinity"; UV/SV beyond +-2^53 are decimal
 * strings; FL values are written as the shortest decimal of their double
 * value (exact for any JSON reader); in a dataset opened with
 * DIANA_OPEN_LENIENT an invalid IS/DS value is a string (elsewhere
 * DIANA_EDICOM).
 * On success `*out` is a NUL-terminated string to release with diana_free().
 * Thread safety: safe on a const dataset. Since: 0.1
 */
DIANA_API int diana_dataset_to_json(const diana_dataset *ds, uint32_t flags, char **out) DIANA_NOEXCEPT;

/**
 * Serialise as a DICOM Part 10 file in memory (zeroed preamble, "DICM",
 * file meta, dataset) in the dataset's transfer syntax (Explicit VR Little
 * Endian for datasets built from JSON without a file meta), encoded by
 * GDCM. Sequence and item lengths, fragments and element values (odd
 * lengths included) are written as read, except that fragments are padded
 * to an even length and a sequence or item is written with an undefined
 * length when it holds an odd-length value or deeply nested sequences
 * (GDCM could not compute its length safely); group lengths are
 * recomputed; the file meta is completed (version, Media Storage UIDs from
 * (0008,0016)/(0008,0018) when both are known, Transfer Syntax, libdiana's
 * Implementation Class UID when none).
 * `*out` is released with diana_free().
 * Errors: DIANA_EINVAL, DIANA_EUNSUPPORTED (dataset opened with
 * DIANA_OPEN_SKIP_PIXELS), DIANA_EDICOM (encapsulated pixel data without a
 * transfer syntax, a value too long for its VR, a file meta element inside
 * the dataset), DIANA_ENOMEM.
 * Thread safety: safe on a const dataset. Since: 0.1
 */
DIANA_API int diana_dataset_save_memory(const diana_dataset *ds, uint8_t **out, size_t *len) DIANA_NOEXCEPT;

/**
 * Write as a DICOM Part 10 file, as diana_dataset_save_memory(). The file
 * appears atomically (written to a temporary name in the same folder,
 * flushed, then renamed), with mode 0600 when it did not exist and the
 * mode of the file it replaces otherwise; nothing is created when the
 * dataset cannot be encoded. Errors: those of
 * diana_dataset_save_memory(), DIANA_ENOTFOUND (no such folder), DIANA_EIO,
 * DIANA_ENOSPC.
 * Thread safety: safe on a const dataset. Since: 0.1
 */
DIANA_API int diana_dataset_save(const diana_dataset *ds, const char *path) DIANA_NOEXCEPT;

DIANA_END_DECL

#endif /* DIANA_DATASET_H */
