/*
 * libdiana - thread-local last error.
 * SPDX-License-Identifier: MIT
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "core.h"

#define DIANA__ERROR_MAX 512

static _Thread_local int last_code;
static _Thread_local char last_message[DIANA__ERROR_MAX];

DIANA_API int diana_error_code(void)
{
	return last_code;
}

DIANA_API const char *diana_error_message(void)
{
	return last_message;
}

DIANA_API void diana_error_clear(void)
{
	last_code = 0;
	last_message[0] = '\0';
}

static void store(int code, const char *fmt, va_list ap)
{
	int n;
	char *p;

	last_code = code;
	n = vsnprintf(last_message, sizeof(last_message), fmt, ap);
	if (n < 0)
		last_message[0] = '\0';
	/* one line only */
	for (p = last_message; *p; p++) {
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	}
}

int diana__error_set(int code, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	store(code, fmt, ap);
	va_end(ap);
	diana__log(DIANA_LOG_DEBUG, "error", "%s (%s)", last_message, diana_strerror(code));
	return code;
}

int diana__errno_code(int errnum)
{
	switch (errnum) {
	case ENOENT:
	case ENOTDIR:
		return DIANA_ENOTFOUND;
	case ENOMEM:
		return DIANA_ENOMEM;
	case ENOSPC:
	case EDQUOT:
		return DIANA_ENOSPC;
	case EEXIST:
		return DIANA_EEXISTS;
	case EINVAL:
		return DIANA_EINVAL;
	case ETIMEDOUT:
		return DIANA_ETIMEDOUT;
	case ECONNREFUSED:
	case EHOSTUNREACH:
	case ENETUNREACH:
		return DIANA_ECONNECT;
	default:
		return DIANA_EIO;
	}
}

int diana__error_errno(int errnum, const char *what)
{
	char buf[128];
	const char *msg;

	/* GNU strerror_r returns the message pointer */
	msg = strerror_r(errnum, buf, sizeof(buf));
	return diana__error_set(diana__errno_code(errnum), "%s: %s", what, msg);
}

int diana__error_oom(void)
{
	return diana__error_set(DIANA_ENOMEM, "out of memory");
}

int diana__check_version(uint32_t version, uint32_t max, const char *what)
{
	if (version == 0 || version > max)
		return diana__error_set(DIANA_EUNSUPPORTED, "invalid version %u on %s", (unsigned)version,
		                        what);
	return 0;
}

DIANA_API const char *diana_strerror(int code)
{
	switch (code) {
	case DIANA_OK: return "success";
	case DIANA_ERROR: return "error";
	case DIANA_EINVAL: return "invalid argument";
	case DIANA_ENOMEM: return "out of memory";
	case DIANA_EUNSUPPORTED: return "not supported";
	case DIANA_ENOTFOUND: return "not found";
	case DIANA_EIO: return "input/output error";
	case DIANA_EDICOM: return "invalid DICOM data";
	case DIANA_ETIMEDOUT: return "timed out";
	case DIANA_ECANCELLED: return "cancelled";
	case DIANA_EAUTH: return "authentication refused";
	case DIANA_ETLS: return "TLS error";
	case DIANA_ECONNECT: return "cannot connect";
	case DIANA_EPACS: return "remote error status";
	case DIANA_EUSER: return "stopped by callback";
	case DIANA_ENOTINIT: return "library not initialised";
	case DIANA_EEXISTS: return "already exists";
	case DIANA_ELEAK: return "protected data found in output";
	case DIANA_ENOSPC: return "no space left on device";
	default: return "unknown error";
	}
}
