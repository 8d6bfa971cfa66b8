/*
 * diana - the dose command: Radiation Dose Structured Reports to JSON, a
 * JSON Lines file and/or a Splunk HTTP Event Collector.
 * SPDX-License-Identifier: MIT
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli.h"

void dose_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s dose [OPTIONS] FILE|DIR...\n"
	        "\n"
	        "Read radiation dose structured reports (CT, projection X-ray, radiopharmaceutical)\n"
	        "and print one JSON document per report: the report's identification, one flat\n"
	        "object per irradiation event and the accumulated totals (see doc/dose.md).\n"
	        "Folders are read recursively; DICOM objects in them that are not dose reports\n"
	        "are skipped (files that are not DICOM are failures). Without --jsonl or\n"
	        "--splunk the documents go to stdout, one per line.\n"
	        "\n"
	        "Options:\n"
	        "  --jsonl OUT          append one line per report to OUT (created 0600), fsync'd at the end\n"
	        "  --splunk URL         send the reports to the Splunk HTTP Event Collector at URL\n"
	        "                       (e.g. https://splunk:8088), batched, retried with backoff\n"
	        "  --token-file F       file holding the HEC token (required with --splunk)\n"
	        "  --index NAME         Splunk index (required with --splunk)\n"
	        "  --sourcetype S       Splunk sourcetype (default diana:dose)\n"
	        "  --host NAME          Splunk host field (default: this machine's name)\n"
	        "  --ca-file F          CA bundle to verify the HEC server with (TLS is always verified)\n"
	        "  --secret-file F      pseudonymize accession number, patient ID, UIDs and dates with\n"
	        "                       this project secret, as 'diana anon' does for the images\n"
	        "  --option NAME        with --secret-file: a de-identification option (repeatable,\n"
	        "                       as for 'diana anon'; clean-structured-content is always on)\n"
	        "  --pretty             indent the JSON printed on stdout\n"
	        "  -h, --help           show this help\n"
	        "\n"
	        "Exit status: 0 ok, 1 usage error, 2 a file could not be read or delivery failed\n"
	        "(one line per problem on stderr, naming the file).\n",
	        progname);
}

typedef struct dose_files {
	char **v;
	size_t n, cap;
} dose_files;

static int files_add(dose_files *l, const char *p)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof(*v));
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	if (!(l->v[l->n] = strdup(p)))
		return -1;
	l->n++;
	return 0;
}

static int cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* regular files below `dir`, sorted, hidden entries skipped; 1 on a read error */
static int walk_dir(const char *dir, dose_files *l)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	dose_files here = { 0 };
	int bad = 0;
	size_t i;

	if (!d) {
		fprintf(stderr, "%s dose: %s: %s\n", progname, dir, strerror(errno));
		return 1;
	}
	while ((e = readdir(d)) != NULL) {
		char *p;
		if (e->d_name[0] == '.')
			continue;
		if (asprintf(&p, "%s/%s", dir, e->d_name) < 0 || files_add(&here, p) < 0) {
			closedir(d);
			return -1;
		}
		free(p);
	}
	closedir(d);
	qsort(here.v, here.n, sizeof(char *), cmp_names);
	for (i = 0; i < here.n; i++) {
		struct stat st;
		if (stat(here.v[i], &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			int rc = walk_dir(here.v[i], l);
			if (rc < 0)
				bad = -1;
			else
				bad |= rc;
		} else if (S_ISREG(st.st_mode) && bad >= 0 && files_add(l, here.v[i]) < 0) {
			bad = -1;
		}
	}
	for (i = 0; i < here.n; i++)
		free(here.v[i]);
	free(here.v);
	return bad;
}

static void files_free(dose_files *l)
{
	size_t i;
	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

int cmd_dose(int argc, char **argv)
{
	enum { OPT_JSONL = 256, OPT_SPLUNK, OPT_TOKEN, OPT_INDEX, OPT_SOURCETYPE, OPT_HOST, OPT_CA,
	       OPT_SECRET, OPT_OPTION, OPT_PRETTY };
	static const struct option longopts[] = {
		{ "jsonl", required_argument, NULL, OPT_JSONL },
		{ "splunk", required_argument, NULL, OPT_SPLUNK },
		{ "token-file", required_argument, NULL, OPT_TOKEN },
		{ "index", required_argument, NULL, OPT_INDEX },
		{ "sourcetype", required_argument, NULL, OPT_SOURCETYPE },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "ca-file", required_argument, NULL, OPT_CA },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "option", required_argument, NULL, OPT_OPTION },
		{ "pretty", no_argument, NULL, OPT_PRETTY },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	diana_dose_hec_options ho = DIANA_DOSE_HEC_OPTIONS_INIT;
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	diana_dose_options dopts = DIANA_DOSE_OPTIONS_INIT;
	diana_dose_sink *jsonl = NULL, *hec = NULL;
	const char *jsonl_path = NULL;
	dose_files files = { 0 };
	size_t done = 0, skipped = 0, failed = 0, i;
	int c, rc = 0, pretty = 0, have_options = 0;
	unsigned char *is_dir = NULL;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		uint32_t bit;
		switch (c) {
		case OPT_JSONL: jsonl_path = optarg; break;
		case OPT_SPLUNK: ho.url = optarg; break;
		case OPT_TOKEN: ho.token_file = optarg; break;
		case OPT_INDEX: ho.index = optarg; break;
		case OPT_SOURCETYPE: ho.sourcetype = optarg; break;
		case OPT_HOST: ho.host = optarg; break;
		case OPT_CA: ho.ca_file = optarg; break;
		case OPT_SECRET: po.secret_file = optarg; break;
		case OPT_OPTION:
			if (diana_deid_option_from_name(optarg, &bit) < 0)
				return usage_error("dose", "unknown --option (see 'diana anon --help')");
			po.options |= bit;
			have_options = 1;
			break;
		case OPT_PRETTY: pretty = 1; break;
		case 'h': dose_help(stdout); return 0;
		default: return usage_error("dose", "invalid option");
		}
	}
	if (optind >= argc)
		return usage_error("dose", "at least one FILE or DIR is needed");
	if (ho.url && (!ho.token_file || !ho.index))
		return usage_error("dose", "--splunk needs --token-file and --index");
	if (!ho.url && (ho.token_file || ho.index || ho.sourcetype || ho.host || ho.ca_file))
		return usage_error("dose", "--token-file, --index, --sourcetype, --host and --ca-file go with --splunk");
	if (have_options && !po.secret_file)
		return usage_error("dose", "--option goes with --secret-file");

	if (po.secret_file) {
		if (!(po.options & (DIANA_DEID_RETAIN_LONG_MODIFIED_DATES | DIANA_DEID_RETAIN_LONG_FULL_DATES)))
			fprintf(stderr,
			        "%s dose: warning: without --option retain-long-modified-dates (or\n"
			        "retain-long-full-dates) the profile removes the dates: no study or event times\n",
			        progname);
		po.options |= DIANA_DEID_CLEAN_STRUCTURED_CONTENT;
		if (diana_profile_new(&dopts.profile, &po) < 0)
			return fail("profile");
	}
	if (pretty && !jsonl_path && !ho.url)
		dopts.flags |= DIANA_DOSE_PRETTY;
	if (jsonl_path && diana_dose_sink_new_jsonl(&jsonl, jsonl_path) < 0) {
		rc = fail(jsonl_path);
		goto out;
	}
	if (ho.url && diana_dose_sink_new_hec(&hec, &ho) < 0) {
		rc = fail("splunk");
		goto out;
	}

	for (int a = optind; a < argc; a++) {
		struct stat st;
		size_t before = files.n;
		int w = 0, dir = stat(argv[a], &st) == 0 && S_ISDIR(st.st_mode);
		unsigned char *m;
		if (dir)
			w = walk_dir(argv[a], &files);
		else if (files_add(&files, argv[a]) < 0)
			w = -1;
		m = w < 0 ? NULL : realloc(is_dir, files.n ? files.n : 1);
		if (!m) {
			fprintf(stderr, "%s dose: out of memory\n", progname);
			rc = EXIT_FAIL;
			goto out;
		}
		is_dir = m;
		failed += (size_t)w;
		/* objects found in a folder that are not dose reports are skipped */
		for (i = before; i < files.n; i++)
			is_dir[i] = (unsigned char)dir;
	}

	for (i = 0; i < files.n; i++) {
		char *json = NULL;
		int r = diana_dose_from_file(&json, files.v[i], &dopts);
		if (r < 0) {
			if (is_dir[i] && r == DIANA_EUNSUPPORTED) {
				/* a folder holds images and other objects too; a
			 * malformed file is still a failure */
				skipped++;
				continue;
			}
			fail(files.v[i]);
			failed++;
			continue;
		}
		if (!jsonl && !hec) {
			fputs(json, stdout);
			fputc('\n', stdout);
		}
		if (jsonl && diana_dose_sink_add(jsonl, json) < 0) {
			rc = fail(jsonl_path);
			diana_free(json);
			goto out;
		}
		if (hec && diana_dose_sink_add(hec, json) < 0) {
			rc = fail("splunk");
			diana_free(json);
			goto out;
		}
		diana_free(json);
		done++;
	}
	if (jsonl && diana_dose_sink_flush(jsonl) < 0) {
		rc = fail(jsonl_path);
		goto out;
	}
	if (hec && diana_dose_sink_flush(hec) < 0) {
		rc = fail("splunk");
		goto out;
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s dose: stdout: %s\n", progname, strerror(errno));
		rc = EXIT_FAIL;
		goto out;
	}
	if (jsonl || hec || skipped)
		fprintf(stderr, "%s dose: %zu report%s%s%s, %zu skipped (not dose reports), %zu failed\n", progname,
		        done, done == 1 ? "" : "s", jsonl ? " written" : "", hec ? " sent" : "", skipped, failed);
	rc = failed ? EXIT_FAIL : 0;
out:
	diana_dose_sink_free(jsonl);
	diana_dose_sink_free(hec);
	diana_profile_free(dopts.profile);
	files_free(&files);
	free(is_dir);
	return rc;
}
