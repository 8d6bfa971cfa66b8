/*
 * Tests of deferred Pixel Data (lib/dicom, diana__dataset_open_deferred):
 * the pixel bytes stay in the input file and are copied from there when
 * the dataset is written. What is written, read back or exported must be
 * the same bytes as with a normal open, on every corpus file; an input
 * that changes before the copy is an error, never a damaged output.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/core.h"
#include "dicom/edit.h"

static char tmpdir[256];

static void setup(void)
{
	strcpy(tmpdir, "/tmp/diana-deferred-XXXXXX");
	cr_assert_not_null(mkdtemp(tmpdir));
	cr_assert_eq(chdir(tmpdir), 0);
}

static void teardown(void)
{
	char cmd[300];
	cr_assert_eq(chdir("/"), 0);
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	cr_assert_eq(system(cmd), 0);
}

TestSuite(deferred, .init = setup, .fini = teardown, .timeout = 300);

static int read_all(const char *path, uint8_t **out, size_t *len)
{
	return diana__file_read(path, 0, out, len);
}

/* a native 16-bit image of 256 x 256 (128 KiB of pixel data: above the size that is deferred) */
static void make_image(const char *path)
{
	size_t n = 256 * 256 * 2, i;
	uint8_t *px = malloc(n);
	char *b64, *json;
	diana_dataset *ds = NULL;

	cr_assert_not_null(px);
	for (i = 0; i < n; i++)
		px[i] = (uint8_t)(i * 7 + (i >> 9));
	b64 = diana__base64_encode(px, n, NULL);
	free(px);
	cr_assert_not_null(b64);
	json = malloc(strlen(b64) + 2048);
	cr_assert_not_null(json);
	sprintf(json,
	        "{\"00020010\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.1.2.1\"]},"
	        "\"00080016\":{\"vr\":\"UI\",\"Value\":[\"1.2.840.10008.5.1.4.1.1.7\"]},"
	        "\"00080018\":{\"vr\":\"UI\",\"Value\":[\"1.2.3.4.5.6.7.8\"]},"
	        "\"00100010\":{\"vr\":\"PN\",\"Value\":[{\"Alphabetic\":\"MUSTERMANN^ERIKA\"}]},"
	        "\"00280010\":{\"vr\":\"US\",\"Value\":[256]},\"00280011\":{\"vr\":\"US\",\"Value\":[256]},"
	        "\"00280100\":{\"vr\":\"US\",\"Value\":[16]},\"00280101\":{\"vr\":\"US\",\"Value\":[16]},"
	        "\"00280102\":{\"vr\":\"US\",\"Value\":[15]},\"00280103\":{\"vr\":\"US\",\"Value\":[0]},"
	        "\"7FE00010\":{\"vr\":\"OW\",\"InlineBinary\":\"%s\"}}",
	        b64);
	free(b64);
	cr_assert_eq(diana_dataset_from_json(&ds, json, 0), 0, "%s", diana_error_message());
	free(json);
	cr_assert_eq(diana_dataset_save(ds, path), 0, "%s", diana_error_message());
	diana_dataset_free(ds);
}

static void assert_same_file(const char *a, const char *b)
{
	uint8_t *da = NULL, *db = NULL;
	size_t la = 0, lb = 0;
	cr_assert_eq(read_all(a, &da, &la), 0);
	cr_assert_eq(read_all(b, &db, &lb), 0);
	cr_assert(la == lb && memcmp(da, db, la) == 0, "%s and %s differ", a, b);
	free(da);
	free(db);
}

Test(deferred, written_and_read_as_a_normal_open)
{
	diana_dataset *n = NULL, *d = NULL;
	uint8_t *pn = NULL, *pd = NULL, *mn = NULL, *md = NULL;
	size_t ln = 0, ld = 0;

	make_image("in.dcm");
	cr_assert_eq(diana_dataset_open(&n, "in.dcm", NULL), 0);
	cr_assert_eq(diana__dataset_open_deferred(&d, "in.dcm"), 0, "%s", diana_error_message());
	/* written: through the kernel copy, and through memory */
	cr_assert_eq(diana__dataset_save_atomic(n, "n.dcm", 0), 0);
	cr_assert_eq(diana__dataset_save_atomic(d, "d.dcm", 0), 0, "%s", diana_error_message());
	assert_same_file("n.dcm", "d.dcm");
	cr_assert_eq(diana_dataset_save(d, "d2.dcm"), 0, "%s", diana_error_message());
	assert_same_file("n.dcm", "d2.dcm");
	assert_same_file("in.dcm", "d.dcm");
	/* read: the bytes come from the file when asked for */
	cr_assert_eq(diana_dataset_get_bytes(n, "PixelData", &pn, &ln), 0);
	cr_assert_eq(diana_dataset_get_bytes(d, "PixelData", &pd, &ld), 0, "%s", diana_error_message());
	cr_assert(ln == 256 * 256 * 2 && ln == ld && memcmp(pn, pd, ln) == 0);
	cr_assert_eq(diana_dataset_save_memory(d, &md, &ld), 0);
	cr_assert_eq(diana_dataset_save_memory(n, &mn, &ln), 0);
	cr_assert(ln == ld && memcmp(mn, md, ln) == 0);
	diana_free(pn);
	diana_free(pd);
	diana_free(mn);
	diana_free(md);
	diana_dataset_free(n);
	diana_dataset_free(d);
}

Test(deferred, memory_json_and_walk_load_the_value)
{
	diana_dataset *n = NULL, *d = NULL;
	char *jn = NULL, *jd = NULL;

	make_image("in.dcm");
	cr_assert_eq(diana_dataset_open(&n, "in.dcm", NULL), 0);
	cr_assert_eq(diana__dataset_open_deferred(&d, "in.dcm"), 0);
	cr_assert_eq(diana_dataset_to_json(d, DIANA_JSON_META, &jd), 0);
	cr_assert_eq(diana_dataset_to_json(n, DIANA_JSON_META, &jn), 0);
	cr_assert_str_eq(jd, jn);
	diana_free(jn);
	diana_free(jd);
	diana_dataset_free(n);
	diana_dataset_free(d);
}

/* the input changes between reading and writing: an error and no output */
Test(deferred, changed_input_fails_without_output)
{
	diana_dataset *d = NULL;
	struct stat st;

	make_image("in.dcm");
	cr_assert_eq(diana__dataset_open_deferred(&d, "in.dcm"), 0);
	cr_assert_eq(stat("in.dcm", &st), 0);
	cr_assert_eq(truncate("in.dcm", st.st_size - 100), 0);
	cr_assert_eq(diana__dataset_save_atomic(d, "out.dcm", 0), DIANA_EIO);
	cr_assert_neq(stat("out.dcm", &st), 0, "no output");
	cr_assert_eq(diana_dataset_save(d, "out2.dcm"), DIANA_EIO);
	cr_assert_neq(stat("out2.dcm", &st), 0, "no output");
	diana_dataset_free(d);
	/* removed after the open: the dataset still has it open, the copy works */
	make_image("in2.dcm");
	cr_assert_eq(diana__dataset_open_deferred(&d, "in2.dcm"), 0);
	cr_assert_eq(unlink("in2.dcm"), 0);
	cr_assert_eq(diana__dataset_save_atomic(d, "out3.dcm", 0), 0, "%s", diana_error_message());
	diana_dataset_free(d);
	make_image("in2.dcm");
	assert_same_file("in2.dcm", "out3.dcm");
}

/* every corpus file: what is written from a deferred open is what a normal open writes */
static void walk(const char *dir, int *files, int *same, char *fails, size_t cap)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		char path[4096];
		struct stat st;
		diana_dataset *n = NULL, *x = NULL;
		int rn, rx;
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		if (stat(path, &st) < 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			walk(path, files, same, fails, cap);
			continue;
		}
		rn = diana_dataset_open(&n, path, NULL);
		rx = diana__dataset_open_deferred(&x, path);
		if (rn != rx) {
			size_t l = strlen(fails);
			snprintf(fails + l, cap - l, "\n%s: open %d vs %d", path, rn, rx);
		} else if (rn == 0) {
			int wn = diana__dataset_save_atomic(n, "n.dcm", 0), wx = diana__dataset_save_atomic(x, "x.dcm", 0);
			(*files)++;
			if (wn != wx) {
				size_t l = strlen(fails);
				snprintf(fails + l, cap - l, "\n%s: save %d vs %d", path, wn, wx);
			} else if (wn == 0) {
				uint8_t *a = NULL, *b = NULL;
				size_t la = 0, lb = 0;
				if (read_all("n.dcm", &a, &la) == 0 && read_all("x.dcm", &b, &lb) == 0 && la == lb &&
				    memcmp(a, b, la) == 0) {
					(*same)++;
				} else {
					size_t l = strlen(fails);
					snprintf(fails + l, cap - l, "\n%s: outputs differ", path);
				}
				free(a);
				free(b);
			} else {
				(*same)++;
			}
		}
		diana_dataset_free(n);
		diana_dataset_free(x);
		diana_error_clear();
	}
	closedir(d);
}

Test(deferred, corpus_outputs_are_the_same)
{
	const char *roots[2] = { getenv("DIANA_TEST_DATA"), getenv("DIANA_SHARED_DATA") };
	static char fails[8192];
	int files = 0, same = 0, i;

	fails[0] = 0;
	for (i = 0; i < 2; i++) {
		char dir[4096];
		if (!roots[i])
			continue;
		snprintf(dir, sizeof dir, "%s/dicom", roots[i]);
		walk(dir, &files, &same, fails, sizeof fails);
	}
	cr_log_info("deferred: %d files, %d identical", files, same);
	cr_assert_gt(files, 40);
	cr_assert_str_empty(fails, "%s", fails);
	cr_assert_eq(files, same);
}
