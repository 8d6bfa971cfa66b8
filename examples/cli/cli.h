/*
 * diana - command-line front end of libdiana: what the command files share.
 * Uses only the public API (include/diana).
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_CLI_H
#define DIANA_CLI_H

#include <stdio.h>

#include <diana/diana.h>

#define EXIT_USAGE 1
#define EXIT_FAIL 2

typedef struct command {
	const char *name;
	const char *summary;
	int (*run)(int argc, char **argv);
	void (*help)(FILE *out);
} command;

extern const char *progname;

/** Print "diana: WHAT: <last libdiana error>" on stderr; returns EXIT_FAIL. */
int fail(const char *what);
/** Print a usage error for CMD; returns EXIT_USAGE. */
int usage_error(const char *cmd, const char *msg);

/* one pair per command file (cmd_*.c) */
int cmd_dump(int argc, char **argv);
void dump_help(FILE *out);
int cmd_version(int argc, char **argv);
void version_help(FILE *out);
int cmd_anon(int argc, char **argv);
void anon_help(FILE *out);
int cmd_scan(int argc, char **argv);
void scan_help(FILE *out);
int cmd_dose(int argc, char **argv);
void dose_help(FILE *out);
int cmd_echo(int argc, char **argv);
void echo_help(FILE *out);
int cmd_find(int argc, char **argv);
void find_help(FILE *out);
int cmd_get(int argc, char **argv);
void get_help(FILE *out);
int cmd_store(int argc, char **argv);
void store_help(FILE *out);
int cmd_watch(int argc, char **argv);
void watch_help(FILE *out);
int cmd_pull(int argc, char **argv);
void pull_help(FILE *out);

#endif
