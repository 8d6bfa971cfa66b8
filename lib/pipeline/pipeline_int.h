/*
 * libdiana - internals of lib/pipeline shared by its files: the pipeline
 * structure, the model runner and the sinks with their spool.
 * SPDX-License-Identifier: MIT
 */
#ifndef DIANA_PIPELINE_INT_H
#define DIANA_PIPELINE_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <cjson/cJSON.h>
#include <diana/pipeline.h>
#include <diana/session.h>

#include "../core/core.h"

struct diana__filter;

/* ------------------------------------------------------------------ model */

struct diana_model_output {
	char *json;
};

typedef struct diana__command_model {
	char **argv;        /* NULL-terminated; the study folder is appended */
	int64_t timeout_ms; /* default 600000 */
} diana__command_model;

/**
 * Run the command with the study folder as last argument; on exit 0 its
 * stdout (at most 1 MiB) must be a JSON object: *result (malloc'd).
 * DIANA_ETIMEDOUT (killed after the timeout, its whole process group),
 * DIANA_EUSER (non-zero exit or a signal), DIANA_EINVAL (stdout is not a
 * JSON object), DIANA_EIO.
 */
int diana__model_command(const diana__command_model *m, const char *study_dir, char **result);

/* ------------------------------------------------------------------ sinks */

enum { SINK_SLACK = 1, SINK_WEBHOOK, SINK_JSONL, SINK_SR, SINK_SPLUNK };

typedef struct diana__sink {
	int type;
	char *name;        /* "slack", "webhook", ... for logs */
	char *url;         /* slack, webhook (never logged: Slack URLs are secrets) */
	uint8_t *secret;   /* webhook HMAC key */
	size_t secret_len;
	char *header;      /* webhook signature header, default X-Diana-Signature */
	char *path;        /* jsonl */
	char *sr_uri;      /* sr: where to store */
	char *model_name;  /* sr */
	char *series_description; /* sr */
	char *index, *sourcetype, *ca_file; /* splunk (the token is `secret`) */
	int64_t timeout_ms;
} diana__sink;

/* One delivery: what a sink gets for one study. */
typedef struct diana__delivery {
	char id[40];         /* unique: "<time>-<seq>-<sink>", also sent as X-Diana-Delivery */
	int sink;            /* index in the pipeline's sinks */
	char *body;          /* the payload (JSON text; for sr: the SR's Part 10 file path) */
	int attempts;
	int64_t next_ms;     /* monotonic time of the next attempt */
} diana__delivery;

/** Payload for a sink from the study's record (see doc/pipeline.md). Malloc'd JSON text. */
char *diana__sink_payload(const diana__sink *s, const cJSON *record);

/** Deliver once: 0 delivered, DIANA_E* to retry later (HTTP 4xx other than 408/429: DIANA_EINVAL, dropped). */
int diana__sink_deliver(const diana__sink *s, const diana__delivery *d);

void diana__sink_dispose(diana__sink *s);

/* --------------------------------------------------------------- pipeline */

typedef struct diana__latency {
	int64_t exam_end_ms; /* wall clock ms (epoch) of the exam's end, -1 unknown */
	int64_t detect_ms, retrieved_ms, model_ms, delivered_ms; /* wall clock ms (epoch) */
} diana__latency;

/**
 * For sources that receive studies themselves (a storage SCP): process the
 * study whose files are in `src_dir` (moved away or removed afterwards):
 * history check, de-identification when configured, filter, model, sinks,
 * as for a retrieved study. 0 when handled, <0 to try again later.
 */
int diana__pipeline_handle_dir(diana_pipeline *p, const char *uid, const char *src_dir, int64_t detect_ms,
                               int64_t arrival_ms);

/*
 * A storage SCP source (source_scp.c): listens for C-STORE, groups received
 * instances by study, and hands a study to diana__pipeline_handle_dir() once
 * no instance of it arrived for `quiet_s`. Configuration: the "listen"
 * object of "source": {"aet", "port", "bind" (default 127.0.0.1), "quiet_s"}.
 */
typedef struct diana__scp_source diana__scp_source;
int diana__scp_source_new(diana_pipeline *p, const cJSON *listen, const char *spool_dir, diana__scp_source **out);
int diana__scp_source_poll(diana__scp_source *s, uint32_t *handled);
void diana__scp_source_free(diana__scp_source *s);

#endif /* DIANA_PIPELINE_INT_H */
