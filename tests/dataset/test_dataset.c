/*
 * libdiana - tests of the dataset API (include/diana/dataset.h).
 *
 * Corpus tests run over tests/data/dicom (always) and over the shared
 * corpus $DIANA_SHARED_DATA/dicom when it exists. Expected values of the
 * targeted tests were read with dcmdump 3.6.7 and pydicom 2.3.1.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <diana/diana.h>

/* Under -Db_sanitize=address, check for leaks at the end of every test:
 * Criterion's workers leave with _exit(), so LeakSanitizer's own exit-time
 * check never runs in them. */
#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/lsan_interface.h>
#define LEAK_CHECK()                                                      \
	do {                                                                  \
		if (__lsan_do_recoverable_leak_check()) {                         \
			fprintf(stderr, "memory leaked during the test\n");           \
			abort();                                                      \
		}                                                                 \
	} while (0)
#else
#define LEAK_CHECK() ((void)0)
#endif

/* ------------------------------------------------------------------------ */
/* helpers                                                                   */
/* ------------------------------------------------------------------------ */

static void setup(void)
{
	cr_assert_gt(diana_init(), 0);
}

static void teardown(void)
{
	diana_shutdown();
	LEAK_CHECK();
}

TestSuite(corpus, .init = setup, .fini = teardown, .timeout = 280);
TestSuite(dataset, .init = setup, .fini = teardown, .timeout = 60);

typedef struct {
	char **paths; /* absolute */
	char **rel;   /* relative to the corpus root */
	size_t n, cap;
} file_list;

static void list_add(file_list *l, const char *path, const char *rel)
{
	if (l->n == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->paths = realloc(l->paths, l->cap * sizeof *l->paths);
		l->rel = realloc(l->rel, l->cap * sizeof *l->rel);
		cr_assert(l->paths && l->rel);
	}
	l->paths[l->n] = strdup(path);
	l->rel[l->n] = strdup(rel);
	l->n++;
}

static void walk(file_list *l, const char *dir, const char *rel)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[4096], r[4096];
		struct stat st;
		size_t len = strlen(e->d_name);
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		snprintf(r, sizeof r, "%s%s%s", rel, *rel ? "/" : "", e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(l, path, r);
			continue;
		}
		if ((len > 4 && !strcmp(e->d_name + len - 4, ".tsv")) || !strcmp(e->d_name, "SHA256SUMS") ||
		    (len > 3 && !strcmp(e->d_name + len - 3, ".md")))
			continue;
		list_add(l, path, r);
	}
	closedir(d);
}

/* every corpus file: the repo's copy, then the shared corpus when present */
static file_list corpus_files(void)
{
	file_list l = { 0 };
	const char *roots[2] = { getenv("DIANA_TEST_DATA"), getenv("DIANA_SHARED_DATA") };
	for (int i = 0; i < 2; i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		snprintf(dir, sizeof dir, "%s/dicom", roots[i]);
		walk(&l, dir, "");
	}
	return l;
}

static void list_free(file_list *l)
{
	for (size_t i = 0; i < l->n; i++) {
		free(l->paths[i]);
		free(l->rel[i]);
	}
	free(l->paths);
	free(l->rel);
}

static int is_malformed(const char *rel)
{
	return !strncmp(rel, "malformed/", 10);
}

static const char *base_name(const char *p)
{
	const char *s = strrchr(p, '/');
	return s ? s + 1 : p;
}

static char *repo_file(const char *rel)
{
	static char buf[4][4096];
	static int k;
	const char *root = getenv("DIANA_TEST_DATA");
	cr_assert_not_null(root, "DIANA_TEST_DATA is not set");
	k = (k + 1) % 4;
	snprintf(buf[k], sizeof buf[k], "%s/dicom/%s", root, rel);
	return buf[k];
}

static diana_dataset *open_or_die(const char *rel, uint32_t flags)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	o.flags = flags;
	int rc = diana_dataset_open(&ds, repo_file(rel), &o);
	cr_assert_eq(rc, 0, "open %s: %d %s", rel, rc, diana_error_message());
	cr_assert_not_null(ds);
	return ds;
}

/* remove every "00080005" member (Specific Character Set) from compact JSON */
static void strip_charset(char *s)
{
	const char *key = "\"00080005\":{";
	char *p;
	while ((p = strstr(s, key))) {
		char *e = strchr(p, '}');
		if (!e)
			return;
		e++;
		if (*e == ',')
			e++;
		else if (p > s && p[-1] == ',')
			p--;
		memmove(p, e, strlen(e) + 1);
	}
}

static size_t count_substr(const char *s, const char *sub)
{
	size_t n = 0, k = strlen(sub);
	while ((s = strstr(s, sub))) {
		n++;
		s += k;
	}
	return n;
}

static int valid_utf8(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	while (*p) {
		int n;
		if (*p < 0x80)
			n = 0;
		else if (*p >= 0xC2 && *p <= 0xDF)
			n = 1;
		else if (*p >= 0xE0 && *p <= 0xEF)
			n = 2;
		else if (*p >= 0xF0 && *p <= 0xF4)
			n = 3;
		else
			return 0;
		p++;
		for (int i = 0; i < n; i++, p++)
			if ((*p & 0xC0) != 0x80)
				return 0;
	}
	return 1;
}

static int count_cb(const diana_element *e, void *user)
{
	(void)e;
	(*(size_t *)user)++;
	return 0;
}

static char *get_str(const diana_dataset *ds, const char *key)
{
	char *v = NULL;
	int rc = diana_dataset_get(ds, key, &v);
	cr_assert_eq(rc, 0, "get %s: %d %s", key, rc, diana_error_message());
	cr_assert_not_null(v);
	return v;
}

static void expect_get(const diana_dataset *ds, const char *key, const char *want)
{
	char *v = get_str(ds, key);
	cr_expect_str_eq(v, want, "get %s: [%s] != [%s]", key, v, want);
	diana_free(v);
}

static void expect_get_rc(const diana_dataset *ds, const char *key, int want)
{
	char *v = (char *)1;
	int rc = diana_dataset_get(ds, key, &v);
	cr_expect_eq(rc, want, "get %s: %d, expected %d (%s)", key, rc, want, diana_error_message());
	cr_expect_null(v, "get %s: out not NULL on failure", key);
	if (rc == 0)
		diana_free(v);
	else
		cr_expect_eq(diana_error_code(), rc);
}

static char *json_of(const diana_dataset *ds, uint32_t flags)
{
	char *j = NULL;
	int rc = diana_dataset_to_json(ds, flags, &j);
	cr_assert_eq(rc, 0, "to_json: %d %s", rc, diana_error_message());
	return j;
}

static int single_line(const char *s)
{
	return s && *s && !strchr(s, '\n') && !strchr(s, '\r');
}

/* ------------------------------------------------------------------------ */
/* corpus                                                                    */
/* ------------------------------------------------------------------------ */

Test(corpus, wellformed_files_open_strictly_and_round_trip)
{
	file_list l = corpus_files();
	size_t tested = 0;
	for (size_t i = 0; i < l.n; i++) {
		const char *f = l.paths[i];
		diana_dataset *ds = NULL, *d2 = NULL, *d3 = NULL, *d4 = NULL;
		char *j1 = NULL, *j2 = NULL, *j3 = NULL, *jx = NULL;
		uint8_t *buf = NULL;
		size_t len = 0, count = 0;
		int rc;

		if (is_malformed(l.rel[i]))
			continue;
		tested++;
		rc = diana_dataset_open(&ds, f, NULL);
		cr_expect_eq(rc, 0, "%s: strict open failed: %d %s", f, rc, diana_error_message());
		if (rc)
			continue;
		rc = diana_dataset_to_json(ds, 0, &j1);
		cr_expect_eq(rc, 0, "%s: to_json: %s", f, diana_error_message());
		if (rc) {
			diana_dataset_free(ds);
			continue;
		}
		cr_expect(valid_utf8(j1), "%s: JSON is not UTF-8", f);

		/* (a) open -> save_memory -> open_memory -> to_json identical */
		rc = diana_dataset_save_memory(ds, &buf, &len);
		cr_expect_eq(rc, 0, "%s: save_memory: %s", f, diana_error_message());
		if (!rc) {
			rc = diana_dataset_open_memory(&d2, buf, len, NULL);
			cr_expect_eq(rc, 0, "%s: reopen of saved data: %s", f, diana_error_message());
			if (!rc) {
				j2 = json_of(d2, 0);
				cr_expect_str_eq(j2, j1, "%s: JSON changed by save/reopen", f);
			}
		}

		/* (b) to_json -> from_json -> to_json identical, (0008,0005) aside */
		rc = diana_dataset_from_json(&d3, j1, 0);
		cr_expect_eq(rc, 0, "%s: from_json: %s", f, diana_error_message());
		if (!rc) {
			j3 = json_of(d3, 0);
			strip_charset(j3);
			char *c1 = strdup(j1);
			strip_charset(c1);
			cr_expect_str_eq(j3, c1, "%s: JSON changed by from_json", f);
			free(c1);
		}

		/* foreach visits every element once: as many as "vr" keys */
		rc = diana_dataset_foreach(ds, 0, count_cb, &count);
		cr_expect_eq(rc, 0, "%s: foreach", f);
		cr_expect_eq(count, count_substr(j1, "\"vr\":"), "%s: foreach count %zu", f, count);

		/* other flags work too */
		rc = diana_dataset_to_json(ds, DIANA_JSON_PRETTY | DIANA_JSON_NO_BULK | DIANA_JSON_META, &jx);
		cr_expect_eq(rc, 0, "%s: to_json(flags): %s", f, diana_error_message());
		diana_free(jx);

		/* header-only reading */
		diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
		o.flags = DIANA_OPEN_SKIP_PIXELS;
		rc = diana_dataset_open(&d4, f, &o);
		cr_expect_eq(rc, 0, "%s: open SKIP_PIXELS: %s", f, diana_error_message());
		if (!rc) {
			char *v = NULL;
			cr_expect_eq(diana_dataset_get(d4, "PixelData", &v), DIANA_ENOTFOUND, "%s: pixel data read", f);
			diana_free(v);
		}

		diana_free(buf);
		diana_free(j1);
		diana_free(j2);
		diana_free(j3);
		diana_dataset_free(ds);
		diana_dataset_free(d2);
		diana_dataset_free(d3);
		diana_dataset_free(d4);
	}
	cr_expect_geq(tested, 100, "only %zu well-formed corpus files found", tested);
	list_free(&l);
}

/* malformed/ files whose defects are values or missing meta elements */
static const char *const lenient_ok[] = {
	"CTImageStorage_bad_meta.dcm", "DX-Im-DRGEM.dcm", "GH179A.dcm", "badVR.dcm",
	"meta_missing_tsyntax.dcm", NULL
};
/* ... and those that cannot be parsed unambiguously */
static const char *const lenient_refused[] = {
	"MR_truncated.dcm", "SC_rgb_jpeg.dcm", "emri_small_jpeg_2k_lossless_too_short.dcm",
	"no_meta.dcm", "rtplan_truncated.dcm", NULL
};

static int in_list(const char *const *list, const char *name)
{
	for (; *list; list++)
		if (!strcmp(*list, name))
			return 1;
	return 0;
}

Test(corpus, malformed_files_fail_strictly_with_one_line)
{
	file_list l = corpus_files();
	size_t tested = 0;
	for (size_t i = 0; i < l.n; i++) {
		const char *f = l.paths[i];
		diana_dataset *ds = (diana_dataset *)1;
		if (!is_malformed(l.rel[i]))
			continue;
		tested++;
		int rc = diana_dataset_open(&ds, f, NULL);
		cr_expect_eq(rc, DIANA_EDICOM, "%s: strict open gave %d", f, rc);
		cr_expect_null(ds, "%s: out set on failure", f);
		cr_expect(single_line(diana_error_message()), "%s: message [%s]", f, diana_error_message());
		cr_expect_eq(diana_error_code(), DIANA_EDICOM, "%s", f);
		if (!rc)
			diana_dataset_free(ds);

		/* the same from memory */
		FILE *fp = fopen(f, "rb");
		cr_assert_not_null(fp);
		fseek(fp, 0, SEEK_END);
		long n = ftell(fp);
		fseek(fp, 0, SEEK_SET);
		uint8_t *b = malloc((size_t)n);
		cr_assert_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
		fclose(fp);
		ds = NULL;
		rc = diana_dataset_open_memory(&ds, b, (size_t)n, NULL);
		cr_expect_eq(rc, DIANA_EDICOM, "%s: strict open_memory gave %d", f, rc);
		diana_dataset_free(ds);
		free(b);
	}
	cr_expect_geq(tested, 9, "only %zu malformed files found", tested);
	list_free(&l);
}

Test(corpus, lenient_accepts_value_defects_only)
{
	file_list l = corpus_files();
	size_t accepted = 0, refused = 0;
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	o.flags = DIANA_OPEN_LENIENT;
	for (size_t i = 0; i < l.n; i++) {
		const char *f = l.paths[i], *name = base_name(f);
		diana_dataset *ds = NULL;
		if (!is_malformed(l.rel[i]))
			continue;
		int rc = diana_dataset_open(&ds, f, &o);
		if (in_list(lenient_refused, name)) {
			refused++;
			cr_expect_eq(rc, DIANA_EDICOM, "%s: lenient open gave %d", f, rc);
			cr_expect(single_line(diana_error_message()), "%s: message", f);
			diana_dataset_free(ds);
			continue;
		}
		cr_expect(in_list(lenient_ok, name), "%s: malformed file not classified by this test", f);
		accepted++;
		cr_expect_eq(rc, 0, "%s: lenient open: %d %s", f, rc, diana_error_message());
		if (rc)
			continue;
		char *j1 = NULL, *j2 = NULL;
		rc = diana_dataset_to_json(ds, 0, &j1);
		cr_expect_eq(rc, 0, "%s: to_json: %s", f, diana_error_message());
		if (!rc) {
			diana_dataset *d2 = NULL;
			rc = diana_dataset_from_json(&d2, j1, 0);
			cr_expect_eq(rc, 0, "%s: from_json: %s", f, diana_error_message());
			if (!rc) {
				j2 = json_of(d2, 0);
				strip_charset(j1);
				strip_charset(j2);
				cr_expect_str_eq(j2, j1, "%s: JSON round trip", f);
				diana_dataset_free(d2);
			}
		}
		/* still writable and readable (leniently) */
		uint8_t *buf = NULL;
		size_t len = 0;
		rc = diana_dataset_save_memory(ds, &buf, &len);
		if (rc == 0) {
			diana_dataset *d3 = NULL;
			cr_expect_eq(diana_dataset_open_memory(&d3, buf, len, &o), 0, "%s: reopen", f);
			diana_dataset_free(d3);
		} else {
			/* only when the meta cannot be completed (no SOP UIDs anywhere) */
			cr_expect_eq(rc, DIANA_EDICOM, "%s: save_memory %d", f, rc);
		}
		diana_free(buf);
		diana_free(j1);
		diana_free(j2);
		diana_dataset_free(ds);
	}
	cr_expect_geq(accepted, 4);
	cr_expect_geq(refused, 5);
	list_free(&l);
}

Test(corpus, lenient_keeps_invalid_numbers_as_strings)
{
	diana_dataset *ds = open_or_die("malformed/badVR.dcm", DIANA_OPEN_LENIENT);
	expect_get(ds, "NumberOfFrames", "1A");
	char *j = json_of(ds, 0);
	cr_expect_not_null(strstr(j, "\"00280008\":{\"vr\":\"IS\",\"Value\":[\"1A\"]}"), "%s", j);
	diana_free(j);
	diana_dataset_free(ds);

	ds = open_or_die("malformed/GH179A.dcm", DIANA_OPEN_LENIENT);
	/* non-standard VR "  " on (0028,0120): VR from the dictionary, SS as PixelRepresentation is 1 */
	char *v = get_str(ds, "PixelPaddingValue");
	cr_expect_str_eq(v, "0");
	diana_free(v);
	diana_dataset_free(ds);
}

Test(corpus, skip_pixels_reads_header_only)
{
	diana_dataset *full = open_or_die("xr/HasFragmentSequence.dcm", 0);
	diana_dataset *head = open_or_die("xr/HasFragmentSequence.dcm", DIANA_OPEN_SKIP_PIXELS);
	char *a = get_str(full, "NumberOfFrames"), *b = get_str(head, "NumberOfFrames");
	cr_expect_str_eq(a, b);
	diana_free(a);
	diana_free(b);
	expect_get_rc(head, "PixelData", DIANA_ENOTFOUND);
	uint8_t *buf = NULL;
	size_t len = 0;
	cr_expect_eq(diana_dataset_save_memory(head, &buf, &len), DIANA_EUNSUPPORTED);
	cr_expect_null(buf);
	cr_expect_eq(diana_dataset_save_memory(full, &buf, &len), 0);
	diana_free(buf);
	diana_dataset_free(full);
	diana_dataset_free(head);
}

/* ------------------------------------------------------------------------ */
/* get                                                                       */
/* ------------------------------------------------------------------------ */

Test(dataset, get_by_keyword_tag_and_path)
{
	diana_dataset *ds = open_or_die("ct/CT_small.dcm", 0);
	/* values as dcmdump prints them */
	expect_get(ds, "PatientName", "CompressedSamples^CT1");
	expect_get(ds, "0010,0010", "CompressedSamples^CT1");
	expect_get(ds, "(0010,0010)", "CompressedSamples^CT1");
	expect_get(ds, "00100010", "CompressedSamples^CT1");
	expect_get(ds, "Rows", "128");
	expect_get(ds, "PixelPaddingValue", "-2000");                 /* SS */
	expect_get(ds, "ImageType", "ORIGINAL\\PRIMARY\\AXIAL");      /* CS, 3 values */
	expect_get(ds, "ImagePositionPatient", "-158.135803\\-179.035797\\-75.699997");
	expect_get(ds, "DistanceSourceToDetector", "1099.3100585938");
	expect_get(ds, "InstanceNumber", "1");
	expect_get(ds, "SOPInstanceUID", "1.3.6.1.4.1.5962.1.1.1.1.1.20040119072730.12322");
	expect_get(ds, "AccessionNumber", "");                        /* present, empty */
	expect_get(ds, "00091001", "GE_GENESIS_FF");                  /* private LO */
	expect_get(ds, "00091027", "862399669");                      /* private SL */
	expect_get(ds, "00271041", "-77.20406");                      /* FL, shortest */
	expect_get(ds, "00231070", "862399761.111079");               /* FD, shortest */
	/* sequences: an omitted index means [0] */
	expect_get(ds, "OtherPatientIDsSequence.PatientID", "ABCD1234");
	expect_get(ds, "OtherPatientIDsSequence[0].PatientID", "ABCD1234");
	expect_get(ds, "OtherPatientIDsSequence[1].PatientID", "1234ABCD");
	expect_get(ds, "00101002[1].00100020", "1234ABCD");
	expect_get(ds, "(0010,1002)[1].0010,0022", "TEXT");
	/* file meta */
	expect_get(ds, "TransferSyntaxUID", "1.2.840.10008.1.2.1");
	expect_get(ds, "0002,0013", "DCTOOL100");
	diana_dataset_free(ds);

	ds = open_or_die("rt/rtplan.dcm", 0); /* implicit VR, nested defined-length sequences */
	expect_get(ds, "BeamSequence.ControlPointSequence[1].ReferencedDoseReferenceSequence."
	               "CumulativeDoseReferenceCoefficient", "9.9902680e-1");
	expect_get(ds, "BeamSequence[0].ControlPointSequence[1].ReferencedDoseReferenceSequence[1]."
	               "CumulativeDoseReferenceCoefficient", "1.00000000000000");
	diana_dataset_free(ds);

	ds = open_or_die("transfer_syntax/explicit_vr_be/MR_small_bigendian.dcm", 0);
	expect_get(ds, "Rows", "64");
	diana_dataset_free(ds);

	ds = open_or_die("transfer_syntax/jpeg2000/JPEG2000.dcm", 0);
	expect_get(ds, "FrameIncrementPointer", "00540010\\00540020"); /* AT */
	diana_dataset_free(ds);

	ds = open_or_die("transfer_syntax/deflated/image_dfl.dcm", 0);
	expect_get(ds, "TransferSyntaxUID", "1.2.840.10008.1.2.1.99");
	char *v = get_str(ds, "Rows");
	cr_expect_gt(atoi(v), 0);
	diana_free(v);
	diana_dataset_free(ds);
}

Test(dataset, get_errors)
{
	diana_dataset *ds = open_or_die("ct/CT_small.dcm", 0);
	expect_get_rc(ds, "PatientBirthName", DIANA_ENOTFOUND);
	expect_get_rc(ds, "OtherPatientIDsSequence[2].PatientID", DIANA_ENOTFOUND);
	expect_get_rc(ds, "OtherPatientIDsSequence.IssuerOfPatientID", DIANA_ENOTFOUND);
	expect_get_rc(ds, "PixelData", DIANA_EUNSUPPORTED);               /* OW */
	expect_get_rc(ds, "FileMetaInformationVersion", DIANA_EUNSUPPORTED); /* OB */
	expect_get_rc(ds, "OtherPatientIDsSequence", DIANA_EUNSUPPORTED); /* SQ */
	expect_get_rc(ds, "NoSuchKeyword", DIANA_EINVAL);
	expect_get_rc(ds, "", DIANA_EINVAL);
	expect_get_rc(ds, "0010,001", DIANA_EINVAL);
	expect_get_rc(ds, "PatientName.", DIANA_EINVAL);
	expect_get_rc(ds, "PatientName[0]", DIANA_EINVAL);
	expect_get_rc(ds, "OtherPatientIDsSequence[x].PatientID", DIANA_EINVAL);
	expect_get_rc(ds, "PatientName.PatientID", DIANA_EINVAL); /* not a sequence */
	expect_get_rc(ds, "Patient-Name", DIANA_EINVAL);
	cr_expect(single_line(diana_error_message()));

	uint8_t *b = (uint8_t *)1;
	size_t n = 7;
	cr_expect_eq(diana_dataset_get_bytes(ds, "PixelData", &b, &n), 0);
	cr_expect_eq(n, 128 * 128 * 2);
	diana_free(b);
	cr_expect_eq(diana_dataset_get_bytes(ds, "Rows", &b, &n), 0);
	cr_expect_eq(n, 2);
	cr_expect_eq(b[0], 128);
	cr_expect_eq(b[1], 0);
	diana_free(b);
	cr_expect_eq(diana_dataset_get_bytes(ds, "PatientName", &b, &n), 0); /* raw, padding kept */
	cr_expect_eq(n, 22);
	cr_expect_eq(memcmp(b, "CompressedSamples^CT1 ", 22), 0);
	diana_free(b);
	cr_expect_eq(diana_dataset_get_bytes(ds, "AccessionNumber", &b, &n), 0);
	cr_expect_null(b);
	cr_expect_eq(n, 0);
	cr_expect_eq(diana_dataset_get_bytes(ds, "OtherPatientIDsSequence", &b, &n), DIANA_EUNSUPPORTED);
	cr_expect_null(b);
	cr_expect_eq(diana_dataset_get_bytes(ds, "PatientAddress", &b, &n), DIANA_ENOTFOUND);
	diana_dataset_free(ds);

	ds = open_or_die("transfer_syntax/jpeg2000/JPEG2000.dcm", 0);
	cr_expect_eq(diana_dataset_get_bytes(ds, "PixelData", &b, &n), DIANA_EUNSUPPORTED);
	diana_dataset_free(ds);
}

Test(dataset, text_is_utf8_in_every_character_set)
{
	/* expected strings: dcmdump 3.6.7 (pydicom 2.3.1 agrees, less the trailing '=') */
	static const struct {
		const char *file, *name;
	} cases[] = {
		{ "charset/chrGerm.dcm", "\xc3\x84neas^R\xc3\xbc" "diger" },
		{ "charset/chrFren.dcm", "Buc^J\xc3\xa9r\xc3\xb4me" },
		{ "charset/chrX1.dcm", "Wang^XiaoDong=\xe7\x8e\x8b^\xe5\xb0\x8f\xe6\x9d\xb1=" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		diana_dataset *ds = open_or_die(cases[i].file, 0);
		char *v = get_str(ds, "PatientName");
		cr_expect(valid_utf8(v), "%s: not UTF-8", cases[i].file);
		cr_expect_str_eq(v, cases[i].name, "%s: [%s]", cases[i].file, v);
		diana_free(v);
		diana_dataset_free(ds);
	}
	/* an item with its own Specific Character Set (ISO 2022 IR 13 / IR 87 inside, UTF-8 outside) */
	diana_dataset *ds = open_or_die("charset/chrSQEncoding.dcm", 0);
	char *v = get_str(ds, "RequestedProcedureCodeSequence.PatientName");
	cr_expect_str_eq(v, "\xef\xbe\x94\xef\xbe\x8f\xef\xbe\x80\xef\xbe\x9e^\xef\xbe\x80\xef\xbe\x9b\xef\xbd\xb3="
	                    "\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e="
	                    "\xe3\x82\x84\xe3\x81\xbe\xe3\x81\xa0^\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86", "[%s]", v);
	diana_free(v);
	expect_get(ds, "RequestingPhysician", "Doctor^Who^^MD");
	diana_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* foreach                                                                   */
/* ------------------------------------------------------------------------ */

typedef struct {
	size_t count, meta;
	int max_depth;
	int seen_nested, seen_private, stop_after;
	int stop_value;
	char last_path[128];
} walk_state;

static int walk_cb(const diana_element *e, void *user)
{
	walk_state *w = user;
	w->count++;
	cr_expect_eq(e->version, DIANA_ELEMENT_VERSION);
	cr_expect_eq(strlen(e->vr), 2);
	cr_expect_not_null(e->keyword);
	cr_expect_not_null(e->path);
	if ((e->tag >> 16) == 2)
		w->meta++;
	if (e->depth > w->max_depth)
		w->max_depth = e->depth;
	if (!strcmp(e->path, "00101002[1].00100020")) {
		w->seen_nested = 1;
		cr_expect_eq(e->depth, 1);
		cr_expect_str_eq(e->keyword, "PatientID");
		cr_expect_str_eq(e->vr, "LO");
		cr_expect_eq(e->vm, 1);
		cr_expect_eq(e->length, 8);
	}
	if (e->tag == 0x00101002) {
		cr_expect_str_eq(e->vr, "SQ");
		cr_expect_eq(e->vm, 2); /* items */
		cr_expect_eq(e->length, 72);
	}
	if (e->tag == 0x00080008 && e->depth == 0)
		cr_expect_eq(e->vm, 3);
	if (e->tag == 0x00091001) {
		w->seen_private = 1;
		cr_expect_str_eq(e->keyword, "");
	}
	if (e->tag == 0x7FE00010)
		cr_expect_eq(e->vm, 1);
	snprintf(w->last_path, sizeof w->last_path, "%s", e->path);
	if (w->stop_after && (int)w->count == w->stop_after)
		return w->stop_value;
	return 0;
}

Test(dataset, foreach_counts_depths_and_stop)
{
	diana_dataset *ds = open_or_die("ct/CT_small.dcm", 0);
	walk_state w = { 0 };
	cr_expect_eq(diana_dataset_foreach(ds, 0, walk_cb, &w), 0);
	/* pydicom 2.3.1: 262 elements (sequence items included), 8 file meta elements */
	cr_expect_eq(w.count, 262);
	cr_expect_eq(w.meta, 0);
	cr_expect_eq(w.max_depth, 1);
	cr_expect(w.seen_nested);
	cr_expect(w.seen_private);
	cr_expect_str_eq(w.last_path, "FFFCFFFC"); /* Data Set Trailing Padding */

	memset(&w, 0, sizeof w);
	cr_expect_eq(diana_dataset_foreach(ds, DIANA_FOREACH_META, walk_cb, &w), 0);
	cr_expect_eq(w.count, 270);
	cr_expect_eq(w.meta, 8);

	memset(&w, 0, sizeof w);
	w.stop_after = 5;
	w.stop_value = 1;
	cr_expect_eq(diana_dataset_foreach(ds, 0, walk_cb, &w), DIANA_EUSER);
	cr_expect_eq(w.count, 5);
	cr_expect_eq(diana_error_code(), DIANA_EUSER);

	memset(&w, 0, sizeof w);
	w.stop_after = 3;
	w.stop_value = -42;
	cr_expect_eq(diana_dataset_foreach(ds, 0, walk_cb, &w), -42);
	cr_expect_eq(w.count, 3);

	memset(&w, 0, sizeof w);
	w.stop_after = 262;
	w.stop_value = 7; /* stopping on the last element is still a stop */
	cr_expect_eq(diana_dataset_foreach(ds, 0, walk_cb, &w), DIANA_EUSER);
	diana_dataset_free(ds);

	ds = open_or_die("sr/test-SR.dcm", 0);
	memset(&w, 0, sizeof w);
	cr_expect_eq(diana_dataset_foreach(ds, 0, walk_cb, &w), 0);
	cr_expect_eq(w.count, 305); /* pydicom */
	cr_expect_eq(w.max_depth, 5);
	diana_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* JSON                                                                      */
/* ------------------------------------------------------------------------ */

static const cJSON *member(const cJSON *obj, const char *key)
{
	const cJSON *m = cJSON_GetObjectItemCaseSensitive(obj, key);
	cr_assert_not_null(m, "no member %s", key);
	return m;
}

Test(dataset, json_shape)
{
	diana_dataset *ds = open_or_die("ct/CT_small.dcm", 0);
	char *j = json_of(ds, 0);
	cJSON *doc = cJSON_Parse(j);
	cr_assert_not_null(doc, "output is not JSON");

	const cJSON *pn = member(member(doc, "00100010"), "Value");
	cr_expect_str_eq(member(member(doc, "00100010"), "vr")->valuestring, "PN");
	cr_expect_str_eq(member(cJSON_GetArrayItem(pn, 0), "Alphabetic")->valuestring, "CompressedSamples^CT1");

	const cJSON *is = cJSON_GetArrayItem(member(member(doc, "00200013"), "Value"), 0);
	cr_expect(cJSON_IsNumber(is) && is->valuedouble == 1);
	const cJSON *ds3 = member(member(doc, "00200032"), "Value");
	cr_expect_eq(cJSON_GetArraySize(ds3), 3);
	cr_expect(cJSON_IsNumber(cJSON_GetArrayItem(ds3, 0)));
	cr_expect_float_eq(cJSON_GetArrayItem(ds3, 0)->valuedouble, -158.135803, 1e-9);
	const cJSON *us = cJSON_GetArrayItem(member(member(doc, "00280010"), "Value"), 0);
	cr_expect(cJSON_IsNumber(us) && us->valuedouble == 128);
	const cJSON *ss = cJSON_GetArrayItem(member(member(doc, "00280120"), "Value"), 0);
	cr_expect(cJSON_IsNumber(ss) && ss->valuedouble == -2000);

	const cJSON *sq = member(member(doc, "00101002"), "Value");
	cr_expect(cJSON_IsArray(sq));
	cr_expect_eq(cJSON_GetArraySize(sq), 2);
	const cJSON *item1 = cJSON_GetArrayItem(sq, 1);
	cr_expect_str_eq(cJSON_GetArrayItem(member(member(item1, "00100020"), "Value"), 0)->valuestring,
	                 "1234ABCD");

	const cJSON *empty = member(doc, "00080050");
	cr_expect_null(cJSON_GetObjectItem(empty, "Value"), "empty element has a Value");
	const cJSON *px = member(doc, "7FE00010");
	cr_expect_str_eq(member(px, "vr")->valuestring, "OW");
	cr_expect_eq(strlen(member(px, "InlineBinary")->valuestring), 32768 / 3 * 4 + 4);
	cr_expect_null(cJSON_GetObjectItem(doc, "00020010"), "meta without DIANA_JSON_META");
	cr_expect_null(strchr(j, '\n'));
	cJSON_Delete(doc);
	diana_free(j);

	/* keys are upper-case, in tag order */
	j = json_of(ds, 0);
	cr_expect_not_null(strstr(j, "\"7FE00010\":"));
	cr_expect_lt(strstr(j, "\"00080005\""), strstr(j, "\"00100010\""));
	diana_free(j);

	j = json_of(ds, DIANA_JSON_NO_BULK | DIANA_JSON_META | DIANA_JSON_PRETTY);
	doc = cJSON_Parse(j);
	cr_assert_not_null(doc);
	cr_expect_null(cJSON_GetObjectItem(member(doc, "7FE00010"), "InlineBinary"));
	cr_expect_str_eq(cJSON_GetArrayItem(member(member(doc, "00020010"), "Value"), 0)->valuestring,
	                 "1.2.840.10008.1.2.1");
	cr_expect_not_null(strchr(j, '\n'));
	cJSON_Delete(doc);
	diana_free(j);
	diana_dataset_free(ds);

	/* empty value inside a multi-valued string: null (pydicom gives "") */
	ds = open_or_die("charset/chrH31.dcm", 0);
	j = json_of(ds, 0);
	cr_expect_not_null(strstr(j, "\"00080005\":{\"vr\":\"CS\",\"Value\":[null,\"ISO 2022 IR 87\"]}"), "%s", j);
	/* PN with three component groups, decoded from ISO 2022 */
	doc = cJSON_Parse(j);
	pn = cJSON_GetArrayItem(member(member(doc, "00100010"), "Value"), 0);
	cr_expect_str_eq(member(pn, "Alphabetic")->valuestring, "Yamada^Tarou");
	cr_expect_str_eq(member(pn, "Ideographic")->valuestring, "\xe5\xb1\xb1\xe7\x94\xb0^\xe5\xa4\xaa\xe9\x83\x8e");
	cr_expect_str_eq(member(pn, "Phonetic")->valuestring,
	                 "\xe3\x82\x84\xe3\x81\xbe\xe3\x81\xa0^\xe3\x81\x9f\xe3\x82\x8d\xe3\x81\x86");
	cJSON_Delete(doc);
	diana_free(j);
	diana_dataset_free(ds);

	/* AT as strings; encapsulated pixel data as its item stream */
	ds = open_or_die("transfer_syntax/jpeg2000/JPEG2000.dcm", 0);
	j = json_of(ds, 0);
	cr_expect_not_null(strstr(j, "\"00280009\":{\"vr\":\"AT\",\"Value\":[\"00540010\",\"00540020\"]}"));
	cr_expect_not_null(strstr(j, "\"7FE00010\":{\"vr\":\"OB\",\"InlineBinary\":\"/v8A4"), "no item tag first");
	diana_free(j);
	diana_dataset_free(ds);
}

Test(dataset, json_exact_round_trip_of_every_vr_kind)
{
	/* canonical output: to_json(from_json(x)) must give x back byte for byte */
	const char *x =
	    "{\"00080005\":{\"vr\":\"CS\",\"Value\":[\"ISO_IR 192\"]},"
	    "\"00080008\":{\"vr\":\"CS\",\"Value\":[\"ORIGINAL\",null,\"AXIAL\"]},"
	    "\"00080050\":{\"vr\":\"SH\"},"
	    "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"M\xc3\xbcller^J\xc3\xbcrgen\","
	    "\"Ideographic\":\"\xe3\x83\x9f\"},null,{\"Phonetic\":\"mu\"}]},"
	    "\"00101030\":{\"vr\":\"DS\",\"Value\":[-1024,0.5,1e+20,-0.001]},"
	    "\"00200013\":{\"vr\":\"IS\",\"Value\":[-12,2147483647]},"
	    "\"00280009\":{\"vr\":\"AT\",\"Value\":[\"00540010\",\"7FE00010\"]},"
	    "\"00280010\":{\"vr\":\"US\",\"Value\":[512,0,65535]},"
	    "\"00280106\":{\"vr\":\"SS\",\"Value\":[-32768]},"
	    "\"00281050\":{\"vr\":\"UL\",\"Value\":[4294967295]},"
	    "\"00281051\":{\"vr\":\"SL\",\"Value\":[-2147483648]},"
	    "\"00281052\":{\"vr\":\"FL\",\"Value\":[0.10000000149011612,\"NaN\",\"-Infinity\",3]},"
	    "\"00281053\":{\"vr\":\"FD\",\"Value\":[0.1,1e-300,\"Infinity\"]},"
	    "\"00281054\":{\"vr\":\"UV\",\"Value\":[9007199254740992,\"18446744073709551615\"]},"
	    "\"00281055\":{\"vr\":\"SV\",\"Value\":[-5,\"-9223372036854775808\"]},"
	    "\"0040A730\":{\"vr\":\"SQ\",\"Value\":[{\"0040A160\":{\"vr\":\"UT\",\"Value\":[\"a\\\\b \\\"q\\\"\\n\"]}},{}]},"
	    "\"0040A731\":{\"vr\":\"SQ\"},"
	    "\"00431028\":{\"vr\":\"OB\",\"InlineBinary\":\"AAECAw==\"},"
	    "\"00431029\":{\"vr\":\"UN\",\"InlineBinary\":\"/w==\"},"
	    "\"7FE00010\":{\"vr\":\"OW\",\"InlineBinary\":\"AAEC\"}}";
	diana_dataset *ds = NULL;
	cr_assert_eq(diana_dataset_from_json(&ds, x, 0), 0, "%s", diana_error_message());
	char *j = json_of(ds, 0);
	cr_expect_str_eq(j, x);
	diana_free(j);

	/* and through a Part 10 file */
	uint8_t *buf = NULL;
	size_t len = 0;
	diana_dataset *d2 = NULL;
	cr_assert_eq(diana_dataset_save_memory(ds, &buf, &len), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_open_memory(&d2, buf, len, NULL), 0, "%s", diana_error_message());
	j = json_of(d2, 0);
	cr_expect_str_eq(j, x);
	diana_free(j);
	expect_get(d2, "TransferSyntaxUID", "1.2.840.10008.1.2.1");
	expect_get(d2, "00280009", "00540010\\7FE00010");
	expect_get(d2, "00281052", "0.1\\NaN\\-Infinity\\3");
	expect_get(d2, "0040A730.0040A160", "a\\b \"q\"\n");
	diana_free(buf);
	diana_dataset_free(d2);
	diana_dataset_free(ds);
}

Test(dataset, from_json_charset_and_arrays)
{
	diana_dataset *ds = NULL;
	const char *x = "[{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"M\xc3\xbcller\"}]}}]";
	cr_assert_eq(diana_dataset_from_json(&ds, x, strlen(x)), 0, "%s", diana_error_message());
	expect_get(ds, "SpecificCharacterSet", "ISO_IR 192");
	expect_get(ds, "PatientName", "M\xc3\xbcller");
	diana_dataset_free(ds);

	/* plain ASCII: no character set added */
	x = "{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"Doe^J\"}]}}";
	cr_assert_eq(diana_dataset_from_json(&ds, x, 0), 0);
	expect_get_rc(ds, "SpecificCharacterSet", DIANA_ENOTFOUND);
	diana_dataset_free(ds);

	/* padding: leading spaces are insignificant for LO, not for LT */
	x = "{\"00081030\":{\"vr\":\"LO\",\"Value\":[\"  Study  \",\" B\"]},"
	    "\"00100020\":{\"vr\":\"LO\",\"Value\":[\"  ID7  \"]},"
	    "\"00104000\":{\"vr\":\"LT\",\"Value\":[\"  two  lines\\r\\n  \"]}}";
	cr_assert_eq(diana_dataset_from_json(&ds, x, 0), 0, "%s", diana_error_message());
	expect_get(ds, "PatientID", "ID7");
	expect_get(ds, "StudyDescription", "Study\\B");
	expect_get(ds, "PatientComments", "  two  lines\r\n");
	diana_dataset_free(ds);

	/* a length without a NUL terminator; trailing white space is fine */
	char buf[64];
	memcpy(buf, "{} \nXXXX", 8);
	cr_expect_eq(diana_dataset_from_json(&ds, buf, 4), 0, "%s", diana_error_message());
	diana_dataset_free(ds);
}

Test(dataset, from_json_refuses_non_dicom_json)
{
	static const char *bad[] = {
		"",
		"{",
		"[]",
		"[{},{}]",
		"42",
		"\"x\"",
		"{\"0010001G\":{\"vr\":\"PN\"}}",
		"{\"0010001\":{\"vr\":\"PN\"}}",
		"{\"00100010\":{}}",
		"{\"00100010\":{\"vr\":\"XX\"}}",
		"{\"00100010\":{\"vr\":\"PN\",\"Value\":\"x\"}}",
		"{\"00100010\":{\"vr\":\"PN\",\"Value\":[\"Doe\"]}}",
		"{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Nick\":\"x\"}]}}",
		"{\"00280010\":{\"vr\":\"US\",\"Value\":[70000]}}",
		"{\"00280010\":{\"vr\":\"US\",\"Value\":[1.5]}}",
		"{\"00280010\":{\"vr\":\"US\",\"Value\":[\"1\"]}}",
		"{\"00200013\":{\"vr\":\"IS\",\"Value\":[1.5]}}",
		"{\"00100020\":{\"vr\":\"LO\",\"Value\":[5]}}",
		"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"a\\\\b\"]}}",
		"{\"00100020\":{\"vr\":\"LO\",\"InlineBinary\":\"AAAA\"}}",
		"{\"00431028\":{\"vr\":\"OB\",\"Value\":[1]}}",
		"{\"00431028\":{\"vr\":\"OB\",\"InlineBinary\":\"***\"}}",
		"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"a\"],\"Extra\":1}}",
		"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"a\"]},\"00100020\":{\"vr\":\"LO\"}}",
		"{\"00280009\":{\"vr\":\"AT\",\"Value\":[\"0054001\"]}}",
		"{\"0040A730\":{\"vr\":\"SQ\",\"Value\":[1]}}",
		"{\"00081030\":{\"vr\":\"LT\",\"Value\":[\"a\",\"b\"]}}",
		"{\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"\xff\"}]}}",
		"{\"FFFEE000\":{\"vr\":\"UN\"}}",
		"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"x\"]}} trailing",
		"{\"00100020\":{\"vr\":\"LO\",\"Value\":[\"x\"]}}{}",
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		diana_dataset *ds = (diana_dataset *)1;
		int rc = diana_dataset_from_json(&ds, bad[i], strlen(bad[i]) ? 0 : 1);
		cr_expect_eq(rc, DIANA_EDICOM, "[%s] gave %d", bad[i], rc);
		cr_expect_null(ds);
		cr_expect(single_line(diana_error_message()), "[%s]: message", bad[i]);
		diana_dataset_free(ds);
	}
}

Test(dataset, encapsulated_pixels_need_a_transfer_syntax)
{
	diana_dataset *ds = open_or_die("transfer_syntax/jpeg_ls/MR_small_jpeg_ls_lossless.dcm", 0);
	char *plain = json_of(ds, 0), *with_meta = json_of(ds, DIANA_JSON_META);
	diana_dataset *a = NULL, *b = NULL, *c = NULL;
	uint8_t *buf = NULL;
	size_t len = 0;

	cr_assert_eq(diana_dataset_from_json(&a, plain, 0), 0);
	cr_expect_eq(diana_dataset_save_memory(a, &buf, &len), DIANA_EDICOM);
	cr_expect(single_line(diana_error_message()));

	cr_assert_eq(diana_dataset_from_json(&b, with_meta, 0), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_save_memory(b, &buf, &len), 0, "%s", diana_error_message());
	cr_assert_eq(diana_dataset_open_memory(&c, buf, len, NULL), 0, "%s", diana_error_message());
	expect_get(c, "TransferSyntaxUID", "1.2.840.10008.1.2.4.80");
	char *again = json_of(c, 0);
	cr_expect_str_eq(again, plain);
	diana_free(again);
	diana_free(buf);
	diana_free(plain);
	diana_free(with_meta);
	diana_dataset_free(a);
	diana_dataset_free(b);
	diana_dataset_free(c);
	diana_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* save                                                                      */
/* ------------------------------------------------------------------------ */

static int have_dcmdump(void)
{
	return access("/usr/bin/dcmdump", X_OK) == 0;
}

Test(dataset, save_writes_a_part10_file)
{
	char dir[] = "/tmp/diana-test-XXXXXX";
	char path[256], cmd[512];
	struct stat st;
	cr_assert_not_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/out.dcm", dir);

	const char *x = "{\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
	                "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"2.25.1234\"]},"
	                "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"M\xc3\xbcller^Hans\"}]}}";
	diana_dataset *ds = NULL, *back = NULL;
	cr_assert_eq(diana_dataset_from_json(&ds, x, 0), 0);
	cr_assert_eq(diana_dataset_save(ds, path), 0, "%s", diana_error_message());
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0600);
	cr_assert_eq(diana_dataset_open(&back, path, NULL), 0, "%s", diana_error_message());
	expect_get(back, "PatientName", "M\xc3\xbcller^Hans");
	expect_get(back, "MediaStorageSOPClassUID", "1.2.840.10008.5.1.4.1.1.7");
	expect_get(back, "MediaStorageSOPInstanceUID", "2.25.1234");
	expect_get(back, "TransferSyntaxUID", "1.2.840.10008.1.2.1");
	diana_dataset_free(back);

	if (have_dcmdump()) {
		snprintf(cmd, sizeof cmd, "dcmdump +P 0010,0010 '%s' 2>&1", path);
		FILE *p = popen(cmd, "r");
		char out[512] = { 0 };
		cr_assert_not_null(p);
		size_t n = fread(out, 1, sizeof out - 1, p);
		out[n] = 0;
		cr_expect_eq(pclose(p), 0, "dcmdump failed: %s", out);
		cr_expect_not_null(strstr(out, "M\xc3\xbcller^Hans"), "dcmdump: %s", out);
	}

	/* an existing file keeps its mode; the write replaces it */
	cr_assert_eq(chmod(path, 0644), 0);
	diana_dataset *ct = open_or_die("ct/CT_small.dcm", 0);
	cr_assert_eq(diana_dataset_save(ct, path), 0);
	cr_assert_eq(stat(path, &st), 0);
	cr_expect_eq(st.st_mode & 0777, 0644);
	cr_assert_eq(diana_dataset_open(&back, path, NULL), 0);
	expect_get(back, "PatientName", "CompressedSamples^CT1");
	diana_dataset_free(back);
	if (have_dcmdump()) {
		snprintf(cmd, sizeof cmd, "dcmdump -q '%s' >/dev/null 2>&1", path);
		cr_expect_eq(system(cmd), 0, "dcmdump cannot read the saved file");
	}

	/* no temporary file left behind; a bad folder fails cleanly */
	DIR *d = opendir(dir);
	struct dirent *e;
	int files = 0;
	while ((e = readdir(d)))
		if (e->d_name[0] != '.' || strlen(e->d_name) > 2)
			files += strcmp(e->d_name, ".") && strcmp(e->d_name, "..");
	closedir(d);
	cr_expect_eq(files, 1);
	snprintf(path, sizeof path, "%s/missing/out.dcm", dir);
	cr_expect_lt(diana_dataset_save(ct, path), 0);
	cr_expect(single_line(diana_error_message()));

	snprintf(path, sizeof path, "%s/out.dcm", dir);
	unlink(path);
	rmdir(dir);
	diana_dataset_free(ct);
	diana_dataset_free(ds);
}

/* ------------------------------------------------------------------------ */
/* arguments, options, robustness                                            */
/* ------------------------------------------------------------------------ */

static int noop_cb(const diana_element *e, void *u)
{
	(void)e;
	(void)u;
	return 0;
}

Test(dataset, null_arguments_and_options)
{
	diana_dataset *ds = (diana_dataset *)1;
	char *s = (char *)1;
	uint8_t *b = (uint8_t *)1;
	size_t n;
	diana_dataset_options o;

	diana_dataset_free(NULL);
	diana_free(NULL);
	cr_expect_eq(diana_dataset_open(NULL, "x", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_open(&ds, NULL, NULL), DIANA_EINVAL);
	cr_expect_null(ds);
	cr_expect_eq(diana_dataset_open_memory(&ds, NULL, 10, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_open_memory(NULL, (const uint8_t *)"x", 1, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_from_json(NULL, "{}", 0), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_from_json(&ds, NULL, 0), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_options_init(NULL, DIANA_DATASET_OPTIONS_VERSION), DIANA_EINVAL);

	diana_dataset *ct = open_or_die("ct/CT_small.dcm", 0);
	cr_expect_eq(diana_dataset_get(NULL, "PatientName", &s), DIANA_EINVAL);
	cr_expect_null(s);
	cr_expect_eq(diana_dataset_get(ct, NULL, &s), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_get(ct, "PatientName", NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_get_bytes(ct, "Rows", NULL, &n), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_get_bytes(ct, "Rows", &b, NULL), DIANA_EINVAL);
	cr_expect_null(b);
	cr_expect_eq(diana_dataset_foreach(NULL, 0, noop_cb, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_foreach(ct, 0, NULL, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_foreach(ct, 1u << 7, noop_cb, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_to_json(NULL, 0, &s), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_to_json(ct, 0, NULL), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_to_json(ct, 1u << 9, &s), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_save_memory(NULL, &b, &n), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_save_memory(ct, NULL, &n), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_save(NULL, "/tmp/x.dcm"), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_save(ct, NULL), DIANA_EINVAL);
	cr_expect(single_line(diana_error_message()));

	cr_expect_eq(diana_dataset_options_init(&o, DIANA_DATASET_OPTIONS_VERSION), 0);
	cr_expect_eq(o.version, DIANA_DATASET_OPTIONS_VERSION);
	cr_expect_eq(o.flags, 0);
	cr_expect_eq(o.max_size, 0);
	cr_expect_eq(diana_dataset_options_init(&o, 99), DIANA_EUNSUPPORTED);
	cr_expect_eq(diana_dataset_options_init(&o, 0), DIANA_EUNSUPPORTED);
	o.version = 99;
	cr_expect_eq(diana_dataset_open(&ds, repo_file("ct/CT_small.dcm"), &o), DIANA_EUNSUPPORTED);
	o.version = DIANA_DATASET_OPTIONS_VERSION;
	o.flags = 1u << 20;
	cr_expect_eq(diana_dataset_open(&ds, repo_file("ct/CT_small.dcm"), &o), DIANA_EINVAL);
	o.flags = 0;
	o.max_size = 1000;
	cr_expect_eq(diana_dataset_open(&ds, repo_file("ct/CT_small.dcm"), &o), DIANA_EINVAL);
	o.flags = DIANA_OPEN_SKIP_PIXELS;
	cr_expect_eq(diana_dataset_open(&ds, repo_file("ct/CT_small.dcm"), &o), DIANA_EINVAL);
	cr_expect_eq(diana_dataset_open_memory(&ds, (const uint8_t *)"0123456789", 10, &o), DIANA_EDICOM);
	o.max_size = 5;
	cr_expect_eq(diana_dataset_open_memory(&ds, (const uint8_t *)"0123456789", 10, &o), DIANA_EINVAL);
	cr_expect_null(ds);
	diana_dataset_free(ct);
}

Test(dataset, missing_file_and_non_dicom)
{
	diana_dataset *ds = (diana_dataset *)1;
	cr_expect_eq(diana_dataset_open(&ds, "/nonexistent/file.dcm", NULL), DIANA_ENOTFOUND);
	cr_expect_null(ds);
	cr_expect(single_line(diana_error_message()));
	cr_expect_eq(diana_dataset_open(&ds, "/tmp", NULL), DIANA_EIO);
	char *readme = repo_file("../README.md");
	cr_expect_eq(diana_dataset_open(&ds, readme, NULL), DIANA_EDICOM);
	cr_expect_eq(diana_dataset_open_memory(&ds, (const uint8_t *)"", 0, NULL), DIANA_EDICOM);
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	o.flags = DIANA_OPEN_LENIENT;
	cr_expect_eq(diana_dataset_open(&ds, readme, &o), DIANA_EDICOM);
}

static uint8_t *read_all(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f, "%s", path);
	fseek(f, 0, SEEK_END);
	long n = ftell(f);
	fseek(f, 0, SEEK_SET);
	uint8_t *b = malloc((size_t)n + 1);
	cr_assert_eq(fread(b, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*len = (size_t)n;
	return b;
}

static void try_open(const uint8_t *b, size_t n, uint32_t flags, const char *what, size_t k)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	o.flags = flags;
	int rc = diana_dataset_open_memory(&ds, b, n, &o);
	cr_expect(rc == 0 || rc == DIANA_EDICOM, "%s %zu: rc %d", what, k, rc);
	if (rc == 0) {
		char *j = NULL;
		int r2 = diana_dataset_to_json(ds, 0, &j);
		cr_expect(r2 == 0 || r2 == DIANA_EDICOM, "%s %zu: to_json %d", what, k, r2);
		diana_free(j);
		diana_dataset_free(ds);
	} else {
		cr_expect(single_line(diana_error_message()), "%s %zu", what, k);
	}
}

Test(dataset, damaged_input_never_crashes, .timeout = 120)
{
	static const char *files[] = { "ct/CT_small.dcm", "rt/rtplan.dcm", "sr/test-SR.dcm",
		                       "transfer_syntax/explicit_vr_be/MR_small_bigendian.dcm",
		                       "transfer_syntax/deflated/report_dfl.dcm",
		                       "transfer_syntax/jpeg2000/JPEG2000.dcm" };
	uint32_t seed = 12345;
	for (size_t f = 0; f < sizeof files / sizeof files[0]; f++) {
		size_t n;
		uint8_t *orig = read_all(repo_file(files[f]), &n);
		uint8_t *b = malloc(n);
		/* every truncation length (in steps) */
		for (size_t cut = 0; cut < n; cut += n / 150 + 1)
			try_open(orig, cut, f & 1 ? DIANA_OPEN_LENIENT : 0, files[f], cut);
		/* random byte changes, 1 to 4 at a time */
		for (size_t k = 0; k < 300; k++) {
			memcpy(b, orig, n);
			for (int m = 0; m < 1 + (int)(k % 4); m++) {
				seed = seed * 1103515245u + 12345u;
				size_t pos = (seed >> 8) % n;
				seed = seed * 1103515245u + 12345u;
				b[pos] = (uint8_t)(seed >> 16);
			}
			try_open(b, n, k & 1 ? DIANA_OPEN_LENIENT : 0, files[f], k);
		}
		free(b);
		free(orig);
	}
}

/* little helpers to forge Explicit VR Little Endian data */
static size_t put_elem(uint8_t *p, uint16_t g, uint16_t e, const char *vr, uint32_t len)
{
	p[0] = (uint8_t)g;
	p[1] = (uint8_t)(g >> 8);
	p[2] = (uint8_t)e;
	p[3] = (uint8_t)(e >> 8);
	if (!vr) { /* item tags: no VR */
		for (int i = 0; i < 4; i++)
			p[4 + i] = (uint8_t)(len >> (8 * i));
		return 8;
	}
	p[4] = (uint8_t)vr[0];
	p[5] = (uint8_t)vr[1];
	if (!strcmp(vr, "OB") || !strcmp(vr, "SQ") || !strcmp(vr, "UN") || !strcmp(vr, "UT")) {
		p[6] = p[7] = 0;
		for (int i = 0; i < 4; i++)
			p[8 + i] = (uint8_t)(len >> (8 * i));
		return 12;
	}
	p[6] = (uint8_t)len;
	p[7] = (uint8_t)(len >> 8);
	return 8;
}

static size_t forge_header(uint8_t *p)
{
	size_t n = 0;
	memset(p, 0, 128);
	memcpy(p + 128, "DICM", 4);
	n = 132;
	n += put_elem(p + n, 0x0002, 0x0010, "UI", 20);
	memcpy(p + n, "1.2.840.10008.1.2.1", 20);
	return n + 20;
}

Test(dataset, pathological_lengths_and_nesting)
{
	uint8_t *p = calloc(1, 1 << 20);
	size_t n = forge_header(p);
	diana_dataset *ds = NULL;

	/* a valid tiny file first, so that the refusals below mean something */
	size_t ok = n + put_elem(p + n, 0x0010, 0x0010, "PN", 4);
	memcpy(p + ok, "Doe ", 4);
	ok += 4;
	cr_assert_eq(diana_dataset_open_memory(&ds, p, ok, NULL), 0, "%s", diana_error_message());
	expect_get(ds, "PatientName", "Doe");
	diana_dataset_free(ds);

	/* a 4 GB length in a 200-byte input */
	size_t m = n + put_elem(p + n, 0x0009, 0x1010, "OB", 0xFFFFFFF0u);
	cr_expect_eq(diana_dataset_open_memory(&ds, p, m + 16, NULL), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "truncated"), "%s", diana_error_message());

	/* an item claiming more than its sequence holds */
	m = n + put_elem(p + n, 0x0040, 0xA730, "SQ", 16);
	m += put_elem(p + m, 0xFFFE, 0xE000, NULL, 0x7FFFFFFF);
	m += 8;
	cr_expect_eq(diana_dataset_open_memory(&ds, p, m, NULL), DIANA_EDICOM);

	/* undefined-length sequences nested 10000 deep */
	m = n;
	for (int i = 0; i < 10000; i++) {
		m += put_elem(p + m, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
		m += put_elem(p + m, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
	}
	cr_expect_eq(diana_dataset_open_memory(&ds, p, m, NULL), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "nested"), "%s", diana_error_message());

	/* a sequence without its delimiter */
	m = n + put_elem(p + n, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
	m += put_elem(p + m, 0xFFFE, 0xE000, NULL, 0);
	cr_expect_eq(diana_dataset_open_memory(&ds, p, m, NULL), DIANA_EDICOM);
	free(p);
}

/* append an element, value padded to an even length (NUL for UI) */
static size_t add(uint8_t *p, size_t n, uint16_t g, uint16_t e, const char *vr, const char *val)
{
	size_t len = strlen(val), padded = len + (len & 1);
	n += put_elem(p + n, g, e, vr, (uint32_t)padded);
	memcpy(p + n, val, len);
	if (padded > len)
		p[n + len] = strcmp(vr, "UI") ? ' ' : 0;
	return n + padded;
}

static int open_forged(const uint8_t *p, size_t n, uint32_t flags)
{
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	o.flags = flags;
	int rc = diana_dataset_open_memory(&ds, p, n, &o);
	diana_dataset_free(ds);
	return rc;
}

Test(dataset, strict_checks_on_forged_files)
{
	uint8_t *p = calloc(1, 4096);
	size_t h = forge_header(p), n;
	diana_dataset *ds = NULL;

	/* out of tag order: read, sorted */
	n = add(p, h, 0x0010, 0x0020, "LO", "ID01");
	n = add(p, n, 0x0010, 0x0010, "PN", "Doe^J ");
	cr_assert_eq(diana_dataset_open_memory(&ds, p, n, NULL), 0, "%s", diana_error_message());
	expect_get(ds, "PatientName", "Doe^J");
	char *j = json_of(ds, 0);
	cr_expect_lt(strstr(j, "00100010"), strstr(j, "00100020"));
	diana_free(j);
	diana_dataset_free(ds);
	/* a few zero bytes after the last element are padding; other bytes are not */
	memset(p + n, 0, 4);
	cr_expect_eq(open_forged(p, n + 4, 0), 0, "%s", diana_error_message());
	p[n + 2] = 7;
	cr_expect_eq(open_forged(p, n + 4, 0), DIANA_EDICOM);
	cr_expect_eq(open_forged(p, n + 4, DIANA_OPEN_LENIENT), DIANA_EDICOM);
	/* a duplicate element is refused in both modes */
	n = add(p, h, 0x0010, 0x0010, "PN", "A^B ");
	n = add(p, n, 0x0010, 0x0010, "PN", "C^D ");
	cr_expect_eq(open_forged(p, n, 0), DIANA_EDICOM);
	cr_expect_eq(open_forged(p, n, DIANA_OPEN_LENIENT), DIANA_EDICOM);

	/* values: refused strictly, accepted leniently */
	static const struct {
		uint16_t e;
		const char *vr, *value;
		int strict_ok;
	} v[] = {
		{ 0x1030, "DS", "-0.0000000000000000001", 1 }, /* > 16 bytes: syntax counts */
		{ 0x1030, "DS", " 1.5E+02", 1 },
		{ 0x1030, "DS", "1,5 ", 0 },
		{ 0x1030, "DS", "1e999 ", 0 },
		{ 0x1030, "DS", "12\\.5", 1 },
		{ 0x1030, "DS", "12\\x5", 0 },
		{ 0x1030, "IS", "00000000000000000007", 1 },
		{ 0x1030, "IS", "-2147483648 ", 1 },
		{ 0x1030, "IS", "2147483648", 0 },
		{ 0x1030, "IS", "1.5 ", 0 },
		{ 0x1030, "UI", "1.2.3", 1 },
		{ 0x1030, "UI", "1.2.x", 0 },
		{ 0x1030, "UI", "1..2", 0 },
		{ 0x1030, "UI", "1.2345678901234567890123456789012345678901234567890123456789012345", 0 },
	};
	for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
		n = add(p, h, 0x0010, v[i].e, v[i].vr, v[i].value);
		cr_expect_eq(open_forged(p, n, 0), v[i].strict_ok ? 0 : DIANA_EDICOM, "%s [%s]", v[i].vr, v[i].value);
		cr_expect_eq(open_forged(p, n, DIANA_OPEN_LENIENT), 0, "%s [%s] lenient", v[i].vr, v[i].value);
	}

	/* file meta: Media Storage UIDs both or neither */
	n = forge_header(p);
	cr_expect_eq(open_forged(p, add(p, n, 0x0010, 0x0010, "PN", "A^B "), 0), 0, "%s", diana_error_message());
	n = add(p, 132, 0x0002, 0x0003, "UI", "1.2.3.4 ");
	n = add(p, n, 0x0002, 0x0010, "UI", "1.2.840.10008.1.2.1");
	n = add(p, n, 0x0010, 0x0010, "PN", "A^B ");
	cr_expect_eq(open_forged(p, n, 0), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "(0002,0002)"), "%s", diana_error_message());
	cr_expect_eq(open_forged(p, n, DIANA_OPEN_LENIENT), 0);
	free(p);
}

/* a header with another transfer syntax (even-length UID, NUL padded) */
static size_t forge_header_ts(uint8_t *p, const char *ts)
{
	size_t n, l = strlen(ts);
	memset(p, 0, 128);
	memcpy(p + 128, "DICM", 4);
	n = 132 + put_elem(p + 132, 0x0002, 0x0010, "UI", (uint32_t)(l + (l & 1)));
	memcpy(p + n, ts, l);
	n += l;
	if (l & 1)
		p[n++] = 0;
	return n;
}

static void expect_refused(const uint8_t *p, size_t n, const char *want, const char *what)
{
	for (int lenient = 0; lenient < 2; lenient++) {
		int rc = open_forged(p, n, lenient ? DIANA_OPEN_LENIENT : 0);
		cr_expect_eq(rc, DIANA_EDICOM, "%s%s: %d", what, lenient ? " (lenient)" : "", rc);
		cr_expect(single_line(diana_error_message()), "%s", what);
		cr_expect_not_null(strstr(diana_error_message(), want), "%s: [%s]", what, diana_error_message());
	}
}

/* GDCM repairs these while reading and reports it on its warning stream
 * only: libdiana refuses them in both modes, naming GDCM's message (which
 * holds no value) */
Test(dataset, gdcm_repairs_are_refused)
{
	uint8_t *p = calloc(1, 4096);
	size_t n;

	/* explicit VR: (0009,xxxx) UL of length 6, read by GDCM as 4 */
	n = forge_header(p);
	n += put_elem(p + n, 0x0009, 0x1010, "UL", 6);
	memcpy(p + n, "\1\2\3\4\5\6", 6);
	n += 6;
	n = add(p, n, 0x0010, 0x0010, "PN", "Doe^J ");
	expect_refused(p, n, "GDCM repaired the data: Replacing VL=0x0006 with VL=0x0004", "UL of length 6");
	cr_expect_null(strstr(diana_error_message(), "Doe"));

	/* implicit VR: a length of 13, read by GDCM as 10 */
	n = forge_header_ts(p, "1.2.840.10008.1.2");
	n += put_elem(p + n, 0x0010, 0x0010, NULL, 13);
	memcpy(p + n, "Doe^John^Mr.X", 13);
	n += 13;
	n += put_elem(p + n, 0x0010, 0x0020, NULL, 4);
	memcpy(p + n, "ID01", 4);
	n += 4;
	expect_refused(p, n, "GE,13", "implicit length 13");
	cr_expect_null(strstr(diana_error_message(), "Doe"));

	/* an item of undefined length ended by the sequence delimiter */
	n = forge_header(p);
	n += put_elem(p + n, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
	n = add(p, n, 0x0010, 0x0010, "PN", "Doe ");
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	expect_refused(p, n, "SQ End found but no Item end found", "item without delimiter");

	/* a sequence delimiter inside a sequence of defined length */
	n = forge_header(p);
	n += put_elem(p + n, 0x0040, 0xA730, "SQ", 28);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 12);
	n = add(p, n, 0x0010, 0x0010, "PN", "Doe ");
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	expect_refused(p, n, "SeqDelItem found in defined length Sequence", "delimiter in defined sequence");
	free(p);
}

Test(dataset, structure_checks_inside_sequences)
{
	uint8_t *p = calloc(1, 4096);
	diana_dataset *ds = NULL;
	size_t n, h = forge_header(p);

	/* a duplicate inside an item (GDCM keeps the first and says nothing) */
	n = h + put_elem(p + h, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
	n = add(p, n, 0x0010, 0x0010, "PN", "A^B ");
	n = add(p, n, 0x0010, 0x0010, "PN", "C^D ");
	n += put_elem(p + n, 0xFFFE, 0xE00D, NULL, 0);
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	expect_refused(p, n, "(0040,A730)", "duplicate in an item");

	/* an item longer than its content: the next item would be read into it */
	n = h + put_elem(p + h, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 20);
	n = add(p, n, 0x0010, 0x0010, "PN", "Doe ");
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 12);
	n = add(p, n, 0x0010, 0x0010, "PN", "Foo ");
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	expect_refused(p, n, "overruns", "item length too long");

	/* a non-zero delimiter length: refused strictly, read as 0 leniently */
	n = h + put_elem(p + h, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
	n = add(p, n, 0x0010, 0x0010, "PN", "Doe ");
	n += put_elem(p + n, 0xFFFE, 0xE00D, NULL, 4);
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	cr_expect_eq(open_forged(p, n, 0), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "non-zero length"), "%s", diana_error_message());
	cr_expect_eq(open_forged(p, n, DIANA_OPEN_LENIENT), 0, "%s", diana_error_message());

	/* an odd length inside an item of undefined length: kept as is, and
	 * written back as is; inside a sequence of defined length: refused */
	n = h + put_elem(p + h, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
	n += put_elem(p + n, 0x0009, 0x1010, "UN", 3);
	memcpy(p + n, "\1\2\3", 3);
	n += 3;
	n += put_elem(p + n, 0xFFFE, 0xE00D, NULL, 0);
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	cr_assert_eq(diana_dataset_open_memory(&ds, p, n, NULL), 0, "%s", diana_error_message());
	uint8_t *out = NULL, *b = NULL;
	size_t len = 0, blen = 0;
	cr_assert_eq(diana_dataset_save_memory(ds, &out, &len), 0, "%s", diana_error_message());
	diana_dataset_free(ds);
	cr_assert_eq(diana_dataset_open_memory(&ds, out, len, NULL), 0, "%s", diana_error_message());
	cr_expect_eq(diana_dataset_get_bytes(ds, "0040A730[0].00091010", &b, &blen), 0);
	cr_expect_eq(blen, 3);
	diana_free(b);
	diana_free(out);
	diana_dataset_free(ds);
	n = h + put_elem(p + h, 0x0040, 0xA730, "SQ", 19);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 11);
	n += put_elem(p + n, 0x0010, 0x0010, "PN", 3);
	memcpy(p + n, "Doe", 3);
	n += 3;
	expect_refused(p, n, "odd length", "odd length in a defined sequence");

	/* encapsulated pixel data in implicit VR: GDCM reports it; refused
	 * strictly, accepted leniently (as before GDCM parsed) */
	n = forge_header_ts(p, "1.2.840.10008.1.2");
	n += put_elem(p + n, 0x0010, 0x0010, NULL, 4);
	memcpy(p + n, "Doe ", 4);
	n += 4;
	n += put_elem(p + n, 0x7FE0, 0x0010, NULL, 0xFFFFFFFFu);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 0);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 4);
	memcpy(p + n, "abcd", 4);
	n += 4;
	n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
	cr_expect_eq(open_forged(p, n, 0), DIANA_EDICOM);
	cr_expect_eq(open_forged(p, n, DIANA_OPEN_LENIENT), 0, "%s", diana_error_message());

	/* a file meta element inside the dataset: refused strictly; read
	 * leniently, but not written (it would duplicate the file meta) */
	h = forge_header(p);
	n = add(p, h, 0x0010, 0x0010, "PN", "Doe ");
	n = add(p, n, 0x0002, 0x0003, "UI", "1.2.3.4 ");
	cr_expect_eq(open_forged(p, n, 0), DIANA_EDICOM);
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	o.flags = DIANA_OPEN_LENIENT;
	cr_assert_eq(diana_dataset_open_memory(&ds, p, n, &o), 0, "%s", diana_error_message());
	cr_expect_eq(diana_dataset_save_memory(ds, &out, &len), DIANA_EDICOM);
	diana_dataset_free(ds);
	free(p);
}

/* sequences of undefined length, `k` deep, inside a sequence and item of
 * defined length */
static size_t forge_mixed_nesting(uint8_t *p, int k)
{
	size_t n = forge_header(p), m = 0;
	uint8_t *in = calloc(1, 4096);
	for (int i = 0; i < k; i++) {
		m += put_elem(in + m, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
		m += put_elem(in + m, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
	}
	m = add(in, m, 0x0010, 0x0010, "PN", "Doe ");
	for (int i = 0; i < k; i++) {
		m += put_elem(in + m, 0xFFFE, 0xE00D, NULL, 0);
		m += put_elem(in + m, 0xFFFE, 0xE0DD, NULL, 0);
	}
	n += put_elem(p + n, 0x0008, 0x1115, "SQ", (uint32_t)m + 8);
	n += put_elem(p + n, 0xFFFE, 0xE000, NULL, (uint32_t)m);
	memcpy(p + n, in, m);
	free(in);
	return n + m;
}

Test(dataset, nesting_limits, .timeout = 30)
{
	uint8_t *p = calloc(1, 1 << 16);
	diana_dataset *ds = NULL, *back = NULL;
	uint8_t *out = NULL;
	size_t n, len = 0;

	/* 64 levels are read and written, 65 are not */
	for (int depth = 64; depth <= 65; depth++) {
		n = forge_header(p);
		for (int i = 0; i < depth; i++) {
			n += put_elem(p + n, 0x0040, 0xA730, "SQ", 0xFFFFFFFFu);
			n += put_elem(p + n, 0xFFFE, 0xE000, NULL, 0xFFFFFFFFu);
		}
		n = add(p, n, 0x0010, 0x0010, "PN", "Doe ");
		for (int i = 0; i < depth; i++) {
			n += put_elem(p + n, 0xFFFE, 0xE00D, NULL, 0);
			n += put_elem(p + n, 0xFFFE, 0xE0DD, NULL, 0);
		}
		int rc = diana_dataset_open_memory(&ds, p, n, NULL);
		if (depth == 65) {
			cr_expect_eq(rc, DIANA_EDICOM);
			cr_expect_not_null(strstr(diana_error_message(), "nested"), "%s", diana_error_message());
			continue;
		}
		cr_assert_eq(rc, 0, "%s", diana_error_message());
		cr_assert_eq(diana_dataset_save_memory(ds, &out, &len), 0, "%s", diana_error_message());
		cr_expect_eq(diana_dataset_open_memory(&back, out, len, NULL), 0, "%s", diana_error_message());
		diana_free(out);
		diana_dataset_free(back);
		diana_dataset_free(ds);
	}

	/* GDCM's length computation is exponential in the sequences of
	 * undefined length inside one of defined length: 6 levels, no more */
	n = forge_mixed_nesting(p, 6);
	cr_expect_eq(open_forged(p, n, 0), 0, "%s", diana_error_message());
	n = forge_mixed_nesting(p, 20);
	cr_expect_eq(open_forged(p, n, 0), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "more than 6 levels"), "%s", diana_error_message());
	free(p);
}

struct thread_arg {
	const diana_dataset *ds;
	const char *expect_json;
	int failures;
};

static void *reader(void *arg)
{
	struct thread_arg *a = arg;
	for (int i = 0; i < 20; i++) {
		char *v = NULL, *j = NULL;
		size_t count = 0;
		if (diana_dataset_get(a->ds, "OtherPatientIDsSequence[1].PatientID", &v) || strcmp(v, "1234ABCD"))
			a->failures++;
		if (diana_dataset_to_json(a->ds, 0, &j) || strcmp(j, a->expect_json))
			a->failures++;
		if (diana_dataset_foreach(a->ds, 0, count_cb, &count) || count != 262)
			a->failures++;
		diana_free(v);
		diana_free(j);
	}
	return NULL;
}

Test(dataset, concurrent_readers)
{
	diana_dataset *ds = open_or_die("ct/CT_small.dcm", 0);
	char *j = json_of(ds, 0);
	pthread_t t[4];
	struct thread_arg a[4];
	for (int i = 0; i < 4; i++) {
		a[i] = (struct thread_arg){ ds, j, 0 };
		cr_assert_eq(pthread_create(&t[i], NULL, reader, &a[i]), 0);
	}
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		cr_expect_eq(a[i].failures, 0, "thread %d", i);
	}
	diana_free(j);
	diana_dataset_free(ds);
}
