/*
 * libdiana - internal interface of lib/deid (profiles, pseudonyms, engine).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_DEID_H
#define DIANA_DEID_H

#include <stddef.h>
#include <stdint.h>

#include "profile.h.draft" /* moves to <diana/profile.h> when implemented */

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

#ifdef __cplusplus
}
#endif

#endif /* DIANA_DEID_H */
