/*
 * diana - the echo, find, get and store commands (sessions).
 * SPDX-License-Identifier: MIT
 */
#include "cli.h"

#define PLACEHOLDER(name) \
	void name##_help(FILE *out) { fprintf(out, "Usage: %s " #name " URI\n\n(in progress)\n", progname); } \
	int cmd_##name(int argc, char **argv) { (void)argc; (void)argv; \
		fprintf(stderr, "%s " #name ": not built yet\n", progname); return EXIT_FAIL; }
PLACEHOLDER(echo)
PLACEHOLDER(find)
PLACEHOLDER(get)
PLACEHOLDER(store)
