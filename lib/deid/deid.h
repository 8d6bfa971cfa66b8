/*
 * libdiana - internal interface of lib/deid (profiles, pseudonyms, engine).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DEID_H
#define DIANA_DEID_H

#include <stddef.h>
#include <stdint.h>

#include <diana/profile.h>

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Basic Application Level Confidentiality Profile action of `tag` from the
 * generated PS3.15 Table E.1-1 (no options applied): "X", "Z", "D", "U",
 * "X/Z", "X/D", "X/Z/D", "Z/D", "X/Z/U*", or NULL when the table does not
 * list the tag. Private tags (odd groups) give "X"; group 50xx (curves) and
 * 60xx (overlay data/comments) follow the table's rows for those groups.
 */
const char *diana__deid_basic_action(uint32_t tag);

/** True when the basic profile changes the attribute (any action but K). */
int diana__deid_is_identifying(uint32_t tag);

/**
 * True when the engine, under `options` (DIANA_DEID_* bits) and without
 * overrides, writes the values of element `tag` (VR `vr`) unchanged:
 * Retain options (K), cleaning that keeps codes and numbers, Retain Long
 * Full Dates, the safe private list (`creator`: the private creator of the
 * element's block, NULL if unknown), elements the table does not list.
 * Removed, emptied, dummied, shifted and pseudonymised values give 0.
 */
int diana__deid_retains(uint32_t tag, const char *vr, const char *creator, uint32_t options);

/** Tag of an attribute key: "(gggg,eeee)", "gggg,eeee", "ggggeeee" or a keyword. */
int diana__deid_parse_key(const char *key, uint32_t *tag);

/** The DIANA_DEID_* bits libdiana knows. */
#define DIANA__DEID_ALL_OPTIONS 0x3FFu

/**
 * The constant values the engine writes (dummies, and the values it records
 * in (0012,0062) and (0028,0303)), NULL-terminated. They identify nobody: an
 * output value equal to one of them is no leak even when the original held
 * the same text (files de-identified before often do).
 */
extern const char *const diana__deid_dummy_values[];

/**
 * True when v[0..len) is a text the engine writes into De-identification
 * Method (0012,0063) or its code sequence (0012,0064): the profile's and
 * options' names and CID 7050 code meanings, "libdiana <version>", "libdiana
 * per-attribute overrides". Case-insensitive. Like the dummies, they
 * identify nobody.
 */
int diana__deid_is_method_text(const char *v, size_t len);

/* ---- keyed values for other modules (pseudonym.c) ---- */

/** The keyed code the engine writes for an ID value (AccessionNumber, PatientID...): 16 base32 chars. */
int diana__profile_pseudo_id(const diana_profile *p, const char *value, char out[17]);
/** Hex of HMAC-SHA256(secret, prefix || data): names things without revealing them. */
int diana__profile_hash_hex(const diana_profile *p, const char *prefix, const char *data, char out[65]);

#ifdef __cplusplus
}
#endif

#endif /* DIANA_DEID_H */
