/*
 * bench_read: open every file given on the command line with libdiana (full
 * read, pixel data included), read a few values, and report files/s and
 * MB/s. Used by bench_read.sh next to peers measured in the same run.
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <time.h>

#include <diana/diana.h>

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	static const char *keys[] = { "PatientName", "StudyInstanceUID", "SOPInstanceUID", "Rows" };
	double t0, dt, bytes = 0;
	int i, k, failed = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: bench_read FILE...\n");
		return 1;
	}
	diana_init();
	t0 = now();
	for (i = 1; i < argc; i++) {
		diana_dataset *ds = NULL;
		struct stat st;
		if (stat(argv[i], &st) == 0)
			bytes += (double)st.st_size;
		if (diana_dataset_open(&ds, argv[i], NULL) < 0) {
			failed++;
			continue;
		}
		for (k = 0; k < 4; k++) {
			char *v = NULL;
			if (diana_dataset_get(ds, keys[k], &v) == 0)
				diana_free(v);
		}
		diana_dataset_free(ds);
	}
	dt = now() - t0;
	printf("%d files, %.1f MB in %.3f s: %.0f files/s, %.1f MB/s%s\n", argc - 1, bytes / 1e6, dt,
	       (argc - 1) / dt, bytes / 1e6 / dt, failed ? " (some failed)" : "");
	diana_shutdown();
	return failed ? 2 : 0;
}
