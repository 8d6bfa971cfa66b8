/*
 * Tests of the dose module (include/diana/dose.h): RDSR -> JSON over the
 * repository's synthetic reports (values checked against the numbers the
 * generator tests/dose/make_rdsr.py wrote, not against our own output) and
 * the shared vendor corpus when present; refusals; pseudonyms through a
 * profile; the Splunk HEC sink against a local receiver
 * (tests/dose/hec_receiver.py: wire format, token, event time, batches,
 * retries after 503, no retry after 401/403); the JSONL sink.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <dirent.h>
#include <fcntl.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include <diana/diana.h>

/* ------------------------------------------------------------ helpers */

static char *data_path(const char *rel)
{
	const char *base = getenv("DIANA_TEST_DATA");
	char *p;
	cr_assert_not_null(base, "DIANA_TEST_DATA is not set");
	cr_assert_geq(asprintf(&p, "%s/dicom/%s", base, rel), 0);
	return p;
}

static cJSON *dose_file(const char *rel)
{
	char *path = data_path(rel), *json = NULL;
	cJSON *doc;
	int rc = diana_dose_from_file(&json, path, NULL);
	cr_assert_eq(rc, 0, "%s: %s", rel, diana_error_message());
	doc = cJSON_Parse(json);
	cr_assert_not_null(doc, "%s: output is not JSON", rel);
	diana_free(json);
	free(path);
	return doc;
}

static const cJSON *get(const cJSON *o, const char *key)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
	cr_assert_not_null(v, "member %s missing", key);
	return v;
}

static const cJSON *event(const cJSON *doc, int i)
{
	const cJSON *e = cJSON_GetArrayItem(get(doc, "events"), i);
	cr_assert_not_null(e, "event %d missing", i);
	return e;
}

/* {"value": v, "unit": u} */
static void expect_measure(const cJSON *o, const char *key, double value, const char *unit)
{
	const cJSON *m = get(o, key);
	cr_assert(cJSON_IsObject(m), "%s is not a measurement", key);
	cr_expect(fabs(get(m, "value")->valuedouble - value) <= 1e-12 * fabs(value),
	          "%s = %.17g, expected %.17g", key, get(m, "value")->valuedouble, value);
	cr_expect_str_eq(get(m, "unit")->valuestring, unit, "%s unit", key);
}

static void expect_null(const cJSON *o, const char *key)
{
	cr_expect(cJSON_IsNull(get(o, key)), "%s should be null", key);
}

static void expect_code(const cJSON *o, const char *key, const char *code, const char *scheme)
{
	const cJSON *c = get(o, key);
	cr_assert(cJSON_IsObject(c), "%s is not a code", key);
	cr_expect_str_eq(get(c, "code")->valuestring, code, "%s code", key);
	cr_expect_str_eq(get(c, "scheme")->valuestring, scheme, "%s scheme", key);
}

static void expect_str(const cJSON *o, const char *key, const char *s)
{
	const cJSON *v = get(o, key);
	cr_assert(cJSON_IsString(v), "%s is not a string", key);
	cr_expect_str_eq(v->valuestring, s, "%s", key);
}

static double num(const cJSON *o, const char *key)
{
	const cJSON *v = get(o, key);
	cr_assert(cJSON_IsNumber(v), "%s is not a number", key);
	return v->valuedouble;
}

static void setup(void)
{
	cr_assert_geq(diana_init(), 1);
}

static void teardown(void)
{
	diana_shutdown();
}

TestSuite(dose, .init = setup, .fini = teardown, .timeout = 120);

/* ------------------------------------------------------------ corpus */

typedef struct names {
	char *v[256];
	int n;
} names;

static void list_dcm(const char *dir, names *l)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	l->n = 0;
	if (!d)
		return;
	while ((e = readdir(d)) != NULL && l->n < 256) {
		size_t n = strlen(e->d_name);
		if (n > 4 && !strcmp(e->d_name + n - 4, ".dcm"))
			cr_assert_geq(asprintf(&l->v[l->n++], "%s/%s", dir, e->d_name), 0);
	}
	closedir(d);
}

static void names_free(names *l)
{
	int i;
	for (i = 0; i < l->n; i++)
		free(l->v[i]);
}

/* every report of a folder: parses, one event object per event, counts agree */
static int check_folder(const char *dir)
{
	names l;
	int i, parsed = 0;

	list_dcm(dir, &l);
	for (i = 0; i < l.n; i++) {
		char *json = NULL;
		cJSON *doc;
		const cJSON *events, *tmpl, *totals, *e;
		int rc;
		if (strstr(l.v[i], "/synth-bad-"))
			continue;
		rc = diana_dose_from_file(&json, l.v[i], NULL);
		cr_expect_eq(rc, 0, "%s: %s", l.v[i], diana_error_message());
		if (rc)
			continue;
		doc = cJSON_Parse(json);
		diana_free(json);
		cr_assert_not_null(doc, "%s: not JSON", l.v[i]);
		tmpl = get(doc, "template");
		cr_expect(cJSON_IsString(get(tmpl, "id")), "%s: no template id", l.v[i]);
		events = get(doc, "events");
		totals = get(doc, "totals");
		cr_expect_gt(cJSON_GetArraySize(events), 0, "%s: no event", l.v[i]);
		cr_expect_eq(num(totals, "event_count"), cJSON_GetArraySize(events), "%s", l.v[i]);
		cJSON_ArrayForEach(e, events)
		{
			const cJSON *uid = get(e, "irradiation_event_uid");
			cr_expect(cJSON_IsString(uid) && strlen(uid->valuestring) > 4, "%s: event without UID",
			          l.v[i]);
			cr_expect(cJSON_IsObject(get(e, "type")) || cJSON_IsNull(get(e, "type")));
		}
		/* the SR's own event count, when it gives one, matches (CT) */
		if (cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(totals, "total_number_of_irradiation_events")))
			cr_expect_eq(get(get(totals, "total_number_of_irradiation_events"), "value")->valuedouble,
			             cJSON_GetArraySize(events), "%s", l.v[i]);
		cJSON_Delete(doc);
		parsed++;
	}
	names_free(&l);
	return parsed;
}

Test(dose, every_repo_report_parses)
{
	char *dir = data_path("rdsr");
	cr_expect_eq(check_folder(dir), 4, "expected the 4 good synthetic reports");
	free(dir);
}

Test(dose, every_shared_vendor_report_parses)
{
	const char *shared = getenv("DIANA_SHARED_DATA");
	char *dir;
	struct stat st;
	int n;
	if (!shared)
		cr_skip_test("DIANA_SHARED_DATA not set");
	cr_assert_geq(asprintf(&dir, "%s/dicom/rdsr", shared), 0);
	if (stat(dir, &st) != 0) {
		free(dir);
		cr_skip_test("shared corpus not present");
	}
	n = check_folder(dir);
	cr_expect_geq(n, 10, "only %d vendor reports parsed", n);
	free(dir);
}

/* ------------------------------------------------------------ values */

Test(dose, ct_report_values)
{
	cJSON *doc = dose_file("rdsr/synth-ct-rdsr.dcm");
	const cJSON *e, *src, *totals;
	struct tm tm = { 0 };

	expect_str(doc, "accession_number", "SYN-CT1");
	expect_str(doc, "patient_id", "SYN-PID-CT1");
	expect_str(doc, "sop_class_uid", "1.2.840.10008.5.1.4.1.1.88.67");
	expect_str(get(doc, "template"), "id", "10011");
	expect_str(doc, "study_date", "2024-03-04");
	expect_str(doc, "study_time", "10:15:00");
	expect_str(doc, "station_name", "SYNTH01");
	expect_str(doc, "manufacturer_model_name", "Make-RDSR 1");
	expect_str(doc, "patient_sex", "F");
	expect_measure(doc, "patient_age", 54, "a");
	expect_measure(doc, "patient_size", 1.68, "m");
	expect_measure(doc, "patient_weight", 71.5, "kg");
	expect_code(doc, "procedure_reported", "P5-08000", "SRT");
	cr_assert_eq(cJSON_GetArraySize(get(doc, "events")), 3);

	e = event(doc, 0);
	expect_str(e, "datetime", "2024-03-04T10:16:12.25");
	expect_code(e, "type", "113805", "DCM");
	expect_str(e, "acquisition_protocol", "Topogram");
	expect_measure(e, "ctdivol", 0.13, "mGy");
	expect_measure(e, "dlp", 6.5, "mGy.cm");
	expect_null(e, "pitch_factor");
	expect_null(e, "ssde");

	e = event(doc, 1);
	expect_code(e, "type", "P5-08001", "SRT");
	expect_code(e, "acquisition_type", "P5-08001", "SRT");
	expect_code(e, "target_region", "T-D3000", "SRT");
	expect_code(e, "phantom_type", "113691", "DCM");
	expect_measure(e, "ctdivol", 7.81, "mGy");
	expect_measure(e, "dlp", 295.22, "mGy.cm");
	expect_measure(e, "ssde", 9.6, "mGy");
	expect_measure(e, "pitch_factor", 1.2, "{ratio}");
	expect_measure(e, "scanning_length", 378, "mm");
	expect_measure(e, "exposure_time", 9.45, "s");
	expect_measure(e, "nominal_total_collimation_width", 38.4, "mm");
	expect_measure(e, "kvp", 100, "kV");
	expect_measure(e, "tube_current", 210, "mA");

	e = event(doc, 2); /* dual source */
	cr_assert_eq(cJSON_GetArraySize(get(e, "xray_sources")), 2);
	src = cJSON_GetArrayItem(get(e, "xray_sources"), 1);
	expect_str(src, "identification", "B");
	expect_measure(src, "kvp", 140, "kV");
	expect_measure(src, "tube_current", 90, "mA");
	expect_measure(e, "kvp", 100, "kV"); /* flat fields: source A */
	expect_measure(e, "number_of_xray_sources", 2, "{X-Ray sources}");

	totals = get(doc, "totals");
	expect_measure(totals, "ct_dlp_total", 714.62, "mGy.cm");
	expect_measure(totals, "total_number_of_irradiation_events", 3, "{events}");
	cr_expect_eq(num(totals, "event_count"), 3);

	/* time: StudyDate/Time 2024-03-04 10:15:00 at TimezoneOffsetFromUTC +0100 */
	tm.tm_year = 124;
	tm.tm_mon = 2;
	tm.tm_mday = 4;
	tm.tm_hour = 9;
	tm.tm_min = 15;
	cr_expect_eq(num(doc, "time"), (double)timegm(&tm));
	expect_str(doc, "time_source", "study");
	cJSON_Delete(doc);
}

Test(dose, enhanced_sr_implicit_vr_sct_codes_content_patient)
{
	cJSON *doc = dose_file("rdsr/synth-ct-esr-implicit.dcm");
	const cJSON *e;
	struct tm tm = { 0 };

	expect_str(doc, "sop_class_uid", "1.2.840.10008.5.1.4.1.1.88.22");
	expect_str(get(doc, "template"), "id", "10011"); /* from SCT Procedure reported */
	expect_code(doc, "procedure_reported", "77477000", "SCT");
	expect_measure(doc, "patient_age", 7, "a");
	expect_str(doc, "patient_sex", "M");
	expect_measure(doc, "patient_size", 124, "cm");
	expect_measure(doc, "patient_weight", 24.5, "kg");
	expect_null(doc, "study_time");
	cr_assert_eq(cJSON_GetArraySize(get(doc, "events")), 2);
	e = event(doc, 1);
	expect_code(e, "target_region", "69536005", "SCT");
	expect_code(e, "phantom_type", "113690", "DCM");
	expect_measure(e, "ctdivol", 42, "mGy");
	expect_measure(e, "dlp", 820, "mGy.cm");
	expect_measure(get(doc, "totals"), "ct_dlp_total", 1630, "mGy.cm");
	/* no study time, no timezone: the first event's local time */
	tm.tm_year = 124;
	tm.tm_mon = 2;
	tm.tm_mday = 4;
	tm.tm_hour = 9;
	tm.tm_min = 11;
	tm.tm_isdst = -1;
	cr_expect_eq(num(doc, "time"), (double)mktime(&tm));
	expect_str(doc, "time_source", "irradiation");
	cJSON_Delete(doc);
}

Test(dose, fluoroscopy_big_endian_values)
{
	cJSON *doc = dose_file("rdsr/synth-rf-rdsr-bigendian.dcm");
	const cJSON *e, *totals;

	expect_str(get(doc, "template"), "id", "10001");
	cr_assert_eq(cJSON_GetArraySize(get(doc, "events")), 5);
	e = event(doc, 0);
	expect_str(e, "datetime", "2024-03-04T10:20:00");
	expect_code(e, "type", "44491008", "SCT");
	expect_code(e, "acquisition_plane", "113622", "DCM");
	expect_measure(e, "dose_area_product", 0.00012, "Gy.m2");
	expect_measure(e, "dose_rp", 0.0021, "Gy");
	expect_measure(e, "kvp", 71, "kV");
	expect_measure(e, "tube_current", 12.5, "mA");
	expect_measure(e, "pulse_width", 6.4, "ms");
	expect_measure(e, "number_of_pulses", 48, "1");
	expect_measure(e, "positioner_primary_angle", -0.5, "deg");
	expect_measure(e, "positioner_secondary_angle", 1.2, "deg");
	expect_code(e, "reference_point_definition", "113860", "DCM");
	e = event(doc, 1);
	expect_code(e, "type", "113611", "DCM");
	expect_null(e, "pulse_width");
	e = event(doc, 2);
	expect_null(e, "dose_area_product"); /* missing: null, never a guess */
	expect_measure(e, "exposure_time", 307.2, "ms"); /* retired 113735 */
	totals = get(doc, "totals");
	expect_measure(totals, "dose_area_product_total", 0.001141, "Gy.m2");
	expect_measure(totals, "dose_rp_total", 0.0227, "Gy");
	expect_measure(totals, "fluoro_dose_area_product_total", 0.000151, "Gy.m2");
	expect_measure(totals, "acquisition_dose_rp_total", 0.0194, "Gy");
	expect_measure(totals, "total_fluoro_time", 312.5, "s");
	expect_measure(totals, "total_number_of_radiographic_frames", 64, "{frames}");
	cr_expect_eq(num(totals, "fluoro_event_count"), 3);
	cr_expect_eq(num(totals, "acquisition_event_count"), 2);
	cr_expect_eq(num(totals, "event_count"), 5);
	cJSON_Delete(doc);
}

Test(dose, biplane_with_300_events)
{
	cJSON *doc = dose_file("rdsr/synth-xa-biplane-300.dcm");
	const cJSON *events = get(doc, "events"), *totals = get(doc, "totals"), *e, *planes;
	int i = 0;

	cr_assert_eq(cJSON_GetArraySize(events), 300);
	cJSON_ArrayForEach(e, events)
	{
		i++;
		expect_measure(e, "dose_area_product", 0.00001 * i, "Gy.m2");
		expect_code(e, "acquisition_plane", i % 2 ? "113620" : "113621", "DCM");
		if (i > 1) /* UIDs differ from the previous event */
			cr_expect_str_neq(get(e, "irradiation_event_uid")->valuestring,
			                  get(e->prev, "irradiation_event_uid")->valuestring);
	}
	planes = get(totals, "planes");
	cr_assert_eq(cJSON_GetArraySize(planes), 2);
	expect_code(cJSON_GetArrayItem(planes, 1), "acquisition_plane", "113621", "DCM");
	expect_measure(cJSON_GetArrayItem(planes, 0), "dose_area_product_total", 0.4515, "Gy.m2");
	expect_measure(cJSON_GetArrayItem(planes, 1), "total_fluoro_time", 1700, "s");
	/* two planes: no flat (summed) totals */
	expect_null(totals, "dose_area_product_total");
	expect_null(totals, "dose_rp_total");
	cr_expect_eq(num(totals, "fluoro_event_count"), 200);
	cr_expect_eq(num(totals, "acquisition_event_count"), 100);
	cJSON_Delete(doc);
}

Test(dose, file_memory_and_dataset_agree)
{
	char *path = data_path("rdsr/synth-ct-rdsr.dcm"), *a = NULL, *b = NULL, *c = NULL;
	FILE *f = fopen(path, "rb");
	uint8_t buf[1 << 16];
	size_t n;
	diana_dataset *ds = NULL;
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;

	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	cr_assert_eq(diana_dose_from_file(&a, path, NULL), 0);
	cr_assert_eq(diana_dose_from_memory(&b, buf, n, NULL), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_open(&ds, path, &o), 0);
	cr_assert_eq(diana_dose_from_dataset(&c, ds, NULL), 0);
	cr_expect_str_eq(a, b);
	cr_expect_str_eq(a, c);
	diana_free(a);
	diana_free(b);
	diana_free(c);
	{
		diana_dose_options d = DIANA_DOSE_OPTIONS_INIT;
		d.flags = DIANA_DOSE_PRETTY;
		cr_assert_eq(diana_dose_from_dataset(&a, ds, &d), 0);
		cr_expect_not_null(strchr(a, '\n'), "pretty output has no newline");
		diana_free(a);
	}
	diana_dataset_free(ds);
	free(path);
}

/* ------------------------------------------------------------ refusals */

static void expect_refused(const char *what, int rc, char *out, int want)
{
	const char *msg = diana_error_message();
	cr_expect_eq(rc, want, "%s: rc %d (%s), expected %d", what, rc, msg, want);
	cr_expect_null(out, "%s: output on failure", what);
	cr_expect_gt(strlen(msg), 0, "%s: no message", what);
	cr_expect_null(strchr(msg, '\n'), "%s: message is not one line", what);
}

Test(dose, non_dose_and_malformed_refused)
{
	static const struct {
		const char *rel;
		int rc;
	} cases[] = {
		{ "sr/reportsi.dcm", DIANA_EUNSUPPORTED },         /* Basic Text SR */
		{ "sr/test-SR.dcm", DIANA_EUNSUPPORTED },          /* Comprehensive SR, not dose */
		{ "ct/CT_small.dcm", DIANA_EUNSUPPORTED },         /* an image */
		{ "rdsr/synth-bad-no-value-type.dcm", DIANA_EDICOM },
		{ "malformed/MR_truncated.dcm", DIANA_EDICOM },
		{ "malformed/no_meta.dcm", DIANA_EDICOM },
	};
	size_t i;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		char *path = data_path(cases[i].rel), *out = (char *)1;
		int rc = diana_dose_from_file(&out, path, NULL);
		expect_refused(cases[i].rel, rc, out, cases[i].rc);
		/* PHI rule: the bad report's values never reach the message */
		cr_expect_null(strstr(diana_error_message(), "SYN-"), "%s: value in message", cases[i].rel);
		free(path);
	}
}

Test(dose, truncated_and_garbage_buffers_refused)
{
	char *path = data_path("rdsr/synth-ct-rdsr.dcm"), *out = (char *)1;
	FILE *f = fopen(path, "rb");
	static uint8_t buf[1 << 16];
	size_t n, cut;
	int rc;

	cr_assert_not_null(f);
	n = fread(buf, 1, sizeof(buf), f);
	fclose(f);
	for (cut = 200; cut < n; cut += n / 7) {
		rc = diana_dose_from_memory(&out, buf, cut, NULL);
		expect_refused("truncated", rc, out, DIANA_EDICOM);
	}
	memset(buf, 0x5a, 4096);
	rc = diana_dose_from_memory(&out, buf, 4096, NULL);
	expect_refused("garbage", rc, out, DIANA_EDICOM);
	rc = diana_dose_from_memory(&out, buf, 0, NULL);
	cr_expect_lt(rc, 0);
	cr_expect_null(out);
	free(path);
}

/* mutated reports: never a crash (ASan build), a document or a one-line error */
Test(dose, mutated_reports_never_crash)
{
	static const char *rel[] = { "rdsr/synth-ct-rdsr.dcm", "rdsr/synth-rf-rdsr-bigendian.dcm",
		                     "rdsr/synth-ct-esr-implicit.dcm" };
	static uint8_t orig[1 << 16], buf[1 << 16];
	uint32_t seed = 12345;
	size_t r, n;
	int i, ok = 0, refused = 0;

	for (r = 0; r < sizeof(rel) / sizeof(rel[0]); r++) {
		char *path = data_path(rel[r]);
		FILE *f = fopen(path, "rb");
		cr_assert_not_null(f);
		n = fread(orig, 1, sizeof(orig), f);
		fclose(f);
		free(path);
		for (i = 0; i < 150; i++) {
			char *out = NULL;
			int k, rc;
			memcpy(buf, orig, n);
			for (k = 0; k < 1 + i % 8; k++) {
				size_t at;
				seed = seed * 1103515245u + 12345u;
				at = 132 + (seed >> 8) % (n - 132); /* keep preamble and magic */
				seed = seed * 1103515245u + 12345u;
				buf[at] = (uint8_t)(seed >> 16);
			}
			rc = diana_dose_from_memory(&out, buf, n, NULL);
			if (rc == 0) {
				cJSON *d = cJSON_Parse(out);
				cr_expect_not_null(d, "mutated output is not JSON");
				cJSON_Delete(d);
				diana_free(out);
				ok++;
			} else {
				cr_expect_lt(rc, 0);
				cr_expect_null(out);
				cr_expect_null(strchr(diana_error_message(), '\n'));
				refused++;
			}
		}
	}
	cr_log_info("mutations: %d read, %d refused", ok, refused);
	cr_expect_gt(ok + refused, 0);
}

Test(dose, arguments_and_options)
{
	diana_dose_options o;
	char *out = NULL;
	char *path = data_path("rdsr/synth-ct-rdsr.dcm");

	cr_expect_eq(diana_dose_options_init(&o, 99), DIANA_EUNSUPPORTED);
	cr_expect_eq(diana_dose_options_init(NULL, 1), DIANA_EINVAL);
	cr_assert_eq(diana_dose_options_init(&o, DIANA_DOSE_OPTIONS_VERSION), 0);
	cr_expect_eq(o.flags, 0);
	cr_expect_null(o.profile);
	cr_expect_eq(diana_dose_from_file(NULL, path, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dose_from_file(&out, NULL, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dose_from_dataset(&out, NULL, NULL), DIANA_EINVAL);
	o.version = 7;
	cr_expect_eq(diana_dose_from_file(&out, path, &o), DIANA_EUNSUPPORTED);
	o.version = 1;
	o.flags = 0x80;
	cr_expect_eq(diana_dose_from_file(&out, path, &o), DIANA_EINVAL);
	cr_expect_null(out);
	cr_expect_eq(diana_dose_from_file(&out, "/nonexistent/x.dcm", NULL), DIANA_ENOTFOUND);
	free(path);
}

/* ------------------------------------------------------------ pseudonyms */

static diana_profile *profile(uint32_t options)
{
	static const uint8_t secret[] = "0123456789abcdef0123456789abcdef-dose-test";
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	diana_profile *p = NULL;
	po.options = options;
	po.secret = secret;
	po.secret_len = sizeof(secret) - 1;
	cr_assert_eq(diana_profile_new(&p, &po), 0, "%s", diana_error_message());
	return p;
}

Test(dose, pseudonyms_match_the_image_engine)
{
	char *path = data_path("rdsr/synth-ct-rdsr.dcm"), *json = NULL, *out_file;
	diana_profile *p = profile(DIANA_DEID_CLEAN_STRUCTURED_CONTENT | DIANA_DEID_RETAIN_LONG_MODIFIED_DATES);
	diana_dose_options o = DIANA_DOSE_OPTIONS_INIT;
	diana_deid_result *res = NULL;
	cJSON *doc;

	o.profile = p;
	cr_assert_eq(diana_dose_from_file(&json, path, &o), 0, "%s", diana_error_message());
	cr_assert_null(strstr(json, "SYN-PID-CT1"), "patient ID left in the output");
	cr_assert_null(strstr(json, "SYN-CT1"), "accession number left in the output");
	doc = cJSON_Parse(json);
	diana_free(json);
	cr_assert_not_null(doc);

	/* the same file through the de-identification engine with the same profile */
	cr_assert_geq(asprintf(&out_file, "/tmp/diana-dose-anon-%d.dcm", (int)getpid()), 0);
	cr_assert_eq(diana_anonymize_file(p, path, out_file, &res), 0, "%s", diana_error_message());
	expect_str(doc, "accession_number", diana_deid_result_get(res, "AccessionNumber"));
	expect_str(doc, "patient_id", diana_deid_result_get(res, "PatientID"));
	expect_str(doc, "study_instance_uid", diana_deid_result_get(res, "StudyInstanceUID"));
	expect_str(doc, "sop_instance_uid", diana_deid_result_get(res, "SOPInstanceUID"));
	cr_expect_str_neq(get(doc, "accession_number")->valuestring, "SYN-CT1");
	/* the dose numbers are untouched */
	cr_assert_eq(cJSON_GetArraySize(get(doc, "events")), 3);
	expect_measure(event(doc, 1), "ctdivol", 7.81, "mGy");
	expect_measure(get(doc, "totals"), "ct_dlp_total", 714.62, "mGy.cm");
	/* shifted dates: not the original day, still a date */
	cr_expect(cJSON_IsString(get(doc, "study_date")));
	cr_expect_str_neq(get(doc, "study_date")->valuestring, "2024-03-04");
	unlink(out_file);
	free(out_file);
	diana_deid_result_free(res);
	cJSON_Delete(doc);
	diana_profile_free(p);
	free(path);
}

Test(dose, profile_removing_dates_gives_no_times)
{
	char *path = data_path("rdsr/synth-rf-rdsr-bigendian.dcm"), *json = NULL;
	diana_profile *p = profile(DIANA_DEID_CLEAN_STRUCTURED_CONTENT);
	diana_dose_options o = DIANA_DOSE_OPTIONS_INIT;
	const cJSON *e;
	cJSON *doc;

	o.profile = p;
	cr_assert_eq(diana_dose_from_file(&json, path, &o), 0, "%s", diana_error_message());
	doc = cJSON_Parse(json);
	diana_free(json);
	cr_assert_not_null(doc);
	/* dummy dates (19000101) are not dates: null */
	expect_null(doc, "study_date");
	expect_null(doc, "time");
	expect_null(doc, "time_source");
	cr_assert_eq(cJSON_GetArraySize(get(doc, "events")), 5);
	cJSON_ArrayForEach(e, get(doc, "events"))
		expect_null(e, "datetime");
	expect_measure(event(doc, 0), "dose_area_product", 0.00012, "Gy.m2");
	cJSON_Delete(doc);
	diana_profile_free(p);
	free(path);
}

Test(dose, profile_without_clean_structured_content_refused)
{
	char *path = data_path("rdsr/synth-ct-rdsr.dcm"), *json = (char *)1;
	diana_profile *p = profile(0);
	diana_dose_options o = DIANA_DOSE_OPTIONS_INIT;
	o.profile = p;
	cr_expect_eq(diana_dose_from_file(&json, path, &o), DIANA_EINVAL);
	cr_expect_null(json);
	cr_expect_not_null(strstr(diana_error_message(), "clean-structured-content"), "%s",
	                   diana_error_message());
	diana_profile_free(p);
	free(path);
}

/* ------------------------------------------------------------ HEC sink */

static pid_t hec_pid = -1;
static char hec_url[64], hec_log[64];

/* start the receiver (HTTPS with cert/key); returns its pid, port in *port */
static pid_t spawn_receiver(const char *log, const char *cert, const char *key, char *port, size_t size)
{
	char portfile[64];
	const char *script = getenv("DIANA_TEST_HEC");
	FILE *f = NULL;
	pid_t pid;
	int i;

	cr_assert_not_null(script, "DIANA_TEST_HEC is not set");
	snprintf(portfile, sizeof(portfile), "/tmp/diana-hec-%d-%s.port", (int)getpid(), cert ? "tls" : "http");
	unlink(portfile);
	pid = fork();
	cr_assert_neq(pid, -1);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);
		dup2(null, 0);
		dup2(null, 1);
		execl("/usr/bin/python3", "python3", script, portfile, log, cert, key, (char *)NULL);
		_exit(127);
	}
	for (i = 0; i < 200 && !(f = fopen(portfile, "r")); i++)
		usleep(25000);
	cr_assert_not_null(f, "HEC receiver did not start");
	memset(port, 0, size);
	cr_assert_not_null(fgets(port, (int)size, f));
	fclose(f);
	unlink(portfile);
	return pid;
}

static void start_hec(void)
{
	char port[16];

	setup();
	snprintf(hec_log, sizeof(hec_log), "/tmp/diana-hec-%d.log", (int)getpid());
	unlink(hec_log);
	hec_pid = spawn_receiver(hec_log, NULL, NULL, port, sizeof(port));
	snprintf(hec_url, sizeof(hec_url), "http://127.0.0.1:%s", port);
}

static void stop_hec(void)
{
	if (hec_pid > 0) {
		kill(hec_pid, SIGTERM);
		waitpid(hec_pid, NULL, 0);
		hec_pid = -1;
	}
	unlink(hec_log);
	teardown();
}

TestSuite(hec, .init = start_hec, .fini = stop_hec, .timeout = 120);

/* the receiver's log: one JSON object per request */
static cJSON *hec_requests(void)
{
	FILE *f = fopen(hec_log, "r");
	cJSON *all = cJSON_CreateArray();
	char *line = NULL;
	size_t cap = 0;
	if (!f)
		return all;
	while (getline(&line, &cap, f) > 0) {
		cJSON *r = cJSON_Parse(line);
		cr_assert_not_null(r, "bad log line");
		cJSON_AddItemToArray(all, r);
	}
	free(line);
	fclose(f);
	return all;
}

/* the events of one HEC body: concatenated JSON objects */
static int body_events(const char *body, cJSON **out, int max)
{
	int n = 0;
	const char *p = body, *end = NULL;
	while (*p && n < max) {
		cJSON *o = cJSON_ParseWithOpts(p, &end, 0);
		cr_assert_not_null(o, "HEC body is not concatenated JSON objects");
		out[n++] = o;
		p = end;
		while (*p == ' ' || *p == '\n' || *p == '\r')
			p++;
	}
	return n;
}

static char *doc_of(const char *rel)
{
	char *path = data_path(rel), *json = NULL;
	cr_assert_eq(diana_dose_from_file(&json, path, NULL), 0, "%s", diana_error_message());
	free(path);
	return json;
}

static diana_dose_sink *hec_sink(const char *url, const char *token, uint32_t batch, int retries)
{
	diana_dose_hec_options o;
	diana_dose_sink *s = NULL;
	cr_assert_eq(diana_dose_hec_options_init(&o, DIANA_DOSE_HEC_OPTIONS_VERSION), 0);
	o.url = url;
	o.token = token;
	o.index = "dose_idx";
	o.sourcetype = "diana:dose:test";
	o.host = "test-host";
	o.batch_events = batch;
	o.retries = retries;
	o.retry_delay_ms = 50;
	o.timeout_ms = 10000;
	cr_assert_eq(diana_dose_sink_new_hec(&s, &o), 0, "%s", diana_error_message());
	return s;
}

Test(hec, wire_format_token_time_and_batches)
{
	const char *rel[3] = { "rdsr/synth-ct-rdsr.dcm", "rdsr/synth-rf-rdsr-bigendian.dcm",
		               "rdsr/synth-ct-esr-implicit.dcm" };
	double want_time[3];
	diana_dose_sink *s = hec_sink(hec_url, "tok-1234-abcd", 2, 0);
	cJSON *reqs, *ev[8];
	int i, n;

	for (i = 0; i < 3; i++) {
		char *json = doc_of(rel[i]);
		cJSON *d = cJSON_Parse(json);
		want_time[i] = num(d, "time");
		cJSON_Delete(d);
		cr_assert_eq(diana_dose_sink_add(s, json), 0, "%s", diana_error_message());
		diana_free(json);
	}
	/* a full batch (2) went at once; the third waits for flush */
	reqs = hec_requests();
	cr_assert_eq(cJSON_GetArraySize(reqs), 1);
	cJSON_Delete(reqs);
	cr_expect_eq(diana_dose_sink_delivered(s), 2);
	cr_assert_eq(diana_dose_sink_flush(s), 0, "%s", diana_error_message());
	cr_expect_eq(diana_dose_sink_delivered(s), 3);
	diana_dose_sink_free(s);

	reqs = hec_requests();
	cr_assert_eq(cJSON_GetArraySize(reqs), 2);
	for (i = 0; i < 2; i++) {
		const cJSON *r = cJSON_GetArrayItem(reqs, i);
		expect_str(r, "method", "POST");
		expect_str(r, "path", "/services/collector/event");
		expect_str(r, "auth", "Splunk tok-1234-abcd");
		expect_str(r, "content_type", "application/json");
		cr_expect_eq(num(r, "status"), 200);
	}
	n = body_events(get(cJSON_GetArrayItem(reqs, 0), "body")->valuestring, ev, 8);
	cr_assert_eq(n, 2, "first POST carries %d events", n);
	n += body_events(get(cJSON_GetArrayItem(reqs, 1), "body")->valuestring, ev + 2, 6);
	cr_assert_eq(n, 3);
	for (i = 0; i < 3; i++) {
		const cJSON *inner = get(ev[i], "event");
		/* "time": the study (or first irradiation) datetime, not the sending time */
		cr_expect_eq(num(ev[i], "time"), want_time[i], "event %d time", i);
		cr_expect_lt(num(ev[i], "time"), (double)time(NULL) - 86400.0);
		expect_str(ev[i], "index", "dose_idx");
		expect_str(ev[i], "sourcetype", "diana:dose:test");
		expect_str(ev[i], "host", "test-host");
		expect_str(ev[i], "source", "libdiana");
		cr_expect(cJSON_IsArray(get(inner, "events")));
		cr_expect(cJSON_IsString(get(inner, "sop_instance_uid")));
		expect_str(inner, "accession_number", i == 0 ? "SYN-CT1" : i == 1 ? "SYN-RF1" : "SYN-CT2");
		cJSON_Delete(ev[i]);
	}
	cJSON_Delete(reqs);
}

Test(hec, no_time_when_the_report_has_none)
{
	diana_dose_sink *s = hec_sink(hec_url, "tok", 0, 0);
	cJSON *reqs, *ev[2];

	cr_assert_eq(diana_dose_sink_add(s, "{\"time\":null,\"events\":[]}"), 0);
	cr_assert_eq(diana_dose_sink_flush(s), 0, "%s", diana_error_message());
	diana_dose_sink_free(s);
	reqs = hec_requests();
	cr_assert_eq(cJSON_GetArraySize(reqs), 1);
	cr_assert_eq(body_events(get(cJSON_GetArrayItem(reqs, 0), "body")->valuestring, ev, 2), 1);
	cr_expect_null(cJSON_GetObjectItemCaseSensitive(ev[0], "time"), "no invented time");
	cJSON_Delete(ev[0]);
	cJSON_Delete(reqs);
}

Test(hec, retried_after_503_then_delivered)
{
	char url[128];
	char *json = doc_of("rdsr/synth-ct-rdsr.dcm");
	diana_dose_sink *s;
	cJSON *reqs;
	int i;

	snprintf(url, sizeof(url), "%s/fail503-2/", hec_url);
	s = hec_sink(url, "tok", 0, 3);
	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_assert_eq(diana_dose_sink_flush(s), 0, "%s", diana_error_message());
	diana_dose_sink_free(s);
	reqs = hec_requests();
	cr_assert_eq(cJSON_GetArraySize(reqs), 3, "two 503 answers then success");
	for (i = 0; i < 3; i++) {
		const cJSON *r = cJSON_GetArrayItem(reqs, i);
		expect_str(r, "path", "/fail503-2/services/collector/event");
		cr_expect_eq(num(r, "status"), i < 2 ? 503 : 200);
		cr_expect_str_eq(get(r, "body")->valuestring,
		                 get(cJSON_GetArrayItem(reqs, 0), "body")->valuestring, "same body each attempt");
	}
	cJSON_Delete(reqs);
	diana_free(json);
}

Test(hec, gives_up_after_retries_and_keeps_the_batch)
{
	char url[128];
	char *json = doc_of("rdsr/synth-ct-rdsr.dcm");
	diana_dose_sink *s;
	cJSON *reqs;

	snprintf(url, sizeof(url), "%s/fail503-3", hec_url);
	s = hec_sink(url, "tok", 0, 1);
	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_expect_eq(diana_dose_sink_flush(s), DIANA_EPACS);
	cr_expect_not_null(strstr(diana_error_message(), "503"), "%s", diana_error_message());
	cr_expect_eq(diana_dose_sink_delivered(s), 0);
	/* the batch stayed queued: the next flush tries again, its first
	 * attempt gets the third 503, its retry succeeds; nothing was lost */
	cr_expect_eq(diana_dose_sink_flush(s), 0, "%s", diana_error_message());
	cr_expect_eq(diana_dose_sink_delivered(s), 1);
	diana_dose_sink_free(s);
	reqs = hec_requests();
	cr_expect_eq(cJSON_GetArraySize(reqs), 4);
	cJSON_Delete(reqs);
	diana_free(json);
}

Test(hec, refused_token_not_retried_and_not_in_message)
{
	char *json = doc_of("rdsr/synth-ct-rdsr.dcm");
	diana_dose_sink *s = hec_sink(hec_url, "bad-token", 0, 3);
	cJSON *reqs;

	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_expect_eq(diana_dose_sink_flush(s), DIANA_EAUTH);
	cr_expect_null(strstr(diana_error_message(), "bad-token"), "token in message");
	cr_expect_not_null(strstr(diana_error_message(), "403"), "%s", diana_error_message());
	reqs = hec_requests();
	cr_expect_eq(cJSON_GetArraySize(reqs), 1, "a 4xx is not retried");
	cJSON_Delete(reqs);
	diana_dose_sink_free(s); /* best effort again, logged */
	diana_free(json);
}

Test(hec, connection_refused)
{
	char *json = doc_of("rdsr/synth-ct-rdsr.dcm");
	diana_dose_sink *s = hec_sink("http://127.0.0.1:1", "tok", 0, 1);
	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_expect_eq(diana_dose_sink_flush(s), DIANA_ECONNECT, "%s", diana_error_message());
	diana_dose_sink_free(s);
	diana_free(json);
}

Test(hec, tls_always_verified_ca_file_trusted)
{
	char dir[64], cmd[512], cert[96], key[96], log[96], port[16], url[64];
	char *json = doc_of("rdsr/synth-ct-rdsr.dcm");
	diana_dose_hec_options o = DIANA_DOSE_HEC_OPTIONS_INIT;
	diana_dose_sink *s = NULL;
	pid_t pid;

	snprintf(dir, sizeof(dir), "/tmp/diana-hec-tls-%d", (int)getpid());
	snprintf(cert, sizeof(cert), "%s/cert.pem", dir);
	snprintf(key, sizeof(key), "%s/key.pem", dir);
	snprintf(log, sizeof(log), "%s/log", dir);
	snprintf(cmd, sizeof(cmd),
	         "mkdir -p %s && openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=127.0.0.1 "
	         "-addext subjectAltName=IP:127.0.0.1 -keyout %s -out %s 2>/dev/null",
	         dir, key, cert);
	cr_assert_eq(system(cmd), 0, "openssl could not make a test certificate");
	pid = spawn_receiver(log, cert, key, port, sizeof(port));
	snprintf(url, sizeof(url), "https://127.0.0.1:%s", port);

	o.url = url;
	o.token = "tls-token";
	o.retries = 0;
	cr_assert_eq(diana_dose_sink_new_hec(&s, &o), 0);
	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_expect_eq(diana_dose_sink_flush(s), DIANA_ETLS, "%s", diana_error_message());
	cr_expect_null(strstr(diana_error_message(), "tls-token"));
	diana_dose_sink_free(s);

	o.ca_file = cert;
	cr_assert_eq(diana_dose_sink_new_hec(&s, &o), 0);
	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_expect_eq(diana_dose_sink_flush(s), 0, "%s", diana_error_message());
	cr_expect_eq(diana_dose_sink_delivered(s), 1);
	diana_dose_sink_free(s);

	kill(pid, SIGTERM);
	waitpid(pid, NULL, 0);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	cr_expect_eq(system(cmd), 0);
	diana_free(json);
}

Test(hec, options_and_token_file)
{
	diana_dose_hec_options o;
	diana_dose_sink *s = (diana_dose_sink *)1;
	char tf[64];
	FILE *f;
	char *json = doc_of("rdsr/synth-ct-rdsr.dcm");
	cJSON *reqs;

	cr_assert_eq(diana_dose_hec_options_init(&o, 1), 0);
	cr_expect_eq(o.retries, 3);
	cr_expect_eq(diana_dose_hec_options_init(&o, 2), DIANA_EUNSUPPORTED);
	cr_expect_eq(diana_dose_sink_new_hec(&s, &o), DIANA_EINVAL); /* no URL */
	cr_expect_null(s);
	o.url = "ftp://x";
	o.token = "t";
	cr_expect_eq(diana_dose_sink_new_hec(&s, &o), DIANA_EINVAL);
	o.url = hec_url;
	o.token = NULL;
	cr_expect_eq(diana_dose_sink_new_hec(&s, &o), DIANA_EINVAL); /* no token */
	o.token = "two words";
	cr_expect_eq(diana_dose_sink_new_hec(&s, &o), DIANA_EINVAL);
	cr_expect_null(strstr(diana_error_message(), "two words"));
	o.token = NULL;
	o.token_file = "/nonexistent/token";
	cr_expect_eq(diana_dose_sink_new_hec(&s, &o), DIANA_ENOTFOUND);

	snprintf(tf, sizeof(tf), "/tmp/diana-hec-token-%d", (int)getpid());
	f = fopen(tf, "w");
	cr_assert_not_null(f);
	fputs("file-token-77\n", f);
	fclose(f);
	o.token_file = tf;
	cr_assert_eq(diana_dose_sink_new_hec(&s, &o), 0, "%s", diana_error_message());
	unlink(tf);
	cr_assert_eq(diana_dose_sink_add(s, json), 0);
	cr_assert_eq(diana_dose_sink_add(s, "[1,2]"), DIANA_EINVAL);
	cr_assert_eq(diana_dose_sink_add(s, "not json"), DIANA_EINVAL);
	diana_dose_sink_free(s); /* delivers what is queued */
	reqs = hec_requests();
	cr_assert_eq(cJSON_GetArraySize(reqs), 1);
	expect_str(cJSON_GetArrayItem(reqs, 0), "auth", "Splunk file-token-77");
	cr_expect_eq(num(cJSON_GetArrayItem(reqs, 0), "status"), 200);
	cJSON_Delete(reqs);
	diana_free(json);
	diana_dose_sink_free(NULL);
	cr_expect_eq(diana_dose_sink_delivered(NULL), 0);
}

/* ------------------------------------------------------------ JSONL sink */

Test(dose, jsonl_sink_appends_one_line_per_report)
{
	char path[64];
	char *a = doc_of("rdsr/synth-ct-rdsr.dcm"), *b = doc_of("rdsr/synth-rf-rdsr-bigendian.dcm");
	diana_dose_sink *s = NULL;
	struct stat st;
	FILE *f;
	char *line = NULL;
	size_t cap = 0;
	int lines = 0;

	snprintf(path, sizeof(path), "/tmp/diana-dose-%d.jsonl", (int)getpid());
	unlink(path);
	cr_assert_eq(diana_dose_sink_new_jsonl(&s, path), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dose_sink_add(s, a), 0);
	cr_assert_eq(diana_dose_sink_add(s, b), 0);
	cr_assert_eq(diana_dose_sink_flush(s), 0);
	cr_expect_eq(diana_dose_sink_delivered(s), 2);
	diana_dose_sink_free(s);
	/* appended, not replaced */
	cr_assert_eq(diana_dose_sink_new_jsonl(&s, path), 0);
	cr_assert_eq(diana_dose_sink_add(s, a), 0);
	diana_dose_sink_free(s);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	f = fopen(path, "r");
	cr_assert_not_null(f);
	while (getline(&line, &cap, f) > 0) {
		cJSON *d = cJSON_Parse(line);
		cr_assert_not_null(d, "line %d is not JSON", lines + 1);
		expect_str(d, "accession_number", lines == 1 ? "SYN-RF1" : "SYN-CT1");
		cJSON_Delete(d);
		lines++;
	}
	free(line);
	fclose(f);
	cr_expect_eq(lines, 3);
	unlink(path);
	cr_expect_eq(diana_dose_sink_new_jsonl(&s, "/nonexistent/dir/x.jsonl"), DIANA_ENOTFOUND);
	diana_free(a);
	diana_free(b);
}
