/*
 * diana - the dose command (radiation dose structured reports).
 * SPDX-License-Identifier: MIT
 */
#include "cli.h"

void dose_help(FILE *out)
{
	fprintf(out, "Usage: %s dose FILE|DIR...\n\n(in progress)\n", progname);
}

int cmd_dose(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "%s dose: not built yet\n", progname);
	return EXIT_FAIL;
}
