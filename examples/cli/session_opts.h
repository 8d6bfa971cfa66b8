/*
 * diana - the session options shared by the commands that open a session
 * (echo, find, get, store in cmd_session.c; pull in cmd_pull.c).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_CLI_SESSION_OPTS_H
#define DIANA_CLI_SESSION_OPTS_H

#include <getopt.h>

#include "cli.h"

/* Help text of the options (SESSION_OPTIONS_HELP = all of them, with the URI forms). */
#define SESSION_OPTIONS_HELP_HEAD                                                                \
	"Session options:\n"                                                                         \
	"  --timeout SECONDS       HTTP: whole request; DIMSE: longest silence of the peer\n"         \
	"  --connect-timeout SECONDS  connect / associate (default 10)\n"
#define SESSION_OPTIONS_HELP_RETRIES                                                             \
	"  --retries N             HTTP retries on connection errors and 5xx (default 3)\n"
#define SESSION_OPTIONS_HELP_TAIL                                                                \
	"  --netrc FILE            credentials from a .netrc file\n"                                  \
	"  --ca-file FILE          CA bundle for TLS verification\n"                                  \
	"  --insecure              do not verify TLS certificates\n"                                  \
	"  --aet AET               our AE title for dicom:// (default DIANA)\n"                       \
	"  --local-port PORT       dicom://: C-MOVE to our storage SCP on PORT (default: C-GET)\n"  \
	"\n"                                                                                         \
	"URI forms:\n"                                                                               \
	"  orthanc+http://[user:pass@]host:port[?modality=NAME]\n"                                    \
	"  dicom://CALLED_AET@host:port[?aet=CALLING_AET&port=LOCAL_PORT]\n"                          \
	"  dicomweb+http://[user:pass@]host:port/path\n"                                              \
	"  file:///dir or a plain folder path\n"
#define SESSION_OPTIONS_HELP SESSION_OPTIONS_HELP_HEAD SESSION_OPTIONS_HELP_RETRIES SESSION_OPTIONS_HELP_TAIL

/* getopt_long values of the session options; a command's own options start at OPT_SESSION_END. */
enum {
	OPT_TIMEOUT = 1000,
	OPT_CONNECT_TIMEOUT,
	OPT_RETRIES,
	OPT_NETRC,
	OPT_CA_FILE,
	OPT_INSECURE,
	OPT_AET,
	OPT_LOCAL_PORT,
	OPT_SESSION_END
};

/* The long options without --retries (a command may name that one differently), and with it. */
#define SESSION_LONGOPTS_NO_RETRIES                                             \
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },                        \
	    { "connect-timeout", required_argument, NULL, OPT_CONNECT_TIMEOUT },    \
	    { "netrc", required_argument, NULL, OPT_NETRC },                        \
	    { "ca-file", required_argument, NULL, OPT_CA_FILE },                    \
	    { "insecure", no_argument, NULL, OPT_INSECURE },                        \
	    { "aet", required_argument, NULL, OPT_AET },                            \
	    { "local-port", required_argument, NULL, OPT_LOCAL_PORT },              \
	    { "help", no_argument, NULL, 'h' }
#define SESSION_LONGOPTS SESSION_LONGOPTS_NO_RETRIES, { "retries", required_argument, NULL, OPT_RETRIES }

/* Handle a session option of command `cmd`: 1 handled, 0 not a session option, -1 usage error (printed). */
int session_option(const char *cmd, int c, const char *arg, diana_session_options *o);

/* diana_session_open(); on failure prints the error and returns -1. */
int open_session(diana_session **s, const char *uri, const diana_session_options *o);

#endif
