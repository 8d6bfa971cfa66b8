/*
 * diana - command-line front end of libdiana.
 * Uses only the public API (include/diana).
 *
 * Exit status: 0 success, 1 usage error, 2 failure (one line on stderr).
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <diana/diana.h>

#define EXIT_USAGE 1
#define EXIT_FAIL 2

typedef struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*help)(FILE *out);
} command;

static const char *progname = "diana";

static int fail(const char *what)
{
	const char *msg = diana_error_message();
	int code = diana_error_code();

	if (msg && *msg)
		fprintf(stderr, "%s: %s: %s\n", progname, what, msg);
	else
		fprintf(stderr, "%s: %s: %s\n", progname, what, diana_strerror(code));
	return EXIT_FAIL;
}

static int usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "%s %s: %s\nTry '%s %s --help'.\n", progname, cmd, msg, progname, cmd);
	return EXIT_USAGE;
}

/* ---------------------------------------------------------------- dump */

static void dump_help(FILE *out)
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

static int cmd_dump(int argc, char **argv)
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

static void version_help(FILE *out)
{
	fprintf(out, "Usage: %s version\n\nPrint the versions of the program and of the loaded libdiana.\n",
	        progname);
}

static int cmd_version(int argc, char **argv)
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

/* ---------------------------------------------------------- dispatch */

static void help_help(FILE *out);
static int cmd_help(int argc, char **argv);

static const command commands[] = {
	{ "dump", "print a DICOM file's elements or its DICOM JSON", cmd_dump, dump_help },
	{ "version", "print version information", cmd_version, version_help },
	{ "help", "show help for a command", cmd_help, help_help },
};
#define NCOMMANDS (sizeof(commands) / sizeof(commands[0]))

static void main_help(FILE *out)
{
	size_t i;

	fprintf(out,
	        "Usage: %s [--version] [--help] COMMAND [ARGS]\n"
	        "\n"
	        "DICOM Image ANalysis and Archive: retrieval, de-identification, pipelines.\n"
	        "\n"
	        "Commands:\n",
	        progname);
	for (i = 0; i < NCOMMANDS; i++)
		fprintf(out, "  %-10s %s\n", commands[i].name, commands[i].summary);
	fprintf(out,
	        "\n"
	        "Run '%s COMMAND --help' for a command's options.\n"
	        "Exit status: 0 ok, 1 usage error, 2 failure.\n"
	        "Set DIANA_DEBUG=1 to see libdiana's debug log on stderr.\n",
	        progname);
}

static const command *find_command(const char *name)
{
	size_t i;
	for (i = 0; i < NCOMMANDS; i++) {
		if (strcmp(commands[i].name, name) == 0)
			return &commands[i];
	}
	return NULL;
}

static void help_help(FILE *out)
{
	fprintf(out, "Usage: %s help [COMMAND]\n\nShow help for COMMAND, or list the commands.\n",
	        progname);
}

static int cmd_help(int argc, char **argv)
{
	const command *c;

	if (argc < 2) {
		main_help(stdout);
		return 0;
	}
	if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
		help_help(stdout);
		return 0;
	}
	if (argc > 2)
		return usage_error("help", "at most one COMMAND");
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'\n", progname, argv[1]);
		return EXIT_USAGE;
	}
	c->help(stdout);
	return 0;
}

int main(int argc, char **argv)
{
	const command *c;
	int rc;

	if (argc < 2) {
		main_help(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		main_help(stdout);
		return 0;
	}
	if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "-V") == 0)
		return cmd_version(1, argv + 1);
	c = find_command(argv[1]);
	if (!c) {
		fprintf(stderr, "%s: unknown command '%s'\nTry '%s --help'.\n", progname, argv[1], progname);
		return EXIT_USAGE;
	}
	if (diana_init() < 0)
		return fail("initialisation");
	rc = c->run(argc - 1, argv + 1);
	diana_shutdown();
	return rc;
}
