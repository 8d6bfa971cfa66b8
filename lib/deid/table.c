/*
 * libdiana - lookups in the generated PS3.15 Table E.1-1.
 * SPDX-License-Identifier: MIT
 */

#include "deid.h"
#include "table.h"

#define OPT_MODIFIED_DATES 6 /* index of retain_long_modified_dates (DIANA_DEID_RETAIN_LONG_MODIFIED_DATES) */

const diana__deid_row *diana__deid_row_of(uint32_t tag)
{
	size_t lo = 0, hi = diana__deid_nrows;

	if ((tag >> 16) & 1)
		return &diana__deid_private_row;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		uint32_t t = diana__deid_rows[mid].tag;
		if (t == tag)
			return &diana__deid_rows[mid];
		if (t < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (size_t i = 0; i < diana__deid_nmask_rows; i++)
		if ((tag & diana__deid_mask_rows[i].mask) == diana__deid_mask_rows[i].tag)
			return &diana__deid_mask_rows[i];
	return NULL;
}

diana__act diana__deid_resolve(const diana__deid_row *row, uint32_t options)
{
	int clean = 0, shift = 0, keep = 0;

	for (int i = 0; i < DIANA__NOPTIONS; i++) {
		if (!(options & (1u << i)) || !row->opt[i])
			continue;
		if (row->opt[i] == DIANA__A_K)
			keep = 1;
		else if (i == OPT_MODIFIED_DATES)
			shift = 1;
		else
			clean = 1;
	}
	if (clean)
		return DIANA__ACT_CLEAN;
	if (shift)
		return DIANA__ACT_SHIFT;
	if (keep)
		return DIANA__ACT_KEEP;
	switch (row->basic) {
	case DIANA__A_X:
		return DIANA__ACT_REMOVE;
	case DIANA__A_Z:
	case DIANA__A_XZ:
		return DIANA__ACT_EMPTY;
	case DIANA__A_D:
	case DIANA__A_XD:
	case DIANA__A_XZD:
	case DIANA__A_ZD:
		return DIANA__ACT_DUMMY;
	case DIANA__A_U:
		return DIANA__ACT_UID;
	case DIANA__A_XZU:
		return DIANA__ACT_REFS;
	default:
		return DIANA__ACT_REMOVE; /* unknown cell: never keep */
	}
}

const char *diana__deid_basic_action(uint32_t tag)
{
	const diana__deid_row *row = diana__deid_row_of(tag);

	if (!row)
		return NULL;
	switch (row->basic) {
	case DIANA__A_X: return "X";
	case DIANA__A_Z: return "Z";
	case DIANA__A_D: return "D";
	case DIANA__A_U: return "U";
	case DIANA__A_XZ: return "X/Z";
	case DIANA__A_XD: return "X/D";
	case DIANA__A_XZD: return "X/Z/D";
	case DIANA__A_ZD: return "Z/D";
	case DIANA__A_XZU: return "X/Z/U*";
	default: return "X";
	}
}

int diana__deid_is_identifying(uint32_t tag)
{
	return diana__deid_row_of(tag) != NULL;
}
