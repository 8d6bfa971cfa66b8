/*
 * diana - command-line front end of libdiana.
 * Uses only the public API (include/diana); one file per group of commands
 * (cmd_*.c), declared in cli.h.
 *
 * Exit status: 0 success, 1 usage error, 2 failure (one line on stderr).
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

const char *progname = "diana";

int fail(const char *what)
{
	const char *msg = diana_error_message();
	int code = diana_error_code();

	if (msg && *msg)
		fprintf(stderr, "%s: %s: %s\n", progname, what, msg);
	else
		fprintf(stderr, "%s: %s: %s\n", progname, what, diana_strerror(code));
	return EXIT_FAIL;
}

/*
 * Leave without running the libraries' exit-time destructors: GDCM frees
 * its whole data dictionary there (~7 ms, a tenth of a short run). Every
 * stdio stream is flushed first, and a failed flush is a failure. Under
 * AddressSanitizer the normal exit is kept, so that its leak check runs.
 */
#if defined(__SANITIZE_ADDRESS__)
#define DIANA_CLI_NORMAL_EXIT 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define DIANA_CLI_NORMAL_EXIT 1
#endif
#endif

static int quick_end(int rc)
{
	if (fflush(NULL) != 0 && rc == 0)
		rc = EXIT_FAIL;
#ifndef DIANA_CLI_NORMAL_EXIT
	_exit(rc);
#endif
	return rc;
}

int usage_error(const char *cmd, const char *msg)
{
	fprintf(stderr, "%s %s: %s\nTry '%s %s --help'.\n", progname, cmd, msg, progname, cmd);
	return EXIT_USAGE;
}

/* ---------------------------------------------------------- dispatch */

static void help_help(FILE *out);
static int cmd_help(int argc, char **argv);

static const command commands[] = {
	{ "anon", "de-identify DICOM files (PS3.15 profile, keyed pseudonyms)", cmd_anon, anon_help },
	{ "dose", "radiation dose reports (RDSR) to JSON events, JSONL or Splunk", cmd_dose, dose_help },
	{ "dump", "print a DICOM file's elements or its DICOM JSON", cmd_dump, dump_help },
	{ "echo", "check that a PACS, Orthanc, DICOMweb server or folder answers", cmd_echo, echo_help },
	{ "find", "query studies, series or instances (C-FIND, QIDO-RS, Orthanc)", cmd_find, find_help },
	{ "get", "retrieve a study, series or instance into a folder", cmd_get, get_help },
	{ "pull", "retrieve de-identified studies of a list of accession numbers (resumable)", cmd_pull, pull_help },
	{ "scan", "look for protected values in de-identified files", cmd_scan, scan_help },
	{ "store", "send DICOM files to a PACS, Orthanc, DICOMweb server or folder", cmd_store, store_help },
	{ "version", "print version information", cmd_version, version_help },
	{ "watch", "run a prospective pipeline: new studies -> filter -> model -> Slack/webhook/JSONL/SR", cmd_watch, watch_help },
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
	return quick_end(rc);
}
