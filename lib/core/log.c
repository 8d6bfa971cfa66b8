/*
 * libdiana - process-wide log handler. Silent by default.
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "core.h"

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static diana_log_fn log_fn;
static void *log_user_data;
static int log_to_stderr;               /* DIANA_DEBUG set and no handler */
static atomic_int log_level = DIANA_LOG_NONE; /* effective level, read without the lock */
static int level_set_by_user;

static void stderr_handler(int level, const char *domain, const char *message, void *ud)
{
	static const char *names[] = { "none", "error", "warning", "info", "debug" };
	(void)ud;
	fprintf(stderr, "diana[%s] %s: %s\n", domain, names[level >= 0 && level <= 4 ? level : 0],
	        message);
}

void diana__log_global_init(void)
{
	pthread_mutex_lock(&log_lock);
	if (!log_fn && secure_getenv("DIANA_DEBUG")) {
		log_to_stderr = 1;
		if (!level_set_by_user)
			atomic_store(&log_level, DIANA_LOG_DEBUG);
	}
	pthread_mutex_unlock(&log_lock);
}

DIANA_API void diana_log_set_handler(diana_log_fn fn, void *user_data)
{
	pthread_mutex_lock(&log_lock);
	log_fn = fn;
	log_user_data = user_data;
	log_to_stderr = 0;
	if (!level_set_by_user)
		atomic_store(&log_level, fn ? DIANA_LOG_WARNING : DIANA_LOG_NONE);
	pthread_mutex_unlock(&log_lock);
}

DIANA_API int diana_log_set_level(int level)
{
	int prev;

	if (level < DIANA_LOG_NONE)
		level = DIANA_LOG_NONE;
	if (level > DIANA_LOG_DEBUG)
		level = DIANA_LOG_DEBUG;
	pthread_mutex_lock(&log_lock);
	prev = atomic_exchange(&log_level, level);
	level_set_by_user = 1;
	pthread_mutex_unlock(&log_lock);
	return prev;
}

int diana__log_enabled(int level)
{
	return level > DIANA_LOG_NONE && level <= atomic_load(&log_level);
}

void diana__vlog(int level, const char *domain, const char *fmt, va_list ap)
{
	char msg[1024];
	char *p;
	diana_log_fn fn;
	void *ud;

	if (!diana__log_enabled(level))
		return;
	pthread_mutex_lock(&log_lock);
	fn = log_fn ? log_fn : (log_to_stderr ? stderr_handler : NULL);
	ud = log_user_data;
	pthread_mutex_unlock(&log_lock);
	if (!fn)
		return;
	vsnprintf(msg, sizeof(msg), fmt, ap);
	for (p = msg; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
	fn(level, domain ? domain : "core", msg, ud);
}

void diana__log(int level, const char *domain, const char *fmt, ...)
{
	va_list ap;

	if (!diana__log_enabled(level))
		return;
	va_start(ap, fmt);
	diana__vlog(level, domain, fmt, ap);
	va_end(ap);
}
