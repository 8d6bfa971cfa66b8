/*
 * bench-dimse: libdiana's DIMSE layer, one operation per process, for the
 * side-by-side measurement in tests/dimse/bench/toolkits.sh (doc/dimse.md).
 *
 *   bench-dimse OP HOST PORT CALLED CALLING [ARGS]
 *     echo | find ACCESSION | get STUDYUID OUTDIR | move STUDYUID SCPPORT OUTDIR
 *     | store FILE... | reuse STUDYUID N OUTDIR   (N x (C-FIND + C-GET) on one association)
 *
 * Prints "OP ok|FAILED <ms> ms n=<count>": the time of the operation inside
 * the process, association included. Retrieved instances are renamed into
 * OUTDIR (what a caller keeping the files does).
 * SPDX-License-Identifier: MIT
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <diana/diana.h>

#include "net/dimse.h"

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

struct sink {
	const char *dir;
	int n;
};

static int keep(const diana__dimse_instance *in, void *ud)
{
	struct sink *s = ud;
	char dst[1024];
	if (!s->dir)
		return 0;
	snprintf(dst, sizeof(dst), "%s/%d.dcm", s->dir, s->n++);
	return rename(in->path, dst) == 0 ? 0 : -1;
}

static int count_answer(const diana_dataset *ds, void *ud)
{
	(void)ds;
	(*(int *)ud)++;
	return 0;
}

int main(int argc, char **argv)
{
	diana__dimse_options o = DIANA__DIMSE_OPTIONS_INIT;
	diana__dimse *d = NULL;
	diana__dimse_result res;
	const char *op;
	char json[256];
	double t0;
	int rc = -1, n = 0;

	if (argc < 6) {
		fprintf(stderr, "usage: %s OP HOST PORT CALLED CALLING [ARGS]\n", argv[0]);
		return 2;
	}
	if (diana_init() < 0)
		return 1;
	op = argv[1];
	o.host = argv[2];
	o.port = atoi(argv[3]);
	o.called_aet = argv[4];
	o.calling_aet = argv[5];
	if (strcmp(op, "move") == 0 && argc > 7)
		o.scp_port = atoi(argv[7]);
	memset(&res, 0, sizeof(res));
	t0 = now_ms();
	if (diana__dimse_new(&d, &o) < 0) {
		fprintf(stderr, "%s\n", diana_error_message());
		return 1;
	}
	if (strcmp(op, "echo") == 0) {
		rc = diana__dimse_echo(d);
		n = 1;
	} else if (strcmp(op, "find") == 0 && argc > 6) {
		diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, json };
		snprintf(json, sizeof(json),
		         "{\"00080050\":{\"vr\":\"SH\",\"Value\":[\"%s\"]},\"00100010\":{\"vr\":\"PN\"},"
		         "\"00100020\":{\"vr\":\"LO\"},\"0020000D\":{\"vr\":\"UI\"},\"00201208\":{\"vr\":\"IS\"}}",
		         argv[6]);
		rc = diana__dimse_find(d, &q, count_answer, &n, NULL);
	} else if ((strcmp(op, "get") == 0 && argc > 7) || (strcmp(op, "move") == 0 && argc > 8)) {
		diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, json };
		struct sink s = { argv[op[0] == 'g' ? 7 : 8], 0 };
		snprintf(json, sizeof(json), "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]}}", argv[6]);
		if (op[0] == 'g')
			rc = diana__dimse_get(d, &q, keep, &s, &res);
		else
			rc = diana__dimse_move(d, &q, NULL, keep, &s, &res);
		n = (int)res.received;
	} else if (strcmp(op, "store") == 0 && argc > 6) {
		rc = diana__dimse_store(d, (const char *const *)(argv + 6), (size_t)(argc - 6), NULL, NULL, &res);
		n = (int)res.completed;
	} else if (strcmp(op, "reuse") == 0 && argc > 8) {
		int rounds = atoi(argv[7]);
		diana__dimse_query q = { DIANA__DIMSE_STUDY_ROOT, DIANA__DIMSE_LEVEL_STUDY, NULL, json };
		struct sink s = { argv[8], 0 };
		snprintf(json, sizeof(json), "{\"0020000D\":{\"vr\":\"UI\",\"Value\":[\"%s\"]},"
		         "\"00201208\":{\"vr\":\"IS\"}}", argv[6]);
		rc = 0;
		for (int i = 0; i < rounds && rc == 0; i++) {
			int a = 0;
			rc = diana__dimse_find(d, &q, count_answer, &a, NULL);
			if (rc == 0)
				rc = diana__dimse_get(d, &q, keep, &s, &res);
			n += (int)res.received;
		}
	} else {
		fprintf(stderr, "bad arguments\n");
	}
	diana__dimse_free(d);
	printf("%s %s %.1f ms n=%d%s%s\n", op, rc == 0 ? "ok" : "FAILED", now_ms() - t0, n,
	       rc ? " " : "", rc ? diana_error_message() : "");
	diana_shutdown();
	return rc == 0 ? 0 : 1;
}
