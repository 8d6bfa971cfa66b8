/*
 * libdiana - de-identification profiles: options, project secret,
 * overrides, key file, results.
 * SPDX-License-Identifier: MIT
 */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "../core/core.h"
#include "../dicom/edit.h"
#include "engine.h"
#include "table.h"

#define SECRET_FILE_MAX (1u << 20)

static const char *const option_names[DIANA__NOPTIONS] = {
	"retain-safe-private",
	"retain-uids",
	"retain-device-identity",
	"retain-institution-identity",
	"retain-patient-characteristics",
	"retain-long-full-dates",
	"retain-long-modified-dates",
	"clean-descriptors",
	"clean-structured-content",
	"clean-graphics",
};

#define ALL_OPTIONS DIANA__DEID_ALL_OPTIONS
_Static_assert(DIANA__DEID_ALL_OPTIONS == (1u << DIANA__NOPTIONS) - 1, "option bits");

DIANA_API int diana_deid_option_from_name(const char *name, uint32_t *out)
{
	char norm[64];
	size_t n;

	if (!name || !out)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	n = strlen(name);
	if (n >= sizeof norm)
		return diana__error_set(DIANA_EINVAL, "unknown de-identification option");
	for (size_t i = 0; i <= n; i++) {
		char c = name[i];
		norm[i] = (c == '_' || c == ' ') ? '-' : (char)tolower((unsigned char)c);
	}
	for (int i = 0; i < DIANA__NOPTIONS; i++) {
		if (!strcmp(norm, option_names[i])) {
			*out = 1u << i;
			return 0;
		}
	}
	return diana__error_set(DIANA_EINVAL, "unknown de-identification option");
}

DIANA_API const char *diana_deid_option_name(uint32_t option)
{
	for (int i = 0; i < DIANA__NOPTIONS; i++)
		if (option == 1u << i)
			return option_names[i];
	return NULL;
}

DIANA_API int diana_profile_options_init(diana_profile_options *opts, uint32_t version)
{
	int rc;

	if (!opts)
		return diana__error_set(DIANA_EINVAL, "NULL options");
	rc = diana__check_version(version, DIANA_PROFILE_OPTIONS_VERSION, "diana_profile_options");
	if (rc < 0)
		return rc;
	memset(opts, 0, sizeof *opts);
	opts->version = version;
	return 0;
}

DIANA_API int diana_profile_new(diana_profile **out, const diana_profile_options *opts)
{
	diana_profile *p = NULL;
	uint8_t *secret = NULL;
	size_t secret_len = 0;
	int rc;

	if (!out)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	*out = NULL;
	if (!opts)
		return diana__error_set(DIANA_EINVAL,
		                        "a profile needs options with the project secret (there is no default secret)");
	rc = diana__check_version(opts->version, DIANA_PROFILE_OPTIONS_VERSION, "diana_profile_options");
	if (rc < 0)
		return rc;
	if (opts->options & ~ALL_OPTIONS)
		return diana__error_set(DIANA_EINVAL, "unknown de-identification option bits 0x%x",
		                        (unsigned)(opts->options & ~ALL_OPTIONS));
	if ((opts->options & DIANA_DEID_RETAIN_LONG_FULL_DATES) &&
	    (opts->options & DIANA_DEID_RETAIN_LONG_MODIFIED_DATES))
		return diana__error_set(DIANA_EINVAL,
		                        "retain-long-full-dates and retain-long-modified-dates exclude each other");
	if (opts->date_shift_max_days < 0 || opts->date_shift_max_days > DIANA__SHIFT_MAX_DAYS)
		return diana__error_set(DIANA_EINVAL, "date_shift_max_days must lie in 0..%d",
		                        DIANA__SHIFT_MAX_DAYS);
	if (opts->secret_file && opts->secret)
		return diana__error_set(DIANA_EINVAL, "give the secret or the secret file, not both");
	if (opts->secret_file) {
		/* regular, at most 1 MiB, closed to group and others; the whole content is
		 * the key but one trailing LF or CR LF, so that echo/editors do not change
		 * pseudonyms */
		rc = diana__secret_file_read(opts->secret_file, "the secret file", SECRET_FILE_MAX, &secret,
		                             &secret_len);
		if (rc < 0)
			return rc;
	} else if (opts->secret) {
		secret_len = opts->secret_len;
	} else {
		return diana__error_set(DIANA_EINVAL, "no project secret: there is no default secret");
	}
	if (secret_len < DIANA__MINT_MIN_SECRET) {
		rc = diana__error_set(DIANA_EINVAL, "the project secret must be at least %d bytes (has %zu)",
		                      DIANA__MINT_MIN_SECRET, secret_len);
		goto fail;
	}
	p = diana__calloc(1, sizeof *p);
	if (!p) {
		rc = DIANA_ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&p->method_lock, NULL);
	p->options = opts->options;
	p->shift_max_days = opts->date_shift_max_days ? opts->date_shift_max_days : DIANA__SHIFT_DEFAULT_DAYS;
	rc = diana__mint_new(&p->mint, secret ? secret : opts->secret, secret_len);
	if (rc < 0)
		goto fail;
	if (opts->key_file) {
		rc = diana__keyfile_open(&p->key, opts->key_file);
		if (rc < 0)
			goto fail;
	}
	if (secret) {
		OPENSSL_cleanse(secret, secret_len);
		free(secret);
	}
	*out = p;
	return 0;
fail:
	if (secret) {
		OPENSSL_cleanse(secret, secret_len);
		free(secret);
	}
	diana_profile_free(p);
	return rc;
}

DIANA_API void diana_profile_free(diana_profile *p)
{
	if (!p)
		return;
	diana__mint_free(p->mint);
	if (p->key)
		diana__keyfile_close(p->key);
	for (size_t i = 0; i < p->nov; i++)
		free(p->ov[i].value);
	free(p->ov);
	diana_dataset_free(p->method_ds[0]);
	diana_dataset_free(p->method_ds[1]);
	pthread_mutex_destroy(&p->method_lock);
	free(p);
}

/* "(gggg,eeee)", "gggg,eeee", "ggggeeee" or a keyword */
int diana__deid_parse_key(const char *key, uint32_t *tag)
{
	char hex[9];
	size_t n = 0, len = strlen(key);
	const char *p = key;

	if (len >= 8 && len <= 11) {
		if (*p == '(')
			p++;
		while (*p && n < 8) {
			if (isxdigit((unsigned char)*p))
				hex[n++] = *p;
			else if (!(*p == ',' && n == 4))
				break;
			p++;
		}
		if (n == 8 && (!*p || (*p == ')' && key[0] == '(' && !p[1]))) {
			hex[8] = 0;
			*tag = (uint32_t)strtoul(hex, NULL, 16);
			return 0;
		}
	}
	for (p = key; *p; p++)
		if (!isalnum((unsigned char)*p))
			return diana__error_set(DIANA_EINVAL, "invalid attribute key (a keyword or a tag, no paths)");
	if (diana__dict_tag(key, tag) < 0)
		return diana__error_set(DIANA_EINVAL, "unknown keyword");
	return 0;
}

DIANA_API int diana_profile_set_action(diana_profile *p, const char *key, int action, const char *value)
{
	uint32_t tag;
	size_t i;
	int rc;

	if (!p || !key)
		return diana__error_set(DIANA_EINVAL, "NULL argument");
	if (action < DIANA_ACTION_DEFAULT || action > DIANA_ACTION_REPLACE)
		return diana__error_set(DIANA_EINVAL, "unknown action %d", action);
	if ((action == DIANA_ACTION_REPLACE) != (value != NULL))
		return diana__error_set(DIANA_EINVAL, "a value is given with DIANA_ACTION_REPLACE and only then");
	if (value && (strchr(value, '\n') || strchr(value, '\r') || strlen(value) > 1024))
		return diana__error_set(DIANA_EINVAL, "replacement values are one line of at most 1024 bytes");
	rc = diana__deid_parse_key(key, &tag);
	if (rc < 0)
		return rc;
	if ((tag >> 16) == 0x0002 || (tag >> 16) == 0xFFFE || (tag & 0xFFFF) == 0)
		return diana__error_set(DIANA_EINVAL,
		                        "(%04X,%04X): file meta, item and group length elements cannot be overridden",
		                        tag >> 16, tag & 0xFFFF);
	if (tag == 0x7FE00010u || tag == 0x7FE00008u || tag == 0x7FE00009u)
		return diana__error_set(DIANA_EINVAL, "pixel data is never changed by de-identification");
	if (tag == 0x00120062u || tag == 0x00120063u || tag == 0x00120064u || tag == 0x00280303u)
		return diana__error_set(DIANA_EINVAL, "(%04X,%04X) is written by the de-identification itself",
		                        tag >> 16, tag & 0xFFFF);

	for (i = 0; i < p->nov && p->ov[i].tag < tag; i++)
		;
	if (i < p->nov && p->ov[i].tag == tag) {
		if (action == DIANA_ACTION_DEFAULT) {
			free(p->ov[i].value);
			memmove(p->ov + i, p->ov + i + 1, (p->nov - i - 1) * sizeof *p->ov);
			p->nov--;
			return 0;
		}
	} else {
		diana__override *n;
		if (action == DIANA_ACTION_DEFAULT)
			return 0;
		n = realloc(p->ov, (p->nov + 1) * sizeof *p->ov);
		if (!n)
			return diana__error_oom();
		p->ov = n;
		memmove(p->ov + i + 1, p->ov + i, (p->nov - i) * sizeof *p->ov);
		p->ov[i].tag = tag;
		p->ov[i].value = NULL;
		p->nov++;
	}
	{
		char *v = NULL;
		if (value && !(v = diana__strdup(value)))
			return DIANA_ENOMEM; /* the entry keeps its previous action */
		free(p->ov[i].value);
		p->ov[i].value = v;
		p->ov[i].action = action;
	}
	return 0;
}

const diana__override *diana__profile_override(const diana_profile *p, uint32_t tag)
{
	size_t lo = 0, hi = p->nov;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (p->ov[mid].tag == tag)
			return &p->ov[mid];
		if (p->ov[mid].tag < tag)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* ---- results ------------------------------------------------------------ */

const char *const diana__result_fields[DIANA__R_N] = {
	"PatientID", "PatientName", "PatientBirthDate", "AccessionNumber",
	"StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID", "StudyDate",
};

DIANA_API const char *diana_deid_result_get(const diana_deid_result *r, const char *field)
{
	int orig = 0;

	if (!r || !field)
		return NULL;
	if (!strncmp(field, "Original", 8)) {
		orig = 1;
		field += 8;
	}
	for (int i = 0; i < DIANA__R_N; i++)
		if (!strcmp(field, diana__result_fields[i]))
			return r->v[i + (orig ? DIANA__R_N : 0)];
	return NULL;
}

DIANA_API void diana_deid_result_free(diana_deid_result *r)
{
	if (!r)
		return;
	for (int i = 0; i < 2 * DIANA__R_N; i++) {
		if (r->v[i]) {
			OPENSSL_cleanse(r->v[i], strlen(r->v[i]));
			free(r->v[i]);
		}
	}
	free(r);
}
