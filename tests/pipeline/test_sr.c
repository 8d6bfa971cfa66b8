/*
 * Tests of lib/pipeline/sr.c (diana__sr_build): Comprehensive SRs built
 * from sample model results about a synthetic source instance, read back
 * with diana_dataset_open_memory() (values at their paths, the source's
 * Study Instance UID, new valid UIDs, UTF-8 text), checked independently
 * by DCMTK's dsrdump (and dciodvfy when installed), malformed results
 * refused with a one-line message naming the position, never a value.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <diana/diana.h>

#include "pipeline/sr.h"

#define SR_CLASS "1.2.840.10008.5.1.4.1.1.88.33"
#define SRC_STUDY "1.2.826.0.1.3680043.10.543.1.20240101.1"
#define SRC_SERIES "1.2.826.0.1.3680043.10.543.2.20240101.1"
#define SRC_SOP "1.2.826.0.1.3680043.10.543.3.20240101.1.1"
#define CT_CLASS "1.2.840.10008.5.1.4.1.1.2"

/* a CT instance header as DICOM JSON; `drop` names a member left out */
static diana_dataset *source(const char *drop)
{
	static const char *members[] = {
		"\"00080005\":{\"vr\":\"CS\",\"Value\":[\"ISO_IR 192\"]}",
		"\"00080016\":{\"vr\":\"UI\",\"Value\":[\"" CT_CLASS "\"]}",
		"\"00080018\":{\"vr\":\"UI\",\"Value\":[\"" SRC_SOP "\"]}",
		"\"00080020\":{\"vr\":\"DA\",\"Value\":[\"20240101\"]}",
		"\"00080030\":{\"vr\":\"TM\",\"Value\":[\"101500\"]}",
		"\"00080050\":{\"vr\":\"SH\",\"Value\":[\"ACC0001\"]}",
		"\"00080060\":{\"vr\":\"CS\",\"Value\":[\"CT\"]}",
		"\"00080090\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"House^Gregory\"}]}",
		"\"00081030\":{\"vr\":\"LO\",\"Value\":[\"CT HEAD\"]}",
		"\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Müller^Jürgen\",\"Ideographic\":\"ミュラー^ユルゲン\"}]}",
		"\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-42\"]}",
		"\"00100030\":{\"vr\":\"DA\",\"Value\":[\"19700203\"]}",
		"\"00100040\":{\"vr\":\"CS\",\"Value\":[\"M\"]}",
		"\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"" SRC_STUDY "\"]}",
		"\"0020000E\":{\"vr\":\"UI\",\"Value\":[\"" SRC_SERIES "\"]}",
		"\"00200010\":{\"vr\":\"SH\",\"Value\":[\"S1\"]}",
	};
	char buf[4096] = "{";
	diana_dataset *ds = NULL;

	for (size_t i = 0; i < sizeof members / sizeof members[0]; i++) {
		if (drop && !strncmp(members[i] + 1, drop, 8))
			continue;
		if (buf[1])
			strcat(buf, ",");
		strcat(buf, members[i]);
	}
	strcat(buf, "}");
	cr_assert_eq(diana_dataset_from_json(&ds, buf, 0), 0, "%s", diana_error_message());
	return ds;
}

static cJSON *parse(const char *text)
{
	cJSON *j = cJSON_Parse(text);
	cr_assert_not_null(j, "bad test JSON: %s", text);
	return j;
}

static const char *SAMPLE =
	"{\"summary\": \"Keine Blutung — no hemorrhage ✓\","
	" \"model\": \"ignored unknown key\","
	" \"items\": ["
	"  {\"type\": \"text\", \"name\": \"Finding\", \"value\": \"Ventrikel normal weit; Mittellinie zentriert.\"},"
	"  {\"type\": \"code\", \"name\": \"Finding\", \"code\": {\"value\": \"50960005\", \"scheme\": \"SCT\", \"meaning\": \"Hemorrhage\"}},"
	"  {\"type\": \"num\", \"name\": \"Bone age\", \"value\": 12.5, \"unit\": \"a\"},"
	"  {\"type\": \"num\", \"name\": {\"value\": \"113011\", \"scheme\": \"DCM\", \"meaning\": \"Document Title Modifier\"},"
	"   \"value\": 0.1, \"unit\": \"{ratio}\"},"
	"  {\"type\": \"num\", \"name\": \"Probability\", \"value\": 0.9312}"
	"]}";

/* build from `result_text` about `study`; returns the reopened SR */
static diana_dataset *build_sr(const diana_dataset *study, const char *result_text, const diana__sr_options *o,
                               uint8_t **bytes, size_t *len)
{
	cJSON *r = parse(result_text);
	uint8_t *b = NULL;
	size_t n = 0;
	diana_dataset *sr = NULL;
	int rc = diana__sr_build(study, r, o, &b, &n);

	cJSON_Delete(r);
	cr_assert_eq(rc, 0, "sr_build: %s", diana_error_message());
	cr_assert_not_null(b);
	cr_assert_gt(n, 132);
	cr_assert_eq(memcmp(b + 128, "DICM", 4), 0);
	/* strict (not lenient) reading: valid IS/DS/UI, lengths, file meta */
	cr_assert_eq(diana_dataset_open_memory(&sr, b, n, NULL), 0, "reopen: %s", diana_error_message());
	if (bytes) {
		*bytes = b;
		*len = n;
	} else {
		diana_free(b);
	}
	return sr;
}

static char *get(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	int rc = diana_dataset_get(ds, key, &v);
	cr_assert_eq(rc, 0, "get %s: %s", key, diana_error_message());
	return v;
}

static void expect(const diana_dataset *ds, const char *key, const char *want)
{
	char *v = get(ds, key);
	cr_expect_str_eq(v, want, "%s", key);
	diana_free(v);
}

static void expect_absent(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	cr_expect_eq(diana_dataset_get(ds, key, &v), DIANA_ENOTFOUND, "%s should be absent", key);
	diana_free(v);
}

static int valid_uid(const char *u)
{
	size_t n = strlen(u);
	int start = 1;
	if (n == 0 || n > 64)
		return 0;
	for (size_t i = 0; i < n; i++) {
		if (u[i] == '.') {
			if (start)
				return 0;
			start = 1;
		} else if (u[i] >= '0' && u[i] <= '9') {
			if (start && u[i] == '0' && i + 1 < n && u[i + 1] != '.')
				return 0; /* leading zero */
			start = 0;
		} else {
			return 0;
		}
	}
	return !start;
}

TestSuite(sr, .timeout = 60);

Test(sr, sample_result_at_its_paths)
{
	diana_dataset *study = source(NULL);
	diana__sr_options o = { "ich-detector", NULL, NULL };
	diana_dataset *sr = build_sr(study, SAMPLE, &o, NULL, NULL);

	/* SOP Common, series, equipment, document general */
	expect(sr, "SOPClassUID", SR_CLASS);
	expect(sr, "MediaStorageSOPClassUID", SR_CLASS);
	expect(sr, "SpecificCharacterSet", "ISO_IR 192");
	expect(sr, "Modality", "SR");
	expect(sr, "SeriesNumber", "9901");
	expect(sr, "SeriesDescription", "DIANA ich-detector");
	expect(sr, "Manufacturer", "libdiana");
	expect(sr, "ManufacturerModelName", "ich-detector");
	expect(sr, "InstanceNumber", "1");
	expect(sr, "CompletionFlag", "COMPLETE");
	expect(sr, "VerificationFlag", "UNVERIFIED");
	expect(sr, "CodingSchemeIdentificationSequence[0].CodingSchemeDesignator", "99DIANA");
	char *d = get(sr, "ContentDate"), *t = get(sr, "ContentTime"), *cd = get(sr, "InstanceCreationDate");
	cr_expect_eq(strlen(d), 8);
	cr_expect_eq(strlen(t), 6);
	cr_expect_str_eq(cd, d);
	diana_free(d);
	diana_free(t);
	diana_free(cd);

	/* patient and study copied, same study */
	expect(sr, "StudyInstanceUID", SRC_STUDY);
	expect(sr, "PatientName", "Müller^Jürgen=ミュラー^ユルゲン");
	expect(sr, "PatientID", "PID-42");
	expect(sr, "PatientBirthDate", "19700203");
	expect(sr, "PatientSex", "M");
	expect(sr, "StudyDate", "20240101");
	expect(sr, "StudyTime", "101500");
	expect(sr, "AccessionNumber", "ACC0001");
	expect(sr, "ReferringPhysicianName", "House^Gregory");
	expect(sr, "StudyID", "S1");
	expect(sr, "StudyDescription", "CT HEAD");

	/* evidence: study > series > instance of the source */
	expect(sr, "CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID", SRC_STUDY);
	expect(sr, "CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0].SeriesInstanceUID",
	       SRC_SERIES);
	expect(sr, "CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]."
	           "ReferencedSOPSequence[0].ReferencedSOPClassUID", CT_CLASS);
	expect(sr, "CurrentRequestedProcedureEvidenceSequence[0].ReferencedSeriesSequence[0]."
	           "ReferencedSOPSequence[0].ReferencedSOPInstanceUID", SRC_SOP);

	/* content: root container */
	expect(sr, "ValueType", "CONTAINER");
	expect(sr, "ContinuityOfContent", "SEPARATE");
	expect(sr, "ConceptNameCodeSequence[0].CodeValue", "RESULT");
	expect(sr, "ConceptNameCodeSequence[0].CodingSchemeDesignator", "99DIANA");
	expect(sr, "ConceptNameCodeSequence[0].CodeMeaning", "AI result");

	/* [0] summary: TEXT, DCM Impression, UTF-8 kept */
	expect(sr, "ContentSequence[0].RelationshipType", "CONTAINS");
	expect(sr, "ContentSequence[0].ValueType", "TEXT");
	expect(sr, "ContentSequence[0].ConceptNameCodeSequence[0].CodeValue", "121073");
	expect(sr, "ContentSequence[0].ConceptNameCodeSequence[0].CodingSchemeDesignator", "DCM");
	expect(sr, "ContentSequence[0].TextValue", "Keine Blutung — no hemorrhage ✓");

	/* [1] text item, private concept name */
	expect(sr, "ContentSequence[1].ValueType", "TEXT");
	expect(sr, "ContentSequence[1].RelationshipType", "CONTAINS");
	expect(sr, "ContentSequence[1].ConceptNameCodeSequence[0].CodingSchemeDesignator", "99DIANA");
	expect(sr, "ContentSequence[1].ConceptNameCodeSequence[0].CodeMeaning", "Finding");
	expect(sr, "ContentSequence[1].TextValue", "Ventrikel normal weit; Mittellinie zentriert.");

	/* [2] code item: same name, same private code */
	char *c1 = get(sr, "ContentSequence[1].ConceptNameCodeSequence[0].CodeValue");
	char *c2 = get(sr, "ContentSequence[2].ConceptNameCodeSequence[0].CodeValue");
	cr_expect_str_eq(c1, c2);
	cr_expect_leq(strlen(c1), 16);
	diana_free(c1);
	diana_free(c2);
	expect(sr, "ContentSequence[2].ValueType", "CODE");
	expect(sr, "ContentSequence[2].ConceptCodeSequence[0].CodeValue", "50960005");
	expect(sr, "ContentSequence[2].ConceptCodeSequence[0].CodingSchemeDesignator", "SCT");
	expect(sr, "ContentSequence[2].ConceptCodeSequence[0].CodeMeaning", "Hemorrhage");

	/* [3] num item in UCUM */
	expect(sr, "ContentSequence[3].ValueType", "NUM");
	expect(sr, "ContentSequence[3].ConceptNameCodeSequence[0].CodeMeaning", "Bone age");
	expect(sr, "ContentSequence[3].MeasuredValueSequence[0].NumericValue", "12.5");
	expect(sr, "ContentSequence[3].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue", "a");
	expect(sr, "ContentSequence[3].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodingSchemeDesignator",
	       "UCUM");
	expect(sr, "ContentSequence[3].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeMeaning", "a");

	/* [4] a name given as a code is used as is */
	expect(sr, "ContentSequence[4].ConceptNameCodeSequence[0].CodeValue", "113011");
	expect(sr, "ContentSequence[4].ConceptNameCodeSequence[0].CodingSchemeDesignator", "DCM");
	expect(sr, "ContentSequence[4].ConceptNameCodeSequence[0].CodeMeaning", "Document Title Modifier");
	expect(sr, "ContentSequence[4].MeasuredValueSequence[0].NumericValue", "0.1");
	expect(sr, "ContentSequence[4].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue", "{ratio}");

	/* [5] no unit: UCUM "1" */
	expect(sr, "ContentSequence[5].MeasuredValueSequence[0].NumericValue", "0.9312");
	expect(sr, "ContentSequence[5].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeValue", "1");
	expect(sr, "ContentSequence[5].MeasuredValueSequence[0].MeasurementUnitsCodeSequence[0].CodeMeaning", "no units");
	expect_absent(sr, "ContentSequence[6].ValueType");

	diana_dataset_free(sr);
	diana_dataset_free(study);
}

Test(sr, new_uids_valid_and_unique)
{
	diana_dataset *study = source(NULL);
	char *seen[8];
	int n = 0;

	for (int k = 0; k < 4; k++) {
		diana_dataset *sr = build_sr(study, "{\"summary\": \"x\"}", NULL, NULL, NULL);
		char *se = get(sr, "SeriesInstanceUID"), *sop = get(sr, "SOPInstanceUID");
		char *meta = get(sr, "MediaStorageSOPInstanceUID");
		cr_expect(valid_uid(se), "series UID %s", se);
		cr_expect(valid_uid(sop), "SOP UID %s", sop);
		cr_expect_eq(strncmp(se, "2.25.", 5), 0);
		cr_expect_str_eq(meta, sop);
		cr_expect_str_neq(se, SRC_SERIES);
		cr_expect_str_neq(sop, SRC_SOP);
		seen[n++] = se;
		seen[n++] = sop;
		diana_free(meta);
		diana_dataset_free(sr);
	}
	for (int i = 0; i < n; i++)
		for (int j = i + 1; j < n; j++)
			cr_expect_str_neq(seen[i], seen[j]);
	for (int i = 0; i < n; i++)
		diana_free(seen[i]);
	diana_dataset_free(study);
}

Test(sr, uid_root_option)
{
	diana_dataset *study = source(NULL);
	diana__sr_options o = { NULL, "Bone age (AI)", "1.2.826.0.1.3680043.10.543" };
	diana_dataset *sr = build_sr(study, "{\"items\": []}", &o, NULL, NULL);
	char *sop = get(sr, "SOPInstanceUID"), *se = get(sr, "SeriesInstanceUID");

	cr_expect(valid_uid(sop), "%s", sop);
	cr_expect(valid_uid(se), "%s", se);
	cr_expect_eq(strncmp(sop, "1.2.826.0.1.3680043.10.543.", 27), 0, "%s", sop);
	cr_expect_eq(strlen(sop), 64);
	cr_expect_str_neq(sop, se);
	expect(sr, "SeriesDescription", "Bone age (AI)");
	/* no content: no Content Sequence, still a container */
	expect(sr, "ValueType", "CONTAINER");
	expect_absent(sr, "ContentSequence");
	diana_free(sop);
	diana_free(se);
	diana_dataset_free(sr);

	/* bad roots */
	const char *bad[] = { "1.2.", ".1.2", "1..2", "1.02", "1.2a",
		"1.2.3.4.5.6.7.8.9.10.11.12.13.14.15.16.17.18.19.20.21.22" };
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		diana__sr_options ob = { NULL, NULL, bad[i] };
		cJSON *r = parse("{}");
		uint8_t *b = (uint8_t *)1;
		size_t len = 1;
		cr_expect_eq(diana__sr_build(study, r, &ob, &b, &len), DIANA_EINVAL, "%s", bad[i]);
		cr_expect_null(b);
		cr_expect_eq(len, 0);
		cJSON_Delete(r);
	}

	/* bad model name / series description */
	char longer[80];
	memset(longer, 'm', 65);
	longer[65] = 0;
	diana__sr_options om[] = { { longer, NULL, NULL }, { NULL, longer, NULL }, { "a\\b", NULL, NULL } };
	for (size_t i = 0; i < sizeof om / sizeof om[0]; i++) {
		cJSON *r = parse("{}");
		uint8_t *b = NULL;
		size_t len = 0;
		cr_expect_eq(diana__sr_build(study, r, &om[i], &b, &len), DIANA_EINVAL, "options %zu", i);
		cr_expect_not_null(strstr(diana_error_message(), "options."));
		cJSON_Delete(r);
	}
	diana_dataset_free(study);
}

Test(sr, partial_and_defaults)
{
	diana_dataset *study = source(NULL);
	diana_dataset *sr = build_sr(study, "{\"summary\": \"\", \"complete\": false, \"items\": null}", NULL, NULL, NULL);

	expect(sr, "CompletionFlag", "PARTIAL");
	expect(sr, "SeriesDescription", "DIANA AI result");
	expect_absent(sr, "ManufacturerModelName");
	expect_absent(sr, "ContentSequence");
	diana_dataset_free(sr);

	sr = build_sr(study, "{\"complete\": true, \"summary\": \"ok\"}", NULL, NULL, NULL);
	expect(sr, "CompletionFlag", "COMPLETE");
	diana_dataset_free(sr);
	diana_dataset_free(study);
}

Test(sr, numeric_values_fit_ds)
{
	diana_dataset *study = source(NULL);
	static const double vals[] = { 1.0 / 3.0, 1e300, -0.000001234, 12345678901234567890.0, -2.5e-300, 0.0,
		                       42.0, -7.125, 123456789.123456789 };
	char text[4096] = "{\"items\": [";

	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		char one[128];
		snprintf(one, sizeof one, "%s{\"type\":\"num\",\"name\":\"v%zu\",\"value\":%.17g,\"unit\":\"mm\"}",
		         i ? "," : "", i, vals[i]);
		strcat(text, one);
	}
	strcat(text, "]}");
	diana_dataset *sr = build_sr(study, text, NULL, NULL, NULL);
	for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
		char key[128];
		snprintf(key, sizeof key, "ContentSequence[%zu].MeasuredValueSequence[0].NumericValue", i);
		char *v = get(sr, key);
		double back = strtod(v, NULL);
		cr_expect_leq(strlen(v), 16, "%s", v);
		cr_expect(fabs(back - vals[i]) <= fabs(vals[i]) * 1e-10, "%s vs %.17g", v, vals[i]);
		diana_free(v);
	}
	expect(sr, "ContentSequence[6].MeasuredValueSequence[0].NumericValue", "42");
	expect(sr, "ContentSequence[7].MeasuredValueSequence[0].NumericValue", "-7.125");
	diana_dataset_free(sr);
	diana_dataset_free(study);
}

Test(sr, missing_source_attributes)
{
	/* no birth date: Type 2, present and empty; no SOP Instance UID: no evidence */
	diana_dataset *study = source("00100030");
	diana_dataset *sr = build_sr(study, "{\"summary\": \"x\"}", NULL, NULL, NULL);
	expect(sr, "PatientBirthDate", "");
	expect(sr, "CurrentRequestedProcedureEvidenceSequence[0].StudyInstanceUID", SRC_STUDY);
	diana_dataset_free(sr);
	diana_dataset_free(study);

	study = source("00080018");
	sr = build_sr(study, "{\"summary\": \"x\"}", NULL, NULL, NULL);
	expect(sr, "StudyInstanceUID", SRC_STUDY);
	expect_absent(sr, "CurrentRequestedProcedureEvidenceSequence");
	diana_dataset_free(sr);
	diana_dataset_free(study);

	/* no study UID: refused */
	study = source("0020000D");
	cJSON *r = parse("{\"summary\": \"x\"}");
	uint8_t *b = NULL;
	size_t n = 0;
	cr_expect_eq(diana__sr_build(study, r, NULL, &b, &n), DIANA_EINVAL);
	cr_expect_null(b);
	cJSON_Delete(r);
	diana_dataset_free(study);
}

/* --- refusals ------------------------------------------------------------- */

static void refused(const char *text, const char *where)
{
	diana_dataset *study = source(NULL);
	cJSON *r = parse(text);
	uint8_t *b = (uint8_t *)1;
	size_t n = 1;
	int rc = diana__sr_build(study, r, NULL, &b, &n);
	const char *msg = diana_error_message();

	cr_expect_eq(rc, DIANA_EINVAL, "%s -> %d", text, rc);
	cr_expect_null(b);
	cr_expect_eq(n, 0);
	cr_expect_not_null(strstr(msg, where), "'%s' does not name %s", msg, where);
	cr_expect_null(strchr(msg, '\n'), "one line: %s", msg);
	cr_expect_null(strstr(msg, "SECRET"), "a value leaked: %s", msg);
	cJSON_Delete(r);
	diana_dataset_free(study);
}

Test(sr, malformed_results_refused)
{
	char long_name[80], long_code[32], long_text[1024];

	refused("[]", "result");
	refused("\"SECRET\"", "result");
	refused("{\"summary\": 3}", "summary");
	refused("{\"summary\": \"ok\", \"items\": {\"type\": \"text\"}}", "items");
	refused("{\"complete\": \"SECRET\"}", "complete");
	refused("{\"items\": [\"SECRET\"]}", "items[0]");
	refused("{\"items\": [{\"type\": \"text\", \"name\": \"a\", \"value\": \"b\"}, {\"name\": \"SECRET\"}]}",
	        "items[1].type");
	refused("{\"items\": [{\"type\": \"SECRET\", \"name\": \"a\"}]}", "items[0].type");
	refused("{\"items\": [{\"type\": \"text\", \"value\": \"SECRET\"}]}", "items[0].name");
	refused("{\"items\": [{\"type\": \"text\", \"name\": 5, \"value\": \"SECRET\"}]}", "items[0].name");
	refused("{\"items\": [{\"type\": \"text\", \"name\": \"SECRET\"}]}", "items[0].value");
	refused("{\"items\": [{\"type\": \"text\", \"name\": \"SECRET\", \"value\": \"\"}]}", "items[0].value");
	refused("{\"items\": [{\"type\": \"text\", \"name\": \"SECRET\\\\x\", \"value\": \"v\"}]}", "items[0].name");
	refused("{\"items\": [{\"type\": \"text\", \"name\": \"SECRET\\nx\", \"value\": \"v\"}]}", "items[0].name");
	refused("{\"items\": [{\"type\": \"code\", \"name\": \"SECRET\"}]}", "items[0].code");
	refused("{\"items\": [{\"type\": \"code\", \"name\": \"a\", \"code\": \"SECRET\"}]}", "items[0].code");
	refused("{\"items\": [{\"type\": \"code\", \"name\": \"a\", \"code\": {\"value\": \"SECRET\", \"scheme\": \"SCT\"}}]}",
	        "items[0].code.meaning");
	refused("{\"items\": [{\"type\": \"code\", \"name\": \"a\", \"code\": {\"value\": \"1\", \"scheme\": \"SCT\", "
	        "\"meaning\": \"m\", \"version\": 7}}]}", "items[0].code.version");
	refused("{\"items\": [{\"type\": \"num\", \"name\": \"a\", \"value\": \"12.5\"}]}", "items[0].value");
	refused("{\"items\": [{\"type\": \"num\", \"name\": \"a\"}]}", "items[0].value");
	refused("{\"items\": [{\"type\": \"num\", \"name\": \"a\", \"value\": 1, \"unit\": 3}]}", "items[0].unit");
	refused("{\"items\": [{\"type\": \"num\", \"name\": \"a\", \"value\": 1, \"unit\": \"SECRET-TOO-LONG-UNIT\"}]}",
	        "items[0].unit");
	refused("{\"items\": [{\"type\": \"num\", \"name\": {\"value\": \"1\", \"scheme\": \"SECRET-LONG-SCHEME\", "
	        "\"meaning\": \"m\"}, \"value\": 1}]}", "items[0].name.scheme");

	/* lengths: LO 64 for names and meanings, SH 16 for code values */
	memset(long_name, 'N', 65);
	long_name[65] = 0;
	snprintf(long_text, sizeof long_text,
	         "{\"items\": [{\"type\": \"text\", \"name\": \"%s\", \"value\": \"SECRET\"}]}", long_name);
	refused(long_text, "items[0].name");
	memset(long_code, '7', 17);
	long_code[17] = 0;
	snprintf(long_text, sizeof long_text,
	         "{\"items\": [{\"type\": \"code\", \"name\": \"a\", \"code\": {\"value\": \"%s\", \"scheme\": \"SCT\", "
	         "\"meaning\": \"SECRET\"}}]}", long_code);
	refused(long_text, "items[0].code.value");

	/* 64 characters of UTF-8 (128 bytes) are fine for a name */
	char name64[256] = "";
	for (int i = 0; i < 64; i++)
		strcat(name64, "é");
	snprintf(long_text, sizeof long_text, "{\"items\": [{\"type\": \"text\", \"name\": \"%s\", \"value\": \"v\"}]}",
	         name64);
	diana_dataset *study = source(NULL);
	diana_dataset *sr = build_sr(study, long_text, NULL, NULL, NULL);
	expect(sr, "ContentSequence[0].ConceptNameCodeSequence[0].CodeMeaning", name64);
	diana_dataset_free(sr);
	diana_dataset_free(study);
}

Test(sr, invalid_utf8_refused)
{
	diana_dataset *study = source(NULL);
	cJSON *r = cJSON_CreateObject();
	uint8_t *b = NULL;
	size_t n = 0;

	cJSON_AddStringToObject(r, "summary", "caf\xC3\x28");
	cr_expect_eq(diana__sr_build(study, r, NULL, &b, &n), DIANA_EINVAL);
	cr_expect_not_null(strstr(diana_error_message(), "summary"));
	cJSON_Delete(r);
	cr_expect_eq(diana__sr_build(NULL, NULL, NULL, &b, &n), DIANA_EINVAL);
	diana_dataset_free(study);
}

/* --- independent checks with DCMTK (and dicom3tools when present) -------- */

static int have(const char *prog)
{
	char cmd[256];
	snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", prog);
	return system(cmd) == 0;
}

/* run `cmd`, output into `out`; returns the exit status */
static int run(const char *cmd, char *out, size_t cap)
{
	FILE *p = popen(cmd, "r");
	size_t n = 0;
	cr_assert_not_null(p);
	while (n + 1 < cap) {
		size_t k = fread(out + n, 1, cap - 1 - n, p);
		if (k == 0)
			break;
		n += k;
	}
	out[n] = 0;
	int st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#define UTF8_NOTE "W: The VR checker does not support this Specific Character Set: ISO_IR 192"

Test(sr, dcmtk_dsrdump_parses_it)
{
	diana_dataset *study = source(NULL);
	diana__sr_options o = { "ich-detector", NULL, NULL };
	uint8_t *b = NULL;
	size_t n = 0;
	diana_dataset *sr = build_sr(study, SAMPLE, &o, &b, &n);
	char path[] = "/tmp/diana-test-sr-XXXXXX";
	int fd = mkstemp(path);
	static char out[1 << 16];
	char cmd[512];

	cr_assert_geq(fd, 0);
	cr_assert_eq(write(fd, b, n), (ssize_t)n);
	close(fd);
	if (!have("dsrdump")) {
		unlink(path);
		cr_skip_test("dsrdump (dcmtk) is not installed");
	}
	/* warnings are errors here: log level warn, everything on stdout */
	snprintf(cmd, sizeof cmd, "dsrdump -ll warn +U8 +Pc +Pl '%s' 2>&1", path);
	int st = run(cmd, out, sizeof out);
	cr_expect_eq(st, 0, "dsrdump exit %d:\n%s", st, out);
	cr_expect_null(strstr(out, "E: "), "dsrdump errors:\n%s", out);
	/* DCMTK 3.6.7's VR checker knows no UTF-8: its one warning about that is expected */
	for (const char *w = strstr(out, "W: "); w; w = strstr(w + 3, "W: "))
		cr_expect_eq(strncmp(w, UTF8_NOTE, strlen(UTF8_NOTE)), 0, "dsrdump warnings:\n%s", out);
	cr_expect_not_null(strstr(out, "Comprehensive SR Document"), "%s", out);
	cr_expect_not_null(strstr(out, "Completion Flag     : COMPLETE"), "%s", out);
	cr_expect_not_null(strstr(out, "CONTAINER:(RESULT,99DIANA,\"AI result\")"), "%s", out);
	cr_expect_not_null(strstr(out, "Keine Blutung — no hemorrhage ✓"), "%s", out);
	cr_expect_not_null(strstr(out, "(50960005,SCT,\"Hemorrhage\")"), "%s", out);
	cr_expect_not_null(strstr(out, "\"12.5\" (a,UCUM,\"a\")"), "%s", out);

	if (have("dciodvfy")) {
		snprintf(cmd, sizeof cmd, "dciodvfy '%s' 2>&1", path);
		run(cmd, out, sizeof out);
		cr_expect_null(strstr(out, "Error"), "dciodvfy:\n%s", out);
		/* its only warnings: the private coding scheme it cannot know */
		for (const char *w = strstr(out, "Warning"); w; w = strstr(w + 7, "Warning")) {
			const char *eol = strchr(w, '\n');
			const char *s = strstr(w, "99DIANA");
			cr_expect(s && (!eol || s < eol), "dciodvfy:\n%s", out);
		}
	}
	/* DIANA_TEST_SR_KEEP=file keeps the report for a look by hand */
	if (getenv("DIANA_TEST_SR_KEEP")) {
		snprintf(cmd, sizeof cmd, "cp '%s' '%s'", path, getenv("DIANA_TEST_SR_KEEP"));
		cr_expect_eq(system(cmd), 0);
	}
	unlink(path);
	diana_free(b);
	diana_dataset_free(sr);
	diana_dataset_free(study);
}
