/*
 * diana - the echo, find, get and store commands (sessions).
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "session_opts.h"

/* session options: session_opts.h; the commands' own options */
enum {
	OPT_JSON = OPT_SESSION_END,
	OPT_LEVEL,
	OPT_STUDY,
	OPT_SERIES,
	OPT_INSTANCE,
	OPT_OUT,
	OPT_QUIET
};

/* ----------------------------------------------------------------- echo */

void echo_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s echo [OPTIONS] URI\n"
	        "\n"
	        "Check that the other side answers: C-ECHO (dicom://), GET /system and, with a\n"
	        "modality, C-ECHO from Orthanc to it (orthanc+http://), a QIDO-RS query\n"
	        "(dicomweb+http://), the folder readable (file://). Prints the time taken.\n"
	        "\n" SESSION_OPTIONS_HELP
	        "\n"
	        "Exit status: 0 answered, 1 usage error, 2 no answer (one line on stderr).\n",
	        progname);
}

int cmd_echo(int argc, char **argv)
{
	static const struct option longopts[] = { SESSION_LONGOPTS, { NULL, 0, NULL, 0 } };
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_session *s = NULL;
	struct timespec t0, t1;
	int c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		if (c == 'h') {
			echo_help(stdout);
			return 0;
		}
		rc = session_option("echo", c, optarg, &o);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc == 0)
			return usage_error("echo", "unknown option");
	}
	if (optind != argc - 1)
		return usage_error("echo", "exactly one URI expected");
	if (open_session(&s, argv[optind], &o))
		return EXIT_FAIL;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	rc = diana_session_echo(s);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (rc < 0) {
		rc = fail(diana_session_uri(s));
		diana_session_free(s);
		return rc;
	}
	printf("%s: ok (%.0f ms)\n", diana_session_uri(s),
	       (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6);
	diana_session_free(s);
	return 0;
}

/* ----------------------------------------------------------------- find */

void find_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s find [OPTIONS] URI [KEY=VALUE | KEY]...\n"
	        "\n"
	        "Query studies (default), series, instances or patients. KEY is a DICOM keyword\n"
	        "(PatientName) or a tag (0010,0010); KEY=VALUE matches (wildcards * and ?, date\n"
	        "ranges 20240101-20240131, UID lists a\\b), a bare KEY asks for it back.\n"
	        "Useful keys are asked back at each level; the output is a table (tab-separated,\n"
	        "one header line) or DICOM JSON.\n"
	        "\n"
	        "Options:\n"
	        "  -l, --level LEVEL   patient, study, series or instance (image)\n"
	        "  --json              print a JSON array of DICOM JSON objects\n"
	        "  -h, --help          show this help\n"
	        "\n" SESSION_OPTIONS_HELP
	        "\n"
	        "Examples:\n"
	        "  %s find orthanc+http://u:p@127.0.0.1:8042?modality=pacs AccessionNumber=A123\n"
	        "  %s find dicom://PACS@10.0.0.5:104?aet=ME --level series StudyInstanceUID=1.2.3\n"
	        "\n"
	        "Exit status: 0 ok (also with no answer), 1 usage error, 2 failure.\n",
	        progname, progname, progname);
}

static const char *const study_defaults[] = {
	"PatientID", "PatientName", "StudyDate", "AccessionNumber", "StudyDescription",
	"ModalitiesInStudy", "NumberOfStudyRelatedSeries", "NumberOfStudyRelatedInstances", "StudyInstanceUID", NULL
};
static const char *const series_defaults[] = {
	"StudyInstanceUID", "SeriesNumber", "Modality", "SeriesDescription",
	"NumberOfSeriesRelatedInstances", "SeriesInstanceUID", NULL
};
static const char *const instance_defaults[] = {
	"StudyInstanceUID", "SeriesInstanceUID", "InstanceNumber", "SOPClassUID", "SOPInstanceUID", NULL
};
static const char *const patient_defaults[] = {
	"PatientID", "PatientName", "PatientBirthDate", "PatientSex", "NumberOfPatientRelatedStudies", NULL
};

struct find_out {
	int json;
	int n;
	const char **cols;
	size_t ncols;
};

static int print_answer(const diana_dataset *ds, void *ud)
{
	struct find_out *f = ud;
	size_t i;

	if (f->json) {
		char *j = NULL;
		if (diana_dataset_to_json(ds, 0, &j) < 0)
			return -1;
		printf("%s%s", f->n ? ",\n" : "", j);
		diana_free(j);
	} else {
		for (i = 0; i < f->ncols; i++) {
			char *v = NULL;
			if (diana_dataset_get(ds, f->cols[i], &v) == 0) {
				/* one line per answer: no tabs or newlines inside values */
				char *p;
				for (p = v; *p; p++) {
					if (*p == '\t' || *p == '\n' || *p == '\r')
						*p = ' ';
				}
				printf("%s%s", i ? "\t" : "", v);
				diana_free(v);
			} else {
				printf("%s", i ? "\t" : "");
			}
		}
		printf("\n");
	}
	f->n++;
	return 0;
}

/* the key's name part (before '=') */
static size_t key_name_len(const char *k)
{
	return strcspn(k, "=");
}

int cmd_find(int argc, char **argv)
{
	static const struct option longopts[] = {
		SESSION_LONGOPTS, { "level", required_argument, NULL, 'l' }, { "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 }
	};
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_session *s = NULL;
	struct find_out f = { 0, 0, NULL, 0 };
	const char *const *defaults = study_defaults;
	const char **keys = NULL;
	size_t nkeys = 0, count = 0, i, j;
	int level = DIANA_LEVEL_STUDY, c, rc;
	const char *uri;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hl:", longopts, NULL)) != -1) {
		if (c == 'h') {
			find_help(stdout);
			return 0;
		}
		if (c == 'l') {
			if (strcmp(optarg, "study") == 0) {
				level = DIANA_LEVEL_STUDY;
				defaults = study_defaults;
			} else if (strcmp(optarg, "series") == 0) {
				level = DIANA_LEVEL_SERIES;
				defaults = series_defaults;
			} else if (strcmp(optarg, "instance") == 0 || strcmp(optarg, "image") == 0) {
				level = DIANA_LEVEL_INSTANCE;
				defaults = instance_defaults;
			} else if (strcmp(optarg, "patient") == 0) {
				level = DIANA_LEVEL_PATIENT;
				defaults = patient_defaults;
			} else {
				return usage_error("find", "--level takes patient, study, series or instance");
			}
			continue;
		}
		if (c == OPT_JSON) {
			f.json = 1;
			continue;
		}
		rc = session_option("find", c, optarg, &o);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc == 0)
			return usage_error("find", "unknown option");
	}
	if (optind >= argc)
		return usage_error("find", "a URI is required");
	uri = argv[optind++];
	/* the user's keys, then the level's defaults not already named */
	keys = calloc((size_t)(argc - optind) + 16, sizeof(*keys));
	f.cols = calloc((size_t)(argc - optind) + 16, sizeof(*f.cols));
	if (!keys || !f.cols) {
		free(keys);
		free(f.cols);
		fprintf(stderr, "%s find: out of memory\n", progname);
		return EXIT_FAIL;
	}
	for (i = (size_t)optind; i < (size_t)argc; i++)
		keys[nkeys++] = argv[i];
	for (i = 0; defaults[i]; i++) {
		int have = 0;
		for (j = 0; j < nkeys; j++) {
			if (key_name_len(keys[j]) == strlen(defaults[i]) &&
			    strncmp(keys[j], defaults[i], strlen(defaults[i])) == 0)
				have = 1;
		}
		if (!have)
			keys[nkeys++] = defaults[i];
	}
	if (open_session(&s, uri, &o)) {
		free(keys);
		free(f.cols);
		return EXIT_FAIL;
	}
	/* columns: the key names, as given */
	for (i = 0; i < nkeys; i++) {
		size_t n = key_name_len(keys[i]);
		char *name = malloc(n + 1);
		if (!name)
			break;
		memcpy(name, keys[i], n);
		name[n] = '\0';
		f.cols[f.ncols++] = name;
	}
	if (f.json) {
		printf("[");
	} else {
		for (i = 0; i < f.ncols; i++)
			printf("%s%s", i ? "\t" : "", f.cols[i]);
		printf("\n");
	}
	rc = diana_session_find(s, level, keys, nkeys, print_answer, &f, &count);
	if (f.json)
		printf("]\n");
	fflush(stdout);
	if (rc < 0)
		rc = fail("find");
	else
		rc = 0;
	diana_session_free(s);
	for (i = 0; i < f.ncols; i++)
		free((char *)f.cols[i]);
	free(f.cols);
	free(keys);
	return rc;
}

/* ------------------------------------------------------------------ get */

void get_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s get [OPTIONS] URI --study UID [--series UID [--instance UID]] -o DIR\n"
	        "\n"
	        "Retrieve a study, a series or an instance into DIR as\n"
	        "DIR/<StudyInstanceUID>/<SeriesInstanceUID>/<SOPInstanceUID>.dcm (each file\n"
	        "written atomically; a rerun completes a partial folder). Files are stored\n"
	        "as received: no de-identification (see 'diana anon').\n"
	        "\n"
	        "Options:\n"
	        "  --study UID         Study Instance UID (required)\n"
	        "  --series UID        only this series\n"
	        "  --instance UID      only this instance (needs --series)\n"
	        "  -o, --out DIR       destination folder (created if missing)\n"
	        "  -q, --quiet         no summary line\n"
	        "  -h, --help          show this help\n"
	        "\n" SESSION_OPTIONS_HELP
	        "\n"
	        "Exit status: 0 ok, 1 usage error, 2 failure (nothing matched, PACS refused...).\n",
	        progname);
}

int cmd_get(int argc, char **argv)
{
	static const struct option longopts[] = {
		SESSION_LONGOPTS,
		{ "study", required_argument, NULL, OPT_STUDY },
		{ "series", required_argument, NULL, OPT_SERIES },
		{ "instance", required_argument, NULL, OPT_INSTANCE },
		{ "out", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ NULL, 0, NULL, 0 }
	};
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	diana_session *s = NULL;
	const char *study = NULL, *series = NULL, *sop = NULL, *dir = NULL;
	int c, rc, quiet = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "ho:q", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			get_help(stdout);
			return 0;
		case OPT_STUDY:
			study = optarg;
			continue;
		case OPT_SERIES:
			series = optarg;
			continue;
		case OPT_INSTANCE:
			sop = optarg;
			continue;
		case 'o':
			dir = optarg;
			continue;
		case 'q':
			quiet = 1;
			continue;
		default:
			break;
		}
		rc = session_option("get", c, optarg, &o);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc == 0)
			return usage_error("get", "unknown option");
	}
	if (optind != argc - 1)
		return usage_error("get", "exactly one URI expected");
	if (!study)
		return usage_error("get", "--study UID is required");
	if (sop && !series)
		return usage_error("get", "--instance needs --series");
	if (!dir)
		return usage_error("get", "-o DIR is required");
	if (open_session(&s, argv[optind], &o))
		return EXIT_FAIL;
	rc = diana_session_retrieve_to_folder(s, study, series, sop, dir, &st);
	if (rc < 0) {
		rc = fail("get");
		if (st.instances)
			fprintf(stderr, "%s get: %llu instances were written before the error; a rerun completes "
			                "the folder\n",
			        progname, (unsigned long long)st.instances);
		diana_session_free(s);
		return rc;
	}
	if (!quiet) {
		double sec = st.elapsed_ms / 1000.0;
		printf("%llu instances, %.1f MB in %.1f s (%.1f MB/s) -> %s\n", (unsigned long long)st.instances,
		       st.bytes / 1e6, sec, sec > 0 ? st.bytes / 1e6 / sec : 0.0, dir);
	}
	diana_session_free(s);
	return 0;
}

/* ---------------------------------------------------------------- store */

void store_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s store [OPTIONS] URI FILE|DIR...\n"
	        "\n"
	        "Send DICOM files (folders recursively) by C-STORE, POST /instances (Orthanc;\n"
	        "with ?modality=NAME forwarded by Orthanc to NAME), STOW-RS, or into a folder.\n"
	        "A file that fails does not stop the others.\n"
	        "\n"
	        "Options:\n"
	        "  -q, --quiet         no summary line\n"
	        "  -h, --help          show this help\n"
	        "\n" SESSION_OPTIONS_HELP
	        "\n"
	        "Exit status: 0 all stored, 1 usage error, 2 some or all failed.\n",
	        progname);
}

struct files {
	char **v;
	size_t n, cap;
};

static int files_add(struct files *f, const char *p)
{
	if (f->n == f->cap) {
		size_t cap = f->cap ? f->cap * 2 : 64;
		char **nv = realloc(f->v, cap * sizeof(*nv));
		if (!nv)
			return -1;
		f->v = nv;
		f->cap = cap;
	}
	f->v[f->n] = strdup(p);
	if (!f->v[f->n])
		return -1;
	f->n++;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int collect(struct files *f, const char *path, int depth)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	size_t first = f->n;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "%s store: %s: %s\n", progname, path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return files_add(f, path);
	if (depth > 32)
		return 0;
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "%s store: %s: %s\n", progname, path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		char *child;
		size_t n;
		if (e->d_name[0] == '.' || strcmp(e->d_name, "DICOMDIR") == 0)
			continue;
		n = strlen(path) + strlen(e->d_name) + 2;
		child = malloc(n);
		if (!child) {
			closedir(d);
			return -1;
		}
		snprintf(child, n, "%s/%s", path, e->d_name);
		if (collect(f, child, depth + 1) < 0) {
			free(child);
			closedir(d);
			return -1;
		}
		free(child);
	}
	closedir(d);
	qsort(f->v + first, f->n - first, sizeof(*f->v), cmp_str);
	return 0;
}

static int store_report(size_t index, const char *path, int status, void *ud)
{
	(void)index;
	(void)ud;
	if (status < 0)
		fprintf(stderr, "%s store: %s: %s\n", progname, path, diana_error_message());
	return 0;
}

int cmd_store(int argc, char **argv)
{
	static const struct option longopts[] = { SESSION_LONGOPTS, { "quiet", no_argument, NULL, 'q' },
		                                      { NULL, 0, NULL, 0 } };
	diana_session_options o = DIANA_SESSION_OPTIONS_INIT;
	diana_transfer_stats st = DIANA_TRANSFER_STATS_INIT;
	diana_session *s = NULL;
	struct files f = { NULL, 0, 0 };
	int c, rc, quiet = 0, i;
	size_t k;

	optind = 1;
	while ((c = getopt_long(argc, argv, "hq", longopts, NULL)) != -1) {
		if (c == 'h') {
			store_help(stdout);
			return 0;
		}
		if (c == 'q') {
			quiet = 1;
			continue;
		}
		rc = session_option("store", c, optarg, &o);
		if (rc < 0)
			return EXIT_USAGE;
		if (rc == 0)
			return usage_error("store", "unknown option");
	}
	if (optind > argc - 2)
		return usage_error("store", "a URI and at least one FILE or DIR expected");
	for (i = optind + 1; i < argc; i++) {
		if (collect(&f, argv[i], 0) < 0) {
			rc = EXIT_FAIL;
			goto out;
		}
	}
	if (f.n == 0) {
		fprintf(stderr, "%s store: no files found\n", progname);
		rc = EXIT_FAIL;
		goto out;
	}
	if (open_session(&s, argv[optind], &o)) {
		rc = EXIT_FAIL;
		goto out;
	}
	rc = diana_session_store(s, (const char *const *)f.v, f.n, store_report, NULL, &st);
	if (rc < 0) {
		rc = fail("store");
	} else {
		rc = 0;
	}
	if (!quiet) {
		double sec = st.elapsed_ms / 1000.0;
		printf("%llu of %zu files stored, %u failed, %.1f MB in %.1f s (%.1f MB/s)\n",
		       (unsigned long long)st.instances, f.n, (unsigned)st.failed, st.bytes / 1e6, sec,
		       sec > 0 ? st.bytes / 1e6 / sec : 0.0);
	}
out:
	diana_session_free(s);
	for (k = 0; k < f.n; k++)
		free(f.v[k]);
	free(f.v);
	return rc;
}
