/*
 * diana - the session options shared by the commands that open a session.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "session_opts.h"

static int parse_seconds(const char *cmd, const char *v, int64_t *ms)
{
	char *end;
	double d;
	errno = 0;
	d = strtod(v, &end);
	if (*end || end == v || errno || d <= 0 || d > 86400 * 7) {
		usage_error(cmd, "a timeout must be a positive number of seconds");
		return -1;
	}
	*ms = (int64_t)(d * 1000 + 0.5);
	return 0;
}

int session_option(const char *cmd, int c, const char *arg, diana_session_options *o)
{
	char *end;
	long v;

	switch (c) {
	case OPT_TIMEOUT:
		return parse_seconds(cmd, arg, &o->timeout_ms) < 0 ? -1 : 1;
	case OPT_CONNECT_TIMEOUT:
		return parse_seconds(cmd, arg, &o->connect_timeout_ms) < 0 ? -1 : 1;
	case OPT_RETRIES:
		v = strtol(arg, &end, 10);
		if (*end || end == arg || v < 0 || v > 100) {
			usage_error(cmd, "--retries takes a number 0-100");
			return -1;
		}
		o->retries = v == 0 ? -1 : (int)v;
		return 1;
	case OPT_NETRC:
		o->netrc_file = arg;
		return 1;
	case OPT_CA_FILE:
		o->ca_file = arg;
		return 1;
	case OPT_INSECURE:
		o->insecure = 1;
		return 1;
	case OPT_AET:
		o->calling_aet = arg;
		return 1;
	case OPT_LOCAL_PORT:
		v = strtol(arg, &end, 10);
		if (*end || end == arg || v < 1 || v > 65535) {
			usage_error(cmd, "--local-port takes a port number 1-65535");
			return -1;
		}
		o->local_port = (int)v;
		o->retrieve = DIANA_RETRIEVE_MOVE;
		return 1;
	default:
		return 0;
	}
}

int open_session(diana_session **s, const char *uri, const diana_session_options *o)
{
	if (diana_session_open(s, uri, o) < 0)
		return fail("opening the session");
	return 0;
}
