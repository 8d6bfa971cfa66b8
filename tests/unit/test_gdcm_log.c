/*
 * GDCM prints diagnostics on stderr by itself; they must reach the diana log
 * instead (domain "gdcm"), and nothing may be written on the host process's
 * stderr. GDCM parses every dataset libdiana opens; the repairs it reports
 * (on its warning stream only) make the open fail with DIANA_EDICOM, also
 * when diana_init() was never called.
 * SPDX-License-Identifier: MIT
 */
#include <criterion/criterion.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <diana/diana.h>

static int gdcm_lines;

/* Explicit VR little endian: (0009,1010) UL with a length of 6, which GDCM
 * reads as 4 ("Replacing VL=0x0006 with VL=0x0004 ... buggy DICOM file"),
 * then (0010,0010) PN "Doe". */
static size_t forge_siemens(unsigned char *p)
{
	static const unsigned char tail[] = {
		0x02, 0x00, 0x10, 0x00, 'U', 'I', 20, 0, '1', '.', '2', '.', '8', '4', '0', '.', '1', '0', '0', '0',
		'8', '.', '1', '.', '2', '.', '1', 0,
		0x09, 0x00, 0x10, 0x10, 'U', 'L', 6, 0, 1, 2, 3, 4, 5, 6,
		0x10, 0x00, 0x10, 0x00, 'P', 'N', 4, 0, 'D', 'o', 'e', ' '
	};
	memset(p, 0, 128);
	memcpy(p + 128, "DICM", 4);
	memcpy(p + 132, tail, sizeof tail);
	return 132 + sizeof tail;
}

/* Implicit VR little endian: (0010,0010) of length 13, which GDCM reads as
 * 10 ("GE,13: Replacing VL=0x000d with VL=0x000a ...") */
static size_t forge_ge13(unsigned char *p)
{
	static const unsigned char tail[] = {
		0x02, 0x00, 0x10, 0x00, 'U', 'I', 18, 0, '1', '.', '2', '.', '8', '4', '0', '.', '1', '0', '0', '0',
		'8', '.', '1', '.', '2', 0,
		0x10, 0x00, 0x10, 0x00, 13, 0, 0, 0, 'D', 'o', 'e', '^', 'J', 'o', 'h', 'n', '^', 'M', 'r', '.', 'X',
		0x10, 0x00, 0x20, 0x00, 4, 0, 0, 0, 'I', 'D', '0', '1'
	};
	memset(p, 0, 128);
	memcpy(p + 128, "DICM", 4);
	memcpy(p + 132, tail, sizeof tail);
	return 132 + sizeof tail;
}

static void on_log(int level, const char *domain, const char *message, void *ud)
{
	(void)level;
	(void)message;
	(void)ud;
	if (strcmp(domain, "gdcm") == 0)
		gdcm_lines++;
}

Test(gdcm_log, gdcm_diagnostics_go_to_the_diana_log)
{
	/* malformed files (gdcm::Reader printed warnings on them; libdiana's
	 * checks now stop most of them before GDCM repairs anything), then
	 * data on which GDCM's element readers report a repair */
	static const char *files[] = { "malformed/CTImageStorage_bad_meta.dcm", "malformed/GH179A.dcm",
		                       "malformed/MR_truncated.dcm", "malformed/SC_rgb_jpeg.dcm",
		                       "malformed/no_meta.dcm", "does/not/exist.dcm" };
	diana_dataset_options o = DIANA_DATASET_OPTIONS_INIT;
	char path[1024], errfile[] = "/tmp/diana-stderr-XXXXXX";
	const char *data = getenv("DIANA_TEST_DATA");
	struct stat st;
	int saved, fd;
	size_t i;

	cr_assert_not_null(data);
	fd = mkstemp(errfile);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);

	cr_assert_eq(diana_init(), 1);
	diana_log_set_handler(on_log, NULL);
	diana_log_set_level(DIANA_LOG_DEBUG);
	for (i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		diana_dataset *ds = NULL;
		snprintf(path, sizeof(path), "%s/dicom/%s", data, files[i]);
		o.flags = DIANA_OPEN_LENIENT;
		diana_dataset_open(&ds, path, &o); /* result irrelevant here */
		diana_dataset_free(ds);
	}
	for (i = 0; i < 2; i++) {
		unsigned char buf[512];
		size_t n = i ? forge_ge13(buf) : forge_siemens(buf);
		diana_dataset *ds = NULL;
		o.flags = DIANA_OPEN_LENIENT;
		cr_expect_eq(diana_dataset_open_memory(&ds, buf, n, &o), DIANA_EDICOM);
		cr_expect_not_null(strstr(diana_error_message(), "GDCM repaired the data"), "%s", diana_error_message());
		cr_expect_null(ds);
	}
	diana_log_set_handler(NULL, NULL);
	diana_shutdown();

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	unlink(errfile);
	cr_expect_eq(st.st_size, 0, "%lld bytes written on stderr", (long long)st.st_size);
	cr_expect_gt(gdcm_lines, 0, "GDCM said nothing into the diana log");
}

Test(gdcm_log, repairs_are_refused_without_diana_init)
{
	/* no diana_init(): the reader routes GDCM's trace streams itself */
	char errfile[] = "/tmp/diana-stderr-XXXXXX";
	unsigned char buf[512];
	struct stat st;
	int saved, fd;
	size_t n;
	diana_dataset *ds = NULL;

	fd = mkstemp(errfile);
	cr_assert_geq(fd, 0);
	fflush(stderr);
	saved = dup(2);
	dup2(fd, 2);

	n = forge_siemens(buf);
	cr_expect_eq(diana_dataset_open_memory(&ds, buf, n, NULL), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "Replacing VL=0x0006 with VL=0x0004"), "%s",
	                   diana_error_message());
	cr_expect_null(strchr(diana_error_message(), '\n'));
	n = forge_ge13(buf);
	cr_expect_eq(diana_dataset_open_memory(&ds, buf, n, NULL), DIANA_EDICOM);
	cr_expect_not_null(strstr(diana_error_message(), "GE,13"), "%s", diana_error_message());
	/* the value of the element GDCM shortened is not in the message */
	cr_expect_null(strstr(diana_error_message(), "Doe"), "%s", diana_error_message());

	/* the same bytes, repaired by hand: GDCM reads them without a word */
	n = forge_siemens(buf);
	buf[132 + 28 + 6] = 4;
	memmove(buf + 132 + 28 + 12, buf + 132 + 28 + 14, n - (132 + 28 + 14));
	n -= 2;
	cr_expect_eq(diana_dataset_open_memory(&ds, buf, n, NULL), 0, "%s", diana_error_message());
	diana_dataset_free(ds);

	fflush(stderr);
	dup2(saved, 2);
	close(saved);
	cr_assert_eq(fstat(fd, &st), 0);
	close(fd);
	unlink(errfile);
	cr_expect_eq(st.st_size, 0, "%lld bytes written on stderr", (long long)st.st_size);
}
