/*
 * Unit tests of lib/pipeline/filter.c: study filters compiled from JSON and
 * matched against datasets built from DICOM JSON.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include <diana/diana.h>

#include "pipeline/filter.h"

static void setup(void)
{
	cr_assert_gt(diana_init(), 0);
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(filter, .init = setup, .fini = teardown, .timeout = 30);

/* ------------------------------------------------------------ datasets */

/* An emergency head CT. */
static const char HEAD_CT[] =
	"{"
	"\"00080008\":{\"vr\":\"CS\",\"Value\":[\"ORIGINAL\",\"PRIMARY\",\"AXIAL\"]},"
	"\"00080050\":{\"vr\":\"SH\",\"Value\":[\"ACC0001\"]},"
	"\"00080060\":{\"vr\":\"CS\",\"Value\":[\"CT\"]},"
	"\"00081030\":{\"vr\":\"LO\",\"Value\":[\"CT Head w/o contrast \"]},"
	"\"00081115\":{\"vr\":\"SQ\",\"Value\":[{\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4\"]}}]},"
	"\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Doe^John\"}]},"
	"\"00101010\":{\"vr\":\"AS\",\"Value\":[\"045Y\"]},"
	"\"00180015\":{\"vr\":\"CS\",\"Value\":[\"HEAD\"]},"
	"\"00180050\":{\"vr\":\"DS\",\"Value\":[2.5]},"
	"\"00200011\":{\"vr\":\"IS\",\"Value\":[3]},"
	"\"00204000\":{\"vr\":\"LT\",\"Value\":[\"left\\\\right\"]},"
	"\"00280010\":{\"vr\":\"US\",\"Value\":[512]},"
	"\"00280030\":{\"vr\":\"DS\",\"Value\":[0.25,0.5]},"
	"\"00321060\":{\"vr\":\"LO\"}"
	"}";

/* A pediatric hand radiograph; the age is set per test. */
static const char HAND_FMT[] =
	"{"
	"\"00080060\":{\"vr\":\"CS\",\"Value\":[\"CR\"]},"
	"\"00081030\":{\"vr\":\"LO\",\"Value\":[\"XR HAND LEFT 1 VIEW\"]},"
	"\"00101010\":{\"vr\":\"AS\",\"Value\":[\"%s\"]},"
	"\"00180015\":{\"vr\":\"CS\",\"Value\":[\"HAND\"]}"
	"}";

/* A brain MR. */
static const char BRAIN_MR[] =
	"{"
	"\"00080060\":{\"vr\":\"CS\",\"Value\":[\"MR\"]},"
	"\"00081030\":{\"vr\":\"LO\",\"Value\":[\"MRI BRAIN\"]},"
	"\"00101010\":{\"vr\":\"AS\",\"Value\":[\"070Y\"]}"
	"}";

static diana_dataset *ds_from(const char *json)
{
	diana_dataset *ds = NULL;
	int rc = diana_dataset_from_json(&ds, json, 0);
	cr_assert_eq(rc, 0, "dataset from JSON: %d (%s)", rc, diana_error_message());
	return ds;
}

static diana_dataset *hand(const char *age)
{
	char buf[sizeof HAND_FMT + 32];
	snprintf(buf, sizeof buf, HAND_FMT, age);
	return ds_from(buf);
}

/* ------------------------------------------------------------ helpers */

static diana__filter *load(const char *rules)
{
	cJSON *j = cJSON_Parse(rules);
	diana__filter *f = NULL;
	int rc;
	cr_assert_not_null(j, "test JSON does not parse: %s", rules);
	rc = diana__filter_new(j, &f);
	cJSON_Delete(j);
	cr_assert_eq(rc, 0, "%s: rc %d (%s)", rules, rc, diana_error_message());
	cr_assert_not_null(f);
	return f;
}

/* 1/0 for `rules` against `ds`. */
static int match(const char *rules, const diana_dataset *ds)
{
	diana__filter *f = load(rules);
	int rc = diana__filter_match(f, ds);
	diana__filter_free(f);
	cr_assert_geq(rc, 0, "%s: match error %d (%s)", rules, rc, diana_error_message());
	return rc;
}

#define YES(rules, ds) cr_expect_eq(match(rules, ds), 1, "should match: %s", rules)
#define NO(rules, ds) cr_expect_eq(match(rules, ds), 0, "should not match: %s", rules)

/* `rules` must fail with DIANA_EINVAL and exactly `message`. */
static void refused(const char *rules, const char *message)
{
	cJSON *j = cJSON_Parse(rules);
	diana__filter *f = (diana__filter *)&f;
	int rc;
	cr_assert_not_null(j, "test JSON does not parse: %s", rules);
	diana_error_clear();
	rc = diana__filter_new(j, &f);
	cJSON_Delete(j);
	cr_expect_eq(rc, DIANA_EINVAL, "%s: rc %d", rules, rc);
	cr_expect_null(f, "%s: *out not reset", rules);
	cr_expect_eq(diana_error_code(), DIANA_EINVAL, "%s", rules);
	cr_expect_str_eq(diana_error_message(), message, "%s\n  got:  %s\n  want: %s", rules,
	                 diana_error_message(), message);
	if (rc == 0)
		diana__filter_free(f);
}

/* As refused(), for messages whose end comes from the C library. */
static void refused_prefix(const char *rules, const char *prefix)
{
	cJSON *j = cJSON_Parse(rules);
	diana__filter *f = (diana__filter *)&f;
	int rc;
	cr_assert_not_null(j, "test JSON does not parse: %s", rules);
	diana_error_clear();
	rc = diana__filter_new(j, &f);
	cJSON_Delete(j);
	cr_expect_eq(rc, DIANA_EINVAL, "%s: rc %d", rules, rc);
	cr_expect_null(f, "%s: *out not reset", rules);
	cr_expect_eq(strncmp(diana_error_message(), prefix, strlen(prefix)), 0, "%s\n  got:  %s\n  want: %s...",
	             rules, diana_error_message(), prefix);
	cr_expect_gt(strlen(diana_error_message()), strlen(prefix), "%s: no reason given", rules);
	cr_expect_null(strchr(diana_error_message(), '\n'), "%s: multi-line message", rules);
	if (rc == 0)
		diana__filter_free(f);
}

/* ------------------------------------------------------------ operators */

Test(filter, equals)
{
	diana_dataset *ct = ds_from(HEAD_CT), *mr = ds_from(BRAIN_MR);
	YES("{\"tag\": \"Modality\", \"equals\": \"CT\"}", ct);
	NO("{\"tag\": \"Modality\", \"equals\": \"CT\"}", mr);
	/* tags in every spelling, file meta free */
	YES("{\"tag\": \"0008,0060\", \"equals\": \"CT\"}", ct);
	YES("{\"tag\": \"(0008,0060)\", \"equals\": \"CT\"}", ct);
	YES("{\"tag\": \"00080060\", \"equals\": \"CT\"}", ct);
	/* exact: no prefix, no substring */
	NO("{\"tag\": \"Modality\", \"equals\": \"C\"}", ct);
	NO("{\"tag\": \"Modality\", \"equals\": \"CT \"}", ct);
	NO("{\"tag\": \"Modality\", \"equals\": \"\"}", ct);
	/* padding removed by the dataset API: trailing space of the LO */
	YES("{\"tag\": \"StudyDescription\", \"equals\": \"CT Head w/o contrast\"}", ct);
	/* PN text, numbers as text */
	YES("{\"tag\": \"PatientName\", \"equals\": \"Doe^John\"}", ct);
	YES("{\"tag\": \"Rows\", \"equals\": \"512\"}", ct);
	YES("{\"tag\": \"SeriesNumber\", \"equals\": \"3\"}", ct);
	/* a present but empty element is "" */
	YES("{\"tag\": \"RequestedProcedureDescription\", \"equals\": \"\"}", ct);
	diana_dataset_free(ct);
	diana_dataset_free(mr);
}

Test(filter, equals_case)
{
	diana_dataset *ct = ds_from(HEAD_CT);
	/* case-sensitive by default */
	NO("{\"tag\": \"Modality\", \"equals\": \"ct\"}", ct);
	NO("{\"tag\": \"Modality\", \"equals\": \"ct\", \"case_sensitive\": true}", ct);
	YES("{\"tag\": \"Modality\", \"equals\": \"ct\", \"case_sensitive\": false}", ct);
	YES("{\"tag\": \"StudyDescription\", \"equals\": \"ct HEAD W/O CONTRAST\", \"case_sensitive\": false}", ct);
	NO("{\"tag\": \"StudyDescription\", \"equals\": \"ct HEAD\", \"case_sensitive\": false}", ct);
	NO("{\"tag\": \"Modality\", \"one_of\": [\"ct\", \"mr\"]}", ct);
	YES("{\"tag\": \"Modality\", \"one_of\": [\"mr\", \"ct\"], \"case_sensitive\": false}", ct);
	diana_dataset_free(ct);
}

Test(filter, one_of)
{
	diana_dataset *ct = ds_from(HEAD_CT), *mr = ds_from(BRAIN_MR), *xr = hand("012Y");
	const char *rule = "{\"tag\": \"Modality\", \"one_of\": [\"CT\", \"MR\"]}";
	YES(rule, ct);
	YES(rule, mr);
	NO(rule, xr);
	YES("{\"tag\": \"Modality\", \"one_of\": [\"CR\"]}", xr);
	NO("{\"tag\": \"Modality\", \"one_of\": [\"C\", \"CTA\", \"\"]}", ct);
	diana_dataset_free(ct);
	diana_dataset_free(mr);
	diana_dataset_free(xr);
}

Test(filter, regex)
{
	diana_dataset *ct = ds_from(HEAD_CT), *mr = ds_from(BRAIN_MR), *xr = hand("012Y");
	const char *rule = "{\"tag\": \"StudyDescription\", \"regex\": \"HEAD|BRAIN\"}";
	/* case-insensitive by default: "Head" */
	YES(rule, ct);
	YES(rule, mr);
	NO(rule, xr);
	NO("{\"tag\": \"StudyDescription\", \"regex\": \"HEAD|BRAIN\", \"case_sensitive\": true}", ct);
	YES("{\"tag\": \"StudyDescription\", \"regex\": \"HEAD|BRAIN\", \"case_sensitive\": true}", mr);
	YES("{\"tag\": \"StudyDescription\", \"regex\": \"head\", \"case_sensitive\": false}", ct);
	/* extended syntax, anchors apply to the value without padding */
	YES("{\"tag\": \"StudyDescription\", \"regex\": \"^ct (head|brain) w/o contrast$\"}", ct);
	YES("{\"tag\": \"StudyDescription\", \"regex\": \"^XR HAND (LEFT|RIGHT)\"}", xr);
	/* glibc's word boundaries (documented in doc/pipeline-filter.md) */
	YES("{\"tag\": \"StudyDescription\", \"regex\": \"\\\\bhand\\\\b\"}", xr);
	NO("{\"tag\": \"StudyDescription\", \"regex\": \"\\\\bhan\\\\b\"}", xr);
	YES("{\"tag\": \"Modality\", \"regex\": \"^(CT|MR)$\"}", mr);
	NO("{\"tag\": \"Modality\", \"regex\": \"^C$\"}", ct);
	YES("{\"tag\": \"Rows\", \"regex\": \"^[0-9]{3}$\"}", ct);
	diana_dataset_free(ct);
	diana_dataset_free(mr);
	diana_dataset_free(xr);
}

Test(filter, range_numbers)
{
	diana_dataset *ct = ds_from(HEAD_CT);
	/* DS */
	YES("{\"tag\": \"SliceThickness\", \"range\": [0, 3]}", ct);
	YES("{\"tag\": \"SliceThickness\", \"range\": [2.5, 2.5]}", ct); /* inclusive */
	NO("{\"tag\": \"SliceThickness\", \"range\": [2.6, 10]}", ct);
	NO("{\"tag\": \"SliceThickness\", \"range\": [0, 2.49]}", ct);
	/* open ends */
	YES("{\"tag\": \"SliceThickness\", \"range\": [null, 5]}", ct);
	YES("{\"tag\": \"SliceThickness\", \"range\": [1, null]}", ct);
	YES("{\"tag\": \"SliceThickness\", \"range\": [null, null]}", ct);
	NO("{\"tag\": \"SliceThickness\", \"range\": [null, 1]}", ct);
	NO("{\"tag\": \"SliceThickness\", \"range\": [3, null]}", ct);
	/* IS and US */
	YES("{\"tag\": \"SeriesNumber\", \"range\": [3, 3]}", ct);
	NO("{\"tag\": \"SeriesNumber\", \"range\": [4, null]}", ct);
	YES("{\"tag\": \"Rows\", \"range\": [256, 1024]}", ct);
	NO("{\"tag\": \"Rows\", \"range\": [-10, 511.5]}", ct);
	/* negative and exponent bounds */
	YES("{\"tag\": \"SliceThickness\", \"range\": [-1e3, 2.5e0]}", ct);
	/* non-numeric values never match, even with both ends open */
	NO("{\"tag\": \"Modality\", \"range\": [null, null]}", ct);
	NO("{\"tag\": \"StudyDescription\", \"range\": [null, null]}", ct);
	NO("{\"tag\": \"RequestedProcedureDescription\", \"range\": [null, null]}", ct);
	diana_dataset_free(ct);
}

Test(filter, range_ages)
{
	static const struct {
		const char *age;
		int under_18; /* [0, 18] */
		int under_1;  /* [0, 1] */
		int adult;    /* [18, null] */
	} cases[] = {
		{ "012Y", 1, 0, 0 },
		{ "000Y", 1, 1, 0 },
		{ "017Y", 1, 0, 0 },
		{ "018Y", 1, 0, 1 }, /* inclusive */
		{ "019Y", 0, 0, 1 },
		{ "045Y", 0, 0, 1 },
		{ "006M", 1, 1, 0 },   /* 0.5 */
		{ "012M", 1, 1, 0 },   /* 1.0: inclusive */
		{ "013M", 1, 0, 0 },
		{ "215M", 1, 0, 0 },   /* 17.9 */
		{ "240M", 0, 0, 1 },   /* 20 */
		{ "003W", 1, 1, 0 },
		{ "060W", 1, 0, 0 },   /* 1.15 */
		{ "010D", 1, 1, 0 },
		{ "400D", 1, 0, 0 },   /* 1.095 */
	};
	size_t i;
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		diana_dataset *ds = hand(cases[i].age);
		cr_expect_eq(match("{\"tag\": \"PatientAge\", \"range\": [0, 18]}", ds), cases[i].under_18,
		             "%s in [0,18]", cases[i].age);
		cr_expect_eq(match("{\"tag\": \"PatientAge\", \"range\": [0, 1]}", ds), cases[i].under_1,
		             "%s in [0,1]", cases[i].age);
		cr_expect_eq(match("{\"tag\": \"PatientAge\", \"range\": [18, null]}", ds), cases[i].adult,
		             "%s in [18,)", cases[i].age);
		diana_dataset_free(ds);
	}
	/* fractions: 6 months is half a year, 3 weeks is 21 days, 010D */
	{
		diana_dataset *ds = hand("006M");
		YES("{\"tag\": \"PatientAge\", \"range\": [0.5, 0.5]}", ds);
		diana_dataset_free(ds);
		ds = hand("003W");
		YES("{\"tag\": \"PatientAge\", \"range\": [0.0574, 0.0575]}", ds); /* 21 / 365.25 */
		diana_dataset_free(ds);
		ds = hand("010D");
		YES("{\"tag\": \"PatientAge\", \"range\": [0.0273, 0.0274]}", ds); /* 10 / 365.25 */
		diana_dataset_free(ds);
	}
	/* malformed ages are not numbers */
	{
		static const char *const bad[] = { "12 Y", "Y", "0012Y", "012y", "012X", "-12Y", "12.5Y" };
		for (i = 0; i < sizeof bad / sizeof bad[0]; i++) {
			diana_dataset *ds = hand(bad[i]);
			cr_expect_eq(match("{\"tag\": \"PatientAge\", \"range\": [null, null]}", ds), 0, "%s", bad[i]);
			diana_dataset_free(ds);
		}
	}
}

Test(filter, present)
{
	diana_dataset *ct = ds_from(HEAD_CT), *mr = ds_from(BRAIN_MR);
	YES("{\"tag\": \"BodyPartExamined\", \"present\": true}", ct);
	NO("{\"tag\": \"BodyPartExamined\", \"present\": true}", mr);
	NO("{\"tag\": \"BodyPartExamined\", \"present\": false}", ct);
	YES("{\"tag\": \"BodyPartExamined\", \"present\": false}", mr);
	/* empty element: present */
	YES("{\"tag\": \"RequestedProcedureDescription\", \"present\": true}", ct);
	/* a sequence, and paths through it */
	YES("{\"tag\": \"ReferencedSeriesSequence\", \"present\": true}", ct);
	YES("{\"tag\": \"ReferencedSeriesSequence[0].SeriesInstanceUID\", \"present\": true}", ct);
	YES("{\"tag\": \"ReferencedSeriesSequence.SeriesInstanceUID\", \"present\": true}", ct);
	NO("{\"tag\": \"ReferencedSeriesSequence[1].SeriesInstanceUID\", \"present\": true}", ct);
	YES("{\"tag\": \"ReferencedSeriesSequence[1].SeriesInstanceUID\", \"present\": false}", ct);
	NO("{\"tag\": \"ReferencedSeriesSequence.SeriesInstanceUID\", \"present\": true}", mr);
	/* path through an element that is not a sequence: absent */
	YES("{\"tag\": \"Modality.SeriesInstanceUID\", \"present\": false}", ct);
	diana_dataset_free(ct);
	diana_dataset_free(mr);
}

Test(filter, paths)
{
	diana_dataset *ct = ds_from(HEAD_CT);
	YES("{\"tag\": \"ReferencedSeriesSequence[0].SeriesInstanceUID\", \"equals\": \"1.2.3.4\"}", ct);
	YES("{\"tag\": \"00081115[0].0020000E\", \"regex\": \"^1\\\\.2\\\\.\"}", ct);
	NO("{\"tag\": \"ReferencedSeriesSequence[3].SeriesInstanceUID\", \"regex\": \".*\"}", ct);
	NO("{\"tag\": \"Modality.SeriesInstanceUID\", \"regex\": \".*\"}", ct);
	diana_dataset_free(ct);
}

/* ------------------------------------------------------------ missing elements */

Test(filter, missing_never_matches)
{
	diana_dataset *mr = ds_from(BRAIN_MR); /* no BodyPartExamined, no SliceThickness */
	NO("{\"tag\": \"BodyPartExamined\", \"equals\": \"\"}", mr);
	NO("{\"tag\": \"BodyPartExamined\", \"one_of\": [\"HEAD\", \"\"]}", mr);
	NO("{\"tag\": \"BodyPartExamined\", \"regex\": \".*\"}", mr);
	NO("{\"tag\": \"SliceThickness\", \"range\": [null, null]}", mr);
	/* ... so their negation does */
	YES("{\"not\": {\"tag\": \"BodyPartExamined\", \"equals\": \"HEAD\"}}", mr);
	YES("{\"not\": {\"tag\": \"SliceThickness\", \"range\": [0, 10]}}", mr);
	/* a sequence cannot be compared as text: no match (a private one: public
	 * sequences are refused at load, see errors_name_the_rule) */
	diana_dataset *priv = ds_from("{\"00090010\":{\"vr\":\"LO\",\"Value\":[\"ACME\"]},"
	                              "\"00091001\":{\"vr\":\"SQ\",\"Value\":[{}]}}");
	YES("{\"tag\": \"0009,1001\", \"present\": true}", priv);
	NO("{\"tag\": \"0009,1001\", \"regex\": \".*\"}", priv);
	NO("{\"tag\": \"0009,1001\", \"range\": [null, null]}", priv);
	diana_dataset_free(priv);
	diana_dataset_free(mr);
}

/* ------------------------------------------------------------ multi-valued */

Test(filter, multi_valued)
{
	diana_dataset *ct = ds_from(HEAD_CT);
	/* ImageType ORIGINAL\PRIMARY\AXIAL: any value */
	YES("{\"tag\": \"ImageType\", \"equals\": \"PRIMARY\"}", ct);
	YES("{\"tag\": \"ImageType\", \"equals\": \"AXIAL\"}", ct);
	NO("{\"tag\": \"ImageType\", \"equals\": \"ORIGINAL\\\\PRIMARY\\\\AXIAL\"}", ct);
	NO("{\"tag\": \"ImageType\", \"equals\": \"LOCALIZER\"}", ct);
	YES("{\"tag\": \"ImageType\", \"one_of\": [\"DERIVED\", \"AXIAL\"]}", ct);
	YES("{\"tag\": \"ImageType\", \"regex\": \"^axial$\"}", ct);
	NO("{\"tag\": \"ImageType\", \"regex\": \"PRIMARY.AXIAL\"}", ct);
	/* PixelSpacing 0.25\0.5 */
	YES("{\"tag\": \"PixelSpacing\", \"range\": [0.5, 1]}", ct);
	YES("{\"tag\": \"PixelSpacing\", \"range\": [0, 0.3]}", ct);
	NO("{\"tag\": \"PixelSpacing\", \"range\": [0.3, 0.4]}", ct);
	/* LT is single-valued: its backslash is text */
	YES("{\"tag\": \"ImageComments\", \"equals\": \"left\\\\right\"}", ct);
	NO("{\"tag\": \"ImageComments\", \"equals\": \"left\"}", ct);
	YES("{\"tag\": \"ImageComments\", \"regex\": \"^left.right$\"}", ct);
	diana_dataset_free(ct);
}

/* ------------------------------------------------------------ combinations */

Test(filter, all_any_not)
{
	diana_dataset *ct = ds_from(HEAD_CT), *mr = ds_from(BRAIN_MR), *xr = hand("008Y");
	YES("{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}]}", ct);
	NO("{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}, {\"tag\": \"Rows\", \"range\": [1024, null]}]}", ct);
	YES("{\"any\": [{\"tag\": \"Modality\", \"equals\": \"MR\"}, {\"tag\": \"Rows\", \"range\": [1, null]}]}", ct);
	NO("{\"any\": [{\"tag\": \"Modality\", \"equals\": \"MR\"}, {\"tag\": \"Rows\", \"range\": [1024, null]}]}", ct);
	YES("{\"not\": {\"tag\": \"Modality\", \"equals\": \"MR\"}}", ct);
	NO("{\"not\": {\"tag\": \"Modality\", \"equals\": \"CT\"}}", ct);
	YES("{\"not\": {\"not\": {\"tag\": \"Modality\", \"equals\": \"CT\"}}}", ct);
	/* nested */
	{
		const char *peds_hand =
			"{\"all\": ["
			"  {\"tag\": \"Modality\", \"one_of\": [\"CR\", \"DX\"]},"
			"  {\"any\": [{\"tag\": \"BodyPartExamined\", \"equals\": \"HAND\"},"
			"             {\"tag\": \"StudyDescription\", \"regex\": \"\\\\bhand\\\\b\"}]},"
			"  {\"tag\": \"PatientAge\", \"range\": [0, 18]},"
			"  {\"not\": {\"any\": [{\"tag\": \"StudyDescription\", \"regex\": \"finger|thumb\"},"
			"                     {\"tag\": \"ImageType\", \"equals\": \"DERIVED\"}]}}"
			"]}";
		diana_dataset *adult = hand("045Y");
		YES(peds_hand, xr);
		NO(peds_hand, adult);
		NO(peds_hand, ct);
		NO(peds_hand, mr);
		diana_dataset_free(adult);
	}
	diana_dataset_free(ct);
	diana_dataset_free(mr);
	diana_dataset_free(xr);
}

/* The filter of issue 6: emergency head CTs. */
Test(filter, issue_example_must_not_match_others)
{
	const char *rules = "{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"},"
	                    "          {\"tag\": \"StudyDescription\", \"regex\": \"HEAD|BRAIN\"}]}";
	diana_dataset *ct = ds_from(HEAD_CT), *mr = ds_from(BRAIN_MR), *xr = hand("012Y");
	diana_dataset *ct_chest = ds_from("{\"00080060\":{\"vr\":\"CS\",\"Value\":[\"CT\"]},"
	                                  "\"00081030\":{\"vr\":\"LO\",\"Value\":[\"CT CHEST PE\"]}}");
	diana_dataset *ct_nodesc = ds_from("{\"00080060\":{\"vr\":\"CS\",\"Value\":[\"CT\"]}}");
	YES(rules, ct);
	NO(rules, mr);      /* brain, but MR */
	NO(rules, xr);
	NO(rules, ct_chest); /* CT, not head */
	NO(rules, ct_nodesc); /* no description: never matches the regex */
	diana_dataset_free(ct);
	diana_dataset_free(mr);
	diana_dataset_free(xr);
	diana_dataset_free(ct_chest);
	diana_dataset_free(ct_nodesc);
}

Test(filter, match_all)
{
	diana_dataset *ct = ds_from(HEAD_CT);
	diana__filter *f = NULL;
	cr_assert_eq(diana__filter_new(NULL, &f), 0);
	cr_expect_eq(diana__filter_match(f, ct), 1);
	diana__filter_free(f);
	f = load("{}");
	cr_expect_eq(diana__filter_match(f, ct), 1);
	diana__filter_free(f);
	f = load("null");
	cr_expect_eq(diana__filter_match(f, ct), 1);
	cr_expect_eq(diana__filter_match(f, NULL), DIANA_EINVAL);
	cr_expect_eq(diana__filter_match(NULL, ct), DIANA_EINVAL);
	diana__filter_free(f);
	diana__filter_free(NULL);
	cr_expect_eq(diana__filter_new(NULL, NULL), DIANA_EINVAL);
	diana_dataset_free(ct);
}

Test(filter, depth_limit)
{
	char buf[2048];
	size_t n = 0;
	int i;
	diana_dataset *ct = ds_from(HEAD_CT);
	diana__filter *f;
	/* 32 nested "not": accepted (even count: same as the rule) */
	for (i = 0; i < 32; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"not\": ");
	n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"tag\": \"Modality\", \"equals\": \"CT\"}");
	for (i = 0; i < 32; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
	f = load(buf);
	cr_expect_eq(diana__filter_match(f, ct), 1);
	diana__filter_free(f);
	/* 33: refused */
	n = 0;
	for (i = 0; i < 33; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"not\": ");
	n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"tag\": \"Modality\", \"equals\": \"CT\"}");
	for (i = 0; i < 33; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "}");
	{
		char want[512];
		size_t w = (size_t)snprintf(want, sizeof want, "filter");
		for (i = 0; i < 33; i++)
			w += (size_t)snprintf(want + w, sizeof want - w, ".not");
		snprintf(want + w, sizeof want - w, ": rules nested deeper than 32 levels");
		refused(buf, want);
	}
	/* 33 levels of all[0] */
	n = 0;
	for (i = 0; i < 33; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"all\": [");
	n += (size_t)snprintf(buf + n, sizeof buf - n, "{\"tag\": \"Modality\", \"equals\": \"CT\"}");
	for (i = 0; i < 33; i++)
		n += (size_t)snprintf(buf + n, sizeof buf - n, "]}");
	{
		cJSON *j = cJSON_Parse(buf);
		f = (diana__filter *)&f;
		cr_assert_not_null(j);
		cr_expect_eq(diana__filter_new(j, &f), DIANA_EINVAL);
		cr_expect_null(f);
		cr_expect_not_null(strstr(diana_error_message(), "nested deeper than 32 levels"), "%s",
		                   diana_error_message());
		cr_expect_eq(strncmp(diana_error_message(), "filter.all[0].all[0].all[0]", 27), 0, "%s",
		             diana_error_message());
		cJSON_Delete(j);
	}
	diana_dataset_free(ct);
}

/* ------------------------------------------------------------ errors */

Test(filter, errors_name_the_rule)
{
	/* the brief's example */
	refused("{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"},"
	        "          {\"any\": [{\"tag\": \"Modality\", \"equal\": \"CT\"}]}]}",
	        "filter.all[1].any[0]: unknown operator 'equal'");
	refused("{\"tag\": \"Modality\", \"equals\": \"CT\", \"regex\": \"C\"}",
	        "filter: two operators 'equals' and 'regex' in one rule");
	refused("{\"any\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}], \"not\": {\"tag\": \"Modality\", \"equals\": \"CT\"}}",
	        "filter: two operators 'any' and 'not' in one rule");
	refused("{\"not\": {\"tag\": \"Modality\", \"equals\": \"CT\", \"flags\": 1}}",
	        "filter.not: unknown operator 'flags'");
	refused("{\"tag\": \"Modality\", \"equals\": \"CT\", \"equals\": \"MR\"}",
	        "filter: duplicate key 'equals'");
	/* regexes */
	refused_prefix("{\"any\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}, {\"tag\": \"StudyDescription\", \"regex\": \"HEAD(\"}]}",
	               "filter.any[1]: invalid regex: ");
	refused_prefix("{\"not\": {\"tag\": \"StudyDescription\", \"regex\": \"[a-\"}}", "filter.not: invalid regex: ");
	refused_prefix("{\"tag\": \"StudyDescription\", \"regex\": \"*x{2,1}\", \"case_sensitive\": true}",
	               "filter: invalid regex: ");
	refused("{\"tag\": \"StudyDescription\", \"regex\": 3}", "filter: 'regex' needs a string");
	/* tags */
	refused("{\"all\": [{\"tag\": \"Modalty\", \"equals\": \"CT\"}]}",
	        "filter.all[0]: unknown keyword 'Modalty' in key 'Modalty'");
	refused("{\"all\": [{\"tag\": \"ReferencedSeriesSequence[0].SeriesUID\", \"present\": true}]}",
	        "filter.all[0]: unknown keyword 'SeriesUID' in key 'ReferencedSeriesSequence[0].SeriesUID'");
	refused("{\"tag\": \"Modality[0]\", \"present\": true}",
	        "filter: item index on the last element of key 'Modality[0]'");
	refused("{\"tag\": \"ReferencedSeriesSequence[x].Modality\", \"present\": true}",
	        "filter: invalid item index in key 'ReferencedSeriesSequence[x].Modality'");
	refused("{\"tag\": \"Patient Name\", \"equals\": \"x\"}", "filter: invalid key 'Patient Name'");
	refused("{\"tag\": \"Modality.\", \"present\": true}", "filter: invalid key 'Modality.'");
	refused("{\"tag\": \"\", \"present\": true}", "filter: 'tag' is empty");
	refused("{\"tag\": 8, \"present\": true}", "filter: 'tag' must be a string");
	refused("{\"equals\": \"CT\"}", "filter: 'equals' needs a 'tag'");
	refused("{\"tag\": \"Modality\"}", "filter: rule has no operator");
	refused("{\"tag\": \"ReferencedSeriesSequence\", \"equals\": \"x\"}",
	        "filter: 'ReferencedSeriesSequence' has VR SQ: only 'present' applies");
	refused("{\"tag\": \"PixelData\", \"regex\": \"x\"}", "filter: 'PixelData' has VR OW: only 'present' applies");
	/* shapes */
	refused("[]", "filter: a rule must be a JSON object");
	refused("{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}, {}]}", "filter.all[1]: empty rule");
	refused("{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}, \"CT\"]}",
	        "filter.all[1]: a rule must be a JSON object");
	refused("{\"all\": []}", "filter: 'all' needs at least one rule");
	refused("{\"any\": {\"tag\": \"Modality\", \"equals\": \"CT\"}}", "filter: 'any' needs an array of rules");
	refused("{\"not\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}]}", "filter.not: a rule must be a JSON object");
	refused("{\"all\": [{\"tag\": \"Modality\", \"equals\": \"CT\"}], \"tag\": \"Modality\"}",
	        "filter: 'all' takes no 'tag'");
	refused("{\"not\": {\"tag\": \"Modality\", \"equals\": \"CT\"}, \"case_sensitive\": false}",
	        "filter: 'not' takes no 'case_sensitive'");
	/* operator values */
	refused("{\"tag\": \"SeriesNumber\", \"equals\": 3}",
	        "filter: 'equals' needs a string (use 'range' for numbers)");
	refused("{\"tag\": \"Modality\", \"one_of\": \"CT\"}", "filter: 'one_of' needs an array of strings");
	refused("{\"tag\": \"Modality\", \"one_of\": [\"CT\", 1]}", "filter: 'one_of' needs an array of strings");
	refused("{\"tag\": \"Modality\", \"one_of\": []}", "filter: 'one_of' needs at least one string");
	refused("{\"tag\": \"PatientAge\", \"range\": [0]}", "filter: 'range' needs [min, max] (numbers or null)");
	refused("{\"tag\": \"PatientAge\", \"range\": [0, 1, 2]}", "filter: 'range' needs [min, max] (numbers or null)");
	refused("{\"tag\": \"PatientAge\", \"range\": [\"0\", 18]}", "filter: 'range' needs [min, max] (numbers or null)");
	refused("{\"tag\": \"PatientAge\", \"range\": {\"min\": 0}}", "filter: 'range' needs [min, max] (numbers or null)");
	refused("{\"tag\": \"PatientAge\", \"range\": [18, 0]}", "filter: 'range' minimum is greater than its maximum");
	refused("{\"tag\": \"PatientAge\", \"range\": [0, 18], \"case_sensitive\": false}",
	        "filter: 'case_sensitive' does not apply to 'range'");
	refused("{\"tag\": \"Modality\", \"present\": \"yes\"}", "filter: 'present' needs true or false");
	refused("{\"tag\": \"Modality\", \"equals\": \"CT\", \"case_sensitive\": 0}",
	        "filter: 'case_sensitive' must be true or false");
}

/* ------------------------------------------------------------ threads */

struct shared {
	const diana__filter *f;
	const diana_dataset *yes, *no;
	int failures;
};

static void *worker(void *arg)
{
	struct shared *s = arg;
	int i, bad = 0;
	for (i = 0; i < 2000; i++) {
		if (diana__filter_match(s->f, s->yes) != 1)
			bad++;
		if (diana__filter_match(s->f, s->no) != 0)
			bad++;
	}
	return (void *)(intptr_t)bad;
}

Test(filter, threads_share_one_filter)
{
	struct shared s;
	pthread_t t[4];
	int i;
	diana__filter *f = load("{\"all\": [{\"tag\": \"StudyDescription\", \"regex\": \"(head|brain).*contrast\"},"
	                        "{\"tag\": \"ImageType\", \"one_of\": [\"AXIAL\"]}, {\"tag\": \"Rows\", \"range\": [1, null]}]}");
	s.f = f;
	s.yes = ds_from(HEAD_CT);
	s.no = ds_from(BRAIN_MR);
	for (i = 0; i < 4; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, worker, &s), 0);
	for (i = 0; i < 4; i++) {
		void *r;
		pthread_join(t[i], &r);
		cr_expect_eq((intptr_t)r, 0, "thread %d: %d wrong answers", i, (int)(intptr_t)r);
	}
	diana__filter_free(f);
	diana_dataset_free((diana_dataset *)s.yes);
	diana_dataset_free((diana_dataset *)s.no);
}
