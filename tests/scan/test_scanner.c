/*
 * Tests of the leak scanner (lib/deid/scan/scan.c): leaks planted in every
 * location class are found with the right place and kind, clean outputs
 * (the corpus with every attribute the basic profile changes removed) give
 * nothing, unreadable files fail closed, reports never hold values.
 *
 * Real files: tests/data/dicom (and $DIANA_SHARED_DATA/dicom when present);
 * synthetic studies with PHI: tests/tools/synth.py ($DIANA_SYNTH).
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/core.h"
#include "deid/deid.h"
#include "deid/scan/scanutil.h"

static char tmpdir[256];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/diana-scan-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	/* paths are scanned too: work with relative names, so that the random
	   name of the folder never matches a protected value */
	cr_assert_eq(chdir(tmpdir), 0);
}

static void teardown(void)
{
	char cmd[300];
	cr_assert_eq(chdir("/"), 0);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(scanner, .init = setup, .fini = teardown, .timeout = 300);

/* ------------------------------------------------------------------ helpers */

static diana_dataset *open_file(const char *path)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	int rc;
	o.flags = DIANA_OPEN_LENIENT;
	rc = diana_dataset_open(&ds, path, &o);
	cr_assert_eq(rc, 0, "open %s: %s", path, diana_error_message());
	return ds;
}

static char *get(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	cr_assert_eq(diana_dataset_get(ds, key, &v), 0, "get %s: %s", key, diana_error_message());
	return v;
}

/* synthetic studies: DIR/DIANA-CT-001/1.dcm (MUSTERMANN^ERIKA), DIANA-CT-002 (DOE^JOHN^Q) ... */
static const char *synth(void)
{
	static char dir[300];
	char cmd[1024];
	const char *tool = getenv("DIANA_SYNTH");
	cr_assert_not_null(tool, "DIANA_SYNTH is not set");
	snprintf(dir, sizeof dir, "synth");
	snprintf(cmd, sizeof cmd,
	         "/usr/bin/python3 '%s' --out '%s' --ct 3 --ct-slices 2 --ct-size 32x32 --xr 1 "
	         "--xr-size 32x32 --quiet",
	         tool, dir);
	cr_assert_eq(system(cmd), 0, "synth.py failed");
	return dir;
}

/* Remove every attribute the basic profile changes, at any depth. */
static void strip_identifying(cJSON *obj)
{
	cJSON *el = obj->child, *next;
	for (; el; el = next) {
		uint32_t tag = (uint32_t)strtoul(el->string, NULL, 16);
		next = el->next;
		if (diana__deid_is_identifying(tag)) {
			cJSON_DeleteItemFromObject(obj, el->string);
			continue;
		}
		cJSON *vr = cJSON_GetObjectItem(el, "vr");
		cJSON *val = cJSON_GetObjectItem(el, "Value");
		if (vr && !strcmp(vr->valuestring, "SQ") && val) {
			cJSON *item;
			cJSON_ArrayForEach(item, val)
				strip_identifying(item);
		}
	}
}

static cJSON *to_json(const diana_dataset *ds)
{
	char *text = NULL;
	cJSON *o;
	cr_assert_eq(diana_dataset_to_json(ds, DIANA_JSON_META, &text), 0, "%s", diana_error_message());
	o = cJSON_Parse(text);
	cr_assert_not_null(o);
	diana_free(text);
	return o;
}

/* JSON -> DICOM file at path; 0 or the error */
static int save_json(cJSON *o, const char *path)
{
	char *text = cJSON_PrintUnformatted(o);
	diana_dataset *ds = NULL;
	int rc = diana_dataset_from_json(&ds, text, 0);
	cJSON_free(text);
	if (rc == 0)
		rc = diana_dataset_save(ds, path);
	diana_dataset_free(ds);
	return rc;
}

static void put_text(cJSON *parent, const char *tag, const char *vr, const char *value)
{
	cJSON *el = cJSON_CreateObject(), *arr = cJSON_CreateArray();
	cJSON_DeleteItemFromObject(parent, tag);
	cJSON_AddStringToObject(el, "vr", vr);
	if (!strcmp(vr, "PN")) {
		cJSON *pn = cJSON_CreateObject();
		cJSON_AddStringToObject(pn, "Alphabetic", value);
		cJSON_AddItemToArray(arr, pn);
	} else {
		cJSON_AddItemToArray(arr, cJSON_CreateString(value));
	}
	cJSON_AddItemToObject(el, "Value", arr);
	cJSON_AddItemToObject(parent, tag, el);
}

static void put_binary(cJSON *parent, const char *tag, const char *vr, const void *data, size_t len)
{
	cJSON *el = cJSON_CreateObject();
	char *b64 = diana__base64_encode(data, len, NULL);
	cJSON_DeleteItemFromObject(parent, tag);
	cJSON_AddStringToObject(el, "vr", vr);
	cJSON_AddStringToObject(el, "InlineBinary", b64);
	free(b64);
	cJSON_AddItemToObject(parent, tag, el);
}

/* a sequence with one item; returns the item */
static cJSON *put_sequence(cJSON *parent, const char *tag)
{
	cJSON *el = cJSON_CreateObject(), *arr = cJSON_CreateArray(), *item = cJSON_CreateObject();
	cJSON_DeleteItemFromObject(parent, tag);
	cJSON_AddStringToObject(el, "vr", "SQ");
	cJSON_AddItemToArray(arr, item);
	cJSON_AddItemToObject(el, "Value", arr);
	cJSON_AddItemToObject(parent, tag, el);
	return item;
}

typedef struct scan_result {
	int rc;
	cJSON *findings; /* array, or NULL */
	char *raw;
} scan_result;

static scan_result scan(const diana_scanner *s, const char *path)
{
	scan_result r = { 0, NULL, NULL };
	r.rc = diana_scanner_scan_file(s, path, &r.raw);
	if (r.raw) {
		r.findings = cJSON_Parse(r.raw);
		cr_assert_not_null(r.findings, "report is JSON");
		cr_assert(cJSON_IsArray(r.findings));
	}
	return r;
}

static void result_free(scan_result *r)
{
	cJSON_Delete(r->findings);
	diana_free(r->raw);
}

static int has_finding(const scan_result *r, const char *where, const char *kind)
{
	cJSON *f;
	if (!r->findings)
		return 0;
	cJSON_ArrayForEach(f, r->findings) {
		if (!strcmp(cJSON_GetObjectItem(f, "where")->valuestring, where) &&
		    !strcmp(cJSON_GetObjectItem(f, "kind")->valuestring, kind))
			return 1;
	}
	return 0;
}

static void assert_finding(const scan_result *r, const char *where, const char *kind)
{
	cr_assert_eq(r->rc, DIANA_ELEAK, "expected a leak at %s (%s): rc %d %s", where, kind, r->rc,
	             diana_error_message());
	cr_assert(has_finding(r, where, kind), "no finding {%s, %s} in %s", where, kind,
	          r->raw ? r->raw : "(null)");
}

/* the report and the error message never hold a protected value */
static void assert_no_values(const scan_result *r, const char *const *values)
{
	for (; *values; values++) {
		if (r->raw)
			cr_assert_null(strcasestr(r->raw, *values), "report holds a value");
		cr_assert_null(strcasestr(diana_error_message(), *values), "error holds a value");
	}
}

static const char *const ERIKA[] = { "MUSTERMANN", "ERIKA", "PID-000456", "19710203", "1971-02-03",
	                              "03.02.1971", "DIANA-CT-001", "KIS-77120456", "Musterweg", "2.25.", NULL };

/* the clean (basic-profile stripped) JSON of a synthetic original */
static cJSON *clean_json_of(const char *original)
{
	diana_dataset *ds = open_file(original);
	cJSON *o = to_json(ds);
	diana_dataset_free(ds);
	strip_identifying(o);
	return o;
}

static diana_scanner *scanner_for(const char *original)
{
	diana_scanner *s = NULL;
	diana_dataset *ds = open_file(original);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_dataset(s, ds), 0, "%s", diana_error_message());
	diana_dataset_free(ds);
	return s;
}

/* plant, save as name, scan */
static scan_result plant_and_scan(const diana_scanner *s, cJSON *o, const char *name)
{
	char path[512];
	snprintf(path, sizeof path, "%s", name);
	cr_assert_eq(save_json(o, path), 0, "save %s: %s", name, diana_error_message());
	return scan(s, path);
}

/* ------------------------------------------------------------------ basics */

Test(scanner, arguments)
{
	diana_scanner *s = NULL;
	char *rep = (char *)1;

	cr_assert_eq(diana_scanner_new(NULL), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_value(s, NULL), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_add_value(NULL, "abc"), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_add_value(s, "ab"), DIANA_EINVAL, "values < 3 bytes are refused");
	cr_assert_eq(diana_scanner_add_value(s, "  ab  "), DIANA_EINVAL, "after trimming");
	cr_assert_eq(diana_scanner_add_value(s, "\xC3\x28xyz"), DIANA_EINVAL, "not UTF-8");
	cr_assert_eq(diana_scanner_add_dataset(s, NULL), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_add_key_file(s, NULL), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_add_key_file(s, "/nonexistent/key.csv"), DIANA_ENOTFOUND);
	/* an empty scanner cannot vouch for anything: fail closed */
	cr_assert_eq(diana_scanner_scan_file(s, "/dev/null", &rep), DIANA_EINVAL);
	cr_assert_null(rep);
	cr_assert_eq(diana_scanner_scan_file(NULL, "x", &rep), DIANA_EINVAL);
	diana_scanner_free(s);
	diana_scanner_free(NULL);
}

Test(scanner, unreadable_files_fail_closed)
{
	diana_scanner *s = NULL;
	char path[512], *rep = (char *)1;
	const char *data = getenv("DIANA_TEST_DATA");
	FILE *f;

	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_value(s, "SOMEONE^ELSE"), 0);
	snprintf(path, sizeof path, "%s/dicom/malformed/MR_truncated.dcm", data);
	cr_assert_eq(diana_scanner_scan_file(s, path, &rep), DIANA_EDICOM);
	cr_assert_null(rep);
	snprintf(path, sizeof path, "%s/dicom/malformed/rtplan_truncated.dcm", data);
	cr_assert_eq(diana_scanner_scan_file(s, path, &rep), DIANA_EDICOM);
	snprintf(path, sizeof path, "notes.txt");
	f = fopen(path, "w");
	fputs("not DICOM at all\n", f);
	fclose(f);
	cr_assert_eq(diana_scanner_scan_file(s, path, &rep), DIANA_EDICOM);
	snprintf(path, sizeof path, "empty.dcm");
	fclose(fopen(path, "w"));
	cr_assert_eq(diana_scanner_scan_file(s, path, &rep), DIANA_EDICOM);
	/* a raw dataset (implicit VR) with a file meta element in its body: the walk
	   sees it but no key reaches it, so it cannot be checked (found by fuzzing) */
	{
		static const uint8_t raw[] = {
			0x08, 0x00, 0x16, 0x00, 6, 0, 0, 0, '1', '.', '2', '.', '3', 0,
			0x02, 0x00, 0x16, 0x00, 10, 0, 0, 0, 'S', 'O', 'M', 'E', 'O', 'N', 'E', ' ', 'X', ' ',
		};
		snprintf(path, sizeof path, "meta-in-body.dcm");
		f = fopen(path, "wb");
		fwrite(raw, 1, sizeof raw, f);
		fclose(f);
		cr_assert_eq(diana_scanner_scan_file(s, path, &rep), DIANA_EDICOM, "%s", diana_error_message());
	}
	snprintf(path, sizeof path, "missing.dcm");
	cr_assert_eq(diana_scanner_scan_file(s, path, &rep), DIANA_ENOTFOUND);
	cr_assert_neq(diana_scanner_scan_file(s, tmpdir, &rep), 0, "a folder is no file");
	diana_scanner_free(s);
}

/* ------------------------------------------------------------------ synthetic: planted leaks */

static char original[512];

static void synth_original(const char *rel)
{
	snprintf(original, sizeof original, "%s/%s", synth(), rel);
}

Test(scanner, clean_synthetic_outputs_give_nothing)
{
	const char *dir = synth();
	const char *rels[] = { "DIANA-CT-001/1.dcm", "DIANA-CT-002/2.dcm", "DIANA-CT-003/1.dcm",
		               "DIANA-XR-001/1.dcm" };
	size_t i;

	for (i = 0; i < sizeof rels / sizeof rels[0]; i++) {
		char path[512];
		diana_scanner *s;
		cJSON *o;
		scan_result r;
		snprintf(path, sizeof path, "%s/%s", dir, rels[i]);
		s = scanner_for(path);
		/* the original itself leaks everywhere */
		r = scan(s, path);
		assert_finding(&r, "00100010", "name");
		assert_finding(&r, "00100020", "id");
		assert_finding(&r, "00100030", "date");
		assert_finding(&r, "00080018", "uid");
		assert_finding(&r, "file meta 00020003", "uid");
		assert_finding(&r, "00101002[0].00100020", "id");
		assert_finding(&r, "00111001", "name");
		result_free(&r);
		o = clean_json_of(path);
		r = plant_and_scan(s, o, "clean.dcm");
		cr_assert_eq(r.rc, 0, "%s: clean output flagged: %s", rels[i], r.raw);
		cr_assert_str_eq(r.raw, "[]");
		result_free(&r);
		cJSON_Delete(o);
		diana_scanner_free(s);
	}
}

Test(scanner, top_level_and_nested_text)
{
	diana_scanner *s;
	cJSON *o, *item, *deeper;
	scan_result r;

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	o = clean_json_of(original);
	put_text(o, "00204000", "LT", "Seen today, patient PID-000456 (Musterweg 12, 10115 Berlin)");
	item = put_sequence(o, "00400275");
	put_text(item, "00080050", "SH", "DIANA-CT-001");
	deeper = put_sequence(item, "00400008");
	put_text(deeper, "00080104", "LO", "for Erika Mustermann");
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "00204000", "id");
	assert_finding(&r, "00204000", "text"); /* the address */
	assert_finding(&r, "00400275[0].00080050", "id");
	assert_finding(&r, "00400275[0].00400008[0].00080104", "name");
	assert_no_values(&r, ERIKA);
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, file_meta)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	o = clean_json_of(original);
	put_text(o, "00020016", "AE", "PID-000456");
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "file meta 00020016", "id");
	assert_no_values(&r, ERIKA);
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, private_blobs)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;
	static const char blob[] = "\x01\x02\x00\xffname=MUSTERMANN^ERIKA;\x00\x80";
	static const char un[] = "KIS-77120456";

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	o = clean_json_of(original);
	put_text(o, "00110010", "LO", "ACME 1.0");
	put_binary(o, "00111001", "OB", blob, sizeof blob - 1);
	put_text(o, "00130010", "LO", "OTHER VENDOR");
	put_binary(o, "00131010", "UN", un, sizeof un - 1); /* private text of implicit VR data */
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "raw bytes of 00111001", "name");
	assert_finding(&r, "raw bytes of 00131010", "id");
	assert_no_values(&r, ERIKA);
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, file_names)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;
	char path[512];

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	o = clean_json_of(original);
	r = plant_and_scan(s, o, "MUSTERMANN_ERIKA.dcm");
	assert_finding(&r, "file name", "name");
	cr_assert_eq(cJSON_GetArraySize(r.findings), 1, "%s", r.raw);
	assert_no_values(&r, ERIKA);
	result_free(&r);
	r = plant_and_scan(s, o, "ErikaMustermann.dcm"); /* camelCase */
	assert_finding(&r, "file name", "name");
	result_free(&r);
	snprintf(path, sizeof path, "PID-000456");
	cr_assert_eq(mkdir(path, 0700), 0);
	snprintf(path, sizeof path, "PID-000456/20240301");
	cr_assert_eq(mkdir(path, 0700), 0);
	r = plant_and_scan(s, o, "PID-000456/20240301/1.dcm");
	assert_finding(&r, "file name", "id");
	assert_finding(&r, "file name", "date");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, preamble)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;
	char path[512];
	FILE *f;

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	o = clean_json_of(original);
	snprintf(path, sizeof path, "out.dcm");
	cr_assert_eq(save_json(o, path), 0);
	f = fopen(path, "r+b");
	fseek(f, 10, SEEK_SET);
	fputs("TIFF MUSTERMANN", f); /* dual-format files carry data in the preamble */
	fclose(f);
	r = scan(s, path);
	assert_finding(&r, "preamble", "name");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, dates_in_other_forms)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;
	const char *forms[] = { "born 1971-02-03", "born 1971/02/03", "geb. 03.02.1971", "DOB 02/03/1971",
		                "study of 2024-03-01", "19710203", "DOB19710203" };
	size_t i;

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		o = clean_json_of(original);
		put_text(o, "00204000", "LT", forms[i]);
		r = plant_and_scan(s, o, "out.dcm");
		assert_finding(&r, "00204000", "date");
		assert_no_values(&r, ERIKA);
		result_free(&r);
		cJSON_Delete(o);
	}
	/* a date time holding the study date */
	o = clean_json_of(original);
	put_text(o, "0008002A", "DT", "20240301103000");
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "0008002A", "date");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, names_in_other_order_and_case)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;
	const char *forms[] = { "erika mustermann", "Mustermann, Erika", "MUSTERMANN", "Dr. Mustermann",
		                "Erika", "ERIKA M." };
	size_t i;

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	for (i = 0; i < sizeof forms / sizeof forms[0]; i++) {
		o = clean_json_of(original);
		put_text(o, "0008103E", "LO", forms[i]);
		r = plant_and_scan(s, o, "out.dcm");
		assert_finding(&r, "0008103E", "name");
		assert_no_values(&r, ERIKA);
		result_free(&r);
		cJSON_Delete(o);
	}
	diana_scanner_free(s);
}

Test(scanner, charsets_and_diacritics)
{
	diana_scanner *s;
	cJSON *o;
	scan_result r;
	static const char latin1[] = "\x10\x00M\xDCLLER J\xDCRGEN\x00"; /* ISO 8859-1 bytes in a blob */

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	cr_assert_eq(diana_scanner_add_value(s, "MÜLLER^JÜRGEN"), 0);
	cr_assert_eq(diana_scanner_add_value(s, "ΠΑΠΑΔΟΠΟΥΛΟΥ^ΕΛΕΝΗ"), 0);
	o = clean_json_of(original);
	put_text(o, "00110010", "LO", "ACME");
	put_binary(o, "00111001", "OB", latin1, sizeof latin1 - 1);
	put_text(o, "00204000", "LT", "Jürgen Müller");               /* mixed case, UTF-8 */
	put_text(o, "0008103E", "LO", "MU\xCC\x88LLER");               /* decomposed (NFD) */
	put_text(o, "00081030", "LO", "Muller");                       /* without diacritics */
	put_text(o, "00181030", "LO", "Ελένη Παπαδοπούλου");          /* Greek, lower case, tonos */
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "raw bytes of 00111001", "name");
	assert_finding(&r, "00204000", "name");
	assert_finding(&r, "0008103E", "name");
	assert_finding(&r, "00081030", "name");
	assert_finding(&r, "00181030", "name");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

Test(scanner, derived_uids)
{
	diana_scanner *s;
	cJSON *o, *item;
	scan_result r;
	diana_dataset *ds;
	char *sop, buf[128];

	synth_original("DIANA-CT-001/1.dcm");
	s = scanner_for(original);
	ds = open_file(original);
	sop = get(ds, "SOPInstanceUID");
	diana_dataset_free(ds);
	o = clean_json_of(original);
	item = put_sequence(o, "00081140");
	put_text(item, "00081150", "UI", "1.2.840.10008.5.1.4.1.1.2");
	snprintf(buf, sizeof buf, "%s.1", sop); /* a UID made from the original */
	put_text(item, "00081155", "UI", buf);
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "00081140[0].00081155", "uid");
	cr_assert(!has_finding(&r, "00081140[0].00081150", "uid"), "standard UIDs are not protected");
	cr_assert_null(strstr(r.raw, sop));
	result_free(&r);
	cJSON_Delete(o);
	diana_free(sop);
	diana_scanner_free(s);
}

/* originals de-identified before: their values equal the engine's constants */
Test(scanner, engine_constants_are_no_leak)
{
	diana_scanner *s = NULL;
	diana_dataset *ds = NULL;
	scan_result r;
	cJSON *o = cJSON_Parse("{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
	                       "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"2.25.7\"]},"
	                       "\"00080020\":{\"vr\":\"DA\",\"Value\":[\"19000101\"]},"
	                       "\"00080080\":{\"vr\":\"LO\",\"Value\":[\"ANONYMIZED\"]},"
	                       "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"ANONYMIZED^EVA\"}]},"
	                       "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"PID-777777\"]}}");
	char *text = cJSON_PrintUnformatted(o);
	size_t i;

	cr_assert_eq(diana_dataset_from_json(&ds, text, 0), 0);
	cJSON_free(text);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_dataset(s, ds), 0);
	diana_dataset_free(ds);
	/* an output holding only the engine's constants (and pseudonyms) */
	cJSON_DeleteItemFromObject(o, "00100020");
	put_text(o, "00100020", "LO", "X7KQ2M");
	put_text(o, "00080018", "UI", "2.25.8");
	put_text(o, "00100010", "PN", "ANONYMIZED");
	put_text(o, "00080030", "TM", "000000");
	put_text(o, "00120062", "CS", "YES");
	r = plant_and_scan(s, o, "out.dcm");
	cr_assert_eq(r.rc, 0, "%s", r.raw);
	result_free(&r);
	for (i = 0; diana__deid_dummy_values[i]; i++)
		cr_assert_eq(diana_scanner_add_value(s, diana__deid_dummy_values[i]) == DIANA_EINVAL,
		             strlen(diana__deid_dummy_values[i]) < 3);
	/* the real values still count */
	put_text(o, "00204000", "LT", "Eva");
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "00204000", "name");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
}

/* ------------------------------------------------------------------ boundaries (false positives) */

static scan_result scan_text(const diana_scanner *s, const char *text)
{
	cJSON *o = cJSON_Parse("{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
	                       "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"2.25.1\"]}}");
	scan_result r;
	put_text(o, "00204000", "LT", text);
	r = plant_and_scan(s, o, "out.dcm");
	cJSON_Delete(o);
	return r;
}

Test(scanner, boundaries)
{
	diana_scanner *s = NULL;
	struct {
		const char *text;
		const char *kind; /* NULL: must not match */
	} cases[] = {
		{ "SCANNER ANNOTATION ALLEE", NULL }, /* short name components inside words */
		{ "Ann Lee", "name" },
		{ "ann-lee", "name" },
		{ "AnnLee", "name" }, /* camelCase */
		{ "1123456", NULL },    /* digits around a numeric ID */
		{ "1234567", NULL },
		{ "123456.5", NULL },   /* a decimal number */
		{ "2.25.123456789", NULL },
		{ "ID 123456", "id" },
		{ "PID123456x", "id" },
		{ "2.25.19710203777", NULL }, /* a date inside a UID */
		{ "0.19710203", NULL },
		{ "x19710203", "date" },
		{ "197102031015", "date" }, /* date time */
		{ "1.2.3.4.5.6", "uid" },
		{ "1.2.3.4.5.67", NULL },   /* another UID */
		{ "11.2.3.4.5.6", NULL },
		{ "9.1.2.3.4.5.6", NULL },
		{ "1.2.3.4.5.6.7", "uid" }, /* derived from the original */
		{ "Na Li", "name" },  /* components shorter than 3 bytes: the whole name in both orders */
		{ "LI NA", "name" },
		{ "Lina", NULL },
		{ "see XYZ-12", "id" },
		{ "XYZ-123", NULL },
	};
	size_t i;

	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_value(s, "ANN^LEE"), 0);
	cr_assert_eq(diana_scanner_add_value(s, "LI^NA"), 0);
	cr_assert_eq(diana_scanner_add_value(s, "123456"), 0);
	cr_assert_eq(diana_scanner_add_value(s, "19710203"), 0);
	cr_assert_eq(diana_scanner_add_value(s, "1.2.3.4.5.6"), 0);
	cr_assert_eq(diana_scanner_add_value(s, "XYZ-12"), 0);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		scan_result r = scan_text(s, cases[i].text);
		if (cases[i].kind) {
			cr_assert_eq(r.rc, DIANA_ELEAK, "'%s' must match", cases[i].text);
			assert_finding(&r, "00204000", cases[i].kind);
		} else {
			cr_assert_eq(r.rc, 0, "'%s' must not match: %s", cases[i].text, r.raw);
		}
		result_free(&r);
	}
	diana_scanner_free(s);
}

/* ------------------------------------------------------------------ key files */

Test(scanner, key_file_values)
{
	diana_scanner *s = NULL;
	char key[512];
	FILE *f;
	scan_result r;

	snprintf(key, sizeof key, "key.csv");
	f = fopen(key, "w");
	fputs("OriginalPatientName,OriginalPatientID,OriginalPatientBirthDate,OriginalAccessionNumber,"
	      "OriginalStudyInstanceUID,OriginalStudyDate,PseudoPatientName,PseudoPatientID,"
	      "PseudoPatientBirthDate,PseudoAccessionNumber,PseudoStudyInstanceUID,PseudoStudyDate\r\n"
	      "\"DOE^JOHN^Q\",PID-000123,19580717,ACC-778899,1.2.826.0.1.3680043.2.1,20240302,"
	      "SHAM^NAME,X7KQ2M,19580101,A5T2,2.25.42,20230101\r\n",
	      f);
	fclose(f);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_key_file(s, key), 0, "%s", diana_error_message());

	r = scan_text(s, "SHAM^NAME X7KQ2M A5T2 2.25.42 20230101"); /* pseudonyms are fine */
	cr_assert_eq(r.rc, 0, "%s", r.raw);
	result_free(&r);
	r = scan_text(s, "John Doe");
	assert_finding(&r, "00204000", "name");
	result_free(&r);
	r = scan_text(s, "acc-778899");
	assert_finding(&r, "00204000", "id");
	result_free(&r);
	r = scan_text(s, "1958-07-17");
	assert_finding(&r, "00204000", "date");
	result_free(&r);
	r = scan_text(s, "ref 1.2.826.0.1.3680043.2.1");
	assert_finding(&r, "00204000", "uid");
	result_free(&r);
	diana_scanner_free(s);

	/* not a key file: refused, not silently empty */
	f = fopen(key, "w");
	fputs("a,b\r\n1,2\r\n", f);
	fclose(f);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_key_file(s, key), DIANA_EINVAL);
	diana_scanner_free(s);
}

/* ------------------------------------------------------------------ concurrency */

struct scan_thread {
	const diana_scanner *s;
	const char *path;
	int leaks;
};

static void *scan_many(void *arg)
{
	struct scan_thread *t = arg;
	int i;
	for (i = 0; i < 20; i++) {
		char *rep = NULL;
		if (diana_scanner_scan_file(t->s, t->path, &rep) == DIANA_ELEAK && rep && strstr(rep, "00100010"))
			t->leaks++;
		diana_free(rep);
	}
	return NULL;
}

Test(scanner, concurrent_scans)
{
	diana_scanner *s;
	pthread_t th[4];
	struct scan_thread t[4];
	int i;

	synth_original("DIANA-CT-002/1.dcm");
	s = scanner_for(original);
	for (i = 0; i < 4; i++) {
		t[i].s = s;
		t[i].path = original;
		t[i].leaks = 0;
		pthread_create(&th[i], NULL, scan_many, &t[i]);
	}
	for (i = 0; i < 4; i++) {
		pthread_join(th[i], NULL);
		cr_assert_eq(t[i].leaks, 20);
	}
	diana_scanner_free(s);
}

/* ------------------------------------------------------------------ the corpus */

static void corpus_walk(const char *dir, void (*fn)(const char *path, void *ud), void *ud)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[4096];
		struct stat st;
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (strcmp(e->d_name, "malformed") != 0)
				corpus_walk(path, fn, ud);
			continue;
		}
		/* a DICOMDIR is no image (the engine skips it); its file IDs are folder names */
		if (!strncmp(e->d_name, "DICOMDIR", 8))
			continue;
		if ((len > 4 && (!strcmp(e->d_name + len - 4, ".tsv") || !strcmp(e->d_name + len - 4, ".txt"))) ||
		    !strcmp(e->d_name, "SHA256SUMS") || (len > 3 && !strcmp(e->d_name + len - 3, ".md")))
			continue;
		fn(path, ud);
	}
	closedir(d);
}

struct corpus_stats {
	int files;          /* parsed */
	int tested;         /* a clean output was made */
	int originals_leak; /* scanning the original found protected values */
	int clean;          /* the clean output gave nothing */
	char failures[8192];
};

static void corpus_file(const char *path, void *ud)
{
	struct corpus_stats *st = ud;
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	diana_scanner *s = NULL;
	char *text = NULL, out[512];
	cJSON *j;
	int rc;

	o.flags = DIANA_OPEN_LENIENT;
	if (diana_dataset_open(&ds, path, &o) != 0)
		return;
	st->files++;
	cr_assert_eq(diana_scanner_new(&s), 0);
	rc = diana_scanner_add_dataset(s, ds);
	if (rc == DIANA_EDICOM) { /* undecodable text: the engine refuses such files too */
		diana_scanner_free(s);
		diana_dataset_free(ds);
		return;
	}
	cr_assert_eq(rc, 0, "%s: %s", path, diana_error_message());
	cr_assert_eq(diana_dataset_to_json(ds, DIANA_JSON_META, &text), 0);
	diana_dataset_free(ds);
	j = cJSON_Parse(text);
	diana_free(text);
	strip_identifying(j);
	snprintf(out, sizeof out, "%d.dcm", st->files);
	rc = save_json(j, out);
	cJSON_Delete(j);
	if (rc != 0) {
		diana_scanner_free(s);
		return;
	}
	st->tested++;
	/* scanning the original finds something whenever it holds a value worth protecting */
	{
		char *rep = NULL;
		rc = diana_scanner_scan_file(s, path, &rep);
		if (rc == DIANA_ELEAK)
			st->originals_leak++;
		diana_free(rep);
	}
	{
		char *rep = NULL;
		rc = diana_scanner_scan_file(s, out, &rep);
		if (rc == 0) {
			st->clean++;
		} else if (rc != DIANA_EINVAL) { /* EINVAL: nothing to protect in this file */
			size_t n = strlen(st->failures);
			snprintf(st->failures + n, sizeof st->failures - n, "\n%s: %d %s", path, rc,
			         rep ? rep : diana_error_message());
		} else {
			st->clean++;
		}
		diana_free(rep);
	}
	unlink(out);
	diana_scanner_free(s);
}

Test(scanner, corpus_clean_outputs_give_nothing)
{
	struct corpus_stats st;
	const char *roots[2] = { getenv("DIANA_TEST_DATA"), getenv("DIANA_SHARED_DATA") };
	int i;

	memset(&st, 0, sizeof st);
	for (i = 0; i < 2; i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		snprintf(dir, sizeof dir, "%s/dicom", roots[i]);
		corpus_walk(dir, corpus_file, &st);
	}
	cr_log_info("corpus: %d files parsed, %d tested, %d originals leak, %d clean outputs clean",
	            st.files, st.tested, st.originals_leak, st.clean);
	cr_assert_gt(st.tested, 40);
	cr_assert_gt(st.tested, st.files * 9 / 10, "most files make a clean output");
	cr_assert_gt(st.originals_leak, st.tested / 2);
	cr_assert_str_empty(st.failures, "false positives:%s", st.failures);
	cr_assert_eq(st.clean, st.tested);
}

/* the engine's outputs (basic profile) of every corpus file give nothing */
struct engine_stats {
	diana_profile *profile;
	uint32_t options; /* told to the scanner */
	int files, anonymized, clean;
	char failures[8192];
};

static void engine_file(const char *path, void *ud)
{
	struct engine_stats *st = ud;
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	diana_scanner *s = NULL;
	char out[512], *rep = NULL;
	int rc;

	o.flags = DIANA_OPEN_LENIENT;
	if (diana_dataset_open(&ds, path, &o) != 0)
		return;
	st->files++;
	snprintf(out, sizeof out, "%d.dcm", st->files);
	if (diana_anonymize_file(st->profile, path, out, NULL) != 0) { /* refused: nothing written */
		diana_dataset_free(ds);
		return;
	}
	st->anonymized++;
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_set_options(s, st->options), 0);
	cr_assert_eq(diana_scanner_add_dataset(s, ds), 0, "%s: %s", path, diana_error_message());
	diana_dataset_free(ds);
	rc = diana_scanner_scan_file(s, out, &rep);
	if (rc == 0 || rc == DIANA_EINVAL) { /* EINVAL: nothing to protect in this file */
		st->clean++;
	} else {
		size_t n = strlen(st->failures);
		snprintf(st->failures + n, sizeof st->failures - n, "\n%s: %d %s", path, rc,
		         rep ? rep : diana_error_message());
	}
	diana_free(rep);
	diana_scanner_free(s);
	unlink(out);
}

Test(scanner, engine_outputs_give_nothing)
{
	static const uint8_t secret[] = "scanner test secret, 32 bytes at least";
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	struct engine_stats st;
	const char *roots[2] = { getenv("DIANA_TEST_DATA"), getenv("DIANA_SHARED_DATA") };
	int i;

	memset(&st, 0, sizeof st);
	po.secret = secret;
	po.secret_len = sizeof secret - 1;
	cr_assert_eq(diana_profile_new(&st.profile, &po), 0, "%s", diana_error_message());
	for (i = 0; i < 2; i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		snprintf(dir, sizeof dir, "%s/dicom", roots[i]);
		corpus_walk(dir, engine_file, &st);
	}
	diana_profile_free(st.profile);
	cr_log_info("engine: %d files, %d de-identified, %d clean", st.files, st.anonymized, st.clean);
	cr_assert_gt(st.anonymized, 40);
	cr_assert_str_empty(st.failures, "findings in the engine's outputs:%s", st.failures);
	cr_assert_eq(st.clean, st.anonymized);
}

/* ------------------------------------------------------------------ the outputs' options */

static const uint8_t opt_secret[] = "scanner options test secret, 32 bytes at least";

static diana_profile *profile_with(uint32_t options, const char *key_file)
{
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	diana_profile *p = NULL;
	po.secret = opt_secret;
	po.secret_len = sizeof opt_secret - 1;
	po.options = options;
	po.key_file = key_file;
	cr_assert_eq(diana_profile_new(&p, &po), 0, "%s", diana_error_message());
	return p;
}

/* a scanner told about `options` (0: none), holding the original's values */
static diana_scanner *scanner_with(uint32_t options, const char *orig_path)
{
	diana_scanner *s = NULL;
	diana_dataset *ds = open_file(orig_path);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_set_options(s, options), 0, "%s", diana_error_message());
	cr_assert_eq(diana_scanner_add_dataset(s, ds), 0, "%s", diana_error_message());
	diana_dataset_free(ds);
	return s;
}

Test(scanner, options_arguments)
{
	diana_scanner *s = NULL;
	diana_profile *p = profile_with(0, NULL);

	cr_assert_eq(diana_scanner_set_options(NULL, 0), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_set_options(s, 1u << 20), DIANA_EINVAL, "unknown bits");
	cr_assert_eq(diana_scanner_set_options(s, DIANA_DEID_RETAIN_LONG_FULL_DATES |
	                                              DIANA_DEID_RETAIN_LONG_MODIFIED_DATES),
	             DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_options(s, DIANA_DEID_RETAIN_UIDS), 0);
	cr_assert_eq(diana_scanner_set_action(s, "NoSuchKeyword", DIANA_ACTION_KEEP), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_action(s, "StationName", 99), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_action(s, NULL, DIANA_ACTION_KEEP), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_action(s, "(0008,1010)", DIANA_ACTION_KEEP), 0);
	cr_assert_eq(diana_scanner_set_action(s, "StationName", DIANA_ACTION_DEFAULT), 0);
	cr_assert_eq(diana_scanner_set_profile(s, NULL), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_profile(NULL, p), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_profile(s, p), 0);
	/* once values are in, what they protect is decided: no more changes */
	cr_assert_eq(diana_scanner_add_value(s, "SOMEONE^ELSE"), 0);
	cr_assert_eq(diana_scanner_set_options(s, DIANA_DEID_RETAIN_UIDS), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_action(s, "StationName", DIANA_ACTION_KEEP), DIANA_EINVAL);
	cr_assert_eq(diana_scanner_set_profile(s, p), DIANA_EINVAL);
	diana_scanner_free(s);
	diana_profile_free(p);
}

/*
 * The engine's output with each Retain option: the scanner told about the
 * option finds nothing; one told nothing reports the retained values (so
 * the option is what makes the difference).
 */
Test(scanner, options_retained_values_are_no_finding)
{
	static const struct {
		uint32_t option;
		const char *where; /* a retained value the basic scanner reports, or NULL */
		const char *kind;
	} cases[] = {
		{ DIANA_DEID_RETAIN_LONG_FULL_DATES, "00080020", "date" },
		{ DIANA_DEID_RETAIN_DEVICE_IDENTITY, "00181000", "id" },
		{ DIANA_DEID_RETAIN_INSTITUTION_IDENTITY, "00080080", "text" },
		{ DIANA_DEID_RETAIN_UIDS, "0020000D", "uid" },
		{ DIANA_DEID_RETAIN_PATIENT_CHARACTERISTICS, NULL, NULL },
		{ DIANA_DEID_RETAIN_LONG_MODIFIED_DATES, NULL, NULL },
		{ DIANA_DEID_RETAIN_SAFE_PRIVATE, NULL, NULL },
		{ DIANA_DEID_RETAIN_LONG_FULL_DATES | DIANA_DEID_RETAIN_DEVICE_IDENTITY |
		      DIANA_DEID_RETAIN_INSTITUTION_IDENTITY | DIANA_DEID_RETAIN_UIDS |
		      DIANA_DEID_RETAIN_PATIENT_CHARACTERISTICS | DIANA_DEID_RETAIN_SAFE_PRIVATE |
		      DIANA_DEID_CLEAN_DESCRIPTORS,
		  "00080020", "date" },
	};
	const char *dir = synth();
	char orig[512];
	size_t i;

	snprintf(orig, sizeof orig, "%s/DIANA-CT-001/1.dcm", dir);
	for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		diana_profile *p = profile_with(cases[i].option, NULL);
		diana_scanner *s;
		scan_result r;

		cr_assert_eq(diana_anonymize_file(p, orig, "out.dcm", NULL), 0, "%s", diana_error_message());
		/* told about the option: nothing */
		s = scanner_with(cases[i].option, orig);
		r = scan(s, "out.dcm");
		cr_assert_eq(r.rc, 0, "option 0x%x: %s", (unsigned)cases[i].option, r.raw ? r.raw : diana_error_message());
		result_free(&r);
		diana_scanner_free(s);
		/* the same through the profile */
		cr_assert_eq(diana_scanner_new(&s), 0);
		cr_assert_eq(diana_scanner_set_profile(s, p), 0);
		{
			diana_dataset *ds = open_file(orig);
			cr_assert_eq(diana_scanner_add_dataset(s, ds), 0);
			diana_dataset_free(ds);
		}
		r = scan(s, "out.dcm");
		cr_assert_eq(r.rc, 0, "profile 0x%x: %s", (unsigned)cases[i].option, r.raw ? r.raw : "");
		result_free(&r);
		diana_scanner_free(s);
		/* not told: the retained values are findings */
		if (cases[i].where) {
			s = scanner_with(0, orig);
			r = scan(s, "out.dcm");
			assert_finding(&r, cases[i].where, cases[i].kind);
			result_free(&r);
			diana_scanner_free(s);
		}
		diana_profile_free(p);
		unlink("out.dcm");
	}
}

/* with every Retain option, what the options do not retain is still found */
Test(scanner, options_other_values_still_found)
{
	const uint32_t all = DIANA_DEID_RETAIN_LONG_FULL_DATES | DIANA_DEID_RETAIN_DEVICE_IDENTITY |
	                     DIANA_DEID_RETAIN_INSTITUTION_IDENTITY | DIANA_DEID_RETAIN_UIDS |
	                     DIANA_DEID_RETAIN_PATIENT_CHARACTERISTICS | DIANA_DEID_RETAIN_SAFE_PRIVATE;
	const char *dir = synth();
	char orig[512];
	diana_profile *p = profile_with(all, NULL);
	diana_scanner *s;
	diana_dataset *out;
	cJSON *o, *item;
	scan_result r;

	snprintf(orig, sizeof orig, "%s/DIANA-CT-001/1.dcm", dir);
	cr_assert_eq(diana_anonymize_file(p, orig, "out.dcm", NULL), 0, "%s", diana_error_message());
	s = scanner_with(all, orig);
	out = open_file("out.dcm");
	o = to_json(out);
	diana_dataset_free(out);
	/* planted back: values no option retains */
	put_text(o, "00100010", "PN", "MUSTERMANN^ERIKA");
	put_text(o, "00100030", "DA", "19710203");
	put_text(o, "00080050", "SH", "DIANA-CT-001");
	put_text(o, "00101040", "LO", "Musterweg 12, 10115 Berlin");
	put_text(o, "00080090", "PN", "HAUSARZT^HANS^^DR.");
	item = put_sequence(o, "00081115");
	put_text(item, "00100020", "LO", "PID-000456");
	r = plant_and_scan(s, o, "planted.dcm");
	assert_finding(&r, "00100010", "name");
	assert_finding(&r, "00100030", "date");
	assert_finding(&r, "00080050", "id");
	assert_finding(&r, "00101040", "text");
	assert_finding(&r, "00080090", "name");
	assert_finding(&r, "00081115[0].00100020", "id");
	assert_no_values(&r, ERIKA);
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);
	diana_profile_free(p);
}

/* overrides: KEEP retains, REMOVE protects again what an option would retain */
Test(scanner, options_overrides)
{
	const char *dir = synth();
	char orig[512];
	diana_profile *p = profile_with(DIANA_DEID_RETAIN_LONG_FULL_DATES, NULL);
	diana_scanner *s;
	diana_dataset *ds;
	scan_result r;

	snprintf(orig, sizeof orig, "%s/DIANA-CT-001/1.dcm", dir);
	cr_assert_eq(diana_profile_set_action(p, "StationName", DIANA_ACTION_KEEP, NULL), 0);
	cr_assert_eq(diana_anonymize_file(p, orig, "out.dcm", NULL), 0, "%s", diana_error_message());
	ds = open_file(orig);

	/* told about the profile (option and override): nothing */
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_set_options(s, DIANA_DEID_RETAIN_LONG_FULL_DATES), 0);
	cr_assert_eq(diana_scanner_set_action(s, "StationName", DIANA_ACTION_KEEP), 0);
	cr_assert_eq(diana_scanner_add_dataset(s, ds), 0);
	r = scan(s, "out.dcm");
	cr_assert_eq(r.rc, 0, "%s", r.raw ? r.raw : diana_error_message());
	result_free(&r);
	diana_scanner_free(s);

	/* not told about the override: the kept station name is found */
	s = scanner_with(DIANA_DEID_RETAIN_LONG_FULL_DATES, orig);
	r = scan(s, "out.dcm");
	assert_finding(&r, "00081010", "text");
	cr_assert(!has_finding(&r, "00080020", "date"));
	result_free(&r);
	diana_scanner_free(s);

	/* an override that removes Study Date wins over the option: the kept date is found */
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_set_options(s, DIANA_DEID_RETAIN_LONG_FULL_DATES), 0);
	cr_assert_eq(diana_scanner_set_action(s, "StationName", DIANA_ACTION_KEEP), 0);
	cr_assert_eq(diana_scanner_set_action(s, "StudyDate", DIANA_ACTION_REMOVE), 0);
	cr_assert_eq(diana_scanner_add_dataset(s, ds), 0);
	r = scan(s, "out.dcm");
	assert_finding(&r, "00080020", "date");
	result_free(&r);
	diana_scanner_free(s);
	diana_dataset_free(ds);
	diana_profile_free(p);
}

/* key files: the columns an option retains are skipped, the others still protected */
Test(scanner, options_key_file)
{
	const uint32_t opts = DIANA_DEID_RETAIN_LONG_FULL_DATES | DIANA_DEID_RETAIN_UIDS;
	const char *dir = synth();
	char orig[512];
	diana_profile *p = profile_with(opts, "key.csv");
	diana_scanner *s;
	diana_dataset *out;
	cJSON *o;
	scan_result r;

	snprintf(orig, sizeof orig, "%s/DIANA-CT-001/1.dcm", dir);
	cr_assert_eq(diana_anonymize_file(p, orig, "out.dcm", NULL), 0, "%s", diana_error_message());
	diana_profile_free(p); /* flushes the key file */

	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_set_options(s, opts), 0);
	cr_assert_eq(diana_scanner_add_key_file(s, "key.csv"), 0, "%s", diana_error_message());
	r = scan(s, "out.dcm");
	cr_assert_eq(r.rc, 0, "%s", r.raw ? r.raw : diana_error_message());
	result_free(&r);
	out = open_file("out.dcm");
	o = to_json(out);
	diana_dataset_free(out);
	put_text(o, "00100010", "PN", "MUSTERMANN^ERIKA");
	put_text(o, "00100030", "DA", "19710203");
	r = plant_and_scan(s, o, "planted.dcm");
	assert_finding(&r, "00100010", "name");
	assert_finding(&r, "00100030", "date");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);

	/* a scanner not told reports the kept Study Date and Study Instance UID */
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_key_file(s, "key.csv"), 0);
	r = scan(s, "out.dcm");
	assert_finding(&r, "00080020", "date");
	assert_finding(&r, "0020000D", "uid");
	result_free(&r);
	diana_scanner_free(s);
}

/* safe private elements: kept ones are no finding, other private values still are */
Test(scanner, options_safe_private)
{
	const char *dir = synth();
	char orig[512];
	diana_profile *p = profile_with(DIANA_DEID_RETAIN_SAFE_PRIVATE, NULL);
	diana_dataset *ds;
	diana_scanner *s;
	cJSON *o;
	scan_result r;

	snprintf(orig, sizeof orig, "%s/DIANA-CT-001/1.dcm", dir);
	ds = open_file(orig);
	o = to_json(ds);
	diana_dataset_free(ds);
	put_text(o, "00190010", "LO", "SIEMENS MR HEADER");
	put_text(o, "0019100C", "IS", "1000");                /* safe: B Value */
	put_text(o, "0019100D", "CS", "DIRECTIONAL");         /* safe: Diffusion Directionality */
	put_text(o, "00191099", "LO", "private-secret-note"); /* not safe */
	cr_assert_eq(save_json(o, "orig.dcm"), 0, "%s", diana_error_message());
	cJSON_Delete(o);
	cr_assert_eq(diana_anonymize_file(p, "orig.dcm", "out.dcm", NULL), 0, "%s", diana_error_message());

	s = scanner_with(DIANA_DEID_RETAIN_SAFE_PRIVATE, "orig.dcm");
	r = scan(s, "out.dcm");
	cr_assert_eq(r.rc, 0, "%s", r.raw ? r.raw : diana_error_message());
	result_free(&r);
	ds = open_file("out.dcm");
	o = to_json(ds);
	diana_dataset_free(ds);
	put_text(o, "00191099", "LO", "private-secret-note");
	r = plant_and_scan(s, o, "planted.dcm");
	assert_finding(&r, "00191099", "text");
	result_free(&r);
	cJSON_Delete(o);
	diana_scanner_free(s);

	/* the kept values are numbers and code strings, never protected: a scanner not told finds nothing either */
	ds = open_file("out.dcm");
	{
		char *v = NULL;
		cr_assert_eq(diana_dataset_get(ds, "0019100D", &v), 0, "the safe element is kept");
		cr_assert_str_eq(v, "DIRECTIONAL");
		diana_free(v);
	}
	diana_dataset_free(ds);
	s = scanner_with(0, "orig.dcm");
	r = scan(s, "out.dcm");
	cr_assert_eq(r.rc, 0, "%s", r.raw ? r.raw : diana_error_message());
	result_free(&r);
	diana_scanner_free(s);
	diana_profile_free(p);
}

/* the same with every Retain option (but modified dates), the scanner told about them */
Test(scanner, engine_outputs_with_options_give_nothing)
{
	static const uint8_t secret[] = "scanner test secret, 32 bytes at least";
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	struct engine_stats st;
	const char *roots[2] = { getenv("DIANA_TEST_DATA"), getenv("DIANA_SHARED_DATA") };
	int i;

	memset(&st, 0, sizeof st);
	po.secret = secret;
	po.secret_len = sizeof secret - 1;
	po.options = st.options = DIANA_DEID_RETAIN_SAFE_PRIVATE | DIANA_DEID_RETAIN_UIDS |
	                          DIANA_DEID_RETAIN_DEVICE_IDENTITY | DIANA_DEID_RETAIN_INSTITUTION_IDENTITY |
	                          DIANA_DEID_RETAIN_PATIENT_CHARACTERISTICS |
	                          DIANA_DEID_RETAIN_LONG_FULL_DATES | DIANA_DEID_CLEAN_DESCRIPTORS |
	                          DIANA_DEID_CLEAN_STRUCTURED_CONTENT | DIANA_DEID_CLEAN_GRAPHICS;
	cr_assert_eq(diana_profile_new(&st.profile, &po), 0, "%s", diana_error_message());
	for (i = 0; i < 2; i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		snprintf(dir, sizeof dir, "%s/dicom", roots[i]);
		corpus_walk(dir, engine_file, &st);
	}
	diana_profile_free(st.profile);
	cr_log_info("engine with options: %d files, %d de-identified, %d clean", st.files, st.anonymized,
	            st.clean);
	cr_assert_gt(st.anonymized, 40);
	cr_assert_str_empty(st.failures, "findings in the engine's outputs:%s", st.failures);
	cr_assert_eq(st.clean, st.anonymized);
}

/* A sham name may share a word with another patient's real name (both come from
   common name lists): an output value equal to a pseudonym of the key file is the
   engine's, not a leak; the other patient's name anywhere else still is. */
Test(scanner, key_file_pseudonyms_are_not_leaks)
{
	diana_scanner *s = NULL;
	cJSON *o;
	FILE *f;
	scan_result r;

	f = fopen("key.csv", "w");
	fputs("OriginalPatientName,OriginalPatientID,OriginalPatientBirthDate,OriginalAccessionNumber,"
	      "OriginalStudyInstanceUID,OriginalStudyDate,PseudoPatientName,PseudoPatientID,"
	      "PseudoPatientBirthDate,PseudoAccessionNumber,PseudoStudyInstanceUID,PseudoStudyDate\r\n"
	      "MEIER^KARL,PID-1001,19600101,ACC-1001,1.2.3.1,20240101,SCHMIDT^ANNA,QWERTY12,19600101,ZXCV1234,2.25.11,"
	      "20230101\r\n"
	      "SCHMIDT^HANS,PID-1002,19700101,ACC-1002,1.2.3.2,20240102,BRAUN^LEA,ASDFGH34,19700101,POIU5678,2.25.12,"
	      "20230102\r\n",
	      f);
	fclose(f);
	cr_assert_eq(diana_scanner_new(&s), 0);
	cr_assert_eq(diana_scanner_add_key_file(s, "key.csv"), 0, "%s", diana_error_message());

	o = cJSON_Parse("{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
	                "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"2.25.1\"]},"
	                "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"SCHMIDT^ANNA\"}]}}");
	r = plant_and_scan(s, o, "out.dcm");
	cr_expect_eq(r.rc, 0, "patient A's sham name is no leak of patient B's family name: %s", r.raw);
	result_free(&r);
	cJSON_Delete(o);

	o = cJSON_Parse("{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
	                "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"2.25.1\"]},"
	                "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"SCHMIDT^HANS\"}]}}");
	r = plant_and_scan(s, o, "out.dcm");
	assert_finding(&r, "00100010", "name");
	result_free(&r);
	cJSON_Delete(o);

	r = scan_text(s, "seen by Schmidt");
	assert_finding(&r, "00204000", "name");
	result_free(&r);
	diana_scanner_free(s);
}
