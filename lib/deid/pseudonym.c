/*
 * libdiana - keyed values of a profile for the other modules (retrieval
 * jobs name folders, journal entries and report rows with them): the same
 * keyed code the engine writes for an ID, and a keyed hash.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include "../core/core.h"
#include "deid.h"
#include "engine.h"
#include "mint.h"

int diana__profile_pseudo_id(const diana_profile *p, const char *value, char out[17])
{
	if (!p || !p->mint || !value || !*value)
		return diana__error_set(DIANA_EINVAL, "pseudonym of an empty value");
	return diana__mint_code(p->mint, "id:", value, strlen(value), out);
}

int diana__profile_hash_hex(const diana_profile *p, const char *prefix, const char *data, char out[65])
{
	uint8_t mac[32];
	int rc, i;

	if (!p || !p->mint || !prefix || !data)
		return diana__error_set(DIANA_EINVAL, "keyed hash: NULL argument");
	rc = diana__mint_hmac(p->mint, prefix, data, strlen(data), mac);
	if (rc < 0)
		return rc;
	for (i = 0; i < 32; i++)
		snprintf(out + 2 * i, 3, "%02x", mac[i]);
	return 0;
}
