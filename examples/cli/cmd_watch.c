/*
 * diana - the watch command (prospective pipelines).
 * SPDX-License-Identifier: MIT
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

void watch_help(FILE *out)
{
	fprintf(out,
	        "Usage: %s watch [OPTIONS] CONFIG.json\n"
	        "\n"
	        "Run a prospective pipeline: watch the source for new studies, filter them,\n"
	        "run the model, deliver the results (Slack, webhook, JSONL, DICOM SR), each\n"
	        "study exactly once, also across restarts (see doc/pipeline.md for the\n"
	        "configuration). Runs until SIGINT or SIGTERM, then finishes the study in\n"
	        "hand and exits 0.\n"
	        "\n"
	        "Options:\n"
	        "  --once          handle what is there now, deliver, then exit\n"
	        "  --stats         print counters and latencies at the end\n"
	        "  --check         only check the configuration\n"
	        "  -h, --help      show this help\n"
	        "\n"
	        "Exit status: 0 ok (stopped by a signal), 1 usage error, 2 bad configuration or\n"
	        "a failure that stops the pipeline.\n",
	        progname);
}

static diana_pipeline *running;

static void on_signal(int sig)
{
	(void)sig;
	if (running)
		diana_pipeline_stop(running); /* async-signal-safe: one atomic store */
}

static void print_stats(diana_pipeline *p)
{
	diana_pipeline_stats st = DIANA_PIPELINE_STATS_INIT;
	if (diana_pipeline_stats_get(p, &st) < 0)
		return;
	printf("studies: %llu seen, %llu matched, %llu processed, %llu model failures, %llu retrieve failures\n",
	       (unsigned long long)st.seen, (unsigned long long)st.matched, (unsigned long long)st.processed,
	       (unsigned long long)st.model_failures, (unsigned long long)st.retrieve_failures);
	printf("deliveries: %llu made, %llu pending\n", (unsigned long long)st.delivered, (unsigned long long)st.pending);
	if (st.last_delivered_ms >= 0)
		printf("last study, from the end of the exam: detected %.1f s, retrieved %.1f s, model done %.1f s, "
		       "delivered %.1f s\n",
		       st.last_detect_ms / 1e3, st.last_retrieved_ms / 1e3, st.last_model_ms / 1e3,
		       st.last_delivered_ms / 1e3);
	if (st.median_total_ms >= 0)
		printf("median: exam end -> delivery %.1f s, detection -> delivery %.1f s\n", st.median_total_ms / 1e3,
		       st.median_pipeline_ms / 1e3);
	fflush(stdout);
}

int cmd_watch(int argc, char **argv)
{
	static const struct option longopts[] = { { "once", no_argument, NULL, 'o' },
		                                      { "stats", no_argument, NULL, 's' },
		                                      { "check", no_argument, NULL, 'c' },
		                                      { "help", no_argument, NULL, 'h' },
		                                      { NULL, 0, NULL, 0 } };
	diana_pipeline_options o = DIANA_PIPELINE_OPTIONS_INIT;
	diana_pipeline *p = NULL;
	struct sigaction sa;
	int c, once = 0, stats = 0, check = 0, rc;
	uint32_t n = 0;

	optind = 1;
	while ((c = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
		switch (c) {
		case 'h':
			watch_help(stdout);
			return 0;
		case 'o':
			once = 1;
			break;
		case 's':
			stats = 1;
			break;
		case 'c':
			check = 1;
			break;
		default:
			return usage_error("watch", "unknown option");
		}
	}
	if (optind != argc - 1)
		return usage_error("watch", "exactly one CONFIG.json expected");
	o.config_path = argv[optind];
	if (diana_pipeline_new(&p, &o) < 0)
		return fail(argv[optind]);
	if (check) {
		printf("%s: ok\n", argv[optind]);
		diana_pipeline_free(p);
		return 0;
	}
	if (once) {
		rc = diana_pipeline_run_once(p, &n);
		if (rc < 0) {
			rc = fail("watch");
		} else {
			printf("%u studies handled\n", (unsigned)n);
			rc = 0;
		}
		if (stats)
			print_stats(p);
		diana_pipeline_free(p);
		return rc;
	}
	running = p;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	rc = diana_pipeline_run(p); /* until a signal stops it */
	running = NULL;
	if (stats)
		print_stats(p);
	diana_pipeline_free(p);
	if (rc < 0)
		return fail("watch");
	return 0;
}
