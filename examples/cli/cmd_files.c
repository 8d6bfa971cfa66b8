/*
 * diana - the dump, version, anon and scan commands.
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

/* ---------------------------------------------------------------- dump */

void dump_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s dump [OPTIONS] FILE\n"
	        "\n"
	        "Print the elements of a DICOM file, sequences included.\n"
	        "\n"
	        "Options:\n"
	        "  --json         print DICOM JSON (PS3.18 Annex F) instead of a listing\n"
	        "  --compact      with --json: no indentation\n"
	        "  --bulk         with --json: include large binary values (pixel data) as base64\n"
	        "  --meta         include the file meta group (0002)\n"
	        "  --lenient      accept nonconformant files that can still be parsed\n"
	        "  --no-pixels    stop reading before Pixel Data (faster on large images)\n"
	        "  -h, --help     show this help\n"
	        "\n"
	        "Exit status: 0 ok, 1 usage error, 2 the file could not be read.\n",
	        progname);
}

struct listing {
	const diana_dataset *ds;
	FILE *out;
};

static int print_element(const diana_element *el, void *user_data)
{
	struct listing *l = user_data;
	char *value = NULL;
	int rc;

	fprintf(l->out, "%*s(%04X,%04X) %s ", el->depth * 2, "", (unsigned)(el->tag >> 16),
	        (unsigned)(el->tag & 0xFFFF), el->vr);
	if (strcmp(el->vr, "SQ") == 0) {
		fprintf(l->out, "%s (%u item%s)\n", *el->keyword ? el->keyword : "?", (unsigned)el->vm,
		        el->vm == 1 ? "" : "s");
		return 0;
	}
	rc = diana_dataset_get(l->ds, el->path, &value);
	if (rc == 0) {
		size_t n = strlen(value);
		fprintf(l->out, "%-32s [%.*s%s]\n", *el->keyword ? el->keyword : "?", n > 72 ? 72 : (int)n,
		        value, n > 72 ? "..." : "");
		diana_free(value);
	} else if (el->length == UINT64_MAX) {
		fprintf(l->out, "%-32s (encapsulated)\n", *el->keyword ? el->keyword : "?");
	} else {
		fprintf(l->out, "%-32s (%llu bytes)\n", *el->keyword ? el->keyword : "?",
		        (unsigned long long)el->length);
	}
	return 0;
}

int cmd_dump(int argc, char **argv)
{
	enum { OPT_JSON = 256, OPT_COMPACT, OPT_BULK, OPT_META, OPT_LENIENT, OPT_NO_PIXELS };
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, OPT_JSON },
		{ "compact", no_argument, NULL, OPT_COMPACT },
		{ "bulk", no_argument, NULL, OPT_BULK },
		{ "meta", no_argument, NULL, OPT_META },
		{ "lenient", no_argument, NULL, OPT_LENIENT },
		{ "no-pixels", no_argument, NULL, OPT_NO_PIXELS },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	diana_dataset_options opts = DIANA_DATASET_OPTIONS_INIT;
	diana_dataset *ds = NULL;
	int json = 0, compact = 0, bulk = 0, meta = 0, c, rc;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case OPT_JSON: json = 1; break;
		case OPT_COMPACT: compact = 1; break;
		case OPT_BULK: bulk = 1; break;
		case OPT_META: meta = 1; break;
		case OPT_LENIENT: opts.flags |= DIANA_OPEN_LENIENT; break;
		case OPT_NO_PIXELS: opts.flags |= DIANA_OPEN_SKIP_PIXELS; break;
		case 'h': dump_help(stdout); return 0;
		default: return usage_error("dump", "invalid option");
		}
	}
	if (optind != argc - 1)
		return usage_error("dump", "exactly one FILE is needed");

	rc = diana_dataset_open(&ds, argv[optind], &opts);
	if (rc < 0)
		return fail(argv[optind]);

	if (json) {
		char *text = NULL;
		uint32_t flags = 0;
		if (!compact)
			flags |= DIANA_JSON_PRETTY;
		if (!bulk)
			flags |= DIANA_JSON_NO_BULK;
		if (meta)
			flags |= DIANA_JSON_META;
		rc = diana_dataset_to_json(ds, flags, &text);
		if (rc < 0) {
			diana_dataset_free(ds);
			return fail(argv[optind]);
		}
		fputs(text, stdout);
		fputc('\n', stdout);
		diana_free(text);
	} else {
		struct listing l = { ds, stdout };
		rc = diana_dataset_foreach(ds, meta ? DIANA_FOREACH_META : 0, print_element, &l);
		if (rc < 0) {
			diana_dataset_free(ds);
			return fail(argv[optind]);
		}
	}
	diana_dataset_free(ds);
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: cannot write output\n", progname);
		return EXIT_FAIL;
	}
	return 0;
}

/* ------------------------------------------------------------- version */

void version_help(FILE *out)
{
	fprintf(out, "Usage: %s version\n\nPrint the versions of the program and of the loaded libdiana.\n",
	        progname);
}

int cmd_version(int argc, char **argv)
{
	int maj, min, pat;
	uint32_t f = diana_features();

	if (argc > 1 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
		version_help(stdout);
		return 0;
	}
	if (argc > 1)
		return usage_error("version", "no arguments expected");
	diana_version(&maj, &min, &pat);
	printf("diana %s (libdiana %d.%d.%d; features:%s%s%s)\n", DIANA_VERSION_STRING, maj, min, pat,
	       (f & DIANA_FEATURE_THREADS) ? " threads" : "", (f & DIANA_FEATURE_HTTPS) ? " https" : "",
	       (f & DIANA_FEATURE_ICONV) ? " charsets" : "");
	return 0;
}

/* ---------------------------------------------------------------- anon */

void anon_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s anon --secret-file FILE [OPTIONS] INPUT... -o OUTDIR\n"
	        "\n"
	        "De-identify DICOM files (PS3.15 Basic Application Level Confidentiality\n"
	        "Profile) into OUTDIR/<PatientID>/<StudyUID>/<SeriesUID>/<SOPInstanceUID>.dcm,\n"
	        "named by the new (pseudonymous) values. INPUT: files or folders (recursive).\n"
	        "Pseudonyms are keyed by the project secret: the same secret gives the same\n"
	        "pseudonyms in every run and on every machine.\n"
	        "\n"
	        "Options:\n"
	        "  --secret-file FILE  the project secret (>= 32 bytes, mode 0600); required\n"
	        "  --option NAME       a standard option (repeatable): retain-safe-private,\n"
	        "                      retain-uids, retain-device-identity,\n"
	        "                      retain-institution-identity, retain-patient-characteristics,\n"
	        "                      retain-long-full-dates, retain-long-modified-dates,\n"
	        "                      clean-descriptors, clean-structured-content, clean-graphics\n"
	        "  --date-shift-days N with retain-long-modified-dates: shifts in [-N, -1] days\n"
	        "                      (default 365)\n"
	        "  --key KEY.csv       append one row per study (originals -> pseudonyms)\n"
	        "  --map MAP.tsv       write one line per file: input path TAB output path\n"
	        "  -j, --jobs N        worker threads (default: the number of CPUs, at most 8)\n"
	        "  --sync-each         fsync every output before the next (default: one flush\n"
	        "                      of the output file system at the end of the run)\n"
	        "  --no-sync           do not flush at all: faster, but a crash or power loss\n"
	        "                      soon after the run can lose or truncate outputs\n"
	        "                      (scratch output, or when the caller syncs itself)\n"
	        "  -o, --output OUTDIR output folder (created if needed)\n"
	        "  -h, --help          show this help\n"
	        "\n"
	        "Files that are not valid DICOM are reported (path and reason) and skipped;\n"
	        "DICOMDIR files are skipped with a note. Every output appears atomically\n"
	        "(temporary name, then rename) and the run is durable when diana exits\n"
	        "(unless --no-sync).\n"
	        "Exit status: 0 ok, 1 usage error, 2 an input failed or the profile is invalid.\n",
	        progname);
}

struct anon_item {
	char *in;
	char *out;    /* output path, or NULL */
	int status;   /* 0 pending, 1 written, 2 failed, 3 skipped */
};

struct anon_run {
	diana_profile *profile;
	int sync_each; /* 1 --sync-each, -1 --no-sync, 0 one flush at the end */
	const char *outdir;
	struct anon_item *items;
	size_t n, cap, next;
	pthread_mutex_t lock;
};

static int anon_add(struct anon_run *r, const char *path)
{
	if (r->n == r->cap) {
		size_t cap = r->cap ? 2 * r->cap : 256;
		struct anon_item *p = realloc(r->items, cap * sizeof *p);
		if (!p)
			return -1;
		r->items = p;
		r->cap = cap;
	}
	r->items[r->n].in = strdup(path);
	r->items[r->n].out = NULL;
	r->items[r->n].status = 0;
	if (!r->items[r->n].in)
		return -1;
	r->n++;
	return 0;
}

static int anon_name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* files under `path`, recursively, in name order */
static int anon_collect(struct anon_run *r, const char *path)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	char **names = NULL;
	size_t n = 0, cap = 0;
	int rc = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s anon: %s: %s\n", progname, path, strerror(errno));
		return 1;
	}
	if (!S_ISDIR(st.st_mode))
		return anon_add(r, path) < 0 ? -1 : 0;
	if (!(d = opendir(path))) {
		fprintf(stderr, "%s anon: %s: %s\n", progname, path, strerror(errno));
		return 1;
	}
	while ((e = readdir(d))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (n == cap) {
			char **p = realloc(names, (cap = cap ? 2 * cap : 64) * sizeof *p);
			if (!p) {
				rc = -1;
				break;
			}
			names = p;
		}
		if (!(names[n] = malloc(strlen(path) + strlen(e->d_name) + 2))) {
			rc = -1;
			break;
		}
		sprintf(names[n++], "%s/%s", path, e->d_name);
	}
	closedir(d);
	if (rc == 0)
		qsort(names, n, sizeof *names, anon_name_cmp);
	for (size_t i = 0; i < n; i++) {
		if (rc >= 0) {
			int sub = anon_collect(r, names[i]);
			if (sub < 0)
				rc = -1;
			else if (sub > 0)
				rc = 1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int anon_mkdirs(char *path)
{
	for (char *p = path + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = 0;
		if (mkdir(path, 0700) < 0 && errno != EEXIST) {
			*p = '/';
			return -1;
		}
		*p = '/';
	}
	if (mkdir(path, 0700) < 0 && errno != EEXIST)
		return -1;
	return 0;
}

/* --sync-each: fsync each; default: start each output's writeback at once
 * and flush the file system at the end; --no-sync: neither */
static uint32_t anon_flags(const struct anon_run *r)
{
	if (r->sync_each > 0)
		return 0;
	return DIANA_ANON_NO_SYNC | (r->sync_each < 0 ? DIANA_ANON_NO_WRITEBACK : 0);
}

static void anon_one(struct anon_run *r, struct anon_item *it)
{
	char *out = NULL;
	int rc = diana_anonymize_into(r->profile, it->in, r->outdir, anon_flags(r),
	                              &out, NULL);

	if (rc < 0) {
		/* the message is thread-local: read it here, on the failing thread */
		pthread_mutex_lock(&r->lock);
		fprintf(stderr, "%s anon: %s: %s\n", progname, it->in,
		        *diana_error_message() ? diana_error_message() : diana_strerror(rc));
		pthread_mutex_unlock(&r->lock);
		it->status = 2;
	} else if (rc == 1) {
		pthread_mutex_lock(&r->lock);
		fprintf(stderr, "%s anon: %s: DICOMDIR skipped (a media directory, not an image)\n", progname,
		        it->in);
		pthread_mutex_unlock(&r->lock);
		it->status = 3;
	} else {
		it->out = out;
		it->status = 1;
	}
}

static void *anon_worker(void *arg)
{
	struct anon_run *r = arg;
	for (;;) {
		struct anon_item *it;
		pthread_mutex_lock(&r->lock);
		it = r->next < r->n ? &r->items[r->next++] : NULL;
		pthread_mutex_unlock(&r->lock);
		if (!it)
			return NULL;
		anon_one(r, it);
	}
}

/* the map, in input order, written atomically (temporary file + rename) */
static int anon_write_map(const struct anon_run *r, const char *path)
{
	size_t len = strlen(path) + 16;
	char *tmp = malloc(len);
	FILE *f;
	int ok = 1;

	if (!tmp)
		return -1;
	snprintf(tmp, len, "%s.tmp%ld", path, (long)getpid());
	f = fopen(tmp, "w");
	if (!f) {
		free(tmp);
		return -1;
	}
	for (size_t i = 0; i < r->n; i++)
		if (r->items[i].status == 1)
			fprintf(f, "%s\t%s\n", r->items[i].in, r->items[i].out);
	ok = fflush(f) == 0 && fsync(fileno(f)) == 0;
	ok = (fclose(f) == 0) && ok;
	if (ok && rename(tmp, path) < 0)
		ok = 0;
	if (!ok)
		unlink(tmp);
	free(tmp);
	return ok ? 0 : -1;
}

int cmd_anon(int argc, char **argv)
{
	enum { OPT_SECRET = 256, OPT_OPTION, OPT_KEY, OPT_MAP, OPT_SHIFT, OPT_SYNC_EACH, OPT_NO_SYNC };
	static const struct option longopts[] = {
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "option", required_argument, NULL, OPT_OPTION },
		{ "key", required_argument, NULL, OPT_KEY },
		{ "map", required_argument, NULL, OPT_MAP },
		{ "date-shift-days", required_argument, NULL, OPT_SHIFT },
		{ "sync-each", no_argument, NULL, OPT_SYNC_EACH },
		{ "no-sync", no_argument, NULL, OPT_NO_SYNC },
		{ "jobs", required_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
	struct anon_run r;
	const char *map = NULL;
	pthread_t *threads = NULL;
	long jobs = 0; /* 0: one per online CPU, at most 8 (files are independent) */
	size_t written = 0, failed = 0, skipped = 0;
	int c, rc, collect_failed = 0;
	char *end;

	memset(&r, 0, sizeof r);
	optind = 1;
	while ((c = getopt_long(argc, argv, "hj:o:", longopts, NULL)) != -1) {
		uint32_t bit;
		switch (c) {
		case OPT_SECRET: po.secret_file = optarg; break;
		case OPT_OPTION:
			if (diana_deid_option_from_name(optarg, &bit) < 0)
				return usage_error("anon", "unknown --option (see --help)");
			po.options |= bit;
			break;
		case OPT_KEY: po.key_file = optarg; break;
		case OPT_MAP: map = optarg; break;
		case OPT_SHIFT:
			errno = 0;
			po.date_shift_max_days = (int32_t)strtol(optarg, &end, 10);
			if (errno || *end || po.date_shift_max_days < 1 || po.date_shift_max_days > 36500)
				return usage_error("anon", "--date-shift-days takes 1..36500");
			break;
		case 'j':
			errno = 0;
			jobs = strtol(optarg, &end, 10);
			if (errno || *end || jobs < 1 || jobs > 256)
				return usage_error("anon", "-j takes 1..256");
			break;
		case OPT_SYNC_EACH:
			if (r.sync_each < 0)
				return usage_error("anon", "--sync-each and --no-sync exclude each other");
			r.sync_each = 1;
			break;
		case OPT_NO_SYNC:
			if (r.sync_each > 0)
				return usage_error("anon", "--sync-each and --no-sync exclude each other");
			r.sync_each = -1;
			break;
		case 'o': r.outdir = optarg; break;
		case 'h': anon_help(stdout); return 0;
		default: return usage_error("anon", "invalid option");
		}
	}
	if (!po.secret_file)
		return usage_error("anon", "--secret-file is required (there is no default secret)");
	if (!r.outdir)
		return usage_error("anon", "-o OUTDIR is required");
	if (optind >= argc)
		return usage_error("anon", "at least one INPUT is needed");

	if (diana_profile_new(&r.profile, &po) < 0)
		return fail("profile");
	for (int i = optind; i < argc; i++) {
		int sub = anon_collect(&r, argv[i]);
		if (sub < 0) {
			fprintf(stderr, "%s anon: out of memory\n", progname);
			rc = EXIT_FAIL;
			goto out;
		}
		collect_failed |= sub;
	}
	{
		char *o = strdup(r.outdir);
		if (!o || anon_mkdirs(o) < 0) {
			fprintf(stderr, "%s anon: %s: cannot create the output folder: %s\n", progname, r.outdir,
			        strerror(errno));
			free(o);
			rc = EXIT_FAIL;
			goto out;
		}
		free(o);
	}

	pthread_mutex_init(&r.lock, NULL);
	if (jobs == 0) {
		long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
		jobs = ncpu < 1 ? 1 : ncpu > 8 ? 8 : ncpu;
	}
	if ((size_t)jobs > r.n)
		jobs = r.n ? (long)r.n : 1;
	threads = calloc((size_t)jobs, sizeof *threads);
	if (!threads) {
		rc = EXIT_FAIL;
		goto out_lock;
	}
	for (long i = 1; i < jobs; i++) {
		if (pthread_create(&threads[i], NULL, anon_worker, &r) != 0) {
			jobs = i;
			break;
		}
	}
	anon_worker(&r);
	for (long i = 1; i < jobs; i++)
		pthread_join(threads[i], NULL);

	/* one flush for the whole run (each output was renamed into place whole) */
	if (r.sync_each == 0 && diana_anonymize_sync(r.outdir) < 0) {
		fprintf(stderr, "%s anon: %s: %s\n", progname, r.outdir, diana_error_message());
		collect_failed = 1;
	}
	for (size_t i = 0; i < r.n; i++) {
		written += r.items[i].status == 1;
		failed += r.items[i].status == 2;
		skipped += r.items[i].status == 3;
	}
	rc = (failed || collect_failed) ? EXIT_FAIL : 0;
	if (map && anon_write_map(&r, map) < 0) {
		fprintf(stderr, "%s anon: %s: cannot write the map: %s\n", progname, map, strerror(errno));
		rc = EXIT_FAIL;
	}
	printf("%zu written, %zu failed, %zu skipped\n", written, failed + (size_t)collect_failed, skipped);
	if (fflush(stdout) != 0)
		rc = EXIT_FAIL;
out_lock:
	pthread_mutex_destroy(&r.lock);
out:
	free(threads);
	for (size_t i = 0; i < r.n; i++) {
		free(r.items[i].in);
		free(r.items[i].out);
	}
	free(r.items);
	diana_profile_free(r.profile);
	return rc;
}

/* ---------------------------------------------------------------- scan */

void scan_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s scan [--key KEY.csv] [--value V]... [--original FILE_OR_DIR]...\n"
	        "               [--option NAME]... [--secret-file FILE] [-j N] OUTPUT...\n"
	        "\n"
	        "Look for protected values (the originals' names, IDs, dates, UIDs, addresses...)\n"
	        "in de-identified outputs: file and folder names, the preamble, the file meta and\n"
	        "every element at any depth (decoded text and raw bytes), never pixel data.\n"
	        "OUTPUT: files or folders (searched recursively).\n"
	        "\n"
	        "Options:\n"
	        "  --key KEY.csv           protect the Original* columns of a key file\n"
	        "  --value V               protect one value (at least 3 bytes; a person name\n"
	        "                          as Family^Given is also searched word by word)\n"
	        "  --original FILE_OR_DIR  protect every value the profile changes in these\n"
	        "                          original files (folders: recursively)\n"
	        "  --option NAME           the outputs were made with this option of diana anon\n"
	        "                          (repeatable, same names): the values it retains on\n"
	        "                          purpose are not protected from --original and --key\n"
	        "  --secret-file FILE      the outputs' project secret: the sham name diana anon\n"
	        "                          writes for each protected person name is known as\n"
	        "                          its own (a sham can share a word with a real name)\n"
	        "  -j, --jobs N            scan with N threads (default 1; same report)\n"
	        "  -h, --help              show this help\n"
	        "\n"
	        "Prints one line per finding, PATH: WHERE: KIND (never the value), and\n"
	        "PATH: unreadable: REASON for a file that cannot be scanned, in path order.\n"
	        "Exit status: 0 nothing found, 1 usage error, 2 a leak or an unreadable file.\n",
	        progname);
}

typedef struct path_list {
	char **v;
	size_t n, cap;
} path_list;

static int path_list_add(path_list *l, const char *p)
{
	char *copy;
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 64;
		char **v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return -1;
		l->v = v;
		l->cap = cap;
	}
	copy = strdup(p);
	if (!copy)
		return -1;
	l->v[l->n++] = copy;
	return 0;
}

static void path_list_free(path_list *l)
{
	size_t i;
	for (i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Files under `path` (itself when a file), sorted; symbolic links to folders are not followed. */
static int collect_files(const char *path, path_list *out)
{
	struct stat st;
	DIR *d;
	struct dirent *e;
	path_list names = { NULL, 0, 0 };
	size_t i;
	int rc = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "%s scan: %s: %s\n", progname, path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return path_list_add(out, path);
	d = opendir(path);
	if (!d) {
		fprintf(stderr, "%s scan: %s: %s\n", progname, path, strerror(errno));
		return -1;
	}
	while ((e = readdir(d)) != NULL) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		if (path_list_add(&names, e->d_name) < 0) {
			rc = -1;
			break;
		}
	}
	closedir(d);
	if (names.n)
		qsort(names.v, names.n, sizeof *names.v, cmp_str);
	for (i = 0; rc == 0 && i < names.n; i++) {
		size_t len = strlen(path) + strlen(names.v[i]) + 2;
		char *child = malloc(len);
		struct stat lst;
		if (!child) {
			rc = -1;
			break;
		}
		snprintf(child, len, "%s%s%s", path, path[strlen(path) - 1] == '/' ? "" : "/", names.v[i]);
		if (lstat(child, &lst) == 0 && S_ISLNK(lst.st_mode) && stat(child, &st) == 0 && S_ISDIR(st.st_mode))
			fprintf(stderr, "%s scan: %s: symbolic link to a folder not followed\n", progname, child);
		else
			rc = collect_files(child, out);
		free(child);
	}
	path_list_free(&names);
	return rc;
}

/*
 * Print the findings of a scanner report, [{"where":"...","kind":"..."}...]:
 * libdiana writes both fields as plain strings without escapes.
 */
static size_t print_findings(const char *path, const char *report)
{
	const char *p = report;
	size_t n = 0;

	while ((p = strstr(p, "\"where\":\"")) != NULL) {
		const char *w = p + 9, *we = strchr(w, '"'), *k, *ke;
		if (!we)
			break;
		k = strstr(we, "\"kind\":\"");
		if (!k)
			break;
		k += 8;
		ke = strchr(k, '"');
		if (!ke)
			break;
		printf("%s: %.*s: %.*s\n", path, (int)(we - w), w, (int)(ke - k), k);
		n++;
		p = ke;
	}
	return n;
}

/* one output file's result, printed in path order once all are scanned */
struct scan_item {
	int rc;
	char *report;  /* findings (DIANA_ELEAK) */
	char *message; /* the error message otherwise */
};

struct scan_run {
	const diana_scanner *sc;
	const path_list *outputs;
	struct scan_item *items;
	size_t next;
	pthread_mutex_t lock;
};

static void *scan_worker(void *arg)
{
	struct scan_run *r = arg;
	for (;;) {
		struct scan_item *it;
		size_t i;
		pthread_mutex_lock(&r->lock);
		i = r->next < r->outputs->n ? r->next++ : SIZE_MAX;
		pthread_mutex_unlock(&r->lock);
		if (i == SIZE_MAX)
			return NULL;
		it = &r->items[i];
		it->rc = diana_scanner_scan_file(r->sc, r->outputs->v[i], &it->report);
		if (it->rc == 0) { /* clean: nothing to keep */
			diana_free(it->report);
			it->report = NULL;
		}
		/* the message is thread-local: keep it from this thread */
		if (it->rc < 0 && it->rc != DIANA_ELEAK)
			it->message = strdup(*diana_error_message() ? diana_error_message() : diana_strerror(it->rc));
	}
}

int cmd_scan(int argc, char **argv)
{
	enum { OPT_KEY = 256, OPT_VALUE, OPT_ORIGINAL, OPT_OPTION, OPT_SECRET };
	static const struct option longopts[] = {
		{ "key", required_argument, NULL, OPT_KEY },
		{ "secret-file", required_argument, NULL, OPT_SECRET },
		{ "value", required_argument, NULL, OPT_VALUE },
		{ "original", required_argument, NULL, OPT_ORIGINAL },
		{ "option", required_argument, NULL, OPT_OPTION },
		{ "jobs", required_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	diana_dataset_options opts = DIANA_DATASET_OPTIONS_INIT;
	diana_scanner *sc = NULL;
	path_list originals = { NULL, 0, 0 }, outputs = { NULL, 0, 0 };
	path_list keys = { NULL, 0, 0 }, values = { NULL, 0, 0 };
	struct scan_run run;
	pthread_t *threads = NULL;
	size_t i, nleak = 0, nbad = 0;
	uint32_t options = 0;
	long jobs = 1;
	char *end;
	const char *secret_file = NULL;
	diana_profile *profile = NULL;
	int c, rc, status = EXIT_FAIL, sources = 0;

	memset(&run, 0, sizeof run);
	if (diana_scanner_new(&sc) < 0)
		return fail("scan");
	opts.flags = DIANA_OPEN_LENIENT;
	optind = 1;
	/* first the whole command line: the options decide what the sources protect */
	while ((c = getopt_long(argc, argv, "hj:", longopts, NULL)) != -1) {
		uint32_t bit;
		switch (c) {
		case OPT_KEY:
			sources++;
			if (path_list_add(&keys, optarg) < 0)
				goto oom;
			break;
		case OPT_VALUE:
			sources++;
			if (path_list_add(&values, optarg) < 0)
				goto oom;
			break;
		case OPT_ORIGINAL:
			sources++;
			if (collect_files(optarg, &originals) < 0)
				goto out;
			break;
		case OPT_OPTION:
			if (diana_deid_option_from_name(optarg, &bit) < 0) {
				status = usage_error("scan", "unknown --option (the names of diana anon --option)");
				goto out;
			}
			options |= bit;
			break;
		case OPT_SECRET:
			secret_file = optarg;
			break;
		case 'j':
			errno = 0;
			jobs = strtol(optarg, &end, 10);
			if (errno || *end || jobs < 1 || jobs > 256) {
				status = usage_error("scan", "-j takes 1..256");
				goto out;
			}
			break;
		case 'h':
			scan_help(stdout);
			status = 0;
			goto out;
		default:
			status = usage_error("scan", "invalid option");
			goto out;
		}
	}
	if (!sources) {
		status = usage_error("scan", "nothing to look for: give --key, --value or --original");
		goto out;
	}
	if (optind >= argc) {
		status = usage_error("scan", "at least one OUTPUT is needed");
		goto out;
	}
	if (secret_file) {
		/* the outputs' profile: options and secret (overrides are not on the command line) */
		diana_profile_options po = DIANA_PROFILE_OPTIONS_INIT;
		po.secret_file = secret_file;
		po.options = options;
		if (diana_profile_new(&profile, &po) < 0) {
			status = fail("--secret-file");
			goto out;
		}
		if (diana_scanner_set_profile(sc, profile) < 0) {
			status = fail("scan");
			goto out;
		}
	} else if (diana_scanner_set_options(sc, options) < 0) {
		fprintf(stderr, "%s scan: --option: %s\n", progname, diana_error_message());
		status = EXIT_USAGE;
		goto out;
	}
	for (i = 0; i < keys.n; i++) {
		if (diana_scanner_add_key_file(sc, keys.v[i]) < 0) {
			status = fail(keys.v[i]);
			goto out;
		}
	}
	for (i = 0; i < values.n; i++) {
		if (diana_scanner_add_value(sc, values.v[i]) < 0) {
			/* never echo the value */
			fprintf(stderr, "%s scan: --value: %s\n", progname, diana_error_message());
			status = EXIT_USAGE;
			goto out;
		}
	}
	for (i = 0; i < originals.n; i++) {
		diana_dataset *ds = NULL;
		if (diana_dataset_open(&ds, originals.v[i], &opts) < 0) {
			/* not an image the engine could have de-identified */
			fprintf(stderr, "%s scan: note: original %s not used: %s\n", progname, originals.v[i],
			        diana_error_message());
			continue;
		}
		rc = diana_scanner_add_dataset(sc, ds);
		diana_dataset_free(ds);
		if (rc < 0) {
			status = fail(originals.v[i]);
			goto out;
		}
	}
	for (; optind < argc; optind++) {
		if (collect_files(argv[optind], &outputs) < 0) {
			nbad++;
			printf("%s: unreadable: cannot list\n", argv[optind]);
		}
	}

	/* scan (the filled scanner is shared by the threads), then report in path order */
	run.sc = sc;
	run.outputs = &outputs;
	if (outputs.n && !(run.items = calloc(outputs.n, sizeof *run.items)))
		goto oom;
	if ((size_t)jobs > outputs.n)
		jobs = outputs.n ? (long)outputs.n : 1;
	if (!(threads = calloc((size_t)jobs, sizeof *threads)))
		goto oom;
	pthread_mutex_init(&run.lock, NULL);
	for (long t = 1; t < jobs; t++) {
		if (pthread_create(&threads[t], NULL, scan_worker, &run) != 0) {
			jobs = t;
			break;
		}
	}
	scan_worker(&run);
	for (long t = 1; t < jobs; t++)
		pthread_join(threads[t], NULL);
	pthread_mutex_destroy(&run.lock);

	for (i = 0; i < outputs.n; i++) {
		struct scan_item *it = &run.items[i];
		if (it->rc == DIANA_ELEAK) {
			nleak++;
			if (!it->report || print_findings(outputs.v[i], it->report) == 0)
				printf("%s: protected data\n", outputs.v[i]);
		} else if (it->rc == DIANA_EINVAL) {
			/* the scanner holds nothing to look for: never report "clean" */
			fprintf(stderr, "%s scan: %s\n", progname, it->message ? it->message : "invalid scanner");
			status = EXIT_FAIL;
			goto out;
		} else if (it->rc < 0) {
			nbad++;
			printf("%s: unreadable: %s\n", outputs.v[i], it->message ? it->message : "out of memory");
		}
	}
	if (fflush(stdout) != 0) {
		fprintf(stderr, "%s: cannot write output\n", progname);
		goto out;
	}
	fprintf(stderr, "%s scan: %zu file%s, %zu with protected data, %zu unreadable\n", progname,
	        outputs.n, outputs.n == 1 ? "" : "s", nleak, nbad);
	status = (nleak || nbad) ? EXIT_FAIL : 0;
	goto out;
oom:
	fprintf(stderr, "%s scan: out of memory\n", progname);
	status = EXIT_FAIL;
out:
	if (run.items) {
		for (i = 0; i < outputs.n; i++) {
			diana_free(run.items[i].report);
			free(run.items[i].message);
		}
		free(run.items);
	}
	free(threads);
	path_list_free(&keys);
	path_list_free(&values);
	path_list_free(&originals);
	path_list_free(&outputs);
	diana_scanner_free(sc);
	diana_profile_free(profile);
	return status;
}
