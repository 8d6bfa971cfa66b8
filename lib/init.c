/*
 * libdiana - library lifetime, version and features.
 * Lives above lib/core because it brings up every module (net, dicom).
 * SPDX-License-Identifier: MIT
 */
#include <pthread.h>

#include "core/core.h"
#include "dicom/dicom.h"
#include "net/net.h"

static pthread_mutex_t init_lock = PTHREAD_MUTEX_INITIALIZER;
static int init_count;

DIANA_API int diana_init(void)
{
	int rc;

	pthread_mutex_lock(&init_lock);
	if (init_count == 0) {
		diana__log_global_init();
		rc = diana__net_global_init();
		if (rc < 0)
			goto out;
		rc = diana__dicom_global_init();
		if (rc < 0) {
			diana__net_global_shutdown();
			goto out;
		}
		diana__log(DIANA_LOG_DEBUG, "core", "libdiana %s initialised", DIANA_VERSION_STRING);
	}
	rc = ++init_count;
out:
	pthread_mutex_unlock(&init_lock);
	return rc;
}

DIANA_API int diana_shutdown(void)
{
	int rc;

	pthread_mutex_lock(&init_lock);
	if (init_count == 0) {
		rc = diana__error_set(DIANA_ENOTINIT, "libdiana is not initialised");
	} else {
		rc = --init_count;
		if (init_count == 0) {
			diana__dicom_global_shutdown();
			diana__net_global_shutdown();
		}
	}
	pthread_mutex_unlock(&init_lock);
	return rc;
}

DIANA_API int diana_version(int *major, int *minor, int *patch)
{
	if (major)
		*major = DIANA_VERSION_MAJOR;
	if (minor)
		*minor = DIANA_VERSION_MINOR;
	if (patch)
		*patch = DIANA_VERSION_PATCH;
	return 0;
}

DIANA_API const char *diana_version_string(void)
{
	return DIANA_VERSION_STRING;
}

DIANA_API uint32_t diana_features(void)
{
	uint32_t f = DIANA_FEATURE_THREADS | DIANA_FEATURE_ICONV;
	if (diana__net_has_tls())
		f |= DIANA_FEATURE_HTTPS;
	return f;
}
