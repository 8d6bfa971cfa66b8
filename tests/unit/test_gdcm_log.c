/*
 * GDCM prints diagnostics on stderr by itself; while libdiana is
 * initialised they must reach the diana log instead (domain "gdcm"), and
 * nothing may be written on the host process's stderr.
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
	/* files on which GDCM 3.0.21 prints warnings ("Attempt to read GDCM 1.X
	 * wrongly encoded", "Incomplete Pixel Data found", ...); opened
	 * leniently so that GDCM really parses them */
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
