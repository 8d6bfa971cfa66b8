/*
 * libdiana - tests of lib/deid internals: the generated PS3.15 table and
 * the keyed pseudonyms. Known answers were computed with Python's hmac and
 * base64 modules (HMAC-SHA256, key = 32 x 'K').
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <string.h>

#include <criterion/criterion.h>

#include "deid/deid.h"
#include "deid/mint.h"
#include "deid/table.h"

#define KEY "KKKKKKKKKKKKKKKKKKKKKKKKKKKKKKKK"

static diana__mint *mint(void)
{
	diana__mint *m = NULL;
	cr_assert_eq(diana__mint_new(&m, (const uint8_t *)KEY, 32), 0);
	return m;
}

Test(table, rows_and_masks)
{
	size_t u = 0;
	cr_expect_eq(diana__deid_nrows + diana__deid_nmask_rows + 1, 621, "rows of the source table");
	for (size_t i = 1; i < diana__deid_nrows; i++)
		cr_expect_lt(diana__deid_rows[i - 1].tag, diana__deid_rows[i].tag, "sorted, no duplicates");
	for (size_t i = 0; i < diana__deid_nrows; i++)
		u += diana__deid_rows[i].basic == DIANA__A_U;
	cr_expect_eq(u, 54, "U rows");
	cr_expect_str_eq(diana__deid_basic_action(0x00100010), "Z");
	cr_expect_str_eq(diana__deid_basic_action(0x00100020), "Z/D");
	cr_expect_str_eq(diana__deid_basic_action(0x00081140), "X/Z/U*");
	cr_expect_str_eq(diana__deid_basic_action(0x00020003), "U");
	/* wildcards */
	cr_expect_str_eq(diana__deid_basic_action(0x50003000), "X");
	cr_expect_str_eq(diana__deid_basic_action(0x501E0010), "X");
	cr_expect_str_eq(diana__deid_basic_action(0x60023000), "X");
	cr_expect_str_eq(diana__deid_basic_action(0x601E4000), "X");
	cr_expect_null(diana__deid_basic_action(0x60020010), "overlay rows are not in the table");
	/* private: odd groups */
	cr_expect_str_eq(diana__deid_basic_action(0x00090010), "X");
	cr_expect_str_eq(diana__deid_basic_action(0x7FE11010), "X");
	/* unlisted */
	cr_expect_null(diana__deid_basic_action(0x00280010));
	cr_expect_null(diana__deid_basic_action(0x7FE00010));
	cr_expect(diana__deid_is_identifying(0x00100010));
	cr_expect(!diana__deid_is_identifying(0x00080060));
}

Test(table, resolution_under_options)
{
	const diana__deid_row *study_date = diana__deid_row_of(0x00080020);
	const diana__deid_row *station = diana__deid_row_of(0x00081010);
	const diana__deid_row *allergies = diana__deid_row_of(0x00102110);
	const diana__deid_row *ref_image = diana__deid_row_of(0x00081140);
	cr_assert(study_date && station && allergies && ref_image);
	cr_expect_eq(diana__deid_resolve(study_date, 0), DIANA__ACT_EMPTY);
	cr_expect_eq(diana__deid_resolve(study_date, 1u << 5), DIANA__ACT_KEEP);
	cr_expect_eq(diana__deid_resolve(study_date, 1u << 6), DIANA__ACT_SHIFT);
	cr_expect_eq(diana__deid_resolve(station, 0), DIANA__ACT_DUMMY, "X/Z/D -> D");
	cr_expect_eq(diana__deid_resolve(station, 1u << 2), DIANA__ACT_KEEP);
	cr_expect_eq(diana__deid_resolve(allergies, 1u << 4), DIANA__ACT_CLEAN);
	cr_expect_eq(diana__deid_resolve(ref_image, 0), DIANA__ACT_REFS);
	cr_expect_eq(diana__deid_resolve(ref_image, 1u << 1), DIANA__ACT_KEEP);
	/* a Clean option's C wins over a Retain option's K */
	{
		const diana__deid_row *cal = diana__deid_row_of(0x00181203); /* device K, dates K/C */
		cr_assert_not_null(cal);
		cr_expect_eq(diana__deid_resolve(cal, (1u << 2) | (1u << 6)), DIANA__ACT_SHIFT);
		cr_expect_eq(diana__deid_resolve(cal, 1u << 2), DIANA__ACT_KEEP);
	}
}

Test(mint, known_answers)
{
	diana__mint *m = mint();
	char uid[DIANA__UID_MAX + 1], code[DIANA__CODE_LEN + 1], name[DIANA__NAME_MAX];
	int days;
	cr_assert_eq(diana__mint_uid(m, "1.2.840.113619.2.55.3", 21, uid), 0);
	cr_expect_str_eq(uid, "2.25.119988468509381638018914867822479358951");
	cr_assert_eq(diana__mint_code(m, "id:", "PID-000456", 10, code), 0);
	cr_expect_str_eq(code, "RFGDRT3HU5FZISFO");
	cr_assert_eq(diana__mint_shift(m, "id:PID-000456", 13, 365, &days), 0);
	cr_expect_eq(days, -11);
	cr_assert_eq(diana__mint_name(m, "id:PID-000456", 13, NULL, name), 0);
	{
		char want[DIANA__NAME_MAX];
		snprintf(want, sizeof want, "%s^%s", diana__family_names[167], diana__given_names[69]);
		cr_expect_str_eq(name, want);
	}
	diana__mint_free(m);
}

Test(mint, names_avoid_the_real_one)
{
	diana__mint *m = mint();
	char name[DIANA__NAME_MAX], avoid[DIANA__NAME_MAX];
	cr_assert_eq(diana__mint_name(m, "id:PID-000456", 13, NULL, name), 0);
	/* the real name shares the family name: another candidate is taken */
	snprintf(avoid, sizeof avoid, "%.*s^SOMEONE", (int)(strchr(name, '^') - name), name);
	cr_assert_eq(diana__mint_name(m, "id:PID-000456", 13, avoid, avoid), 0);
	cr_expect_str_neq(avoid, name);
	diana__mint_free(m);
}

Test(mint, uids_are_valid)
{
	diana__mint *m = mint();
	char uid[DIANA__UID_MAX + 1], in[32];
	for (int i = 0; i < 2000; i++) {
		snprintf(in, sizeof in, "1.2.3.%d", i);
		cr_assert_eq(diana__mint_uid(m, in, strlen(in), uid), 0);
		cr_assert_leq(strlen(uid), 44);
		cr_assert_eq(strncmp(uid, "2.25.", 5), 0);
		cr_assert(uid[5] != '0' || uid[6] == 0, "leading zero");
		for (const char *c = uid + 5; *c; c++)
			cr_assert(*c >= '0' && *c <= '9');
	}
	diana__mint_free(m);
}

Test(mint, secret_too_short)
{
	diana__mint *m = NULL;
	cr_expect_eq(diana__mint_new(&m, (const uint8_t *)KEY, 31), DIANA_EINVAL);
	cr_expect_null(m);
}

Test(dates, shifts)
{
	char out[40];
	cr_expect_eq(diana__shift_da("20000301", 8, -1, out), 0);
	cr_expect_str_eq(out, "20000229");
	cr_expect_eq(diana__shift_da("19000301", 8, -1, out), 0);
	cr_expect_str_eq(out, "19000228", "1900 is not a leap year");
	cr_expect_eq(diana__shift_da("20240101", 8, -365, out), 0);
	cr_expect_str_eq(out, "20230101");
	cr_expect_eq(diana__shift_da("2024.03.15", 10, -15, out), 0);
	cr_expect_str_eq(out, "20240229");
	cr_expect_eq(diana__shift_da("20230229", 8, -1, out), -1, "not a date");
	cr_expect_eq(diana__shift_da("2023011", 7, -1, out), -1);
	cr_expect_eq(diana__shift_da("00010101", 8, -1, out), -1, "before year 1");
	cr_expect_eq(diana__shift_dt("20240101120000.5+0100", 21, -1, out, sizeof out), 0);
	cr_expect_str_eq(out, "20231231120000.5+0100");
	cr_expect_eq(diana__shift_dt("202401", 6, -1, out, sizeof out), 0);
	cr_expect_str_eq(out, "202312", "YYYYMM keeps its precision");
	cr_expect_eq(diana__shift_dt("2024", 4, -1, out, sizeof out), 0);
	cr_expect_str_eq(out, "2023");
	cr_expect_eq(diana__shift_dt("2024-0500", 9, -1, out, sizeof out), 0);
	cr_expect_str_eq(out, "2023-0500");
	cr_expect_eq(diana__shift_dt("20241x", 6, -1, out, sizeof out), -1);
}
